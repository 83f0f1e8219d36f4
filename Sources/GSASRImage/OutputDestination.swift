import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where an output image goes, decided from what its path names when the writer opens it.
///
/// * A path that does not exist, or a regular file: written **atomically**, through a hidden
///   temporary file in the same folder renamed over it (a failed run leaves nothing behind and
///   an existing file untouched).
/// * A symbolic link (to any of these): **followed**. The write goes to the link's target,
///   atomically in the target's folder when the target is a regular file or does not exist, so
///   the link stays a link and now names the new file. (Replacing the link itself would lose it
///   and leave its target stale.)
/// * A FIFO or a character device (`/dev/stdout`, a pipe, `/dev/null`): written **directly**,
///   streamed, with no temporary and no rename, so a reader at the other end gets the file and
///   the node itself is never replaced. A failure mid-stream leaves the reader a truncated file
///   and the command a non-zero exit; there is nothing to clean up.
/// * `-`: standard output, streamed (``standardOutput``).
/// * Anything else (a folder, a block device, a socket) is refused, naming what it is.
public enum OutputDestination: Equatable, Sendable {
    /// Written atomically at this path (a symlink already followed).
    case file(String)
    /// Opened and written directly: a FIFO or character device at this path.
    case stream(String)
    /// Standard output.
    case standardOutput

    /// Whether bytes are streamed (no temporary file, no rename).
    public var isStream: Bool {
        if case .file = self { return false }
        return true
    }

    /// How it is named in messages.
    public var displayName: String {
        switch self {
        case .file(let p), .stream(let p): return p
        case .standardOutput: return "standard output"
        }
    }

    /// The destination of `path` now (`-` is standard output). Follows up to 32 symbolic links.
    public static func resolve(_ path: String) throws -> OutputDestination {
        if path == "-" { return .standardOutput }
        var current = path
        for _ in 0..<32 {
            var st = stat()
            guard lstat(current, &st) == 0 else {
                let e = errno
                if e == ENOENT { return .file(current) }
                throw ImageIOError("cannot write \(current): \(String(cString: strerror(e)))")
            }
            switch st.st_mode & S_IFMT {
            case S_IFREG: return .file(current)
            case S_IFIFO, S_IFCHR: return .stream(current)
            case S_IFLNK:
                var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let n = readlink(current, &buffer, buffer.count - 1)
                guard n >= 0 else {
                    throw ImageIOError("cannot write \(current): \(String(cString: strerror(errno)))")
                }
                let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                current =
                    target.hasPrefix("/")
                    ? target
                    : URL(fileURLWithPath: current).deletingLastPathComponent().appendingPathComponent(target).path
            case S_IFDIR: throw ImageIOError("cannot write \(path): it is a folder")
            case S_IFBLK:
                throw ImageIOError(
                    "cannot write \(path): it is a block device (outputs are regular files, FIFOs, character devices or -)"
                )
            case S_IFSOCK:
                throw ImageIOError(
                    "cannot write \(path): it is a socket (outputs are regular files, FIFOs, character devices or -)")
            default:
                throw ImageIOError("cannot write \(path): it is not a regular file, FIFO or character device")
            }
        }
        throw ImageIOError("cannot write \(path): too many levels of symbolic links")
    }
}
