import GSASRTensor

/// `WindowCrossAttnLayer`: scale cross-attention + FFN, window cross-attention to image
/// features + FFN, all pre-norm with residuals:
///
///   x1 = x0 + cross_attn_scale(s)            (a constant row)
///   x2 = x1 + mlp_crossattn_scale(norm2(x1))
///   x3 = x2 + proj(window_attn(qhead(norm3(x2) + pos), kvhead(feat)))
///   x4 = x3 + mlp_crossattn_feature(norm4(x3)).
///
/// Odd layers roll the *feature map* by −window/2 (no mask, queries not rolled, nothing rolled
/// back).
public struct WindowCrossAttnLayer: @unchecked Sendable {
    public let gsCrossAttnScale: MultiheadAttention
    public let norm1: LayerNorm, norm2: LayerNorm, norm3: LayerNorm, norm4: LayerNorm
    public let windowCrossAttn: WindowCrossAttn
    public let mlpCrossattnScale: MLP
    public let mlpCrossattnFeature: MLP
    public let shiftSize: Int

    init(_ s: ParameterSource, _ cfg: Fea2GSConfig, shift: Int) throws {
        let c = cfg.channel
        gsCrossAttnScale = try MultiheadAttention(s("gs_cross_attn_scale"), dim: c)
        norm1 = try LayerNorm(s("norm1"), dim: c)
        norm2 = try LayerNorm(s("norm2"), dim: c)
        norm3 = try LayerNorm(s("norm3"), dim: c)
        norm4 = try LayerNorm(s("norm4"), dim: c)
        windowCrossAttn = try WindowCrossAttn(s("window_cross_attn"), cfg)
        mlpCrossattnScale = try MLP(s("mlp_crossattn_scale"), first: "fc1", second: "fc2", in: c, hidden: c, out: c)
        mlpCrossattnFeature = try MLP(
            s("mlp_crossattn_feature"), first: "fc1", second: "fc2", in: c, hidden: c, out: c)
        shiftSize = shift
    }

    /// Key rows of the feature map rolled by −shift, window by window (the roll is a row map).
    func keyRows(grid: TokenGrid, featHeight: Int, featWidth: Int, windowSize ws: Int) -> [Int32] {
        var kRows = [Int32](repeating: 0, count: grid.windows * ws * ws)
        for mm in 0..<grid.rowsOfWindows {
            for nn in 0..<grid.colsOfWindows {
                for dy in 0..<ws {
                    for dx in 0..<ws {
                        let sy = (mm * ws + dy + shiftSize) % featHeight
                        let sx = (nn * ws + dx + shiftSize) % featWidth
                        kRows[((mm * grid.colsOfWindows + nn) * ws + dy) * ws + dx] = Int32(sy * featWidth + sx)
                    }
                }
            }
        }
        return kRows
    }

    /// What the backward needs.
    struct Context {
        let norm2: LayerNorm.Context, ffnScale: MLP.Context
        let norm3: LayerNorm.Context
        let qIn: Tensor, q: Tensor, kv: Tensor, kRows: [Int32], attn: Tensor
        let norm4: LayerNorm.Context, ffnFeature: MLP.Context
    }

    /// The layer on `x0` (tokens × C). Without `saving` it works in place on `x0` and returns
    /// it; with `saving` every residual sum is a new tensor and the context is returned.
    func forward(_ x0: Tensor, env: DecoderBlockEnv, saving: Bool) -> (Tensor, Context?) {
        let c = x0.shape[1], t = env.grid.tokens
        let x1 = saving ? x0.copy() : x0
        Kernels.addRow(x1, gsCrossAttnScale.constantOutput(keyValue: env.scaleEmbedding))
        let (a, n2) = norm2.forward(x1, saving: saving)
        let (b, f1) = mlpCrossattnScale.forward(a, saving: saving)
        let x2 = x1.residual(b, keep: saving)
        let (qIn, n3) = norm3.forward(x2, saving: saving)
        Kernels.add(qIn, env.pos)
        let q = windowCrossAttn.qhead(qIn)
        let kv = windowCrossAttn.kvhead(env.feat)
        let kRows = keyRows(
            grid: env.grid, featHeight: env.featHeight, featWidth: env.featWidth, windowSize: env.windowSize)
        if let rope = windowCrossAttn.rope {
            // RoPE decoder: query i of every window at position i and the key at window slot j
            // at position j of the module's raster (max(√seed, window) wide: the official code
            // takes the first entries of its table, not their geometric places). Each feature
            // pixel is in exactly one slot of the rolled windows, so its k is rotated in place.
            let seeds = env.grid.seeds, area = env.windowSize * env.windowSize
            precondition(seeds <= rope.positions && area <= rope.positions)
            var keyPosition = [Int32](repeating: 0, count: kRows.count)
            for (slot, r) in kRows.enumerated() { keyPosition[Int(r)] = Int32(slot % area) }
            q.withPointer { qp in rope.apply(qp, ld: c, rows: t) { $0 % seeds } }
            kv.withPointer { kp in rope.apply(kp, ld: 2 * c, rows: kv.shape[0]) { Int(keyPosition[$0]) } }
        }
        let qRows = (0..<Int32(t)).map { $0 }
        let attn = Tensor(uninitialized: [t, c])
        Kernels.windowAttention(
            q: q, kv: kv, channels: c, qRows: qRows, kRows: kRows, windows: env.grid.windows, nq: env.grid.seeds,
            nk: env.windowSize * env.windowSize, heads: windowCrossAttn.heads, bias: windowCrossAttn.bias, out: attn,
            bf16: windowCrossAttn.kvhead.precision.gemm != nil)  // with its projections (`Precision`)
        let x3 = x2.residual(windowCrossAttn.proj(attn), keep: saving)
        let (d, n4) = norm4.forward(x3, saving: saving)
        let (e, f2) = mlpCrossattnFeature.forward(d, saving: saving)
        let x4 = x3.residual(e, keep: saving)
        guard saving, let n2, let f1, let n3, let n4, let f2 else { return (x4, nil) }
        return (
            x4,
            Context(
                norm2: n2, ffnScale: f1, norm3: n3, qIn: qIn, q: q, kv: kv, kRows: kRows, attn: attn, norm4: n4,
                ffnFeature: f2)
        )
    }

    /// dL/dx0 from dL/dx4, accumulating the layer's parameter gradients and the fan-in
    /// gradients of the features, positional embedding and scale embedding into `env`.
    func backward(_ cx: Context, dOut dx4: Tensor, env: DecoderBlockEnv, grads: Gradients) -> Tensor {
        let c = dx4.shape[1], t = env.grid.tokens
        // x4 = x3 + ffn(norm4(x3))
        let dx3 = norm4.backward(
            cx.norm4, dy: mlpCrossattnFeature.backward(cx.ffnFeature, dy: dx4, grads: grads), grads: grads)
        Kernels.add(dx3, dx4)
        // x3 = x2 + proj(attention(qhead(norm3(x2) + pos), kvhead(feat)))
        let dAttn = windowCrossAttn.proj.backward(input: cx.attn, dy: dx3, grads: grads)!
        let dq = Tensor(uninitialized: [t, c])
        let dkv = Tensor(uninitialized: cx.kv.shape)
        guard let ra = windowCrossAttn.relativePosition else { preconditionFailure("Fea2GS_ROPE_AMP: no backward") }
        let dBias = Tensor(zeros: [ra.heads, ra.nq, ra.nk])
        let qRows = (0..<Int32(t)).map { $0 }
        withExtendedLifetime((cx, dAttn, dq, dkv, dBias)) {
            Kernels.windowAttentionBackward(
                q: cx.q.ptr, k: cx.kv.ptr, v: cx.kv.ptr + c, channels: c, ldQ: c, ldKV: 2 * c, qRows: qRows,
                kRows: cx.kRows, windows: env.grid.windows, nq: env.grid.seeds, nk: env.windowSize * env.windowSize,
                heads: windowCrossAttn.heads, bias: ra.bias.ptr, dOut: dAttn.ptr, ldDOut: c,
                dQ: dq.ptr, ldDQ: c, dK: dkv.ptr, dV: dkv.ptr + c, ldDKV: 2 * c, dBias: dBias.ptr)
            ra.backward(dBias: dBias.ptr, dTable: grads.of(ra.table))
        }
        windowCrossAttn.kvhead.backward(input: env.feat, dy: dkv, grads: grads, into: env.dFeat)
        let dqIn = windowCrossAttn.qhead.backward(input: cx.qIn, dy: dq, grads: grads)!
        Kernels.add(env.dPos, dqIn)
        let dx2 = norm3.backward(cx.norm3, dy: dqIn, grads: grads)
        Kernels.add(dx2, dx3)
        // x2 = x1 + ffn(norm2(x1))
        let dx1 = norm2.backward(
            cx.norm2, dy: mlpCrossattnScale.backward(cx.ffnScale, dy: dx2, grads: grads), grads: grads)
        Kernels.add(dx1, dx2)
        // x1 = x0 + m(scale)
        env.addScaleGradient(
            gsCrossAttnScale.backwardConstant(
                keyValue: env.scaleEmbedding, dOut: columnSums(dx1, channels: c), grads: grads))
        return dx1
    }
}

/// `WindowCrossAttnBlock`: y = x + mlp(layers(norm(x))); in `Fea2GS_ROPE_AMP`
/// y = x + conv(mlp(layers(norm(x)))), the 3×3 conv on the whole token image.
public struct WindowCrossAttnBlock: @unchecked Sendable {
    public let mlp: MLP
    public let norm: LayerNorm
    public let blocks: [WindowCrossAttnLayer]
    /// The RoPE decoder's closing convolution (nil in the paper decoder).
    public let conv: Conv2d?

    init(_ s: ParameterSource, _ cfg: Fea2GSConfig) throws {
        let c = cfg.channel
        mlp = try MLP(s("mlp"), first: "0", second: "2", in: c, hidden: c, out: c)
        norm = try LayerNorm(s("norm"), dim: c)
        blocks = try (0..<cfg.numCrossattnLayers).map { i in
            try WindowCrossAttnLayer(s("blocks")(i), cfg, shift: i % 2 == 0 ? 0 : cfg.windowSize / 2)
        }
        conv = cfg.rope ? try Conv2d(s("conv"), in: c, out: c) : nil
    }

    struct Context {
        let norm: LayerNorm.Context
        let layers: [WindowCrossAttnLayer.Context]
        let ffn: MLP.Context
    }

    func forward(_ query: Tensor, env: DecoderBlockEnv, saving: Bool, tap: ((String, Tensor) -> Void)? = nil)
        -> (Tensor, Context?)
    {
        var (x, n) = norm.forward(query, saving: saving)
        var ctx: [WindowCrossAttnLayer.Context] = []
        for (i, layer) in blocks.enumerated() {
            let (y, c) = layer.forward(x, env: env, saving: saving)
            if let c { ctx.append(c) }
            x = y
            tap?("layer\(i)", x)
        }
        var (y, f) = mlp.forward(x, saving: saving)
        if let conv {
            precondition(!saving, "Fea2GS_ROPE_AMP: training is not supported")
            y = env.grid.convolve(y, conv, cuts: env.cuts)
        }
        Kernels.add(y, query)
        guard let n, let f else { return (y, nil) }
        return (y, Context(norm: n, layers: ctx, ffn: f))
    }

    func backward(_ c: Context, dOut: Tensor, env: DecoderBlockEnv, grads: Gradients) -> Tensor {
        var dx = mlp.backward(c.ffn, dy: dOut, grads: grads)
        for i in stride(from: blocks.count - 1, through: 0, by: -1) {
            dx = blocks[i].backward(c.layers[i], dOut: dx, env: env, grads: grads)
        }
        let dq = norm.backward(c.norm, dy: dx, grads: grads)
        Kernels.add(dq, dOut)
        return dq
    }
}
