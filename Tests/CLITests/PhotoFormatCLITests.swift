import Foundation
import GSASR
import Testing

/// Phone and scanner files through the binary: HEIC, AVIF and TIFF in, TIFF out, Exif carried
/// (or left out with --no-exif), bad files refused in one line with nothing written.
@Suite struct PhotoFormatCLITests {
    static let formats = CLI.packageRoot.appendingPathComponent("Tests/ImageTests/Fixtures/formats")

    func run(_ input: String, _ output: URL, _ extra: [String] = []) throws -> CLI.Result {
        try CLI.run(
            ["-i", Self.formats.appendingPathComponent(input).path, "-o", output.path, "-s", "2", "-m",
             CLI.smallModel.path, "-q"] + extra)
    }

    /// Orientation value and Make of the first APP1 Exif segment of a JPEG (big- or little-endian).
    static func jpegExif(_ url: URL) throws -> (orientation: Int?, hasMake: Bool)? {
        let b = try Files.bytes(url)
        var o = 2
        while o + 4 <= b.count, b[o] == 0xFF, b[o + 1] != 0xDA {
            let n = Int(b[o + 2]) << 8 | Int(b[o + 3])
            let payload = Array(b[(o + 4)..<(o + 2 + n)])
            if b[o + 1] == 0xE1, payload.starts(with: Array("Exif".utf8) + [0, 0]) {
                let t = Array(payload[6...])
                let little = t[0] == 0x49
                func u16(_ i: Int) -> Int { little ? Int(t[i]) | Int(t[i + 1]) << 8 : Int(t[i]) << 8 | Int(t[i + 1]) }
                func u32(_ i: Int) -> Int { little ? u16(i) | u16(i + 2) << 16 : u16(i) << 16 | u16(i + 2) }
                let ifd = u32(4)
                var orientation: Int? = nil
                var make = false
                for k in 0..<u16(ifd) {
                    let e = ifd + 2 + 12 * k
                    if u16(e) == 0x0112 { orientation = u16(e + 8) }
                    if u16(e) == 0x010F { make = true }
                }
                return (orientation, make)
            }
            o += 2 + n
        }
        return nil
    }

    @Test(arguments: ["phone.heic", "phone.avif", "rgb16_exif_orient6.tif"])
    func phoneFileToJPEGKeepsExifUpright(input: String) throws {
        let d = try CLI.tempDir()
        let out = d.appendingPathComponent("out.jpg")
        let r = try run(input, out)
        #expect(r.status == 0, "\(r.stderr)")
        let decoded = try ImageIO.load(out)
        #expect(decoded.rgb.width == 32 && decoded.rgb.height == 48)  // upright 16x24, x2
        let exif = try #require(try Self.jpegExif(out))
        #expect(exif.hasMake && exif.orientation == 1)
        #expect(decoded.appliedOrientation == 1)  // a viewer will not turn it again
        let bare = d.appendingPathComponent("bare.jpg")
        #expect(try run(input, bare, ["--no-exif"]).status == 0)
        #expect(try Self.jpegExif(bare) == nil)
    }

    /// A 16-bit TIFF gives a 16-bit TIFF by default, with its Exif IFDs; TIFF to standard output
    /// (libtiff needs to seek: spooled) gives the same bytes as to a file.
    @Test func sixteenBitTIFFInSixteenBitTIFFOut() throws {
        let d = try CLI.tempDir()
        let out = d.appendingPathComponent("out.tif")
        let r = try run("rgb16_exif_orient6.tif", out)
        #expect(r.status == 0, "\(r.stderr)")
        let decoded = try ImageIO.load(out)
        #expect(decoded.sourceFormat == .tiff && decoded.bitDepth == 16 && decoded.rgb.width == 32)
        #expect(decoded.exif != nil && decoded.iccProfile?.count == 200)
        let piped = try CLI.runBytes(
            ["-i", Self.formats.appendingPathComponent("rgb16_exif_orient6.tif").path, "-o", "-", "-f", "tiff",
             "-s", "2", "-m", CLI.smallModel.path, "-q"])
        #expect(piped.status == 0, "\(piped.stderr)")
        #expect([UInt8](piped.stdout) == (try Files.bytes(out)))
    }

    @Test(arguments: [
        ("truncated.heic", "cannot decode HEIC"), ("five_samples.tif", "5 samples per pixel"),
        ("two_pages.tif", "multi-page TIFF"), ("cmyk.tif", "CMYK"),
    ])
    func badFilesAreRefusedWithNothingWritten(input: String, mentions: String) throws {
        let d = try CLI.tempDir()
        let out = d.appendingPathComponent("out.png")
        let r = try run(input, out)
        #expect(r.status != 0)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1 && r.stderr.contains(mentions), "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: d.path).isEmpty)
    }

    /// Folder mode takes HEIC, AVIF and TIFF files too.
    @Test func folderModeTakesTheNewFormats() throws {
        let d = try CLI.tempDir()
        let input = d.appendingPathComponent("in"), output = d.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        for (name, copy) in [
            ("phone.heic", "phone.heic"), ("phone.avif", "phone2.avif"), ("rgba8_planar_be.tif", "scan.tiff"),
            ("phone.heic", "copy.HEIF"),
        ] {
            try FileManager.default.copyItem(
                at: Self.formats.appendingPathComponent(name), to: input.appendingPathComponent(copy))
        }
        let r = try CLI.run(["-i", input.path, "-o", output.path, "-s", "2", "-m", CLI.smallModel.path, "-q", "-f", "tiff"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: output.path).sorted()
                == ["copy.tif", "phone.tif", "phone2.tif", "scan.tif"])
    }
}
