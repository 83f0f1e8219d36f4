import Foundation
import GSASRImage
import Testing

@Suite struct ResizeTests {
    func hr() throws -> Image {
        let npy = try loadNPY("hr_120x149.npy")
        #expect(npy.shape == [120, 149, 3])
        return Image(width: 149, height: 120, channels: 3, pixels: npy.values)
    }

    @Test(arguments: [("2", 2.0, 60, 75), ("3", 3.0, 40, 50), ("3.7", 3.7, 33, 41), ("4", 4.0, 30, 38)])
    func downscaleMatchesOfficial(tag: String, s: Double, h: Int, w: Int) throws {
        let out = Resize.imresize(try hr(), scale: 1 / s)
        #expect(out.height == h && out.width == w && out.channels == 3)
        let ref = try loadNPY("down_x\(tag)_f32.npy")
        #expect(ref.shape == [h, w, 3])
        let err = maxAbsDiff(out.pixels, ref.values)
        print("imresize 1/\(tag): max abs err vs official f32 = \(err)")
        #expect(err <= 2e-6)

        // The data-prep PNG is the official f32 output quantised (clip, ×255, half-even round).
        let png = try ImageIO.load(fixture("down_x\(tag).png")).rgb.bytes()
        #expect(ref.values.map(ImageIO.quantize) == png)
        let mine = out.bytes()
        let differing = zip(mine, png).filter { $0 != $1 }.count
        print("imresize 1/\(tag): \(differing) of \(png.count) PNG bytes differ")
        #expect(differing <= png.count / 1000)
    }

    @Test func upscaleMatchesOfficialBicubicPNG() throws {
        let lr = try ImageIO.load(fixture("astronaut_48x48_lr.png")).rgb
        let up = Resize.imresize(lr, scale: 4)
        #expect(up.width == 192 && up.height == 192)
        let ref = try ImageIO.load(fixture("astronaut_48x48_bicubic_x4.png")).rgb.bytes()
        let mine = up.bytes()
        let differing = zip(mine, ref).filter { $0 != $1 }.count
        let worst = zip(mine, ref).map { abs(Int($0) - Int($1)) }.max()!
        print("imresize x4 upscale: \(differing) of \(ref.count) bytes differ, max \(worst)")
        #expect(worst <= 1)
        #expect(differing <= ref.count / 1000)
    }

    @Test func planeVariantsAgreeWithImage() throws {
        let image = try hr()
        let full = Resize.imresize(image, scale: 1 / 3.7)
        for c in 0..<3 {
            let plane = Resize.imresize(plane: image.plane(c), width: image.width, height: image.height, scale: 1 / 3.7)
            #expect(plane == full.plane(c))
        }
        // Explicit output size, e.g. floor(scale·W) for an alpha plane.
        let scale = 2.5
        let ow = Int((Double(image.width) * scale).rounded(.down)),
            oh = Int((Double(image.height) * scale).rounded(.down))
        let plane = Resize.imresize(
            plane: image.plane(1), width: image.width, height: image.height,
            scale: scale, outWidth: ow, outHeight: oh)
        #expect(plane.count == ow * oh)
        let ceilSize = Resize.imresize(plane: image.plane(1), width: image.width, height: image.height, scale: scale)
        let cw = Resize.outputLength(image.width, scale: scale)
        #expect(ceilSize.count == cw * Resize.outputLength(image.height, scale: scale))
        // The explicit-size result is the top-left of the ceil-size one (same coordinate map).
        var same = true
        for y in 0..<oh { for x in 0..<ow where plane[y * ow + x] != ceilSize[y * cw + x] { same = false } }
        #expect(same)
    }

    @Test func constantImageStaysConstant() {
        let image = Image(width: 7, height: 5, channels: 3, pixels: [Float](repeating: 0.25, count: 105))
        for scale in [0.3, 0.5, 1.0, 1.7, 4.0] {
            let out = Resize.imresize(image, scale: scale)
            #expect(out.pixels.allSatisfy { abs($0 - 0.25) < 1e-6 }, "scale \(scale)")
        }
    }
}

@Suite struct ResizeTiming {
    @Test func largeImageTiming() {
        let w = 1200, h = 900
        let pixels = (0..<(w * h * 3)).map { Float(($0 * 7919) % 256) / 255 }
        let image = Image(width: w, height: h, channels: 3, pixels: pixels)
        let start = Date()
        let down = Resize.imresize(image, scale: 1 / 4)
        let mid = Date()
        let up = Resize.imresize(down, scale: 4)
        let end = Date()
        print(
            "imresize timing: 1200x900 -> /4 \(mid.timeIntervalSince(start) * 1000) ms, 300x225 -> x4 \(end.timeIntervalSince(mid) * 1000) ms"
        )
        #expect(down.width == 300 && up.width == 1200)
    }
}
