import Foundation
import GSASRImage
import Testing

@Suite struct DecodeTests {
    @Test func pngMatchesNumpyExactly() throws {
        let decoded = try ImageIO.load(fixture("astronaut_48x48_lr.png"))
        let ref = try loadNPY("astronaut_48x48_lr.npy")
        #expect(ref.shape == [48, 48, 3])
        #expect(decoded.rgb.width == 48 && decoded.rgb.height == 48 && decoded.rgb.channels == 3)
        #expect(decoded.alpha == nil)
        #expect(decoded.sourceFormat == .png && decoded.bitDepth == 8)
        #expect(decoded.rgb.pixels == ref.values)  // bit-exact: Float(byte) / 255
    }

    @Test func nonSquarePNG() throws {
        let decoded = try ImageIO.load(fixture("coffee_37x50_lr.png"))
        #expect(decoded.rgb.width == 50 && decoded.rgb.height == 37)
    }

    @Test(arguments: [
        ("grey8", false, 8), ("greyalpha8", true, 8), ("rgba8", true, 8), ("palette8", true, 8),
        ("rgbtrns8", true, 8), ("rgb16", false, 16),
    ])
    func pngVariantsDecodeExactly(name: String, hasAlpha: Bool, depth: Int) throws {
        let decoded = try ImageIO.load(fixture("\(name).png"))
        let rgb = try loadNPY("\(name)_rgb.npy")
        #expect(decoded.rgb.height == rgb.shape[0] && decoded.rgb.width == rgb.shape[1])
        #expect(decoded.rgb.pixels == rgb.values)
        #expect(decoded.bitDepth == depth)
        #expect((decoded.alpha != nil) == hasAlpha)
        #expect(decoded.isGrey == name.hasPrefix("grey"))  // palettes count as colour
        if hasAlpha {
            #expect(decoded.alpha! == (try loadNPY("\(name)_alpha.npy")).values)
        }
    }

    /// 16-bit RGBA files are read as stored (libpng's low-level API): the colour is exact and not
    /// premultiplied by alpha, whatever the alpha (the simplified API would premultiply it).
    @Test func rgba16ColourIsExact() throws {
        let decoded = try ImageIO.load(fixture("rgba16.png"))
        let rgb = try loadNPY("rgba16_rgb.npy").values
        let alpha = try loadNPY("rgba16_alpha.npy").values
        #expect(decoded.bitDepth == 16 && !decoded.isGrey)
        #expect(decoded.alpha! == alpha)
        #expect(decoded.rgb.pixels == rgb)
        #expect(alpha.contains { $0 > 0 && $0 < Float(256) / 65535 }, "the fixture has alpha16 < 256")
    }

    @Test func onePixelDecodes() throws {
        let decoded = try ImageIO.load(fixture("one_pixel.png"))
        #expect(decoded.rgb.width == 1 && decoded.rgb.height == 1)
        #expect(decoded.rgb.pixels == [Float(1) / 255, Float(2) / 255, Float(3) / 255])
    }

    @Test(arguments: ["astronaut_q90", "astronaut_grey"])
    func jpegMatchesDjpeg(name: String) throws {
        let decoded = try ImageIO.load(fixture("\(name).jpg"))
        let ref = try loadNPY("\(name)_djpeg.npy")
        #expect(decoded.sourceFormat == .jpeg && decoded.alpha == nil && decoded.bitDepth == 8)
        #expect(decoded.isGrey == (name == "astronaut_grey") && decoded.iccProfile == nil)
        #expect(decoded.appliedOrientation == 1)
        #expect(decoded.rgb.width == 48 && decoded.rgb.height == 48)
        let err = maxAbsDiff(decoded.rgb.pixels, ref.values)
        print("\(name).jpg vs djpeg: max abs err \(err)")
        #expect(err <= 1.0 / 255 + 1e-6)
        // Sanity: the decode is close to the lossless source.
        let lossless = try loadNPY("astronaut_48x48_lr.npy")
        var mean: Float = 0
        for i in 0..<ref.values.count where name == "astronaut_q90" {
            mean += abs(decoded.rgb.pixels[i] - lossless.values[i])
        }
        #expect(mean / Float(ref.values.count) < 0.05)
    }

    @Test func formatDetectedByMagicNotExtension() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let png = dir.appendingPathComponent("really_a_png.jpg")
        let jpg = dir.appendingPathComponent("really_a_jpeg.png")
        try FileManager.default.copyItem(at: fixture("astronaut_48x48_lr.png"), to: png)
        try FileManager.default.copyItem(at: fixture("astronaut_q90.jpg"), to: jpg)
        #expect(try ImageIO.load(png).sourceFormat == .png)
        #expect(try ImageIO.load(jpg).sourceFormat == .jpeg)
    }
}
