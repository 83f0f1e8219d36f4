import Foundation
import GSASRCheckpoint
import GSASRTensor

/// One of the five per-Gaussian MLP heads: Linear(C, C) → ReLU → Linear(C, 4C) → ReLU →
/// Linear(4C, k) (state keys `mlp_block_*.{0,2,4}`).
public struct GaussianHead: @unchecked Sendable {
    public let l0: Linear, l2: Linear, l4: Linear
    init(l0: Linear, l2: Linear, l4: Linear) {
        self.l0 = l0
        self.l2 = l2
        self.l4 = l4
    }
    init(_ p: ParameterLoader, _ prefix: String, channel c: Int, out k: Int) throws {
        l0 = try Linear(p, prefix + "0.", in: c, out: c)
        l2 = try Linear(p, prefix + "2.", in: c, out: 4 * c)
        l4 = try Linear(p, prefix + "4.", in: 4 * c, out: k)
    }
}

/// The Fea2GS decoder: learnable Gaussian embeddings → 2D Gaussian parameters, conditioned on
/// image features (window cross-attention) and on the scale factor (scale embedding).
///
/// Output: (N × 9) with N = (sqrt(seed)·h_count·s1·s2) · (sqrt(seed)·w_count·s1·s2), rows in
/// row-major order of that Gaussian grid, columns
/// `[sigma_x_raw, sigma_y_raw, rho_raw, alpha_raw, r, g, b, mean_x, mean_y]`, where the mean is
/// already in [0, 1] image units (the head output divided by the grid width/height plus the
/// cell-centre reference point).
public struct Fea2GS: @unchecked Sendable {
    public let config: Fea2GSConfig
    public let gsEmbedding: Tensor  // seed × C
    public let posEmbedding: Tensor  // seed × C
    public let imgFeatProj0: Conv2d, imgFeatProj2: Conv2d
    public let windowCrossattnBlocks: [WindowCrossAttnBlock]
    public let gsSelfattnBlocks: [GSSelfAttnBlock]
    public let mlpBlockSigma: GaussianHead, mlpBlockRho: GaussianHead, mlpBlockAlpha: GaussianHead
    public let mlpBlockRgb: GaussianHead, mlpBlockMean: GaussianHead
    public let scaleMlp0: Linear, scaleMlp2: Linear
    public let upNet0: Conv2d, upNet2: Conv2d
    /// The five heads' first layers fused into one (5C × C) layer (exact: same products).
    let fusedHeadInput: Linear

    public init(stateDict p: ParameterLoader, config cfg: Fea2GSConfig) throws {
        try cfg.validate()
        config = cfg
        let c = cfg.channel
        gsEmbedding = Tensor(shape: [cfg.numGsSeed, c], values: try p.floats("gs_embedding", [cfg.numGsSeed, c]))
        posEmbedding = Tensor(shape: [cfg.numGsSeed, c], values: try p.floats("pos_embedding", [cfg.numGsSeed, c]))
        imgFeatProj0 = try Conv2d(p, "img_feat_proj.0.", in: cfg.inchannel, out: c)
        imgFeatProj2 = try Conv2d(p, "img_feat_proj.2.", in: c, out: c)
        windowCrossattnBlocks = try (0..<cfg.numCrossattnBlocks).map {
            try WindowCrossAttnBlock(p, "window_crossattn_blocks.\($0).", cfg)
        }
        gsSelfattnBlocks = try (0..<cfg.numSelfattnBlocks).map {
            try GSSelfAttnBlock(p, "gs_selfattn_blocks.\($0).", cfg)
        }
        let loaded = try [
            GaussianHead(p, "mlp_block_sigma.", channel: c, out: 2),
            GaussianHead(p, "mlp_block_rho.", channel: c, out: 1),
            GaussianHead(p, "mlp_block_alpha.", channel: c, out: 1),
            GaussianHead(p, "mlp_block_rgb.", channel: c, out: 3),
            GaussianHead(p, "mlp_block_mean.", channel: c, out: 2),
        ]
        // The five first layers are row views of one stacked (5C × C) layer.
        let fused = Linear(stacking: loaded.map(\.l0))
        let l0s = fused.split([c, c, c, c, c])
        let heads = zip(loaded, l0s).map { GaussianHead(l0: $1, l2: $0.l2, l4: $0.l4) }
        fusedHeadInput = fused
        mlpBlockSigma = heads[0]
        mlpBlockRho = heads[1]
        mlpBlockAlpha = heads[2]
        mlpBlockRgb = heads[3]
        mlpBlockMean = heads[4]
        scaleMlp0 = try Linear(p, "scale_mlp.0.", in: 1, out: 4 * c)
        scaleMlp2 = try Linear(p, "scale_mlp.2.", in: 4 * c, out: c)
        let s1 = cfg.shuffleScale1, s2 = cfg.shuffleScale2
        upNet0 = try Conv2d(p, "UPNet.0.", in: c, out: c * s1 * s1)
        upNet2 = try Conv2d(p, "UPNet.2.", in: c, out: c * s2 * s2)
        try p.finish()
    }

    /// Size of the Gaussian grid for a padded feature map of hp × wp.
    public func gaussianGrid(featureHeight hp: Int, featureWidth wp: Int) -> (height: Int, width: Int) {
        let f = config.numGsSeedSqrt * config.shuffleScale1 * config.shuffleScale2
        return (f * (hp / config.windowSize), f * (wp / config.windowSize))
    }

    /// The scale embedding `scale_mlp(1/scale)` (1/scale in Float32, as the official code).
    public func scaleEmbedding(scale: Float) -> [Float] {
        let inv: Float = 1 / scale
        var h = scaleMlp0.apply([inv])
        for i in h.indices { h[i] = max(h[i], 0) }
        return scaleMlp2.apply(h)
    }

    /// Runs the decoder. `features`: (hp × wp × inchannel) channels-last, hp and wp multiples
    /// of the window size. `tap` receives named intermediates (for debugging and tests);
    /// `step(done, total)` runs after each attention block (progress; throw to stop the run).
    public func callAsFunction(
        _ features: Tensor, height hp: Int, width wp: Int, scale: Float,
        tap: ((String, Tensor) -> Void)? = nil
    ) -> Tensor {
        callAsFunction(features, height: hp, width: wp, scale: scale, tap: tap, step: { _, _ in })
    }

    /// The same, with `step(done, total)` after each attention block.
    public func callAsFunction(
        _ features: Tensor, height hp: Int, width wp: Int, scale: Float,
        tap: ((String, Tensor) -> Void)? = nil, step: (_ done: Int, _ total: Int) throws -> Void
    ) rethrows -> Tensor {
        let semb = scaleEmbedding(scale: scale)
        tap?("scale_embedding", Tensor(shape: [1, config.channel], values: semb))
        let feat = projectFeatures(features, height: hp, width: wp)
        tap?("img_feat_proj", feat)
        // Progress steps: each attention block, UPNet, each slice of the heads.
        let blocks = windowCrossattnBlocks.count + gsSelfattnBlocks.count
        let total = blocks + 1 + Fea2GS.headsSlices
        let (query, grid) = try attend(
            feat, height: hp, width: wp, scaleEmbedding: semb, tap: tap, step: { done, _ in try step(done, total) })
        let u = upsample(query, grid: grid)
        tap?("after_UPNet", u.up)
        try step(blocks + 1, total)
        return try heads(
            u.up, gridHeight: u.height, gridWidth: u.width, step: { done, _ in try step(blocks + 1 + done, total) })
    }

    /// `img_feat_proj` (conv → ReLU → conv): (hp × wp × inchannel) → (hp·wp) × C.
    public func projectFeatures(_ features: Tensor, height hp: Int, width wp: Int) -> Tensor {
        let f0 = imgFeatProj0(features, height: hp, width: wp)
        Kernels.relu(f0)
        return imgFeatProj2(f0, height: hp, width: wp).reshaped([hp * wp, config.channel])
    }

    /// The attention part of the decoder: per-window copies of the Gaussian embedding, the
    /// window cross-attention blocks to the projected features `feat` ((hp·wp) × C), the
    /// self-attention blocks and their long residual. Returns the tokens (T × C) and their grid.
    ///
    /// The shifted layers roll the feature map and the token grid with wrap-around and no mask
    /// (as the official code does), so the windows on the right and bottom edges see the left
    /// and top edges: the map is a torus. Tiling relies on this (see ``TiledUpscaler``).
    func attend(
        _ feat: Tensor, height hp: Int, width wp: Int, scaleEmbedding semb: [Float],
        tap: ((String, Tensor) -> Void)? = nil
    ) -> (Tensor, TokenGrid) {
        attend(feat, height: hp, width: wp, scaleEmbedding: semb, tap: tap, step: { _, _ in })
    }

    func attend(
        _ feat: Tensor, height hp: Int, width wp: Int, scaleEmbedding semb: [Float],
        tap: ((String, Tensor) -> Void)? = nil, step: (_ done: Int, _ total: Int) throws -> Void
    ) rethrows -> (Tensor, TokenGrid) {
        let cfg = config, c = cfg.channel, ws = cfg.windowSize
        precondition(hp % ws == 0 && wp % ws == 0, "feature size must be a multiple of the window size")
        let grid = TokenGrid(rowsOfWindows: hp / ws, colsOfWindows: wp / ws, seedSide: cfg.numGsSeedSqrt)
        let t = grid.tokens

        // Per-window copies of the shared Gaussian embedding and positional embedding.
        var query = Tensor(uninitialized: [t, c])
        let pos = Tensor(uninitialized: [t, c])
        for w in 0..<grid.windows {
            (query.ptr + w * grid.seeds * c).update(from: gsEmbedding.ptr, count: grid.seeds * c)
            (pos.ptr + w * grid.seeds * c).update(from: posEmbedding.ptr, count: grid.seeds * c)
        }

        let blockCount = windowCrossattnBlocks.count + gsSelfattnBlocks.count
        for (i, block) in windowCrossattnBlocks.enumerated() {
            query = block.forward(
                query, pos: pos, feat: feat, featHeight: hp, featWidth: wp, windowSize: ws, grid: grid,
                scaleEmbedding: semb, tap: { name, x in tap?("after_window_crossattn_block\(i)_\(name)", x) })
            tap?("after_window_crossattn_block\(i)", query)
            try step(i + 1, blockCount)
        }
        let resi = query
        for (i, block) in gsSelfattnBlocks.enumerated() {
            query = block.forward(
                query, grid: grid, scaleEmbedding: semb,
                tap: { name, x in tap?("after_gs_selfattn_block\(i)_\(name)", x) })
            try step(windowCrossattnBlocks.count + i + 1, blockCount)
        }
        tap?("after_last_gs_selfattn_block", query)
        if !gsSelfattnBlocks.isEmpty { Kernels.add(query, resi) }
        return (query, grid)
    }

    /// Tokens → (gridH × gridW × C) image, then UPNet (conv, shuffle, conv, shuffle). Returns the
    /// UPNet convolutions' inputs too (`img`, `u0`: the training backward needs them).
    func upsample(_ query: Tensor, grid: TokenGrid) -> (img: Tensor, u0: Tensor, up: Tensor, height: Int, width: Int) {
        let img = tokenImage(query, grid: grid)
        let u = upNet(img, height: grid.gridHeight, width: grid.gridWidth)
        return (img, u.u0, u.up, u.height, u.width)
    }

    /// Tokens (window-major rows) → the (gridH × gridW × C) token image.
    func tokenImage(_ query: Tensor, grid: TokenGrid) -> Tensor {
        let c = config.channel
        let gh = grid.gridHeight, gw = grid.gridWidth
        let img = Tensor(uninitialized: [gh, gw, c])
        withExtendedLifetime(query) {
            for gy in 0..<gh {
                for gx in 0..<gw {
                    (img.ptr + (gy * gw + gx) * c).update(from: query.ptr + grid.token(gy: gy, gx: gx) * c, count: c)
                }
            }
        }
        return img
    }

    /// UPNet on a (gh × gw × C) token image: conv, pixel shuffle s1, conv, pixel shuffle s2
    /// (zero padding at the image's edges, as every 3×3 convolution here).
    func upNet(_ img: Tensor, height gh: Int, width gw: Int) -> (u0: Tensor, up: Tensor, height: Int, width: Int) {
        let c = config.channel
        let s1 = config.shuffleScale1, s2 = config.shuffleScale2
        let u0 = Kernels.pixelShuffle(
            upNet0(img, height: gh, width: gw), height: gh, width: gw, channels: c * s1 * s1, factor: s1)
        let h1 = gh * s1, w1 = gw * s1
        let up = Kernels.pixelShuffle(
            upNet2(u0, height: h1, width: w1), height: h1, width: w1, channels: c * s2 * s2, factor: s2)
        return (u0, up, h1 * s2, w1 * s2)
    }

    /// The five MLP heads on the upsampled grid, streamed in chunks of tokens so the (4C-wide)
    /// hidden activations never exist for the whole grid at once.
    ///
    /// `frame` places the grid inside a larger one (tiling): the means are then expressed in
    /// the larger grid's [0, 1] units, computed with the same Float32 operations as an untiled
    /// run (`head / globalWidth + reference point of the global cell`).
    func heads(
        _ x: Tensor, gridHeight gh: Int, gridWidth gw: Int, cache: HeadsCache? = nil, frame: GaussianFrame? = nil
    ) -> Tensor {
        heads(x, gridHeight: gh, gridWidth: gw, cache: cache, frame: frame, step: { _, _ in })
    }

    /// The chunks of the heads run in this many consecutive slices (each in parallel), with a
    /// progress step after each, so that a run can be stopped inside the heads too. The
    /// chunks are independent, so the slicing does not change the result.
    static let headsSlices = 8

    func heads(
        _ x: Tensor, gridHeight gh: Int, gridWidth gw: Int, cache: HeadsCache? = nil, frame: GaussianFrame? = nil,
        step: (_ done: Int, _ total: Int) throws -> Void
    ) rethrows -> Tensor {
        let c = config.channel
        let n = gh * gw
        let out = Tensor(uninitialized: [n, 9])
        let chunk = 1024
        let chunks = (n + chunk - 1) / chunk
        let heads = [mlpBlockSigma, mlpBlockRho, mlpBlockAlpha, mlpBlockRgb, mlpBlockMean]
        let columns = [0, 2, 3, 4, 7]
        let f = frame ?? GaussianFrame(originX: 0, originY: 0, globalWidth: gw, globalHeight: gh)
        precondition(f.originX + gw <= f.globalWidth && f.originY + gh <= f.globalHeight, "grid outside its frame")
        let refX = Array(Fea2GS.referencePoints(f.globalWidth)[f.originX..<(f.originX + gw)])
        let refY = Array(Fea2GS.referencePoints(f.globalHeight)[f.originY..<(f.originY + gh)])
        let fgw = Float(f.globalWidth), fgh = Float(f.globalHeight)
        let xp = x.ptr, op = out.ptr
        for slice in 0..<Fea2GS.headsSlices {
            let first = chunks * slice / Fea2GS.headsSlices, last = chunks * (slice + 1) / Fea2GS.headsSlices
            Parallel.forEach(last - first) { i in
                let ci = first + i
                let r0 = ci * chunk
                let rows = min(chunk, n - r0)
                let h1Own = cache == nil ? UnsafeMutablePointer<Float>.allocate(capacity: rows * 5 * c) : nil
                let h2Own = cache == nil ? UnsafeMutablePointer<Float>.allocate(capacity: rows * 4 * c) : nil
                let o = UnsafeMutablePointer<Float>.allocate(capacity: rows * 3)
                defer { h1Own?.deallocate(); h2Own?.deallocate(); o.deallocate() }
                let h1 = h1Own ?? (cache!.h1.ptr + r0 * 5 * c)
                headsFirstLayer(xp + r0 * c, rows: rows, into: h1)
                for (hi, head) in heads.enumerated() {
                    let h2 = h2Own ?? (cache!.h2[hi].ptr + r0 * 4 * c)
                    Fea2GS.headSecondLayer(head, h1 + hi * c, rows: rows, channel: c, into: h2)
                    let k = head.l4.outFeatures
                    Kernels.linear(
                        x: h2, ldx: 4 * c, m: rows, k: 4 * c, weight: head.l4.weight.ptr, bias: head.l4.bias!.ptr,
                        n: k, y: o, ldy: k, parallel: false)
                    let col = columns[hi]
                    for r in 0..<rows {
                        for j in 0..<k { op[(r0 + r) * 9 + col + j] = o[r * k + j] }
                    }
                }
                // mean = head / [gridW, gridH] + reference point of the cell.
                for r in 0..<rows {
                    let idx = r0 + r
                    let gy = idx / gw, gx = idx % gw
                    op[idx * 9 + 7] = op[idx * 9 + 7] / fgw + refX[gx]
                    op[idx * 9 + 8] = op[idx * 9 + 8] / fgh + refY[gy]
                }
            }
            try step(slice + 1, Fea2GS.headsSlices)
        }
        return out
    }

    /// relu(fused first layers of the five heads) of `rows` tokens: rows × 5C (single-threaded;
    /// callers split the rows).
    func headsFirstLayer(_ x: UnsafePointer<Float>, rows: Int, into h1: UnsafeMutablePointer<Float>) {
        let c = config.channel
        Kernels.linear(
            x: x, ldx: c, m: rows, k: c, weight: fusedHeadInput.weight.ptr, bias: fusedHeadInput.bias!.ptr,
            n: 5 * c, y: h1, ldy: 5 * c, relu: true, parallel: false)
    }

    /// relu(second layer) of one head from its C columns of h1 (row stride 5C): rows × 4C.
    static func headSecondLayer(
        _ head: GaussianHead, _ h1: UnsafePointer<Float>, rows: Int, channel c: Int,
        into h2: UnsafeMutablePointer<Float>
    ) {
        Kernels.linear(
            x: h1, ldx: 5 * c, m: rows, k: c, weight: head.l2.weight.ptr, bias: head.l2.bias!.ptr, n: 4 * c, y: h2,
            ldy: 4 * c, relu: true, parallel: false)
    }

    /// The heads' hidden activations for the whole grid, kept by a training forward so that
    /// the backward need not recompute them: h1 (n × 5C, after ReLU) and per head h2 (n × 4C, after ReLU).
    final class HeadsCache {
        let h1: Tensor
        let h2: [Tensor]
        let n: Int, channel: Int
        init(n: Int, channel c: Int) {
            self.n = n
            channel = c
            h1 = Tensor(uninitialized: [n, 5 * c])
            h2 = (0..<5).map { _ in Tensor(uninitialized: [n, 4 * c]) }
        }
        /// Bytes a cache for n Gaussians of C channels takes.
        static func bytes(n: Int, channel c: Int) -> Int { n * 25 * c * 4 }
    }

    /// Cell centres `torch.linspace(0.5/n, 1 − 0.5/n, n)` in Float32, with torch's CPU
    /// linspace evaluation: start + step·i for the first half, end − step·(n−1−i) after.
    public static func referencePoints(_ n: Int) -> [Float] {
        let half = 1.0 / Double(n) / 2
        let start = Float(half), end = Float(1 - half)
        if n == 1 { return [start] }
        let step = (end - start) / Float(n - 1)
        let halfway = n / 2
        return (0..<n).map { i in i < halfway ? start + step * Float(i) : end - step * Float(n - 1 - i) }
    }
}

/// Where a grid of Gaussians sits inside the whole image's Gaussian grid (tiling).
struct GaussianFrame {
    /// Column and row of the grid's first Gaussian in the whole grid.
    var originX: Int, originY: Int
    /// Size of the whole Gaussian grid.
    var globalWidth: Int, globalHeight: Int
}
