import Foundation

/// Draws Gaussians over a render: each one's 1-sigma ellipse as a one-pixel outline and its
/// centre as one pixel, in its own colour with its opacity, for figures.
///
/// Geometry. A kernel `(x, y, sx, sy, ρ)` in normalised units is, in zoom-1 pixels of an image of
/// `extent` pixels per axis, centred at `c = (x + 1)·(extent − 1)/2` with standard deviations
/// `Sx = sx·(extentX − 1)/2`, `Sy = sy·(extentY − 1)/2` and correlation ρ: the rasterizer's value
/// is `exp(−q/2)` with `q = (dx²/Sx² − 2ρ·dx·dy/(Sx·Sy) + dy²/Sy²)/(1 − ρ²)`, and the 1-sigma
/// ellipse is `q = 1` (its bounding box is `±Sx × ±Sy`). A sample at offset `(dx, dy)` from the
/// centre is on the outline when its distance to the curve, to first order
/// `(√q − 1)/|∇√q|` with the gradient taken per *output* pixel (`∂/∂dx / zoomX`), is at most ½.
///
/// Colour: the un-premultiplied colour `colour·alpha / alpha` clamped to [0, 1], blended as
/// `out·(1 − a) + colour·a` over the (unclamped) float render, Gaussians in increasing index,
/// with the drawing opacity `a = alpha / (the largest alpha drawn)`. GSASR's Gaussians are summed,
/// not composited, so their alphas are weights, often all small (about 0.05 for the bundled
/// model); relative to the largest they show which Gaussians matter, and the most opaque one is
/// drawn fully opaque. Computed in Double per sample; the cost is the outline's bounding box per drawn
/// Gaussian.
public enum GaussianOverlay {
    /// Gaussians with a smaller opacity are not drawn (their outline would change an 8-bit
    /// sample by less than one step).
    public static let minimumOpacity: Float = 1.0 / 255

    /// The Gaussians to draw on a grid, and how many of those reaching it were left out.
    public struct Selection: Sendable {
        /// Indices to draw, increasing.
        public var indices: [Int32]
        /// The largest opacity among them (the drawing opacity is alpha divided by it).
        public var maxOpacity: Float = 0
        /// Left out because the whole 1-sigma ellipse is under one output pixel (both half-extents
        /// `Sx·zoomX` and `Sy·zoomY` below ½).
        public var subPixel = 0
        /// Left out because their opacity is below ``minimumOpacity``.
        public var transparent = 0
        /// Left out by the cap: the `cap` most opaque of the others are drawn (ties: lower index).
        public var overCap = 0
    }

    /// Zoom-1 pixel geometry of Gaussian i: centre, standard deviations and ρ.
    @inline(__always)
    static func geometry(_ k: GaussianKernels, _ i: Int, _ grid: SampleGrid)
        -> (cx: Double, cy: Double, sx: Double, sy: Double, rho: Double)
    {
        let hx = Double(grid.x.extent - 1) / 2, hy = Double(grid.y.extent - 1) / 2
        return (
            (Double(k.coords[2 * i]) + 1) * hx, (Double(k.coords[2 * i + 1]) + 1) * hy,
            Double(k.sigmas[3 * i]) * hx, Double(k.sigmas[3 * i + 1]) * hy, Double(k.sigmas[3 * i + 2])
        )
    }

    /// The samples of `axis` whose zoom-1 positions lie in `[lo, hi]`, or nil.
    @inline(__always)
    static func samples(_ axis: SampleAxis, _ lo: Double, _ hi: Double) -> ClosedRange<Int>? {
        let o = Double(axis.origin)
        let a = ((lo - o + 0.5) * axis.zoom - 0.5).rounded(.up)
        let b = ((hi - o + 0.5) * axis.zoom - 0.5).rounded(.down)
        let first = max(0, a), last = min(Double(axis.count - 1), b)
        guard first <= last else { return nil }
        return Int(first)...Int(last)
    }

    /// The outline's box in samples: the ellipse's box widened by one output pixel.
    @inline(__always)
    static func box(_ g: (cx: Double, cy: Double, sx: Double, sy: Double, rho: Double), _ grid: SampleGrid)
        -> (ClosedRange<Int>, ClosedRange<Int>)?
    {
        let mx = g.sx + 1 / grid.x.zoom, my = g.sy + 1 / grid.y.zoom
        guard let cols = samples(grid.x, g.cx - mx, g.cx + mx), let rows = samples(grid.y, g.cy - my, g.cy + my)
        else { return nil }
        return (cols, rows)
    }

    /// Chooses the Gaussians to draw on `grid` (those whose outline box reaches it).
    public static func select(_ k: GaussianKernels, opacity: [Float], grid: SampleGrid, cap: Int) -> Selection {
        precondition(opacity.count == k.count, "one opacity per Gaussian")
        var candidates: [Int32] = []
        var s = Selection(indices: [])
        for i in 0..<k.count {
            let g = geometry(k, i, grid)
            guard box(g, grid) != nil else { continue }
            if opacity[i] < minimumOpacity {
                s.transparent += 1
            } else if g.sx * grid.x.zoom < 0.5 && g.sy * grid.y.zoom < 0.5 {
                s.subPixel += 1
            } else {
                candidates.append(Int32(i))
            }
        }
        if candidates.count > cap {
            s.overCap = candidates.count - max(0, cap)
            candidates.sort { opacity[Int($0)] != opacity[Int($1)] ? opacity[Int($0)] > opacity[Int($1)] : $0 < $1 }
            candidates.removeLast(candidates.count - max(0, cap))
            candidates.sort()
        }
        s.indices = candidates
        s.maxOpacity = candidates.reduce(0) { max($0, opacity[Int($1)]) }
        return s
    }

    /// Draws the selected Gaussians (from ``select(_:opacity:grid:cap:)`` on the same grid) into the sample rows `rows` of `grid`, held in `band`
    /// (`rows.count × grid.width × 3`, HWC RGB).
    package static func draw(
        _ k: GaussianKernels, opacity: [Float], selection: Selection, grid: SampleGrid, rows: Range<Int>,
        into band: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(band.count == rows.count * grid.width * 3, "band must be rows × width × 3")
        guard !rows.isEmpty else { return }
        let out = band.baseAddress!
        let width = grid.width
        let zx = grid.x.zoom, zy = grid.y.zoom
        @inline(__always) func blend(_ row: Int, _ col: Int, _ c: (Double, Double, Double), _ a: Double) {
            let p = out + ((row - rows.lowerBound) * width + col) * 3
            p[0] = Float(Double(p[0]) * (1 - a) + c.0 * a)
            p[1] = Float(Double(p[1]) * (1 - a) + c.1 * a)
            p[2] = Float(Double(p[2]) * (1 - a) + c.2 * a)
        }
        let scale = selection.maxOpacity > 0 ? 1 / Double(selection.maxOpacity) : 0
        for index in selection.indices {
            let i = Int(index)
            let g = geometry(k, i, grid)
            guard let (cols, boxRows) = box(g, grid) else { continue }
            let r0 = max(boxRows.lowerBound, rows.lowerBound), r1 = min(boxRows.upperBound, rows.upperBound - 1)
            let alpha = Double(opacity[i])
            let a = min(1, alpha * scale)
            func unpremultiplied(_ v: Float) -> Double { min(1, max(0, Double(v) / alpha)) }
            let colour = (
                unpremultiplied(k.colors[3 * i]), unpremultiplied(k.colors[3 * i + 1]),
                unpremultiplied(k.colors[3 * i + 2])
            )
            if r0 <= r1 {
                let oneMinus = max(1e-12, 1 - g.rho * g.rho)
                let ixx = 1 / (g.sx * g.sx * oneMinus), iyy = 1 / (g.sy * g.sy * oneMinus)
                let ixy = -g.rho / (g.sx * g.sy * oneMinus)
                for row in r0...r1 {
                    let dy = grid.y.position(row) - g.cy
                    for col in cols {
                        let dx = grid.x.position(col) - g.cx
                        // q = dᵀΣ⁻¹d and its gradient 2Σ⁻¹d (zoom-1 units), per output pixel.
                        let ux = ixx * dx + ixy * dy, uy = ixy * dx + iyy * dy
                        let q = dx * ux + dy * uy
                        let root = q.squareRoot()
                        guard root > 0 else { continue }
                        let gx = ux / (root * zx), gy = uy / (root * zy)
                        let slope = (gx * gx + gy * gy).squareRoot()
                        if abs(root - 1) <= 0.5 * slope { blend(row, col, colour, a) }
                    }
                }
            }
            // The centre: the sample nearest to it.
            let col = ((g.cx - Double(grid.x.origin) + 0.5) * zx - 0.5).rounded()
            let row = ((g.cy - Double(grid.y.origin) + 0.5) * zy - 0.5).rounded()
            if col >= 0, col < Double(width), row >= Double(rows.lowerBound), row < Double(rows.upperBound) {
                blend(Int(row), Int(col), colour, a)
            }
        }
    }
}
