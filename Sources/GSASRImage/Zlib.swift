import CImageZlib
import Foundation

/// The few zlib operations the image containers need: inflating and deflating PNG `iCCP`
/// profiles and the CRC-32 of PNG chunks. Inputs are untrusted, so inflating has an output
/// ceiling and every failure is a nil, never a crash.
enum Zlib {
    /// Inflates one complete zlib stream. Returns nil when the stream is malformed, truncated,
    /// or would inflate to more than `limit` bytes.
    static func inflate(_ input: UnsafeRawBufferPointer, limit: Int) -> [UInt8]? {
        if case .inflated(let out) = inflateChecked(input, limit: limit) { return out }
        return nil
    }

    /// What ``inflateChecked(_:limit:)`` found.
    enum InflateResult: Equatable {
        case inflated([UInt8])
        /// The stream inflates to more than the limit (reading stopped there).
        case overLimit
        /// Not a zlib stream, corrupt, or truncated.
        case malformed
    }

    /// Inflates a zlib stream, stopping as soon as the output would pass `limit` bytes.
    static func inflateChecked(_ input: UnsafeRawBufferPointer, limit: Int) -> InflateResult {
        guard let base = input.baseAddress, input.count > 0, input.count <= Int(UInt32.max) else { return .malformed }
        var stream = z_stream()
        guard inflateInit_(&stream, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return .malformed }
        defer { inflateEnd(&stream) }
        stream.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = UInt32(input.count)
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let (status, produced) = chunk.withUnsafeMutableBufferPointer { buf -> (Int32, Int) in
                stream.next_out = buf.baseAddress
                stream.avail_out = UInt32(buf.count)
                let status = CImageZlib.inflate(&stream, Z_NO_FLUSH)
                return (status, buf.count - Int(stream.avail_out))
            }
            if status != Z_OK && status != Z_STREAM_END { return .malformed }
            if out.count + produced > limit { return .overLimit }
            out.append(contentsOf: chunk[0..<produced])
            if status == Z_STREAM_END { return .inflated(out) }
            // Z_OK with no progress and no input left: the stream is truncated.
            if produced == 0 && stream.avail_in == 0 { return .malformed }
        }
    }

    /// Deflates `input` into a zlib stream (best compression).
    static func deflate(_ input: [UInt8]) throws -> [UInt8] {
        var size = compressBound(uLong(input.count))
        var out = [UInt8](repeating: 0, count: Int(size))
        let status = out.withUnsafeMutableBufferPointer { dst in
            input.withUnsafeBufferPointer { src in
                compress2(dst.baseAddress, &size, src.baseAddress, uLong(src.count), Z_BEST_COMPRESSION)
            }
        }
        guard status == Z_OK else { throw ImageIOError("cannot compress the ICC profile (zlib error \(status))") }
        return Array(out.prefix(Int(size)))
    }

    /// CRC-32 as PNG chunks use it (ISO 3309, the one zlib computes).
    static func crc32(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc = CImageZlib.crc32(0, nil, 0)
        var offset = 0
        while offset < bytes.count {  // zlib takes 32-bit lengths
            let n = min(bytes.count - offset, 1 << 30)
            crc = CImageZlib.crc32(crc, bytes.baseAddress!.assumingMemoryBound(to: Bytef.self) + offset, uInt(n))
            offset += n
        }
        return UInt32(crc)
    }
}
