import Foundation
import GSASR
import Testing

/// `gsasr` away from its source tree: the model is built into the binary, names resolve through
/// the model search path, and progress on a pipe stays one line per event.
@Suite struct InstallCLITests {
    /// Runs `binary` in `directory` with `environment`; stdout and stderr apart.
    static func run(
        _ binary: URL, _ args: [String], in directory: URL, environment: [String: String]
    ) throws -> (status: Int32, stdout: String, stderr: String) {
        let r = try CLI.runBytes(args, executable: binary, in: directory, environment: environment)
        return (r.status, String(decoding: r.stdout, as: UTF8.self), r.stderr)
    }

    static func scratch(_ tag: String) throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("gsasr-\(tag)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    /// The environment of the tests, without the variables that point gsasr at a model.
    static var cleanEnvironment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        for k in ["GSASR_DEFAULT_MODEL", "GSASR_MODELS", "XDG_DATA_HOME"] { env.removeValue(forKey: k) }
        return env
    }

    @Test func theBinaryAloneUpscalesWithItsBuiltInModel() throws {
        let dir = try Self.scratch("install")
        defer { try? FileManager.default.removeItem(at: dir) }
        let copy = dir.appendingPathComponent("bin/gsasr")
        try FileManager.default.createDirectory(
            at: copy.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: CLI.binary, to: copy)
        var env = Self.cleanEnvironment
        env["HOME"] = dir.path  // no per-user models either
        let a = dir.appendingPathComponent("away.png"), b = dir.appendingPathComponent("tree.png")
        // The copy, run from /, with nothing beside it.
        let r1 = try Self.run(
            copy, ["-i", CLI.photo.path, "-o", a.path, "-s", "3", "-q"], in: URL(fileURLWithPath: "/"), environment: env)
        #expect(r1.status == 0, "\(r1.stderr)")
        // The built binary in the clone, as `swift run` runs it.
        let r2 = try Self.run(
            CLI.binary, ["-i", CLI.photo.path, "-o", b.path, "-s", "3", "-q"], in: CLI.packageRoot, environment: env)
        #expect(r2.status == 0, "\(r2.stderr)")
        let da = try Data(contentsOf: a), db = try Data(contentsOf: b)
        #expect(da == db && !da.isEmpty)
        // And the built-in model is the one in Models/default, bit for bit.
        let c = dir.appendingPathComponent("folder.png")
        let r3 = try Self.run(
            copy, ["-i", CLI.photo.path, "-o", c.path, "-s", "3", "-q", "-m", CLI.packageRoot.appendingPathComponent("Models/default").path],
            in: URL(fileURLWithPath: "/"), environment: env)
        #expect(r3.status == 0, "\(r3.stderr)")
        #expect(try Data(contentsOf: c) == da)
        print("install anywhere: the copied binary's output equals the in-tree run's (\(da.count) bytes)")
    }

    @Test func namesResolveThroughTheSearchPath() throws {
        let dir = try Self.scratch("models")
        defer { try? FileManager.default.removeItem(at: dir) }
        let shelf = dir.appendingPathComponent("shelf"), home = dir.appendingPathComponent("home")
        let user = home.appendingPathComponent(".local/share/gsasr/models")
        try FileManager.default.createDirectory(at: shelf, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: user, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: CLI.smallModel, to: shelf.appendingPathComponent("tiny"))
        try FileManager.default.copyItem(at: CLI.smallModel, to: user.appendingPathComponent("mine"))
        var env = Self.cleanEnvironment
        env["HOME"] = home.path
        env["GSASR_MODELS"] = shelf.path
        let root = URL(fileURLWithPath: "/")
        let list = try Self.run(CLI.binary, ["models"], in: root, environment: env)
        print(list.stdout)
        #expect(list.status == 0)
        #expect(list.stdout.contains("default") && list.stdout.contains("built into gsasr"))
        #expect(list.stdout.contains("tiny") && list.stdout.contains(shelf.appendingPathComponent("tiny").path))
        #expect(list.stdout.contains("mine") && list.stdout.contains("EDSRNOUP + Fea2GS"))
        let out = dir.appendingPathComponent("o.png")
        for name in ["tiny", "mine", "default"] {
            let r = try Self.run(
                CLI.binary, ["-i", CLI.photo.path, "-o", out.path, "-s", "2", "-q", "-m", name], in: root, environment: env)
            #expect(r.status == 0, "\(name): \(r.stderr)")
        }
        let bad = try Self.run(
            CLI.binary, ["-i", CLI.photo.path, "-o", out.path, "-s", "2", "-m", "nosuch"], in: root, environment: env)
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("model 'nosuch' is neither a folder nor a model name") && bad.stderr.contains(shelf.path))
        #expect(bad.stderr.split(separator: "\n").count == 1)
    }

    /// Into a pipe: a few whole lines, no carriage return, however long the work.
    @Test func progressOnAPipeIsOneLinePerEvent() throws {
        let dir = try Self.scratch("progress")
        defer { try? FileManager.default.removeItem(at: dir) }
        var env = Self.cleanEnvironment
        env.removeValue(forKey: "GSASR_PROGRESS")
        for (tag, extra) in [("untiled", [String]()), ("tiled", ["-t", "12"])] {
            let out = dir.appendingPathComponent("\(tag).png")
            let r = try Self.run(
                CLI.binary, ["-i", CLI.photo.path, "-o", out.path, "-s", "8"] + extra, in: CLI.packageRoot,
                environment: env)
            print("[\(tag)] stderr:\n\(r.stderr)")
            #expect(r.status == 0)
            #expect(!r.stderr.contains("\r"))
            let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            #expect(lines.count >= 2 && lines.count <= 12, "\(lines.count) lines")
            #expect(r.stderr.hasSuffix("\n"))
        }
    }
}
