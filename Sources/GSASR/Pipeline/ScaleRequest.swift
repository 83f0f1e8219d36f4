import Foundation

/// What the user asked for: a scale factor, or an output size (both sides, or one side with the
/// aspect kept), turned into the scale per axis that the render uses and the one scale the
/// decoder is conditioned on.
///
/// Sizes follow the official rounding: output = floor(scale · input) per axis. A size request
/// is met exactly:
/// - when some single scale s gives floor(s·w) = W and floor(s·h) = H (the isotropic case up to
///   rounding, e.g. 1000x563 → 1920x1080), that s is used;
/// - otherwise the aspect changes and each axis gets its own scale. **This is our extension;
///   the official code is isotropic only.** The Gaussians' x and y extents are stretched by
///   their axis's scale (the correlation and the normalised positions are invariant under an
///   axis stretch), and the decoder is conditioned on the geometric mean √(sx·sy), the
///   isotropic scale of the same output area (an assumption).
///
/// Which scale of the interval [W/w, (W+1)/w) of scales with floor(s·w) = W is taken depends on
/// the ``geometry``, because with the exact geometry the scale is also where the picture lands:
/// - `GaussianGeometry/exact`: W/w itself (nudged up by the last bits when floating-point
///   rounding would floor s·w below W), so that the input's w pixels span exactly the W output
///   pixels; for one isotropic scale, the larger of W/w and H/h (one axis spans its output
///   exactly, the other overshoots by less than a pixel, cropped as with `-s`).
/// - `GaussianGeometry/official`: the middle of the interval (of the intersection of both
///   axes' intervals for one isotropic scale), our choice before the exact geometry existed,
///   kept so that `--geometry official` reproduces earlier outputs bit for bit.
public struct ScaleRequest: Sendable, Equatable {
    public var scaleX: Double
    public var scaleY: Double
    /// The scale the decoder's scale embedding receives.
    public var conditioning: Double
    /// Where the Gaussians' means land on the output (exact by default).
    public var geometry: GaussianGeometry
    public var isIsotropic: Bool { scaleX == scaleY }

    public init(scale: Double, geometry: GaussianGeometry = .default) {
        scaleX = scale
        scaleY = scale
        conditioning = scale
        self.geometry = geometry
    }

    public init(scaleX: Double, scaleY: Double, geometry: GaussianGeometry = .default) {
        self.scaleX = scaleX
        self.scaleY = scaleY
        conditioning = scaleX == scaleY ? scaleX : (scaleX * scaleY).squareRoot()
        self.geometry = geometry
    }

    /// The smallest Double s ≥ target/n with floor(s·n) = target: target/n, raised by ulps
    /// where the product rounds below the target.
    static func exactRatio(_ target: Int, _ n: Int) -> Double {
        var s = Double(target) / Double(n)
        while Int((s * Double(n)).rounded(.down)) < target { s = s.nextUp }
        return s
    }

    /// Exactly one of the four may be given (none: `defaultScale`). Sizes must be at least the
    /// input's (GSASR upscales).
    public static func resolve(
        inputWidth w: Int, inputHeight h: Int, scale: Double?, size: (width: Int, height: Int)?, width: Int?,
        height: Int?, defaultScale: Double = 4, geometry: GaussianGeometry = .default
    ) throws -> ScaleRequest {
        let given = [scale != nil, size != nil, width != nil, height != nil].filter { $0 }.count
        guard given <= 1 else { throw UpscaleError("give only one of -s/--scale, --size, --width and --height") }
        guard w > 0, h > 0 else { throw UpscaleError("input \(w)x\(h) is empty") }
        func check(_ target: Int, _ input: Int, _ what: String) throws {
            guard target > 0 else { throw UpscaleError("\(what) \(target) must be a positive number of pixels") }
            guard target >= input else {
                throw UpscaleError("\(what) \(target) is smaller than the input's \(input); GSASR upscales")
            }
        }
        /// The scales s with floor(s·n) = target: [target/n, (target+1)/n).
        func interval(_ target: Int, _ n: Int) -> (lo: Double, hi: Double) {
            (Double(target) / Double(n), Double(target + 1) / Double(n))
        }
        /// The scale this geometry takes for one axis (see the type's documentation).
        func axisScale(_ target: Int, _ n: Int) -> Double {
            switch geometry {
            case .exact: return exactRatio(target, n)
            case .official:
                let a = interval(target, n)
                return (a.lo + a.hi) / 2
            }
        }
        func meets(_ s: Double, _ tw: Int, _ th: Int) -> Bool {
            Int((s * Double(w)).rounded(.down)) == tw && Int((s * Double(h)).rounded(.down)) == th
        }
        if let (tw, th) = size {
            guard tw > 0, th > 0 else { throw UpscaleError("--size \(tw)x\(th) must be positive on both sides") }
            try check(tw, w, "--size width")
            try check(th, h, "--size height")
            switch geometry {
            case .exact:
                let s = max(exactRatio(tw, w), exactRatio(th, h))
                if meets(s, tw, th) { return ScaleRequest(scale: s, geometry: geometry) }
            case .official:
                let a = interval(tw, w), b = interval(th, h)
                let lo = max(a.lo, b.lo), hi = min(a.hi, b.hi)
                if lo < hi {
                    let s = (lo + hi) / 2
                    if meets(s, tw, th) { return ScaleRequest(scale: s, geometry: geometry) }
                }
            }
            return ScaleRequest(scaleX: axisScale(tw, w), scaleY: axisScale(th, h), geometry: geometry)
        }
        if let tw = width {
            try check(tw, w, "--width")
            return ScaleRequest(scale: axisScale(tw, w), geometry: geometry)
        }
        if let th = height {
            try check(th, h, "--height")
            return ScaleRequest(scale: axisScale(th, h), geometry: geometry)
        }
        return ScaleRequest(scale: scale ?? defaultScale, geometry: geometry)
    }

    /// Parses "WxH" (also "W×H" or "W,H").
    public static func parseSize(_ text: String) throws -> (width: Int, height: Int) {
        let parts = text.lowercased().split(whereSeparator: { $0 == "x" || $0 == "×" || $0 == "," })
        guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]) else {
            throw UpscaleError("--size '\(text)' is not WIDTHxHEIGHT (e.g. 1920x1080)")
        }
        return (a, b)
    }
}
