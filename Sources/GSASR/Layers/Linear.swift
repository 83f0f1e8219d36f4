import GSASRTensor

/// `nn.Linear(in, out)`: y = x·Wᵀ + b, weight (out × in), bias (out).
///
/// Its backward needs only the forward's input, which the caller already holds, so the forward
/// saves no context.
public struct Linear: @unchecked Sendable {
    public let weight: Tensor
    public let bias: Tensor?
    /// The bf16 copy of the weight when the model runs in bf16 (`Precision`).
    public let precision: PrecisionSlot
    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    /// Declares `weight` and `bias` (PyTorch's default initialisation: U(±1/√in) for both).
    /// `into` gives destination views for a layer that is a row block of a stacked one.
    public init(_ s: ParameterSource, in inF: Int, out outF: Int, bias hasBias: Bool = true, into: Linear? = nil)
        throws
    {
        let bound = 1 / Double(inF).squareRoot()
        weight = try s.parameter("weight", [outF, inF], .uniform(bound: bound), into: into?.weight)
        bias = hasBias ? try s.parameter("bias", [outF], .uniform(bound: bound), into: into?.bias) : nil
        precision = PrecisionSlot(linear: weight, k: inF, n: outF)
        // A row block of a stacked layer computes through the stacked one, registered there.
        if into == nil { s.registerProduct(precision) }
    }

    public init(weight: Tensor, bias: Tensor?) {
        self.weight = weight
        self.bias = bias
        precision = PrecisionSlot(linear: weight, k: weight.shape[1], n: weight.shape[0])
    }

    /// Uninitialised storage for `outs.count` layers of `in` inputs stacked along their outputs
    /// (one GEMM computes all of them, each output block in its own columns: the same dot
    /// products), and its row views, one per layer, for their declarations to fill (`into:`).
    /// The stacked layer is registered with `s` for the precision switch (its views are not:
    /// they compute through it).
    public static func stacked(_ s: ParameterSource, in inF: Int, outs: [Int]) -> (stacked: Linear, views: [Linear]) {
        let n = outs.reduce(0, +)
        let l = Linear(weight: Tensor(uninitialized: [n, inF]), bias: Tensor(uninitialized: [n]))
        s.registerProduct(l.precision)
        return (l, l.split(outs))
    }

    /// Row views of this layer's weight and bias, `outs[i]` outputs each, sharing storage. The
    /// views are the official per-projection parameters, so an optimiser step on either the
    /// stacked layer or a view updates both (one copy).
    public func split(_ outs: [Int]) -> [Linear] {
        precondition(outs.reduce(0, +) == outFeatures)
        var row = 0
        return outs.map { n in
            defer { row += n }
            return Linear(weight: weight.rows(row..<row + n), bias: bias?.rows(row..<row + n))
        }
    }

    /// y (rows × out) = x (rows × in) · Wᵀ + b.
    package func callAsFunction(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        Kernels.linear(
            x: x, ldx: inFeatures, m: rows, k: inFeatures, weight: weight.ptr, bias: bias?.ptr, n: outFeatures,
            y: y, ldy: outFeatures, bf16: precision.gemm)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let k = inFeatures, m = x.count / k
        precondition(x.shape.last == k, "linear: input width \(x.shape.last ?? 0) vs weight \(weight.shape)")
        var shape = x.shape
        shape[shape.count - 1] = outFeatures
        let y = Tensor(uninitialized: shape)
        withExtendedLifetime((x, weight, bias)) { self(x.ptr, rows: m, into: y.ptr) }
        return y
    }

    /// Applies the layer to one vector.
    public func apply(_ v: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: outFeatures)
        let wp = weight.ptr
        for o in 0..<outFeatures {
            var s: Float = 0
            for i in 0..<inFeatures { s += wp[o * inFeatures + i] * v[i] }
            out[o] = s + (bias.map { $0.ptr[o] } ?? 0)
        }
        return out
    }

    /// Backward: dX = dY·W, dW += dYᵀ·X, db += Σ dY (rows of `x` are the forward's input).
    /// With `into`, dX is added to that tensor instead (fan-out of x) and nil is returned.
    @discardableResult
    public func backward(input x: Tensor, dy: Tensor, grads: Gradients, into acc: Tensor? = nil, needDX: Bool = true)
        -> Tensor?
    {
        let k = inFeatures, n = outFeatures, m = x.count / k
        precondition(dy.count == m * n)
        let dW = grads.of(weight), dB = bias.map { grads.of($0) }
        if let acc {
            precondition(acc.count == x.count)
            Kernels.linearBackward(
                x: x.ptr, ldx: k, m: m, k: k, weight: weight.ptr, n: n, dy: dy.ptr, ldy: n, dx: acc.ptr, lddx: k,
                accumulateDX: true, dWeight: dW.ptr, dBias: dB?.ptr)
            withExtendedLifetime((x, dy, acc, dW, dB, weight)) {}
            return nil
        }
        return Kernels.linearBackward(x, weight: weight, dy: dy, dWeight: dW, dBias: dB, needDX: needDX)
    }

    // Single-threaded pointer forms (the window-group passes split rows over threads themselves).

    /// y = x·Wᵀ + b (optionally ReLU) on `rows` contiguous rows, one thread.
    func rows(_ x: UnsafePointer<Float>, _ rows: Int, into y: UnsafeMutablePointer<Float>, relu: Bool = false) {
        Kernels.linear(
            x: x, ldx: inFeatures, m: rows, k: inFeatures, weight: weight.ptr, bias: bias?.ptr, n: outFeatures, y: y,
            ldy: outFeatures, relu: relu, parallel: false, bf16: precision.gemm)
    }

    /// The backward of ``rows(_:_:into:relu:)`` without the ReLU: dx = dy·W, dW += dyᵀ·x,
    /// dB += Σ dy, into the given accumulators, one thread.
    func rowsBackward(
        x: UnsafePointer<Float>, rows: Int, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
        dW: UnsafeMutablePointer<Float>, dB: UnsafeMutablePointer<Float>
    ) {
        Kernels.linearBackward(
            x: x, ldx: inFeatures, m: rows, k: inFeatures, weight: weight.ptr, n: outFeatures, dy: dy,
            ldy: outFeatures, dx: dx, lddx: inFeatures, dWeight: dW, dBias: dB, parallel: false)
    }
}
