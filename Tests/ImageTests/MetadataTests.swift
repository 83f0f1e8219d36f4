import CImageZlib
import CWebP
import Foundation
import GSASRImage
import Testing

/// ICC profiles and Exif orientation: read from inputs, carried byte for byte into outputs.
@Suite struct MetadataTests {
    let rgbProfile = Containers.iccProfile(size: 3144)
    /// Larger than one JPEG APP2 segment (65519 bytes): three segments.
    let bigProfile = Containers.iccProfile(size: 150_000, seed: 3)

    func writeImage(_ url: URL, format: OutputFormat, icc: [UInt8]?, width: Int = 24, height: Int = 16) throws {
        let image = Image(width: width, height: height, pixels: testPattern(width: width, height: height, channels: 3))
        try ImageIO.write(image, alpha: nil, grey: false, to: url, options: .init(format: format, icc: icc))
    }

    /// PNG: an iCCP chunk (keyword, NUL, method 0, zlib stream) that zlib's own `uncompress`
    /// turns back into the profile, no sRGB chunk beside it; the decoder returns the same bytes.
    @Test func pngProfileRoundTrip() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        for profile in [rgbProfile, bigProfile] {
            let url = dir.appendingPathComponent("icc.png")
            try writeImage(url, format: .png, icc: profile)
            let chunks = Containers.pngChunks(try bytes(url))
            #expect(chunks.map(\.type).firstIndex(of: "iCCP")! < chunks.map(\.type).firstIndex(of: "IDAT")!)
            #expect(!chunks.contains { $0.type == "sRGB" })
            let data = chunks.first { $0.type == "iCCP" }!.data
            let nul = data.firstIndex(of: 0)!
            #expect(nul >= 1 && nul <= 79 && data[nul + 1] == 0)
            var out = [UInt8](repeating: 0, count: profile.count + 16)
            var size = uLongf(out.count)
            let stream = Array(data[(nul + 2)...])
            #expect(uncompress(&out, &size, stream, uLong(stream.count)) == Z_OK)
            #expect(Array(out.prefix(Int(size))) == profile)
            #expect(try ImageIO.load(url).iccProfile == profile)
        }
        // Without a profile: an sRGB chunk and no iCCP.
        let plain = dir.appendingPathComponent("plain.png")
        try writeImage(plain, format: .png, icc: nil)
        let types = Containers.pngChunks(try bytes(plain)).map(\.type)
        #expect(types.contains("sRGB") && !types.contains("iCCP"))
        #expect(try ImageIO.load(plain).iccProfile == nil)
    }

    /// JPEG: APP2 segments of at most 65519 profile bytes, numbered 1...n of n, after the JFIF
    /// header; the decoder joins them back.
    @Test func jpegProfileRoundTrip() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("icc.jpg")
        try writeImage(url, format: .jpeg, icc: bigProfile)
        let segments = Containers.jpegSegments(try bytes(url))
        #expect(segments.first?.marker == 0xE0)  // JFIF first
        let app2 = segments.filter { $0.marker == 0xE2 }
        #expect(app2.count == 3)
        var joined: [UInt8] = []
        for (k, s) in app2.enumerated() {
            #expect(s.payload.prefix(12).elementsEqual("ICC_PROFILE\0".utf8))
            #expect(s.payload[12] == UInt8(k + 1) && s.payload[13] == 3)
            #expect(s.payload.count - 14 <= 65519)
            joined += s.payload[14...]
        }
        #expect(joined == bigProfile)
        #expect(app2[0].payload.count - 14 == 65519)
        let decoded = try ImageIO.load(url)
        #expect(decoded.iccProfile == bigProfile)
        #expect(decoded.rgb.width == 24 && decoded.rgb.height == 16)
    }

    /// Segments written by another program, out of order, are joined by sequence number; a
    /// missing, repeated or inconsistent segment makes the profile absent (the image still decodes).
    @Test func jpegProfileSegmentsFromElsewhere() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let plain = try bytes(fixture("astronaut_q90.jpg"))
        let parts = [Array(rgbProfile[0..<1000]), Array(rgbProfile[1000..<2000]), Array(rgbProfile[2000...])]
        func segment(_ seq: Int, _ count: Int, _ part: [UInt8]) -> (marker: UInt8, payload: [UInt8]) {
            (0xE2, Array("ICC_PROFILE".utf8) + [0, UInt8(seq), UInt8(count)] + part)
        }
        let cases: [([(marker: UInt8, payload: [UInt8])], [UInt8]?)] = [
            ([segment(2, 3, parts[1]), segment(3, 3, parts[2]), segment(1, 3, parts[0])], rgbProfile),
            ([segment(1, 3, parts[0]), segment(3, 3, parts[2])], nil),
            ([segment(1, 3, parts[0]), segment(2, 3, parts[1]), segment(2, 3, parts[1])], nil),
            ([segment(1, 3, parts[0]), segment(2, 2, parts[1]), segment(3, 3, parts[2])], nil),
            ([segment(0, 1, parts[0])], nil),
            ([(0xE2, Array("ICC_PROFILE".utf8))], nil),
        ]
        for (k, (segments, expected)) in cases.enumerated() {
            let url = dir.appendingPathComponent("case\(k).jpg")
            try Data(Containers.insertingSegments(plain, segments)).write(to: url)
            let decoded = try ImageIO.load(url)
            #expect(decoded.iccProfile == expected, "case \(k)")
            #expect(decoded.rgb.width == 48)
        }
    }

    /// WebP: a VP8X container with the ICC flag and an ICCP chunk holding the profile, as both a
    /// RIFF walk and libwebpmux read it.
    @Test func webpProfile() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("icc.webp")
        try writeImage(url, format: .webp, icc: rgbProfile)
        let file = try bytes(url)
        let chunks = Containers.webpChunks(file)
        #expect(chunks.first?.fourcc == "VP8X")
        #expect(chunks.first.map { $0.payload[0] & 0x20 != 0 } == true)  // ICC flag
        #expect(chunks.first { $0.fourcc == "ICCP" }?.payload == rgbProfile)

        let viaMux: [UInt8]? = file.withUnsafeBufferPointer { buf in
            var data = WebPData(bytes: buf.baseAddress, size: buf.count)
            guard let mux = WebPMuxCreate(&data, 0) else { return nil }
            defer { WebPMuxDelete(mux) }
            var chunk = WebPData()
            guard WebPMuxGetChunk(mux, "ICCP", &chunk) == WEBP_MUX_OK, let p = chunk.bytes else { return nil }
            return Array(UnsafeBufferPointer(start: p, count: chunk.size))
        }
        #expect(viaMux == rgbProfile)
        var w: Int32 = 0, h: Int32 = 0
        #expect(WebPGetInfo(file, file.count, &w, &h) == 1 && w == 24 && h == 16)
        // Without a profile: a plain lossy WebP (no ICCP).
        try writeImage(url, format: .webp, icc: nil)
        #expect(!Containers.webpChunks(try bytes(url)).contains { $0.fourcc == "ICCP" })
    }

    /// A profile is carried only with a valid ICC header (size field = bytes held, 'acsp' at
    /// 36) and at most 16 MiB; otherwise it is dropped with a note (issue 29: 16 MB of zeros in an
    /// iCCP chunk used to be copied into the output).
    @Test func invalidOrHugeProfilesAreDroppedWithANote() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var wrongSize = rgbProfile
        wrongSize[3] ^= 0x01
        var huge = [UInt8](repeating: 0, count: (16 << 20) + 1000)
        huge.replaceSubrange(0..<132, with: Containers.iccProfile(size: 132))
        for k in 0..<4 { huge[k] = UInt8(truncatingIfNeeded: huge.count >> (24 - 8 * k)) }
        for (name, profile, format, mentions) in [
            ("zeros", [UInt8](repeating: 0, count: 16 << 20), OutputFormat.png, "has no 'acsp' signature"),
            ("size", wrongSize, .png, "declares 3145 bytes but holds 3144"),
            ("short", Array(rgbProfile[0..<100]), .png, "shorter than an ICC header"),
            ("huge", huge, .png, "over 16 MiB"),
            ("jpeg size", wrongSize, .jpeg, "declares 3145 bytes but holds 3144"),
        ] {
            let url = dir.appendingPathComponent("\(name).\(format == .png ? "png" : "jpg")")
            try writeImage(url, format: format, icc: profile)
            let decoded = try ImageIO.load(url)
            print("profile \(name): \(decoded.notes)")
            #expect(decoded.iccProfile == nil, "\(name)")
            #expect(decoded.notes.count == 1 && decoded.notes[0].contains(mentions), "\(name): \(decoded.notes)")
        }
        // A valid one has no note.
        let url = dir.appendingPathComponent("good.png")
        try writeImage(url, format: .png, icc: rgbProfile)
        let good = try ImageIO.load(url)
        #expect(good.iccProfile == rgbProfile && good.notes.isEmpty)
    }

    /// An animated PNG (an acTL chunk before the IDAT) decodes to its default image, the first
    /// frame, with a note giving the frame count.
    @Test func animatedPNGIsNoted() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("still.png")
        try writeImage(url, format: .png, icc: nil)
        let still = try bytes(url)
        // Insert acTL (num_frames 3, num_plays 0) after IHDR (8 + 25 bytes).
        let body: [UInt8] = Array("acTL".utf8) + [0, 0, 0, 3, 0, 0, 0, 0]
        let crc = body.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, UInt32($0.count))) }
        let chunk: [UInt8] = [0, 0, 0, 8] + body + (0..<4).map { UInt8(truncatingIfNeeded: crc >> (24 - 8 * $0)) }
        let apng = Array(still[0..<33]) + chunk + Array(still[33...])
        let animated = dir.appendingPathComponent("anim.png")
        try Data(apng).write(to: animated)
        let a = try ImageIO.load(animated), s = try ImageIO.load(url)
        print("apng: \(a.notes)")
        #expect(a.rgb.pixels == s.rgb.pixels)
        #expect(a.notes == ["it is an animated PNG (3 frames): only its first frame is upscaled"])
        #expect(s.notes.isEmpty)
    }

    /// A PNG iCCP chunk with a wrong CRC or a broken zlib stream is ignored; the image decodes.
    @Test func malformedPNGProfileIsIgnored() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("icc.png")
        try writeImage(url, format: .png, icc: rgbProfile)
        let good = try bytes(url)
        let start = try #require(
            (8..<(good.count - 4)).first { good[$0..<($0 + 4)].elementsEqual("iCCP".utf8) })
        var badCRC = good
        let length =
            Int(good[start - 4]) << 24 | Int(good[start - 3]) << 16 | Int(good[start - 2]) << 8 | Int(good[start - 1])
        badCRC[start + 4 + length] ^= 0xFF
        var badStream = good
        badStream[start + 4 + 14 + 5] ^= 0xFF  // inside the zlib stream (CRC left wrong too)
        for (name, file) in [("crc", badCRC), ("stream", badStream)] {
            let bad = dir.appendingPathComponent("\(name).png")
            try Data(file).write(to: bad)
            // libpng's simplified reader may itself reject a damaged ancillary chunk; if it
            // decodes, the profile is absent.
            if let decoded = try? ImageIO.load(bad) { #expect(decoded.iccProfile == nil, "\(name)") }
        }
    }

    // MARK: Exif orientation

    /// A JPEG with red top-left and blue bottom-right corners, stored 40 wide and 24 high, with
    /// an Exif orientation inserted after SOI.
    func orientedJPEG(_ orientation: Int, littleEndian: Bool, dir: URL) throws -> (plain: URL, oriented: URL) {
        let (w, h) = (40, 24)
        var px = [Float](repeating: 0.5, count: w * h * 3)
        for y in 0..<h {
            for x in 0..<w {
                let i = (y * w + x) * 3
                if x < 16 && y < 8 { (px[i], px[i + 1], px[i + 2]) = (1, 0, 0) }
                if x >= 32 && y >= 16 { (px[i], px[i + 1], px[i + 2]) = (0, 0, 1) }
            }
        }
        let plain = dir.appendingPathComponent("plain.jpg")
        try ImageIO.write(
            Image(width: w, height: h, pixels: px), alpha: nil, grey: false, to: plain, options: .init(format: .jpeg))
        let oriented = dir.appendingPathComponent("o\(orientation)\(littleEndian ? "II" : "MM").jpg")
        let exif = Containers.exifPayload(orientation: orientation, littleEndian: littleEndian)
        try Data(Containers.insertingSegments(try bytes(plain), [(0xE1, exif)])).write(to: oriented)
        return (plain, oriented)
    }

    /// Every orientation in both byte orders: the result is the stored decode turned as the
    /// Exif specification says (computed here independently), so orientations 5-8 swap the sides.
    @Test(arguments: [true, false])
    func everyOrientationIsApplied(littleEndian: Bool) throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        for orientation in 1...8 {
            let (plainURL, url) = try orientedJPEG(orientation, littleEndian: littleEndian, dir: dir)
            let stored = try ImageIO.load(plainURL).rgb
            let decoded = try ImageIO.load(url)
            let (W, H) = (stored.width, stored.height)
            let swaps = orientation >= 5
            #expect(decoded.appliedOrientation == orientation)
            #expect(decoded.rgb.width == (swaps ? H : W) && decoded.rgb.height == (swaps ? W : H))
            var mismatches = 0
            for y in 0..<decoded.rgb.height {
                for x in 0..<decoded.rgb.width {
                    // Where the upright pixel (x, y) sits in the stored image.
                    let (sx, sy): (Int, Int)
                    switch orientation {
                    case 1: (sx, sy) = (x, y)
                    case 2: (sx, sy) = (W - 1 - x, y)
                    case 3: (sx, sy) = (W - 1 - x, H - 1 - y)
                    case 4: (sx, sy) = (x, H - 1 - y)
                    case 5: (sx, sy) = (y, x)
                    case 6: (sx, sy) = (y, H - 1 - x)
                    case 7: (sx, sy) = (W - 1 - y, H - 1 - x)
                    default: (sx, sy) = (W - 1 - y, x)
                    }
                    for c in 0..<3
                    where decoded.rgb.pixels[(y * decoded.rgb.width + x) * 3 + c]
                        != stored.pixels[(sy * W + sx) * 3 + c]
                    {
                        mismatches += 1
                    }
                }
            }
            #expect(mismatches == 0, "orientation \(orientation)")
        }
    }

    /// Orientation 6 (the usual portrait phone photo): 24 wide, 40 high, and the stored red
    /// top-left corner is now the top-right one.
    @Test func rotatedPhoneJPEGComesOutUpright() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let decoded = try ImageIO.load(try orientedJPEG(6, littleEndian: false, dir: dir).oriented).rgb
        #expect(decoded.width == 24 && decoded.height == 40)
        func pixel(_ x: Int, _ y: Int) -> [Float] { Array(decoded.pixels[((y * 24 + x) * 3)..<((y * 24 + x) * 3 + 3)]) }
        let topRight = pixel(21, 2), topLeft = pixel(2, 2), bottomLeft = pixel(2, 37)
        #expect(topRight[0] > 0.9 && topRight[1] < 0.1 && topRight[2] < 0.1)  // red
        #expect(abs(topLeft[0] - 0.5) < 0.05)  // grey
        #expect(bottomLeft[2] > 0.9 && bottomLeft[0] < 0.1)  // blue
    }

    /// Malformed Exif blocks are ignored (orientation 1), never a crash: a wrong type, a value
    /// outside 1...8, a bad byte-order mark, a bad magic, IFD offsets and entry counts pointing
    /// outside the segment, and every truncation of a good block up to its orientation entry.
    @Test func malformedExifIsIgnored() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let plain = try bytes(fixture("astronaut_q90.jpg"))
        let good = Containers.exifPayload(orientation: 6, littleEndian: true)
        var variants: [[UInt8]] = [
            Containers.exifPayload(orientation: 6, littleEndian: true, type: 4),
            Containers.exifPayload(orientation: 9, littleEndian: false),
            Containers.exifPayload(orientation: 0, littleEndian: true),
        ]
        var mark = good
        mark[6] = 0x4A
        variants.append(mark)
        var magic = good
        magic[8] = 43
        variants.append(magic)
        var offset = good
        offset[10] = 0xF0  // IFD0 at 240
        variants.append(offset)
        var huge = good  // 65535 entries, and no orientation among those present: the walk runs off the end
        huge[14] = 0xFF
        huge[15] = 0xFF
        huge[6 + 8 + 2 + 12] = 0x13  // tag 0x0112 -> 0x0113
        variants.append(huge)
        var farOffset = good
        farOffset[10...13] = [0xFF, 0xFF, 0xFF, 0xFF]
        variants.append(farOffset)
        // Every truncation that cuts into the orientation entry (the last 4 bytes, the next-IFD
        // offset, are not needed to read it).
        for n in 0..<(good.count - 4) { variants.append(Array(good.prefix(n))) }
        for (k, exif) in variants.enumerated() {
            let url = dir.appendingPathComponent("bad\(k).jpg")
            try Data(Containers.insertingSegments(plain, [(0xE1, exif)])).write(to: url)
            let decoded = try ImageIO.load(url)
            #expect(decoded.appliedOrientation == 1, "variant \(k)")
            #expect(decoded.rgb.width == 48 && decoded.rgb.height == 48)
        }
    }

    /// Random damage to the header segments of a JPEG with Exif and ICC data: every file either
    /// decodes or throws an ImageIOError; nothing crashes (the metadata walk is bounds-checked).
    @Test func damagedHeadersNeverCrash() throws {
        let base = Containers.insertingSegments(
            try bytes(fixture("astronaut_q90.jpg")),
            [
                (0xE1, Containers.exifPayload(orientation: 8, littleEndian: false)),
                (0xE2, Array("ICC_PROFILE".utf8) + [0, 1, 1] + rgbProfile.prefix(400)),
            ])
        let headerEnd = 2 + 4 + Containers.exifPayload(orientation: 8, littleEndian: false).count + 4 + 414
        var state: UInt64 = 99
        func next(_ n: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state >> 33) % n
        }
        var decodedCount = 0
        for k in 0..<300 {
            var file = base
            for _ in 0..<(1 + next(4)) { file[2 + next(headerEnd - 2)] = UInt8(next(256)) }
            if k % 5 == 0 { file = Array(file.prefix(2 + next(headerEnd))) }
            do {
                _ = try ImageIO.decode(Data(file), name: "fuzz\(k).jpg")
                decodedCount += 1
            } catch is ImageIOError {}
        }
        print("damaged JPEG headers: \(decodedCount) of 300 still decode")
    }
}
