import Foundation

/// Exif metadata carried from an input photo to its upscaled output: the camera, the dates,
/// the exposure, the GPS position.
///
/// Exif is a TIFF structure (TIFF 6.0 §2, Exif 2.32 §4.6): an 8-byte header giving the byte
/// order ("II" little-endian, "MM" big-endian) and the offset of IFD0; each IFD a count, 12-byte
/// entries (tag, type, count, value or offset of the value) and the offset of the next IFD.
/// IFD0 holds the image's own tags (Make, Model, DateTime, Orientation…) and pointers to the
/// Exif IFD (tag 0x8769: exposure, DateTimeOriginal…), the GPS IFD (0x8825) and, inside the Exif
/// IFD, the Interoperability IFD (0xA005).
///
/// ``tiff`` is that structure as stored after the `Exif\0\0` of a JPEG's APP1 segment, in a PNG's
/// `eXIf` chunk, a WebP's `EXIF` chunk, or a HEIF's Exif item. It is carried **byte for byte**,
/// except the Orientation tag (0x0112), which is set to 1: the decoders have already turned the
/// pixels upright. Into JPEG, PNG and WebP outputs the block goes whole; a TIFF output is
/// itself the TIFF structure, so there the Exif and GPS IFDs are re-laid at the end of the file
/// (their entries' values unchanged, offsets rewritten) and IFD0's text tags (Make, Model,
/// Software, DateTime, Artist, Copyright, ImageDescription) become the output's own.
///
/// Known limits, as in other tools that re-lay Exif: a maker note (tag 0x927C) is copied as
/// opaque bytes, so one that points at absolute offsets inside the old block is no longer
/// valid in a TIFF output (JPEG, PNG and WebP outputs keep the block's layout, so theirs stay
/// valid); a thumbnail (IFD1) is carried in JPEG, PNG and WebP outputs as it was stored.
///
/// The block is untrusted: ``parse(_:)`` walks every IFD it carries with each count and offset
/// checked against the bytes, loops refused, depth bounded; a block that fails is not carried
/// (the decoders then add a note).
public struct ExifMetadata: Sendable, Equatable {
    /// The TIFF-structured block, its Orientation (if any) set to 1.
    public private(set) var tiff: [UInt8]

    /// True for "II" (little-endian) blocks.
    public var isLittleEndian: Bool { tiff[0] == 0x49 }

    /// Validates `bytes` as an Exif TIFF structure and sets its orientation to 1; nil when it is
    /// malformed (see ``parseResult(_:)`` for the reason).
    public static func parse(_ bytes: [UInt8]) -> ExifMetadata? {
        if case .success(let exif) = parseResult(bytes) { return exif }
        return nil
    }

    /// The checked block of `bytes`, or nil with a note appended saying why it is not carried.
    static func carried(_ bytes: [UInt8], notes: inout [String]) -> ExifMetadata? {
        switch parseResult(bytes) {
        case .success(let exif): return exif
        case .failure(let e):
            notes.append("\(e.message): Exif not carried")
            return nil
        }
    }

    /// The ceiling on a carried block: 1 MiB (a JPEG holds at most 64 KiB in its APP1 segment;
    /// other containers are not limited, but real Exif is far smaller).
    public static let maxBytes = 1 << 20

    /// As ``parse(_:)``, with the reason for a refusal (one line).
    public static func parseResult(_ bytes: [UInt8]) -> Result<ExifMetadata, ImageIOError> {
        guard bytes.count <= maxBytes else {
            return .failure(ImageIOError("its Exif block (\(bytes.count) bytes) is over 1 MiB"))
        }
        do {
            let reader = try TIFFStructure(bytes)
            _ = try reader.readIFD(at: reader.firstIFD, depth: 0, visited: [])
            var exif = ExifMetadata(tiff: bytes)
            exif.setOrientationToOne(reader)
            return .success(exif)
        } catch let e as ImageIOError {
            return .failure(e)
        } catch {
            return .failure(ImageIOError("its Exif block is malformed"))
        }
    }

    /// An Exif block built from a TIFF file's own IFD0: its text tags and its Exif and GPS IFDs
    /// (a TIFF file keeps its Exif there rather than in a separate block), and Orientation 1.
    /// nil when the file has none of them; a malformed structure throws.
    static func fromTIFFFile(_ bytes: UnsafeRawBufferPointer) throws -> ExifMetadata? {
        let reader = try TIFFStructure(Array(bytes))
        let ifd0 = try reader.readIFD(at: reader.firstIFD, depth: 0, visited: [])
        var carried = ifd0.filter { Self.textTags.contains($0.tag) || $0.child != nil }
        guard !carried.isEmpty else { return nil }
        // Orientation 1, said explicitly: the decoder turns the pixels upright.
        carried.append(.init(tag: 0x0112, type: 3, count: 1, value: reader.little ? [1, 0] : [0, 1], child: nil))
        var out: [UInt8] = reader.little ? [0x49, 0x49, 42, 0, 8, 0, 0, 0] : [0x4D, 0x4D, 0, 42, 0, 0, 0, 8]
        out += TIFFStructure.serialize(carried, at: 8, little: reader.little)
        return parse(out)
    }

    /// IFD0 tags a TIFF output takes over as its own (ASCII): ImageDescription, Make, Model,
    /// Software, DateTime, Artist, Copyright.
    static let textTags: Set<UInt16> = [0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298]

    /// IFD0's text tags (see ``textTags``) as strings, up to their first NUL, for a TIFF output.
    func textTagsForTIFF() -> [(tag: UInt16, value: String)] {
        guard let reader = try? TIFFStructure(tiff),
            let ifd0 = try? reader.readIFD(at: reader.firstIFD, depth: 0, visited: [])
        else { return [] }
        return ifd0.compactMap { e in
            guard Self.textTags.contains(e.tag), e.type == 2 else { return nil }
            let text = e.value.prefix(while: { $0 != 0 })
            guard !text.isEmpty, let s = String(bytes: text, encoding: .isoLatin1) else { return nil }
            return (e.tag, s)
        }
    }

    /// The Exif (0x8769) and GPS (0x8825) IFDs of IFD0, each laid out for a file position
    /// `base` (even), for a TIFF output.
    func subIFDsForTIFF() -> [(tag: UInt16, entries: [TIFFStructure.Entry])] {
        guard let reader = try? TIFFStructure(tiff),
            let ifd0 = try? reader.readIFD(at: reader.firstIFD, depth: 0, visited: [])
        else { return [] }
        return ifd0.compactMap { e in
            guard e.tag == 0x8769 || e.tag == 0x8825, let child = e.child else { return nil }
            return (e.tag, child)
        }
    }

    /// Sets IFD0's Orientation entry, if there is one, to SHORT 1 in place (12 bytes rewritten,
    /// nothing moved).
    private mutating func setOrientationToOne(_ reader: TIFFStructure) {
        let ifd = reader.firstIFD
        let n = reader.u16(ifd)
        for i in 0..<n {
            let entry = ifd + 2 + 12 * i
            guard reader.u16(entry) == 0x0112 else { continue }
            let little = reader.little
            func put16(_ at: Int, _ v: Int) {
                tiff[at] = UInt8(little ? v & 0xFF : v >> 8)
                tiff[at + 1] = UInt8(little ? v >> 8 : v & 0xFF)
            }
            put16(entry + 2, 3)  // SHORT
            put16(entry + 4, little ? 1 : 0)  // count 1 (32-bit)
            put16(entry + 6, little ? 0 : 1)
            put16(entry + 8, 1)  // value 1, left-justified
            put16(entry + 10, 0)
            return
        }
    }

    /// The orientation IFD0 declares (1...8), nil when absent or invalid.
    public var orientation: Int? {
        tiff.withUnsafeBytes { ContainerMetadata.exifOrientation($0) }
    }
}

/// A reader and writer of TIFF IFDs, for Exif blocks and for the Exif of TIFF files. Classic
/// TIFF only (BigTIFF has 8-byte offsets; Exif blocks never use it).
struct TIFFStructure {
    /// An IFD entry with its value bytes (in the structure's byte order) and, for the pointer
    /// tags, the IFD it points to.
    struct Entry: Equatable {
        var tag: UInt16
        var type: UInt16
        var count: UInt32
        var value: [UInt8]
        var child: [Entry]?
    }

    let bytes: [UInt8]
    let little: Bool
    let firstIFD: Int

    /// Tags whose value is the offset of another IFD that is carried: Exif, GPS, Interoperability.
    static let pointerTags: Set<UInt16> = [0x8769, 0x8825, 0xA005]
    /// Entries per IFD and IFD depth beyond which a block is refused (real ones: under 100 and 2).
    static let maxEntries = 1000
    static let maxDepth = 4

    init(_ bytes: [UInt8]) throws {
        guard bytes.count >= 8 else { throw ImageIOError("its Exif block is shorter than a TIFF header") }
        switch (bytes[0], bytes[1]) {
        case (0x49, 0x49): little = true
        case (0x4D, 0x4D): little = false
        default: throw ImageIOError("its Exif block has no TIFF byte-order mark")
        }
        self.bytes = bytes
        let magic = little ? Int(bytes[2]) | Int(bytes[3]) << 8 : Int(bytes[2]) << 8 | Int(bytes[3])
        guard magic == 42 else {
            throw ImageIOError(magic == 43 ? "it is a BigTIFF, whose Exif is not read" : "its Exif block is not a TIFF structure")
        }
        let first = little
            ? Int(bytes[4]) | Int(bytes[5]) << 8 | Int(bytes[6]) << 16 | Int(bytes[7]) << 24
            : Int(bytes[4]) << 24 | Int(bytes[5]) << 16 | Int(bytes[6]) << 8 | Int(bytes[7])
        firstIFD = first
    }

    func u16(_ at: Int) -> Int {
        little ? Int(bytes[at]) | Int(bytes[at + 1]) << 8 : Int(bytes[at]) << 8 | Int(bytes[at + 1])
    }

    func u32(_ at: Int) -> Int { little ? u16(at) | u16(at + 2) << 16 : u16(at) << 16 | u16(at + 2) }

    /// Bytes per value of each TIFF type (1 BYTE … 13 IFD); nil for an unknown type.
    static func typeSize(_ type: UInt16) -> Int? {
        switch type {
        case 1, 2, 6, 7: 1
        case 3, 8: 2
        case 4, 9, 11, 13: 4
        case 5, 10, 12: 8
        default: nil
        }
    }

    /// The entries of the IFD at `offset`, values copied out, pointer tags followed. Entries of
    /// an unknown type are left out (their size cannot be known).
    func readIFD(at offset: Int, depth: Int, visited: Set<Int>) throws -> [Entry] {
        guard depth <= Self.maxDepth else { throw ImageIOError("its Exif block nests IFDs too deeply") }
        guard offset >= 8, offset <= bytes.count - 2, !visited.contains(offset) else {
            throw ImageIOError("its Exif block has an IFD offset outside the block")
        }
        let n = u16(offset)
        guard n <= Self.maxEntries, n * 12 <= bytes.count - offset - 2 else {
            throw ImageIOError("its Exif block has an IFD that runs past the block")
        }
        var entries: [Entry] = []
        for i in 0..<n {
            let e = offset + 2 + 12 * i
            let tag = UInt16(u16(e)), type = UInt16(u16(e + 2)), count = u32(e + 4)
            guard let size = Self.typeSize(type) else { continue }
            let (total, overflow) = size.multipliedReportingOverflow(by: count)
            guard !overflow, total <= bytes.count else {
                throw ImageIOError("its Exif block has a value (tag 0x\(String(tag, radix: 16))) larger than the block")
            }
            let start = total <= 4 ? e + 8 : u32(e + 8)
            guard start <= bytes.count - total else {
                throw ImageIOError("its Exif block has a value (tag 0x\(String(tag, radix: 16))) outside the block")
            }
            var entry = Entry(tag: tag, type: type, count: UInt32(count), value: Array(bytes[start..<(start + total)]))
            if Self.pointerTags.contains(tag) {
                guard (type == 4 || type == 13), count == 1 else {
                    throw ImageIOError("its Exif block has a malformed IFD pointer (tag 0x\(String(tag, radix: 16)))")
                }
                entry.child = try readIFD(at: u32(e + 8), depth: depth + 1, visited: visited.union([offset]))
            }
            entries.append(entry)
        }
        return entries
    }

    /// Lays out `entries` as an IFD at file position `base` (even), followed by its values and
    /// its child IFDs, in ascending tag order (TIFF 6.0 §2), each value and IFD at an even
    /// offset; the next-IFD offset is 0. Pointer entries get their child's new offset.
    static func serialize(_ entries: [Entry], at base: Int, little: Bool) -> [UInt8] {
        let sorted = entries.sorted { $0.tag < $1.tag }
        let head = 2 + 12 * sorted.count + 4
        var out = [UInt8](repeating: 0, count: head)
        func put16(_ v: Int, _ at: Int) {
            out[at] = UInt8(truncatingIfNeeded: little ? v : v >> 8)
            out[at + 1] = UInt8(truncatingIfNeeded: little ? v >> 8 : v)
        }
        func put32(_ v: Int, _ at: Int) {
            put16(little ? v & 0xFFFF : v >> 16, at)
            put16(little ? v >> 16 : v & 0xFFFF, at + 2)
        }
        func align() { if (base + out.count) % 2 == 1 { out.append(0) } }
        put16(sorted.count, 0)
        for (i, e) in sorted.enumerated() {
            let at = 2 + 12 * i
            put16(Int(e.tag), at)
            put16(Int(e.type), at + 2)
            put32(Int(e.count), at + 4)
            if let child = e.child {
                align()
                put32(base + out.count, at + 8)
                out += serialize(child, at: base + out.count, little: little)
            } else if e.value.count <= 4 {
                for (k, b) in e.value.enumerated() { out[at + 8 + k] = b }
            } else {
                align()
                put32(base + out.count, at + 8)
                out += e.value
            }
        }
        align()
        return out
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension ExifMetadata {
    /// Appends the Exif and GPS IFDs to a finished classic TIFF file open as `fd` (written by
    /// libtiff with placeholder EXIFIFD and GPSIFD entries in IFD0, in this block's byte order)
    /// and points those entries at them.
    func appendSubIFDs(toTIFF fd: Int32, name: String) throws {
        func fail(_ why: String) -> ImageIOError { ImageIOError("cannot write \(name): \(why)") }
        func readExactly(_ count: Int, at offset: Int) throws -> [UInt8] {
            var buffer = [UInt8](repeating: 0, count: count)
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
            guard n == count else { throw fail("cannot read back its TIFF directory") }
            return buffer
        }
        func writeAll(_ bytes: [UInt8], at offset: Int) throws {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, bytes.count, off_t(offset)) }
            guard n == bytes.count else { throw fail(String(cString: strerror(errno))) }
        }
        let header = try TIFFStructure(try readExactly(8, at: 0))
        guard header.little == isLittleEndian else { throw fail("the TIFF byte order differs from the Exif's") }
        let ifd0 = header.firstIFD
        let count = TIFFStructure.decode16(try readExactly(2, at: ifd0), little: header.little)
        let entries = try readExactly(12 * count, at: ifd0 + 2)
        for (tag, children) in subIFDsForTIFF() {
            guard
                let index = (0..<count).first(where: {
                    TIFFStructure.decode16(Array(entries[(12 * $0)..<(12 * $0 + 2)]), little: header.little)
                        == Int(tag)
                })
            else { throw fail("libtiff did not write the entry for tag 0x\(String(tag, radix: 16))") }
            var end = Int(lseek(fd, 0, SEEK_END))
            if end % 2 == 1 {
                try writeAll([0], at: end)
                end += 1
            }
            let laid = TIFFStructure.serialize(children, at: end, little: header.little)
            guard end + laid.count < Int(UInt32.max) else { throw fail("the file is too large for its Exif") }
            try writeAll(laid, at: end)
            try writeAll(TIFFStructure.encode32(end, little: header.little), at: ifd0 + 2 + 12 * index + 8)
        }
    }
}

extension TIFFStructure {
    static func decode16(_ b: [UInt8], little: Bool) -> Int {
        little ? Int(b[0]) | Int(b[1]) << 8 : Int(b[0]) << 8 | Int(b[1])
    }

    static func encode32(_ v: Int, little: Bool) -> [UInt8] {
        let b = [UInt8(truncatingIfNeeded: v >> 24), UInt8(truncatingIfNeeded: v >> 16),
                 UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)]
        return little ? b.reversed() : b
    }
}
