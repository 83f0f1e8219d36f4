import Foundation

/// Where the samples of one axis of a render lie, in the normalised units of the image the
/// Gaussians were made for.
///
/// The Gaussians' coordinates are normalised to an image of `extent` pixels on this axis (the
/// render size of the export): pixel `k` of that image, its *zoom-1 pixel*, sits at
/// `2·k/(extent − 1) − 1`. A render of `count` samples starting at zoom-1 pixel `origin` with
/// `zoom` samples per zoom-1 pixel puts sample `i` at the zoom-1 pixel position
///
///     p_i = origin + ((i + ½)/zoom − ½)
///
/// (pixel centres: sample i is the centre of the i-th of `zoom` equal parts of the zoom-1 pixels
/// starting at the left edge `origin − ½`), evaluated in Double in that order and normalised as
/// `Float(2·p_i/(extent − 1) − 1)`. At zoom 1 `p_i = origin + i` exactly, so the samples are the
/// zoom-1 pixels themselves (bit for bit: the same Double expression as the official
/// `linspace`-style grid). For an odd integer zoom Z, sample `Z·(k − origin) + (Z − 1)/2` is
/// zoom-1 pixel `k` exactly (the intermediate values are exact in Double); for an even zoom no
/// sample falls on a zoom-1 pixel.
public struct SampleAxis: Sendable, Equatable {
    /// Number of samples (output pixels) on this axis.
    public var count: Int
    /// Pixels of the image the normalised units refer to (the export's render size).
    public var extent: Int
    /// First zoom-1 pixel of the region.
    public var origin: Int
    /// Samples per zoom-1 pixel (finite, > 0).
    public var zoom: Double

    public init(count: Int, extent: Int, origin: Int = 0, zoom: Double = 1) {
        self.count = count
        self.extent = extent
        self.origin = origin
        self.zoom = zoom
    }

    /// The standard grid of an n-pixel render: origin 0, zoom 1.
    public static func standard(_ n: Int) -> SampleAxis { SampleAxis(count: n, extent: n) }

    /// Whether sample indices equal zoom-1 pixel indices (origin 0, zoom 1).
    public var isIdentity: Bool { origin == 0 && zoom == 1 }

    /// The zoom-1 pixel position of sample `i`, `origin + ((i + ½)/zoom − ½)` in Double.
    @inline(__always)
    public func position(_ i: Int) -> Double {
        Double(origin) + ((Double(i) + 0.5) / zoom - 0.5)
    }

    /// Sample `i` in normalised units, `Float(2·p_i/(extent − 1) − 1)` computed in Double.
    @inline(__always)
    public func coordinate(_ i: Int) -> Float {
        Float(2.0 * position(i) / Double(extent - 1) - 1.0)
    }

    /// The samples whose zoom-1 position lies in the closed interval `[lo, hi]` of zoom-1
    /// pixel columns: `p_i ≥ lo ⇔ i ≥ (lo − origin + ½)·zoom − ½`, and likewise for `hi`. An
    /// empty interval gives `first > last`. Indices are clamped to `[-1, 2·10⁹]`.
    @inline(__always)
    func samples(fromPixel lo: Int32, toPixel hi: Int32) -> (Int32, Int32) {
        let o = Double(origin)
        let first = ((Double(lo) - o + 0.5) * zoom - 0.5).rounded(.up)
        let last = ((Double(hi) - o + 0.5) * zoom - 0.5).rounded(.down)
        return (Int32(max(-1, min(2e9, first))), Int32(max(-1, min(2e9, last))))
    }
}

/// The sample positions of a render on both axes (see ``SampleAxis``). A standard W×H render
/// is `SampleGrid.standard(width: W, height: H)`; a region `(x, y, w, h)` of it at zoom Z is
/// `SampleGrid(x: SampleAxis(count: w·Z, extent: W, origin: x, zoom: Z), y: ...)`.
public struct SampleGrid: Sendable, Equatable {
    public var x: SampleAxis
    public var y: SampleAxis

    public init(x: SampleAxis, y: SampleAxis) {
        self.x = x
        self.y = y
    }

    public static func standard(width: Int, height: Int) -> SampleGrid {
        SampleGrid(x: .standard(width), y: .standard(height))
    }

    /// Output width (samples on x).
    public var width: Int { x.count }
    /// Output height (samples on y).
    public var height: Int { y.count }
}
