/// MATLAB-compatible bicubic `imresize`, as implemented by basicsr's
/// `utils/matlab_functions.imresize(img, scale, antialiasing=True)` (the resizer GSASR uses to make
/// LR data and bicubic baselines).
///
/// ## The maths
/// Each axis is resampled separately, rows (H) first, then columns (W). For output sample
/// `x = 1 ... outLength` (1-based) the source position is
///
///     u = x / scale + 0.5 · (1 − 1/scale)
///
/// (pixel centres are aligned: output 0.5 maps to input 0.5). The filter is Keys' cubic with
/// a = −0.5,
///
///     k(t) = 1.5|t|³ − 2.5|t|² + 1               for |t| ≤ 1
///          = −0.5|t|³ + 2.5|t|² − 4|t| + 2        for 1 < |t| ≤ 2,   0 otherwise.
///
/// When downscaling (scale < 1) the kernel is stretched to anti-alias: width 4/scale and
/// weights `scale · k(scale · d)`. Upscaling uses `k(d)` with width 4. Each output takes
/// `P = ceil(width) + 2` consecutive inputs starting at `floor(u − width/2)`, with weights
/// `k(u − index)` normalised to sum 1.
///
/// Quirk kept for parity: if *any* output row has an exactly-zero weight in the first tap
/// column, taps `1 ..< P−1` are kept (the first and last are dropped); otherwise, if any row
/// has a zero in the last column, taps `0 ..< P−2` are kept. The weights are not renormalised.
///
/// Inputs outside the image are mirrored including the edge sample (index −1 reads 0, index
/// `n` reads `n − 1`). The weight computation runs in Float32 step by step like the reference
/// (float32 tensors, float32 `linspace`), because the exact-zero test above depends on it;
/// the filtering accumulates in Float32 as well. Outputs are not clamped.
public enum Resize {
    /// Per-axis resampling plan: `taps` source indices (already mirrored into range) and
    /// weights for each output sample, stored row-major (`out * taps`).
    public struct AxisPlan: Sendable {
        public let inLength: Int
        public let outLength: Int
        public let taps: Int
        public let indices: [Int]
        public let weights: [Float]
    }

    /// Keys' cubic (a = −0.5), evaluated in Float32 in the same operation order as the reference.
    @inline(__always)
    static func cubic(_ x: Float) -> Float {
        let a = abs(x)
        let a2 = a * a
        let a3 = a * a * a
        if a <= 1 { return 1.5 * a3 - 2.5 * a2 + 1 }
        if a <= 2 { return -0.5 * a3 + 2.5 * a2 - 4 * a + 2 }
        return 0
    }

    /// Mirrors a 0-based index into `0 ..< n` (symmetric, edge included).
    @inline(__always)
    static func mirror(_ i: Int, _ n: Int) -> Int {
        let period = 2 * n
        var j = i % period
        if j < 0 { j += period }
        return j < n ? j : period - 1 - j
    }

    /// Builds the resampling plan for one axis.
    public static func plan(inLength: Int, outLength: Int, scale: Double, antialiasing: Bool = true) -> AxisPlan {
        precondition(inLength > 0 && outLength > 0 && scale > 0)
        let shrink = scale < 1 && antialiasing
        let kernelWidth = shrink ? 4 / scale : 4
        let s = Float(scale)
        let offset = Float(0.5 * (1 - 1 / scale))
        let halfWidth = Float(kernelWidth / 2)
        let p = Int(kernelWidth.rounded(.up)) + 2

        var left = [Int](repeating: 0, count: outLength)
        var w = [Float](repeating: 0, count: outLength * p)
        var zeroFirst = false, zeroLast = false
        for o in 0..<outLength {
            let u = Float(o + 1) / s + offset
            let l = (u - halfWidth).rounded(.down)
            left[o] = Int(l)
            var sum: Float = 0
            for k in 0..<p {
                let d = u - (l + Float(k))
                let v = shrink ? s * cubic(d * s) : cubic(d)
                w[o * p + k] = v
                sum += v
            }
            for k in 0..<p {
                let v = w[o * p + k] / sum
                w[o * p + k] = v
                if v == 0 && k == 0 { zeroFirst = true }
                if v == 0 && k == p - 1 { zeroLast = true }
            }
        }
        let first = zeroFirst ? 1 : 0
        let taps = (zeroFirst || zeroLast) ? p - 2 : p
        var indices = [Int](repeating: 0, count: outLength * taps)
        var weights = [Float](repeating: 0, count: outLength * taps)
        for o in 0..<outLength {
            for t in 0..<taps {
                let k = first + t
                // left is 1-based; the 0-based source index is left + k - 1.
                indices[o * taps + t] = mirror(left[o] + k - 1, inLength)
                weights[o * taps + t] = w[o * p + k]
            }
        }
        return AxisPlan(inLength: inLength, outLength: outLength, taps: taps, indices: indices, weights: weights)
    }

    /// The upscaling plan (`scale ≥ 1`) for `count` samples at any density: sample `i` sits at
    /// the 0-based position `q = origin + (i + ½)/zoom − ½` of the `floor(scale · inLength)`
    /// output grid (as the rasterizer's `SampleGrid`), i.e. at `x = q + 1` in the formula above,
    /// with the same kernel, normalisation and mirroring. `origin 0, zoom 1, count = outLength`
    /// gives ``plan(inLength:outLength:scale:antialiasing:)``'s weights (its dropped taps are
    /// exact zeros), so ``apply`` returns `imresize` bit for bit: the bicubic counterpart of a
    /// Gaussian re-render of a region (`gsasr serve`'s deep zoom).
    public static func plan(inLength: Int, scale: Double, origin: Double, zoom: Double, count: Int) -> AxisPlan {
        precondition(inLength > 0 && count > 0 && scale >= 1 && zoom > 0)
        let s = Float(scale)
        let offset = Float(0.5 * (1 - 1 / scale))
        let p = 6
        var indices = [Int](repeating: 0, count: count * p)
        var weights = [Float](repeating: 0, count: count * p)
        for o in 0..<count {
            let x = origin + (Double(o) + 0.5) / zoom + 0.5
            let u = (zoom == 1 && origin == origin.rounded()) ? Float(x) / s + offset : Float(x / scale) + offset
            let l = (u - 2).rounded(.down)
            var sum: Float = 0
            for k in 0..<p {
                let v = cubic(u - (l + Float(k)))
                weights[o * p + k] = v
                sum += v
            }
            for k in 0..<p {
                weights[o * p + k] /= sum
                indices[o * p + k] = mirror(Int(l) + k - 1, inLength)
            }
        }
        return AxisPlan(inLength: inLength, outLength: count, taps: p, indices: indices, weights: weights)
    }

    /// The reference output length, `ceil(length · scale)` in double precision.
    public static func outputLength(_ length: Int, scale: Double) -> Int {
        Int((Double(length) * scale).rounded(.up))
    }

    /// Resizes an image (any channel count) by `scale` on both axes; the output size is
    /// `ceil(height · scale) × ceil(width · scale)`.
    public static func imresize(_ image: Image, scale: Double) -> Image {
        imresize(
            image, scale: scale,
            outWidth: outputLength(image.width, scale: scale),
            outHeight: outputLength(image.height, scale: scale))
    }

    /// Resizes an image to an explicit output size, with the kernel and coordinate mapping of
    /// `scale` (as when a caller fixes the size to `floor(scale · W)`).
    public static func imresize(_ image: Image, scale: Double, outWidth: Int, outHeight: Int) -> Image {
        let ph = plan(inLength: image.height, outLength: outHeight, scale: scale)
        let pw = plan(inLength: image.width, outLength: outWidth, scale: scale)
        let out = apply(
            image.pixels, width: image.width, height: image.height, channels: image.channels, rows: ph, cols: pw)
        return Image(width: outWidth, height: outHeight, channels: image.channels, pixels: out)
    }

    /// Resizes one `height × width` plane by `scale` (output `ceil(h·scale) × ceil(w·scale)`).
    public static func imresize(plane: [Float], width: Int, height: Int, scale: Double) -> [Float] {
        imresize(
            plane: plane, width: width, height: height, scale: scale,
            outWidth: outputLength(width, scale: scale), outHeight: outputLength(height, scale: scale))
    }

    /// Resizes one plane to an explicit output size (e.g. an alpha plane to `floor(scale · W)`).
    public static func imresize(
        plane: [Float], width: Int, height: Int, scale: Double,
        outWidth: Int, outHeight: Int
    ) -> [Float] {
        precondition(plane.count == width * height)
        let ph = plan(inLength: height, outLength: outHeight, scale: scale)
        let pw = plan(inLength: width, outLength: outWidth, scale: scale)
        return apply(plane, width: width, height: height, channels: 1, rows: ph, cols: pw)
    }

    /// Resizes one plane with a scale per axis (anisotropic target sizes).
    public static func imresize(
        plane: [Float], width: Int, height: Int, scaleX: Double, scaleY: Double,
        outWidth: Int, outHeight: Int
    ) -> [Float] {
        precondition(plane.count == width * height)
        let ph = plan(inLength: height, outLength: outHeight, scale: scaleY)
        let pw = plan(inLength: width, outLength: outWidth, scale: scaleX)
        return apply(plane, width: width, height: height, channels: 1, rows: ph, cols: pw)
    }

    /// Applies the row plan, then the column plan, to HWC data.
    public static func apply(
        _ src: [Float], width: Int, height: Int, channels: Int,
        rows: AxisPlan, cols: AxisPlan
    ) -> [Float] {
        precondition(rows.inLength == height && cols.inLength == width && src.count == width * height * channels)
        let outH = rows.outLength, outW = cols.outLength
        let rowLen = width * channels
        var mid = [Float](repeating: 0, count: outH * rowLen)
        // H pass: each output row is a weighted sum of whole input rows (contiguous AXPYs).
        src.withUnsafeBufferPointer { s in
            mid.withUnsafeMutableBufferPointer { m in
                rows.weights.withUnsafeBufferPointer { w in
                    rows.indices.withUnsafeBufferPointer { idx in
                        let taps = rows.taps
                        for o in 0..<outH {
                            let dst = m.baseAddress! + o * rowLen
                            for t in 0..<taps {
                                let wt = w[o * taps + t]
                                let row = s.baseAddress! + idx[o * taps + t] * rowLen
                                for x in 0..<rowLen { dst[x] += wt * row[x] }
                            }
                        }
                    }
                }
            }
        }
        // W pass: each output pixel gathers `taps` pixels of its row.
        var out = [Float](repeating: 0, count: outH * outW * channels)
        mid.withUnsafeBufferPointer { m in
            out.withUnsafeMutableBufferPointer { d in
                cols.weights.withUnsafeBufferPointer { w in
                    cols.indices.withUnsafeBufferPointer { idx in
                        let taps = cols.taps
                        for y in 0..<outH {
                            let row = m.baseAddress! + y * rowLen
                            let dst = d.baseAddress! + y * outW * channels
                            for o in 0..<outW {
                                for c in 0..<channels {
                                    var acc: Float = 0
                                    for t in 0..<taps {
                                        acc += w[o * taps + t] * row[idx[o * taps + t] * channels + c]
                                    }
                                    dst[o * channels + c] = acc
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}
