import Foundation
import GSASRImage
import Testing

@Suite struct WriteTests {
    @Test func roundTripRGB() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = try ImageIO.load(fixture("astronaut_48x48_lr.png")).rgb
        let url = dir.appendingPathComponent("out.png")
        try ImageIO.writePNG(source, alpha: nil, to: url)
        let back = try ImageIO.load(url)
        #expect(back.alpha == nil && back.bitDepth == 8)
        #expect(back.rgb == source)
    }

    @Test func roundTripRGBA() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = try ImageIO.load(fixture("rgba8.png"))
        let url = dir.appendingPathComponent("out.png")
        try ImageIO.writePNG(source.rgb, alpha: source.alpha, to: url)
        let back = try ImageIO.load(url)
        #expect(back.rgb == source.rgb)
        #expect(back.alpha == source.alpha)
    }

    @Test func writeQuantisesAndClamps() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let values: [Float] = [-0.3, 0, 1.7, 0.5, Float(2.5) / 255, .nan]
        let url = dir.appendingPathComponent("q.png")
        try ImageIO.writePNG(Image(width: 2, height: 1, pixels: values), alpha: [1, 0.25], to: url)
        let back = try ImageIO.load(url)
        #expect(back.rgb.bytes() == [0, 0, 255, 128, 2, 0])
        #expect(back.alpha!.map(ImageIO.quantize) == [255, 64])
    }

    @Test func atomicWriteLeavesOnlyTheDestination() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = try ImageIO.load(fixture("coffee_37x50_lr.png")).rgb
        let url = dir.appendingPathComponent("result.png")
        try ImageIO.writePNG(image, alpha: nil, to: url)
        try ImageIO.writePNG(image, alpha: nil, to: url)  // overwrite
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["result.png"])

        // A failing write (bad alpha length) leaves the existing file untouched and no temp file.
        let before = try Data(contentsOf: url)
        #expect(throws: ImageIOError.self) { try ImageIO.writePNG(image, alpha: [0.5], to: url) }
        #expect(try Data(contentsOf: url) == before)
        // A missing directory fails cleanly.
        let nowhere = dir.appendingPathComponent("missing/sub/out.png")
        #expect(throws: ImageIOError.self) { try ImageIO.writePNG(image, alpha: nil, to: nowhere) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["result.png"])
    }

    /// `quantize` is clamp, ×255 in Float32, then round half to even, like numpy's
    /// `np.clip(x*255).round()` (on already-clamped data).
    @Test func quantizeRoundsHalfToEven() {
        var ties = 0
        for k in 0..<255 {
            let target = Float(k) + 0.5
            var v = target / 255
            for _ in 0..<4 { v = v.nextDown }
            for _ in 0..<9 {
                if v * 255 == target {
                    ties += 1
                    let expected = UInt8(k % 2 == 0 ? k : k + 1)
                    #expect(ImageIO.quantize(v) == expected, "k=\(k) v=\(v)")
                }
                v = v.nextUp
            }
        }
        print("quantize: checked \(ties) exact .5 ties")
        #expect(ties > 100)
        #expect(ImageIO.quantize(0) == 0)
        #expect(ImageIO.quantize(1) == 255)
        #expect(ImageIO.quantize(-1) == 0)
        #expect(ImageIO.quantize(3) == 255)
        #expect(ImageIO.quantize(.nan) == 0)
        #expect(ImageIO.quantize(.infinity) == 255)
        for b in 0...255 { #expect(ImageIO.quantize(Float(b) / 255) == UInt8(b)) }
    }
}
