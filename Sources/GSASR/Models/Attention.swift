import GSASRTensor

/// A relative-position bias: the learned table (the parameter `relative_position_bias_table`),
/// the index buffer (`relative_position_index`) and the dense (heads × nq × nk) bias gathered
/// from them once (the bias does not depend on the input). Index values are validated against
/// the table (checkpoints are untrusted).
public struct RelativePositionBias: @unchecked Sendable {
    /// (tableRows × heads), the parameter `relative_position_bias_table`.
    public let table: Tensor
    /// (nq·nk) row indices into the table, the buffer `relative_position_index` (validated).
    public let index: [Int32]
    /// (heads × nq × nk), gathered from the table. Refreshed by ``refresh()`` after the table
    /// changes (a saving forward does so first: the optimiser updates the tables).
    public let bias: Tensor
    public let heads: Int, nq: Int, nk: Int

    /// Declares the table (`trunc_normal_(std=0.02)`, as the official constructors end with)
    /// and the index buffer (`official`: the values the official constructor computes).
    init(
        _ s: ParameterSource, tableRows: Int, heads: Int, nq: Int, nk: Int, official: () throws -> [Int64]
    ) throws {
        table = try s.parameter(
            "relative_position_bias_table", [tableRows, heads], .truncatedNormal(std: 0.02, bound: 2))
        let idx = try s.buffer("relative_position_index", [nq, nk], official: official)
        var index = [Int32](repeating: 0, count: nq * nk)
        for i in 0..<nq * nk {
            let r = idx[i]
            guard r >= 0, r < tableRows else {
                throw ModelLoadError(
                    "\(s.label): '\(s.prefix)relative_position_index' holds \(r), outside the table's \(tableRows) rows"
                )
            }
            index[i] = Int32(r)
        }
        self.index = index
        self.heads = heads
        self.nq = nq
        self.nk = nk
        bias = Tensor(uninitialized: [heads, nq, nk])
        refresh()
    }

    /// bias[h, i] = table[index[i], h].
    public func refresh() {
        let b = bias.ptr, t = table.ptr
        for i in 0..<nq * nk {
            let r = Int(index[i])
            for h in 0..<heads { b[h * nq * nk + i] = t[r * heads + h] }
        }
    }

    /// Backward of the gather: dTable[index[i], h] += dBias[h, i] (in order of i).
    package func backward(dBias: UnsafePointer<Float>, dTable: Tensor) {
        let g = dTable.ptr
        for i in 0..<nq * nk {
            let r = Int(index[i])
            for h in 0..<heads { g[r * heads + h] += dBias[h * nq * nk + i] }
        }
    }

    /// The index buffer as the int64 tensor of the state dict.
    public var indexInt64: [Int64] { index.map { Int64($0) } }
}

/// `WindowCrossAttn`: Gaussian tokens of a window (num_gs_seed queries) attend to the image
/// features of the same window (window² keys), with a learned relative-position bias.
///
/// The bias index buffer is loaded from the checkpoint, not recomputed (the official construction
/// uses Python set iteration order and collides several offsets onto one entry); a from-scratch
/// model computes it as that construction does (``GSASRInitialization/crossAttentionIndex(seedSide:windowSize:)``).
///
/// In `Fea2GS_ROPE_AMP` there is no bias: q and k get a ``RotaryEmbedding`` instead (query i at
/// position i, key j at position j of a raster max(√seed, window) wide), and the attention is
/// plain softmax(q·kᵀ/√d)·v.
public struct WindowCrossAttn: @unchecked Sendable {
    public let qhead: Linear, khead: Linear, vhead: Linear, proj: Linear
    /// The paper decoder's relative-position bias (nil in the RoPE decoder).
    public let relativePosition: RelativePositionBias?
    /// The RoPE decoder's rotary embedding (nil in the paper decoder).
    public let rope: RotaryEmbedding?
    public var bias: Tensor? { relativePosition?.bias }  // heads × nq × nk
    public let heads: Int
    /// khead and vhead stacked into one (2C × C) layer: one GEMM over the feature map.
    /// `khead` and `vhead` are row views of it (one copy of the weights).
    let kvhead: Linear

    init(_ s: ParameterSource, _ cfg: Fea2GSConfig) throws {
        let c = cfg.channel
        let side = max(cfg.numGsSeedSqrt, cfg.windowSize)
        let m = 2 * side - 1
        heads = cfg.numHeads
        if cfg.rope {
            rope = try RotaryEmbedding(s, heads: heads, headDim: c / heads, side: side)
            relativePosition = nil
        } else {
            relativePosition = try RelativePositionBias(
                s, tableRows: m * m, heads: heads, nq: cfg.numGsSeed, nk: cfg.windowSize * cfg.windowSize,
                official: { try WindowCrossAttn.officialIndex(cfg) })
            rope = nil
        }
        qhead = try Linear(s("qhead"), in: c, out: c)
        let (kv, views) = Linear.stacked(s, in: c, outs: [c, c])
        khead = try Linear(s("khead"), in: c, out: c, into: views[0])
        vhead = try Linear(s("vhead"), in: c, out: c, into: views[1])
        kvhead = kv
        proj = try Linear(s("proj"), in: c, out: c)
    }

    /// The official index buffer (``GSASRInitialization/crossAttentionIndex(seedSide:windowSize:)``),
    /// refused when it would address rows past the table.
    static func officialIndex(_ cfg: Fea2GSConfig) throws -> [Int64] {
        let s = cfg.numGsSeedSqrt, ws = cfg.windowSize, m = 2 * max(s, ws) - 1
        let index = try GSASRInitialization.crossAttentionIndex(seedSide: s, windowSize: ws)
        guard let top = index.max(), top < Int64(m * m) else {
            throw ModelLoadError(
                "decoder: the official relative-position index for num_gs_seed \(cfg.numGsSeed) and window \(ws) exceeds its table (\(m * m) rows)"
            )
        }
        return index
    }
}

/// `GSSelfAttn`: window self-attention among the Gaussian tokens of a window, with the
/// standard Swin relative-position bias (index buffer loaded from the checkpoint, or computed
/// from scratch: ``GSASRInitialization/selfAttentionIndex(seedSide:)``).
///
/// In `Fea2GS_ROPE_AMP` a ``RotaryEmbedding`` of the window's seed raster (token i at position i)
/// replaces the bias.
public struct GSSelfAttn: @unchecked Sendable {
    public let qhead: Linear, khead: Linear, vhead: Linear, proj: Linear
    public let relativePosition: RelativePositionBias?
    public let rope: RotaryEmbedding?
    public var bias: Tensor? { relativePosition?.bias }
    public let heads: Int
    /// qhead, khead and vhead stacked into one (3C × C) layer: one GEMM per layer. The three
    /// official projections are row views of it.
    let qkvhead: Linear

    init(_ s: ParameterSource, _ cfg: Fea2GSConfig) throws {
        let c = cfg.channel
        let m = 2 * cfg.numGsSeedSqrt - 1
        heads = cfg.numHeads
        if cfg.rope {
            rope = try RotaryEmbedding(s, heads: heads, headDim: c / heads, side: cfg.numGsSeedSqrt)
            relativePosition = nil
        } else {
            relativePosition = try RelativePositionBias(
                s, tableRows: m * m, heads: heads, nq: cfg.numGsSeed, nk: cfg.numGsSeed,
                official: { GSASRInitialization.selfAttentionIndex(seedSide: cfg.numGsSeedSqrt) })
            rope = nil
        }
        proj = try Linear(s("proj"), in: c, out: c)
        let (qkv, views) = Linear.stacked(s, in: c, outs: [c, c, c])
        qhead = try Linear(s("qhead"), in: c, out: c, into: views[0])
        khead = try Linear(s("khead"), in: c, out: c, into: views[1])
        vhead = try Linear(s("vhead"), in: c, out: c, into: views[2])
        qkvhead = qkv
    }
}
