import Foundation
import GSASRImage

/// How far an upscaled image is displaced from its ground truth, to a hundredth of a pixel:
/// the measurement behind the exact geometry (`GaussianGeometry`).
///
/// For a region `R` of the ground truth `G`, the shift `d = (dx, dy)` minimises
///
///     E(d) = Σ_{(x,y) ∈ R} (Ô(x + dx, y + dy) − G(x, y))²
///
/// on the luma (basicsr's Y, in [16, 235]), where `Ô` is the output `O` resampled at
/// fractional positions by separable cubic convolution (Keys, a = −½: exact for quadratics,
/// the kernel MATLAB's bicubic uses). So `d` is where the ground truth's content sits in the
/// output: `d = (−0.6, −0.6)` means the output shows it 0.6 px up and to the left. The search
/// is coarse to fine over `|dx|, |dy| ≤ 2` px (steps 0.25, 0.05, then 0.01), so a shift is
/// resolved to 0.01 px; `R` keeps `margin` pixels away from the image's edges so that every
/// sample `Ô` needs lies inside `O`.
public enum Alignment {
    /// A shift in output pixels and the RMSE (luma) it leaves.
    public struct Shift: Sendable, Equatable, Codable {
        public var dx: Double
        public var dy: Double
        public var rmse: Double
        /// `√(dx² + dy²)`.
        public var magnitude: Double { (dx * dx + dy * dy).squareRoot() }
    }

    /// The search range on each axis, in pixels.
    public static let range = 2.0

    /// Luma as basicsr's `rgb2ycbcr(..., y_only=True)` on 8-bit values: `16 + (65.481·R +
    /// 128.553·G + 24.966·B)/255`, with R, G, B the 8-bit samples.
    static func luma(_ rgb: [UInt8], count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buf, n in
            for i in 0..<count {
                let r = Float(rgb[3 * i]), g = Float(rgb[3 * i + 1]), b = Float(rgb[3 * i + 2])
                buf[i] = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
            }
            n = count
        }
    }

    /// Keys' cubic convolution weights (a = −½) of the four samples around a point at
    /// fraction `t` ∈ [0, 1) past the second of them.
    @inline(__always)
    static func weights(_ t: Double) -> (Float, Float, Float, Float) {
        let a = -0.5
        func near(_ x: Double) -> Double { ((a + 2) * x - (a + 3)) * x * x + 1 }
        func far(_ x: Double) -> Double { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
        return (Float(far(1 + t)), Float(near(t)), Float(near(1 - t)), Float(far(2 - t)))
    }

    /// The best shift of `output` against `gt` (both 8-bit RGB, `width × height`) over the
    /// rectangle `x0..<x1 × y0..<y1` of the ground truth, which must keep at least
    /// ``range`` + 2 pixels from every edge.
    public static func bestShift(
        output: [UInt8], gt: [UInt8], width w: Int, height h: Int, x: Range<Int>, y: Range<Int>
    ) -> Shift {
        precondition(output.count == w * h * 3 && gt.count == w * h * 3, "images must be width × height × 3")
        return bestShift(
            luma: luma(output, count: w * h), gtLuma: luma(gt, count: w * h), width: w, height: h, x: x, y: y)
    }

    /// ``bestShift(output:gt:width:height:x:y:)`` on luma planes already computed.
    static func bestShift(luma o: [Float], gtLuma g: [Float], width w: Int, height h: Int, x: Range<Int>, y: Range<Int>)
        -> Shift
    {
        let pad = Int(range) + 2
        precondition(
            x.lowerBound >= pad && y.lowerBound >= pad && x.upperBound <= w - pad && y.upperBound <= h - pad,
            "the region must keep \(pad) pixels from the edges")
        let rw = x.count, rh = y.count
        // Rows of the region plus the rows the vertical interpolation reads.
        let r0 = y.lowerBound - pad, r1 = y.upperBound + pad
        var horizontal = [Float](repeating: 0, count: (r1 - r0) * rw)
        var cachedDX = Double.nan

        /// E(d)/|R|.
        func error(_ dx: Double, _ dy: Double) -> Double {
            if dx != cachedDX {
                // Ô(x + dx, row) for the region's columns and every row it needs.
                let fx = dx.rounded(.down), wx = weights(dx - fx), ix = Int(fx)
                for r in r0..<r1 {
                    let row = r * w
                    for c in 0..<rw {
                        let s = row + x.lowerBound + c + ix
                        horizontal[(r - r0) * rw + c] =
                            wx.0 * o[s - 1] + wx.1 * o[s] + wx.2 * o[s + 1] + wx.3 * o[s + 2]
                    }
                }
                cachedDX = dx
            }
            let fy = dy.rounded(.down), wy = weights(dy - fy), iy = Int(fy)
            var sum = 0.0
            for rr in 0..<rh {
                let r = y.lowerBound + rr + iy - r0
                var rowSum: Float = 0
                for c in 0..<rw {
                    let v =
                        wy.0 * horizontal[(r - 1) * rw + c] + wy.1 * horizontal[r * rw + c]
                        + wy.2 * horizontal[(r + 1) * rw + c] + wy.3 * horizontal[(r + 2) * rw + c]
                    let e = v - g[(y.lowerBound + rr) * w + x.lowerBound + c]
                    rowSum += e * e
                }
                sum += Double(rowSum)
            }
            return sum / Double(rw * rh)
        }

        var best = (dx: 0.0, dy: 0.0, e: Double.infinity)
        var center = (dx: 0.0, dy: 0.0)
        for (step, reach) in [(0.25, range), (0.05, 0.25), (0.01, 0.05)] {
            let n = Int((reach / step).rounded())
            for i in -n...n {
                let dx = center.dx + Double(i) * step
                guard abs(dx) <= range else { continue }
                for j in -n...n {
                    let dy = center.dy + Double(j) * step
                    guard abs(dy) <= range else { continue }
                    let e = error(dx, dy)
                    if e < best.e { best = (dx, dy, e) }
                }
            }
            center = (best.dx, best.dy)
        }
        return Shift(dx: best.dx, dy: best.dy, rmse: best.e.squareRoot())
    }

    /// The best shifts in the top-left and the bottom-right quarter of a `width × height`
    /// pair, each quarter keeping `border` pixels (at least ``range`` + 2) from the edges.
    public static func quarterShifts(output: [UInt8], gt: [UInt8], width w: Int, height h: Int, border: Int)
        -> (topLeft: Shift, bottomRight: Shift)
    {
        let b = max(border, Int(range) + 2)
        precondition(output.count == w * h * 3 && gt.count == w * h * 3, "images must be width × height × 3")
        let o = luma(output, count: w * h), g = luma(gt, count: w * h)
        let tl = bestShift(luma: o, gtLuma: g, width: w, height: h, x: b..<(w / 2), y: b..<(h / 2))
        let br = bestShift(luma: o, gtLuma: g, width: w, height: h, x: (w / 2)..<(w - b), y: (h / 2)..<(h - b))
        return (tl, br)
    }
}
