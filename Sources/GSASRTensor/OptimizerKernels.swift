import CKernels

/// The element-wise updates of the optimiser (GSASR's `Adam` and `EMA` own the state and the
/// schedule; these are their inner loops). Element-wise, so any split of the range gives the
/// same bits.
extension Kernels {
    /// One Adam step on n elements, torch's float32 arithmetic:
    ///
    ///     m = fma(w1, g − m, m),  v = fma(w2·g, g, v·b2),  p += (step·m) / (sqrt(v)/bc2Sqrt + eps)
    ///
    /// With AVX2 + FMA where the CPU has them (CKernels); else ``adamUpdatePortable``, whose
    /// `addingProduct` is a libm fmaf call per element on the x86-64 baseline. fma, sqrt and
    /// division are correctly rounded, so both give the same bits (`adamFMAMatchesPortable`).
    package static func adamUpdate(
        p: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
        v: UnsafeMutablePointer<Float>, count n: Int, w1: Float, b2: Float, w2: Float, step: Float, bc2Sqrt: Float,
        eps: Float
    ) {
        if gsasr_adam_fma(p, g, m, v, n, w1, b2, w2, step, bc2Sqrt, eps) != 0 { return }
        adamUpdatePortable(
            p: p, g: g, m: m, v: v, count: n, w1: w1, b2: b2, w2: w2, step: step, bc2Sqrt: bc2Sqrt, eps: eps)
    }

    package static func adamUpdatePortable(
        p: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
        v: UnsafeMutablePointer<Float>, count n: Int, w1: Float, b2: Float, w2: Float, step: Float, bc2Sqrt: Float,
        eps: Float
    ) {
        for i in 0..<n {
            let gi = g[i]
            let mNew = m[i].addingProduct(w1, gi - m[i])
            let vNew = (v[i] * b2).addingProduct(w2 * gi, gi)
            m[i] = mNew
            v[i] = vNew
            let den = vNew.squareRoot() / bc2Sqrt + eps
            p[i] = p[i] + (step * mNew) / den
        }
    }

    /// e = fma(p, w, e·d) on n elements (the EMA of the parameters), with FMA where the CPU has
    /// it, else ``emaUpdatePortable``: the same bits.
    package static func emaUpdate(
        e: UnsafeMutablePointer<Float>, p: UnsafePointer<Float>, count n: Int, decay d: Float, weight w: Float
    ) {
        if gsasr_ema_fma(e, p, n, d, w) != 0 { return }
        emaUpdatePortable(e: e, p: p, count: n, decay: d, weight: w)
    }

    package static func emaUpdatePortable(
        e: UnsafeMutablePointer<Float>, p: UnsafePointer<Float>, count n: Int, decay d: Float, weight w: Float
    ) {
        for i in 0..<n { e[i] = (e[i] * d).addingProduct(p[i], w) }
    }

    /// Whether ``adamUpdate`` and ``emaUpdate`` run the AVX2 + FMA form on this CPU.
    public static var optimizerUsesFMA: Bool {
        var e: Float = 0
        let p: Float = 0
        return withUnsafePointer(to: p) { gsasr_ema_fma(&e, $0, 0, 1, 0) } != 0
    }
}
