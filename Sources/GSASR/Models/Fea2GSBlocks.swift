import GSASRTensor

/// Token layout shared by the decoder blocks: `windows` windows in row-major (m, n) order,
/// each holding num_gs_seed tokens in row-major (h, w) order — the official
/// `(b h_count w_count) (dh dw) c` layout for batch 1. Rows are tokens, columns channels.
struct TokenGrid {
    let rowsOfWindows: Int  // h_count
    let colsOfWindows: Int  // w_count
    let seedSide: Int  // sqrt(num_gs_seed)
    var windows: Int { rowsOfWindows * colsOfWindows }
    var seeds: Int { seedSide * seedSide }
    var tokens: Int { windows * seeds }
    var gridHeight: Int { rowsOfWindows * seedSide }
    var gridWidth: Int { colsOfWindows * seedSide }

    /// Token row of grid position (gy, gx).
    func token(gy: Int, gx: Int) -> Int {
        ((gy / seedSide) * colsOfWindows + gx / seedSide) * seeds + (gy % seedSide) * seedSide + gx % seedSide
    }

    /// Row map of the windows of the grid rolled by −shift on both axes (torch.roll with
    /// negative shifts): window slot (w, i) reads token at grid position + shift (mod size).
    func shiftedWindowRows(shift: Int) -> [Int32] {
        var rows = [Int32](repeating: 0, count: tokens)
        for m in 0..<rowsOfWindows {
            for n in 0..<colsOfWindows {
                for h in 0..<seedSide {
                    for w in 0..<seedSide {
                        let gy = (m * seedSide + h + shift) % gridHeight
                        let gx = (n * seedSide + w + shift) % gridWidth
                        rows[(m * colsOfWindows + n) * seeds + h * seedSide + w] = Int32(token(gy: gy, gx: gx))
                    }
                }
            }
        }
        return rows
    }
}

/// `WindowCrossAttnLayer`: scale cross-attention + FFN, window cross-attention to image
/// features + FFN, all pre-norm with residuals. Odd layers roll the *feature map* by
/// −window/2 (no mask, queries not rolled, nothing rolled back).
public struct WindowCrossAttnLayer: @unchecked Sendable {
    public let gsCrossAttnScale: MultiheadAttention
    public let norm1: LayerNorm, norm2: LayerNorm, norm3: LayerNorm, norm4: LayerNorm
    public let windowCrossAttn: WindowCrossAttn
    public let mlpCrossattnScale: MLP
    public let mlpCrossattnFeature: MLP
    public let shiftSize: Int

    init(_ p: ParameterLoader, _ prefix: String, _ cfg: Fea2GSConfig, shift: Int) throws {
        let c = cfg.channel
        gsCrossAttnScale = try MultiheadAttention(p, prefix + "gs_cross_attn_scale.", dim: c)
        norm1 = try LayerNorm(p, prefix + "norm1.", dim: c)
        norm2 = try LayerNorm(p, prefix + "norm2.", dim: c)
        norm3 = try LayerNorm(p, prefix + "norm3.", dim: c)
        norm4 = try LayerNorm(p, prefix + "norm4.", dim: c)
        windowCrossAttn = try WindowCrossAttn(p, prefix + "window_cross_attn.", cfg)
        mlpCrossattnScale = try MLP(
            p, prefix + "mlp_crossattn_scale.", first: "fc1", second: "fc2", in: c, hidden: c, out: c)
        mlpCrossattnFeature = try MLP(
            p, prefix + "mlp_crossattn_feature.", first: "fc1", second: "fc2", in: c, hidden: c, out: c)
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

    /// x: tokens × C (updated in place). feat: (Hp·Wp) × C image features.
    func forward(
        _ x: Tensor, pos: Tensor, feat: Tensor, featHeight: Int, featWidth: Int, windowSize ws: Int,
        grid: TokenGrid, scaleEmbedding: [Float]
    ) {
        let c = x.shape[1], t = grid.tokens
        // 1. Scale cross-attention: a constant vector per layer (see MultiheadAttention).
        let m = gsCrossAttnScale.constantOutput(keyValue: scaleEmbedding)
        Kernels.addRow(x, m)
        // 2. FFN.
        Kernels.add(x, mlpCrossattnScale(norm2(x)))
        // 3. Window cross-attention to the (optionally rolled) feature map.
        let qIn = norm3(x)
        Kernels.add(qIn, pos)
        let q = windowCrossAttn.qhead(qIn)
        let kv = windowCrossAttn.kvhead(feat)
        let kRows = keyRows(grid: grid, featHeight: featHeight, featWidth: featWidth, windowSize: ws)
        let qRows = (0..<Int32(t)).map { $0 }
        let attn = Tensor(uninitialized: [t, c])
        Kernels.windowAttention(
            q: q, kv: kv, channels: c, qRows: qRows, kRows: kRows, windows: grid.windows, nq: grid.seeds,
            nk: ws * ws, heads: windowCrossAttn.heads, bias: windowCrossAttn.bias, out: attn)
        Kernels.add(x, windowCrossAttn.proj(attn))
        // 4. FFN.
        Kernels.add(x, mlpCrossattnFeature(norm4(x)))
    }
}

/// `WindowCrossAttnBlock`: x + mlp(layers(norm(x))).
public struct WindowCrossAttnBlock: @unchecked Sendable {
    public let mlp: MLP
    public let norm: LayerNorm
    public let blocks: [WindowCrossAttnLayer]

    init(_ p: ParameterLoader, _ prefix: String, _ cfg: Fea2GSConfig) throws {
        let c = cfg.channel
        mlp = try MLP(p, prefix + "mlp.", first: "0", second: "2", in: c, hidden: c, out: c)
        norm = try LayerNorm(p, prefix + "norm.", dim: c)
        blocks = try (0..<cfg.numCrossattnLayers).map { i in
            try WindowCrossAttnLayer(p, prefix + "blocks.\(i).", cfg, shift: i % 2 == 0 ? 0 : cfg.windowSize / 2)
        }
    }

    func forward(
        _ query: Tensor, pos: Tensor, feat: Tensor, featHeight: Int, featWidth: Int, windowSize: Int,
        grid: TokenGrid, scaleEmbedding: [Float], tap: ((String, Tensor) -> Void)?
    ) -> Tensor {
        let x = norm(query)
        for (i, layer) in blocks.enumerated() {
            layer.forward(
                x, pos: pos, feat: feat, featHeight: featHeight, featWidth: featWidth, windowSize: windowSize,
                grid: grid, scaleEmbedding: scaleEmbedding)
            tap?("layer\(i)", x)
        }
        let y = mlp(x)
        Kernels.add(y, query)
        return y
    }
}

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

    init(_ p: ParameterLoader, _ prefix: String, _ cfg: Fea2GSConfig, shift: Int) throws {
        let c = cfg.channel
        norm1 = try LayerNorm(p, prefix + "norm1.", dim: c)
        norm2 = try LayerNorm(p, prefix + "norm2.", dim: c)
        norm3 = try LayerNorm(p, prefix + "norm3.", dim: c)
        norm4 = try LayerNorm(p, prefix + "norm4.", dim: c)
        gsSelfAttn = try GSSelfAttn(p, prefix + "gs_self_attn.", cfg)
        mlpSelfattn = try MLP(p, prefix + "mlp_selfattn.", first: "fc1", second: "fc2", in: c, hidden: c, out: c)
        gsCrossAttnScale = try MultiheadAttention(p, prefix + "gs_cross_attn_scale.", dim: c)
        mlpCrossattn = try MLP(p, prefix + "mlp_crossattn.", first: "fc1", second: "fc2", in: c, hidden: c, out: c)
        shiftSize = shift
    }

    /// Windows of one group of ``forward(_:grid:rows:scaleEmbedding:)``.
    static let windowsPerGroup = 4

    /// The layer, in place on the token rows `g`:
    ///
    ///   g += cross_attn_scale(·, s);  g += mlp_crossattn(norm4(g));
    ///   g += proj(window_attn(qkv(norm1(g))));  g += mlp_selfattn(norm2(g)).
    ///
    /// Everything but the attention is row-local and the attention stays inside the layer's
    /// (shifted) windows, so the layer runs group by group of `windowsPerGroup` windows: gather
    /// the group's rows (`rows`, the window map), run the whole layer on them in cache-sized
    /// scratch (single-threaded GEMMs; the groups are spread over the threads), scatter them
    /// back. Each row sees the same operations in the same order as a whole-tensor pass, so the
    /// result is the same; it reads and writes the full token tensor twice instead of about
    /// twenty times.
    func forward(_ g: Tensor, grid: TokenGrid, rows: [Int32], scaleEmbedding: [Float]) {
        let c = g.shape[1], n = grid.seeds, windows = grid.windows
        let m = gsCrossAttnScale.constantOutput(keyValue: scaleEmbedding)
        let group = Self.windowsPerGroup
        let groups = (windows + group - 1) / group
        let maxRows = group * n
        let local = (0..<Int32(maxRows)).map { $0 }
        let attn = gsSelfAttn
        withExtendedLifetime((g, attn.bias)) {
            rows.withUnsafeBufferPointer { rp in
                m.withUnsafeBufferPointer { mp in
                    Parallel.forEach(groups) { gi in
                        let w0 = gi * group, nw = min(group, windows - w0), r = nw * n
                        let x = UnsafeMutablePointer<Float>.allocate(capacity: maxRows * c)
                        let h = UnsafeMutablePointer<Float>.allocate(capacity: maxRows * c)
                        let t = UnsafeMutablePointer<Float>.allocate(capacity: maxRows * c)
                        let a = UnsafeMutablePointer<Float>.allocate(capacity: maxRows * c)
                        let qkv = UnsafeMutablePointer<Float>.allocate(capacity: maxRows * 3 * c)
                        defer { x.deallocate(); h.deallocate(); t.deallocate(); a.deallocate(); qkv.deallocate() }
                        for i in 0..<r { (x + i * c).update(from: g.ptr + Int(rp[w0 * n + i]) * c, count: c) }
                        Kernels.addRow(x, rows: r, mp.baseAddress!, c)
                        // x += mlp_crossattn(norm4(x))
                        Self.norm(norm4, x, rows: r, into: h)
                        Self.mlp(mlpCrossattn, h, rows: r, hidden: t, into: a)
                        Kernels.add(x, a, r * c)
                        // x += proj(window_attn(qkv(norm1(x))))
                        Self.norm(norm1, x, rows: r, into: h)
                        Self.linear(attn.qkvhead, h, rows: r, into: qkv)
                        Kernels.windowAttention(
                            q: qkv, k: qkv + c, v: qkv + 2 * c, channels: c, ldQ: 3 * c, ldKV: 3 * c, ldOut: c,
                            qRows: local, kRows: local, windows: nw, nq: n, nk: n, heads: attn.heads,
                            bias: attn.bias.ptr, out: t, parallel: false)
                        Self.linear(attn.proj, t, rows: r, into: a)
                        Kernels.add(x, a, r * c)
                        // x += mlp_selfattn(norm2(x))
                        Self.norm(norm2, x, rows: r, into: h)
                        Self.mlp(mlpSelfattn, h, rows: r, hidden: t, into: a)
                        Kernels.add(x, a, r * c)
                        for i in 0..<r { (g.ptr + Int(rp[w0 * n + i]) * c).update(from: x + i * c, count: c) }
                    }
                }
            }
        }
    }

    // Single-threaded pointer forms of the layer's modules (the same kernels as their
    // `callAsFunction`s, without the split over threads).
    static func norm(_ ln: LayerNorm, _ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        Kernels.layerNorm(
            x: x, rows: rows, n: ln.weight.count, gamma: ln.weight.ptr, beta: ln.bias.ptr, eps: ln.eps, y: y,
            parallel: false)
    }

    static func linear(
        _ l: Linear, _ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, relu: Bool = false
    ) {
        Kernels.linear(
            x: x, ldx: l.inFeatures, m: rows, k: l.inFeatures, weight: l.weight.ptr, bias: l.bias?.ptr,
            n: l.outFeatures, y: y, ldy: l.outFeatures, relu: relu, parallel: false)
    }

    static func mlp(
        _ m: MLP, _ x: UnsafePointer<Float>, rows: Int, hidden: UnsafeMutablePointer<Float>,
        into y: UnsafeMutablePointer<Float>
    ) {
        linear(m.fc1, x, rows: rows, into: hidden, relu: true)
        linear(m.fc2, hidden, rows: rows, into: y)
    }
}

/// `GSSelfAttnBlock`: x + mlp(layers(norm(x))).
public struct GSSelfAttnBlock: @unchecked Sendable {
    public let mlp: MLP
    public let norm: LayerNorm
    public let blocks: [GSSelfAttnLayer]

    init(_ p: ParameterLoader, _ prefix: String, _ cfg: Fea2GSConfig) throws {
        let c = cfg.channel
        mlp = try MLP(p, prefix + "mlp.", first: "0", second: "2", in: c, hidden: c, out: c)
        norm = try LayerNorm(p, prefix + "norm.", dim: c)
        blocks = try (0..<cfg.numSelfattnLayers).map { i in
            try GSSelfAttnLayer(p, prefix + "blocks.\(i).", cfg, shift: i % 2 == 0 ? 0 : cfg.numGsSeedSqrt / 2)
        }
    }

    func forward(_ query: Tensor, grid: TokenGrid, scaleEmbedding: [Float], tap: ((String, Tensor) -> Void)?) -> Tensor
    {
        let g = norm(query)
        var rowMaps: [Int: [Int32]] = [:]
        for (i, layer) in blocks.enumerated() {
            let rows: [Int32]
            if let r = rowMaps[layer.shiftSize] {
                rows = r
            } else {
                rows = grid.shiftedWindowRows(shift: layer.shiftSize)
                rowMaps[layer.shiftSize] = rows
            }
            layer.forward(g, grid: grid, rows: rows, scaleEmbedding: scaleEmbedding)
            tap?("layer\(i)", g)
        }
        let y = mlp(g)
        Kernels.add(y, query)
        return y
    }
}
