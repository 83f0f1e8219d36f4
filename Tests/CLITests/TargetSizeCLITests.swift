import Foundation
import GSASR
import Testing

/// `--size`, `--width`, `--height` through the binary (small model, the 48x48 photo), and the
/// bad requests: one line, non-zero exit, no output file.
@Suite(.serialized) struct TargetSizeCLITests {
    func outputSize(_ extra: [String]) throws -> (Int, Int) {
        let out = try CLI.tempDir().appendingPathComponent("out.png")
        let r = try CLI.run(["-i", CLI.photo.path, "-o", out.path, "-m", CLI.smallModel.path, "-q"] + extra)
        #expect(r.status == 0, "\(r.stderr)")
        let img = try ImageIO.load(out).rgb
        return (img.width, img.height)
    }

    @Test func sizesAreMetExactly() throws {
        #expect(try outputSize(["--size", "96x96"]) == (96, 96))
        #expect(try outputSize(["--width", "100"]) == (100, 100))
        #expect(try outputSize(["--height", "77"]) == (77, 77))
        // A changed aspect: a scale per axis.
        #expect(try outputSize(["--size", "150x60"]) == (150, 60))
        for geometry in ["exact", "official"] {
            #expect(try outputSize(["--size", "150x60", "--geometry", geometry]) == (150, 60))
            #expect(try outputSize(["--width", "131", "--geometry", geometry]) == (131, 131))
        }
    }

    @Test(arguments: [
        (["--size", "0x0"], "positive"), (["--size", "10x10"], "smaller than the input"),
        (["--size", "abc"], "WIDTHxHEIGHT"), (["-s", "2", "--size", "96x96"], "only one of"),
        (["--width", "96", "--height", "96"], "only one of"), (["--width", "0"], "positive"),
        (["--height=-3"], "positive"),
        (["-s", "3.7", "--geometry", "floored"], "--geometry 'floored' is not one of exact, official"),
    ])
    func badRequests(args: [String], mentions: String) throws {
        let d = try CLI.tempDir()
        let out = d.appendingPathComponent("out.png")
        let r = try CLI.run(["-i", CLI.photo.path, "-o", out.path, "-m", CLI.smallModel.path] + args)
        print("gsasr \(args.joined(separator: " ")) -> exit \(r.status): \(r.stderr.trimmingCharacters(in: .newlines))")
        #expect(r.status != 0 && r.status < 128)
        #expect(r.stderr.split(separator: "\n").count == 1)
        #expect(r.stderr.contains(mentions), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }

    @Test func extensionThatDisagreesWithTheFormatIsRefused() throws {
        let d = try CLI.tempDir()
        for (name, format) in [("out.jpg", "png"), ("out.webp", "jpg"), ("out.bmp", "png")] {
            let out = d.appendingPathComponent(name)
            let r = try CLI.run(
                ["-i", CLI.photo.path, "-o", out.path, "-m", CLI.smallModel.path, "-s", "2", "-f", format])
            #expect(r.status != 0 && r.stderr.contains("extension"), "\(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out.path))
        }
    }
}
