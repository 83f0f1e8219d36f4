extension Kernels {
    /// LayerNorm over the last dimension (PyTorch semantics: biased variance, eps inside the
    /// square root): y = (x − mean) / sqrt(var + eps) · γ + β. Rows are independent.
    /// When `mean` and `rstd` are given, each row's statistics are stored there (for the
    /// backward); the output is the same bit for bit either way.
    package static func layerNorm(
        x: UnsafePointer<Float>, rows: Int, n: Int, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
        eps: Float = 1e-5, y: UnsafeMutablePointer<Float>,
        mean meanOut: UnsafeMutablePointer<Float>? = nil, rstd rstdOut: UnsafeMutablePointer<Float>? = nil,
        parallel: Bool = true
    ) {
        Parallel.forChunks(rows, minChunk: 256, threads: parallel ? Parallel.threadCount : 1) { range in
            for r in range {
                let xr = x + r * n
                let yr = y + r * n
                // Both sums in 8 lanes, then across them (a sequential float sum is a chain of
                // dependent adds; this order differs from it by float noise).
                let xraw = UnsafeRawPointer(xr)
                var sv = SIMD8<Float>(repeating: 0)
                var j = 0
                while j + 8 <= n {
                    sv += (xraw + j * 4).loadUnaligned(as: SIMD8<Float>.self)
                    j += 8
                }
                var s = sv.sum()
                while j < n {
                    s += xr[j]
                    j += 1
                }
                let mean = s / Float(n)
                let mv = SIMD8<Float>(repeating: mean)
                var vv = SIMD8<Float>(repeating: 0)
                j = 0
                while j + 8 <= n {
                    let d = (xraw + j * 4).loadUnaligned(as: SIMD8<Float>.self) - mv
                    vv += d * d
                    j += 8
                }
                var v = vv.sum()
                while j < n {
                    let d = xr[j] - mean
                    v += d * d
                    j += 1
                }
                let rstd = 1 / (v / Float(n) + eps).squareRoot()
                for j in 0..<n { yr[j] = (xr[j] - mean) * rstd * gamma[j] + beta[j] }
                meanOut?[r] = mean
                rstdOut?[r] = rstd
            }
        }
    }

    /// Backward of ``layerNorm(x:rows:n:gamma:beta:eps:y:mean:rstd:)`` from the saved input and
    /// row statistics. With x̂ = (x − μ)·r and g = dy ⊙ γ:
    ///
    ///   dx = r · (g − mean(g) − x̂ · mean(g ⊙ x̂)),   dγ += Σ_rows dy ⊙ x̂,   dβ += Σ_rows dy.
    ///
    /// dx is written (rows in parallel unless `parallel` is false); dγ and dβ are summed over rows
    /// in order (deterministic).
    package static func layerNormBackward(
        x: UnsafePointer<Float>, rows: Int, n: Int, gamma: UnsafePointer<Float>, mean: UnsafePointer<Float>,
        rstd: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
        dGamma: UnsafeMutablePointer<Float>, dBeta: UnsafeMutablePointer<Float>, parallel: Bool = true
    ) {
        Parallel.forChunks(rows, minChunk: 128, threads: parallel ? Parallel.threadCount : 1) { range in
            for r in range {
                let xr = x + r * n, gr = dy + r * n, dxr = dx + r * n
                let mu = mean[r], rs = rstd[r]
                // Both sums in 8 SIMD lanes, then across them (as the forward's).
                let gv = UnsafeRawPointer(gr), xv = UnsafeRawPointer(xr), cv = UnsafeRawPointer(gamma)
                let muv = SIMD8<Float>(repeating: mu), rsv = SIMD8<Float>(repeating: rs)
                var sgv = SIMD8<Float>(repeating: 0), sgxv = SIMD8<Float>(repeating: 0)
                var j = 0
                while j + 8 <= n {
                    let g =
                        (gv + j * 4).loadUnaligned(as: SIMD8<Float>.self)
                        * (cv + j * 4).loadUnaligned(as: SIMD8<Float>.self)
                    let xh = ((xv + j * 4).loadUnaligned(as: SIMD8<Float>.self) - muv) * rsv
                    sgv += g
                    sgxv += g * xh
                    j += 8
                }
                var sg = sgv.sum(), sgx = sgxv.sum()
                while j < n {
                    let g = gr[j] * gamma[j]
                    let xh = (xr[j] - mu) * rs
                    sg += g
                    sgx += g * xh
                    j += 1
                }
                let mg = sg / Float(n), mgx = sgx / Float(n)
                for j in 0..<n {
                    let g = gr[j] * gamma[j]
                    let xh = (xr[j] - mu) * rs
                    dxr[j] = rs * (g - mg - xh * mgx)
                }
            }
        }
        for r in 0..<rows {
            let xr = x + r * n, gr = dy + r * n
            let mu = mean[r], rs = rstd[r]
            for j in 0..<n {
                dGamma[j] += gr[j] * ((xr[j] - mu) * rs)
                dBeta[j] += gr[j]
            }
        }
    }
}
