import GSASRTensor

/// `nn.Linear(in, out)`: weight (out × in), bias (out).
public struct Linear: @unchecked Sendable {
    public let weight: Tensor
    public let bias: Tensor?
    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    public init(_ p: ParameterLoader, _ prefix: String, in inF: Int, out outF: Int, bias hasBias: Bool = true) throws {
        weight = Tensor(shape: [outF, inF], values: try p.floats(prefix + "weight", [outF, inF]))
        bias = hasBias ? Tensor(shape: [outF], values: try p.floats(prefix + "bias", [outF])) : nil
    }

    public init(weight: Tensor, bias: Tensor?) {
        self.weight = weight
        self.bias = bias
    }

    /// Layers with the same input stacked along their outputs: one GEMM computes all of them,
    /// each output block in its own columns (exact: the same dot products).
    public init(stacking layers: [Linear]) {
        let k = layers[0].inFeatures
        precondition(layers.allSatisfy { $0.inFeatures == k && $0.bias != nil })
        let n = layers.reduce(0) { $0 + $1.outFeatures }
        let w = Tensor(uninitialized: [n, k]), b = Tensor(uninitialized: [n])
        var row = 0
        for l in layers {
            (w.ptr + row * k).update(from: l.weight.ptr, count: l.outFeatures * k)
            (b.ptr + row).update(from: l.bias!.ptr, count: l.outFeatures)
            row += l.outFeatures
        }
        self.init(weight: w, bias: b)
    }

    /// Row views of this layer's weight and bias, `outs[i]` outputs each, sharing storage: the
    /// inverse of ``init(stacking:)``. The views are the official per-projection parameters, so
    /// an optimiser step on either the stacked layer or a view updates both (one copy).
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
            y: y, ldy: outFeatures)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        Kernels.linear(x, weight: weight, bias: bias)
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
}

/// `nn.LayerNorm(dim)` with eps 1e-5 and affine weights.
public struct LayerNorm: @unchecked Sendable {
    public let weight: Tensor
    public let bias: Tensor
    public let eps: Float = 1e-5

    public init(_ p: ParameterLoader, _ prefix: String, dim: Int) throws {
        weight = Tensor(shape: [dim], values: try p.floats(prefix + "weight", [dim]))
        bias = Tensor(shape: [dim], values: try p.floats(prefix + "bias", [dim]))
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let n = weight.count
        let y = Tensor(uninitialized: x.shape)
        Kernels.layerNorm(x: x.ptr, rows: x.count / n, n: n, gamma: weight.ptr, beta: bias.ptr, eps: eps, y: y.ptr)
        return y
    }
}

/// Two linear layers with a ReLU between them. Covers both the official `MLP` (keys
/// `fc1`/`fc2`) and `nn.Sequential(Linear, ReLU, Linear)` (keys `0`/`2`).
public struct MLP: @unchecked Sendable {
    public let fc1: Linear
    public let fc2: Linear

    public init(
        _ p: ParameterLoader, _ prefix: String, first: String, second: String, in i: Int, hidden h: Int, out o: Int
    ) throws {
        fc1 = try Linear(p, prefix + first + ".", in: i, out: h)
        fc2 = try Linear(p, prefix + second + ".", in: h, out: o)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let h = fc1(x)
        Kernels.relu(h)
        return fc2(h)
    }
}

/// `nn.Conv2d(cin, cout, 3, 1, 1)` on channels-last maps.
public struct Conv2d: @unchecked Sendable {
    public let weights: Conv3x3Weights

    public init(_ p: ParameterLoader, _ prefix: String, in cin: Int, out cout: Int) throws {
        let w = try p.floats(prefix + "weight", [cout, cin, 3, 3])
        let b = try p.floats(prefix + "bias", [cout])
        weights = Conv3x3Weights(torchWeight: w, bias: b, cout: cout, cin: cin)
    }

    public func callAsFunction(_ x: Tensor, height: Int, width: Int) -> Tensor {
        Kernels.conv3x3(x, height: height, width: width, weights)
    }
}

/// `nn.MultiheadAttention(dim, heads, batch_first=True)` used as cross-attention from the
/// Gaussian tokens to the scale embedding.
///
/// Exact shortcut: keys and values are the same scale-embedding vector `s` repeated for every
/// token, so all attention logits of a query are equal, the softmax is uniform, and the output
/// is `out_proj(W_v·s + b_v)` for every query, whatever the query. The q/k rows of
/// `in_proj_weight` are loaded (strict loading) but have no effect.
public struct MultiheadAttention: @unchecked Sendable {
    public let inProjWeight: Tensor  // 3C × C, rows [q; k; v]
    public let inProjBias: Tensor  // 3C
    public let outProj: Linear

    public init(_ p: ParameterLoader, _ prefix: String, dim c: Int) throws {
        inProjWeight = Tensor(shape: [3 * c, c], values: try p.floats(prefix + "in_proj_weight", [3 * c, c]))
        inProjBias = Tensor(shape: [3 * c], values: try p.floats(prefix + "in_proj_bias", [3 * c]))
        outProj = try Linear(p, prefix + "out_proj.", in: c, out: c)
    }

    /// The (query-independent) output for key = value = `s`.
    public func constantOutput(keyValue s: [Float]) -> [Float] {
        let c = s.count
        var v = [Float](repeating: 0, count: c)
        let w = inProjWeight.ptr + 2 * c * c
        let b = inProjBias.ptr + 2 * c
        for o in 0..<c {
            var acc: Float = 0
            for i in 0..<c { acc += w[o * c + i] * s[i] }
            v[o] = acc + b[o]
        }
        return outProj.apply(v)
    }
}
