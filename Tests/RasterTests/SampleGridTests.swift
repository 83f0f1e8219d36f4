import Foundation
import GSASRRaster
import Testing

/// Rendering a region of the image at any pixel density (``SampleGrid``): zoom 1 is the
/// standard render bit for bit, samples that coincide with zoom-1 pixels equal them bit for bit,
/// and fast mode stays within its ε bound of exact mode on zoomed grids.
@Suite struct SampleGridTests {
    /// The small model's decoder output for coffee 37x50 at x11.3 (padded 48x60): render 542x678,
    /// Gaussians of a few pixels, a padded image.
    static func coffee() throws -> (kernels: GaussianKernels, width: Int, height: Int) {
        let raw = try Fixture.floats("small/coffee_37x50_x11.3_gs_params_f32.npy")
        let (h, w) = GaussianActivation.renderSize(paddedHeight: 48, paddedWidth: 60, scale: 11.3)
        return (GaussianActivation.kernels(fromRaw: raw, width: w, height: h, scale: Float(11.3)), w, h)
    }

    static let modes: [(String, RasterMode)] = [("fast", .fast), ("exact", .exact)]

    static func bits(_ a: [Float]) -> [UInt32] { a.map(\.bitPattern) }

    /// Number of elements whose bits differ (the sizes must agree; -1 when they do not).
    static func differing(_ a: [Float], _ b: [Float]) -> Int {
        a.count == b.count ? zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count : -1
    }

    /// The rows y..<y+h, columns x..<x+w of an HWC image of width `width`.
    static func crop(_ img: [Float], width: Int, x: Int, y: Int, w: Int, h: Int) -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(w * h * 3)
        for r in y..<(y + h) { out += img[((r * width + x) * 3)..<((r * width + x + w) * 3)] }
        return out
    }

    static func region(_ width: Int, _ height: Int, _ x: Int, _ y: Int, _ w: Int, _ h: Int, zoom: Double) -> SampleGrid
    {
        SampleGrid(
            x: SampleAxis(count: Int((Double(w) * zoom).rounded()), extent: width, origin: x, zoom: zoom),
            y: SampleAxis(count: Int((Double(h) * zoom).rounded()), extent: height, origin: y, zoom: zoom))
    }

    @Test func standardAxisIsTheOfficialGrid() {
        for n in [2, 3, 48, 97, 542, 678, 4097] {
            let a = SampleAxis.standard(n)
            #expect(a.isIdentity)
            for i in 0..<n {
                #expect(a.coordinate(i).bitPattern == Float(2.0 * Double(i) / Double(n - 1) - 1.0).bitPattern)
            }
        }
    }

    @Test func oddZoomSamplesFallOnZoomOnePixels() {
        for zoom in [1.0, 3, 5, 7, 9] {
            for origin in [0, 1, 13, 500] {
                let a = SampleAxis(count: 2000, extent: 678, origin: origin, zoom: zoom)
                let z = Int(zoom)
                for k in 0..<(2000 / z) {
                    let i = z * k + (z - 1) / 2
                    #expect(a.position(i) == Double(origin + k))
                    #expect(a.coordinate(i).bitPattern == SampleAxis.standard(678).coordinate(origin + k).bitPattern)
                }
            }
        }
        // Even zooms put samples between zoom-1 pixels: 4 samples at ±1/8, ±3/8 around each.
        let a = SampleAxis(count: 8, extent: 100, origin: 10, zoom: 4)
        #expect((0..<8).map { a.position($0) } == [9.625, 9.875, 10.125, 10.375, 10.625, 10.875, 11.125, 11.375])
    }

    @Test func gridEntryPointEqualsTheStandardRender() throws {
        let (k, w, h) = try Self.coffee()
        for (_, mode) in Self.modes {
            let r = Rasterizer(mode: mode, dmax: 0.1)
            let a = r.forward(k, width: w, height: h)
            let b = r.forward(k, grid: .standard(width: w, height: h))
            #expect(Self.differing(a, b) == 0)
        }
    }

    @Test func regionAtZoomOneIsTheCropBitForBit() throws {
        let (k, w, h) = try Self.coffee()
        let regions = [
            (0, 0, w, h), (0, 0, 17, 9), (10, 20, 40, 30), (w - 33, h - 21, 33, 21), (301, 0, 1, h), (5, 400, 600, 1),
        ]
        for (name, mode) in Self.modes {
            for dmax: Float in [0.1, 1] {
                let r = Rasterizer(mode: mode, dmax: dmax)
                let full = r.forward(k, width: w, height: h)
                for (x, y, rw, rh) in regions {
                    let got = r.forward(k, grid: Self.region(w, h, x, y, rw, rh, zoom: 1))
                    let want = Self.crop(full, width: w, x: x, y: y, w: rw, h: rh)
                    #expect(Self.differing(got, want) == 0, "\(name) dmax \(dmax) region \(x),\(y),\(rw),\(rh)")
                }
            }
        }
    }

    @Test func oddZoomSamplesEqualZoomOnePixelsBitForBit() throws {
        let (k, w, h) = try Self.coffee()
        let (x, y, rw, rh) = (100, 200, 40, 30)
        for (name, mode) in Self.modes {
            let r = Rasterizer(mode: mode, dmax: 0.1)
            let full = r.forward(k, width: w, height: h)
            for z in [3, 5] {
                let g = Self.region(w, h, x, y, rw, rh, zoom: Double(z))
                #expect(g.width == rw * z && g.height == rh * z)
                let img = r.forward(k, grid: g)
                var mismatches = 0
                for ky in 0..<rh {
                    for kx in 0..<rw {
                        let i = z * kx + (z - 1) / 2, j = z * ky + (z - 1) / 2
                        for c in 0..<3 {
                            let got = img[(j * g.width + i) * 3 + c]
                            let want = full[((y + ky) * w + x + kx) * 3 + c]
                            if got.bitPattern != want.bitPattern { mismatches += 1 }
                        }
                    }
                }
                #expect(mismatches == 0, "\(name) zoom \(z): \(mismatches) samples differ from their zoom-1 pixels")
            }
        }
    }

    /// Fast mode skips only pixel/Gaussian pairs outside the ε-ellipse, on any grid: its zoomed
    /// renders stay as close to exact mode's as the standard render does (≤ 1e-5 there).
    @Test func fastMatchesExactOnZoomedGrids() throws {
        let (k, w, h) = try Self.coffee()
        let fast = Rasterizer(mode: .fast, dmax: 0.1), exact = Rasterizer(mode: .exact, dmax: 0.1)
        for (zoom, region) in [
            (4.0, (10, 20, 40, 30)), (2.5, (300, 100, 61, 33)), (0.5, (0, 0, w, h)), (8, (0, 0, 24, 16)),
        ] {
            let g = Self.region(w, h, region.0, region.1, region.2, region.3, zoom: zoom)
            let a = fast.forward(k, grid: g), b = exact.forward(k, grid: g)
            let d = zip(a, b).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
            let mean = b.reduce(0, +) / Float(b.count)
            print("[zoom \(zoom)] \(g.width)x\(g.height): fast vs exact max|d| = \(d), mean value \(mean)")
            #expect(d <= 1e-5)
            #expect(mean > 0.05, "the region should not be empty")
        }
    }

    /// A band of rows of a zoomed grid is the same rows of the whole zoomed render, and the
    /// result does not depend on the thread count.
    @Test func zoomedBandsAndThreadsAreBitIdentical() throws {
        let (k, w, h) = try Self.coffee()
        let g = Self.region(w, h, 50, 60, 70, 50, zoom: 3.7)
        let whole = Rasterizer(mode: .fast, dmax: 0.1, threads: 1).forward(k, grid: g)
        for threads in [2, 3] {
            let r = Rasterizer(mode: .fast, dmax: 0.1, threads: threads)
            #expect(Self.differing(r.forward(k, grid: g), whole) == 0)
            let band = r.forward([k], grid: g, rows: 37..<101)
            #expect(Self.differing(band, Array(whole[(37 * g.width * 3)..<(101 * g.width * 3)])) == 0)
        }
    }
}
