import GSASRTensor

// Training forward and backward of `GSSelfAttnLayer`, window group by window group.
//
// The layer is
//
//   x1 = g0 + cross_attn_scale(s)            (a constant row)
//   x2 = x1 + mlp_crossattn(norm4(x1))
//   x3 = x2 + proj(window_attn(qkv(norm1(x2))))
//   x4 = x3 + mlp_selfattn(norm2(x3)).
//
// Everything but the attention is row-local and the attention stays inside the layer's
// (shifted) windows, so, as the inference forward does, both passes run on groups of whole
// windows in cache-sized scratch: gather the group's token rows through the window map, run the
// layer (or its backward) on them with single-threaded GEMMs, scatter the result. The groups
// are spread over the threads. The saved activations are stored in *slot order* (slot
// s = window·seeds + i holds token rows[s]), so each group's share of them is one contiguous
// block, written once in the forward and read once in the backward.
//
// The backward's weight gradients are sums over tokens. Each window group sums its own tokens
// into its own accumulators (one BLAS call per GEMM, rows in order), and the groups are added
// into the gradients in group order. The groups depend on the problem size only, never on the
// thread count, so the gradients are the same bits for any number of threads.

/// What ``GSSelfAttnLayer``'s backward needs, in slot order (tokens × width each).
/// The LayerNorm outputs are not kept: the backward recomputes them from their inputs with the
/// same kernel (a cheap row pass that gives the same bits). The attention probabilities are kept
/// (8 MB per layer for a 48×48 paper sample): recomputing them costs a GEMM and a softmax per
/// window and head.
struct SelfLayerContext {
    let x1: Tensor, hid1: Tensor, x2: Tensor  // norm4 input, mlp_crossattn hidden (after ReLU), norm1 input
    let qkv: Tensor, attn: Tensor, x3: Tensor  // q|k|v (tokens × 3C), proj input, norm2 input
    let hid2: Tensor  // mlp_selfattn hidden (after ReLU)
    let probs: Tensor  // attention probabilities, windows × heads × seeds × seeds
    let stats: Tensor  // 6 × tokens: mean and rstd of norm4, norm1, norm2
}

extension GSSelfAttnLayer {
    /// Windows per group of the training passes, from the problem size only (see the file's
    /// comment): 4, as inference, once there are at least 16 windows; fewer for small grids, so
    /// that there are still about 4 groups to share among the threads.
    static func trainingWindowsPerGroup(windows: Int) -> Int {
        max(1, min(windowsPerGroup, windows / 4))
    }

    /// The training forward of ``forward(_:grid:rows:scaleEmbedding:)``: the same kernels in the
    /// same order on each row, so the output is the same bits; `g0` is not modified.
    func forwardTraining(_ g0: Tensor, rows: [Int32], env: DecoderBlockEnv) -> (Tensor, SelfLayerContext) {
        let c = g0.shape[1], grid = env.grid, n = grid.seeds, windows = grid.windows, t = grid.tokens
        precondition(rows.count == t && g0.count == t * c)
        let m = gsCrossAttnScale.constantOutput(keyValue: env.scaleEmbedding)
        let hc1 = mlpCrossattn.fc1.outFeatures, hc2 = mlpSelfattn.fc1.outFeatures
        let cx = SelfLayerContext(
            x1: Tensor(uninitialized: [t, c]), hid1: Tensor(uninitialized: [t, hc1]),
            x2: Tensor(uninitialized: [t, c]),
            qkv: Tensor(uninitialized: [t, 3 * c]), attn: Tensor(uninitialized: [t, c]),
            x3: Tensor(uninitialized: [t, c]), hid2: Tensor(uninitialized: [t, hc2]),
            probs: Tensor(uninitialized: [windows, gsSelfAttn.heads, n, n]), stats: Tensor(uninitialized: [6, t]))
        let out = Tensor(uninitialized: [t, c])
        let group = Self.trainingWindowsPerGroup(windows: windows)
        let groups = (windows + group - 1) / group
        let maxRows = group * n
        let local = (0..<Int32(maxRows)).map { $0 }
        let attn = gsSelfAttn
        withExtendedLifetime((g0, cx, out, attn.bias)) {
            rows.withUnsafeBufferPointer { rp in
                m.withUnsafeBufferPointer { mp in
                    Parallel.forEach(groups) { gi in
                        let s0 = gi * group * n, r = min(group * n, t - s0)
                        let h = UnsafeMutablePointer<Float>.allocate(capacity: maxRows * c)
                        let a = UnsafeMutablePointer<Float>.allocate(capacity: maxRows * c)
                        defer { h.deallocate(); a.deallocate() }
                        let x1 = cx.x1.ptr + s0 * c, x2 = cx.x2.ptr + s0 * c, x3 = cx.x3.ptr + s0 * c
                        let hid1 = cx.hid1.ptr + s0 * hc1, hid2 = cx.hid2.ptr + s0 * hc2
                        let qkv = cx.qkv.ptr + s0 * 3 * c, at = cx.attn.ptr + s0 * c
                        let st = cx.stats.ptr + s0
                        for i in 0..<r { (x1 + i * c).update(from: g0.ptr + Int(rp[s0 + i]) * c, count: c) }
                        Kernels.addRow(x1, rows: r, mp.baseAddress!, c)
                        // x2 = x1 + mlp_crossattn(norm4(x1))
                        Self.norm(norm4, x1, rows: r, into: h, mean: st, rstd: st + t)
                        Self.linear(mlpCrossattn.fc1, h, rows: r, into: hid1, relu: true)
                        Self.linear(mlpCrossattn.fc2, hid1, rows: r, into: a)
                        x2.update(from: x1, count: r * c)
                        Kernels.add(x2, a, r * c)
                        // x3 = x2 + proj(window_attn(qkv(norm1(x2))))
                        Self.norm(norm1, x2, rows: r, into: h, mean: st + 2 * t, rstd: st + 3 * t)
                        Self.linear(attn.qkvhead, h, rows: r, into: qkv)
                        Kernels.windowAttention(
                            q: qkv, k: qkv + c, v: qkv + 2 * c, channels: c, ldQ: 3 * c, ldKV: 3 * c, ldOut: c,
                            qRows: local, kRows: local, windows: r / n, nq: n, nk: n, heads: attn.heads,
                            bias: attn.bias.ptr, out: at, parallel: false,
                            probabilities: cx.probs.ptr + (s0 / n) * attn.heads * n * n)
                        Self.linear(attn.proj, at, rows: r, into: a)
                        x3.update(from: x2, count: r * c)
                        Kernels.add(x3, a, r * c)
                        // x4 = x3 + mlp_selfattn(norm2(x3)), scattered back to token order.
                        Self.norm(norm2, x3, rows: r, into: h, mean: st + 4 * t, rstd: st + 5 * t)
                        Self.linear(mlpSelfattn.fc1, h, rows: r, into: hid2, relu: true)
                        Self.linear(mlpSelfattn.fc2, hid2, rows: r, into: a)
                        Kernels.add(a, x3, r * c)
                        for i in 0..<r { (out.ptr + Int(rp[s0 + i]) * c).update(from: a + i * c, count: c) }
                    }
                }
            }
        }
        return (out, cx)
    }

    static func norm(
        _ ln: LayerNorm, _ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>,
        mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>
    ) {
        Kernels.layerNorm(
            x: x, rows: rows, n: ln.weight.count, gamma: ln.weight.ptr, beta: ln.bias.ptr, eps: ln.eps, y: y,
            mean: mean, rstd: rstd, parallel: false)
    }

    /// dL/dg0 from dL/dx4 (`dOut`, token order), accumulating every parameter gradient of the
    /// layer and the scale embedding's.
    func backward(_ cx: SelfLayerContext, dOut: Tensor, rows: [Int32], env: DecoderBlockEnv, grads: Gradients)
        -> Tensor
    {
        let c = dOut.shape[1], grid = env.grid, n = grid.seeds, windows = grid.windows, t = grid.tokens
        precondition(rows.count == t && dOut.count == t * c)
        let hc1 = mlpCrossattn.fc1.outFeatures, hc2 = mlpSelfattn.fc1.outFeatures
        let attn = gsSelfAttn, ra = attn.relativePosition
        let group = Self.trainingWindowsPerGroup(windows: windows)
        let groups = (windows + group - 1) / group
        let maxRows = group * n
        let local = (0..<Int32(maxRows)).map { $0 }
        // Gradient targets, in this order in each group's accumulator block (each MLP branch's
        // six contiguous: fc1, fc2, its norm); the last two are the attention bias
        // (heads × n × n) and the column sums of dx1 (the scale term's).
        let params: [Tensor] = [
            mlpCrossattn.fc1.weight, mlpCrossattn.fc1.bias!, mlpCrossattn.fc2.weight, mlpCrossattn.fc2.bias!,
            norm4.weight, norm4.bias, attn.qkvhead.weight, attn.qkvhead.bias!, attn.proj.weight, attn.proj.bias!,
            norm1.weight, norm1.bias,
            mlpSelfattn.fc1.weight, mlpSelfattn.fc1.bias!, mlpSelfattn.fc2.weight, mlpSelfattn.fc2.bias!,
            norm2.weight, norm2.bias,
        ]
        let targets = params.map { grads.of($0) }
        var sizes = params.map(\.count)
        sizes += [ra.heads * n * n, c]
        var offsets = [Int](repeating: 0, count: sizes.count)
        for i in 1..<sizes.count { offsets[i] = offsets[i - 1] + sizes[i - 1] }
        let total = offsets.last! + sizes.last!
        let acc = UnsafeMutablePointer<Float>.allocate(capacity: groups * total)
        acc.initialize(repeating: 0, count: groups * total)
        defer { acc.deallocate() }
        let dg0 = Tensor(uninitialized: [t, c])
        withExtendedLifetime((cx, dOut, dg0, attn.bias, params)) {
            rows.withUnsafeBufferPointer { rp in
                offsets.withUnsafeBufferPointer { o in
                    Parallel.forEach(groups) { gi in
                        let s0 = gi * group * n, r = min(group * n, t - s0)
                        let g = acc + gi * total
                        let hmax = max(hc1, hc2, c)
                        let dx = UnsafeMutablePointer<Float>.allocate(capacity: maxRows * c)
                        let dqkv = UnsafeMutablePointer<Float>.allocate(capacity: maxRows * 3 * c)
                        let sc = BackwardScratch(rows: maxRows, channel: c, hidden: hmax)
                        defer { dx.deallocate(); dqkv.deallocate(); sc.deallocate() }
                        let x1 = cx.x1.ptr + s0 * c, x2 = cx.x2.ptr + s0 * c, x3 = cx.x3.ptr + s0 * c
                        let hid1 = cx.hid1.ptr + s0 * hc1, hid2 = cx.hid2.ptr + s0 * hc2
                        let qkv = cx.qkv.ptr + s0 * 3 * c, at = cx.attn.ptr + s0 * c
                        let st = cx.stats.ptr + s0
                        for i in 0..<r { (dx + i * c).update(from: dOut.ptr + Int(rp[s0 + i]) * c, count: c) }
                        // x4 = x3 + mlp_selfattn(norm2(x3))
                        Self.residualMLPBackward(
                            mlpSelfattn, norm2, x: x3, hidden: hid2, rows: r, mean: st + 4 * t, rstd: st + 5 * t,
                            dx: dx, scratch: sc, acc: g, offsets: o, first: 12)
                        // x3 = x2 + proj(window_attn(qkv(norm1(x2))))
                        Self.linearBackward(attn.proj, x: at, rows: r, dy: dx, dx: sc.tmp, dW: g + o[8], dB: g + o[9])
                        Kernels.windowAttentionBackward(
                            q: qkv, k: qkv + c, v: qkv + 2 * c, channels: c, ldQ: 3 * c, ldKV: 3 * c, qRows: local,
                            kRows: local, windows: r / n, nq: n, nk: n, heads: attn.heads, bias: attn.bias.ptr,
                            dOut: sc.tmp, ldDOut: c, dQ: dqkv, ldDQ: 3 * c, dK: dqkv + c, dV: dqkv + 2 * c,
                            ldDKV: 3 * c, dBias: g + o[18], parallel: false,
                            probabilities: cx.probs.ptr + (s0 / n) * attn.heads * n * n)
                        Self.norm(norm1, x2, rows: r, into: sc.h, mean: sc.mean, rstd: sc.rstd)
                        Self.linearBackward(
                            attn.qkvhead, x: sc.h, rows: r, dy: dqkv, dx: sc.dh, dW: g + o[6], dB: g + o[7])
                        Self.normBackward(
                            norm1, x: x2, rows: r, mean: st + 2 * t, rstd: st + 3 * t, dy: sc.dh, dx: sc.tmp,
                            dGamma: g + o[10], dBeta: g + o[11])
                        Kernels.add(dx, sc.tmp, r * c)
                        // x2 = x1 + mlp_crossattn(norm4(x1))
                        Self.residualMLPBackward(
                            mlpCrossattn, norm4, x: x1, hidden: hid1, rows: r, mean: st, rstd: st + t, dx: dx,
                            scratch: sc, acc: g, offsets: o, first: 0)
                        // x1 = g0 + m: dg0 = dx1; dm = Σ_rows dx1 (rows in slot order).
                        let cs = g + o[19]
                        for i in 0..<r { Kernels.add(cs, dx + i * c, c) }
                        for i in 0..<r { (dg0.ptr + Int(rp[s0 + i]) * c).update(from: dx + i * c, count: c) }
                    }
                }
            }
            // The groups' sums, in group order.
            for (i, target) in targets.enumerated() {
                for gi in 0..<groups { Kernels.add(target.ptr, acc + gi * total + offsets[i], sizes[i]) }
            }
            let dBias = Tensor(zeros: [ra.heads, n, n])
            var dm = [Float](repeating: 0, count: c)
            for gi in 0..<groups {
                Kernels.add(dBias.ptr, acc + gi * total + offsets[18], sizes[18])
                dm.withUnsafeMutableBufferPointer { Kernels.add($0.baseAddress!, acc + gi * total + offsets[19], c) }
            }
            ra.backward(dBias: dBias.ptr, dTable: grads.of(ra.table))
            env.addScaleGradient(
                gsCrossAttnScale.backwardConstant(keyValue: env.scaleEmbedding, dOut: dm, grads: grads))
            withExtendedLifetime((targets, dBias)) {}
        }
        return dg0
    }

    /// Scratch rows of one window group's backward (single-threaded use).
    struct BackwardScratch {
        let h: UnsafeMutablePointer<Float>, dh: UnsafeMutablePointer<Float>, tmp: UnsafeMutablePointer<Float>
        let dhid: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>
        init(rows: Int, channel c: Int, hidden: Int) {
            h = .allocate(capacity: rows * c)
            dh = .allocate(capacity: rows * c)
            tmp = .allocate(capacity: rows * c)
            dhid = .allocate(capacity: rows * hidden)
            mean = .allocate(capacity: rows)
            rstd = .allocate(capacity: rows)
        }
        func deallocate() {
            h.deallocate(); dh.deallocate(); tmp.deallocate(); dhid.deallocate(); mean.deallocate(); rstd.deallocate()
        }
    }

    /// Backward of the residual branch y = x + mlp(norm(x)) on `rows` rows: `dx` holds dL/dy on
    /// entry and dL/dx on return; the six parameter gradients (fc1 weight and bias, fc2 weight
    /// and bias, norm weight and bias) are added at `acc + offsets[first ..< first + 6]`. The
    /// norm's output is recomputed from x (same kernel, same bits as the forward's).
    static func residualMLPBackward(
        _ mlp: MLP, _ ln: LayerNorm, x: UnsafePointer<Float>, hidden: UnsafePointer<Float>, rows r: Int,
        mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
        scratch sc: BackwardScratch, acc g: UnsafeMutablePointer<Float>, offsets o: UnsafeBufferPointer<Int>,
        first f: Int
    ) {
        let c = ln.weight.count
        linearBackward(mlp.fc2, x: hidden, rows: r, dy: dx, dx: sc.dhid, dW: g + o[f + 2], dB: g + o[f + 3])
        Kernels.reluBackward(sc.dhid, output: hidden, r * mlp.fc1.outFeatures)
        norm(ln, x, rows: r, into: sc.h, mean: sc.mean, rstd: sc.rstd)
        linearBackward(mlp.fc1, x: sc.h, rows: r, dy: sc.dhid, dx: sc.dh, dW: g + o[f], dB: g + o[f + 1])
        normBackward(
            ln, x: x, rows: r, mean: mean, rstd: rstd, dy: sc.dh, dx: sc.tmp, dGamma: g + o[f + 4],
            dBeta: g + o[f + 5])
        Kernels.add(dx, sc.tmp, r * c)
    }

    /// Single-threaded ``Kernels/linearBackward(x:ldx:m:k:weight:n:dy:ldy:dx:lddx:accumulateDX:dWeight:dBias:parallel:)``
    /// for contiguous rows: dx = dy·W, dW += dyᵀ·x, dB += Σ dy.
    static func linearBackward(
        _ l: Linear, x: UnsafePointer<Float>, rows: Int, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
        dW: UnsafeMutablePointer<Float>, dB: UnsafeMutablePointer<Float>
    ) {
        Kernels.linearBackward(
            x: x, ldx: l.inFeatures, m: rows, k: l.inFeatures, weight: l.weight.ptr, n: l.outFeatures, dy: dy,
            ldy: l.outFeatures, dx: dx, lddx: l.inFeatures, dWeight: dW, dBias: dB, parallel: false)
    }

    static func normBackward(
        _ ln: LayerNorm, x: UnsafePointer<Float>, rows: Int, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
        dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, dGamma: UnsafeMutablePointer<Float>,
        dBeta: UnsafeMutablePointer<Float>
    ) {
        Kernels.layerNormBackward(
            x: x, rows: rows, n: ln.weight.count, gamma: ln.weight.ptr, mean: mean, rstd: rstd, dy: dy, dx: dx,
            dGamma: dGamma, dBeta: dBeta, parallel: false)
    }
}
