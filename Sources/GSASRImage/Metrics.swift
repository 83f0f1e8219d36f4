import Foundation

/// PSNR and SSIM as computed by basicsr's `metrics/psnr_ssim.py` (`calculate_psnr`,
/// `calculate_ssim`), the functions GSASR's validation reports.
///
/// Inputs are 8-bit HWC images **in RGB order** (as held in memory here); the reference is fed
/// BGR arrays from `cv2`, and the Y-channel conversion below accounts for that, so the numbers
/// are the reference's. The steps:
///
/// 1. Crop `cropBorder` pixels from every edge.
/// 2. Optionally take the BT.601 luma as `to_y_channel` does: each byte becomes
///    `Float32(b) / 255` (float32), then in float64
///    `y = (24.966·B + 128.553·G + 65.481·R + 16) / 255`, rounded to float32, multiplied by 255 in
///    float32 (no rounding to integers).
/// 3. Promote to float64.
/// * PSNR = `10·log10(255² / MSE)`, MSE being the mean over all samples (infinite when equal).
/// * SSIM per channel: means and (co)variances from an 11×11 Gaussian window (σ = 1.5,
///   `cv2.getGaussianKernel` normalised taps, outer product), evaluated only where the window
///   fits (`[5:-5, 5:-5]` of `cv2.filter2D`'s output), then
///   `((2μ₁μ₂ + C1)(2σ₁₂ + C2)) / ((μ₁² + μ₂² + C1)(σ₁² + σ₂² + C2))` with
///   C1 = (0.01·255)², C2 = (0.03·255)², averaged over pixels and then over channels.
///
/// Sums use numpy's pairwise summation so the means agree with numpy to the last few bits.
public enum Metrics {
    /// PSNR on the Y channel (`test_y_channel=True`), for 3-channel RGB bytes.
    public static func psnrY(_ a: [UInt8], _ b: [UInt8], width: Int, height: Int, cropBorder: Int = 4) -> Double {
        psnr(a, b, width: width, height: height, channels: 3, cropBorder: cropBorder, testYChannel: true)
    }

    /// SSIM on the Y channel (`test_y_channel=True`), for 3-channel RGB bytes.
    public static func ssimY(_ a: [UInt8], _ b: [UInt8], width: Int, height: Int, cropBorder: Int = 4) -> Double {
        ssim(a, b, width: width, height: height, channels: 3, cropBorder: cropBorder, testYChannel: true)
    }

    /// PSNR of HWC bytes. With `testYChannel` the data must be 3-channel RGB; otherwise all
    /// channels are compared as they are.
    public static func psnr(
        _ a: [UInt8], _ b: [UInt8], width: Int, height: Int, channels: Int = 3,
        cropBorder: Int = 4, testYChannel: Bool = false
    ) -> Double {
        let (x, y, _, _, _) = prepare(
            a, b, width: width, height: height, channels: channels,
            cropBorder: cropBorder, testYChannel: testYChannel)
        var diff = [Double](repeating: 0, count: x.count)
        for i in 0..<x.count { let d = x[i] - y[i]; diff[i] = d * d }
        let mse = pairwiseSum(diff) / Double(diff.count)
        if mse == 0 { return .infinity }
        return 10 * log10(255.0 * 255.0 / mse)
    }

    /// SSIM of HWC bytes (mean over channels), see `psnr` for the channel handling.
    public static func ssim(
        _ a: [UInt8], _ b: [UInt8], width: Int, height: Int, channels: Int = 3,
        cropBorder: Int = 4, testYChannel: Bool = false
    ) -> Double {
        let (x, y, w, h, c) = prepare(
            a, b, width: width, height: height, channels: channels,
            cropBorder: cropBorder, testYChannel: testYChannel)
        var values = [Double]()
        for ch in 0..<c {
            var p1 = [Double](repeating: 0, count: w * h), p2 = p1
            for i in 0..<(w * h) { p1[i] = x[i * c + ch]; p2[i] = y[i * c + ch] }
            values.append(ssimPlane(p1, p2, width: w, height: h))
        }
        return pairwiseSum(values) / Double(values.count)
    }

    /// Crops and (optionally) converts to Y; returns float64 HWC planes and the new shape.
    static func prepare(
        _ a: [UInt8], _ b: [UInt8], width: Int, height: Int, channels: Int,
        cropBorder: Int, testYChannel: Bool
    ) -> ([Double], [Double], Int, Int, Int) {
        precondition(a.count == width * height * channels && b.count == a.count, "image sizes differ")
        precondition(!testYChannel || channels == 3, "the Y channel needs 3-channel RGB input")
        let w = width - 2 * cropBorder, h = height - 2 * cropBorder
        precondition(w > 0 && h > 0, "crop border \(cropBorder) leaves nothing of \(width)x\(height)")
        let outC = testYChannel ? 1 : channels
        func convert(_ img: [UInt8]) -> [Double] {
            var out = [Double](repeating: 0, count: w * h * outC)
            for yy in 0..<h {
                for xx in 0..<w {
                    let base = ((yy + cropBorder) * width + xx + cropBorder) * channels
                    if testYChannel {
                        out[yy * w + xx] = luma(r: img[base], g: img[base + 1], b: img[base + 2])
                    } else {
                        for c in 0..<channels { out[(yy * w + xx) * channels + c] = Double(img[base + c]) }
                    }
                }
            }
            return out
        }
        return (convert(a), convert(b), w, h, outC)
    }

    /// `to_y_channel` of one pixel, mirroring the reference's float32/float64 steps.
    @inline(__always)
    static func luma(r: UInt8, g: UInt8, b: UInt8) -> Double {
        let bf = Double(Float(b) / 255), gf = Double(Float(g) / 255), rf = Double(Float(r) / 255)
        // np.dot over the (B, G, R) axis with float64 coefficients, plus the offset 16.
        let dot = bf * 24.966 + gf * 128.553 + rf * 65.481
        let y32 = Float((dot + 16.0) / 255.0)
        return Double(y32 * 255)
    }

    /// The normalised 1-D Gaussian of `cv2.getGaussianKernel(11, 1.5)`.
    static let gaussian11: [Double] = {
        let sigma = 1.5
        let scale2 = -0.5 / (sigma * sigma)
        var taps = (0..<11).map { i -> Double in
            let x = Double(i) - 5
            return exp(scale2 * x * x)
        }
        let sum = taps.reduce(0, +)
        taps = taps.map { $0 * (1 / sum) }
        return taps
    }()

    /// SSIM of one float64 plane pair (mean of the SSIM map over the valid region).
    static func ssimPlane(_ x: [Double], _ y: [Double], width: Int, height: Int) -> Double {
        let c1 = (0.01 * 255) * (0.01 * 255), c2 = (0.03 * 255) * (0.03 * 255)
        let ow = width - 10, oh = height - 10
        precondition(ow > 0 && oh > 0, "SSIM needs images larger than 10x10 after cropping")
        var xx = [Double](repeating: 0, count: x.count), yy = xx, xy = xx
        for i in 0..<x.count { xx[i] = x[i] * x[i]; yy[i] = y[i] * y[i]; xy[i] = x[i] * y[i] }
        let mu1 = filterValid(x, width: width, height: height)
        let mu2 = filterValid(y, width: width, height: height)
        let s11 = filterValid(xx, width: width, height: height)
        let s22 = filterValid(yy, width: width, height: height)
        let s12 = filterValid(xy, width: width, height: height)
        var map = [Double](repeating: 0, count: ow * oh)
        for i in 0..<map.count {
            let m1sq = mu1[i] * mu1[i], m2sq = mu2[i] * mu2[i], m12 = mu1[i] * mu2[i]
            let sig1 = s11[i] - m1sq, sig2 = s22[i] - m2sq, sig12 = s12[i] - m12
            map[i] = ((2 * m12 + c1) * (2 * sig12 + c2)) / ((m1sq + m2sq + c1) * (sig1 + sig2 + c2))
        }
        return pairwiseSum(map) / Double(map.count)
    }

    /// 11×11 Gaussian correlation restricted to positions where the window fits (separable:
    /// vertical then horizontal), giving `(height − 10) × (width − 10)` values.
    static func filterValid(_ src: [Double], width: Int, height: Int) -> [Double] {
        let k = gaussian11
        let oh = height - 10, ow = width - 10
        var vert = [Double](repeating: 0, count: oh * width)
        src.withUnsafeBufferPointer { s in
            vert.withUnsafeMutableBufferPointer { v in
                for y in 0..<oh {
                    for t in 0..<11 {
                        let wt = k[t]
                        let row = (y + t) * width
                        for x in 0..<width { v[y * width + x] += wt * s[row + x] }
                    }
                }
            }
        }
        var out = [Double](repeating: 0, count: oh * ow)
        vert.withUnsafeBufferPointer { v in
            out.withUnsafeMutableBufferPointer { o in
                for y in 0..<oh {
                    for x in 0..<ow {
                        var acc = 0.0
                        for t in 0..<11 { acc += k[t] * v[y * width + x + t] }
                        o[y * ow + x] = acc
                    }
                }
            }
        }
        return out
    }

    /// numpy's pairwise summation (`pairwise_sum` in umath loops): blocks of up to 128
    /// elements are summed with 8 interleaved accumulators, larger ranges are split in halves
    /// (at a multiple of 8).
    public static func pairwiseSum(_ v: [Double]) -> Double {
        v.withUnsafeBufferPointer { pairwise($0.baseAddress!, $0.count) }
    }

    private static func pairwise(_ a: UnsafePointer<Double>, _ n: Int) -> Double {
        if n < 8 {
            var res = 0.0
            for i in 0..<n { res += a[i] }
            return res
        } else if n <= 128 {
            var r = (a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7])
            var i = 8
            while i < n - (n % 8) {
                r.0 += a[i]; r.1 += a[i + 1]; r.2 += a[i + 2]; r.3 += a[i + 3]
                r.4 += a[i + 4]; r.5 += a[i + 5]; r.6 += a[i + 6]; r.7 += a[i + 7]
                i += 8
            }
            var res = ((r.0 + r.1) + (r.2 + r.3)) + ((r.4 + r.5) + (r.6 + r.7))
            while i < n { res += a[i]; i += 1 }
            return res
        } else {
            var n2 = n / 2
            n2 -= n2 % 8
            return pairwise(a, n2) + pairwise(a + n2, n - n2)
        }
    }
}
