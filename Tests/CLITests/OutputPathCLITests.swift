import Foundation
import GSASR
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Outputs that are not regular files (issue 29): `-o -` and FIFOs stream the file, a device
/// node is written to and never replaced, a symlink is written through to its target, and
/// what cannot hold an image is refused naming what it is.
@Suite(.serialized) struct OutputPathCLITests {
    /// The upscale's bytes as written to a regular file (the reference).
    static func reference(_ d: URL, _ extra: [String] = []) throws -> Data {
        let out = d.appendingPathComponent("reference.png")
        let r = try CLI.run(["-i", CLI.photo.path, "-o", out.path, "-s", "2", "-m", CLI.smallModel.path, "-q"] + extra)
        #expect(r.status == 0, "\(r.stderr)")
        return try Data(contentsOf: out)
    }

    /// Linux's `makedev` (a C macro, not imported): major and minor into a `dev_t`.
    static func dev(_ major: UInt64, _ minor: UInt64) -> dev_t {
        dev_t(((major & 0xFFFF_F000) << 32) | ((major & 0xFFF) << 8) | ((minor & 0xFFFF_FF00) << 12) | (minor & 0xFF))
    }

    @Test func dashIsStandardOutput() throws {
        let d = try CLI.tempDir()
        let ref = try Self.reference(d)
        let r = try CLI.runBytes(["-i", CLI.photo.path, "-o", "-", "-s", "2", "-m", CLI.smallModel.path, "-q"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == ref, "stdout has \(r.stdout.count) bytes, the file \(ref.count)")
        #expect(!FileManager.default.fileExists(atPath: d.appendingPathComponent("-").path))
        // -f picks the format (no extension to go by); JPEG bytes start with FF D8.
        let j = try CLI.runBytes(["-i", CLI.photo.path, "-o", "-", "-f", "jpg", "-s", "2", "-m", CLI.smallModel.path])
        #expect(j.status == 0 && j.stdout.prefix(2) == Data([0xFF, 0xD8]))
    }

    @Test func fifoIsStreamedToItsReader() throws {
        let d = try CLI.tempDir()
        let ref = try Self.reference(d)
        let fifo = d.appendingPathComponent("pipe")
        #expect(mkfifo(fifo.path, 0o600) == 0)
        // Another process reads the FIFO while gsasr writes it.
        let reader = Process()
        reader.executableURL = URL(fileURLWithPath: "/bin/cat")
        reader.arguments = [fifo.path]
        let got = Pipe()
        reader.standardOutput = got
        try reader.run()
        let r = try CLI.run(["-i", CLI.photo.path, "-o", fifo.path, "-s", "2", "-m", CLI.smallModel.path, "-q"])
        let bytes = got.fileHandleForReading.readDataToEndOfFile()
        reader.waitUntilExit()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(bytes == ref, "the reader got \(bytes.count) bytes, the file has \(ref.count)")
        var st = stat()
        #expect(lstat(fifo.path, &st) == 0 && st.st_mode & S_IFMT == S_IFIFO, "the FIFO was replaced")
        #expect(try FileManager.default.contentsOfDirectory(atPath: d.path).allSatisfy { !$0.hasPrefix(".") })
    }

    /// A copy of /dev/null and of /dev/full (mknod needs root; skipped otherwise): written to,
    /// never replaced; the full one fails naming the system's reason.
    @Test(.enabled(if: getuid() == 0, "mknod needs root"))
    func deviceNodesAreWrittenNotReplaced() throws {
        let d = try CLI.tempDir()
        let null = d.appendingPathComponent("null"), full = d.appendingPathComponent("full")
        #expect(mknod(null.path, S_IFCHR | 0o666, Self.dev(1, 3)) == 0)
        #expect(mknod(full.path, S_IFCHR | 0o666, Self.dev(1, 7)) == 0)
        let a = try CLI.run(["-i", CLI.photo.path, "-o", null.path, "-s", "2", "-m", CLI.smallModel.path, "-q"])
        #expect(a.status == 0, "\(a.stderr)")
        let b = try CLI.run(["-i", CLI.photo.path, "-o", full.path, "-s", "2", "-m", CLI.smallModel.path, "-q"])
        print("-o (copy of /dev/full) -> exit \(b.status): \(b.stderr.trimmingCharacters(in: .newlines))")
        #expect(b.status != 0 && b.stderr.contains("No space left on device"))
        #expect(b.stderr.split(separator: "\n").count == 1)
        for node in [null, full] {
            var st = stat()
            #expect(
                lstat(node.path, &st) == 0 && st.st_mode & S_IFMT == S_IFCHR, "\(node.lastPathComponent) was replaced")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: d.path).allSatisfy { !$0.hasPrefix(".") })
    }

    /// A symlink stays a link; its target gets the image (atomically, in the target's folder).
    @Test func symlinkIsWrittenThrough() throws {
        let d = try CLI.tempDir()
        let ref = try Self.reference(d)
        let sub = d.appendingPathComponent("elsewhere")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        let target = sub.appendingPathComponent("target.png")
        try Data("old".utf8).write(to: target)
        let link = d.appendingPathComponent("link.png")
        try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: "elsewhere/target.png")
        let r = try CLI.run(["-i", CLI.photo.path, "-o", link.path, "-s", "2", "-m", CLI.smallModel.path, "-q"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link.path) == "elsewhere/target.png")
        #expect(try Data(contentsOf: target) == ref)
        // A dangling link: its target is created.
        let dangling = d.appendingPathComponent("dangling.png")
        try FileManager.default.createSymbolicLink(atPath: dangling.path, withDestinationPath: "elsewhere/new.png")
        let n = try CLI.run(["-i", CLI.photo.path, "-o", dangling.path, "-s", "2", "-m", CLI.smallModel.path, "-q"])
        let created = try Data(contentsOf: sub.appendingPathComponent("new.png"))
        #expect(n.status == 0 && created == ref)
    }

    /// A folder or a socket cannot hold an image: one line naming what it is, nothing written.
    @Test func foldersAndSocketsAreRefused() throws {
        let d = try CLI.tempDir()
        let r = try CLI.run(["-i", CLI.photo.path, "-o", d.path, "-s", "2", "-m", CLI.smallModel.path])
        #expect(r.status != 0 && r.stderr.contains("it is a folder"), "\(r.stderr)")
        let sock = d.appendingPathComponent("s.png")
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { buf in
            for (i, b) in sock.path.utf8.enumerated() where i < buf.count - 1 { buf[i] = b }
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        defer { close(fd) }
        #expect(bound == 0)
        let s = try CLI.run(["-i", CLI.photo.path, "-o", sock.path, "-s", "2", "-m", CLI.smallModel.path])
        print("-o socket -> \(s.stderr.trimmingCharacters(in: .newlines))")
        #expect(s.status != 0 && s.stderr.contains("it is a socket"))
        #expect(s.stderr.split(separator: "\n").count == 1)
    }
}
