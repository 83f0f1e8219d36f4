import Foundation

/// What the user asked for: a scale factor, or an output size (both sides, or one side with the
/// aspect kept), turned into the scale per axis that the render uses and the one scale the
/// decoder is conditioned on.
///
/// Sizes follow the official rounding: output = floor(scale · input) per axis. A size request
/// is met exactly:
/// - when some single scale s gives floor(s·w) = W and floor(s·h) = H (the isotropic case up to
///   rounding, e.g. 1000x563 → 1920x1080), that s is used (the middle of the interval of such
///   scales, so that floating-point rounding cannot move the floor);
/// - otherwise the aspect changes and each axis gets its own scale (the middle of its own
///   interval). **This is our extension; the official code is isotropic only.** The Gaussians'
///   x and y extents are stretched by their axis's scale (the correlation and the normalised
///   positions are invariant under an axis stretch), and the decoder is conditioned on the
///   geometric mean √(sx·sy), the isotropic scale of the same output area (an assumption).
public struct ScaleRequest: Sendable, Equatable {
    public var scaleX: Double
    public var scaleY: Double
    /// The scale the decoder's scale embedding receives.
    public var conditioning: Double
    public var isIsotropic: Bool { scaleX == scaleY }

    public init(scale: Double) {
        scaleX = scale
        scaleY = scale
        conditioning = scale
    }

    public init(scaleX: Double, scaleY: Double) {
        self.scaleX = scaleX
        self.scaleY = scaleY
        conditioning = scaleX == scaleY ? scaleX : (scaleX * scaleY).squareRoot()
    }

    /// Exactly one of the four may be given (none: `defaultScale`). Sizes must be at least the
    /// input's (GSASR upscales).
    public static func resolve(
        inputWidth w: Int, inputHeight h: Int, scale: Double?, size: (width: Int, height: Int)?, width: Int?,
        height: Int?, defaultScale: Double = 4
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
        if let (tw, th) = size {
            guard tw > 0, th > 0 else { throw UpscaleError("--size \(tw)x\(th) must be positive on both sides") }
            try check(tw, w, "--size width")
            try check(th, h, "--size height")
            let a = interval(tw, w), b = interval(th, h)
            let lo = max(a.lo, b.lo), hi = min(a.hi, b.hi)
            if lo < hi {
                let s = (lo + hi) / 2
                if Int((s * Double(w)).rounded(.down)) == tw && Int((s * Double(h)).rounded(.down)) == th {
                    return ScaleRequest(scale: s)
                }
            }
            return ScaleRequest(scaleX: (a.lo + a.hi) / 2, scaleY: (b.lo + b.hi) / 2)
        }
        if let tw = width {
            try check(tw, w, "--width")
            let a = interval(tw, w)
            return ScaleRequest(scale: (a.lo + a.hi) / 2)
        }
        if let th = height {
            try check(th, h, "--height")
            let b = interval(th, h)
            return ScaleRequest(scale: (b.lo + b.hi) / 2)
        }
        return ScaleRequest(scale: scale ?? defaultScale)
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
