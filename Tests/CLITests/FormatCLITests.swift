import Foundation
import GSASR
import Testing

/// Helpers to make inputs with the properties under test and to look inside outputs.
extension CLI {
    static let defaultModel = packageRoot.appendingPathComponent("Models/default")
}

enum Files {
    static func bytes(_ url: URL) throws -> [UInt8] { [UInt8](try Data(contentsOf: url)) }

    /// (bit depth, colour type) from a PNG's IHDR (which always follows the signature).
    static func pngDepthAndColourType(_ url: URL) throws -> (depth: Int, colourType: Int) {
        let b = try bytes(url)
        #expect(b[12..<16].elementsEqual("IHDR".utf8))
        return (Int(b[24]), Int(b[25]))
    }

    /// Components of a baseline JPEG's SOF0 frame.
    static func jpegComponents(_ url: URL) throws -> Int? {
        let b = try bytes(url)
        var o = 2
        while o + 4 <= b.count, b[o] == 0xFF {
            let n = Int(b[o + 2]) << 8 | Int(b[o + 3])
            if b[o + 1] == 0xC0 { return Int(b[o + 4 + 5]) }
            o += 2 + n
        }
        return nil
    }

    /// The payload of a WebP file's ICCP chunk.
    static func webpICCP(_ url: URL) throws -> [UInt8]? {
        let b = try bytes(url)
        var o = 12
        while o + 8 <= b.count {
            let n = Int(b[o + 4]) | Int(b[o + 5]) << 8 | Int(b[o + 6]) << 16 | Int(b[o + 7]) << 24
            if b[o..<(o + 4)].elementsEqual("ICCP".utf8) { return Array(b[(o + 8)..<(o + 8 + n)]) }
            o += 8 + n + (n & 1)
        }
        return nil
    }

    static func iccProfile(size: Int, colourSpace: String = "RGB ") -> [UInt8] {
        var p = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
        for k in 0..<4 { p[k] = UInt8(truncatingIfNeeded: size >> (24 - 8 * k)) }
        p.replaceSubrange(16..<20, with: Array(colourSpace.utf8))
        p.replaceSubrange(36..<40, with: Array("acsp".utf8))
        return p
    }

    /// A smooth colour image with full 16-bit detail.
    static func pattern(width: Int, height: Int) -> Image {
        var px = [Float](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                let i = (y * width + x) * 3
                px[i] = Float(x) / Float(width) * 0.8 + 0.1 + Float(y % 3) / 3000
                px[i + 1] = Float(y) / Float(height) * 0.7 + 0.15 + Float(x % 5) / 7000
                px[i + 2] = 0.5 + 0.3 * sin(Float(x + 2 * y) / 5)
            }
        }
        return Image(width: width, height: height, pixels: px)
    }

    /// Inserts an APP1 Exif segment with the given orientation (big-endian TIFF) after SOI.
    static func withOrientation(_ jpeg: [UInt8], _ orientation: UInt8) -> [UInt8] {
        let tiff: [UInt8] =
            [0x4D, 0x4D, 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, orientation, 0, 0]
            + [0, 0, 0, 0]
        let payload = Array("Exif".utf8) + [0, 0] + tiff
        let n = payload.count + 2
        return Array(jpeg[0..<2]) + [0xFF, 0xE1, UInt8(n >> 8), UInt8(n & 0xFF)] + payload + jpeg[2...]
    }
}

@Suite struct FormatCLITests {
    func upscale(_ input: URL, _ output: URL, _ extra: [String] = [], model: URL = CLI.smallModel) throws {
        let r = try CLI.run(["-i", input.path, "-o", output.path, "-s", "2", "-m", model.path, "-q"] + extra)
        #expect(r.status == 0, "\(r.stderr)")
    }

    /// A 16-bit PNG gives a 16-bit PNG quantised from the float render (values that are not
    /// 8-bit values scaled up, within half an 8-bit step of the 8-bit output); --depth 8 overrides.
    @Test func sixteenBitInSixteenBitOut() throws {
        let d = try CLI.tempDir()
        let input = d.appendingPathComponent("in16.png")
        let src = Files.pattern(width: 30, height: 24)
        try ImageIO.write(src, alpha: nil, grey: false, to: input, options: ImageWriteOptions(format: .png, depth: 16))
        #expect(try Files.pngDepthAndColourType(input) == (16, 2))
        let out16 = d.appendingPathComponent("out16.png"), out8 = d.appendingPathComponent("out8.png")
        try upscale(input, out16)
        try upscale(input, out8, ["--depth", "8"])
        #expect(try Files.pngDepthAndColourType(out16) == (16, 2))
        #expect(try Files.pngDepthAndColourType(out8) == (8, 2))
        let a = try ImageIO.load(out16), b = try ImageIO.load(out8)
        #expect(a.bitDepth == 16 && a.rgb.width == 60 && a.rgb.height == 48)
        var fine = 0, worst: Float = 0
        for i in 0..<a.rgb.pixels.count {
            let v16 = ImageIO.quantize16(a.rgb.pixels[i]), v8 = Float(ImageIO.quantize(b.rgb.pixels[i]))
            if v16 % 257 != 0 { fine += 1 }
            worst = max(worst, abs(Float(v16) / 257 - v8))
        }
        print(
            "16-bit output: \(fine) of \(a.rgb.pixels.count) samples off the 8-bit grid; worst |v16/257 - v8| \(worst)")
        #expect(fine > a.rgb.pixels.count * 9 / 10)
        #expect(worst <= 0.5 + 0.5 / 257 + 1e-4)
        // An 8-bit input can be asked for 16 bits.
        let up16 = d.appendingPathComponent("astronaut16.png")
        try upscale(CLI.photo, up16, ["--depth", "16"])
        #expect(try Files.pngDepthAndColourType(up16) == (16, 2))
    }

    /// Grey in, grey out: PNG colour type 0 (4 with alpha), a one-component JPEG, and the grey
    /// value is the mean of the rendered RGB channels.
    @Test func greyInGreyOut() throws {
        let d = try CLI.tempDir()
        let rgb = try ImageIO.load(CLI.photo).rgb
        let greyInput = d.appendingPathComponent("grey.png")
        try ImageIO.write(rgb, alpha: nil, grey: true, to: greyInput, options: ImageWriteOptions())
        #expect(try Files.pngDepthAndColourType(greyInput) == (8, 0))
        let out = d.appendingPathComponent("grey_x2.png")
        try upscale(greyInput, out)
        #expect(try Files.pngDepthAndColourType(out) == (8, 0))
        let decoded = try ImageIO.load(out)
        #expect(decoded.isGrey && decoded.rgb.width == 96)

        // WebP has no grey mode: the same grey as RGB.
        let webp = d.appendingPathComponent("grey_x2.webp")
        try upscale(greyInput, webp)
        #expect(try Files.bytes(webp).prefix(4).elementsEqual("RIFF".utf8))

        let withAlpha = d.appendingPathComponent("grey_alpha.png")
        try ImageIO.write(
            rgb, alpha: [Float](repeating: 0.5, count: 48 * 48), grey: true, to: withAlpha, options: ImageWriteOptions()
        )
        let outAlpha = d.appendingPathComponent("grey_alpha_x2.png")
        try upscale(withAlpha, outAlpha)
        #expect(try Files.pngDepthAndColourType(outAlpha) == (8, 4))

        let jpegIn = d.appendingPathComponent("grey.jpg")
        try ImageIO.write(rgb, alpha: nil, grey: true, to: jpegIn, options: ImageWriteOptions(format: .jpeg))
        let jpegOut = d.appendingPathComponent("grey_x2.jpg")
        try upscale(jpegIn, jpegOut)
        #expect(try Files.jpegComponents(jpegOut) == 1)
    }

    /// The grey output is the mean of what the RGB output holds (both from the same render).
    @Test func greyValueIsTheChannelMean() throws {
        let d = try CLI.tempDir()
        let rgb = try ImageIO.load(CLI.photo).rgb
        let greyInput = d.appendingPathComponent("grey.png")
        try ImageIO.write(rgb, alpha: nil, grey: true, to: greyInput, options: ImageWriteOptions())
        // The same grey pixels as an RGB file: the model sees identical input.
        let rgbInput = d.appendingPathComponent("grey_as_rgb.png")
        try ImageIO.write(
            try ImageIO.load(greyInput).rgb, alpha: nil, grey: false, to: rgbInput, options: ImageWriteOptions())
        let g = d.appendingPathComponent("g.png"), c = d.appendingPathComponent("c.png")
        try upscale(greyInput, g, ["--depth", "16"])
        try upscale(rgbInput, c, ["--depth", "16"])
        let grey = try ImageIO.load(g).rgb.pixels, colour = try ImageIO.load(c).rgb.pixels
        // Pixels where a channel was clamped (the random-weight model renders outside [0, 1])
        // are left out: the mean of clamped channels is not the clamped mean.
        var worst: Float = 0, channelSpread: Float = 0, compared = 0
        for i in 0..<(grey.count / 3) where (0..<3).allSatisfy({ colour[3 * i + $0] > 0 && colour[3 * i + $0] < 1 }) {
            let mean = (colour[3 * i] + colour[3 * i + 1] + colour[3 * i + 2]) / 3
            worst = max(worst, abs(grey[3 * i] - mean))
            channelSpread = max(channelSpread, abs(colour[3 * i] - colour[3 * i + 2]))
            compared += 1
        }
        print(
            "grey vs mean of RGB over \(compared) unclamped pixels: worst \(worst * 65535) / 65535; RGB channels differ by up to \(channelSpread)"
        )
        #expect(compared > grey.count / 3 / 2)
        #expect(worst <= 1.5 / 65535)  // two 16-bit roundings
        #expect(channelSpread > 4 / 65535, "the test needs channels that differ")
    }

    /// The ICC profile comes out byte for byte: PNG→PNG, JPEG→JPEG, JPEG→PNG, PNG→WebP, JPEG→WebP.
    @Test(arguments: [("png", "png"), ("jpg", "jpg"), ("jpg", "png"), ("png", "webp"), ("jpg", "webp")])
    func iccProfileIsCarried(from: String, to: String) throws {
        let d = try CLI.tempDir()
        let profile = Files.iccProfile(size: from == "jpg" ? 70_000 : 2_000)  // 70 kB: two APP2 segments
        let input = d.appendingPathComponent("in.\(from)")
        try ImageIO.write(
            try ImageIO.load(CLI.photo).rgb, alpha: nil, grey: false, to: input,
            options: ImageWriteOptions(format: OutputFormat(name: from)!, icc: profile))
        #expect(try ImageIO.load(input).iccProfile == profile)
        let out = d.appendingPathComponent("out.\(to)")
        try upscale(input, out)
        if to == "webp" {
            #expect(try Files.webpICCP(out) == profile)
        } else {
            #expect(try ImageIO.load(out).iccProfile == profile)
        }
    }

    /// 16 MB of zeros in an iCCP chunk (no ICC header) is not copied into the output: the run
    /// succeeds, the JPEG has no profile and is small, and a note says why.
    @Test func invalidProfileIsNotCarried() throws {
        let d = try CLI.tempDir()
        let input = d.appendingPathComponent("in.png")
        try ImageIO.write(
            try ImageIO.load(CLI.photo).rgb, alpha: nil, grey: false, to: input,
            options: ImageWriteOptions(format: .png, icc: [UInt8](repeating: 0, count: 16 << 20)))
        let out = d.appendingPathComponent("out.jpg")
        let r = try CLI.run(["-i", input.path, "-o", out.path, "-m", CLI.smallModel.path, "-s", "2", "-q"])
        print("invalid profile: exit \(r.status), \(r.stderr.trimmingCharacters(in: .newlines))")
        #expect(r.status == 0)
        #expect(r.stderr.contains("gsasr: note: in.png: its ICC profile (16777216 bytes) has no 'acsp' signature: not carried"))
        #expect(try ImageIO.load(out).iccProfile == nil)
        let size = try FileManager.default.attributesOfItem(atPath: out.path)[.size] as? Int ?? .max
        #expect(size < 100_000, "output is \(size) bytes")
    }

    /// A grey source's grey profile stays with a grey PNG, but is not put into a WebP (RGB
    /// samples); a note says so and the run succeeds.
    @Test func greyProfileIsNotPutIntoRGB() throws {
        let d = try CLI.tempDir()
        let profile = Files.iccProfile(size: 600, colourSpace: "GRAY")
        let input = d.appendingPathComponent("grey.png")
        try ImageIO.write(
            try ImageIO.load(CLI.photo).rgb, alpha: nil, grey: true, to: input,
            options: ImageWriteOptions(icc: profile))
        let png = d.appendingPathComponent("out.png"), webp = d.appendingPathComponent("out.webp")
        try upscale(input, png)
        #expect(try ImageIO.load(png).iccProfile == profile)
        let r = try CLI.run(["-i", input.path, "-o", webp.path, "-s", "2", "-m", CLI.smallModel.path, "-q"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("grey ICC profile is not carried"), "\(r.stderr)")
        #expect(try Files.webpICCP(webp) == nil)
    }

    /// A phone photo stored sideways with Exif orientation 6 comes out upright: sides swapped,
    /// the stored top-left (red) corner at the top right. (The bundled trained model, since the
    /// random-weight small model does not keep colours.)
    @Test func exifRotatedJPEGComesOutUpright() throws {
        let d = try CLI.tempDir()
        let (w, h) = (40, 24)
        var px = [Float](repeating: 0.5, count: w * h * 3)
        for y in 0..<8 {
            for x in 0..<16 { (px[(y * w + x) * 3], px[(y * w + x) * 3 + 1], px[(y * w + x) * 3 + 2]) = (1, 0, 0) }
        }
        let plain = d.appendingPathComponent("plain.jpg")
        try ImageIO.write(
            Image(width: w, height: h, pixels: px), alpha: nil, grey: false, to: plain,
            options: ImageWriteOptions(format: .jpeg))
        let input = d.appendingPathComponent("phone.jpg")
        try Data(Files.withOrientation(try Files.bytes(plain), 6)).write(to: input)
        let out = d.appendingPathComponent("phone_x2.png")
        try upscale(input, out, model: CLI.defaultModel)
        let img = try ImageIO.load(out).rgb
        #expect(img.width == 48 && img.height == 80)
        func pixel(_ x: Int, _ y: Int) -> [Float] { Array(img.pixels[((y * 48 + x) * 3)..<((y * 48 + x) * 3 + 3)]) }
        let topRight = pixel(44, 4), topLeft = pixel(4, 4)
        print("upright: top-right \(topRight), top-left \(topLeft)")
        #expect(topRight[0] > 0.7 && topRight[1] < 0.3 && topRight[2] < 0.3)
        #expect(abs(topLeft[0] - topLeft[1]) < 0.15)
        // And the output's Exif says orientation 1 (so no second rotation by a viewer).
        let jpegOut = d.appendingPathComponent("phone_x2.jpg")
        try upscale(input, jpegOut, model: CLI.defaultModel)
        let decoded = try ImageIO.load(jpegOut)
        #expect(decoded.rgb.width == 48 && decoded.appliedOrientation == 1)
        #expect(decoded.exif?.orientation == 1)
    }

    /// Formats chosen by extension or -f, and their files are what they say.
    @Test func formatFromExtensionOrFlag() throws {
        let d = try CLI.tempDir()
        for (name, extra, magic) in [
            ("a.jpg", [String](), [UInt8]([0xFF, 0xD8, 0xFF])), ("b.JPEG", [], [0xFF, 0xD8, 0xFF]),
            ("c.webp", ["--quality", "70"], Array("RIFF".utf8)), ("d", ["-f", "webp"], Array("RIFF".utf8)),
            ("e.jpg", ["-f", "jpeg", "--quality", "80"], [0xFF, 0xD8, 0xFF]),
            ("f.png", ["-f", "png"], [0x89, 0x50, 0x4E]),
        ] {
            let out = d.appendingPathComponent(name)
            try upscale(CLI.photo, out, extra)
            #expect(try Files.bytes(out).prefix(magic.count).elementsEqual(magic), "\(name)")
        }
    }
}

extension CLIBadInputTests {
    func rgbaInput(_ d: URL) throws -> URL {
        let url = d.appendingPathComponent("rgba.png")
        try ImageIO.writePNG(try ImageIO.load(CLI.photo).rgb, alpha: [Float](repeating: 0.5, count: 48 * 48), to: url)
        return url
    }

    @Test(arguments: [
        ("out.jpg", ["-f", "png"], "extension .jpg"),
        ("out.png", ["-f", "webp"], "extension .png"),
        ("out.bmp", [], ".bmp"),
        ("out", [], "no extension"),
        ("out.png", ["-f", "gif"], "gif"),
        ("out.png", ["--quality", "90"], "quality"),
        ("out.jpg", ["--quality", "0"], "quality"),
        ("out.webp", ["--quality", "101"], "quality"),
        ("out.jpg", ["--depth", "16"], "8-bit"),
        ("out.webp", ["--depth", "16"], "8-bit"),
        ("out.png", ["--depth", "12"], "depth"),
    ])
    func badOutputOptions(name: String, extra: [String], mentions: String) throws {
        let d = try CLI.tempDir()
        let out = d.appendingPathComponent(name)
        try expectRejected(
            ["-i", CLI.photo.path, "-o", out.path, "-s", "2", "-m", CLI.smallModel.path] + extra, output: out,
            mentions: mentions)
    }

    /// JPEG has no alpha: refused with one line (never silently dropped), nothing written.
    @Test func alphaWithJPEG() throws {
        let d = try CLI.tempDir()
        let input = try rgbaInput(d)
        let out = d.appendingPathComponent("out.jpg")
        try expectRejected(
            ["-i", input.path, "-o", out.path, "-s", "2", "-m", CLI.smallModel.path], output: out, mentions: "alpha")
        #expect(try FileManager.default.contentsOfDirectory(atPath: d.path) == ["rgba.png"])
    }

    @Test func truncatedJPEG() throws {
        let d = try CLI.tempDir()
        let jpeg = d.appendingPathComponent("whole.jpg")
        try ImageIO.write(
            try ImageIO.load(CLI.photo).rgb, alpha: nil, grey: false, to: jpeg,
            options: ImageWriteOptions(format: .jpeg))
        let bytes = try Files.bytes(jpeg)
        let bad = d.appendingPathComponent("truncated.jpg")
        try Data(bytes.prefix(bytes.count * 2 / 3)).write(to: bad)
        try FileManager.default.removeItem(at: jpeg)
        let out = d.appendingPathComponent("out.png")
        try expectRejected(
            ["-i", bad.path, "-o", out.path, "-s", "2", "-m", CLI.smallModel.path], output: out,
            mentions: "truncated.jpg")
    }
}

/// Folder mode: recursion mirrors sub-folders; hidden, system and non-image files are skipped
/// with a note; existing outputs are kept unless --overwrite; a summary line ends the run.
@Suite struct FolderCLITests {
    @Test func recursiveMirrorsSkipsAndSummarises() throws {
        let fm = FileManager.default
        let d = try CLI.tempDir()
        let inDir = d.appendingPathComponent("in"), outDir = d.appendingPathComponent("out")
        for sub in ["sub/deeper", ".hiddendir"] {
            try fm.createDirectory(at: inDir.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        for name in ["a.png", "sub/b.png", "sub/deeper/c.png", ".hidden.png", ".hiddendir/d.png"] {
            try fm.copyItem(at: CLI.photo, to: inDir.appendingPathComponent(name))
        }
        for name in [".DS_Store", "Thumbs.db", "sub/desktop.ini", "notes.txt"] {
            try Data("not an image".utf8).write(to: inDir.appendingPathComponent(name))
        }
        try Data("broken".utf8).write(to: inDir.appendingPathComponent("sub/broken.jpg"))
        // An output that exists already.
        try fm.createDirectory(at: outDir.appendingPathComponent("sub"), withIntermediateDirectories: true)
        let existing = outDir.appendingPathComponent("sub/b.png")
        try Data("keep me".utf8).write(to: existing)

        let args = ["-i", inDir.path, "-o", outDir.path, "-s", "2", "-m", CLI.smallModel.path, "-q", "-r"]
        let r = try CLI.run(args)
        print(r.stderr)
        let lines = r.stderr.split(separator: "\n").map(String.init)
        #expect(r.status == 1)
        #expect(lines.last == "2 succeeded, 1 failed, 7 skipped")
        for skipped in [
            ".DS_Store", "Thumbs.db", "sub/desktop.ini", "notes.txt", ".hidden.png", ".hiddendir/", "sub/b.png",
        ] {
            #expect(lines.contains { $0.hasPrefix("gsasr: skipping \(skipped):") }, "no note for \(skipped)")
        }
        #expect(lines.contains { $0.hasPrefix("gsasr: error: sub/broken.jpg:") })
        #expect(try String(contentsOf: existing, encoding: .utf8) == "keep me")
        #expect(try ImageIO.load(outDir.appendingPathComponent("sub/deeper/c.png")).rgb.width == 96)
        #expect(try ImageIO.load(outDir.appendingPathComponent("a.png")).rgb.width == 96)
        #expect(!fm.fileExists(atPath: outDir.appendingPathComponent(".hiddendir").path))
        #expect(!fm.fileExists(atPath: outDir.appendingPathComponent("sub/broken.png").path))
        #expect(try fm.contentsOfDirectory(atPath: outDir.path).sorted() == ["a.png", "sub"])
        #expect(
            try fm.contentsOfDirectory(atPath: outDir.appendingPathComponent("sub").path).sorted() == [
                "b.png", "deeper",
            ])

        // --overwrite replaces the existing output.
        let again = try CLI.run(args + ["--overwrite"])
        #expect(again.stderr.split(separator: "\n").last == "3 succeeded, 1 failed, 6 skipped", "\(again.stderr)")
        #expect(try ImageIO.load(existing).rgb.width == 96)

        // Without -r the sub-folder is skipped; -f jpg names the outputs .jpg.
        let flat = try CLI.run(
            ["-i", inDir.path, "-o", outDir.path, "-s", "2", "-m", CLI.smallModel.path, "-q", "-f", "jpg"])
        #expect(flat.status == 0, "\(flat.stderr)")
        let flatLines = flat.stderr.split(separator: "\n").map(String.init)
        #expect(flatLines.contains { $0.hasPrefix("gsasr: skipping sub/:") && $0.contains("-r") })
        #expect(flatLines.last == "1 succeeded, 0 failed, 6 skipped")
        #expect(try Files.jpegComponents(outDir.appendingPathComponent("a.jpg")) == 3)
        // No temporary files anywhere in the output.
        let all = fm.enumerator(atPath: outDir.path)!.compactMap { $0 as? String }
        #expect(!all.contains { $0.contains(".tmp-") }, "\(all)")
    }

    /// Outputs of one run that would collide (a.png and a.jpg both → a.png) are not overwritten
    /// by each other: the second is an error.
    @Test func collidingOutputsFail() throws {
        let fm = FileManager.default
        let d = try CLI.tempDir()
        let inDir = d.appendingPathComponent("in"), outDir = d.appendingPathComponent("out")
        try fm.createDirectory(at: inDir, withIntermediateDirectories: true)
        try fm.copyItem(at: CLI.photo, to: inDir.appendingPathComponent("a.png"))
        try ImageIO.write(
            try ImageIO.load(CLI.photo).rgb, alpha: nil, grey: false, to: inDir.appendingPathComponent("a.jpg"),
            options: ImageWriteOptions(format: .jpeg))
        let r = try CLI.run(["-i", inDir.path, "-o", outDir.path, "-s", "2", "-m", CLI.smallModel.path, "-q"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("a.png: its output a.png is also the output of a.jpg"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").last == "1 succeeded, 1 failed, 0 skipped")
    }
}
