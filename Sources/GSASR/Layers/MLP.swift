import GSASRTensor

/// Two linear layers with a ReLU between them: y = fc2(relu(fc1(x))). Covers both the official
/// `Mlp` (keys `fc1`/`fc2`) and `nn.Sequential(Linear, ReLU, Linear)` (keys `0`/`2`).
public struct MLP: @unchecked Sendable {
    public let fc1: Linear
    public let fc2: Linear

    public init(_ s: ParameterSource, first: String, second: String, in i: Int, hidden h: Int, out o: Int) throws {
        fc1 = try Linear(s(first), in: i, out: h)
        fc2 = try Linear(s(second), in: h, out: o)
    }

    /// What the backward needs: the input and the hidden activation after the ReLU.
    public struct Context {
        let x: Tensor
        let hidden: Tensor
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { forward(x, saving: false).0 }

    public func forward(_ x: Tensor, saving: Bool) -> (Tensor, Context?) {
        let h = fc1(x)
        Kernels.relu(h)
        return (fc2(h), saving ? Context(x: x, hidden: h) : nil)
    }

    public func backward(_ c: Context, dy: Tensor, grads: Gradients) -> Tensor {
        let dh = fc2.backward(input: c.hidden, dy: dy, grads: grads)!
        Kernels.reluBackward(dh, output: c.hidden)
        return fc1.backward(input: c.x, dy: dh, grads: grads)!
    }
}
