import Foundation
import GSASRTensor
import Testing

/// Each kernel against a naive float64 reference written from its PyTorch definition.
struct RNG {
    var state: UInt64
    mutating func next() -> Float {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Float(Int64(bitPattern: state >> 11) % 2_000_001 - 1_000_000) * 1e-6
    }
    mutating func array(_ n: Int) -> [Float] { (0..<n).map { _ in next() } }
}

func maxAbsDiff(_ a: [Float], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    return zip(a, b).reduce(0) { max($0, abs(Double($1.0) - $1.1)) }
}

/// Worst ratio of |a − ref| to the float32 summation bound for a dot product of length k:
/// 4·√k·2⁻²⁴·Σ|terms| (+ a tiny absolute floor). ≤ 1 means within float32 rounding.
func worstRoundingRatio(_ a: [Float], _ ref: [Double], _ absSum: [Double], k: Int) -> Double {
    var worst = 0.0
    for i in a.indices {
        let bound = 4 * Double(k).squareRoot() * 0x1p-24 * absSum[i] + 1e-7
        worst = max(worst, abs(Double(a[i]) - ref[i]) / bound)
    }
    return worst
}

@Test(arguments: [(5, 7, 3, true), (300, 64, 40, true), (1, 9, 9, false), (2000, 180, 180, true)])
func linearMatchesReference(m: Int, k: Int, n: Int, bias: Bool) {
    var r = RNG(state: UInt64(m * 31 + n))
    let x = Tensor(shape: [m, k], values: r.array(m * k))
    let w = Tensor(shape: [n, k], values: r.array(n * k))
    let b = bias ? Tensor(shape: [n], values: r.array(n)) : nil
    let y = Kernels.linear(x, weight: w, bias: b)
    var ref = [Double](repeating: 0, count: m * n), absSum = ref
    for i in 0..<m {
        for o in 0..<n {
            var s = b.map { Double($0.ptr[o]) } ?? 0
            var a = abs(s)
            for j in 0..<k {
                let t = Double(x.ptr[i * k + j]) * Double(w.ptr[o * k + j])
                s += t
                a += abs(t)
            }
            ref[i * n + o] = s
            absSum[i * n + o] = a
        }
    }
    let ratio = worstRoundingRatio(y.array, ref, absSum, k: k + 1)
    print("linear \(m)x\(k)->\(n): max|d| \(maxAbsDiff(y.array, ref)), worst/rounding bound \(ratio)")
    #expect(ratio <= 1)
}

/// The fused form relu(X·Wᵀ + b) (one pass after a β = 0 GEMM) against float64, with and without
/// a bias, n on and off the 8 lanes; and against the unfused bias-first GEMM + `relu`, which rounds
/// the same (acc + b once) when the GEMM does not split k.
@Test(arguments: [(37, 180, 720, true), (37, 180, 900, true), (5, 13, 19, true), (9, 180, 180, false)])
func linearReluMatchesReference(m: Int, k: Int, n: Int, bias: Bool) {
    var r = RNG(state: UInt64(m * 7 + n))
    let x = r.array(m * k), w = r.array(n * k), b = r.array(n)
    var fused = [Float](repeating: .nan, count: m * n), plain = fused
    b.withUnsafeBufferPointer { bp in
        let bias = bias ? bp.baseAddress : nil
        Kernels.linear(x: x, ldx: k, m: m, k: k, weight: w, bias: bias, n: n, y: &fused, ldy: n, relu: true)
        Kernels.linear(x: x, ldx: k, m: m, k: k, weight: w, bias: bias, n: n, y: &plain, ldy: n)
    }
    Kernels.relu(&plain, m * n)
    var ref = [Double](repeating: 0, count: m * n), absSum = ref
    for i in 0..<m {
        for o in 0..<n {
            var s = bias ? Double(b[o]) : 0
            var a = abs(s)
            for j in 0..<k {
                let t = Double(x[i * k + j]) * Double(w[o * k + j])
                s += t
                a += abs(t)
            }
            ref[i * n + o] = max(s, 0)
            absSum[i * n + o] = a
        }
    }
    let ratio = worstRoundingRatio(fused, ref, absSum, k: k + 1)
    let same = zip(fused, plain).filter { $0.bitPattern != $1.bitPattern }.count
    print(
        "linear+relu \(m)x\(k)->\(n) bias \(bias): worst/rounding bound \(ratio), \(same) of \(m * n) differ from bias-first + relu"
    )
    #expect(ratio <= 1)
    #expect(same == 0)
}

@Test(arguments: [(5, 4, 3, 5), (37, 23, 16, 8), (12, 12, 64, 64)])
func conv3x3MatchesReference(h: Int, w: Int, cin: Int, cout: Int) {
    var r = RNG(state: UInt64(h * 100 + w))
    let x = Tensor(shape: [h, w, cin], values: r.array(h * w * cin))
    let wt = r.array(cout * cin * 9), bias = r.array(cout)
    // The im2col form (the Winograd form has its own test, WinogradTests.swift).
    let y = Tensor(uninitialized: [h, w, cout])
    Kernels.conv3x3Im2col(
        x: x.ptr, height: h, width: w, Conv3x3Weights(torchWeight: wt, bias: bias, cout: cout, cin: cin), y: y.ptr)
    var ref = [Double](repeating: 0, count: h * w * cout), absSum = ref
    for yy in 0..<h {
        for xx in 0..<w {
            for o in 0..<cout {
                var s = Double(bias[o])
                var a = abs(s)
                for i in 0..<cin {
                    for ky in 0..<3 {
                        for kx in 0..<3 {
                            let sy = yy + ky - 1, sx = xx + kx - 1
                            if sy < 0 || sy >= h || sx < 0 || sx >= w { continue }
                            let t =
                                Double(wt[((o * cin + i) * 3 + ky) * 3 + kx]) * Double(x.ptr[(sy * w + sx) * cin + i])
                            s += t
                            a += abs(t)
                        }
                    }
                }
                ref[(yy * w + xx) * cout + o] = s
                absSum[(yy * w + xx) * cout + o] = a
            }
        }
    }
    let ratio = worstRoundingRatio(y.array, ref, absSum, k: 9 * cin + 1)
    print("conv3x3 \(h)x\(w) \(cin)->\(cout): max|d| \(maxAbsDiff(y.array, ref)), worst/rounding bound \(ratio)")
    #expect(ratio <= 1)
}

@Test func pixelShuffleFollowsTorchChannelOrder() {
    // PixelShuffle(2): input channel c·4 + i·2 + j at (h, w) → channel c at (2h + i, 2w + j).
    let h = 3, w = 2, c = 2, r = 2
    let x = Tensor(shape: [h, w, c * r * r], values: (0..<(h * w * c * r * r)).map(Float.init))
    let y = Kernels.pixelShuffle(x, height: h, width: w, channels: c * r * r, factor: r)
    for hh in 0..<h {
        for ww in 0..<w {
            for ch in 0..<c {
                for i in 0..<r {
                    for j in 0..<r {
                        let src = x.ptr[(hh * w + ww) * c * r * r + ch * r * r + i * r + j]
                        let dst = y.ptr[((hh * r + i) * (w * r) + (ww * r + j)) * c + ch]
                        #expect(src == dst)
                    }
                }
            }
        }
    }
}

@Test func reflectPadMirrorsWithoutRepeatingTheEdge() {
    // 1-D along width: [a b c d] padded by 3 → [a b c d c b a] (torch 'reflect').
    let x = Tensor(shape: [2, 4, 1], values: [1, 2, 3, 4, 5, 6, 7, 8])
    let y = Kernels.reflectPadBottomRight(x, height: 2, width: 4, channels: 1, padH: 1, padW: 3)
    #expect(y.shape == [3, 7, 1])
    #expect(y.array == [1, 2, 3, 4, 3, 2, 1, 5, 6, 7, 8, 7, 6, 5, 1, 2, 3, 4, 3, 2, 1])
}

@Test func layerNormMatchesReference() {
    var r = RNG(state: 7)
    let rows = 50, n = 180
    let x = r.array(rows * n).map { $0 * 5 + 2 }
    let g = r.array(n), b = r.array(n)
    var y = [Float](repeating: 0, count: rows * n)
    Kernels.layerNorm(x: x, rows: rows, n: n, gamma: g, beta: b, eps: 1e-5, y: &y)
    var ref = [Double](repeating: 0, count: rows * n)
    for i in 0..<rows {
        let row = x[(i * n)..<((i + 1) * n)].map(Double.init)
        let mean = row.reduce(0, +) / Double(n)
        let v = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)
        for j in 0..<n { ref[i * n + j] = (row[j] - mean) / (v + 1e-5).squareRoot() * Double(g[j]) + Double(b[j]) }
    }
    let d = maxAbsDiff(y, ref)
    print("layerNorm: max|d| \(d)")
    #expect(d < 1e-5)
}

@Test func fastExpIsAccurate() {
    var worst = 0.0
    var x: Float = -87
    while x < 88 {
        let e = Double(FastMath.exp(x)), ref = Foundation.exp(Double(x))
        worst = max(worst, abs(e - ref) / ref)
        x += 0.0137
    }
    print("FastMath.exp max relative error on [-87, 88]: \(worst)")
    #expect(worst < 3e-7)
    #expect(FastMath.exp(-100) == 0)
    #expect(FastMath.exp(0) == 1)
}

@Test func softmaxRowsMatchesReference() {
    var r = RNG(state: 3)
    let rows = 7, n = 37
    var v = r.array(rows * n).map { $0 * 20 }
    let orig = v
    Kernels.softmaxRows(&v, rows: rows, n: n)
    var worst = 0.0
    for i in 0..<rows {
        let row = orig[(i * n)..<((i + 1) * n)].map(Double.init)
        let m = row.max()!
        let z = row.reduce(0) { $0 + Foundation.exp($1 - m) }
        for j in 0..<n { worst = max(worst, abs(Double(v[i * n + j]) - Foundation.exp(row[j] - m) / z)) }
    }
    #expect(worst < 1e-6)
}

/// float64 window attention, cross form: q (rows × C), kv (rows × 2C: k | v), bias
/// (heads × nq × nk); the output (query rows × C) at the query rows of each window.
func windowAttentionReference(
    q: [Double], kv: [Double], bias: [Double], channels c: Int, heads: Int, qRows: [Int32], kRows: [Int32],
    windows: Int, nq: Int, nk: Int
) -> [Double] {
    let d = c / heads
    let s = 1 / Double(d).squareRoot()
    var out = [Double](repeating: 0, count: q.count)
    for w in 0..<windows {
        for h in 0..<heads {
            for i in 0..<nq {
                let qi = Int(qRows[w * nq + i])
                var logits = [Double](repeating: 0, count: nk)
                for j in 0..<nk {
                    let kj = Int(kRows[w * nk + j])
                    var dot = 0.0
                    for t in 0..<d { dot += q[qi * c + h * d + t] * s * kv[kj * 2 * c + h * d + t] }
                    logits[j] = dot + bias[(h * nq + i) * nk + j]
                }
                let m = logits.max()!
                let e = logits.map { Foundation.exp($0 - m) }
                let z = e.reduce(0, +)
                for t in 0..<d {
                    var acc = 0.0
                    for j in 0..<nk { acc += e[j] / z * kv[Int(kRows[w * nk + j]) * 2 * c + c + h * d + t] }
                    out[qi * c + h * d + t] = acc
                }
            }
        }
    }
    return out
}

/// Window attention with permuted rows (a rolled window: gathered per window) and with
/// consecutive rows (read and written in place) against a direct evaluation.
@Test(arguments: [true, false])
func windowAttentionMatchesReference(permuted: Bool) {
    var r = RNG(state: 11)
    let windows = 3, nq = 4, nk = 6, heads = 2, c = 8
    let qRowsCount = windows * nq, kRowsCount = windows * nk
    let q = Tensor(shape: [qRowsCount, c], values: r.array(qRowsCount * c).map { $0 * 3 })
    let kv = Tensor(shape: [kRowsCount, 2 * c], values: r.array(kRowsCount * 2 * c).map { $0 * 3 })
    let bias = Tensor(shape: [heads, nq, nk], values: r.array(heads * nq * nk))
    // A permutation of query rows and of key rows.
    let qRows = (0..<Int32(qRowsCount)).map { permuted ? ($0 * 5) % Int32(qRowsCount) : $0 }
    let kRows = (0..<Int32(kRowsCount)).map { permuted ? ($0 * 7) % Int32(kRowsCount) : $0 }
    let out = Tensor(zeros: [qRowsCount, c])
    Kernels.windowAttention(
        q: q, kv: kv, channels: c, qRows: qRows, kRows: kRows, windows: windows, nq: nq, nk: nk, heads: heads,
        bias: bias, out: out)
    let ref = windowAttentionReference(
        q: q.array.map(Double.init), kv: kv.array.map(Double.init), bias: bias.array.map(Double.init), channels: c,
        heads: heads, qRows: qRows, kRows: kRows, windows: windows, nq: nq, nk: nk)
    let diff = maxAbsDiff(out.array, ref)
    print("windowAttention (\(permuted ? "permuted" : "consecutive") rows): max|d| \(diff)")
    #expect(diff < 1e-5)
}

/// The AVX2 softmax (CKernels, used where the CPU has AVX2) gives the same bits as the portable
/// Swift version: row lengths below, at and above the 8 lanes, scores that underflow exp.
@Test(.enabled(if: Kernels.softmaxUsesAVX2, "the CPU has no AVX2: the AVX2 softmax is not in use, nothing to compare"))
func softmaxAVX2MatchesPortable() {
    print("softmax: AVX2 version in use: \(Kernels.softmaxUsesAVX2)")
    var r = RNG(state: 77)
    for n in [1, 5, 8, 19, 144, 150] {
        let rows = 7
        var x = r.array(rows * n).map { $0 * 40 }
        x[0] = -100  // exp underflows to 0 after subtracting the row max
        var a = x, b = x
        Kernels.softmaxRows(&a, rows: rows, n: n)
        Kernels.softmaxRowsPortable(&b, rows: rows, n: n)
        let same = zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
        print("softmax n=\(n): \(same ? "same bits" : "DIFFERENT")")
        #expect(same)
    }
}

/// The AVX2 + FMA Adam and EMA updates (CKernels, used where the CPU has them) give the same bits
/// as the portable Swift loops: lengths below, at and above the 8 lanes, zero and tiny gradients,
/// moments of very different sizes.
@Test(
    .enabled(
        if: Kernels.optimizerUsesFMA, "the CPU has no AVX2 + FMA: the FMA updates are not in use, nothing to compare"))
func adamFMAMatchesPortable() {
    print("optimizer: AVX2 + FMA version in use: \(Kernels.optimizerUsesFMA)")
    var r = RNG(state: 91)
    for n in [1, 7, 8, 37, 1000] {
        var g = r.array(n).map { $0 * 1e-2 }
        g[0] = 0
        if n > 2 { g[1] = 1e-30 }
        let m0 = r.array(n).map { $0 * 1e-3 }, v0 = r.array(n).map { $0 * $0 * 1e-5 }, p0 = r.array(n)
        var p1 = p0, m1 = m0, v1 = v0, p2 = p0, m2 = m0, v2 = v0
        let args = (w1: Float(0.1), b2: Float(0.99), w2: Float(0.01), step: Float(-2e-4 / 0.19), bc2: Float(0.14106736))
        Kernels.adamUpdate(
            p: &p1, g: g, m: &m1, v: &v1, count: n, w1: args.w1, b2: args.b2, w2: args.w2, step: args.step,
            bc2Sqrt: args.bc2, eps: 1e-8)
        Kernels.adamUpdatePortable(
            p: &p2, g: g, m: &m2, v: &v2, count: n, w1: args.w1, b2: args.b2, w2: args.w2, step: args.step,
            bc2Sqrt: args.bc2, eps: 1e-8)
        var e1 = m0, e2 = m0
        Kernels.emaUpdate(e: &e1, p: p0, count: n, decay: 0.999, weight: 0.001)
        Kernels.emaUpdatePortable(e: &e2, p: p0, count: n, decay: 0.999, weight: 0.001)
        func same(_ a: [Float], _ b: [Float]) -> Bool { zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern } }
        #expect(same(p1, p2) && same(m1, m2) && same(v1, v2), "Adam n=\(n)")
        #expect(same(e1, e2), "EMA n=\(n)")
        #expect(p1 != p0)
    }
}

/// The vectorised erf (GELU's) against libm's, over [−6, 6]: within 4e-7 absolute (a few ulp
/// of 1), and exact odd symmetry.
@Test func fastErfMatchesLibm() {
    var worst = 0.0
    var x: Float = -6
    while x <= 6 {
        let d = abs(Double(FastMath.erf(x)) - Foundation.erf(Double(x)))
        worst = max(worst, d)
        #expect(FastMath.erf(-x) == -FastMath.erf(x))
        x += 0.0009765625
    }
    print("fast erf vs libm: max |d| \(worst)")
    #expect(worst <= 4e-7)
}
