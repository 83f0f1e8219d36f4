import GSASRTensor

// `GSSelfAttnLayer` and `GSSelfAttnBlock`: the forward (saving or not) and the backward, window
// group by window group.
//
// The layer is
//
//   x1 = g0 + cross_attn_scale(s)            (a constant row)
//   x2 = x1 + mlp_crossattn(norm4(x1))
//   x3 = x2 + proj(window_attn(qkv(norm1(x2))))
//   x4 = x3 + mlp_selfattn(norm2(x3)).
//
// Everything but the attention is row-local and the attention stays inside the layer's
// (shifted) windows, so both passes run on groups of whole windows in cache-sized scratch:
// gather the group's token rows through the window map, run the layer (or its backward) on them
// with single-threaded GEMMs, scatter the result. The groups are spread over the threads. Each
// row sees the same operations in the same order as a whole-tensor pass, so the result is the
// same; it reads and writes the full token tensor twice instead of about twenty times.
//
// A saving forward keeps its activations in *slot order* (slot s = window·seeds + i holds token
// rows[s]), so each group's share of them is one contiguous block, written once in the forward
// and read once in the backward. A non-saving forward keeps them in per-group scratch and works
// in place (x1, x2 and x3 share one buffer).
//
// The backward's weight gradients are sums over tokens. Each window group sums its own tokens
// into its own accumulators (one BLAS call per GEMM, rows in order), and the groups are added
// into the gradients in group order. The groups depend on the problem size only, never on the
// thread count, so the gradients are the same bits for any number of threads.

/// `GSSelfAttnLayer`: scale cross-attention + FFN, then window self-attention among Gaussian
/// tokens + FFN. Odd layers roll the whole token grid by −sqrt(num_gs_seed)/2 before the
/// attention and roll it back after (no mask).
public struct GSSelfAttnLayer: @unchecked Sendable {
    public let norm1: LayerNorm, norm2: LayerNorm, norm3: LayerNorm, norm4: LayerNorm
    public let gsSelfAttn: GSSelfAttn
    public let mlpSelfattn: MLP
    public let gsCrossAttnScale: MultiheadAttention
    public let mlpCrossattn: MLP
    public let shiftSize: Int

    init(_ s: ParameterSource, _ cfg: Fea2GSConfig, shift: Int) throws {
        let c = cfg.channel
        norm1 = try LayerNorm(s("norm1"), dim: c)
        norm2 = try LayerNorm(s("norm2"), dim: c)
        norm3 = try LayerNorm(s("norm3"), dim: c)
        norm4 = try LayerNorm(s("norm4"), dim: c)
        gsSelfAttn = try GSSelfAttn(s("gs_self_attn"), cfg)
        mlpSelfattn = try MLP(s("mlp_selfattn"), first: "fc1", second: "fc2", in: c, hidden: c, out: c)
        gsCrossAttnScale = try MultiheadAttention(s("gs_cross_attn_scale"), dim: c)
        mlpCrossattn = try MLP(s("mlp_crossattn"), first: "fc1", second: "fc2", in: c, hidden: c, out: c)
        shiftSize = shift
    }

    /// Windows per group, from the problem size only (see the file's comment): 4 once there are
    /// at least 16 windows; fewer for small grids, so that there are still about 4 groups to
    /// share among the threads.
    static func windowsPerGroup(windows: Int) -> Int { max(1, min(4, windows / 4)) }

    /// What the backward needs, in slot order (tokens × width each). The LayerNorm outputs are
    /// not kept: the backward recomputes them from their inputs with the same kernel (a cheap
    /// row pass that gives the same bits). The attention probabilities are kept (8 MB per layer
    /// for a 48×48 paper sample): recomputing them costs a GEMM and a softmax per window and head.
    struct Context {
        let x1: Tensor, hid1: Tensor, x2: Tensor  // norm4 input, mlp_crossattn hidden (after ReLU), norm1 input
        let qkv: Tensor, attn: Tensor, x3: Tensor  // q|k|v (tokens × 3C), proj input, norm2 input
        let hid2: Tensor  // mlp_selfattn hidden (after ReLU)
        let probs: Tensor  // attention probabilities, windows × heads × seeds × seeds
        let stats: Tensor  // 6 × tokens: mean and rstd of norm4, norm1, norm2
    }

    /// The layer on the token rows `g0` through the window map `rows`. Without `saving` it
    /// works in place on `g0` and returns it; with `saving`, `g0` is not modified and the
    /// output is a new tensor.
    func forward(_ g0: Tensor, rows: [Int32], env: DecoderBlockEnv, saving: Bool) -> (Tensor, Context?) {
        let c = g0.shape[1], grid = env.grid, n = grid.seeds, windows = grid.windows, t = grid.tokens
        precondition(rows.count == t && g0.count == t * c)
        let m = gsCrossAttnScale.constantOutput(keyValue: env.scaleEmbedding)
        let hc1 = mlpCrossattn.fc1.outFeatures, hc2 = mlpSelfattn.fc1.outFeatures, hmax = max(hc1, hc2)
        let cx =
            saving
            ? Context(
                x1: Tensor(uninitialized: [t, c]), hid1: Tensor(uninitialized: [t, hc1]),
                x2: Tensor(uninitialized: [t, c]),
                qkv: Tensor(uninitialized: [t, 3 * c]), attn: Tensor(uninitialized: [t, c]),
                x3: Tensor(uninitialized: [t, c]), hid2: Tensor(uninitialized: [t, hc2]),
                probs: Tensor(uninitialized: [windows, gsSelfAttn.heads, n, n]), stats: Tensor(uninitialized: [6, t]))
            : nil
        let out = saving ? Tensor(uninitialized: [t, c]) : g0
        let group = Self.windowsPerGroup(windows: windows)
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
                        // Without a context: x (c), hidden (hmax), qkv (3c), attention output (c).
                        let own =
                            cx == nil ? UnsafeMutablePointer<Float>.allocate(capacity: maxRows * (5 * c + hmax)) : nil
                        defer { h.deallocate(); a.deallocate(); own?.deallocate() }
                        let x1, x2, x3, hid1, hid2, qkv, at: UnsafeMutablePointer<Float>
                        let st: UnsafeMutablePointer<Float>?
                        if let cx {
                            x1 = cx.x1.ptr + s0 * c
                            x2 = cx.x2.ptr + s0 * c
                            x3 = cx.x3.ptr + s0 * c
                            hid1 = cx.hid1.ptr + s0 * hc1
                            hid2 = cx.hid2.ptr + s0 * hc2
                            qkv = cx.qkv.ptr + s0 * 3 * c
                            at = cx.attn.ptr + s0 * c
                            st = cx.stats.ptr + s0
                        } else {
                            x1 = own!
                            x2 = x1
                            x3 = x1
                            hid1 = x1 + maxRows * c
                            hid2 = hid1
                            qkv = hid1 + maxRows * hmax
                            at = qkv + maxRows * 3 * c
                            st = nil
                        }
                        for i in 0..<r { (x1 + i * c).update(from: g0.ptr + Int(rp[s0 + i]) * c, count: c) }
                        Kernels.addRow(x1, rows: r, mp.baseAddress!, c)
                        // x2 = x1 + mlp_crossattn(norm4(x1))
                        norm4.rows(x1, r, into: h, mean: st, rstd: st.map { $0 + t })
                        mlpCrossattn.fc1.rows(h, r, into: hid1, relu: true)
                        mlpCrossattn.fc2.rows(hid1, r, into: a)
                        if x2 != x1 { x2.update(from: x1, count: r * c) }
                        Kernels.add(x2, a, r * c)
                        // x3 = x2 + proj(window_attn(qkv(norm1(x2))))
                        norm1.rows(x2, r, into: h, mean: st.map { $0 + 2 * t }, rstd: st.map { $0 + 3 * t })
                        attn.qkvhead.rows(h, r, into: qkv)
                        if let rope = attn.rope {
                            // RoPE decoder: the token at slot i of its (rolled) window at position i.
                            rope.apply(qkv, ld: 3 * c, rows: r) { $0 % n }
                            rope.apply(qkv + c, ld: 3 * c, rows: r) { $0 % n }
                        }
                        Kernels.windowAttention(
                            q: qkv, k: qkv + c, v: qkv + 2 * c, channels: c, ldQ: 3 * c, ldKV: 3 * c, ldOut: c,
                            qRows: local, kRows: local, windows: r / n, nq: n, nk: n, heads: attn.heads,
                            bias: attn.bias?.ptr, out: at, parallel: false,
                            probabilities: cx.map { $0.probs.ptr + (s0 / n) * attn.heads * n * n },
                            bf16: attn.qkvhead.precision.gemm != nil)  // with its projections (`Precision`)
                        attn.proj.rows(at, r, into: a)
                        if x3 != x2 { x3.update(from: x2, count: r * c) }
                        Kernels.add(x3, a, r * c)
                        // x4 = x3 + mlp_selfattn(norm2(x3)), scattered back to token order.
                        norm2.rows(x3, r, into: h, mean: st.map { $0 + 4 * t }, rstd: st.map { $0 + 5 * t })
                        mlpSelfattn.fc1.rows(h, r, into: hid2, relu: true)
                        mlpSelfattn.fc2.rows(hid2, r, into: a)
                        Kernels.add(a, x3, r * c)
                        for i in 0..<r { (out.ptr + Int(rp[s0 + i]) * c).update(from: a + i * c, count: c) }
                    }
                }
            }
        }
        return (out, cx)
    }

    /// dL/dg0 from dL/dx4 (`dOut`, token order), accumulating every parameter gradient of the
    /// layer and the scale embedding's.
    func backward(_ cx: Context, dOut: Tensor, rows: [Int32], env: DecoderBlockEnv, grads: Gradients) -> Tensor {
        let c = dOut.shape[1], grid = env.grid, n = grid.seeds, windows = grid.windows, t = grid.tokens
        precondition(rows.count == t && dOut.count == t * c)
        let hc1 = mlpCrossattn.fc1.outFeatures, hc2 = mlpSelfattn.fc1.outFeatures
        let attn = gsSelfAttn
        guard let ra = attn.relativePosition else { preconditionFailure("Fea2GS_ROPE_AMP: no backward") }
        let group = Self.windowsPerGroup(windows: windows)
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
                        attn.proj.rowsBackward(x: at, rows: r, dy: dx, dx: sc.tmp, dW: g + o[8], dB: g + o[9])
                        Kernels.windowAttentionBackward(
                            q: qkv, k: qkv + c, v: qkv + 2 * c, channels: c, ldQ: 3 * c, ldKV: 3 * c, qRows: local,
                            kRows: local, windows: r / n, nq: n, nk: n, heads: attn.heads, bias: attn.bias!.ptr,
                            dOut: sc.tmp, ldDOut: c, dQ: dqkv, ldDQ: 3 * c, dK: dqkv + c, dV: dqkv + 2 * c,
                            ldDKV: 3 * c, dBias: g + o[18], parallel: false,
                            probabilities: cx.probs.ptr + (s0 / n) * attn.heads * n * n)
                        norm1.rows(x2, r, into: sc.h, mean: sc.mean, rstd: sc.rstd)
                        attn.qkvhead.rowsBackward(x: sc.h, rows: r, dy: dqkv, dx: sc.dh, dW: g + o[6], dB: g + o[7])
                        norm1.rowsBackward(
                            x: x2, rows: r, mean: st + 2 * t, rstd: st + 3 * t, dy: sc.dh, dx: sc.tmp,
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
        mlp.fc2.rowsBackward(x: hidden, rows: r, dy: dx, dx: sc.dhid, dW: g + o[f + 2], dB: g + o[f + 3])
        Kernels.reluBackward(sc.dhid, output: hidden, r * mlp.fc1.outFeatures)
        ln.rows(x, r, into: sc.h, mean: sc.mean, rstd: sc.rstd)
        mlp.fc1.rowsBackward(x: sc.h, rows: r, dy: sc.dhid, dx: sc.dh, dW: g + o[f], dB: g + o[f + 1])
        ln.rowsBackward(
            x: x, rows: r, mean: mean, rstd: rstd, dy: sc.dh, dx: sc.tmp, dGamma: g + o[f + 4], dBeta: g + o[f + 5])
        Kernels.add(dx, sc.tmp, r * c)
    }
}

/// `GSSelfAttnBlock`: y = x + mlp(layers(norm(x))); in `Fea2GS_ROPE_AMP`
/// y = x + conv(mlp(layers(norm(x)))), the 3×3 conv on the whole token image.
public struct GSSelfAttnBlock: @unchecked Sendable {
    public let mlp: MLP
    public let norm: LayerNorm
    public let blocks: [GSSelfAttnLayer]
    /// The RoPE decoder's closing convolution (nil in the paper decoder).
    public let conv: Conv2d?

    init(_ s: ParameterSource, _ cfg: Fea2GSConfig) throws {
        let c = cfg.channel
        mlp = try MLP(s("mlp"), first: "0", second: "2", in: c, hidden: c, out: c)
        norm = try LayerNorm(s("norm"), dim: c)
        blocks = try (0..<cfg.numSelfattnLayers).map { i in
            try GSSelfAttnLayer(s("blocks")(i), cfg, shift: i % 2 == 0 ? 0 : cfg.numGsSeedSqrt / 2)
        }
        conv = cfg.rope ? try Conv2d(s("conv"), in: c, out: c) : nil
    }

    struct Context {
        let norm: LayerNorm.Context
        let layers: [GSSelfAttnLayer.Context]
        let rows: [[Int32]]
        let ffn: MLP.Context
    }

    func forward(_ query: Tensor, env: DecoderBlockEnv, saving: Bool, tap: ((String, Tensor) -> Void)? = nil)
        -> (Tensor, Context?)
    {
        var (g, n) = norm.forward(query, saving: saving)
        var ctx: [GSSelfAttnLayer.Context] = [], rowMaps: [[Int32]] = []
        var cache: [Int: [Int32]] = [:]
        for (i, layer) in blocks.enumerated() {
            let rows = cache[layer.shiftSize] ?? env.grid.shiftedWindowRows(shift: layer.shiftSize)
            cache[layer.shiftSize] = rows
            let (y, c) = layer.forward(g, rows: rows, env: env, saving: saving)
            if let c {
                ctx.append(c)
                rowMaps.append(rows)
            }
            g = y
            tap?("layer\(i)", g)
        }
        var (y, f) = mlp.forward(g, saving: saving)
        if let conv {
            precondition(!saving, "Fea2GS_ROPE_AMP: training is not supported")
            y = env.grid.convolve(y, conv, cuts: env.cuts)
        }
        Kernels.add(y, query)
        guard let n, let f else { return (y, nil) }
        return (y, Context(norm: n, layers: ctx, rows: rowMaps, ffn: f))
    }

    func backward(_ c: Context, dOut: Tensor, env: DecoderBlockEnv, grads: Gradients) -> Tensor {
        var dg = mlp.backward(c.ffn, dy: dOut, grads: grads)
        for i in stride(from: blocks.count - 1, through: 0, by: -1) {
            dg = blocks[i].backward(c.layers[i], dOut: dg, rows: c.rows[i], env: env, grads: grads)
        }
        let dq = norm.backward(c.norm, dy: dg, grads: grads)
        Kernels.add(dq, dOut)
        return dq
    }
}
