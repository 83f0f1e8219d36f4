import Foundation
import GSASRImage

/// Independent readers of the container structures the writer produces, so that tests do not
/// check the library's output with the library's own parsers only.
enum Containers {
    /// PNG chunks after the signature: (type, data).
    static func pngChunks(_ b: [UInt8]) -> [(type: String, data: [UInt8])] {
        var out: [(String, [UInt8])] = []
        var o = 8
        while o + 12 <= b.count {
            let n = Int(b[o]) << 24 | Int(b[o + 1]) << 16 | Int(b[o + 2]) << 8 | Int(b[o + 3])
            guard o + 12 + n <= b.count else { break }
            out.append((String(decoding: b[(o + 4)..<(o + 8)], as: UTF8.self), Array(b[(o + 8)..<(o + 8 + n)])))
            o += 12 + n
        }
        return out
    }

    /// (bit depth, colour type) from IHDR.
    static func pngDepthAndColourType(_ b: [UInt8]) -> (depth: Int, colourType: Int) {
        let ihdr = pngChunks(b).first { $0.type == "IHDR" }!.data
        return (Int(ihdr[8]), Int(ihdr[9]))
    }

    /// JPEG marker segments from SOI to SOS: (marker, payload).
    static func jpegSegments(_ b: [UInt8]) -> [(marker: UInt8, payload: [UInt8])] {
        var out: [(UInt8, [UInt8])] = []
        var o = 2
        while o + 4 <= b.count, b[o] == 0xFF {
            let marker = b[o + 1]
            let n = Int(b[o + 2]) << 8 | Int(b[o + 3])
            guard o + 2 + n <= b.count else { break }
            out.append((marker, Array(b[(o + 4)..<(o + 2 + n)])))
            if marker == 0xDA { break }
            o += 2 + n
        }
        return out
    }

    /// Number of components in the JPEG's SOF0 frame header.
    static func jpegComponents(_ b: [UInt8]) -> Int? {
        jpegSegments(b).first { $0.marker == 0xC0 }.map { Int($0.payload[5]) }
    }

    /// Inserts marker segments right after the SOI marker of a JPEG.
    static func insertingSegments(_ jpeg: [UInt8], _ segments: [(marker: UInt8, payload: [UInt8])]) -> [UInt8] {
        var out = Array(jpeg[0..<2])
        for s in segments {
            let n = s.payload.count + 2
            out += [0xFF, s.marker, UInt8(n >> 8), UInt8(n & 0xFF)] + s.payload
        }
        return out + jpeg[2...]
    }

    /// RIFF chunks of a WebP file: (fourcc, payload).
    static func webpChunks(_ b: [UInt8]) -> [(fourcc: String, payload: [UInt8])] {
        guard b.count >= 12, b[0..<4].elementsEqual("RIFF".utf8), b[8..<12].elementsEqual("WEBP".utf8) else {
            return []
        }
        var out: [(String, [UInt8])] = []
        var o = 12
        while o + 8 <= b.count {
            let n = Int(b[o + 4]) | Int(b[o + 5]) << 8 | Int(b[o + 6]) << 16 | Int(b[o + 7]) << 24
            guard o + 8 + n <= b.count else { break }
            out.append((String(decoding: b[o..<(o + 4)], as: UTF8.self), Array(b[(o + 8)..<(o + 8 + n)])))
            o += 8 + n + (n & 1)
        }
        return out
    }

    /// A plausible ICC profile of `size` bytes: header with the size, the colour space and the
    /// 'acsp' signature, no tags, then deterministic filler.
    static func iccProfile(size: Int, colourSpace: String = "RGB ", seed: UInt64 = 1) -> [UInt8] {
        var p = [UInt8](repeating: 0, count: size)
        var s = seed
        for i in 0..<size {
            s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            p[i] = UInt8(truncatingIfNeeded: s >> 56)
        }
        for k in 0..<4 { p[k] = UInt8(truncatingIfNeeded: size >> (24 - 8 * k)) }
        p.replaceSubrange(12..<16, with: Array("mntr".utf8))
        p.replaceSubrange(16..<20, with: Array(colourSpace.utf8))
        p.replaceSubrange(36..<40, with: Array("acsp".utf8))
        if size >= 132 { p.replaceSubrange(128..<132, with: [0, 0, 0, 0]) }
        return p
    }

    /// An Exif APP1 payload whose IFD0 holds an orientation entry (and one other entry first).
    static func exifPayload(orientation: Int, littleEndian: Bool, type: Int = 3) -> [UInt8] {
        func u16(_ v: Int) -> [UInt8] {
            littleEndian ? [UInt8(v & 0xFF), UInt8(v >> 8)] : [UInt8(v >> 8), UInt8(v & 0xFF)]
        }
        func u32(_ v: Int) -> [UInt8] { littleEndian ? u16(v & 0xFFFF) + u16(v >> 16) : u16(v >> 16) + u16(v & 0xFFFF) }
        var tiff: [UInt8] = littleEndian ? [0x49, 0x49] : [0x4D, 0x4D]
        tiff += u16(42) + u32(8)
        tiff += u16(2)
        tiff += u16(0x010F) + u16(2) + u32(4) + [0x41, 0x42, 0x43, 0]  // Make "ABC"
        tiff += u16(0x0112) + u16(type) + u32(1) + u16(orientation) + [0, 0]
        tiff += u32(0)  // no next IFD
        return Array("Exif".utf8) + [0, 0] + tiff
    }
}

/// A deterministic float image with values in [0, 1] (and a few outside, to test clamping).
func testPattern(width: Int, height: Int, channels: Int, seed: UInt64 = 7) -> [Float] {
    var s = seed
    return (0..<(width * height * channels)).map { i in
        s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        let u = Float(s >> 40) / Float(1 << 24)
        return i % 97 == 0 ? u * 1.4 - 0.2 : u
    }
}

func bytes(_ url: URL) throws -> [UInt8] { [UInt8](try Data(contentsOf: url)) }
