import GSASRTensor

/// `nn.LayerNorm(dim)` with eps 1e-5 and affine weights: y = (x − μ)/√(σ² + ε)·γ + β per row.
public struct LayerNorm: @unchecked Sendable {
    public let weight: Tensor
    public let bias: Tensor
    public let eps: Float = 1e-5

    /// Declares `weight` (ones) and `bias` (zeros).
    public init(_ s: ParameterSource, dim: Int) throws {
        weight = try s.parameter("weight", [dim], .constant(1))
        bias = try s.parameter("bias", [dim], .constant(0))
    }

    /// What the backward needs: the input and each row's mean and 1/std.
    public struct Context {
        let x: Tensor
        let mean: Tensor
        let rstd: Tensor
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { forward(x, saving: false).0 }

    /// The forward; with `saving`, also the context of ``backward(_:dy:grads:)`` (the same
    /// kernel computes μ and 1/σ either way, so y is the same bits).
    public func forward(_ x: Tensor, saving: Bool) -> (Tensor, Context?) {
        let n = weight.count, rows = x.count / n
        let y = Tensor(uninitialized: x.shape)
        let mean = saving ? Tensor(uninitialized: [rows]) : nil, rstd = saving ? Tensor(uninitialized: [rows]) : nil
        Kernels.layerNorm(
            x: x.ptr, rows: rows, n: n, gamma: weight.ptr, beta: bias.ptr, eps: eps, y: y.ptr, mean: mean?.ptr,
            rstd: rstd?.ptr)
        withExtendedLifetime((x, y, mean, rstd)) {}
        guard let mean, let rstd else { return (y, nil) }
        return (y, Context(x: x, mean: mean, rstd: rstd))
    }

    /// dX from dY, accumulating dγ and dβ.
    public func backward(_ c: Context, dy: Tensor, grads: Gradients) -> Tensor {
        let n = weight.count, rows = c.x.count / n
        let dx = Tensor(uninitialized: c.x.shape)
        let dG = grads.of(weight), dB = grads.of(bias)
        Kernels.layerNormBackward(
            x: c.x.ptr, rows: rows, n: n, gamma: weight.ptr, mean: c.mean.ptr, rstd: c.rstd.ptr, dy: dy.ptr,
            dx: dx.ptr, dGamma: dG.ptr, dBeta: dB.ptr)
        withExtendedLifetime((c, dy, dx, dG, dB)) {}
        return dx
    }

    // Single-threaded pointer forms (for the window-group passes).

    func rows(
        _ x: UnsafePointer<Float>, _ rows: Int, into y: UnsafeMutablePointer<Float>,
        mean: UnsafeMutablePointer<Float>? = nil, rstd: UnsafeMutablePointer<Float>? = nil
    ) {
        Kernels.layerNorm(
            x: x, rows: rows, n: weight.count, gamma: weight.ptr, beta: bias.ptr, eps: eps, y: y, mean: mean,
            rstd: rstd, parallel: false)
    }

    func rowsBackward(
        x: UnsafePointer<Float>, rows: Int, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
        dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, dGamma: UnsafeMutablePointer<Float>,
        dBeta: UnsafeMutablePointer<Float>
    ) {
        Kernels.layerNormBackward(
            x: x, rows: rows, n: weight.count, gamma: weight.ptr, mean: mean, rstd: rstd, dy: dy, dx: dx,
            dGamma: dGamma, dBeta: dBeta, parallel: false)
    }
}
