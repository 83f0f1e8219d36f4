import Foundation
import GSASRTensor
import Testing

// The backward kernels against float64 central finite differences of a float64 forward,
// for L = Σ dY ⊙ f(inputs) with a random dY: dL/dθ is each kernel's parameter or input gradient.

/// Central difference (L(θ + h) − L(θ − h)) / 2h of `loss` in element `i` of `values`.
func centralDifference(_ values: inout [Double], _ i: Int, h: Double, _ loss: ([Double]) -> Double) -> Double {
    let v = values[i]
    values[i] = v + h
    let up = loss(values)
    values[i] = v - h
    let down = loss(values)
    values[i] = v
    return (up - down) / (2 * h)
}

/// Worst |a − fd| / (atol + rtol·|fd|) over the pairs.
func worstRelative(_ a: [Float], _ fd: [Double], atol: Double, rtol: Double) -> Double {
    zip(a, fd).reduce(0) { max($0, abs(Double($1.0) - $1.1) / (atol + rtol * abs($1.1))) }
}

/// Every `stride`-th index of 0..<n, and the last (a subset for the slower references).
func sampledIndices(_ n: Int, count: Int) -> [Int] {
    let stride = max(1, n / count)
    return Array(Swift.stride(from: 0, to: n, by: stride)) + (n % stride == 0 ? [] : [n - 1])
}

/// float64 3×3 convolution, zero padding, PyTorch weight layout (cout, cin, 3, 3).
func conv3x3Double(_ x: [Double], _ w: [Double], _ b: [Double], h: Int, wd: Int, cin: Int, cout: Int) -> [Double] {
    var y = [Double](repeating: 0, count: h * wd * cout)
    for yy in 0..<h {
        for xx in 0..<wd {
            for o in 0..<cout {
                var s = b[o]
                for ky in 0..<3 {
                    let sy = yy + ky - 1
                    if sy < 0 || sy >= h { continue }
                    for kx in 0..<3 {
                        let sx = xx + kx - 1
                        if sx < 0 || sx >= wd { continue }
                        for i in 0..<cin { s += w[((o * cin + i) * 3 + ky) * 3 + kx] * x[(sy * wd + sx) * cin + i] }
                    }
                }
                y[(yy * wd + xx) * cout + o] = s
            }
        }
    }
    return y
}

func dot(_ a: [Double], _ b: [Float]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * Double($1.1) } }

/// Heights that give 1, 2, 3 and 4 row blocks of unequal sizes (`convBackwardBlocks` is 4).
@Test(arguments: [(1, 6, 3, 5), (5, 4, 3, 5), (13, 9, 24, 40), (37, 23, 16, 8)])
func conv3x3BackwardMatchesFiniteDifferences(h: Int, w: Int, cin: Int, cout: Int) {
    checkConv3x3Backward(h: h, w: w, cin: cin, cout: cout, label: "im2col") {
        Kernels.conv3x3BackwardIm2col($0, height: h, width: w, $1, dy: $2, dWeight: $3, dBias: $4)!
    }
}

/// The Winograd form: odd sizes (partial tiles at the bottom and right), channel counts that
/// are not multiples of the 8 SIMD lanes, 1 to 12 blocks of tile rows (more than the 4
/// reduction groups), 1 × 1 images.
@Test(arguments: [(1, 1, 3, 5), (1, 6, 3, 5), (5, 4, 3, 5), (13, 9, 12, 19), (37, 23, 16, 8), (48, 7, 9, 10)])
func winogradBackwardMatchesFiniteDifferences(h: Int, w: Int, cin: Int, cout: Int) {
    checkConv3x3Backward(h: h, w: w, cin: cin, cout: cout, label: "Winograd") {
        Kernels.conv3x3BackwardWinograd($0, height: h, width: w, $1, dy: $2, dWeight: $3, dBias: $4)!
    }
}

func checkConv3x3Backward(
    h: Int, w: Int, cin: Int, cout: Int, label: String,
    _ backward: (Tensor, Conv3x3Weights, Tensor, Tensor, Tensor) -> Tensor
) {
    var r = RNG(state: UInt64(h * 977 + w * 31 + cin))
    let x = r.array(h * w * cin), wt = r.array(cout * cin * 9), bias = r.array(cout), dy = r.array(h * w * cout)
    let p = Conv3x3Weights(torchWeight: wt, bias: bias, cout: cout, cin: cin)
    let dW = Tensor(zeros: [cout, 9 * cin]), dB = Tensor(zeros: [cout])
    let dx = backward(
        Tensor(shape: [h, w, cin], values: x), p, Tensor(shape: [h, w, cout], values: dy), dW, dB)
    var xd = x.map(Double.init), wd = wt.map(Double.init), bd = bias.map(Double.init)
    let xd0 = xd, wd0 = wd, bd0 = bd
    // L is linear in each argument, so a unit step is exact up to float64 rounding.
    func fdX(_ i: Int) -> Double {
        centralDifference(&xd, i, h: 1) { dot(conv3x3Double($0, wd0, bd0, h: h, wd: w, cin: cin, cout: cout), dy) }
    }
    func fdW(_ i: Int) -> Double {
        centralDifference(&wd, i, h: 1) { dot(conv3x3Double(xd0, $0, bd0, h: h, wd: w, cin: cin, cout: cout), dy) }
    }
    func fdB(_ i: Int) -> Double {
        centralDifference(&bd, i, h: 1) { dot(conv3x3Double(xd0, wd0, $0, h: h, wd: w, cin: cin, cout: cout), dy) }
    }
    let xi = sampledIndices(x.count, count: 60), wi = sampledIndices(wt.count, count: 60)
    let ourX = xi.map { dx.ptr[$0] }
    // Ours is (cout × 9·cin) tap-major: torch (o, i, ky, kx) is at o·9·cin + (ky·3 + kx)·cin + i.
    let ourW = wi.map { t -> Float in
        let o = t / (cin * 9), i = (t / 9) % cin, tap = t % 9
        return dW.ptr[o * 9 * cin + tap * cin + i]
    }
    let ex = worstRelative(ourX, xi.map(fdX), atol: 1e-5, rtol: 1e-4)
    let ew = worstRelative(ourW, wi.map(fdW), atol: 1e-5, rtol: 1e-4)
    let eb = worstRelative(dB.array, (0..<cout).map(fdB), atol: 1e-5, rtol: 1e-4)
    print("conv3x3 backward (\(label)) \(h)x\(w) \(cin)->\(cout): worst |d|/(1e-5+1e-4|fd|) dX \(ex) dW \(ew) db \(eb)")
    #expect(ex <= 1 && ew <= 1 && eb <= 1)
}

@Test func layerNormBackwardMatchesFiniteDifferences() {
    var r = RNG(state: 5)
    let rows = 7, n = 37  // n not a multiple of the 8 SIMD lanes
    let x = r.array(rows * n).map { $0 * 2 + 0.3 }, gamma = r.array(n).map { 1 + $0 }, dy = r.array(rows * n)
    let beta = r.array(n)
    let eps: Float = 1e-5
    var mean = [Float](repeating: 0, count: rows), rstd = mean, y = [Float](repeating: 0, count: rows * n)
    Kernels.layerNorm(x: x, rows: rows, n: n, gamma: gamma, beta: beta, eps: eps, y: &y, mean: &mean, rstd: &rstd)
    func layerNormLoss(_ x: [Double], _ g: [Double], _ b: [Double]) -> Double {
        var l = 0.0
        for row in 0..<rows {
            let xr = x[(row * n)..<((row + 1) * n)]
            let mu = xr.reduce(0, +) / Double(n)
            let v = xr.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / Double(n)
            let rs = 1 / (v + Double(eps)).squareRoot()
            for j in 0..<n { l += Double(dy[row * n + j]) * ((x[row * n + j] - mu) * rs * g[j] + b[j]) }
        }
        return l
    }
    var xd = x.map(Double.init), gd = gamma.map(Double.init), bd = beta.map(Double.init)
    let xd0 = xd, gd0 = gd, bd0 = bd
    let fdX = (0..<x.count).map { i in centralDifference(&xd, i, h: 1e-5) { layerNormLoss($0, gd0, bd0) } }
    let fdG = (0..<n).map { i in centralDifference(&gd, i, h: 1e-5) { layerNormLoss(xd0, $0, bd0) } }
    let fdB = (0..<n).map { i in centralDifference(&bd, i, h: 1e-5) { layerNormLoss(xd0, gd0, $0) } }
    for parallel in [true, false] {
        var dx = [Float](repeating: 0, count: rows * n), dG = [Float](repeating: 0, count: n), dB = dG
        Kernels.layerNormBackward(
            x: x, rows: rows, n: n, gamma: gamma, mean: mean, rstd: rstd, dy: dy, dx: &dx, dGamma: &dG, dBeta: &dB,
            parallel: parallel)
        let ex = worstRelative(dx, fdX, atol: 1e-5, rtol: 1e-4)
        let eg = worstRelative(dG, fdG, atol: 1e-5, rtol: 1e-4)
        let eb = worstRelative(dB, fdB, atol: 1e-5, rtol: 1e-4)
        print("layerNorm backward (parallel \(parallel)): worst |d|/(1e-5+1e-4|fd|) dX \(ex) dGamma \(eg) dBeta \(eb)")
        #expect(ex <= 1 && eg <= 1 && eb <= 1)
    }
}

/// Cross form (separate q and kv); the in-order single-thread form (`parallel: false`, used by
/// the training layers per window group) gives the same bits. nk = 19 runs the 8-lane row sums
/// and their scalar tail. Rows: permuted (gathered per window), consecutive (read and written
/// in place, as the training layers' group scratch), or consecutive queries with permuted keys.
@Test(arguments: [
    (3, 4, 6, 2, 8, "permuted"), (2, 5, 19, 3, 12, "permuted"), (3, 4, 6, 2, 8, "consecutive"),
    (2, 5, 19, 3, 12, "consecutive queries"),
])
func windowAttentionBackwardMatchesFiniteDifferences(
    windows: Int, nq: Int, nk: Int, heads: Int, c: Int, rows: String
) {
    var r = RNG(state: UInt64(23 + nk))
    let nQ = windows * nq, nK = windows * nk
    let q = r.array(nQ * c).map { $0 * 3 }, kv = r.array(nK * 2 * c).map { $0 * 3 }
    let bias = r.array(heads * nq * nk), dOut = r.array(nQ * c)
    // Row permutations: i·m mod n with m coprime to n.
    func permutation(_ n: Int) -> [Int32] {
        func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
        let m = [5, 7, 3, 11].first { gcd($0, n) == 1 }!
        return (0..<n).map { Int32($0 * m % n) }
    }
    let identity = { (n: Int) in (0..<Int32(n)).map { $0 } }
    let qRows = rows == "permuted" ? permutation(nQ) : identity(nQ)
    let kRows = rows == "consecutive" ? identity(nK) : permutation(nK)
    #expect(Set(qRows).count == nQ && Set(kRows).count == nK)
    func attentionLoss(_ q: [Double], _ kv: [Double], _ b: [Double]) -> Double {
        let out = windowAttentionReference(
            q: q, kv: kv, bias: b, channels: c, heads: heads, qRows: qRows, kRows: kRows, windows: windows, nq: nq,
            nk: nk)
        return dot(out, dOut)
    }
    var qd = q.map(Double.init), kvd = kv.map(Double.init), bd = bias.map(Double.init)
    let qd0 = qd, kvd0 = kvd, bd0 = bd
    let fdQ = (0..<q.count).map { i in centralDifference(&qd, i, h: 1e-5) { attentionLoss($0, kvd0, bd0) } }
    let fdKV = (0..<kv.count).map { i in centralDifference(&kvd, i, h: 1e-5) { attentionLoss(qd0, $0, bd0) } }
    let fdB = (0..<bias.count).map { i in centralDifference(&bd, i, h: 1e-5) { attentionLoss(qd0, kvd0, $0) } }
    var results: [[Float]] = []
    for parallel in [true, false] {
        var dQ = [Float](repeating: 0, count: q.count), dKV = [Float](repeating: 0, count: kv.count)
        var dB = [Float](repeating: 0, count: bias.count)
        q.withUnsafeBufferPointer { qp in
            kv.withUnsafeBufferPointer { kvp in
                dKV.withUnsafeMutableBufferPointer { dkv in
                    Kernels.windowAttentionBackward(
                        q: qp.baseAddress!, k: kvp.baseAddress!, v: kvp.baseAddress! + c, channels: c, ldQ: c,
                        ldKV: 2 * c, qRows: qRows, kRows: kRows, windows: windows, nq: nq, nk: nk, heads: heads,
                        bias: bias, dOut: dOut, ldDOut: c, dQ: &dQ, ldDQ: c, dK: dkv.baseAddress!,
                        dV: dkv.baseAddress! + c, ldDKV: 2 * c, dBias: &dB, parallel: parallel)
                }
            }
        }
        let eq = worstRelative(dQ, fdQ, atol: 1e-5, rtol: 1e-4)
        let ekv = worstRelative(dKV, fdKV, atol: 1e-5, rtol: 1e-4)
        let eb = worstRelative(dB, fdB, atol: 1e-5, rtol: 1e-4)
        print(
            "windowAttention backward \(windows)x\(nq)x\(nk), \(rows) rows (parallel \(parallel)): worst |d|/(1e-5+1e-4|fd|) dQ \(eq) dK|dV \(ekv) dBias \(eb)"
        )
        #expect(eq <= 1 && ekv <= 1 && eb <= 1)
        results.append(dQ + dKV + dB)
    }
    #expect(results[0] == results[1])
}

/// The fused backward of a few-output linear layer after a ReLU against float64, and its ReLU
/// test on the bits against h > 0 for ±0, negatives, +∞ and NaN.
@Test(arguments: [(1, 19), (3, 24), (2, 720)])
func narrowLinearReluBackwardMatchesReference(k: Int, width: Int) {
    var r = RNG(state: UInt64(k * 1000 + width))
    let rows = 37
    var h = r.array(rows * width).map { max($0, 0) * 2 }
    h[0] = -0.0
    h[1] = .infinity
    h[2] = .nan
    h[3] = -1
    h[4] = .leastNonzeroMagnitude
    let w = r.array(k * width), dy = r.array(rows * k)
    var dh = [Float](repeating: 0, count: rows * width), dW = r.array(k * width), dB = r.array(k)
    let dW0 = dW, dB0 = dB
    Kernels.narrowLinearReluBackward(
        h: h, rows: rows, width: width, weight: w, outputs: k, dy: dy, dh: &dh, dWeight: &dW, dBias: &dB)
    var worst = 0.0
    for i in 0..<rows {
        for j in 0..<width {
            var ref = 0.0
            for o in 0..<k { ref += Double(dy[i * k + o]) * Double(w[o * width + j]) }
            if !(h[i * width + j] > 0) { ref = 0 }
            worst = max(worst, abs(Double(dh[i * width + j]) - ref) / (1e-6 + 1e-5 * abs(ref)))
        }
    }
    for o in 0..<k {
        var db = Double(dB0[o])
        for i in 0..<rows { db += Double(dy[i * k + o]) }
        worst = max(worst, abs(Double(dB[o]) - db) / (1e-6 + 1e-5 * abs(db)))
        for j in 5..<width {  // the first columns hold ∞ and NaN
            var ref = Double(dW0[o * width + j])
            for i in 0..<rows { ref += Double(dy[i * k + o]) * Double(h[i * width + j]) }
            worst = max(worst, abs(Double(dW[o * width + j]) - ref) / (1e-6 + 1e-5 * abs(ref)))
        }
    }
    print("narrowLinearReluBackward k=\(k) width=\(width): worst |d|/(1e-6+1e-5|ref|) \(worst)")
    #expect(worst <= 1)
    #expect(dh[0] == 0 && dh[2] == 0 && dh[3] == 0)  // -0, NaN, negative: no gradient
}
