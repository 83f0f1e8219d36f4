import GSASRTensor

/// The Swin/HAT `Mlp`: y = fc2(GELU(fc1(x))), with the exact (erf) GELU. (Inference only: the
/// encoders that use it are not trainable here yet.)
public struct GELUMLP: @unchecked Sendable {
    public let fc1: Linear
    public let fc2: Linear

    public init(_ s: ParameterSource, in i: Int, hidden h: Int) throws {
        fc1 = try Linear(s("fc1"), in: i, out: h)
        fc2 = try Linear(s("fc2"), in: h, out: i)
    }

    /// x: (rows × in) → (rows × in).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let h = fc1(x)
        Kernels.gelu(h)
        return fc2(h)
    }
}
