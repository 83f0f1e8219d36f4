import Foundation
import GSASRCheckpoint
import GSASRTensor

/// One of the five per-Gaussian MLP heads: Linear(C, C) → ReLU → Linear(C, 4C) → ReLU →
/// Linear(4C, k) (state keys `mlp_block_*.{0,2,4}`).
public struct GaussianHead: @unchecked Sendable {
    public let l0: Linear, l2: Linear, l4: Linear

    /// `l0` is written into `first` (a row block of the five heads' stacked first layer).
    init(_ s: ParameterSource, channel c: Int, out k: Int, first: Linear) throws {
        l0 = try Linear(s(0), in: c, out: c, into: first)
        l2 = try Linear(s(2), in: c, out: 4 * c)
        l4 = try Linear(s(4), in: 4 * c, out: k)
    }
}

/// The Fea2GS decoder (`Fea2GS` in the official `fea2gsnorope_arch.py`): learnable Gaussian
/// embeddings → 2D Gaussian parameters, conditioned on image features (window cross-attention)
/// and on the scale factor (scale embedding).
///
/// Output: (N × 9) with N = (sqrt(seed)·h_count·s1·s2) · (sqrt(seed)·w_count·s1·s2), rows in
/// row-major order of that Gaussian grid, columns
/// `[sigma_x_raw, sigma_y_raw, rho_raw, alpha_raw, r, g, b, mean_x, mean_y]`, where the mean is
/// already in [0, 1] image units (the head output divided by the grid width/height plus the
/// cell-centre reference point).
///
/// One forward serves inference and training: ``forward(_:height:width:scale:saving:profile:tap:step:)``
/// with `saving` keeps the activations its backward (``backward(_:dRaw:grads:profile:)``, below)
/// needs; without it nothing is kept.
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
    /// `Fea2GS_ROPE_AMP`'s `conv_final` on the self-attention output (nil in the paper decoder).
    public let convFinal: Conv2d?
    /// The five heads' first layers stacked into one (5C × C) layer (exact: same products);
    /// each head's `l0` is a row view of it.
    let fusedHeadInput: Linear

    /// The products the precision switch acts on (``setPrecision(_:)``), from the declaration:
    /// every registered Linear and 3×3 convolution but the scale MLP's (it runs on one vector).
    public let products: [PrecisionSlot]

    /// The declaration: every parameter and buffer, in `state_dict()` order.
    public init(_ s: ParameterSource, config cfg: Fea2GSConfig) throws {
        let firstProduct = s.products.count
        try cfg.validate()
        config = cfg
        let c = cfg.channel
        gsEmbedding = try s.parameter("gs_embedding", [cfg.numGsSeed, c], .normal(std: 1))
        posEmbedding = try s.parameter("pos_embedding", [cfg.numGsSeed, c], .normal(std: 1))
        imgFeatProj0 = try Conv2d(s("img_feat_proj")(0), in: cfg.inchannel, out: c)
        imgFeatProj2 = try Conv2d(s("img_feat_proj")(2), in: c, out: c)
        windowCrossattnBlocks = try (0..<cfg.numCrossattnBlocks).map {
            try WindowCrossAttnBlock(s("window_crossattn_blocks")($0), cfg)
        }
        gsSelfattnBlocks = try (0..<cfg.numSelfattnBlocks).map {
            try GSSelfAttnBlock(s("gs_selfattn_blocks")($0), cfg)
        }
        let (fused, firsts) = Linear.stacked(s, in: c, outs: [c, c, c, c, c])
        fusedHeadInput = fused
        mlpBlockSigma = try GaussianHead(s("mlp_block_sigma"), channel: c, out: 2, first: firsts[0])
        mlpBlockRho = try GaussianHead(s("mlp_block_rho"), channel: c, out: 1, first: firsts[1])
        mlpBlockAlpha = try GaussianHead(s("mlp_block_alpha"), channel: c, out: 1, first: firsts[2])
        mlpBlockRgb = try GaussianHead(s("mlp_block_rgb"), channel: c, out: 3, first: firsts[3])
        mlpBlockMean = try GaussianHead(s("mlp_block_mean"), channel: c, out: 2, first: firsts[4])
        scaleMlp0 = try Linear(s("scale_mlp")(0), in: 1, out: 4 * c)
        scaleMlp2 = try Linear(s("scale_mlp")(2), in: 4 * c, out: c)
        let s1 = cfg.shuffleScale1, s2 = cfg.shuffleScale2
        upNet0 = try Conv2d(s("UPNet")(0), in: c, out: c * s1 * s1)
        upNet2 = try Conv2d(s("UPNet")(2), in: c, out: c * s2 * s2)
        convFinal = cfg.rope ? try Conv2d(s("conv_final"), in: c, out: c) : nil
        let vectorOnly = [scaleMlp0.precision, scaleMlp2.precision]
        products = s.products[firstProduct...].filter { p in !vectorOnly.contains { $0 === p } }
    }

    /// Whether a product runs in bf16 when the decoder does: the large GEMMs (at least 16
    /// inputs and 16 outputs). The heads' last layers (1-3 outputs: a memory-bound product that
    /// oneDNN's bf16 runs slower than OpenBLAS's float32) stay float32. The attention follows its
    /// projections (scores Q·Kᵀ in bf16, P·V in float32: `Kernels.windowAttention`). Measured:
    /// Benchmarks/README.md, "bf16".
    public static func runsInBF16(_ p: PrecisionSlot) -> Bool { p.inputs >= 16 && p.outputs >= 16 }

    /// Switches the decoder's large products to bf16 (their weights converted and reordered
    /// once, now) or back to float32 (the copies dropped). `.auto` must be resolved first
    /// (`Precision.resolve(qualityGateHolds:)`). Call it while no forward runs; training
    /// refuses a bf16 model (the copies would not follow the optimiser's updates).
    public func setPrecision(_ p: Precision) throws {
        precondition(p != .auto, "setPrecision: resolve .auto first")
        for slot in products { try slot.set(bf16: p == .bf16 && Fea2GS.runsInBF16(slot)) }
    }

    /// `.bf16` when any product runs in bf16, else `.f32`.
    public var precision: Precision { products.contains { $0.isBF16 } ? .bf16 : .f32 }

    /// Size of the Gaussian grid for a padded feature map of hp × wp.
    public func gaussianGrid(featureHeight hp: Int, featureWidth wp: Int) -> (height: Int, width: Int) {
        let f = config.numGsSeedSqrt * config.shuffleScale1 * config.shuffleScale2
        return (f * (hp / config.windowSize), f * (wp / config.windowSize))
    }

    /// The scale embedding `scale_mlp(1/scale)` (1/scale in Float32, as the official code), and
    /// the hidden activation relu(scale_mlp.0(1/scale)) its backward needs.
    func scaleEmbeddingAndHidden(scale: Float) -> (embedding: [Float], hidden: [Float]) {
        let inv: Float = 1 / scale
        var h = scaleMlp0.apply([inv])
        for i in h.indices { h[i] = max(h[i], 0) }
        return (scaleMlp2.apply(h), h)
    }

    public func scaleEmbedding(scale: Float) -> [Float] { scaleEmbeddingAndHidden(scale: scale).embedding }

    /// Runs the decoder. `features`: (hp × wp × inchannel) channels-last, hp and wp multiples
    /// of the window size. `tap` receives named intermediates (for debugging and tests).
    public func callAsFunction(
        _ features: Tensor, height hp: Int, width wp: Int, scale: Float,
        tap: ((String, Tensor) -> Void)? = nil
    ) -> Tensor {
        forward(features, height: hp, width: wp, scale: scale, saving: nil, tap: tap, step: { _, _ in }).0
    }

    /// The same, with `step(done, total)` after each attention block, after UPNet and after
    /// each slice of the heads (progress; throw to stop the run).
    public func callAsFunction(
        _ features: Tensor, height hp: Int, width wp: Int, scale: Float,
        tap: ((String, Tensor) -> Void)? = nil, step: (_ done: Int, _ total: Int) throws -> Void
    ) rethrows -> Tensor {
        try forward(features, height: hp, width: wp, scale: scale, saving: nil, tap: tap, step: step).0
    }

    /// The activations the backward needs for one image.
    public struct Context {
        let hp: Int, wp: Int
        let env: DecoderBlockEnv
        let inverseScale: Float
        let scaleHidden: [Float]  // relu(scale_mlp.0(1/s))
        let features: Tensor, f0: Tensor  // img_feat_proj inputs (f0 after its ReLU)
        let cross: [WindowCrossAttnBlock.Context]
        let selfBlocks: [GSSelfAttnBlock.Context]
        let img: Tensor, u0: Tensor  // UPNet conv inputs
        let up: Tensor  // the heads' input (outH·outW × C)
        let upHeight: Int, upWidth: Int
        let headsCache: HeadsCache?
    }

    /// A saving forward keeps the heads' hidden activations when they take at most this many
    /// bytes (768 MiB: 44 MB for the default config at LR 24, 663 MB for the paper config at
    /// LR 48, per sample); above it they are recomputed in the backward, as `use_checkpoint`
    /// would. The buffer is reused from sample to sample and step to step (``TrainingScratch``):
    /// allocating it afresh costs more in page faults than the recomputation saves.
    public static var headsCacheLimitBytes = 768 << 20

    /// The forward. With `saving` (a ``TrainingScratch``, whose buffers are reused), it first
    /// refreshes the dense relative-position biases from their tables (the optimiser updates
    /// the tables) and returns the ``Context`` of ``backward(_:dRaw:grads:profile:)``; with nil
    /// it keeps nothing. The output is the same bits either way.
    public func forward(
        _ features: Tensor, height hp: Int, width wp: Int, scale: Float, saving scratch: TrainingScratch?,
        profile: StepProfile? = nil, tap: ((String, Tensor) -> Void)? = nil,
        step: (_ done: Int, _ total: Int) throws -> Void
    ) rethrows -> (Tensor, Context?) {
        let saving = scratch != nil
        precondition(!(saving && config.rope), "Fea2GS_ROPE_AMP: training is not supported")
        let t0 = StepProfile.now()
        if saving { refreshRelativePositionBiases() }
        let c = config.channel
        let inv: Float = 1 / scale
        let (semb, hidden) = scaleEmbeddingAndHidden(scale: scale)
        tap?("scale_embedding", Tensor(shape: [1, c], values: semb))
        profile?.add("fea2gs: scale MLP, embeddings, biases", .forward, since: t0)
        let (f0, feat) = timed(profile, "fea2gs.img_feat_proj", .forward) {
            projectFeaturesKeepingHidden(features, height: hp, width: wp)
        }
        tap?("img_feat_proj", feat)
        // Progress steps: each attention block, UPNet, each slice of the heads.
        let blocks = windowCrossattnBlocks.count + gsSelfattnBlocks.count
        let total = blocks + 1 + Fea2GS.headsSlices
        let a = try attend(
            feat, height: hp, width: wp, scaleEmbedding: semb, saving: saving, profile: profile, tap: tap,
            step: { done, _ in try step(done, total) })
        let u = timed(profile, "fea2gs.UPNet", .forward) { upsample(a.query, grid: a.grid) }
        tap?("after_UPNet", u.up)
        try step(blocks + 1, total)
        let nUp = u.height * u.width
        let cache =
            saving && HeadsCache.bytes(n: nUp, channel: c) <= Fea2GS.headsCacheLimitBytes
            ? scratch?.headsCache(n: nUp, channel: c) : nil
        let raw = try timed(profile, "fea2gs: the five MLP heads", .forward) {
            try heads(
                u.up, gridHeight: u.height, gridWidth: u.width, cache: cache,
                step: { done, _ in try step(blocks + 1 + done, total) })
        }
        guard saving else { return (raw, nil) }
        return (
            raw,
            Context(
                hp: hp, wp: wp, env: a.env, inverseScale: inv, scaleHidden: hidden, features: features, f0: f0,
                cross: a.cross, selfBlocks: a.selfBlocks, img: u.img, u0: u.u0, up: u.up, upHeight: u.height,
                upWidth: u.width, headsCache: cache)
        )
    }

    /// Copies every relative-position table into its dense bias (after the tables changed).
    public func refreshRelativePositionBiases() {
        for b in windowCrossattnBlocks { for l in b.blocks { l.windowCrossAttn.relativePosition?.refresh() } }
        for b in gsSelfattnBlocks { for l in b.blocks { l.gsSelfAttn.relativePosition?.refresh() } }
    }

    /// `img_feat_proj` (conv → ReLU → conv): (hp × wp × inchannel) → (hp·wp) × C.
    public func projectFeatures(_ features: Tensor, height hp: Int, width wp: Int) -> Tensor {
        projectFeaturesKeepingHidden(features, height: hp, width: wp).feat
    }

    /// `img_feat_proj`, also returning the hidden map after the ReLU (the second conv's input).
    func projectFeaturesKeepingHidden(_ features: Tensor, height hp: Int, width wp: Int) -> (f0: Tensor, feat: Tensor) {
        let f0 = imgFeatProj0(features, height: hp, width: wp)
        Kernels.relu(f0)
        return (f0, imgFeatProj2(f0, height: hp, width: wp).reshaped([hp * wp, config.channel]))
    }

    /// The attention part of the decoder, its tokens, grid and (when saving) contexts.
    struct Attended {
        let query: Tensor
        let grid: TokenGrid
        let env: DecoderBlockEnv
        let cross: [WindowCrossAttnBlock.Context]
        let selfBlocks: [GSSelfAttnBlock.Context]
    }

    /// The attention part of the decoder: per-window copies of the Gaussian embedding, the
    /// window cross-attention blocks to the projected features `feat` ((hp·wp) × C), the
    /// self-attention blocks and their long residual. Returns the tokens (T × C) and their grid.
    ///
    /// The shifted layers roll the feature map and the token grid with wrap-around and no mask
    /// (as the official code does), so the windows on the right and bottom edges see the left
    /// and top edges: the map is a torus. Tiling relies on this (see ``TiledUpscaler``).
    func attend(
        _ feat: Tensor, height hp: Int, width wp: Int, scaleEmbedding semb: [Float], saving: Bool = false,
        profile: StepProfile? = nil, tap: ((String, Tensor) -> Void)? = nil, cuts: GridCuts = GridCuts(),
        step: (_ done: Int, _ total: Int) throws -> Void
    ) rethrows -> Attended {
        let cfg = config, c = cfg.channel, ws = cfg.windowSize
        precondition(hp % ws == 0 && wp % ws == 0, "feature size must be a multiple of the window size")
        let grid = TokenGrid(rowsOfWindows: hp / ws, colsOfWindows: wp / ws, seedSide: cfg.numGsSeedSqrt)
        let t = grid.tokens

        // Per-window copies of the shared Gaussian embedding and positional embedding.
        var query = Tensor(uninitialized: [t, c])
        let pos = Tensor(uninitialized: [t, c])
        withExtendedLifetime((gsEmbedding, posEmbedding)) {
            for w in 0..<grid.windows {
                (query.ptr + w * grid.seeds * c).update(from: gsEmbedding.ptr, count: grid.seeds * c)
                (pos.ptr + w * grid.seeds * c).update(from: posEmbedding.ptr, count: grid.seeds * c)
            }
        }
        let env = DecoderBlockEnv(
            grid: grid, feat: feat, featHeight: hp, featWidth: wp, windowSize: ws, pos: pos, scaleEmbedding: semb)
        env.cuts = cuts

        let blockCount = windowCrossattnBlocks.count + gsSelfattnBlocks.count
        var cross: [WindowCrossAttnBlock.Context] = []
        for (i, block) in windowCrossattnBlocks.enumerated() {
            let (y, cx) = timed(profile, "fea2gs.window_crossattn_blocks.\(i)", .forward) {
                block.forward(
                    query, env: env, saving: saving,
                    tap: tap.map { tap in { name, x in tap("after_window_crossattn_block\(i)_\(name)", x) } })
            }
            if let cx { cross.append(cx) }
            query = y
            tap?("after_window_crossattn_block\(i)", query)
            try step(i + 1, blockCount)
        }
        let resi = query
        var selfBlocks: [GSSelfAttnBlock.Context] = []
        for (i, block) in gsSelfattnBlocks.enumerated() {
            let (y, cx) = timed(profile, "fea2gs.gs_selfattn_blocks.\(i)", .forward) {
                block.forward(
                    query, env: env, saving: saving,
                    tap: tap.map { tap in { name, x in tap("after_gs_selfattn_block\(i)_\(name)", x) } })
            }
            if let cx { selfBlocks.append(cx) }
            query = y
            try step(windowCrossattnBlocks.count + i + 1, blockCount)
        }
        tap?("after_last_gs_selfattn_block", query)
        if let convFinal {
            // Fea2GS_ROPE_AMP: conv_final(query) + resi (also without self-attention blocks).
            query = grid.convolve(query, convFinal, cuts: cuts)
            Kernels.add(query, resi)
            tap?("conv_final_plus_resi", query)
        } else if !gsSelfattnBlocks.isEmpty {
            query = query.residual(resi, keep: saving)
        }
        return Attended(query: query, grid: grid, env: env, cross: cross, selfBlocks: selfBlocks)
    }

    /// Tokens → (gridH × gridW × C) image, then UPNet (conv, shuffle, conv, shuffle). Returns the
    /// UPNet convolutions' inputs too (`img`, `u0`: the backward needs them).
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
        let bf16Heads = heads.allSatisfy { $0.l2.precision.gemm != nil }
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
                // bf16: h1 rounded once for the five second layers.
                let h1b = bf16Heads ? BF16.threadBuffer(slot: 1, count: rows * 5 * c) : nil
                if let h1b { BF16.convert(h1, h1b, count: rows * 5 * c) }
                for (hi, head) in heads.enumerated() {
                    let h2 = h2Own ?? (cache!.h2[hi].ptr + r0 * 4 * c)
                    if let h1b, let g = head.l2.precision.gemm {
                        Kernels.linearBF16(
                            h1b + hi * c, ldx: 5 * c, rows: rows, g, bias: head.l2.bias!.ptr, y: h2, ldy: 4 * c,
                            relu: true)
                    } else {
                        Fea2GS.headSecondLayer(head, h1 + hi * c, rows: rows, channel: c, into: h2)
                    }
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
            n: 5 * c, y: h1, ldy: 5 * c, relu: true, parallel: false, bf16: fusedHeadInput.precision.gemm)
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

    /// Accumulates every parameter's gradient from dL/d(raw output) (N × 9) and returns
    /// dL/d(features) (hp·wp × inchannel), the encoder's upstream gradient.
    public func backward(_ cx: Context, dRaw: Tensor, grads: Gradients, profile: StepProfile? = nil) -> Tensor {
        let cfg = config, c = cfg.channel
        let env = cx.env, grid = env.grid
        // Heads (recomputed chunk by chunk), then UPNet.
        let dUp = timed(profile, "fea2gs: the five MLP heads", .backward) {
            headsBackward(
                cx.up, gridHeight: cx.upHeight, gridWidth: cx.upWidth, dOut: dRaw, grads: grads, cache: cx.headsCache)
        }
        let tUp = StepProfile.now()
        let s1 = cfg.shuffleScale1, s2 = cfg.shuffleScale2
        let gh = grid.gridHeight, gw = grid.gridWidth, h1 = gh * s1, w1 = gw * s1
        let dA2 = Kernels.pixelShuffleBackward(dUp, height: h1, width: w1, channels: c * s2 * s2, factor: s2)
        let dU0 = upNet2.backward(input: cx.u0, height: h1, width: w1, dy: dA2, grads: grads)!
        let dA0 = Kernels.pixelShuffleBackward(dU0, height: gh, width: gw, channels: c * s1 * s1, factor: s1)
        let dImg = upNet0.backward(input: cx.img, height: gh, width: gw, dy: dA0, grads: grads)!
        // Grid image → token rows (a permutation).
        var dq = Tensor(uninitialized: [grid.tokens, c])
        withExtendedLifetime(dImg) {
            for gy in 0..<gh {
                for gx in 0..<gw {
                    (dq.ptr + grid.token(gy: gy, gx: gx) * c).update(from: dImg.ptr + (gy * gw + gx) * c, count: c)
                }
            }
        }
        profile?.add("fea2gs.UPNet", .backward, since: tUp)
        // query = selfBlocks(q) + q
        if !gsSelfattnBlocks.isEmpty {
            let dResi = dq
            for i in stride(from: gsSelfattnBlocks.count - 1, through: 0, by: -1) {
                dq = timed(profile, "fea2gs.gs_selfattn_blocks.\(i)", .backward) {
                    gsSelfattnBlocks[i].backward(cx.selfBlocks[i], dOut: dq, env: env, grads: grads)
                }
            }
            dq = dq.adding(dResi)
        }
        for i in stride(from: windowCrossattnBlocks.count - 1, through: 0, by: -1) {
            dq = timed(profile, "fea2gs.window_crossattn_blocks.\(i)", .backward) {
                windowCrossattnBlocks[i].backward(cx.cross[i], dOut: dq, env: env, grads: grads)
            }
        }
        let tEmb = StepProfile.now()
        // The per-window copies of gs_embedding and pos_embedding: sum over windows.
        let seedCount = grid.seeds * c
        let dGs = grads.of(gsEmbedding), dPosE = grads.of(posEmbedding)
        withExtendedLifetime((dq, env, dGs, dPosE)) {
            for w in 0..<grid.windows {
                Kernels.add(dGs.ptr, dq.ptr + w * seedCount, seedCount)
                Kernels.add(dPosE.ptr, env.dPos.ptr + w * seedCount, seedCount)
            }
        }
        // Scale MLP: semb = W2·relu(W1·(1/s) + b1) + b2.
        scaleMlpBackward(cx, dOut: env.dScaleEmbedding, grads: grads)
        profile?.add(
            "fea2gs: scale MLP, embeddings, biases", .backward, since: tEmb)
        // img_feat_proj: conv → ReLU → conv.
        return timed(profile, "fea2gs.img_feat_proj", .backward) {
            let dFeat = env.dFeat.reshaped([cx.hp, cx.wp, c])
            let dF0 = imgFeatProj2.backward(input: cx.f0, height: cx.hp, width: cx.wp, dy: dFeat, grads: grads)!
            Kernels.reluBackward(dF0, output: cx.f0)
            return imgFeatProj0.backward(input: cx.features, height: cx.hp, width: cx.wp, dy: dF0, grads: grads)!
        }
    }

    func scaleMlpBackward(_ cx: Context, dOut ds: [Float], grads: Gradients) {
        let hdim = scaleMlp2.inFeatures, c = scaleMlp2.outFeatures
        let w2 = scaleMlp2.weight.ptr
        let dW2 = grads.of(scaleMlp2.weight).ptr, dB2 = grads.of(scaleMlp2.bias!).ptr
        var dh = [Float](repeating: 0, count: hdim)
        for o in 0..<c {
            dB2[o] += ds[o]
            for i in 0..<hdim {
                dW2[o * hdim + i] += ds[o] * cx.scaleHidden[i]
                dh[i] += w2[o * hdim + i] * ds[o]
            }
        }
        let dW1 = grads.of(scaleMlp0.weight).ptr, dB1 = grads.of(scaleMlp0.bias!).ptr
        for i in 0..<hdim where cx.scaleHidden[i] > 0 {
            dW1[i] += dh[i] * cx.inverseScale
            dB1[i] += dh[i]
        }
        withExtendedLifetime(self) {}
    }

    /// Backward of ``heads(_:gridHeight:gridWidth:)``. Chunks of tokens are processed in order;
    /// each recomputes its hidden activations (as the forward streams them), so the 4C-wide
    /// activations never exist for the whole grid. GEMMs inside a chunk are parallel.
    /// Reduction groups of ``headsBackward`` (the most workers it uses; each group holds one
    /// copy of the heads' weight gradients, about 0.4 MB at 64 channels).
    static let headsReductionGroups = 16

    func headsBackward(
        _ x: Tensor, gridHeight gh: Int, gridWidth gw: Int, dOut: Tensor, grads: Gradients, cache: HeadsCache? = nil
    ) -> Tensor {
        let c = config.channel
        let n = gh * gw
        let dx = Tensor(uninitialized: [n, c])
        let chunk = 1024
        let heads = [mlpBlockSigma, mlpBlockRho, mlpBlockAlpha, mlpBlockRgb, mlpBlockMean]
        let columns = [0, 2, 3, 4, 7]
        let fgw = Float(gw), fgh = Float(gh)
        // The heads recompute their activations chunk by chunk (as use_checkpoint would). The
        // chunks are dealt to a fixed number of reduction groups, which does not depend on the
        // thread count: group g takes chunks g, g + G, g + 2G, ... in order into its own weight
        // gradients, the workers take whole groups, and the groups are summed into `grads` in
        // group order. So the gradients are the same for any number of threads.
        let targets: [Tensor] =
            [grads.of(fusedHeadInput.weight), grads.of(fusedHeadInput.bias!)]
            + heads.flatMap {
                [grads.of($0.l2.weight), grads.of($0.l2.bias!), grads.of($0.l4.weight), grads.of($0.l4.bias!)]
            }
        let chunks = (n + chunk - 1) / chunk
        let groups = min(chunks, Self.headsReductionGroups)
        let workers = max(1, min(Parallel.threadCount, groups))
        let sizes = targets.map(\.count)
        let total = sizes.reduce(0, +)
        var offsets = [Int](repeating: 0, count: sizes.count)
        for i in 1..<sizes.count { offsets[i] = offsets[i - 1] + sizes[i - 1] }
        let local = UnsafeMutablePointer<Float>.allocate(capacity: groups * total)
        local.initialize(repeating: 0, count: groups * total)
        defer { local.deallocate() }
        withExtendedLifetime((x, dx, dOut, targets, heads, cache)) {
            let xp = x.ptr, dop = dOut.ptr, dxp = dx.ptr
            Parallel.workers(workers) { w in
                let h1Own = cache == nil ? UnsafeMutablePointer<Float>.allocate(capacity: chunk * 5 * c) : nil
                let dh1 = UnsafeMutablePointer<Float>.allocate(capacity: chunk * 5 * c)
                let h2Own = cache == nil ? UnsafeMutablePointer<Float>.allocate(capacity: chunk * 4 * c) : nil
                let dh2 = UnsafeMutablePointer<Float>.allocate(capacity: chunk * 4 * c)
                let dO = UnsafeMutablePointer<Float>.allocate(capacity: chunk * 3)
                defer { h1Own?.deallocate(); dh1.deallocate(); h2Own?.deallocate(); dh2.deallocate(); dO.deallocate() }
                for group in stride(from: w, to: groups, by: workers) {
                    let g = local + group * total
                    for ci in stride(from: group, to: chunks, by: groups) {
                        let r0 = ci * chunk, rows = min(chunk, n - r0)
                        let h1 = h1Own ?? (cache!.h1.ptr + r0 * 5 * c)
                        if cache == nil { headsFirstLayer(xp + r0 * c, rows: rows, into: h1) }
                        for (hi, head) in heads.enumerated() {
                            let h2 = h2Own ?? (cache!.h2[hi].ptr + r0 * 4 * c)
                            if cache == nil {
                                Fea2GS.headSecondLayer(head, h1 + hi * c, rows: rows, channel: c, into: h2)
                            }
                            let k = head.l4.outFeatures, col = columns[hi]
                            for r in 0..<rows {
                                for j in 0..<k { dO[r * k + j] = dop[(r0 + r) * 9 + col + j] }
                            }
                            if hi == 4 {  // mean = head / [gridW, gridH] + reference point
                                for r in 0..<rows {
                                    dO[r * 2] /= fgw
                                    dO[r * 2 + 1] /= fgh
                                }
                            }
                            let t = 2 + 4 * hi
                            Kernels.narrowLinearReluBackward(
                                h: h2, rows: rows, width: 4 * c, weight: head.l4.weight.ptr, outputs: k, dy: dO,
                                dh: dh2, dWeight: g + offsets[t + 2], dBias: g + offsets[t + 3])
                            Kernels.linearBackward(
                                x: h1 + hi * c, ldx: 5 * c, m: rows, k: c, weight: head.l2.weight.ptr, n: 4 * c,
                                dy: dh2,
                                ldy: 4 * c, dx: dh1 + hi * c, lddx: 5 * c, dWeight: g + offsets[t],
                                dBias: g + offsets[t + 1],
                                parallel: false)
                        }
                        Kernels.reluBackward(dh1, output: h1, rows * 5 * c)
                        Kernels.linearBackward(
                            x: xp + r0 * c, ldx: c, m: rows, k: c, weight: fusedHeadInput.weight.ptr, n: 5 * c, dy: dh1,
                            ldy: 5 * c, dx: dxp + r0 * c, lddx: c, dWeight: g + offsets[0], dBias: g + offsets[1],
                            parallel: false)
                    }
                }
            }
            for (i, t) in targets.enumerated() {
                let tp = t.ptr
                for group in 0..<groups {
                    let src = local + group * total + offsets[i]
                    for j in 0..<sizes[i] { tp[j] += src[j] }
                }
            }
        }
        return dx
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

extension Fea2GS: NetworkArchitecture {
    public static let officialName = "Fea2GS"

    /// The constructor arguments read from a decoder state dict:
    /// - channel, num_gs_seed: `gs_embedding` (num_gs_seed × channel);
    /// - inchannel: `img_feat_proj.0.weight`;
    /// - num_heads: columns of a `relative_position_bias_table`;
    /// - window_size: `window_cross_attn.relative_position_index` is (num_gs_seed × window²);
    /// - block and layer counts: the `{i}` indices present;
    /// - shuffle factors: `UPNet.0/2.weight` rows = channel · factor².
    public static func hyperparameters(inferredFrom sd: StateDict) throws -> Fea2GSConfig {
        func shape(_ k: String) throws -> [Int] {
            guard let t = sd[k] else { throw ModelLoadError("decoder: missing key '\(k)'") }
            return t.shape
        }
        func count(_ f: (Int) -> String) -> Int {
            var i = 0
            while sd[f(i)] != nil { i += 1 }
            return i
        }
        func isqrt(_ n: Int, _ what: String) throws -> Int {
            let r = Int(Double(n).squareRoot().rounded())
            guard r * r == n, r > 0 else { throw ModelLoadError("decoder: \(what) = \(n) is not a perfect square") }
            return r
        }
        let emb = try shape("gs_embedding")
        guard emb.count == 2 else { throw ModelLoadError("decoder: gs_embedding has shape \(emb), expected 2-D") }
        let numGsSeed = emb[0]
        let channel = emb[1]
        let proj = try shape("img_feat_proj.0.weight")
        guard proj.count == 4 else { throw ModelLoadError("decoder: img_feat_proj.0.weight has shape \(proj)") }
        let inchannel = proj[1]
        let numCrossattnBlocks = count { "window_crossattn_blocks.\($0).norm.weight" }
        let numSelfattnBlocks = count { "gs_selfattn_blocks.\($0).norm.weight" }
        let numCrossattnLayers = count { "window_crossattn_blocks.0.blocks.\($0).norm1.weight" }
        let numSelfattnLayers = count { "gs_selfattn_blocks.0.blocks.\($0).norm1.weight" }
        let crossPrefix = "window_crossattn_blocks.0.blocks.0.window_cross_attn."
        let numHeads: Int, windowSize: Int
        let rope = sd[crossPrefix + "rope_freqs"] != nil
        if rope {
            // Fea2GS_ROPE_AMP: heads from rope_freqs (2 × heads × head_dim/2); the cross
            // attention's raster is max(√seed, window) wide (rope_t_x holds its square). When
            // it equals √seed the window cannot be told from the keys (it is at most √seed):
            // it is taken as √seed, as in every released model, and config.json's window_size
            // overrides.
            let freqs = try shape(crossPrefix + "rope_freqs")
            guard freqs.count == 3, freqs[0] == 2 else {
                throw ModelLoadError("decoder: rope_freqs has shape \(freqs), expected [2, heads, head_dim/2]")
            }
            numHeads = freqs[1]
            let tx = try shape(crossPrefix + "rope_t_x")
            guard tx.count == 1 else { throw ModelLoadError("decoder: rope_t_x has shape \(tx)") }
            windowSize = try isqrt(tx[0], "the cross-attention RoPE raster")
        } else {
            let table = try shape(crossPrefix + "relative_position_bias_table")
            guard table.count == 2 else {
                throw ModelLoadError("decoder: relative_position_bias_table has shape \(table)")
            }
            numHeads = table[1]
            let index = try shape(crossPrefix + "relative_position_index")
            guard index.count == 2 else { throw ModelLoadError("decoder: relative_position_index has shape \(index)") }
            windowSize = try isqrt(index[1], "window area")
        }
        let up0 = try shape("UPNet.0.weight"), up2 = try shape("UPNet.2.weight")
        guard channel > 0, up0.count == 4, up2.count == 4, up0[0] % channel == 0, up2[0] % channel == 0 else {
            throw ModelLoadError("decoder: UPNet weights \(up0), \(up2) do not match channel \(channel)")
        }
        let shuffleScale1 = try isqrt(up0[0] / channel, "UPNet.0 factor²")
        let shuffleScale2 = try isqrt(up2[0] / channel, "UPNet.2 factor²")
        var cfg = Fea2GSConfig(
            inchannel: inchannel, channel: channel, numHeads: numHeads, numCrossattnBlocks: numCrossattnBlocks,
            numCrossattnLayers: numCrossattnLayers, numSelfattnBlocks: numSelfattnBlocks,
            numSelfattnLayers: numSelfattnLayers, numGsSeed: numGsSeed, windowSize: windowSize,
            shuffleScale1: shuffleScale1, shuffleScale2: shuffleScale2)
        cfg.rope = rope
        return cfg
    }
}
