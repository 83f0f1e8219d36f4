import Foundation
import GSASRImage
import Testing

/// TIFF, HEIC and AVIF inputs, TIFF outputs, and Exif carried from any input to any output.
/// The fixtures come from tools/make_format_fixtures.py: TIFFs laid out byte by byte from the
/// TIFF 6.0 specification, HEIC and AVIF made by Debian's encoders as a phone would (stored
/// pixels plus a rotation box, an ICC profile, Exif).
@Suite struct FormatTests {
    static let (w, h) = (24, 16)  // the fixtures' stored size

    /// The fixtures' stored sample (x, y, c), as make_format_fixtures.py computes it.
    static func stored8(_ x: Int, _ y: Int, _ c: Int) -> Int { (7 * x + 13 * y + 50 * c + x * y) % 256 }
    static func stored16(_ x: Int, _ y: Int, _ c: Int) -> Int { (1031 * x + 2053 * y + 20000 * c + 17 * x * y) % 65536 }

    /// Where upright pixel (x, y) comes from in the stored image, for Exif orientation 6 (rotate
    /// 90° clockwise to view; the upright image is h x w).
    static func fromOrientation6(_ x: Int, _ y: Int) -> (Int, Int) { (y, h - 1 - x) }

    func formats(_ name: String) -> URL { fixture("formats/\(name)") }

    // MARK: TIFF in

    @Test func sixteenBitRGBWithExifICCAndOrientation() throws {
        let d = try ImageIO.load(formats("rgb16_exif_orient6.tif"))
        #expect(d.sourceFormat == .tiff && d.bitDepth == 16 && !d.isGrey && d.alpha == nil)
        #expect(d.rgb.width == Self.h && d.rgb.height == Self.w && d.appliedOrientation == 6)
        var worst: Float = 0
        for y in 0..<d.rgb.height {
            for x in 0..<d.rgb.width {
                let (sx, sy) = Self.fromOrientation6(x, y)
                for c in 0..<3 {
                    let want = Float(Self.stored16(sx, sy, c)) / 65535
                    worst = max(worst, abs(d.rgb.pixels[(y * d.rgb.width + x) * 3 + c] - want))
                }
            }
        }
        print("16-bit TIFF, orientation 6: max |decoded - stored/65535| = \(worst)")
        #expect(worst == 0)
        #expect(d.iccProfile == (try bytes(formats("icc200.bin"))))
        let exif = try #require(d.exif)
        let tags = ExifTags(exif.tiff)
        #expect(tags.ascii(0x010F) == "GSASRCam" && tags.ascii(0x0110) == "Phone 1")
        #expect(tags.ascii(0x9003) == "2026:12:07 09:59:58")
        #expect(tags.ascii(0x0001, gps: true) == "N" && tags.raw(0x0002, gps: true)?.count == 24)
        #expect(exif.orientation == nil || exif.orientation == 1)
    }

    @Test func planarBigEndianRGBAAndMinIsWhiteAndBilevel() throws {
        let rgba = try ImageIO.load(formats("rgba8_planar_be.tif"))
        #expect(rgba.bitDepth == 8 && rgba.rgb.width == Self.w && rgba.alpha != nil)
        for y in 0..<Self.h {
            for x in 0..<Self.w {
                let i = y * Self.w + x
                for c in 0..<3 { #expect(rgba.rgb.pixels[i * 3 + c] == Float(Self.stored8(x, y, c)) / 255) }
                #expect(rgba.alpha![i] == Float(Self.stored8(x, y, 3)) / 255)
            }
        }
        let grey = try ImageIO.load(formats("grey16_miniswhite.tif"))
        #expect(grey.isGrey && grey.bitDepth == 16)
        for i in [0, 5, 77, Self.w * Self.h - 1] {
            let (x, y) = (i % Self.w, i / Self.w)
            #expect(grey.rgb.pixels[i * 3 + 1] == 1 - Float(Self.stored16(x, y, 0)) / 65535)
        }
        let bilevel = try ImageIO.load(formats("bilevel.tif"))
        #expect(bilevel.isGrey && bilevel.bitDepth == 8)
        for y in 0..<Self.h {
            for x in 0..<Self.w { #expect(bilevel.rgb.pixels[(y * Self.w + x) * 3] == Float((x + y) % 2)) }
        }
        // A page and its reduced-resolution thumbnail are one image.
        #expect(try ImageIO.load(formats("with_thumbnail.tif")).rgb.width == Self.w)
    }

    @Test(arguments: [
        ("five_samples.tif", "5 samples per pixel"), ("cmyk.tif", "CMYK"), ("two_pages.tif", "multi-page TIFF (2 pages)"),
        ("truncated.heic", "cannot decode HEIC"),
        // Found by fuzzing: an overlay whose canvas (61248x4658) is far larger than the image it
        // declares (24x16); libheif filled it for seconds. The canvas is now bounded first (by
        // the declared sides plus a coding block: 153).
        ("fuzz_overlay_canvas.avif", "exceeds the maximum image size"),
    ])
    func refusedInOneLine(file: String, mentions: String) throws {
        do {
            _ = try ImageIO.load(formats(file))
            Issue.record("\(file) decoded")
        } catch let e as ImageIOError {
            print("\(file): \(e.message)")
            #expect(e.message.contains(mentions) && !e.message.contains("\n"))
        }
    }

    /// Damaged TIFFs (every prefix length class, bytes flipped) fail in one line or decode.
    @Test func damagedTIFFsNeverCrash() throws {
        let good = try bytes(formats("rgb16_exif_orient6.tif"))
        var failures = 0
        for cut in stride(from: 0, to: good.count, by: 37) {
            do { _ = try ImageIO.decode(Data(good.prefix(cut))) } catch { failures += 1 }
        }
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            var b = good
            for _ in 0..<4 { b[Int.random(in: 8..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            do { _ = try ImageIO.decode(Data(b)) } catch let e as ImageIOError { #expect(!e.message.contains("\n")) }
        }
        #expect(failures > 0)
    }

    // MARK: TIFF out

    @Test(arguments: [(16, 3), (16, 4), (16, 1), (16, 2), (8, 3), (8, 4)])
    func tiffRoundTrip(depth: Int, channels: Int) throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (w, h) = (37, 23)
        let rgb = Image(width: w, height: h, pixels: testPattern(width: w, height: h, channels: 3))
        let alpha = channels % 2 == 0 ? testPattern(width: w, height: h, channels: 1, seed: 9) : nil
        let url = dir.appendingPathComponent("out.tif")
        try ImageIO.write(
            rgb, alpha: alpha, grey: channels <= 2, to: url,
            options: .init(format: .tiff, depth: depth, icc: Containers.iccProfile(size: 500)))
        let d = try ImageIO.load(url)
        #expect(d.sourceFormat == .tiff && d.bitDepth == depth && d.isGrey == (channels <= 2))
        #expect(d.iccProfile == Containers.iccProfile(size: 500))
        let q: (Float) -> Int = depth == 16 ? { Int(ImageIO.quantize16($0)) } : { Int(ImageIO.quantize($0)) }
        let scale: Float = depth == 16 ? 65535 : 255
        var mismatches = 0
        for i in 0..<(w * h) {
            let want: [Float] =
                channels <= 2
                ? [Float](repeating: (rgb.pixels[i * 3] + rgb.pixels[i * 3 + 1] + rgb.pixels[i * 3 + 2]) / 3, count: 3)
                : Array(rgb.pixels[(i * 3)..<(i * 3 + 3)])
            for c in 0..<3 where Float(q(want[c])) / scale != d.rgb.pixels[i * 3 + c] { mismatches += 1 }
            if let alpha, Float(q(alpha[i])) / scale != d.alpha![i] { mismatches += 1 }
        }
        #expect(mismatches == 0, "\(depth)-bit, \(channels) channels: \(mismatches) samples differ")
    }

    // MARK: AVIF out

    /// An AVIF written through libheif's AV1 encoder decodes back (through libheif and dav1d)
    /// to the same size, with its alpha, its ICC profile and close to the input (PSNR printed).
    @Test(arguments: [3, 4, 1])
    func avifRoundTrip(channels: Int) throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (w, h) = (48, 40)
        var px = [Float](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            for x in 0..<w {
                for c in 0..<3 { px[(y * w + x) * 3 + c] = 0.5 + 0.4 * sin(Float(x + 2 * c) / 5) * cos(Float(y) / 7) }
            }
        }
        let rgb = Image(width: w, height: h, pixels: px)
        let alpha = channels == 4 ? (0..<(w * h)).map { Float($0 % w) / Float(w - 1) } : nil
        let url = dir.appendingPathComponent("out.avif")
        let icc = Containers.iccProfile(size: 600)
        try ImageIO.write(rgb, alpha: alpha, grey: channels == 1, to: url, options: .init(format: .avif, icc: icc))
        let d = try ImageIO.load(url)
        #expect(d.sourceFormat == .avif && d.rgb.width == w && d.rgb.height == h && (d.alpha != nil) == (channels == 4))
        #expect(d.iccProfile == icc)
        var se = 0.0
        for i in 0..<(w * h) {
            let want: [Float] =
                channels == 1
                ? [Float](repeating: (px[i * 3] + px[i * 3 + 1] + px[i * 3 + 2]) / 3, count: 3)
                : Array(px[(i * 3)..<(i * 3 + 3)])
            for c in 0..<3 { se += pow(Double(d.rgb.pixels[i * 3 + c] - want[c]), 2) }
        }
        let psnr = 10 * log10(1 / (se / Double(w * h * 3)))
        print("AVIF \(channels) channels, quality 85: PSNR \(psnr) dB against the input")
        #expect(psnr > 35)
    }

    // MARK: HEIC and AVIF in

    @Test(arguments: ["phone.heic", "phone.avif"])
    func phoneFilesComeOutUprightWithProfileAndExif(file: String) throws {
        let d = try ImageIO.load(formats(file))
        #expect(d.sourceFormat == (file.hasSuffix("heic") ? .heic : .avif) && d.bitDepth == 8)
        #expect(d.rgb.width == Self.h && d.rgb.height == Self.w)
        // Mean error against the upright pattern, and against the wrong turn (orientation 8).
        var right: Float = 0, wrong: Float = 0
        for y in 0..<d.rgb.height {
            for x in 0..<d.rgb.width {
                let (sx, sy) = Self.fromOrientation6(x, y)
                let (wx, wy) = (Self.w - 1 - y, x)
                for c in 0..<3 {
                    let v = d.rgb.pixels[(y * d.rgb.width + x) * 3 + c] * 255
                    right += abs(v - Float(Self.stored8(sx, sy, c)))
                    wrong += abs(v - Float(Self.stored8(wx, wy, c)))
                }
            }
        }
        let n = Float(d.rgb.width * d.rgb.height * 3)
        print("\(file): mean |decoded - upright| = \(right / n) levels; against the opposite turn \(wrong / n)")
        #expect(right / n < 2 && wrong / n > 20)
        #expect(d.iccProfile == (try bytes(formats("icc200.bin"))))
        let exif = try #require(d.exif)
        #expect(exif.orientation == 1)  // the phone's 6, set to 1: the pixels are upright
        #expect(ExifTags(exif.tiff).ascii(0x9003) == "2026:12:07 09:59:58")
    }

    // MARK: Exif out

    /// The block of a phone photo (orientation 6) goes into each output; the decoders (and, for
    /// WebP, the RIFF chunk) give back the same tags with orientation 1; JPEG, PNG and WebP keep
    /// the block byte for byte but for the orientation value.
    @Test(arguments: [OutputFormat.jpeg, .png, .webp, .tiff, .avif])
    func exifSurvivesIntoEveryOutput(format: OutputFormat) throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        for source in ["exif_be_orient6.bin", "exif_le_orient8.bin"] {
            let original = try bytes(formats(source))
            let exif = try #require(ExifMetadata.parse(original))
            #expect(exif.orientation == 1)
            let differing = zip(original, exif.tiff).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset)
            #expect(differing.count == 1 && exif.tiff.count == original.count)  // only the orientation's low byte
            let url = dir.appendingPathComponent("out.\(format.fileExtension)")
            let image = Image(width: 20, height: 12, pixels: testPattern(width: 20, height: 12, channels: 3))
            try ImageIO.write(image, alpha: nil, grey: false, to: url, options: .init(format: format, exif: exif))
            let carried: [UInt8]
            if format == .webp {
                carried = try #require(Containers.webpChunks(try bytes(url)).first { $0.fourcc == "EXIF" }).payload
            } else {
                carried = try #require(try ImageIO.load(url).exif).tiff
            }
            if format != .tiff { #expect(carried == exif.tiff) }
            let tags = ExifTags(carried)
            #expect(tags.ascii(0x010F) == "GSASRCam" && tags.ascii(0x0132) == "2026:12:07 10:00:00")
            #expect(tags.ascii(0x9003) == "2026:12:07 09:59:58")
            #expect(tags.raw(0x829A) == ExifTags(original).raw(0x829A))  // exposure 1/125, as stored
            #expect(tags.raw(0x927C) == Array(0..<16))  // maker note
            #expect(tags.ascii(0x0001, gps: true) == "N")
            #expect(tags.raw(0x0002, gps: true) == ExifTags(original).raw(0x0002, gps: true))
            #expect(tags.short(0x0112) == nil || tags.short(0x0112) == 1)
        }
    }

    /// A malformed Exif block (IFD offset outside it, an IFD running past it, a loop): the image
    /// decodes, the block is dropped with a note.
    @Test func malformedExifIsDroppedWithANote() throws {
        let jpeg = try bytes(fixture("astronaut_q90.jpg"))
        let good = try bytes(formats("exif_le_orient8.bin"))
        let ifd0 = ExifTags(good).u32(4)
        var outside = good
        outside.replaceSubrange(4..<8, with: [0xF0, 0xFF, 0, 0])  // IFD0 offset past the end
        var runsPast = good
        runsPast[ifd0] = 0xFF  // IFD0 entry count 255 + …: its entries run past the block
        var loop = good
        let exifPointer = ExifTags.entryOffset(good, tag: 0x8769)!
        loop[exifPointer + 8] = 8  // the Exif IFD pointer points back at IFD0
        loop[exifPointer + 9] = 0
        loop[exifPointer + 10] = 0
        loop[exifPointer + 11] = 0
        for bad in [outside, runsPast, loop] {
            let file = Containers.insertingSegments(jpeg, [(0xE1, Array("Exif".utf8) + [0, 0] + bad)])
            let d = try ImageIO.decode(Data(file))
            #expect(d.exif == nil)
            #expect(d.notes.contains { $0.contains("Exif not carried") }, "\(d.notes)")
        }
    }
}

/// An independent reader of Exif tags (IFD0, the Exif IFD, the GPS IFD) for the tests.
struct ExifTags {
    let b: [UInt8]
    init(_ b: [UInt8]) { self.b = b }
    var little: Bool { b[0] == 0x49 }
    func u16(_ o: Int) -> Int { little ? Int(b[o]) | Int(b[o + 1]) << 8 : Int(b[o]) << 8 | Int(b[o + 1]) }
    func u32(_ o: Int) -> Int { little ? u16(o) | u16(o + 2) << 16 : u16(o) << 16 | u16(o + 2) }

    /// (type, count, value bytes) of `tag` in the IFD at `ifd`.
    func find(_ tag: Int, in ifd: Int) -> (type: Int, count: Int, value: [UInt8])? {
        for i in 0..<u16(ifd) {
            let e = ifd + 2 + 12 * i
            guard u16(e) == tag else { continue }
            let type = u16(e + 2), count = u32(e + 4)
            let size = ([1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4][type] ?? 0) * count
            let at = size <= 4 ? e + 8 : u32(e + 8)
            return (type, count, Array(b[at..<(at + size)]))
        }
        return nil
    }

    func ifd(gps: Bool, tag: Int) -> Int {
        let ifd0 = u32(4)
        if [0x010F, 0x0110, 0x0112, 0x0132].contains(tag) && !gps { return ifd0 }
        let pointer = find(gps ? 0x8825 : 0x8769, in: ifd0)!.value
        return little
            ? Int(pointer[0]) | Int(pointer[1]) << 8 | Int(pointer[2]) << 16 | Int(pointer[3]) << 24
            : Int(pointer[0]) << 24 | Int(pointer[1]) << 16 | Int(pointer[2]) << 8 | Int(pointer[3])
    }

    func raw(_ tag: Int, gps: Bool = false) -> [UInt8]? { find(tag, in: ifd(gps: gps, tag: tag))?.value }

    func ascii(_ tag: Int, gps: Bool = false) -> String? {
        raw(tag, gps: gps).map { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    func short(_ tag: Int) -> Int? {
        guard let e = find(tag, in: u32(4)), e.type == 3 else { return nil }
        return little ? Int(e.value[0]) | Int(e.value[1]) << 8 : Int(e.value[0]) << 8 | Int(e.value[1])
    }

    /// The byte offset of IFD0's entry for `tag`.
    static func entryOffset(_ b: [UInt8], tag: Int) -> Int? {
        let t = ExifTags(b)
        let ifd0 = t.u32(4)
        return (0..<t.u16(ifd0)).map { ifd0 + 2 + 12 * $0 }.first { t.u16($0) == tag }
    }
}
