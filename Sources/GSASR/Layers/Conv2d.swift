import GSASRTensor

/// `nn.Conv2d(cin, cout, 3, 1, 1)` on channels-last maps (zero padding). The weight is kept as
/// (cout, ky, kx, cin) (`Conv3x3Weights`); its state-dict entry converts to PyTorch's
/// (cout, cin, 3, 3). The backward needs only the forward's input.
public struct Conv2d: @unchecked Sendable {
    public let weights: Conv3x3Weights

    /// Declares `weight` and `bias` (PyTorch's default: U(±1/√(9·cin)) for both).
    public init(_ s: ParameterSource, in cin: Int, out cout: Int) throws {
        let bound = 1 / (Double(cin) * 9).squareRoot()
        let w = try s.parameter(
            "weight", [cout, cin, 3, 3], .uniform(bound: bound), layout: .conv3x3(cout: cout, cin: cin))
        let b = try s.parameter("bias", [cout], .uniform(bound: bound))
        weights = Conv3x3Weights(weight: w, bias: b, cout: cout, cin: cin)
        s.registerProduct(weights.precision)
    }

    public func callAsFunction(_ x: Tensor, height: Int, width: Int) -> Tensor {
        Kernels.conv3x3(x, height: height, width: width, weights)
    }

    /// dX (nil unless `needDX`) from dY, accumulating dW and db; `x` is the forward's input.
    public func backward(
        input x: Tensor, height h: Int, width w: Int, dy: Tensor, grads: Gradients, needDX: Bool = true
    )
        -> Tensor?
    {
        Kernels.conv3x3Backward(
            x, height: h, width: w, weights, dy: dy, dWeight: grads.of(weights.weight), dBias: grads.of(weights.bias),
            needDX: needDX)
    }
}
