import GSASRTensor

// Training forwards and backwards of the Fea2GS blocks. The forwards follow the inference
// code of Fea2GSBlocks.swift operation for operation, but every residual sum is a new tensor
// (x1 = x0 + m, x2 = x1 + ffn(norm2(x1)), ...), so the saved inputs are never overwritten.

/// Shared inputs of the decoder blocks for one image, and the fan-in gradients they collect.
final class DecoderBlockEnv {
    let grid: TokenGrid
    let feat: Tensor  // (hp·wp) × C, the projected features
    let featHeight: Int, featWidth: Int, windowSize: Int
    let pos: Tensor  // tokens × C, per-window copies of pos_embedding
    let scaleEmbedding: [Float]
    /// dL/dfeat, dL/dpos (tokens × C) and dL/d(scale embedding), summed over every layer.
    let dFeat: Tensor, dPos: Tensor
    var dScaleEmbedding: [Float]

    init(
        grid: TokenGrid, feat: Tensor, featHeight: Int, featWidth: Int, windowSize: Int, pos: Tensor,
        scaleEmbedding: [Float]
    ) {
        self.grid = grid
        self.feat = feat
        self.featHeight = featHeight
        self.featWidth = featWidth
        self.windowSize = windowSize
        self.pos = pos
        self.scaleEmbedding = scaleEmbedding
        dFeat = Tensor(zeros: feat.shape)
        dPos = Tensor(zeros: pos.shape)
        dScaleEmbedding = [Float](repeating: 0, count: scaleEmbedding.count)
    }

    func addScaleGradient(_ ds: [Float]) {
        for i in ds.indices { dScaleEmbedding[i] += ds[i] }
    }
}

/// Column sums (over tokens) of a tokens × C gradient: the gradient of a per-layer constant
/// row added to every token.
func columnSums(_ x: Tensor, channels c: Int) -> [Float] {
    var s = [Float](repeating: 0, count: c)
    s.withUnsafeMutableBufferPointer { Kernels.addColumnSums(x, into: $0.baseAddress!, n: c) }
    return s
}

struct CrossLayerContext {
    let norm2: LayerNormContext, ffnScale: MLPContext
    let norm3: LayerNormContext
    let qIn: Tensor, q: Tensor, kv: Tensor, kRows: [Int32], attn: Tensor
    let norm4: LayerNormContext, ffnFeature: MLPContext
}

extension WindowCrossAttnLayer {
    func forwardTraining(_ x0: Tensor, env: DecoderBlockEnv) -> (Tensor, CrossLayerContext) {
        let c = x0.shape[1], t = env.grid.tokens
        let x1 = x0.copy()
        Kernels.addRow(x1, gsCrossAttnScale.constantOutput(keyValue: env.scaleEmbedding))
        let (a, n2) = norm2.forwardTraining(x1)
        let (b, f1) = mlpCrossattnScale.forwardTraining(a)
        let x2 = x1.adding(b)
        let (qIn, n3) = norm3.forwardTraining(x2)
        Kernels.add(qIn, env.pos)
        let q = windowCrossAttn.qhead(qIn)
        let kv = windowCrossAttn.kvhead(env.feat)
        let kRows = keyRows(
            grid: env.grid, featHeight: env.featHeight, featWidth: env.featWidth, windowSize: env.windowSize)
        let qRows = (0..<Int32(t)).map { $0 }
        let attn = Tensor(uninitialized: [t, c])
        Kernels.windowAttention(
            q: q, kv: kv, channels: c, qRows: qRows, kRows: kRows, windows: env.grid.windows, nq: env.grid.seeds,
            nk: env.windowSize * env.windowSize, heads: windowCrossAttn.heads, bias: windowCrossAttn.bias, out: attn)
        let x3 = x2.adding(windowCrossAttn.proj(attn))
        let (d, n4) = norm4.forwardTraining(x3)
        let (e, f2) = mlpCrossattnFeature.forwardTraining(d)
        let x4 = x3.adding(e)
        return (
            x4,
            CrossLayerContext(
                norm2: n2, ffnScale: f1, norm3: n3, qIn: qIn, q: q, kv: kv, kRows: kRows, attn: attn, norm4: n4,
                ffnFeature: f2)
        )
    }

    func backward(_ cx: CrossLayerContext, dOut dx4: Tensor, env: DecoderBlockEnv, grads: Gradients) -> Tensor {
        let c = dx4.shape[1], t = env.grid.tokens
        // x4 = x3 + ffn(norm4(x3))
        let dx3 = norm4.backward(
            cx.norm4, dy: mlpCrossattnFeature.backward(cx.ffnFeature, dy: dx4, grads: grads), grads: grads)
        Kernels.add(dx3, dx4)
        // x3 = x2 + proj(attention(qhead(norm3(x2) + pos), kvhead(feat)))
        let dAttn = windowCrossAttn.proj.backward(input: cx.attn, dy: dx3, grads: grads)!
        let dq = Tensor(uninitialized: [t, c])
        let dkv = Tensor(uninitialized: cx.kv.shape)
        let ra = windowCrossAttn.relativePosition
        let dBias = Tensor(zeros: [ra.heads, ra.nq, ra.nk])
        let qRows = (0..<Int32(t)).map { $0 }
        withExtendedLifetime((cx, dAttn, dq, dkv, dBias)) {
            Kernels.windowAttentionBackward(
                q: cx.q.ptr, k: cx.kv.ptr, v: cx.kv.ptr + c, channels: c, ldQ: c, ldKV: 2 * c, qRows: qRows,
                kRows: cx.kRows, windows: env.grid.windows, nq: env.grid.seeds, nk: env.windowSize * env.windowSize,
                heads: windowCrossAttn.heads, bias: windowCrossAttn.bias.ptr, dOut: dAttn.ptr, ldDOut: c,
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

struct CrossBlockContext {
    let norm: LayerNormContext
    let layers: [CrossLayerContext]
    let ffn: MLPContext
}

extension WindowCrossAttnBlock {
    func forwardTraining(_ query: Tensor, env: DecoderBlockEnv) -> (Tensor, CrossBlockContext) {
        var (x, n) = norm.forwardTraining(query)
        var ctx: [CrossLayerContext] = []
        for layer in blocks {
            let (y, c) = layer.forwardTraining(x, env: env)
            ctx.append(c)
            x = y
        }
        let (y, f) = mlp.forwardTraining(x)
        Kernels.add(y, query)
        return (y, CrossBlockContext(norm: n, layers: ctx, ffn: f))
    }

    func backward(_ c: CrossBlockContext, dOut: Tensor, env: DecoderBlockEnv, grads: Gradients) -> Tensor {
        var dx = mlp.backward(c.ffn, dy: dOut, grads: grads)
        for i in stride(from: blocks.count - 1, through: 0, by: -1) {
            dx = blocks[i].backward(c.layers[i], dOut: dx, env: env, grads: grads)
        }
        let dq = norm.backward(c.norm, dy: dx, grads: grads)
        Kernels.add(dq, dOut)
        return dq
    }
}

// GSSelfAttnLayer's training passes: GSSelfAttnLayerTraining.swift.

struct SelfBlockContext {
    let norm: LayerNormContext
    let layers: [SelfLayerContext]
    let rows: [[Int32]]
    let ffn: MLPContext
}

extension GSSelfAttnBlock {
    func forwardTraining(_ query: Tensor, env: DecoderBlockEnv) -> (Tensor, SelfBlockContext) {
        var (g, n) = norm.forwardTraining(query)
        var ctx: [SelfLayerContext] = [], rowMaps: [[Int32]] = []
        var cache: [Int: [Int32]] = [:]
        for layer in blocks {
            let rows = cache[layer.shiftSize] ?? env.grid.shiftedWindowRows(shift: layer.shiftSize)
            cache[layer.shiftSize] = rows
            let (y, c) = layer.forwardTraining(g, rows: rows, env: env)
            ctx.append(c)
            rowMaps.append(rows)
            g = y
        }
        let (y, f) = mlp.forwardTraining(g)
        Kernels.add(y, query)
        return (y, SelfBlockContext(norm: n, layers: ctx, rows: rowMaps, ffn: f))
    }

    func backward(_ c: SelfBlockContext, dOut: Tensor, env: DecoderBlockEnv, grads: Gradients) -> Tensor {
        var dg = mlp.backward(c.ffn, dy: dOut, grads: grads)
        for i in stride(from: blocks.count - 1, through: 0, by: -1) {
            dg = blocks[i].backward(c.layers[i], dOut: dg, rows: c.rows[i], env: env, grads: grads)
        }
        let dq = norm.backward(c.norm, dy: dg, grads: grads)
        Kernels.add(dq, dOut)
        return dq
    }
}
