import GSASRTensor

/// Gathers a relative-position bias table through a loaded index buffer into a dense
/// (heads × nq × nk) tensor, once at load time (the bias does not depend on the input).
/// Index values are validated against the table (checkpoints are untrusted).
func gatherRelativeBias(
    _ p: ParameterLoader, prefix: String, tableRows: Int, heads: Int, nq: Int, nk: Int
) throws -> Tensor {
    let table = try p.floats(prefix + "relative_position_bias_table", [tableRows, heads])
    let index = try p.ints(prefix + "relative_position_index", [nq, nk])
    let bias = Tensor(uninitialized: [heads, nq, nk])
    for i in 0..<nq * nk {
        let r = index[i]
        guard r >= 0, r < tableRows else {
            throw ModelLoadError(
                "\(p.fileLabel): '\(prefix)relative_position_index' holds \(r), outside the table's \(tableRows) rows")
        }
        for h in 0..<heads { bias.ptr[h * nq * nk + i] = table[Int(r) * heads + h] }
    }
    return bias
}

/// `WindowCrossAttn`: Gaussian tokens of a window (num_gs_seed queries) attend to the image
/// features of the same window (window² keys), with a learned relative-position bias.
///
/// The bias index buffer is loaded, not recomputed: the official construction uses Python set
/// iteration order and collides several offsets onto one entry.
public struct WindowCrossAttn: @unchecked Sendable {
    public let qhead: Linear, khead: Linear, vhead: Linear, proj: Linear
    public let bias: Tensor  // heads × nq × nk
    public let heads: Int
    /// khead and vhead stacked into one (2C × C) layer: one GEMM over the feature map.
    let kvhead: Linear

    init(_ p: ParameterLoader, _ prefix: String, _ cfg: Fea2GSConfig) throws {
        let c = cfg.channel
        qhead = try Linear(p, prefix + "qhead.", in: c, out: c)
        khead = try Linear(p, prefix + "khead.", in: c, out: c)
        vhead = try Linear(p, prefix + "vhead.", in: c, out: c)
        proj = try Linear(p, prefix + "proj.", in: c, out: c)
        kvhead = Linear(stacking: [khead, vhead])
        heads = cfg.numHeads
        let m = 2 * max(cfg.numGsSeedSqrt, cfg.windowSize) - 1
        bias = try gatherRelativeBias(
            p, prefix: prefix, tableRows: m * m, heads: heads, nq: cfg.numGsSeed, nk: cfg.windowSize * cfg.windowSize)
    }
}

/// `GSSelfAttn`: window self-attention among the Gaussian tokens of a window, with the
/// standard Swin relative-position bias (index buffer loaded from the checkpoint).
public struct GSSelfAttn: @unchecked Sendable {
    public let qhead: Linear, khead: Linear, vhead: Linear, proj: Linear
    public let bias: Tensor
    public let heads: Int
    /// qhead, khead and vhead stacked into one (3C × C) layer: one GEMM per layer.
    let qkvhead: Linear

    init(_ p: ParameterLoader, _ prefix: String, _ cfg: Fea2GSConfig) throws {
        let c = cfg.channel
        proj = try Linear(p, prefix + "proj.", in: c, out: c)
        qhead = try Linear(p, prefix + "qhead.", in: c, out: c)
        khead = try Linear(p, prefix + "khead.", in: c, out: c)
        vhead = try Linear(p, prefix + "vhead.", in: c, out: c)
        qkvhead = Linear(stacking: [qhead, khead, vhead])
        heads = cfg.numHeads
        let m = 2 * cfg.numGsSeedSqrt - 1
        bias = try gatherRelativeBias(
            p, prefix: prefix, tableRows: m * m, heads: heads, nq: cfg.numGsSeed, nk: cfg.numGsSeed)
    }
}
