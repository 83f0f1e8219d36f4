import CKernels

/// Multi-head attention inside windows, with a per-head additive bias:
///
///   O_h = softmax((Q_h · s) K_hᵀ + B_h) V_h,   s = head_dim^(-1/2)
///
/// Q rows come from `q`, K and V rows from `k`, `v` (see the raw form for strides). Window `w` uses
/// query rows `qRows[w·nq ..< (w+1)·nq]` and key/value rows `kRows[w·nk ..< (w+1)·nk]`; the
/// output of query i is written to row `qRows[w·nq + i]` of `out`. Index maps make shifted
/// (rolled) windows free: the roll is a permutation of rows. Windows run in parallel; each
/// gathers its rows into contiguous scratch, runs per-head GEMMs and a row softmax.
extension Kernels {
    /// Self-attention form: `qkv` (rows × 3C) holds the fused [q | k | v] projections;
    /// bias (heads × nq × nk), out (rows × C).
    public static func windowAttention(
        qkv: Tensor, channels c: Int, rows: [Int32], windows: Int, tokensPerWindow n: Int, heads: Int,
        bias: Tensor, out: Tensor
    ) {
        precondition(qkv.shape.last! == 3 * c && out.count * 3 == qkv.count)
        precondition(bias.count == heads * n * n && rows.count == windows * n)
        windowAttention(
            q: qkv.ptr, k: qkv.ptr + c, v: qkv.ptr + 2 * c, channels: c, ldQ: 3 * c, ldKV: 3 * c, ldOut: c,
            qRows: rows, kRows: rows, windows: windows, nq: n, nk: n, heads: heads, bias: bias.ptr, out: out.ptr)
    }

    /// Cross-attention form: `q` (query rows × C); `kv` (key rows × 2C) holds the fused [k | v]
    /// projections; bias (heads × nq × nk); out (query rows × C).
    public static func windowAttention(
        q: Tensor, kv: Tensor, channels c: Int, qRows: [Int32], kRows: [Int32], windows: Int, nq: Int, nk: Int,
        heads: Int, bias: Tensor?, out: Tensor, bf16: Bool = false
    ) {
        precondition(q.shape.last! == c && kv.shape.last! == 2 * c && out.count == q.count)
        precondition((bias?.count ?? heads * nq * nk) == heads * nq * nk)
        precondition(qRows.count == windows * nq && kRows.count == windows * nk)
        windowAttention(
            q: q.ptr, k: kv.ptr, v: kv.ptr + c, channels: c, ldQ: c, ldKV: 2 * c, ldOut: c, qRows: qRows,
            kRows: kRows, windows: windows, nq: nq, nk: nk, heads: heads, bias: bias?.ptr, out: out.ptr, bf16: bf16)
    }

    /// Raw form. Row r of Q starts at `q + r·ldQ`, of K and V at `k + r·ldKV`, `v + r·ldKV`, of the
    /// output at `out + r·ldOut`; each row has `c` channels. `parallel: false` runs the windows
    /// in order on the calling thread (for callers that split the work themselves).
    package static func windowAttention(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, channels c: Int, ldQ: Int,
        ldKV: Int, ldOut: Int,
        qRows: [Int32], kRows: [Int32], windows: Int, nq: Int, nk: Int, heads: Int,
        bias: UnsafePointer<Float>?,  // heads × nq × nk, or none
        out: UnsafeMutablePointer<Float>, parallel: Bool = true,
        probabilities: UnsafeMutablePointer<Float>? = nil,  // windows × heads × nq × nk, kept for the backward
        masks: UnsafePointer<Float>? = nil,  // K × nq × nk additive masks (Swin's shifted windows)
        maskOfWindow: UnsafePointer<Int32>? = nil,  // per window: index into `masks`, or −1 for none
        bf16: Bool = false  // scores Qs·Kᵀ from bf16 operands (inference; see below)
    ) {
        let d = c / heads
        let scale = 1 / Float(d).squareRoot()
        // bf16 (`Precision`): per window the scaled queries and the keys are rounded to bf16 and
        // the scores of all heads are one batched oneDNN product (float32 accumulation and
        // output); the bias, the mask, the softmax and P·V stay float32 (P·V in bf16 measured
        // slower: its N is the head dimension). Not when saving probabilities (training).
        let scores: BF16Batched? =
            bf16 && probabilities == nil
            ? BF16Batched.shared(
                .init(batch: heads, m: nq, n: nk, k: d, a: [d, c, 1], b: [d, 1, c], c: [nq * nk, nk, 1])) : nil
        qRows.withUnsafeBufferPointer { qr in
            kRows.withUnsafeBufferPointer { kr in
                // Windows whose rows are consecutive (the training layers' group scratch, or
                // unshifted windows of one row of windows) are read and written in place: only
                // the scaled queries are copied.
                let qRun = rowsAreRuns(qr, windows: windows, perWindow: nq)
                let kRun = rowsAreRuns(kr, windows: windows, perWindow: nk)
                // Each worker takes windows w, w + workers, ... with its scratch allocated once
                // (the windows are independent: the same bits for any split).
                let workers = parallel ? max(1, min(Parallel.threadCount, windows)) : 1
                Parallel.workers(workers) { worker in
                    let qs = UnsafeMutablePointer<Float>.allocate(capacity: nq * c)
                    let kvScratch: UnsafeMutablePointer<Float>? = kRun ? nil : .allocate(capacity: 2 * nk * c)
                    let osScratch: UnsafeMutablePointer<Float>? = qRun ? nil : .allocate(capacity: nq * c)
                    let own =
                        probabilities == nil
                        ? UnsafeMutablePointer<Float>.allocate(capacity: (scores == nil ? 1 : heads) * nq * nk) : nil
                    let qb: UnsafeMutablePointer<UInt16>? = scores == nil ? nil : .allocate(capacity: (nq + nk) * c)
                    defer {
                        qs.deallocate(); kvScratch?.deallocate(); osScratch?.deallocate(); own?.deallocate()
                        qb?.deallocate()
                    }
                    for w in stride(from: worker, to: windows, by: workers) {
                        for i in 0..<nq {
                            let src = q + Int(qr[w * nq + i]) * ldQ
                            let dst = qs + i * c
                            for j in 0..<c { dst[j] = src[j] * scale }
                        }
                        let (ks, vs, ldK) = windowKeysValues(
                            k: k, v: v, ldKV: ldKV, rows: kr, window: w, nk: nk, channels: c, scratch: kvScratch)
                        let os = osScratch ?? (out + Int(qr[w * nq]) * ldOut)
                        let ldO = osScratch == nil ? ldOut : c
                        if let scores, let qb {
                            BF16.convert(qs, qb, count: nq * c)
                            BF16.convert(rows: nk, cols: c, ks, ldx: ldK, qb + nq * c, ldy: c)
                            scores.run(a: qb, b: qb + nq * c, c: own!)
                        }
                        for h in 0..<heads {
                            let mi = maskOfWindow.map { Int($0[w]) } ?? -1
                            let sc: UnsafeMutablePointer<Float>
                            if scores != nil {
                                sc = own! + h * nq * nk
                                if let bias { add(sc, bias + h * nq * nk, nq * nk) }
                                if mi >= 0 { add(sc, masks! + mi * nq * nk, nq * nk) }
                                softmaxRows(sc, rows: nq, n: nk)
                            } else {
                                sc = own ?? (probabilities! + (w * heads + h) * nq * nk)
                                attentionProbabilities(
                                    qs: qs + h * d, ldQ: c, ks: ks + h * d, ldK: ldK, headDim: d, nq: nq, nk: nk,
                                    bias: bias.map { $0 + h * nq * nk }, mask: mi >= 0 ? masks! + mi * nq * nk : nil,
                                    into: sc)
                            }
                            BLAS.sgemm(
                                transA: false, transB: false, m: nq, n: d, k: nk, alpha: 1,
                                a: sc, lda: nk, b: vs + h * d, ldb: ldK, beta: 0, c: os + h * d, ldc: ldO)
                        }
                        if let osScratch {
                            for i in 0..<nq {
                                (out + Int(qr[w * nq + i]) * ldOut).update(from: osScratch + i * c, count: c)
                            }
                        }
                    }
                }
            }
        }
    }

    /// Window w's K and V rows and their leading dimension: in place (ldKV) when `scratch` is nil
    /// (the window's rows are consecutive), else gathered into `scratch` (K then V, nk × c each).
    @inline(__always)
    static func windowKeysValues(
        k: UnsafePointer<Float>, v: UnsafePointer<Float>, ldKV: Int, rows kr: UnsafeBufferPointer<Int32>, window w: Int,
        nk: Int, channels c: Int, scratch: UnsafeMutablePointer<Float>?
    ) -> (UnsafePointer<Float>, UnsafePointer<Float>, Int) {
        guard let scratch else {
            let r0 = Int(kr[w * nk])
            return (k + r0 * ldKV, v + r0 * ldKV, ldKV)
        }
        for i in 0..<nk {
            let r = Int(kr[w * nk + i])
            (scratch + i * c).update(from: k + r * ldKV, count: c)
            (scratch + (nk + i) * c).update(from: v + r * ldKV, count: c)
        }
        return (UnsafePointer(scratch), UnsafePointer(scratch + nk * c), c)
    }

    /// Whether each window's rows are consecutive (row i of window w is rows[w·n] + i).
    static func rowsAreRuns(_ rows: UnsafeBufferPointer<Int32>, windows: Int, perWindow n: Int) -> Bool {
        for w in 0..<windows {
            let r0 = rows[w * n]
            for i in 1..<max(1, n) where rows[w * n + i] != r0 + Int32(i) { return false }
        }
        return true
    }

    /// One head's P = softmax(Qs·Kᵀ + B) (nq × nk) into `p`, from the scaled queries and the
    /// keys (rows of `ldQ` and `ldK` floats, `headDim` columns each) and the head's bias (nq × nk).
    @inline(__always)
    static func attentionProbabilities(
        qs: UnsafePointer<Float>, ldQ: Int, ks: UnsafePointer<Float>, ldK: Int, headDim d: Int, nq: Int, nk: Int,
        bias: UnsafePointer<Float>?, mask: UnsafePointer<Float>? = nil, into p: UnsafeMutablePointer<Float>
    ) {
        BLAS.sgemm(
            transA: false, transB: true, m: nq, n: nk, k: d, alpha: 1, a: qs, lda: ldQ, b: ks, ldb: ldK, beta: 0, c: p,
            ldc: nk)
        if let bias { add(p, bias, nq * nk) }
        if let mask { add(p, mask, nq * nk) }
        softmaxRows(p, rows: nq, n: nk)
    }

    /// Σ a[j]·b[j] for j < n, summed in 8 SIMD lanes and then across them (a scalar float sum
    /// is a chain of dependent adds the compiler may not reorder).
    @inline(__always)
    static func rowDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        let ar = UnsafeRawPointer(a), br = UnsafeRawPointer(b)
        var acc = SIMD8<Float>(repeating: 0)
        var j = 0
        while j + 8 <= n {
            acc += (ar + j * 4).loadUnaligned(as: SIMD8<Float>.self) * (br + j * 4).loadUnaligned(as: SIMD8<Float>.self)
            j += 8
        }
        var s = acc.sum()
        while j < n {
            s += a[j] * b[j]
            j += 1
        }
        return s
    }

    /// Row-wise softmax in place: exp(x − max) / Σ exp(x − max).
    ///
    /// Vectorised by hand (SIMD8): a float max or sum written as a scalar loop is a chain of
    /// dependent instructions the compiler may not reorder, and window attention runs this over
    /// every 144×144 score block. The max is exact in any order; the sum adds in 8 lanes, then
    /// the lanes (a different rounding order from a sequential sum, float noise); x − max, exp
    /// and the division are the same per element as the scalar forms.
    package static func softmaxRows(_ p: UnsafeMutablePointer<Float>, rows: Int, n: Int) {
        // AVX2 where the CPU has it (CKernels, chosen at run time): the same operations lane
        // for lane, so the same bits (`softmaxAVX2MatchesPortable` checks it).
        if gsasr_softmax_rows_avx2(p, rows, n) != 0 { return }
        softmaxRowsPortable(p, rows: rows, n: n)
    }

    /// Whether ``softmaxRows(_:rows:n:)`` runs the AVX2 version on this CPU.
    public static var softmaxUsesAVX2: Bool {
        var x: Float = 0
        return gsasr_softmax_rows_avx2(&x, 0, 1) != 0
    }

    /// ``softmaxRows(_:rows:n:)`` in portable Swift SIMD8 (SSE2 on the x86-64 baseline).
    package static func softmaxRowsPortable(_ p: UnsafeMutablePointer<Float>, rows: Int, n: Int) {
        typealias V = FastMath.V
        let raw = UnsafeMutableRawPointer(p)
        for r in 0..<rows {
            let row = p + r * n, rowRaw = raw + r * n * 4
            var mv = V(repeating: -.infinity)
            var j = 0
            while j + 8 <= n {
                // The larger lane by the sign of v − max, spread over the lane by an arithmetic
                // shift: `pointwiseMax` is not inlined here, `replacing(with:where:)` compiles to
                // a lane loop, and a comparison mask (SIMDMask) goes through the integer
                // registers lane by lane. For non-NaN lanes v − max < 0 exactly when v < max
                // (a difference of unequal floats is never zero with gradual underflow), and
                // equal lanes are the same value either way, so the max is exact.
                let v = (rowRaw + j * 4).loadUnaligned(as: V.self)
                let less = FastMath.bits(v - mv) &>> 31  // all ones where v < max
                mv = FastMath.floats((FastMath.bits(mv) & less) | (FastMath.bits(v) & ~less))
                j += 8
            }
            var m = mv.max()
            while j < n {
                m = max(m, row[j])
                j += 1
            }
            let mb = V(repeating: m)
            var sv = V(repeating: 0)
            j = 0
            while j + 8 <= n {
                let e = FastMath.exp((rowRaw + j * 4).loadUnaligned(as: V.self) - mb)
                (rowRaw + j * 4).storeBytes(of: e, as: V.self)
                sv += e
                j += 8
            }
            var s = sv.sum()
            while j < n {
                let e = FastMath.exp(row[j] - m)
                row[j] = e
                s += e
                j += 1
            }
            let sb = V(repeating: s)
            j = 0
            while j + 8 <= n {
                let v = (rowRaw + j * 4).loadUnaligned(as: V.self)
                (rowRaw + j * 4).storeBytes(of: v / sb, as: V.self)
                j += 8
            }
            while j < n {
                row[j] /= s
                j += 1
            }
        }
    }
}

// MARK: - Backward

extension Kernels {
    /// Backward of the raw ``windowAttention(q:k:v:channels:ldQ:ldKV:ldOut:qRows:kRows:windows:nq:nk:heads:bias:out:)``.
    ///
    /// The probabilities are those the forward kept (`probabilities`, windows × heads × nq × nk),
    /// or are recomputed per window and head from the saved Q, K, V exactly as the forward
    /// computes them; then, with Qs = Q·s, P = softmax(Qs·Kᵀ + B) and dO the upstream gradient:
    ///
    ///   dV = Pᵀ·dO,   dP = dO·Vᵀ,   dZ = P ⊙ (dP − rowsum(dP ⊙ P)),
    ///   dQ = s·dZ·K,   dK = dZᵀ·Qs,   dB += Σ_windows dZ.
    ///
    /// dQ, dK and dV rows are *written* at the rows the window reads (every query row and every
    /// key row belongs to exactly one window: the row maps are permutations). dB is summed over
    /// windows in window order after the parallel loop (deterministic for any thread count).
    package static func windowAttentionBackward(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, channels c: Int, ldQ: Int,
        ldKV: Int, qRows: [Int32], kRows: [Int32], windows: Int, nq: Int, nk: Int, heads: Int,
        bias: UnsafePointer<Float>, dOut: UnsafePointer<Float>, ldDOut: Int,
        dQ: UnsafeMutablePointer<Float>, ldDQ: Int, dK: UnsafeMutablePointer<Float>, dV: UnsafeMutablePointer<Float>,
        ldDKV: Int, dBias: UnsafeMutablePointer<Float>, parallel: Bool = true,
        probabilities: UnsafePointer<Float>? = nil
    ) {
        let d = c / heads
        let scale = 1 / Float(d).squareRoot()
        let biasSize = heads * nq * nk
        // In parallel, each window's dZ goes to its own slot, summed in window order at the end;
        // run in order on one thread, each window adds into dB directly: the same sums.
        let partial: UnsafeMutablePointer<Float>? = parallel ? .allocate(capacity: windows * biasSize) : nil
        defer { partial?.deallocate() }
        qRows.withUnsafeBufferPointer { qr in
            kRows.withUnsafeBufferPointer { kr in
                let each: ((Int) -> Void) -> Void = { body in
                    if parallel { Parallel.forEach(windows, body) } else { for w in 0..<windows { body(w) } }
                }
                // As the forward: windows of consecutive rows are read and written in place.
                let qRun = rowsAreRuns(qr, windows: windows, perWindow: nq)
                let kRun = rowsAreRuns(kr, windows: windows, perWindow: nk)
                each { w in
                    let qs = UnsafeMutablePointer<Float>.allocate(capacity: nq * c)
                    // Gathered rows where the window's rows are not consecutive: dO and dQ
                    // (queries), K, V, dK and dV (keys).
                    let qScratch: UnsafeMutablePointer<Float>? = qRun ? nil : .allocate(capacity: 2 * nq * c)
                    let kScratch: UnsafeMutablePointer<Float>? = kRun ? nil : .allocate(capacity: 4 * nk * c)
                    let own = probabilities == nil ? UnsafeMutablePointer<Float>.allocate(capacity: nq * nk) : nil
                    let dp = UnsafeMutablePointer<Float>.allocate(capacity: nq * nk)
                    defer {
                        qs.deallocate(); qScratch?.deallocate(); kScratch?.deallocate(); own?.deallocate()
                        dp.deallocate()
                    }
                    for i in 0..<nq {
                        let src = q + Int(qr[w * nq + i]) * ldQ
                        let dst = qs + i * c
                        for j in 0..<c { dst[j] = src[j] * scale }
                    }
                    let dos: UnsafePointer<Float>, ldO: Int, dqs: UnsafeMutablePointer<Float>, ldDq: Int
                    if let qScratch {
                        for i in 0..<nq {
                            (qScratch + i * c).update(from: dOut + Int(qr[w * nq + i]) * ldDOut, count: c)
                        }
                        (dos, ldO, dqs, ldDq) = (UnsafePointer(qScratch), c, qScratch + nq * c, c)
                    } else {
                        let r0 = Int(qr[w * nq])
                        (dos, ldO, dqs, ldDq) = (dOut + r0 * ldDOut, ldDOut, dQ + r0 * ldDQ, ldDQ)
                    }
                    let (ks, vs, ldK) = windowKeysValues(
                        k: k, v: v, ldKV: ldKV, rows: kr, window: w, nk: nk, channels: c, scratch: kScratch)
                    let dks: UnsafeMutablePointer<Float>, dvs: UnsafeMutablePointer<Float>, ldDk: Int
                    if let kScratch {
                        (dks, dvs, ldDk) = (kScratch + 2 * nk * c, kScratch + 3 * nk * c, c)
                    } else {
                        let r0 = Int(kr[w * nk])
                        (dks, dvs, ldDk) = (dK + r0 * ldDKV, dV + r0 * ldDKV, ldDKV)
                    }
                    for h in 0..<heads {
                        // P: kept by the forward, or recomputed exactly as the forward does.
                        let sc: UnsafePointer<Float>
                        if let own {
                            attentionProbabilities(
                                qs: qs + h * d, ldQ: c, ks: ks + h * d, ldK: ldK, headDim: d, nq: nq, nk: nk,
                                bias: bias + h * nq * nk, into: own)
                            sc = UnsafePointer(own)
                        } else {
                            sc = probabilities! + (w * heads + h) * nq * nk
                        }
                        // dV_h = Pᵀ dO_h
                        BLAS.sgemm(
                            transA: true, transB: false, m: nk, n: d, k: nq, alpha: 1,
                            a: sc, lda: nk, b: dos + h * d, ldb: ldO, beta: 0, c: dvs + h * d, ldc: ldDk)
                        // dP = dO_h V_hᵀ
                        BLAS.sgemm(
                            transA: false, transB: true, m: nq, n: nk, k: d, alpha: 1,
                            a: dos + h * d, lda: ldO, b: vs + h * d, ldb: ldK, beta: 0, c: dp, ldc: nk)
                        // dZ = P ⊙ (dP − rowsum(dP ⊙ P)), into dp, and dB: added directly (in
                        // order on one thread) or kept per window (summed in window order below).
                        let db = partial.map { $0 + w * biasSize + h * nq * nk } ?? (dBias + h * nq * nk)
                        let accumulate = partial == nil
                        for i in 0..<nq {
                            let pr = sc + i * nk, gr = dp + i * nk, br = db + i * nk
                            let s = rowDot(pr, gr, nk)
                            if accumulate {
                                for j in 0..<nk {
                                    let z = pr[j] * (gr[j] - s)
                                    gr[j] = z
                                    br[j] += z
                                }
                            } else {
                                for j in 0..<nk {
                                    let z = pr[j] * (gr[j] - s)
                                    gr[j] = z
                                    br[j] = z
                                }
                            }
                        }
                        // dQs_h = dZ K_h ; dK_h = dZᵀ Qs_h
                        BLAS.sgemm(
                            transA: false, transB: false, m: nq, n: d, k: nk, alpha: scale,
                            a: dp, lda: nk, b: ks + h * d, ldb: ldK, beta: 0, c: dqs + h * d, ldc: ldDq)
                        BLAS.sgemm(
                            transA: true, transB: false, m: nk, n: d, k: nq, alpha: 1,
                            a: dp, lda: nk, b: qs + h * d, ldb: c, beta: 0, c: dks + h * d, ldc: ldDk)
                    }
                    if qScratch != nil {
                        for i in 0..<nq {
                            (dQ + Int(qr[w * nq + i]) * ldDQ).update(from: dqs + i * c, count: c)
                        }
                    }
                    if kScratch != nil {
                        for i in 0..<nk {
                            let r = Int(kr[w * nk + i])
                            (dK + r * ldDKV).update(from: dks + i * c, count: c)
                            (dV + r * ldDKV).update(from: dvs + i * c, count: c)
                        }
                    }
                }
            }
        }
        if let partial {
            for w in 0..<windows {
                let src = partial + w * biasSize
                for i in 0..<biasSize { dBias[i] += src[i] }
            }
        }
    }
}
