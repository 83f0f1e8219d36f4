import Foundation
import GSASR
import Testing

/// Tiling stitches Gaussians, not pixels: a tiled run must give the untiled float render (up to
/// float rounding and the margin's context), with tile sizes that do not divide the image.
@Suite struct TilingTests {
    static let defaultModel: GSASRModel = try! GSASRModel.load(
        directory: Fixtures.packageRoot.appendingPathComponent("Models/default"))
    static let smallModel: GSASRModel = try! GSASRModel.load(directory: Fixtures.url("small"))

    static func photo() throws -> (pixels: [Float], width: Int, height: Int) {
        let img = try ImageIO.load(Fixtures.packageRoot.appendingPathComponent("Examples/seeding_160x120.png")).rgb
        return (img.pixels, img.width, img.height)
    }

    /// Runs the tiled pipeline and collects its rows, checking that they arrive in order.
    static func tiled(
        _ up: Upscaler, tile: Int, margin: Int, image: (pixels: [Float], width: Int, height: Int),
        scale: Double, geometry: GaussianGeometry = .default
    ) throws -> (pixels: [Float], stats: TiledUpscaler.Stats) {
        let t = try TiledUpscaler(upscaler: up, tile: tile, margin: margin)
        var out: [Float] = []
        var next = 0
        let stats = try t.upscale(
            rgb: image.pixels, width: image.width, height: image.height, request: ScaleRequest(scale: scale, geometry: geometry)
        ) { rows, px in
            #expect(rows.lowerBound == next)
            next = rows.upperBound
            out.append(contentsOf: px)
        }
        return (out, stats)
    }

    /// PSNR (peak 1) of a against the reference.
    static func psnr(_ a: [Float], _ ref: [Float]) -> Double {
        var s = 0.0
        for i in ref.indices {
            let d = Double(a[i]) - Double(ref[i])
            s += d * d
        }
        return 10 * log10(1 / max(s / Double(ref.count), 1e-30))
    }

    /// Both geometries (x3.7 on the padded 168 columns is a fractional canvas, 621.6).
    @Test(arguments: [
        (2.0, GaussianGeometry.exact), (3.7, .exact), (3.7, .official), (4.0, .exact),
    ])
    func defaultModelTiledMatchesUntiled(scale: Double, geometry: GaussianGeometry) throws {
        let image = try Self.photo()
        let up = Upscaler(model: Self.defaultModel)
        let ref = try up.upscale(
            rgb: image.pixels, width: image.width, height: image.height,
            request: ScaleRequest(scale: scale, geometry: geometry))
        // Tiles of 48 LR pixels (4 windows) with a margin of 24: 3 rows x 4 columns of tiles on
        // the 160x120 photo (padded 168x120); neither side is a multiple of the tile.
        let (out, stats) = try Self.tiled(up, tile: 48, margin: 24, image: image, scale: scale, geometry: geometry)
        #expect(out.count == ref.pixels.count)
        guard out.count == ref.pixels.count else { return }
        let p = Self.psnr(out, ref.pixels)
        let d = Diff(out, ref.pixels)
        print(
            "tiled vs untiled, default model, x\(scale) \(geometry), tile 48 margin 24: PSNR \(p) dB, \(d), tiles \(stats.tiles)")
        #expect(stats.tiles == 12)
        #expect(stats.lateGaussians == 0)
        #expect(stats.gaussians == ref.gaussianCount)
        #expect(p >= 50)
    }

    /// A size that is no multiple of the window: the render's padded rows and columns lie past
    /// the output and are not emitted (bands that start below the output are skipped).
    @Test func paddedRowsAndColumnsAreCropped() throws {
        let full = try Self.photo()
        let w = 150, h = 110
        var px = [Float](repeating: 0, count: w * h * 3)
        for y in 0..<h { for x in 0..<(w * 3) { px[y * w * 3 + x] = full.pixels[y * full.width * 3 + x] } }
        let image = (pixels: px, width: w, height: h)
        let up = Upscaler(model: Self.defaultModel)
        let ref = try up.upscale(rgb: px, width: w, height: h, scale: 4)
        let (out, stats) = try Self.tiled(up, tile: 48, margin: 24, image: image, scale: 4)
        #expect(out.count == ref.pixels.count)
        guard out.count == ref.pixels.count else { return }
        let p = Self.psnr(out, ref.pixels)
        print("tiled vs untiled, default model, 150x110 x4, tile 48 margin 24: PSNR \(p) dB, \(Diff(out, ref.pixels))")
        #expect(stats.lateGaussians == 0)
        #expect(p >= 50)
    }

    /// The small random-weight model has a 4-pixel window (shift 2) and a 12-pixel denominator.
    @Test func smallModelTiledMatchesUntiled() throws {
        let image = try Self.photo()
        let up = Upscaler(model: Self.smallModel)
        let ref = try up.upscale(rgb: image.pixels, width: image.width, height: image.height, scale: 3)
        let (out, stats) = try Self.tiled(up, tile: 36, margin: 24, image: image, scale: 3)
        let p = Self.psnr(out, ref.pixels)
        print("tiled vs untiled, small model, x3, tile 36 margin 24: PSNR \(p) dB, \(Diff(out, ref.pixels))")
        #expect(stats.lateGaussians == 0)
        #expect(p >= 50)
    }

    /// One tile that covers the image (after the torus margin rule) is the untiled run.
    @Test func oneTileEqualsUntiled() throws {
        let image = try Self.photo()
        let up = Upscaler(model: Self.defaultModel)
        let ref = try up.upscale(rgb: image.pixels, width: image.width, height: image.height, scale: 2.5)
        let (out, stats) = try Self.tiled(up, tile: 192, margin: 12, image: image, scale: 2.5)
        let d = Diff(out, ref.pixels)
        print("one tile vs untiled: \(d)")
        #expect(stats.tiles == 1)
        #expect(d.maxAbs <= 1e-5)
    }

    @Test func badTilesAreRefused() {
        let up = Upscaler(model: Self.defaultModel)
        #expect(throws: UpscaleError.self) { try TiledUpscaler(upscaler: up, tile: 8, margin: 12) }
        #expect(throws: UpscaleError.self) { try TiledUpscaler(upscaler: up, tile: 48, margin: 0) }
    }
}
