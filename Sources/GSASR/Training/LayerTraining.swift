import GSASRTensor

// Training forwards (the inference computation, plus the context its backward needs) and
// backwards of the basic layers. Every training forward computes exactly what the inference
// forward computes (same kernels, same order), so both agree bit for bit. Backwards accumulate
// parameter gradients into a ``Gradients`` store and return the input gradient.

extension Linear {
    /// dX for y = layer(x), accumulating dW and db. With `into`, dX is added to that tensor
    /// instead (fan-out of x) and nil is returned.
    @discardableResult
    func backward(input x: Tensor, dy: Tensor, grads: Gradients, into acc: Tensor? = nil, needDX: Bool = true)
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
}

/// What LayerNorm's backward needs: the input and each row's mean and 1/std.
struct LayerNormContext {
    let x: Tensor
    let mean: Tensor
    let rstd: Tensor
}

extension LayerNorm {
    func forwardTraining(_ x: Tensor) -> (Tensor, LayerNormContext) {
        let n = weight.count, rows = x.count / n
        let y = Tensor(uninitialized: x.shape)
        let mean = Tensor(uninitialized: [rows]), rstd = Tensor(uninitialized: [rows])
        Kernels.layerNorm(
            x: x.ptr, rows: rows, n: n, gamma: weight.ptr, beta: bias.ptr, eps: eps, y: y.ptr, mean: mean.ptr,
            rstd: rstd.ptr)
        withExtendedLifetime((x, y, mean, rstd)) {}
        return (y, LayerNormContext(x: x, mean: mean, rstd: rstd))
    }

    func backward(_ c: LayerNormContext, dy: Tensor, grads: Gradients) -> Tensor {
        let n = weight.count, rows = c.x.count / n
        let dx = Tensor(uninitialized: c.x.shape)
        let dG = grads.of(weight), dB = grads.of(bias)
        Kernels.layerNormBackward(
            x: c.x.ptr, rows: rows, n: n, gamma: weight.ptr, mean: c.mean.ptr, rstd: c.rstd.ptr, dy: dy.ptr,
            dx: dx.ptr, dGamma: dG.ptr, dBeta: dB.ptr)
        withExtendedLifetime((c, dy, dx, dG, dB)) {}
        return dx
    }
}

/// MLP context: the input and the hidden activation after the ReLU.
struct MLPContext {
    let x: Tensor
    let hidden: Tensor
}

extension MLP {
    func forwardTraining(_ x: Tensor) -> (Tensor, MLPContext) {
        let h = fc1(x)
        Kernels.relu(h)
        return (fc2(h), MLPContext(x: x, hidden: h))
    }

    func backward(_ c: MLPContext, dy: Tensor, grads: Gradients) -> Tensor {
        let dh = fc2.backward(input: c.hidden, dy: dy, grads: grads)!
        Kernels.reluBackward(dh, output: c.hidden)
        return fc1.backward(input: c.x, dy: dh, grads: grads)!
    }
}

extension Conv2d {
    func backward(input x: Tensor, height h: Int, width w: Int, dy: Tensor, grads: Gradients, needDX: Bool = true)
        -> Tensor?
    {
        Kernels.conv3x3Backward(
            x, height: h, width: w, weights, dy: dy, dWeight: grads.of(weights.weight), dBias: grads.of(weights.bias),
            needDX: needDX)
    }
}

extension MultiheadAttention {
    /// Backward of ``constantOutput(keyValue:)``: m = W_o·(W_v·s + b_v) + b_o, given dm.
    /// Accumulates the gradients of out_proj and of the v rows of in_proj (the q and k rows get
    /// exactly zero, as in PyTorch: the softmax over identical keys is uniform) and returns ds.
    func backwardConstant(keyValue s: [Float], dOut dm: [Float], grads: Gradients) -> [Float] {
        let c = s.count
        let wv = inProjWeight.ptr + 2 * c * c, bv = inProjBias.ptr + 2 * c
        var v = [Float](repeating: 0, count: c)
        for o in 0..<c {
            var acc: Float = 0
            for i in 0..<c { acc += wv[o * c + i] * s[i] }
            v[o] = acc + bv[o]
        }
        let wo = outProj.weight.ptr
        let dWo = grads.of(outProj.weight).ptr, dBo = grads.of(outProj.bias!).ptr
        var dv = [Float](repeating: 0, count: c)
        for o in 0..<c {
            dBo[o] += dm[o]
            for i in 0..<c {
                dWo[o * c + i] += dm[o] * v[i]
                dv[i] += wo[o * c + i] * dm[o]
            }
        }
        let dW = grads.of(inProjWeight).ptr + 2 * c * c, dB = grads.of(inProjBias).ptr + 2 * c
        var ds = [Float](repeating: 0, count: c)
        for o in 0..<c {
            dB[o] += dv[o]
            for i in 0..<c {
                dW[o * c + i] += dv[o] * s[i]
                ds[i] += wv[o * c + i] * dv[o]
            }
        }
        withExtendedLifetime(self) {}
        return ds
    }
}

extension Tensor {
    /// self + other, as a new tensor (the training path never adds in place into a saved tensor).
    func adding(_ other: Tensor) -> Tensor {
        let y = copy()
        Kernels.add(y, other)
        return y
    }
}
