import Foundation
import GSASR
import Testing

/// `-t/--tile`, `--tile-margin` and automatic tiling through the binary: the tiled file equals
/// the untiled one (16-bit output, so that float-level agreement is visible), bad tiles are
/// refused with one line and no file.
@Suite(.serialized) struct TilingCLITests {
    static let seeding = CLI.packageRoot.appendingPathComponent("Examples/seeding_160x120.png")

    /// Runs gsasr and returns the decoded 16-bit output (or fails the test).
    func upscale(_ extra: [String], in dir: URL, name: String) throws -> (rgb: [Float], stderr: String) {
        let out = dir.appendingPathComponent(name)
        let r = try CLI.run(
            ["-i", Self.seeding.path, "-o", out.path, "-m", CLI.smallModel.path, "-s", "3", "--depth", "16"] + extra)
        #expect(r.status == 0, "gsasr failed: \(r.stderr)")
        let img = try ImageIO.load(out)
        #expect(img.bitDepth == 16)
        return (img.rgb.pixels, r.stderr)
    }

    static func maxSteps(_ a: [Float], _ b: [Float]) -> Int {
        zip(a, b).reduce(0) { max($0, Int((abs($1.0 - $1.1) * 65535).rounded())) }
    }

    @Test func tiledFileEqualsUntiledFile() throws {
        let d = try CLI.tempDir()
        let untiled = try upscale(["-t", "0"], in: d, name: "untiled.png")
        // Tiles of 48 LR pixels on a 160x120 input: 3 rows x 4 columns (160 is not a multiple).
        let tiled = try upscale(["-t", "48", "--tile-margin", "24"], in: d, name: "tiled.png")
        #expect(tiled.stderr.contains("12 tiles"), "\(tiled.stderr)")
        #expect(untiled.rgb.count == tiled.rgb.count)
        let steps = Self.maxSteps(tiled.rgb, untiled.rgb)
        print("tiled vs untiled through the CLI (16-bit): max difference \(steps)/65535")
        #expect(steps <= 1)
    }

    @Test func automaticTilingWhenOverTheBudget() throws {
        let d = try CLI.tempDir()
        let untiled = try upscale([], in: d, name: "untiled.png")
        #expect(!untiled.stderr.contains("tiling"))
        // 0.05 GiB is below the untiled estimate of this input and above a 24-pixel tile's.
        let auto = try upscale(["--max-memory-gib", "0.05"], in: d, name: "auto.png")
        #expect(auto.stderr.contains("tiling: tiles of"), "\(auto.stderr)")
        let steps = Self.maxSteps(auto.rgb, untiled.rgb)
        print("automatic tiling vs untiled (16-bit): max difference \(steps)/65535")
        #expect(steps <= 1)
    }

    @Test(arguments: [(["-t", "8"], "window grid"), (["-t", "48", "--tile-margin", "0"], "margin")])
    func badTilesAreRefused(args: [String], mentions: String) throws {
        let d = try CLI.tempDir()
        let out = d.appendingPathComponent("out.png")
        let r = try CLI.run(["-i", Self.seeding.path, "-o", out.path, "-m", CLI.smallModel.path, "-s", "2"] + args)
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        print("gsasr \(args.joined(separator: " ")) -> exit \(r.status): \(r.stderr)")
        #expect(r.status != 0 && r.status < 128)
        #expect(lines.count == 1)
        #expect(r.stderr.contains(mentions))
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }

    /// A PNG whose header claims 100000x100000 is refused from its header, before any tiling or
    /// allocation: one line, no output.
    @Test func pngBombIsRefused() throws {
        let d = try CLI.tempDir()
        let out = d.appendingPathComponent("out.png")
        let bomb = CLI.packageRoot.appendingPathComponent("Tests/ImageTests/Fixtures/huge_header.png")
        let r = try CLI.run(["-i", bomb.path, "-o", out.path, "-m", CLI.smallModel.path, "-s", "2", "-t", "96"])
        print("gsasr -i huge_header.png -> exit \(r.status): \(r.stderr)")
        #expect(r.status != 0 && r.status < 128)
        #expect(r.stderr.split(separator: "\n").count == 1)
        #expect(r.stderr.contains("100000x100000"))
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }
}
