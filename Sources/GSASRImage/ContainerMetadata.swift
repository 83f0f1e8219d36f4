import Foundation

/// Metadata read straight from the container bytes: the ICC profile of a PNG or JPEG, the
/// Exif block of a JPEG or PNG and the Exif orientation of a JPEG. The pixel decoders (libpng's simplified API, TurboJPEG) do not
/// expose them.
///
/// The files are untrusted: every offset and length is checked against the bytes at hand
/// before it is used, and anything malformed (a bad chunk CRC, a zlib stream that does not
/// inflate, a missing or repeated ICC segment, an Exif offset outside the segment, an unknown
/// orientation value) makes that item absent; it never fails the decode or crashes.
enum ContainerMetadata {
    /// Ceiling on an inflated PNG profile. JPEG profiles are bounded by their segments
    /// (at most 255 × 65519 bytes), and real profiles are far smaller.
    static let maxICCBytes = 1 << 24

    // MARK: PNG

    /// An ICC profile found in a file, or why one found is not carried (a one-line note that
    /// the command line prints: the user should know that the output lacks it).
    struct ICCResult: Equatable {
        var profile: [UInt8]?
        var note: String?
        static let none = ICCResult(profile: nil, note: nil)
    }

    /// `profile` if its header is an ICC header (ICC.1:2022 §7.2): at least the 128-byte header
    /// and the tag count, the profile size field (bytes 0-3, big-endian) equal to the bytes
    /// found, and the signature `acsp` at bytes 36-39. Otherwise a note, and no profile.
    static func checkedICC(_ profile: [UInt8]) -> ICCResult {
        let n = profile.count
        guard n >= 132 else {
            return ICCResult(profile: nil, note: "its ICC profile (\(n) bytes) is shorter than an ICC header: not carried")
        }
        let declared = profile[0..<4].reduce(0) { $0 << 8 | Int($1) }
        guard Array(profile[36..<40]) == Array("acsp".utf8) else {
            return ICCResult(profile: nil, note: "its ICC profile (\(n) bytes) has no 'acsp' signature: not carried")
        }
        guard declared == n else {
            return ICCResult(
                profile: nil, note: "its ICC profile declares \(declared) bytes but holds \(n): not carried")
        }
        return ICCResult(profile: profile, note: nil)
    }

    /// The number of frames an animated PNG declares (its `acTL` chunk before the first
    /// `IDAT`), or nil for a still PNG. Decoders that do not know APNG show its first frame
    /// (the default image), and so do we.
    static func apngFrameCount(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard let (body, length) = pngChunkBeforeIDAT(bytes, type: (0x61, 0x63, 0x54, 0x4C)), length >= 8 else {
            return nil  // acTL: num_frames, num_plays
        }
        return Int(readBE32(bytes, body))
    }

    /// The first chunk of `type` before the first `IDAT` (or `IEND`): the offset of its data
    /// and its length, every length checked against the bytes; nil when there is none or the
    /// chunk list is broken before it.
    static func pngChunkBeforeIDAT(_ bytes: UnsafeRawBufferPointer, type wanted: (UInt8, UInt8, UInt8, UInt8))
        -> (body: Int, length: Int)?
    {
        var offset = 8  // after the signature
        while offset <= bytes.count - 12 {
            let length = Int(readBE32(bytes, offset))
            guard length <= bytes.count - offset - 12 else { return nil }
            let type = (bytes[offset + 4], bytes[offset + 5], bytes[offset + 6], bytes[offset + 7])
            if type == (0x49, 0x44, 0x41, 0x54) || type == (0x49, 0x45, 0x4E, 0x44) { return nil }  // IDAT, IEND
            if type == wanted { return (offset + 8, length) }
            offset += 12 + length
        }
        return nil
    }

    /// The data of the PNG's `eXIf` chunk (PNG 3rd edition §11.3.6; anywhere between `IHDR` and
    /// `IEND`), its CRC checked: `.none` when there is none, a note when it is damaged.
    static func pngExif(_ bytes: UnsafeRawBufferPointer) -> (exif: [UInt8]?, note: String?) {
        var offset = 8
        while offset <= bytes.count - 12 {
            let length = Int(readBE32(bytes, offset))
            guard length <= bytes.count - offset - 12 else { return (nil, nil) }
            let type = (bytes[offset + 4], bytes[offset + 5], bytes[offset + 6], bytes[offset + 7])
            if type == (0x49, 0x45, 0x4E, 0x44) { return (nil, nil) }  // IEND
            if type == (0x65, 0x58, 0x49, 0x66) {  // eXIf
                let body = offset + 8
                guard
                    readBE32(bytes, body + length)
                        == Zlib.crc32(UnsafeRawBufferPointer(rebasing: bytes[(offset + 4)..<(body + length)]))
                else { return (nil, "its eXIf chunk fails its CRC: Exif not carried") }
                return (Array(UnsafeRawBufferPointer(rebasing: bytes[body..<(body + length)])), nil)
            }
            offset += 12 + length
        }
        return (nil, nil)
    }

    /// The profile of the PNG's `iCCP` chunk (before the first `IDAT`), inflated and checked.
    static func pngICC(_ bytes: UnsafeRawBufferPointer) -> ICCResult {
        guard let (body, length) = pngChunkBeforeIDAT(bytes, type: (0x69, 0x43, 0x43, 0x50)) else { return .none }
        let offset = body - 8
        // keyword (1-79 Latin-1 bytes), NUL, compression method 0, zlib stream; the chunk's CRC
        var nul = body
        while nul < body + min(length, 80) && bytes[nul] != 0 { nul += 1 }
        guard nul > body, nul < body + min(length, 80), nul + 2 < body + length, bytes[nul + 1] == 0,
            readBE32(bytes, body + length)
                == Zlib.crc32(UnsafeRawBufferPointer(rebasing: bytes[(offset + 4)..<(body + length)]))
        else { return ICCResult(profile: nil, note: "its iCCP chunk is malformed: no ICC profile carried") }
        let stream = UnsafeRawBufferPointer(rebasing: bytes[(nul + 2)..<(body + length)])
        switch Zlib.inflateChecked(stream, limit: maxICCBytes) {
        case .inflated(let profile): return checkedICC(profile)
        case .overLimit:
            return ICCResult(profile: nil, note: "its ICC profile inflates to over \(maxICCBytes >> 20) MiB: not carried")
        case .malformed:
            return ICCResult(profile: nil, note: "its iCCP chunk does not inflate: no ICC profile carried")
        }
    }

    /// The data of a PNG `iCCP` chunk carrying `profile` (keyword "ICC Profile", deflated).
    static func pngICCPChunkData(_ profile: [UInt8]) throws -> [UInt8] {
        Array("ICC Profile".utf8) + [0, 0] + (try Zlib.deflate(profile))
    }

    // MARK: JPEG

    /// What the JPEG's header segments say: its ICC profile and its Exif orientation (1-8,
    /// 1 when absent or malformed).
    struct JPEGInfo: Equatable {
        var iccProfile: [UInt8]?
        /// Why a profile found is not carried (see ``ICCResult``).
        var iccNote: String?
        var orientation: Int
        /// The first APP1 Exif segment's TIFF structure (after `Exif\0\0`), unchecked.
        var exif: [UInt8]? = nil
    }

    static let iccSignature = Array("ICC_PROFILE".utf8) + [0]
    static let exifSignature = Array("Exif".utf8) + [0, 0]
    /// Profile bytes per APP2 segment: 65535 − 2 (length) − 12 (signature) − 2 (sequence, count).
    static let iccBytesPerSegment = 65519

    /// Walks the marker segments from SOI up to the first SOS.
    static func jpegInfo(_ bytes: UnsafeRawBufferPointer) -> JPEGInfo {
        var info = JPEGInfo(iccProfile: nil, orientation: 1)
        guard bytes.count >= 4, bytes[0] == 0xFF, bytes[1] == 0xD8 else { return info }
        var iccParts: [(sequence: Int, count: Int, range: Range<Int>)] = []
        var sawExif = false
        var offset = 2
        scan: while offset < bytes.count - 1 {
            guard bytes[offset] == 0xFF else { break }  // not a marker: stop looking
            var m = offset + 1
            while m < bytes.count && bytes[m] == 0xFF { m += 1 }  // fill bytes
            guard m < bytes.count else { break }
            let marker = bytes[m]
            offset = m + 1
            switch marker {
            case 0x01, 0xD0...0xD7: continue  // no length field
            case 0xD9, 0xDA: break scan  // EOI, SOS: the header segments are over
            default: break
            }
            guard offset <= bytes.count - 2 else { break }
            let length = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
            guard length >= 2, length <= bytes.count - offset else { break }
            let payload = (offset + 2)..<(offset + length)
            offset += length
            if marker == 0xE1 && !sawExif && hasPrefix(bytes, payload, exifSignature) {
                sawExif = true
                let tiff = (payload.lowerBound + exifSignature.count)..<payload.upperBound
                info.orientation = exifOrientation(UnsafeRawBufferPointer(rebasing: bytes[tiff])) ?? 1
                info.exif = Array(UnsafeRawBufferPointer(rebasing: bytes[tiff]))
            } else if marker == 0xE2 && hasPrefix(bytes, payload, iccSignature) && payload.count >= 14 {
                let head = payload.lowerBound + iccSignature.count
                iccParts.append((Int(bytes[head]), Int(bytes[head + 1]), (head + 2)..<payload.upperBound))
            }
        }
        // Segments numbered 1...count, each exactly once, all agreeing on count.
        if let count = iccParts.first?.count, count >= 1, iccParts.count == count,
            iccParts.allSatisfy({ $0.count == count }),
            Set(iccParts.map(\.sequence)) == Set(1...count)
        {
            var profile: [UInt8] = []
            for part in iccParts.sorted(by: { $0.sequence < $1.sequence }) {
                profile.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[part.range]))
            }
            if !profile.isEmpty {
                let checked = checkedICC(profile)
                info.iccProfile = checked.profile
                info.iccNote = checked.note
            }
        }
        return info
    }

    /// The orientation tag (0x0112, SHORT) of IFD0 in a TIFF-structured Exif block, or nil if
    /// absent, malformed, or outside 1...8. Both byte orders ("II" little, "MM" big endian).
    static func exifOrientation(_ tiff: UnsafeRawBufferPointer) -> Int? {
        guard tiff.count >= 8 else { return nil }
        let little: Bool
        switch (tiff[0], tiff[1]) {
        case (0x49, 0x49): little = true
        case (0x4D, 0x4D): little = false
        default: return nil
        }
        func u16(_ at: Int) -> Int {
            little ? Int(tiff[at]) | Int(tiff[at + 1]) << 8 : Int(tiff[at]) << 8 | Int(tiff[at + 1])
        }
        func u32(_ at: Int) -> Int { little ? u16(at) | u16(at + 2) << 16 : u16(at) << 16 | u16(at + 2) }
        guard u16(2) == 42 else { return nil }
        let ifd = u32(4)
        guard ifd >= 8, ifd <= tiff.count - 2 else { return nil }
        let entries = u16(ifd)
        for i in 0..<entries {
            let entry = ifd + 2 + 12 * i
            guard entry <= tiff.count - 12 else { return nil }
            guard u16(entry) == 0x0112 else { continue }
            guard u16(entry + 2) == 3, u32(entry + 4) >= 1 else { return nil }  // SHORT, count ≥ 1
            let value = u16(entry + 8)  // inline, left-justified in the 4-byte value field
            return (1...8).contains(value) ? value : nil
        }
        return nil
    }

    /// The APP2 payloads that carry `profile`: "ICC_PROFILE\0", sequence number (from 1),
    /// segment count, then up to 65519 profile bytes each. At most 255 segments.
    static func jpegICCSegments(_ profile: [UInt8]) throws -> [[UInt8]] {
        guard !profile.isEmpty else { return [] }
        let count = (profile.count + iccBytesPerSegment - 1) / iccBytesPerSegment
        guard count <= 255 else {
            throw ImageIOError(
                "the ICC profile (\(profile.count) bytes) is too large for JPEG (at most 255 × 65519 bytes)")
        }
        return (0..<count).map { k in
            let part = profile[(k * iccBytesPerSegment)..<min(profile.count, (k + 1) * iccBytesPerSegment)]
            return iccSignature + [UInt8(k + 1), UInt8(count)] + part
        }
    }

    private static func readBE32(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
    }

    private static func hasPrefix(_ b: UnsafeRawBufferPointer, _ range: Range<Int>, _ prefix: [UInt8]) -> Bool {
        range.count >= prefix.count && prefix.indices.allSatisfy { b[range.lowerBound + $0] == prefix[$0] }
    }
}
