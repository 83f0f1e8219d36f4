import Foundation
import GSASR
import Testing
import ZIPFoundation

/// The `gsasr` command tested through the built binary (as swift-argument-parser tests its
/// examples): exit status, stderr, and what is (not) written.
enum CLI {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// The binary next to the test bundle (`swift test` builds all products).
    static let binary: URL = {
        var candidates: [URL] = []
        if let arg0 = CommandLine.arguments.first {
            var dir = URL(fileURLWithPath: arg0).deletingLastPathComponent()
            for _ in 0..<4 {
                candidates.append(dir.appendingPathComponent("gsasr"))
                dir = dir.deletingLastPathComponent()
            }
        }
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("gsasr"))
        candidates.append(packageRoot.appendingPathComponent(".build/release/gsasr"))
        candidates.append(packageRoot.appendingPathComponent(".build/debug/gsasr"))
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates.last!
    }()

    static let smallModel = packageRoot.appendingPathComponent("Models/small")
    static let photo = packageRoot.appendingPathComponent("Examples/astronaut_48x48.png")

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func run(_ args: [String]) throws -> Result {
        let r = try runBytes(args)
        return Result(status: r.status, stdout: String(decoding: r.stdout, as: UTF8.self), stderr: r.stderr)
    }

    /// Runs gsasr (or `executable`) with its standard output collected as bytes (an image written
    /// to `-o -`), optionally in another folder and environment.
    static func runBytes(
        _ args: [String], executable: URL = binary, in directory: URL? = nil, environment: [String: String]? = nil
    ) throws -> (status: Int32, stdout: Data, stderr: String) {
        let p = Process()
        p.executableURL = executable
        p.arguments = args
        if let directory { p.currentDirectoryURL = directory }
        if let environment { p.environment = environment }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, o, String(decoding: e, as: UTF8.self))
    }

    static func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("gsasr-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    /// Writes a torch.save-style zip holding `pickle` as data.pkl (and optional storages).
    static func writePth(_ url: URL, pickle: [UInt8], storages: [String: [UInt8]] = [:]) throws {
        let archive = try Archive(url: url, accessMode: .create)
        func add(_ path: String, _ bytes: [UInt8]) throws {
            try archive.addEntry(with: path, type: .file, uncompressedSize: Int64(bytes.count)) { pos, size in
                Data(bytes[Int(pos)..<Int(pos) + size])
            }
        }
        try add("archive/data.pkl", pickle)
        try add("archive/version", Array("3\n".utf8))
        for (k, v) in storages { try add("archive/data/\(k)", v) }
    }

    /// Pickle: GLOBAL module.name, BINUNICODE arg, TUPLE1, REDUCE, STOP.
    static func callGlobal(_ module: String, _ name: String, arg: String) -> [UInt8] {
        var b: [UInt8] = [0x80, 0x02, UInt8(ascii: "c")]
        b += Array("\(module)\n\(name)\n".utf8)
        let a = Array(arg.utf8)
        b += [UInt8(ascii: "X")] + withUnsafeBytes(of: UInt32(a.count).littleEndian, Array.init) + a
        b += [0x85, UInt8(ascii: "R"), UInt8(ascii: ".")]
        return b
    }
}

/// Every bad input gets one line on stderr, a non-zero exit, and no output file.
@Suite(.serialized) struct CLIBadInputTests {
    func expectRejected(
        _ args: [String], output: URL, mentions: String, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let r = try CLI.run(args)
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        print("gsasr \(args.joined(separator: " ")) -> exit \(r.status): \(r.stderr.trimmingCharacters(in: .newlines))")
        #expect(r.status != 0, sourceLocation: sourceLocation)
        #expect(r.status < 128, "crashed with a signal", sourceLocation: sourceLocation)
        #expect(lines.count == 1, "expected one line, got: \(r.stderr)", sourceLocation: sourceLocation)
        #expect(
            r.stderr.lowercased().contains(mentions.lowercased()), "'\(r.stderr)' should mention '\(mentions)'",
            sourceLocation: sourceLocation)
        #expect(
            !FileManager.default.fileExists(atPath: output.path), "an output file was written",
            sourceLocation: sourceLocation)
        // No temporary files left beside the output either.
        let left = try FileManager.default.contentsOfDirectory(atPath: output.deletingLastPathComponent().path)
        #expect(
            left.allSatisfy { !$0.hasPrefix(".") && $0 != output.lastPathComponent }, "left behind: \(left)",
            sourceLocation: sourceLocation)
    }

    @Test(arguments: [
        ("0", "scale"), ("-1", "scale"), ("nan", "scale"), ("inf", "scale"), ("1e9", "limit"), ("1e300", "limit"),
        ("abc", "scale"),
        ("0.5", "scale"), ("0x10", "scale '0x10' is not a decimal number"), ("2abc", "not a decimal number"),
        ("infinity", "not a decimal number"),
    ])
    func badScale(scale: String, mentions: String) throws {
        let d = try CLI.tempDir()
        let out = d.appendingPathComponent("out.png")
        try expectRejected(
            ["-i", CLI.photo.path, "-o", out.path, "-s", scale, "-m", CLI.smallModel.path], output: out,
            mentions: mentions)
    }

    @Test func overMemoryLimit() throws {
        let d = try CLI.tempDir()
        let out = d.appendingPathComponent("out.png")
        try expectRejected(
            ["-i", CLI.photo.path, "-o", out.path, "-m", CLI.smallModel.path, "--max-memory-gib", "0.01"], output: out,
            mentions: "working memory")
    }

    /// A checkpoint whose zip entry is deflated (here the fuzzer's truncated one, which once
    /// hung the reader) is refused at once, naming the entry.
    @Test func compressedCheckpointEntryIsRefused() throws {
        let d = try CLI.tempDir()
        let bad = CLI.packageRoot.appendingPathComponent("Tests/CheckpointTests/Fixtures/fuzz_truncated_deflate.pth")
        let out = d.appendingPathComponent("out.png")
        try expectRejected(
            ["-i", CLI.photo.path, "-o", out.path, "--encoder", bad.path, "--decoder", bad.path], output: out,
            mentions: "is compressed; torch.save stores entries uncompressed")
    }

    /// A 100 MB config.json in a model folder is refused from its size, before it is read.
    @Test func hugeConfigIsRefusedFromItsSize() throws {
        let d = try CLI.tempDir()
        let model = d.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
        for f in ["encoder.pth", "decoder.pth"] {
            try FileManager.default.copyItem(
                at: CLI.smallModel.appendingPathComponent(f), to: model.appendingPathComponent(f))
        }
        let config = model.appendingPathComponent("config.json")
        FileManager.default.createFile(atPath: config.path, contents: Data("[".utf8))
        let h = try FileHandle(forWritingTo: config)
        try h.truncate(atOffset: 100_000_000)  // sparse: 100 MB without writing them
        try h.close()
        let out = d.appendingPathComponent("out.png")
        let t0 = Date()
        try expectRejected(
            ["-i", CLI.photo.path, "-o", out.path, "-m", model.path], output: out,
            mentions: "config.json is 100000000 bytes, over the limit of 1048576 bytes")
        print("100 MB config.json refused in \(Date().timeIntervalSince(t0)) s")
    }

    @Test func missingInput() throws {
        let d = try CLI.tempDir()
        let out = d.appendingPathComponent("out.png")
        try expectRejected(
            ["-i", d.appendingPathComponent("nope.png").path, "-o", out.path, "-m", CLI.smallModel.path], output: out,
            mentions: "nope.png")
    }

    @Test func truncatedPNG() throws {
        let d = try CLI.tempDir()
        let bytes = try Data(contentsOf: CLI.photo)
        let bad = d.appendingPathComponent("truncated.png")
        try bytes.prefix(bytes.count / 2).write(to: bad)
        let out = d.appendingPathComponent("out.png")
        try expectRejected(
            ["-i", bad.path, "-o", out.path, "-m", CLI.smallModel.path], output: out, mentions: "truncated.png")
    }

    @Test func tinyImage() throws {
        let d = try CLI.tempDir()
        let tiny = d.appendingPathComponent("one.png")
        try ImageIO.writePNG(Image(width: 1, height: 1, pixels: [0.5, 0.5, 0.5]), to: tiny)
        let out = d.appendingPathComponent("out.png")
        try expectRejected(
            ["-i", tiny.path, "-o", out.path, "-m", CLI.smallModel.path], output: out, mentions: "too small")
    }

    @Test func refusesToOverwriteInput() throws {
        let d = try CLI.tempDir()
        let input = d.appendingPathComponent("in.png")
        try FileManager.default.copyItem(at: CLI.photo, to: input)
        let before = try Data(contentsOf: input)
        let r = try CLI.run(["-i", input.path, "-o", input.path, "-m", CLI.smallModel.path])
        #expect(r.status != 0)
        #expect(r.stderr.contains("input"))
        #expect(try Data(contentsOf: input) == before)
    }

    @Test func truncatedCheckpoint() throws {
        let d = try CLI.tempDir()
        let full = try Data(contentsOf: CLI.smallModel.appendingPathComponent("decoder.pth"))
        let dec = d.appendingPathComponent("decoder.pth")
        try full.prefix(full.count * 2 / 3).write(to: dec)
        let out = d.appendingPathComponent("out.png")
        try expectRejected(
            [
                "-i", CLI.photo.path, "-o", out.path, "--encoder",
                CLI.smallModel.appendingPathComponent("encoder.pth").path, "--decoder", dec.path,
            ],
            output: out, mentions: "decoder.pth")
    }

    @Test(arguments: [("os", "system"), ("builtins", "eval"), ("posix", "system")])
    func maliciousPickleGlobal(module: String, name: String) throws {
        let d = try CLI.tempDir()
        let marker = d.appendingPathComponent("pwned")
        let dec = d.appendingPathComponent("decoder.pth")
        let payload = name == "eval" ? "open('\(marker.path)','w')" : "touch \(marker.path)"
        try CLI.writePth(dec, pickle: CLI.callGlobal(module, name, arg: payload))
        let out = d.appendingPathComponent("out.png")
        try expectRejected(
            [
                "-i", CLI.photo.path, "-o", out.path, "--encoder",
                CLI.smallModel.appendingPathComponent("encoder.pth").path, "--decoder", dec.path,
            ],
            output: out, mentions: "\(module).\(name)")
        #expect(!FileManager.default.fileExists(atPath: marker.path), "the payload ran")
    }

    /// A state dict with a key removed, and one with a wrong shape (written as safetensors).
    @Test(arguments: ["missing", "shape", "unexpected"])
    func brokenStateDict(kind: String) throws {
        let d = try CLI.tempDir()
        let sd = try PthReader.load(CLI.smallModel.appendingPathComponent("decoder.pth"))
        var broken = StateDict()
        let victim = "gs_selfattn_blocks.0.blocks.1.norm2.weight"
        for k in sd.keys {
            var t = sd[k]!
            if k == victim {
                if kind == "missing" { continue }
                if kind == "shape" {
                    t = LoadedTensor(shape: [t.count - 1], dtype: .float32, floats: Array(t.floats.dropLast()))
                }
            }
            broken.insert(k, t)
        }
        if kind == "unexpected" {
            broken.insert("extra.weight", LoadedTensor(shape: [1], dtype: .float32, floats: [0]))
        }
        let dec = d.appendingPathComponent("decoder.safetensors")
        try Safetensors.save(broken, to: dec)
        let out = d.appendingPathComponent("out.png")
        try expectRejected(
            [
                "-i", CLI.photo.path, "-o", out.path, "--encoder",
                CLI.smallModel.appendingPathComponent("encoder.pth").path, "--decoder", dec.path,
            ],
            output: out, mentions: kind == "unexpected" ? "extra.weight" : victim)
    }
}

@Suite struct CLIUpscaleTests {
    /// The README's main command, end to end: a PNG of floor(s·W) × floor(s·H) appears.
    @Test func upscalesBundledPhoto() throws {
        let d = try CLI.tempDir()
        let out = d.appendingPathComponent("astronaut_x3.5.png")
        let r = try CLI.run(["-i", CLI.photo.path, "-o", out.path, "-s", "3.5", "-m", CLI.smallModel.path])
        #expect(r.status == 0, "\(r.stderr)")
        let img = try ImageIO.load(out)
        #expect(img.rgb.width == 168 && img.rgb.height == 168)
        #expect(r.stderr.contains("rasterizer") && r.stderr.contains("100%"))
    }

    /// RGBA input: the colour goes through the model, alpha is resized bicubically and kept.
    @Test func keepsAlpha() throws {
        let d = try CLI.tempDir()
        let src = try ImageIO.load(CLI.photo).rgb
        var alpha = [Float](repeating: 1, count: src.width * src.height)
        for y in 0..<src.height { for x in 0..<src.width where x < src.width / 2 { alpha[y * src.width + x] = 0.25 } }
        let input = d.appendingPathComponent("rgba.png")
        try ImageIO.writePNG(src, alpha: alpha, to: input)
        let out = d.appendingPathComponent("rgba_x2.png")
        let r = try CLI.run(["-i", input.path, "-o", out.path, "-s", "2", "-m", CLI.smallModel.path, "-q"])
        #expect(r.status == 0, "\(r.stderr)")
        let img = try ImageIO.load(out)
        let a = try #require(img.alpha)
        #expect(img.rgb.width == 96)
        #expect(abs(a[10 * 96 + 5] - 0.25) < 0.01 && abs(a[10 * 96 + 90] - 1) < 0.01)
    }

    /// `gsasr convert` writes safetensors; a model loaded from them gives the same PNG.
    @Test func convertToSafetensorsGivesTheSameImage() throws {
        let d = try CLI.tempDir()
        let conv = d.appendingPathComponent("small-st")
        let c = try CLI.run(["convert", "-m", CLI.smallModel.path, "-o", conv.path])
        #expect(c.status == 0, "\(c.stderr)")
        #expect(FileManager.default.fileExists(atPath: conv.appendingPathComponent("decoder.safetensors").path))
        let a = d.appendingPathComponent("a.png"), b = d.appendingPathComponent("b.png")
        let ra = try CLI.run(["-i", CLI.photo.path, "-o", a.path, "-s", "2.5", "-m", CLI.smallModel.path, "-q"])
        let rb = try CLI.run(["-i", CLI.photo.path, "-o", b.path, "-s", "2.5", "-m", conv.path, "-q"])
        #expect(ra.status == 0 && rb.status == 0)
        #expect(try Data(contentsOf: a) == Data(contentsOf: b))
    }

    /// Folder in, folder out: every image is processed with one model load; a broken file is
    /// reported and the others still come out; the exit status says something failed.
    @Test func folderMode() throws {
        let d = try CLI.tempDir()
        let inDir = d.appendingPathComponent("in"), outDir = d.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: inDir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: CLI.photo, to: inDir.appendingPathComponent("a.png"))
        try FileManager.default.copyItem(
            at: CLI.packageRoot.appendingPathComponent("Examples/coffee_37x50.png"),
            to: inDir.appendingPathComponent("b.png"))
        try Data("not an image".utf8).write(to: inDir.appendingPathComponent("c.jpg"))
        try Data("ignored".utf8).write(to: inDir.appendingPathComponent("notes.txt"))
        let r = try CLI.run(["-i", inDir.path, "-o", outDir.path, "-s", "2", "-m", CLI.smallModel.path, "-q"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("gsasr: error: c.jpg:"), "\(r.stderr)")
        #expect(r.stderr.contains("gsasr: skipping notes.txt:"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").last == "2 succeeded, 1 failed, 1 skipped", "\(r.stderr)")
        let out = try FileManager.default.contentsOfDirectory(atPath: outDir.path).sorted()
        #expect(out == ["a.png", "b.png"])
        #expect(try ImageIO.load(outDir.appendingPathComponent("b.png")).rgb.width == 100)
    }
}
