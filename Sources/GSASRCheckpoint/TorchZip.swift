import Foundation
import ZIPFoundation

/// Read access to the zip container written by `torch.save`:
/// `ARCHIVE/data.pkl`, `ARCHIVE/data/<key>`, `ARCHIVE/version`, optionally `ARCHIVE/byteorder`.
/// The archive folder name varies, so it is taken from the single `*/data.pkl` entry.
/// Entry sizes are checked against the file size before anything is allocated.
struct TorchZip {
    /// Largest `data.pkl` accepted (state-dict pickles are a few MiB even for big models).
    static let maxPickleBytes = 256 << 20
    /// Largest small metadata entry (`byteorder`, `version`) read.
    static let maxSmallEntryBytes = 64

    let url: URL
    /// "checkpoint <file name>", the prefix of every error message.
    let context: String
    /// The archive folder, including the trailing slash (e.g. "encoder/").
    let prefix: String
    private let archive: Archive
    private let entries: [String: Entry]
    private let fileSize: UInt64

    /// Opens `url`, checking that it is a non-empty zip with exactly one `*/data.pkl` entry.
    init(url: URL) throws {
        self.url = url
        let context = "checkpoint \(url.lastPathComponent)"
        self.context = context
        let attributes: [FileAttributeKey: Any]
        do {
            attributes = try FileManager.default.attributesOfItem(atPath: url.path)
        } catch {
            throw CheckpointError("\(context): cannot open file (\(error.localizedDescription))")
        }
        let size = (attributes[.size] as? NSNumber)?.uint64Value ?? 0
        guard size > 0 else { throw CheckpointError("\(context): empty file") }
        fileSize = size
        do {
            archive = try Archive(url: url, accessMode: .read)
        } catch {
            throw CheckpointError(
                "\(context): not a zip archive or truncated (no readable end-of-central-directory record: \(error))")
        }
        var map: [String: Entry] = [:]
        var pickles: [String] = []
        for entry in archive {
            // One entry per name: with two, which one a reader takes is up to the reader.
            guard map[entry.path] == nil else {
                throw CheckpointError("\(context): zip entry '\(entry.path.prefix(200))' appears twice")
            }
            map[entry.path] = entry
            let parts = entry.path.split(separator: "/", omittingEmptySubsequences: false)
            if parts.count == 2, parts[1] == "data.pkl", !parts[0].isEmpty { pickles.append(entry.path) }
        }
        guard !map.isEmpty else {
            throw CheckpointError("\(context): zip archive has no entries (truncated central directory?)")
        }
        guard pickles.count == 1, let pickle = pickles.first else {
            if pickles.isEmpty {
                throw CheckpointError("\(context): no '<archive>/data.pkl' entry; not a torch.save zip checkpoint")
            }
            throw CheckpointError("\(context): several data.pkl entries (\(pickles.sorted().joined(separator: ", ")))")
        }
        entries = map
        prefix = String(pickle.dropLast("data.pkl".count))
    }

    /// Whether the archive has `<prefix><name>`.
    func has(_ name: String) -> Bool { entries[prefix + name] != nil }

    /// Uncompressed size declared for `<prefix><name>`, or nil when absent.
    func declaredSize(_ name: String) -> UInt64? { entries[prefix + name]?.uncompressedSize }

    /// Reads `<prefix><name>` completely. Rejects entries whose declared size exceeds `maxBytes`
    /// or cannot fit in the file, and entries whose content disagrees with the declared size.
    func read(_ name: String, maxBytes: Int) throws -> [UInt8] {
        try read(name, exactly: nil, maxBytes: maxBytes)
    }

    /// Reads the first `byteCount` bytes of `<prefix><name>`; the entry must hold at least that many.
    func readPrefix(_ name: String, byteCount: Int) throws -> [UInt8] {
        try read(name, exactly: byteCount, maxBytes: byteCount)
    }

    private func read(_ name: String, exactly wanted: Int?, maxBytes: Int) throws -> [UInt8] {
        let path = prefix + name
        guard let entry = entries[path] else { throw CheckpointError("\(context): missing zip entry '\(path)'") }
        guard entry.type == .file else { throw CheckpointError("\(context): zip entry '\(path)' is not a file") }
        // torch.save stores every entry uncompressed. A deflated one is refused before reading:
        // it could inflate to far more than its storage (a zip bomb), and a truncated deflate
        // stream makes ZIPFoundation 0.9 read zero-byte chunks forever (found by the fuzzer).
        guard !entry.isCompressed else {
            throw CheckpointError(
                "\(context): zip entry '\(path)' is compressed; torch.save stores entries uncompressed")
        }
        let declared = entry.uncompressedSize
        let compressed = entry.compressedSize
        // A stored entry holds exactly its bytes, which must fit in the file.
        guard compressed <= fileSize, declared == compressed else {
            throw CheckpointError(
                "\(context): zip entry '\(path)' declares \(declared) bytes, more than the \(fileSize)-byte file can hold (truncated or corrupt)"
            )
        }
        if let wanted {
            guard declared >= UInt64(wanted) else {
                throw CheckpointError(
                    "\(context): zip entry '\(path)' has \(declared) bytes but the tensor storage needs \(wanted)")
            }
        } else {
            guard declared <= UInt64(maxBytes) else {
                throw CheckpointError(
                    "\(context): zip entry '\(path)' is too large (\(declared) bytes, limit \(maxBytes))")
            }
        }
        let keep = wanted ?? Int(declared)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(keep)
        var total: UInt64 = 0
        do {
            _ = try archive.extract(entry, skipCRC32: false) { chunk in
                total &+= UInt64(chunk.count)
                guard total <= declared else {
                    throw CheckpointError("\(context): zip entry '\(path)' holds more data than its declared size")
                }
                let room = keep - bytes.count
                if room > 0 { bytes.append(contentsOf: chunk.prefix(room)) }
            }
        } catch let error as CheckpointError {
            throw error
        } catch {
            throw CheckpointError("\(context): cannot read zip entry '\(path)' (truncated or corrupt: \(error))")
        }
        guard total == declared, bytes.count == keep else {
            throw CheckpointError("\(context): zip entry '\(path)' is truncated (\(total) of \(declared) bytes)")
        }
        return bytes
    }
}
