import Foundation

/// Element-wise activations beyond ReLU (which is fused into the GEMM passes, ``linear(x:ldx:m:k:weight:bias:n:y:ldy:accumulate:relu:parallel:)``).
extension Kernels {
    /// GELU in its exact form, x·Φ(x) = x/2 · (1 + erf(x/√2)) (`nn.GELU()`'s default; the tanh
    /// approximation is a different function).
    ///
    /// erf is ``FastMath/erf(_:)`` (a few ulp; PyTorch's CPU GELU also uses a vectorised erf).
    package static func gelu(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
        let r: Float = 0.70710678118654752440
        Parallel.forBlocks(n, block: max(1 << 14, (n / 16 + 7) / 8 * 8)) { range in
            var i = range.lowerBound
            let raw = UnsafeMutableRawPointer(p)
            while i + 8 <= range.upperBound {
                let x = (raw + i * 4).loadUnaligned(as: FastMath.V.self)
                let y = x * 0.5 * (1 + FastMath.erf(x * r))
                (raw + i * 4).storeBytes(of: y, as: FastMath.V.self)
                i += 8
            }
            while i < range.upperBound {
                let x = p[i]
                p[i] = x * 0.5 * (1 + FastMath.erf(x * r))
                i += 1
            }
        }
    }

    public static func gelu(_ t: Tensor) { t.withPointer { gelu($0, t.count) } }

    /// LeakyReLU: x for x ≥ 0, slope·x below.
    package static func leakyReLU(_ p: UnsafeMutablePointer<Float>, _ n: Int, slope: Float) {
        for i in 0..<n where p[i] < 0 { p[i] *= slope }
    }

    public static func leakyReLU(_ t: Tensor, slope: Float) { t.withPointer { leakyReLU($0, t.count, slope: slope) } }
}
