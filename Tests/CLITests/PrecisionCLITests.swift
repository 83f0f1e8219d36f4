import Foundation
import GSASR
import Testing

/// `--precision` through the binary. The refusal and the fallback run on every machine:
/// `GSASR_NO_BF16=1` masks the CPU feature, as on a CPU without native bf16. The bf16 run
/// itself needs native bf16 and is skipped elsewhere.
@Suite struct PrecisionCLITests {
    static func environment(masked: Bool) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        if masked { env["GSASR_NO_BF16"] = "1" } else { env.removeValue(forKey: "GSASR_NO_BF16") }
        return env
    }

    /// bf16 on a CPU without it: one line naming the problem, a non-zero exit, nothing written
    /// (for upscale, gaussians and eval).
    @Test func bf16IsRefusedWithoutTheFeature() throws {
        let dir = try CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out.png"), gs = dir.appendingPathComponent("g.safetensors")
        let runs: [[String]] = [
            ["upscale", "-i", CLI.photo.path, "-o", out.path, "-s", "2", "--precision", "bf16"],
            ["gaussians", "-i", CLI.photo.path, "-o", gs.path, "-s", "2", "--precision", "bf16"],
            [
                "eval", "--hr", CLI.packageRoot.appendingPathComponent("Examples").path, "--scales", "2",
                "--precision", "bf16", "--json", dir.appendingPathComponent("e.json").path,
            ],
        ]
        for args in runs {
            let r = try CLI.runBytes(args, environment: Self.environment(masked: true))
            let lines = r.stderr.split(separator: "\n")
            print("\(args[0]) --precision bf16, bf16 masked: exit \(r.status), stderr: \(r.stderr)")
            #expect(r.status != 0)
            #expect(lines.count == 1)
            #expect(r.stderr.contains("no native bf16"))
            #expect(r.stdout.isEmpty)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    /// auto without the feature: f32, with a note, and the same bytes as an f32 run.
    @Test func autoFallsBackToF32WithANote() throws {
        let dir = try CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = dir.appendingPathComponent("auto.png"), f = dir.appendingPathComponent("f32.png")
        let r = try CLI.runBytes(
            ["upscale", "-i", CLI.photo.path, "-o", a.path, "-s", "3", "--precision", "auto"],
            environment: Self.environment(masked: true))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("precision auto: f32 (no native bf16"))
        let r2 = try CLI.runBytes(
            ["upscale", "-i", CLI.photo.path, "-o", f.path, "-s", "3"], environment: Self.environment(masked: true))
        #expect(r2.status == 0)
        #expect(try Data(contentsOf: a) == Data(contentsOf: f))
    }

    /// `gsasr info` names the precisions this CPU runs natively (masked: f32 only).
    @Test func infoReportsNativePrecisions() throws {
        let masked = try CLI.runBytes(["info"], environment: Self.environment(masked: true))
        let text = String(decoding: masked.stdout, as: UTF8.self)
        #expect(masked.status == 0)
        #expect(text.contains("precisions  f32 run natively"))
        #expect(text.contains("masked by GSASR_NO_BF16"))
    }

    /// With native bf16: the built-in model at x4 in bf16 differs from f32 (bf16 really ran),
    /// by at most one level here, and `auto` picks bf16 for it (its gate was measured).
    @Test(.enabled(if: Precision.nativeBF16.available, "no native bf16 on this CPU (\(Precision.nativeBF16.isa))"))
    func bf16RunsAndAutoPicksItForTheBuiltInModel() throws {
        let dir = try CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var outputs: [String: [UInt8]] = [:]
        for p in ["f32", "bf16", "auto"] {
            let o = dir.appendingPathComponent("\(p).png")
            let r = try CLI.runBytes(
                ["upscale", "-i", CLI.photo.path, "-o", o.path, "-s", "4", "--precision", p],
                environment: Self.environment(masked: false))
            #expect(r.status == 0, "\(r.stderr)")
            #expect(!r.stderr.contains("precision auto: f32"))
            outputs[p] = try ImageIO.load(o).rgb.pixels.map(ImageIO.quantize)
        }
        let a = outputs["f32"]!, b = outputs["bf16"]!
        let differing = zip(a, b).filter { $0 != $1 }.count
        let maxDiff = zip(a, b).map { abs(Int($0) - Int($1)) }.max() ?? 0
        print("built-in model x4, bf16 vs f32: \(differing) of \(a.count) samples differ, max \(maxDiff) level")
        #expect(differing > 0)
        #expect(maxDiff <= 1)
        #expect(outputs["auto"] == outputs["bf16"])
    }
}

/// bf16 results do not depend on the thread count: the products' row blocks come from the
/// problem size, each block one single-threaded oneDNN call.
@Suite struct PrecisionThreadsCLITests {
    @Test(.enabled(if: Precision.nativeBF16.available, "no native bf16 on this CPU (\(Precision.nativeBF16.isa))"))
    func sameBytesForOneAndTwoThreads() throws {
        let dir = try CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var files: [Data] = []
        for j in ["1", "2"] {
            let o = dir.appendingPathComponent("j\(j).png")
            let r = try CLI.runBytes(
                [
                    "upscale", "-i", CLI.photo.path, "-o", o.path, "-s", "3.7", "--precision", "bf16", "-j", j,
                    "-m", CLI.smallModel.path,
                ],
                environment: PrecisionCLITests.environment(masked: false))
            #expect(r.status == 0, "\(r.stderr)")
            files.append(try Data(contentsOf: o))
        }
        #expect(files[0] == files[1])
    }
}
