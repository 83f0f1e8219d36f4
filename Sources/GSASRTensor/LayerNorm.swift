extension Kernels {
    /// LayerNorm over the last dimension (PyTorch semantics: biased variance, eps inside the
    /// square root): y = (x − mean) / sqrt(var + eps) · γ + β. Rows are independent.
    /// Statistics are accumulated in Double for stability; the result is Float32.
    public static func layerNorm(
        x: UnsafePointer<Float>, rows: Int, n: Int, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
        eps: Float = 1e-5, y: UnsafeMutablePointer<Float>
    ) {
        Parallel.forChunks(rows, minChunk: 256) { range in
            for r in range {
                let xr = x + r * n
                let yr = y + r * n
                var s: Float = 0
                for j in 0..<n { s += xr[j] }
                let mean = s / Float(n)
                var v: Float = 0
                for j in 0..<n {
                    let d = xr[j] - mean
                    v += d * d
                }
                let rstd = 1 / (v / Float(n) + eps).squareRoot()
                for j in 0..<n { yr[j] = (xr[j] - mean) * rstd * gamma[j] + beta[j] }
            }
        }
    }
}
