import Foundation

/// Reader and writer for NumPy `.npy` files (format versions 1, 2 and 3), C order, little-endian.
/// Supported element types: `<f4`, `<f8`, `<f2`, `<i8`, `<i4`, `|u1`, `|i1`, `|b1`.
public enum NPY {
    static let maxHeaderBytes = 1 << 20

    static let dtypes: [String: LoadedTensor.DType] = [
        "<f4": .float32, "<f8": .float64, "<f2": .float16, "<i8": .int64, "<i4": .int32,
        "|u1": .uint8, "<u1": .uint8, "|i1": .int8, "<i1": .int8, "|b1": .bool,
    ]

    /// A parsed file: shape, dtype and the raw element bytes.
    struct Parsed {
        var shape: [Int]
        var dtype: LoadedTensor.DType
        var count: Int
        var data: Data
        var dataStart: Int
    }

    /// Loads an array converted to Float32.
    public static func load(_ url: URL) throws -> (shape: [Int], floats: [Float]) {
        try floats(of: parse(url), context: "npy \(url.lastPathComponent)")
    }

    static func floats(of p: Parsed, context: String) throws -> (shape: [Int], floats: [Float]) {
        var floats: [Float] = []
        floats.reserveCapacity(p.count)
        var ints: [Int64] = []
        try p.data.withUnsafeBytes { raw in
            try ElementCodec.append(
                from: UnsafeRawBufferPointer(rebasing: raw[p.dataStart...]), dtype: p.dtype, start: 0, step: 1,
                count: p.count, floats: &floats, ints: &ints, context: context)
        }
        return (p.shape, floats)
    }

    /// Loads an array converted to Float64 (exact for `<f8`, `<f4` and integers up to 2^53).
    public static func loadDouble(_ url: URL) throws -> (shape: [Int], values: [Double]) {
        let p = try parse(url)
        var values: [Double] = []
        values.reserveCapacity(p.count)
        p.data.withUnsafeBytes { whole in
            let raw = UnsafeRawBufferPointer(rebasing: whole[p.dataStart...])
            for i in 0..<p.count {
                switch p.dtype {
                case .float64:
                    values.append(
                        Double(
                            bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))
                    )
                case .float32:
                    values.append(
                        Double(
                            Float(
                                bitPattern: UInt32(
                                    littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))))
                case .float16:
                    values.append(
                        Double(
                            ElementCodec.halfToFloat(
                                UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))))
                case .int64:
                    values.append(Double(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))))
                case .int32:
                    values.append(Double(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))))
                case .uint8: values.append(Double(raw[i]))
                case .int8: values.append(Double(Int8(bitPattern: raw[i])))
                case .bool: values.append(raw[i] != 0 ? 1 : 0)
                case .bfloat16, .int16: values.append(0)  // not produced by `dtypes`
                }
            }
        }
        return (p.shape, values)
    }

    /// Writes a `<f4` C-order array (format version 1) atomically.
    public static func save(floats: [Float], shape: [Int], to url: URL) throws {
        let context = "npy \(url.lastPathComponent)"
        guard let count = ElementCodec.checkedCount(shape), count == floats.count else {
            throw CheckpointError("\(context): shape \(shape) does not match \(floats.count) values")
        }
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"
        // Magic (6) + version (2) + length (2) + header + "\n" must be a multiple of 64.
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        guard header.utf8.count <= Int(UInt16.max) else { throw CheckpointError("\(context): header too long") }
        var out = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        withUnsafeBytes(of: UInt16(header.utf8.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: Array(header.utf8))
        var body: [UInt8] = []
        body.reserveCapacity(4 * count)
        Safetensors.appendLittleEndian(floats.map(\.bitPattern), to: &body)
        out.append(contentsOf: body)
        try AtomicWrite.write(out, to: url, context: context)
    }

    /// Loads an array from the bytes of a `.npy` file (e.g. an `.npz` member), as Float32.
    public static func load(data: Data, name: String = "<memory>") throws -> (shape: [Int], floats: [Float]) {
        try floats(of: parse(data: data, context: "npy \(name)"), context: "npy \(name)")
    }

    /// Reads and validates the header of `url`.
    static func parse(_ url: URL) throws -> Parsed {
        let context = "npy \(url.lastPathComponent)"
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            throw CheckpointError("\(context): cannot read file (\(error.localizedDescription))")
        }
        return try parse(data: data, context: context)
    }

    static func parse(data whole: Data, context: String) throws -> Parsed {
        let data = whole.startIndex == 0 ? whole : Data(whole)
        let bytes = [UInt8](data.prefix(12))
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1..<6]) == Array("NUMPY".utf8) else {
            throw CheckpointError("\(context): not an .npy file (bad magic or truncated)")
        }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw CheckpointError("\(context): truncated header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default:
            throw CheckpointError("\(context): unsupported .npy format version \(major)")
        }
        guard headerLength <= maxHeaderBytes, headerStart + headerLength <= data.count else {
            throw CheckpointError("\(context): truncated or oversized header (\(headerLength) bytes)")
        }
        let headerText = String(
            decoding: data[(data.startIndex + headerStart)..<(data.startIndex + headerStart + headerLength)],
            as: UTF8.self)
        let descr = try field(headerText, "descr", context: context)
        guard let descrValue = quoted(descr), let dtype = dtypes[descrValue] else {
            throw CheckpointError(
                "\(context): unsupported dtype \(descr) (little-endian <f4, <f8, <f2, <i8, <i4, |u1, |i1, |b1 only)")
        }
        let fortran = try field(headerText, "fortran_order", context: context)
        if fortran.hasPrefix("True") {
            throw CheckpointError("\(context): fortran_order=True arrays are not supported; save a C-contiguous array")
        }
        guard fortran.hasPrefix("False") else { throw CheckpointError("\(context): malformed fortran_order") }
        let shapeText = try field(headerText, "shape", context: context)
        guard shapeText.hasPrefix("("), let close = shapeText.firstIndex(of: ")") else {
            throw CheckpointError("\(context): malformed shape")
        }
        var shape: [Int] = []
        for part in shapeText[shapeText.index(after: shapeText.startIndex)..<close].split(separator: ",") {
            let t = part.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { continue }
            guard let d = Int(t), d >= 0 else { throw CheckpointError("\(context): malformed shape \(shapeText)") }
            shape.append(d)
        }
        let elementSize = ElementCodec.size(of: dtype)
        let dataStart = headerStart + headerLength
        guard let count = ElementCodec.checkedCount(shape), let need = ElementCodec.checkedBytes(count, elementSize),
            need <= data.count - dataStart
        else {
            throw CheckpointError(
                "\(context): truncated data (shape \(shape) needs more than the \(data.count - dataStart) bytes present)"
            )
        }
        return Parsed(shape: shape, dtype: dtype, count: count, data: data, dataStart: dataStart)
    }

    /// The text after `'key':` in a Python dict literal.
    private static func field(_ header: String, _ key: String, context: String) throws -> Substring {
        guard let r = header.range(of: "'\(key)':") else { throw CheckpointError("\(context): header has no '\(key)'") }
        return header[r.upperBound...].drop(while: { $0 == " " })
    }

    private static func quoted(_ s: Substring) -> String? {
        guard let q = s.first, q == "'" || q == "\"" else { return nil }
        let rest = s.dropFirst()
        guard let end = rest.firstIndex(of: q) else { return nil }
        return String(rest[..<end])
    }
}
