/// Fully connected layers as row-major GEMMs: Y[m, :] = X[m, :] · Wᵀ + b.
///
/// W uses PyTorch's `nn.Linear` layout (out × in), so it is passed to BLAS transposed. Large
/// products are cut into blocks of output rows whose size depends on the problem only
/// (`Parallel.forBlocks`), spread over the threads, each block one single-threaded BLAS call:
/// the results are the same bits for any thread count.
public enum Kernels {
    /// y (m × n, leading dim ldy) = x (m × k, leading dim ldx) · wᵀ (w: n × k) [+ bias] [+= y if accumulate].
    package static func linear(
        x: UnsafePointer<Float>, ldx: Int, m: Int, k: Int,
        weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, n: Int,
        y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool = false, relu: Bool = false, parallel: Bool = true,
        bf16: BF16GEMM? = nil
    ) {
        if m == 0 { return }
        let body: (Range<Int>) -> Void = { rows in
            let yr = y + rows.lowerBound * ldy
            if let g = bf16 {
                // bf16 products (``Precision``): this block's rows of X rounded to bf16, the
                // weights' bf16 copy, float32 accumulation; then the same bias / ReLU pass.
                precondition(g.k == k && g.n == n, "linear: bf16 product \(g.k)x\(g.n) for \(k)x\(n)")
                precondition(!accumulate, "linear: a bf16 product does not accumulate (inference only)")
                let xb = BF16.threadBuffer(slot: 0, count: rows.count * k)
                BF16.convert(rows: rows.count, cols: k, x + rows.lowerBound * ldx, ldx: ldx, xb, ldy: k)
                linearBF16(xb, ldx: k, rows: rows.count, g, bias: bias, y: yr, ldy: ldy, relu: relu)
                return
            }
            if relu && !accumulate {
                // Y = relu(X·Wᵀ + b): the GEMM writes X·Wᵀ, then one pass adds the bias and
                // applies the ReLU (instead of a bias copy, a GEMM that reads it back, and a
                // ReLU pass). The same rounding as bias-first + ``relu(_:_:)`` when the GEMM does
                // not split k (the heads' and MLPs' k = 180): both round acc + b once.
                BLAS.sgemm(
                    transA: false, transB: true, m: rows.count, n: n, k: k, alpha: 1,
                    a: x + rows.lowerBound * ldx, lda: ldx, b: weight, ldb: k, beta: 0, c: yr, ldc: ldy)
                for r in 0..<rows.count { biasRelu(yr + r * ldy, bias, n) }
                return
            }
            if !accumulate {
                if let bias {
                    for r in 0..<rows.count {
                        (yr + r * ldy).update(from: bias, count: n)
                    }
                }
            }
            BLAS.sgemm(
                transA: false, transB: true, m: rows.count, n: n, k: k, alpha: 1,
                a: x + rows.lowerBound * ldx, lda: ldx, b: weight, ldb: k,
                beta: (accumulate || bias != nil) ? 1 : 0, c: yr, ldc: ldy)
            if accumulate, let bias {
                for r in 0..<rows.count {
                    let row = yr + r * ldy
                    for j in 0..<n { row[j] += bias[j] }
                }
            }
        }
        // Split only when there is enough work to amortise thread start-up (~2 MFLOP per slice).
        if parallel && m * n * k >= 1 << 21 {
            Parallel.forBlocks(m, block: Parallel.blockLength(m, minBlock: 64), body)
        } else {
            body(0..<m)
        }
    }

    /// y (rows × n, leading dim ldy) = xb (bf16 rows, leading dim ldx) · Wᵀ [+ bias] [ReLU], on
    /// this thread: the bf16 product writes float32, then one pass adds the bias (and applies
    /// the ReLU), as the float32 form's.
    package static func linearBF16(
        _ xb: UnsafePointer<UInt16>, ldx: Int, rows: Int, _ g: BF16GEMM, bias: UnsafePointer<Float>?,
        y: UnsafeMutablePointer<Float>, ldy: Int, relu: Bool = false
    ) {
        g.run(m: rows, a: xb, lda: ldx, c: y, ldc: ldy)
        if relu {
            for r in 0..<rows { biasRelu(y + r * ldy, bias, g.n) }
        } else if let bias {
            for r in 0..<rows { add(y + r * ldy, bias, g.n) }
        }
    }

    /// Convenience for tensors: x (m × k) → y (m × n).
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let k = x.shape.last!
        let m = x.count / k
        let n = weight.shape[0]
        precondition(weight.shape[1] == k, "linear: input width \(k) vs weight \(weight.shape)")
        var outShape = x.shape
        outShape[outShape.count - 1] = n
        let y = Tensor(uninitialized: outShape)
        linear(x: x.ptr, ldx: k, m: m, k: k, weight: weight.ptr, bias: bias?.ptr, n: n, y: y.ptr, ldy: n)
        return y
    }

    /// p = relu(p + b) in place over n elements (b nil: relu(p)), the same per-element
    /// operations as an add followed by ``relu(_:_:)``.
    @inline(__always)
    static func biasRelu(_ p: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>?, _ n: Int) {
        var i = 0
        let zero = SIMD8<Float>(repeating: 0)
        while i + 8 <= n {
            var v = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
            if let b { v += UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self) }
            UnsafeMutableRawPointer(p + i).storeBytes(
                of: v.replacing(with: zero, where: .!(v .> zero)), as: SIMD8<Float>.self)
            i += 8
        }
        while i < n {
            p[i] = max(b.map { p[i] + $0[i] } ?? p[i], 0)  // as relu's tail
            i += 1
        }
    }

    /// In-place ReLU.
    package static func relu(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
        // SIMD8 explicitly: the pointer loop does not vectorise on its own.
        var i = 0
        let zero = SIMD8<Float>(repeating: 0)
        while i + 8 <= n {
            let v = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(p + i).storeBytes(
                of: v.replacing(with: zero, where: .!(v .> zero)), as: SIMD8<Float>.self)
            i += 8
        }
        while i < n {
            p[i] = max(p[i], 0)
            i += 1
        }
    }

    public static func relu(_ t: Tensor) { relu(t.ptr, t.count) }

    /// In-place y += x.
    package static func add(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] += x[i] }
    }

    /// In-place: every row of y (rows × n) += v (n).
    package static func addRow(_ y: UnsafeMutablePointer<Float>, rows: Int, _ v: UnsafePointer<Float>, _ n: Int) {
        for r in 0..<rows {
            let row = y + r * n
            for j in 0..<n { row[j] += v[j] }
        }
    }
}

// MARK: - Backward

extension Kernels {
    /// Backward of ``linear(x:ldx:m:k:weight:bias:n:y:ldy:accumulate:parallel:)`` for
    /// Y = X·Wᵀ + b, given dY (m × n, leading dim ldy):
    ///
    ///   dX = dY·W          (m × k; written, or added when `accumulateDX`)
    ///   dW += dYᵀ·X        (n × k)
    ///   db += dYᵀ·1        (n)
    ///
    /// Each GEMM is cut into blocks of rows of its *output* (dX by rows of m, dW and db by rows
    /// of n) whose size depends on the problem only, so every block is the same BLAS call
    /// whatever the thread count: results do not depend on the number of threads. Pass `dx: nil` to skip the input gradient (first layer).
    package static func linearBackward(
        x: UnsafePointer<Float>, ldx: Int, m: Int, k: Int, weight: UnsafePointer<Float>, n: Int,
        dy: UnsafePointer<Float>, ldy: Int,
        dx: UnsafeMutablePointer<Float>?, lddx: Int, accumulateDX: Bool = false,
        dWeight: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>?, parallel: Bool = true
    ) {
        if m == 0 { return }
        let big = parallel && m * n * k >= 1 << 21
        if let dx {
            let body: (Range<Int>) -> Void = { rows in
                BLAS.sgemm(
                    transA: false, transB: false, m: rows.count, n: k, k: n, alpha: 1,
                    a: dy + rows.lowerBound * ldy, lda: ldy, b: weight, ldb: k,
                    beta: accumulateDX ? 1 : 0, c: dx + rows.lowerBound * lddx, ldc: lddx)
            }
            if big { Parallel.forBlocks(m, block: Parallel.blockLength(m, minBlock: 64), body) } else { body(0..<m) }
        }
        let ones: UnsafeMutablePointer<Float>? = dBias == nil ? nil : .allocate(capacity: m)
        ones?.initialize(repeating: 1, count: m)
        defer { ones?.deallocate() }
        let wbody: (Range<Int>) -> Void = { outs in
            BLAS.sgemm(
                transA: true, transB: false, m: outs.count, n: k, k: m, alpha: 1,
                a: dy + outs.lowerBound, lda: ldy, b: x, ldb: ldx, beta: 1, c: dWeight + outs.lowerBound * k, ldc: k)
            if let dBias, let ones {
                BLAS.sgemm(
                    transA: true, transB: false, m: outs.count, n: 1, k: m, alpha: 1,
                    a: dy + outs.lowerBound, lda: ldy, b: ones, ldb: 1, beta: 1, c: dBias + outs.lowerBound, ldc: 1)
            }
        }
        if big && n >= 32 {
            Parallel.forBlocks(n, block: Parallel.blockLength(n, minBlock: 16, maxBlocks: 8), wbody)
        } else {
            wbody(0..<n)
        }
    }

    /// Tensor form: x (m × k), dy (m × n); weight (n × k). Returns dX unless `needDX` is false.
    @discardableResult
    public static func linearBackward(
        _ x: Tensor, weight: Tensor, dy: Tensor, dWeight: Tensor, dBias: Tensor?, needDX: Bool = true
    ) -> Tensor? {
        let k = weight.shape[1], n = weight.shape[0]
        precondition(x.count % k == 0 && dy.count == x.count / k * n && dWeight.count == n * k)
        let m = x.count / k
        let dx: Tensor? = needDX ? Tensor(uninitialized: x.shape) : nil
        linearBackward(
            x: x.ptr, ldx: k, m: m, k: k, weight: weight.ptr, n: n, dy: dy.ptr, ldy: n, dx: dx?.ptr, lddx: k,
            dWeight: dWeight.ptr, dBias: dBias?.ptr)
        return dx
    }

    /// dY ⊙ [y > 0] in place on `dy`, where `y` is the ReLU *output* (PyTorch's
    /// threshold_backward: the gradient passes where the input was > 0, i.e. where y > 0).
    public static func reluBackward(_ dy: Tensor, output y: Tensor) {
        precondition(dy.count == y.count)
        reluBackward(dy.ptr, output: y.ptr, dy.count)
    }

    package static func reluBackward(_ dy: UnsafeMutablePointer<Float>, output y: UnsafePointer<Float>, _ n: Int) {
        // SIMD8 explicitly: the pointer loop does not vectorise on its own (possible aliasing).
        var i = 0
        let zero = SIMD8<Float>(repeating: 0)
        while i + 8 <= n {
            let yv = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD8<Float>.self)
            let dv = UnsafeRawPointer(dy + i).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(dy + i).storeBytes(
                of: dv.replacing(with: zero, where: .!(yv .> zero)), as: SIMD8<Float>.self)
            i += 8
        }
        while i < n {
            if !(y[i] > 0) { dy[i] = 0 }
            i += 1
        }
    }

    /// Backward of y = h·Wᵀ + b for a layer with a few outputs (W: k × width, k small, as the
    /// heads' last layers with 1 to 3 outputs), where h is a ReLU's output, in one pass over h:
    ///
    ///   dh = (dy·W) ⊙ [h > 0],   dW += dyᵀ·h,   db += Σ_rows dy.
    ///
    /// The unfused form (a GEMM with an inner dimension of k for dh, one with k output rows for
    /// dW, then the ReLU mask) reads h twice and writes and rereads dh. Rows are summed in order
    /// (deterministic); SIMD8 runs along the width. [h > 0] is tested on the bits: 0 < bits ≤
    /// bits(+∞) as Int32 holds exactly for h > 0 (not for ±0, negatives or NaN), without a
    /// SIMDMask (which compiles to a lane loop).
    package static func narrowLinearReluBackward(
        h: UnsafePointer<Float>, rows: Int, width: Int, weight: UnsafePointer<Float>, outputs k: Int,
        dy: UnsafePointer<Float>, dh: UnsafeMutablePointer<Float>, dWeight: UnsafeMutablePointer<Float>,
        dBias: UnsafeMutablePointer<Float>
    ) {
        typealias V = SIMD8<Float>
        typealias I = SIMD8<Int32>
        let inf = I(repeating: 0x7F80_0000), one = I(repeating: 1)
        for r in 0..<rows {
            let hr = UnsafeRawPointer(h + r * width), dr = UnsafeMutableRawPointer(dh + r * width)
            let g = dy + r * k
            for o in 0..<k { dBias[o] += g[o] }
            var j = 0
            while j + 8 <= width {
                let hv = (hr + j * 4).loadUnaligned(as: V.self)
                var acc = V(repeating: 0)
                for o in 0..<k {
                    let go = V(repeating: g[o])
                    acc += go * UnsafeRawPointer(weight + o * width + j).loadUnaligned(as: V.self)
                    let dw = UnsafeMutableRawPointer(dWeight + o * width + j)
                    dw.storeBytes(of: dw.loadUnaligned(as: V.self) + go * hv, as: V.self)
                }
                let b = unsafeBitCast(hv, to: I.self)
                let keep = ~(((b &- one) | (inf &- b)) &>> 31)  // all ones where h > 0
                (dr + j * 4).storeBytes(
                    of: unsafeBitCast(unsafeBitCast(acc, to: I.self) & keep, to: V.self), as: V.self)
                j += 8
            }
            while j < width {
                var acc: Float = 0
                for o in 0..<k {
                    acc += g[o] * weight[o * width + j]
                    dWeight[o * width + j] += g[o] * h[r * width + j]
                }
                dh[r * width + j] = h[r * width + j] > 0 ? acc : 0
                j += 1
            }
        }
    }

    /// Column sums of x (rows × n) added into `out` (n), rows in order (deterministic).
    package static func addColumnSums(_ x: Tensor, into out: UnsafeMutablePointer<Float>, n: Int) {
        let rows = x.count / n
        let p = x.ptr
        for r in 0..<rows {
            let row = p + r * n
            for j in 0..<n { out[j] += row[j] }
        }
    }
}
