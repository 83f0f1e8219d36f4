import Foundation
import GSASRRaster
import Testing

/// The Gaussian overlay: 1-sigma outlines where they belong, centres, and the selection rules.
@Suite struct OverlayTests {
    /// Gaussians in an image of 101×101 pixels (half-extent 50: normalised 0.1 = 5 pixels).
    static func kernels(
        _ list: [(x: Float, y: Float, sx: Float, sy: Float, rho: Float, rgb: (Float, Float, Float), alpha: Float)]
    )
        -> (GaussianKernels, [Float])
    {
        var s: [Float] = [], c: [Float] = [], col: [Float] = [], a: [Float] = []
        for g in list {
            s += [g.sx, g.sy, g.rho]
            c += [g.x, g.y]
            col += [g.rgb.0 * g.alpha, g.rgb.1 * g.alpha, g.rgb.2 * g.alpha]
            a.append(g.alpha)
        }
        return (GaussianKernels(sigmas: s, coords: c, colors: col), a)
    }

    static func grid(zoom: Double) -> SampleGrid {
        let n = Int((101 * zoom).rounded())
        return SampleGrid(
            x: SampleAxis(count: n, extent: 101, origin: 0, zoom: zoom),
            y: SampleAxis(count: n, extent: 101, origin: 0, zoom: zoom))
    }

    @Test func outlineLiesOnTheOneSigmaEllipse() {
        // Sx = 10 px, Sy = 5 px, rho = 0.6, centred at pixel (50, 40); drawn at zoom 2.
        let rho = 0.6, sxp = 10.0, syp = 5.0
        let (k, a) = Self.kernels([(0, -0.2, 0.2, 0.1, Float(rho), (1, 0.5, 0), 0.4)])
        let g = Self.grid(zoom: 2)
        let sel = GaussianOverlay.select(k, opacity: a, grid: g, cap: 10)
        #expect(sel.indices == [0] && sel.maxOpacity == 0.4)
        var img = [Float](repeating: 0, count: g.width * g.height * 3)
        img.withUnsafeMutableBufferPointer {
            GaussianOverlay.draw(k, opacity: a, selection: sel, grid: g, rows: 0..<g.height, into: $0)
        }
        var drawn = 0, nearMissed = 0, farDrawn = 0
        for row in 0..<g.height {
            for col in 0..<g.width {
                let p = (row * g.width + col) * 3
                let on = img[p] != 0
                // The most opaque Gaussian is drawn fully opaque in its own colour.
                if on { #expect(img[p] == 1 && img[p + 1] == 0.5 && img[p + 2] == 0) }
                let dx = g.x.position(col) - 50, dy = g.y.position(row) - 40
                let q =
                    (dx * dx / (sxp * sxp) - 2 * rho * dx * dy / (sxp * syp) + dy * dy / (syp * syp)) / (1 - rho * rho)
                // Distance to the ellipse in output pixels, numerically: march along the ray.
                let r = q.squareRoot()
                let isCentre = abs(dx) <= 0.25 && abs(dy) <= 0.25
                let dist = abs(r - 1) * (dx * dx + dy * dy).squareRoot() / max(r, 1e-9) * 2
                if on { drawn += 1 }
                if dist <= 0.2 && !on { nearMissed += 1 }
                if dist >= 1.5 && on && !isCentre { farDrawn += 1 }
            }
        }
        print("outline: \(drawn) samples drawn, \(nearMissed) missed on the curve, \(farDrawn) drawn far from it")
        // The curve's length is about 99 output pixels (semi-axes 21 and 7.6); a one-pixel line
        // covers at least length/√2 samples.
        #expect(drawn >= 70)
        #expect(nearMissed == 0)
        #expect(farDrawn == 0)
        // The centre is the sample nearest to it: y = Float(-0.2) is just above row 40
        // (39.99999985), so sample row 80, column 101 (50.5·2 − 0.5 rounds away from zero).
        let cy = (Double(Float(-0.2)) + 1) * 50
        let cc = Int(((50.0 + 0.5) * 2 - 0.5).rounded()), cr = Int(((cy + 0.5) * 2 - 0.5).rounded())
        #expect(cr == 80 && cc == 101)
        #expect(img[(cr * g.width + cc) * 3] == 1)
    }

    @Test func bandsDrawTheSameAsTheWhole() {
        let (k, a) = Self.kernels([
            (0, 0, 0.1, 0.1, 0, (1, 0, 0), 0.5), (0.3, 0.1, 0.2, 0.05, -0.5, (0, 1, 0), 0.25),
        ])
        let g = Self.grid(zoom: 3)
        let sel = GaussianOverlay.select(k, opacity: a, grid: g, cap: 10)
        var whole = [Float](repeating: 0.25, count: g.width * g.height * 3)
        whole.withUnsafeMutableBufferPointer {
            GaussianOverlay.draw(k, opacity: a, selection: sel, grid: g, rows: 0..<g.height, into: $0)
        }
        var banded: [Float] = []
        for top in stride(from: 0, to: g.height, by: 37) {
            let rows = top..<min(g.height, top + 37)
            var band = [Float](repeating: 0.25, count: rows.count * g.width * 3)
            band.withUnsafeMutableBufferPointer {
                GaussianOverlay.draw(k, opacity: a, selection: sel, grid: g, rows: rows, into: $0)
            }
            banded += band
        }
        #expect(banded == whole)
        #expect(whole.contains { $0 != 0.25 })
    }

    @Test func selectionSkipsSubPixelTransparentAndOverCap() {
        // 0.004 normalised = 0.2 px: under a pixel at zoom 1 and 2, drawn at zoom 4 (0.8 px half-extent).
        let (k, a) = Self.kernels([
            (0, 0, 0.004, 0.004, 0, (1, 1, 1), 0.5), (0.5, 0.5, 0.1, 0.1, 0, (1, 1, 1), 0.001),
            (-0.5, 0.5, 0.1, 0.1, 0, (1, 1, 1), 0.2), (0.5, -0.5, 0.1, 0.1, 0, (1, 1, 1), 0.9),
            (-0.5, -0.5, 0.1, 0.1, 0, (1, 1, 1), 0.2),
            (5, 5, 0.1, 0.1, 0, (1, 1, 1), 0.9),  // outside the image: not counted at all
        ])
        let s1 = GaussianOverlay.select(k, opacity: a, grid: Self.grid(zoom: 1), cap: 100)
        #expect(s1.indices == [2, 3, 4] && s1.subPixel == 1 && s1.transparent == 1 && s1.overCap == 0)
        let s4 = GaussianOverlay.select(k, opacity: a, grid: Self.grid(zoom: 4), cap: 100)
        #expect(s4.indices == [0, 2, 3, 4] && s4.subPixel == 0)
        // The cap keeps the most opaque (ties: the lower index), in index order.
        let capped = GaussianOverlay.select(k, opacity: a, grid: Self.grid(zoom: 4), cap: 2)
        #expect(capped.indices == [0, 3] && capped.overCap == 2)
        let capped3 = GaussianOverlay.select(k, opacity: a, grid: Self.grid(zoom: 4), cap: 3)
        #expect(capped3.indices == [0, 2, 3] && capped3.overCap == 1)
    }
}
