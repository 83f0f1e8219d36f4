/// Fully connected layers as row-major GEMMs: Y[m, :] = X[m, :] · Wᵀ + b.
///
/// W uses PyTorch's `nn.Linear` layout (out × in), so it is passed to BLAS transposed. Large
/// products are split by rows over `Parallel.threadCount` threads, each calling
/// single-threaded BLAS on its slice.
public enum Kernels {
    /// y (m × n, leading dim ldy) = x (m × k, leading dim ldx) · wᵀ (w: n × k) [+ bias] [+= y if accumulate].
    public static func linear(
        x: UnsafePointer<Float>, ldx: Int, m: Int, k: Int,
        weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, n: Int,
        y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool = false, parallel: Bool = true
    ) {
        if m == 0 { return }
        let body: (Range<Int>) -> Void = { rows in
            let yr = y + rows.lowerBound * ldy
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
        if parallel && m * n * k >= 1 << 21 && m >= 2 * Parallel.threadCount {
            Parallel.forChunks(m, minChunk: 8, body)
        } else {
            body(0..<m)
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

    /// In-place ReLU.
    public static func relu(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { p[i] = max(p[i], 0) }
    }

    public static func relu(_ t: Tensor) { relu(t.ptr, t.count) }

    /// In-place y += x.
    public static func add(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] += x[i] }
    }

    /// In-place: every row of y (rows × n) += v (n).
    public static func addRow(_ y: UnsafeMutablePointer<Float>, rows: Int, _ v: UnsafePointer<Float>, _ n: Int) {
        for r in 0..<rows {
            let row = y + r * n
            for j in 0..<n { row[j] += v[j] }
        }
    }
}
