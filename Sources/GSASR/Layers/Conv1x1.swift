import GSASRTensor

/// `nn.Conv2d(cin, cout, 1)` on channels-last maps: a ``Linear`` over pixels. The state-dict
/// weight is (cout, cin, 1, 1); ours is a (cout × cin) view of the same storage.
public struct Conv1x1: @unchecked Sendable {
    public let linear: Linear
    public var cin: Int { linear.inFeatures }
    public var cout: Int { linear.outFeatures }

    /// Declares `weight` and `bias` (PyTorch's default: U(±1/√cin) for both).
    public init(_ s: ParameterSource, in cin: Int, out cout: Int) throws {
        let bound = 1 / Double(cin).squareRoot()
        let w = try s.parameter("weight", [cout, cin, 1, 1], .uniform(bound: bound))
        let b = try s.parameter("bias", [cout], .uniform(bound: bound))
        linear = Linear(weight: w.reshaped([cout, cin]), bias: b)
    }

    /// x: (pixels × cin) → (pixels × cout).
    public func callAsFunction(_ x: Tensor) -> Tensor { linear(x) }

    /// One vector (cin) → (cout).
    public func apply(_ v: [Float]) -> [Float] { linear.apply(v) }
}
