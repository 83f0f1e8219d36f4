import Foundation

/// Element-wise activations beyond ReLU (which is fused into the GEMM passes, ``linear(x:ldx:m:k:weight:bias:n:y:ldy:accumulate:relu:parallel:)``).
extension Kernels {
    /// GELU in its exact form, x·Φ(x) = x/2 · (1 + erf(x/√2)) (`nn.GELU()`'s default; the tanh
    /// approximation is a different function).
    package static func gelu(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
        let r: Float = 0.70710678118654752440
        Parallel.forBlocks(n, block: max(1 << 14, n / 16)) { range in
            for i in range {
                let x = p[i]
                p[i] = x * 0.5 * (1 + erf(x * r))
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
