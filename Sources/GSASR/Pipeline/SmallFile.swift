import Foundation

/// Reading a small file that users or downloads provide (a model's `config.json`, a YAML
/// training config) without trusting it: it must be a regular file, its size is checked before
/// a byte is read, and the read stops at the cap even if the file grows meanwhile.
public enum SmallFile {
    /// The bytes of the regular file at `path`, at most `maxBytes`. `label` names the file in
    /// the one-line error (a ``ModelLoadError``).
    public static func read(_ path: String, maxBytes: Int, label: String) throws -> Data {
        let attributes: [FileAttributeKey: Any]
        do { attributes = try FileManager.default.attributesOfItem(atPath: path) } catch {
            throw ModelLoadError("\(label): cannot read '\(path)' (\(error.localizedDescription))")
        }
        guard attributes[.type] as? FileAttributeType == .typeRegular else {
            throw ModelLoadError("\(label): '\(path)' is not a regular file")
        }
        let size = (attributes[.size] as? NSNumber)?.intValue ?? 0
        guard size <= maxBytes else {
            throw ModelLoadError("\(label) is \(size) bytes, over the limit of \(maxBytes) bytes")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ModelLoadError("\(label): cannot open '\(path)'")
        }
        defer { try? handle.close() }
        let data = (try? handle.read(upToCount: maxBytes + 1)) ?? Data()
        guard data.count <= maxBytes else { throw ModelLoadError("\(label) is over the limit of \(maxBytes) bytes") }
        return data
    }
}
