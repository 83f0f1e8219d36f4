import GSASRTensor

/// `nn.MultiheadAttention(dim, heads, batch_first=True)` used as cross-attention from the
/// Gaussian tokens to the scale embedding.
///
/// Exact shortcut: keys and values are the same scale-embedding vector `s` repeated for every
/// token, so all attention logits of a query are equal, the softmax is uniform, and the output
/// is `out_proj(W_v·s + b_v)` for every query, whatever the query. The q/k rows of
/// `in_proj_weight` are declared (strict loading) but have no effect, and their gradient is
/// exactly zero, as in PyTorch.
public struct MultiheadAttention: @unchecked Sendable {
    public let inProjWeight: Tensor  // 3C × C, rows [q; k; v]
    public let inProjBias: Tensor  // 3C
    public let outProj: Linear

    /// PyTorch's `_reset_parameters`: in_proj_weight xavier_uniform U(±√(6/(C + 3C))), in_proj_bias
    /// 0, out_proj.weight the Linear default, out_proj.bias 0.
    public init(_ s: ParameterSource, dim c: Int) throws {
        inProjWeight = try s.parameter(
            "in_proj_weight", [3 * c, c], .uniform(bound: (6.0 / (4 * Double(c))).squareRoot()))
        inProjBias = try s.parameter("in_proj_bias", [3 * c], .constant(0))
        let o = s("out_proj")
        outProj = Linear(
            weight: try o.parameter("weight", [c, c], .uniform(bound: 1 / Double(c).squareRoot())),
            bias: try o.parameter("bias", [c], .constant(0)))
    }

    /// v = W_v·s + b_v.
    private func value(_ s: [Float]) -> [Float] {
        let c = s.count
        var v = [Float](repeating: 0, count: c)
        inProjWeight.withPointer { wp in
            inProjBias.withPointer { bp in
                let w = wp + 2 * c * c, b = bp + 2 * c
                for o in 0..<c {
                    var acc: Float = 0
                    for i in 0..<c { acc += w[o * c + i] * s[i] }
                    v[o] = acc + b[o]
                }
            }
        }
        return v
    }

    /// The (query-independent) output for key = value = `s`: m = W_o·(W_v·s + b_v) + b_o.
    public func constantOutput(keyValue s: [Float]) -> [Float] { outProj.apply(value(s)) }

    /// Backward of ``constantOutput(keyValue:)`` given dm: accumulates the gradients of out_proj
    /// and of the v rows of in_proj and returns ds. (The forward's only input is `s`, which the
    /// caller holds: no context.)
    public func backwardConstant(keyValue s: [Float], dOut dm: [Float], grads: Gradients) -> [Float] {
        let c = s.count
        let v = value(s)
        var dv = [Float](repeating: 0, count: c)
        outProj.weight.withPointer { wo in
            grads.of(outProj.weight).withPointer { dWo in
                grads.of(outProj.bias!).withPointer { dBo in
                    for o in 0..<c {
                        dBo[o] += dm[o]
                        for i in 0..<c {
                            dWo[o * c + i] += dm[o] * v[i]
                            dv[i] += wo[o * c + i] * dm[o]
                        }
                    }
                }
            }
        }
        var ds = [Float](repeating: 0, count: c)
        inProjWeight.withPointer { w in
            grads.of(inProjWeight).withPointer { dWp in
                grads.of(inProjBias).withPointer { dBp in
                    let wv = w + 2 * c * c, dW = dWp + 2 * c * c, dB = dBp + 2 * c
                    for o in 0..<c {
                        dB[o] += dv[o]
                        for i in 0..<c {
                            dW[o * c + i] += dv[o] * s[i]
                            ds[i] += wv[o * c + i] * dv[o]
                        }
                    }
                }
            }
        }
        return ds
    }
}
