import Foundation

/// Reader and writer for the safetensors format: an 8-byte little-endian header length, a JSON
/// header `{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`,
/// then the raw little-endian tensor bytes (offsets are relative to the end of the header).
public enum Safetensors {
    /// Largest JSON header accepted.
    static let maxHeaderBytes = 100 << 20

    static let dtypes: [String: LoadedTensor.DType] = [
        "F32": .float32, "F16": .float16, "BF16": .bfloat16, "F64": .float64, "I64": .int64,
        "I32": .int32, "I16": .int16, "I8": .int8, "U8": .uint8, "BOOL": .bool,
    ]

    /// Loads every tensor of a safetensors file, in header order.
    /// - Throws: `CheckpointError` for truncated files, malformed headers, unknown dtypes, and
    ///   offsets outside the data section or inconsistent with dtype and shape.
    public static func load(_ url: URL) throws -> StateDict {
        try loadWithMetadata(url).tensors
    }

    /// Loads every tensor and the string-to-string `__metadata__` object (empty when absent;
    /// a non-string value is an error).
    public static func loadWithMetadata(_ url: URL) throws -> (tensors: StateDict, metadata: [String: String]) {
        let context = "safetensors \(url.lastPathComponent)"
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            throw CheckpointError("\(context): cannot read file (\(error.localizedDescription))")
        }
        return try parse(data, context: context)
    }

    /// Reads a safetensors file held in memory (`name` labels errors).
    public static func load(data: Data, name: String) throws -> StateDict {
        try parse(data, context: "safetensors \(name)").tensors
    }

    static func parse(_ data: Data, context: String) throws -> (tensors: StateDict, metadata: [String: String]) {
        guard data.count >= 8 else {
            throw CheckpointError("\(context): truncated (file shorter than the 8-byte header length)")
        }
        return try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> (StateDict, [String: String]) in
            let headerLength = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
            guard headerLength <= UInt64(maxHeaderBytes) else {
                throw CheckpointError(
                    "\(context): header length \(headerLength) exceeds the \(maxHeaderBytes)-byte limit")
            }
            let headerEnd = 8 + Int(headerLength)
            guard headerEnd <= raw.count else {
                throw CheckpointError("\(context): truncated (header of \(headerLength) bytes, file has \(raw.count))")
            }
            let header: OrderedJSON
            do {
                header = try OrderedJSON.parse(Array(raw[8..<headerEnd]))
            } catch let e as CheckpointError {
                throw CheckpointError("\(context): header: \(e.description)")
            }
            guard case .object(let entries) = header else {
                throw CheckpointError("\(context): header is not a JSON object")
            }
            let body = UnsafeRawBufferPointer(rebasing: raw[headerEnd...])
            var result = StateDict()
            var metadata: [String: String] = [:]
            var spans: [(begin: Int, end: Int, name: String)] = []
            var names = Set<String>()
            for (name, info) in entries {
                if name == "__metadata__" {
                    guard case .object(let pairs) = info else {
                        throw CheckpointError("\(context): __metadata__ is not a JSON object")
                    }
                    for (k, v) in pairs {
                        guard case .string(let sv) = v else {
                            throw CheckpointError("\(context): __metadata__ value '\(k)' is not a string")
                        }
                        metadata[k] = sv
                    }
                    continue
                }
                guard names.insert(name).inserted else {
                    throw CheckpointError("\(context): tensor '\(name)' appears twice in the header")
                }
                let (t, begin, end) = try tensor(name, info, body: body, context: context)
                result.insert(name, t)
                spans.append((begin, end, name))
            }
            try checkLayout(spans, dataBytes: body.count, context: context)
            return (result, metadata)
        }
    }

    /// The data section must be exactly the tensors' byte ranges laid end to end, as the
    /// reference `safetensors` library requires (its `InvalidOffset` and
    /// `MetadataIncompleteBuffer` errors): sorted by offset, each tensor begins where the previous
    /// one ends (no overlap, no gap), the first at 0, and the last ends at the end of the file.
    /// Overlapping tensors would alias each other's bytes; gaps and trailing bytes are data that
    /// no tensor accounts for.
    static func checkLayout(_ spans: [(begin: Int, end: Int, name: String)], dataBytes: Int, context: String) throws {
        let sorted = spans.sorted { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var expected = 0
        for s in sorted {
            guard s.begin == expected else {
                throw CheckpointError(
                    s.begin < expected
                        ? "\(context): tensor '\(s.name)' data_offsets [\(s.begin), \(s.end)] overlap the previous tensor's bytes (which end at \(expected))"
                        : "\(context): tensor '\(s.name)' data_offsets [\(s.begin), \(s.end)] leave a gap after byte \(expected)")
            }
            expected = s.end
        }
        guard expected == dataBytes else {
            throw CheckpointError(
                "\(context): the data section has \(dataBytes - expected) bytes after the last tensor (at \(expected) of \(dataBytes))")
        }
    }

    private static func tensor(
        _ name: String, _ info: OrderedJSON, body: UnsafeRawBufferPointer, context: String
    ) throws -> (LoadedTensor, Int, Int) {
        let where_ = "\(context): tensor '\(name)'"
        guard case .string(let dtypeName)? = info["dtype"] else { throw CheckpointError("\(where_) has no dtype") }
        guard let dtype = dtypes[dtypeName] else {
            throw CheckpointError("\(where_) has unsupported dtype \(dtypeName)")
        }
        guard case .array(let shapeJSON)? = info["shape"] else { throw CheckpointError("\(where_) has no shape") }
        var shape: [Int] = []
        for d in shapeJSON {
            guard case .int(let v) = d, v >= 0, let n = Int(exactly: v) else {
                throw CheckpointError("\(where_) has an invalid shape entry")
            }
            shape.append(n)
        }
        guard case .array(let offsets)? = info["data_offsets"], offsets.count == 2,
            case .int(let b64) = offsets[0], case .int(let e64) = offsets[1],
            let begin = Int(exactly: b64), let end = Int(exactly: e64)
        else { throw CheckpointError("\(where_) has malformed data_offsets") }
        guard begin >= 0, begin <= end, end <= body.count else {
            throw CheckpointError(
                "\(where_) data_offsets [\(begin), \(end)] are outside the \(body.count)-byte data section")
        }
        let elementSize = ElementCodec.size(of: dtype)
        guard let count = ElementCodec.checkedCount(shape), let bytes = ElementCodec.checkedBytes(count, elementSize),
            bytes == end - begin
        else {
            throw CheckpointError(
                "\(where_): shape \(shape) of \(dtypeName) does not match data_offsets [\(begin), \(end)]")
        }
        var floats: [Float] = []
        floats.reserveCapacity(count)
        var ints: [Int64] = []
        let isInt = !dtype.isFloatingPoint
        if isInt { ints.reserveCapacity(count) }
        try ElementCodec.append(
            from: UnsafeRawBufferPointer(rebasing: body[begin..<end]), dtype: dtype, start: 0, step: 1, count: count,
            floats: &floats, ints: &ints, context: where_)
        return (LoadedTensor(shape: shape, dtype: dtype, floats: floats, ints: isInt ? ints : nil), begin, end)
    }

    /// Writes `dict` in StateDict order: tensors with `ints` as I64 (exact), all others as F32.
    /// The file is written to a temporary sibling and then renamed over `url`.
    public static func save(_ dict: StateDict, metadata: [String: String] = [:], to url: URL) throws {
        try AtomicWrite.write(data(dict, metadata: metadata, context: "safetensors \(url.lastPathComponent)"), to: url,
            context: "safetensors \(url.lastPathComponent)")
    }

    /// The bytes of a safetensors file (metadata keys sorted, so the output is deterministic).
    public static func data(_ dict: StateDict, metadata: [String: String] = [:], context: String = "safetensors")
        throws -> Data
    {
        var header = "{"
        if !metadata.isEmpty {
            header += "\"__metadata__\":{"
            header += metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }.joined(separator: ",")
            header += "}"
            if dict.count > 0 { header += "," }
        }
        var body: [UInt8] = []
        // Reserve the whole data section once (per-tensor exact reservations would copy quadratically).
        var total = 0
        for key in dict.keys {
            guard let t = dict[key] else { continue }
            total &+= t.ints.map { 8 &* $0.count } ?? 4 &* t.floats.count
        }
        body.reserveCapacity(total)
        for (i, key) in dict.keys.enumerated() {
            guard let t = dict[key] else { continue }
            guard let count = ElementCodec.checkedCount(t.shape) else {
                throw CheckpointError("\(context): tensor '\(key)' has invalid shape \(t.shape)")
            }
            let begin = body.count
            let dtypeName: String
            if let ints = t.ints {
                guard ints.count == count else {
                    throw CheckpointError("\(context): tensor '\(key)' has \(ints.count) ints for shape \(t.shape)")
                }
                dtypeName = "I64"
                appendLittleEndian(ints, to: &body)
            } else {
                guard t.floats.count == count else {
                    throw CheckpointError(
                        "\(context): tensor '\(key)' has \(t.floats.count) values for shape \(t.shape)")
                }
                dtypeName = "F32"
                appendLittleEndian(t.floats.map(\.bitPattern), to: &body)
            }
            if i > 0 { header += "," }
            let shape = t.shape.map(String.init).joined(separator: ",")
            header +=
                "\(jsonString(key)):{\"dtype\":\"\(dtypeName)\",\"shape\":[\(shape)],\"data_offsets\":[\(begin),\(body.count)]}"
        }
        header += "}"
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        var out = Data()
        out.reserveCapacity(8 + headerBytes.count + body.count)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: headerBytes)
        out.append(contentsOf: body)
        return out
    }

    /// Appends the little-endian bytes of `values` (a bulk copy on little-endian hosts).
    static func appendLittleEndian<T: FixedWidthInteger>(_ values: [T], to out: inout [UInt8]) {
        #if _endian(little)
            values.withUnsafeBytes { out.append(contentsOf: $0) }
        #else
            for v in values { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        #endif
    }

    /// JSON string literal for `s`.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}

/// Writes files through a temporary sibling and a rename, so readers never see partial files.
enum AtomicWrite {
    static func write(_ data: Data, to url: URL, context: String) throws {
        let dir = url.deletingLastPathComponent()
        let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(UUID().uuidString)")
        do {
            try data.write(to: tmp)
        } catch {
            throw CheckpointError("\(context): cannot write temporary file (\(error.localizedDescription))")
        }
        guard rename(tmp.path, url.path) == 0 else {
            let code = errno
            try? FileManager.default.removeItem(at: tmp)
            throw CheckpointError("\(context): cannot rename temporary file into place (errno \(code))")
        }
    }
}
