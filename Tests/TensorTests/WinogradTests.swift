import Foundation
import GSASRTensor
import Testing

// Winograd F(2×2, 3×3) convolution (Winograd.swift): forward against a float64 reference, and
// the backward's independence of the thread count. The backward against float64 finite
// differences is `winogradBackwardMatchesFiniteDifferences` (BackwardKernelTests.swift).

/// A float32 3×3 convolution `form` (x, weights, y) on random data against float64 sums: the
/// largest |error| and the largest error in units of `unit(Σ|terms|)` of each output (the scale
/// of its rounding error: Σ|x·w| over the 9·cin taps, plus |bias|).
func convolutionError(
    h: Int, w: Int, cin: Int, cout: Int, unit: (Double) -> Double,
    _ form: (UnsafePointer<Float>, Conv3x3Weights, UnsafeMutablePointer<Float>) -> Void
) -> (maxAbs: Double, worst: Double) {
    var r = RNG(state: UInt64(h * 31 + w * 7 + cin))
    let x = r.array(h * w * cin), wt = r.array(cout * cin * 9), bias = r.array(cout)
    let p = Conv3x3Weights(torchWeight: wt, bias: bias, cout: cout, cin: cin)
    let xt = Tensor(shape: [h, w, cin], values: x)
    let y = Tensor(uninitialized: [h, w, cout])
    form(xt.ptr, p, y.ptr)
    let ref = conv3x3Double(
        x.map(Double.init), wt.map(Double.init), bias.map(Double.init), h: h, wd: w, cin: cin, cout: cout)
    let absSum = conv3x3Double(
        x.map { abs(Double($0)) }, wt.map { abs(Double($0)) }, bias.map { abs(Double($0)) }, h: h, wd: w, cin: cin,
        cout: cout)
    var worst = 0.0, maxAbs = 0.0
    for i in ref.indices {
        let d = abs(Double(y.ptr[i]) - ref[i])
        maxAbs = max(maxAbs, d)
        worst = max(worst, d / unit(absSum[i]))
    }
    withExtendedLifetime(xt) {}
    return (maxAbs, worst)
}

/// Odd sizes (partial tiles), channel counts off the 8 SIMD lanes, 1 to 12 blocks of tile rows.
@Test(arguments: [(1, 1, 3, 5), (5, 4, 3, 5), (7, 9, 13, 11), (37, 23, 16, 8), (48, 50, 9, 17)])
func winogradConvMatchesReference(h: Int, w: Int, cin: Int, cout: Int) {
    // The transforms add up to 16 terms of each sign on top of the sum over 9·cin taps.
    let e = convolutionError(
        h: h, w: w, cin: cin, cout: cout, unit: { 16 * Double(9 * cin).squareRoot() * 0x1p-24 * $0 + 1e-7 }
    ) { x, p, y in
        Kernels.conv3x3Winograd(x: x, height: h, width: w, p, y: y)
    }
    print("Winograd conv \(h)x\(w) \(cin)->\(cout): max|d| \(e.maxAbs), worst/bound \(e.worst)")
    #expect(e.worst <= 1)
}

/// The forward and backward by Winograd give the same bits for 1, 2 and 3 workers (blocks and
/// reduction groups come from the sizes only).
@Test func winogradBackwardIsTheSameForAnyThreadCount() {
    let h = 37, w = 29, cin = 12, cout = 20
    var r = RNG(state: 11)
    let x = Tensor(shape: [h, w, cin], values: r.array(h * w * cin))
    let dy = Tensor(shape: [h, w, cout], values: r.array(h * w * cout))
    let p = Conv3x3Weights(torchWeight: r.array(cout * cin * 9), bias: r.array(cout), cout: cout, cin: cin)
    var results: [[Float]] = []
    for threads in 1...3 {
        let dW = Tensor(zeros: [cout, 9 * cin]), dB = Tensor(zeros: [cout])
        let dx = Kernels.conv3x3BackwardWinograd(
            x, height: h, width: w, p, dy: dy, dWeight: dW, dBias: dB, threads: threads)!
        results.append(dx.array + dW.array + dB.array)
    }
    #expect(results[1] == results[0])
    #expect(results[2] == results[0])
}

/// The dispatcher: the paper model's UPNet (180 → 720) and EDSR body (64 → 64) run Winograd, the
/// first convolution (3 → 64) and narrow ones im2col; in float32, maps of at least 4 × 4 with at
/// least 16 channels each side take F(4×4, 3×3), thinner maps F(2×2, 3×3); `conv3x3` agrees with
/// the form it picks, bit for bit.
@Test func conv3x3PicksWinogradForWideConvolutions() {
    #expect(Kernels.usesWinograd(cin: 180, cout: 720))
    #expect(Kernels.usesWinograd(cin: 64, cout: 64))
    #expect(!Kernels.usesWinograd(cin: 3, cout: 64))
    #expect(!Kernels.usesWinograd(cin: 32, cout: 128))
    #expect(Kernels.usesWinograd43(height: 9, width: 8, cin: 128, cout: 128))
    #expect(!Kernels.usesWinograd43(height: 9, width: 3, cin: 128, cout: 128))
    #expect(!Kernels.usesWinograd43(height: 48, width: 48, cin: 3, cout: 64))
    #expect(Kernels.usesWinograd43(height: 48, width: 48, cin: 180, cout: 60))  // HAT's channel attention
    #expect(Kernels.usesWinograd43(height: 48, width: 48, cin: 16, cout: 64))
    for (h, w) in [(9, 8), (3, 11)] {
        let cin = 128, cout = 128
        var r = RNG(state: 4)
        let x = Tensor(shape: [h, w, cin], values: r.array(h * w * cin))
        let p = Conv3x3Weights(torchWeight: r.array(cout * cin * 9), bias: r.array(cout), cout: cout, cin: cin)
        let y = Kernels.conv3x3(x, height: h, width: w, p)
        let yw = Tensor(uninitialized: [h, w, cout])
        if Kernels.usesWinograd43(height: h, width: w, cin: cin, cout: cout) {
            Kernels.conv3x3Winograd43(x: x.ptr, height: h, width: w, p, y: yw.ptr)
        } else {
            Kernels.conv3x3Winograd(x: x.ptr, height: h, width: w, p, y: yw.ptr)
        }
        #expect(y.array == yw.array)
    }
}

/// The backward at the paper UPNet's width (180 → 720; the gradient goldens' small config stays
/// below the Winograd threshold) against float64 sums: dW[o, i, ky, kx] = Σ_p dY[p, o]·X[p + k, i],
/// dX[p, i] = Σ_{o, k} dY[p − k, o]·W[o, i, k], db = Σ_p dY[p], each within a rounding bound of
/// its Σ|terms|.
@Test func winogradBackwardMatchesDirectSumsAtPaperWidth() {
    let h = 5, w = 7, cin = 180, cout = 720
    var r = RNG(state: 180)
    let x = r.array(h * w * cin), wt = r.array(cout * cin * 9), dy = r.array(h * w * cout)
    let p = Conv3x3Weights(torchWeight: wt, bias: r.array(cout), cout: cout, cin: cin)
    let dW = Tensor(zeros: [cout, 9 * cin]), dB = Tensor(zeros: [cout])
    let dx = Kernels.conv3x3BackwardWinograd(
        Tensor(shape: [h, w, cin], values: x), height: h, width: w, p, dy: Tensor(shape: [h, w, cout], values: dy),
        dWeight: dW, dBias: dB)!
    func bound(_ absSum: Double, terms: Int) -> Double { 16 * Double(terms).squareRoot() * 0x1p-24 * absSum + 1e-7 }
    var worstW = 0.0, worstX = 0.0, worstB = 0.0
    for o in 0..<cout {
        var sb = 0.0, ab = 0.0
        for px in 0..<(h * w) {
            sb += Double(dy[px * cout + o])
            ab += abs(Double(dy[px * cout + o]))
        }
        worstB = max(worstB, abs(Double(dB.ptr[o]) - sb) / bound(ab, terms: h * w))
        for tap in 0..<9 {
            let ky = tap / 3, kx = tap % 3
            for i in stride(from: 0, to: cin, by: 7) {
                var s = 0.0, a = 0.0
                for yy in 0..<h {
                    for xx in 0..<w {
                        let sy = yy + ky - 1, sx = xx + kx - 1
                        if sy < 0 || sy >= h || sx < 0 || sx >= w { continue }
                        let t = Double(dy[(yy * w + xx) * cout + o]) * Double(x[(sy * w + sx) * cin + i])
                        s += t
                        a += abs(t)
                    }
                }
                let ours = Double(dW.ptr[o * 9 * cin + tap * cin + i])
                worstW = max(worstW, abs(ours - s) / bound(a, terms: h * w))
            }
        }
    }
    for yy in 0..<h {
        for xx in 0..<w {
            for i in stride(from: 0, to: cin, by: 5) {
                var s = 0.0, a = 0.0
                for ky in 0..<3 {
                    for kx in 0..<3 {
                        let oy = yy - ky + 1, ox = xx - kx + 1
                        if oy < 0 || oy >= h || ox < 0 || ox >= w { continue }
                        for o in 0..<cout {
                            let t = Double(dy[(oy * w + ox) * cout + o]) * Double(wt[((o * cin + i) * 3 + ky) * 3 + kx])
                            s += t
                            a += abs(t)
                        }
                    }
                }
                worstX = max(worstX, abs(Double(dx.ptr[(yy * w + xx) * cin + i]) - s) / bound(a, terms: 9 * cout))
            }
        }
    }
    print("Winograd backward 180->720 at \(h)x\(w): worst/bound dW \(worstW) dX \(worstX) db \(worstB)")
    #expect(worstW <= 1 && worstX <= 1 && worstB <= 1)
}
