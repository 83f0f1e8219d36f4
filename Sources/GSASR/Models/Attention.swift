import GSASRTensor

/// Gathers a relative-position bias table through a loaded index buffer into a dense
/// (heads × nq × nk) tensor, once at load time (the bias does not depend on the input).
/// Index values are validated against the table (checkpoints are untrusted).
/// A relative-position bias: the learned table (the parameter), the loaded index buffer and the
/// dense (heads × nq × nk) bias gathered from them.
public struct RelativePositionBias: @unchecked Sendable {
    /// (tableRows × heads), the parameter `relative_position_bias_table`.
    public let table: Tensor
    /// (nq·nk) row indices into the table, the buffer `relative_position_index` (validated).
    public let index: [Int32]
    /// (heads × nq × nk), gathered from the table. Refreshed by ``refresh()`` after the table
    /// changes (the trainer does so at the start of every training forward).
    public let bias: Tensor
    public let heads: Int, nq: Int, nk: Int

    init(_ p: ParameterLoader, prefix: String, tableRows: Int, heads: Int, nq: Int, nk: Int) throws {
        table = Tensor(
            shape: [tableRows, heads], values: try p.floats(prefix + "relative_position_bias_table", [tableRows, heads]))
        let idx = try p.ints(prefix + "relative_position_index", [nq, nk])
        var index = [Int32](repeating: 0, count: nq * nk)
        for i in 0..<nq * nk {
            let r = idx[i]
            guard r >= 0, r < tableRows else {
                throw ModelLoadError(
                    "\(p.fileLabel): '\(prefix)relative_position_index' holds \(r), outside the table's \(tableRows) rows")
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
/// The bias index buffer is loaded, not recomputed: the official construction uses Python set
/// iteration order and collides several offsets onto one entry.
public struct WindowCrossAttn: @unchecked Sendable {
    public let qhead: Linear, khead: Linear, vhead: Linear, proj: Linear
    public let relativePosition: RelativePositionBias
    public var bias: Tensor { relativePosition.bias }  // heads × nq × nk
    public let heads: Int
    /// khead and vhead stacked into one (2C × C) layer: one GEMM over the feature map.
    /// `khead` and `vhead` are row views of it (one copy of the weights).
    let kvhead: Linear

    init(_ p: ParameterLoader, _ prefix: String, _ cfg: Fea2GSConfig) throws {
        let c = cfg.channel
        let m = 2 * max(cfg.numGsSeedSqrt, cfg.windowSize) - 1
        heads = cfg.numHeads
        relativePosition = try RelativePositionBias(
            p, prefix: prefix, tableRows: m * m, heads: heads, nq: cfg.numGsSeed, nk: cfg.windowSize * cfg.windowSize)
        qhead = try Linear(p, prefix + "qhead.", in: c, out: c)
        let k = try Linear(p, prefix + "khead.", in: c, out: c)
        let v = try Linear(p, prefix + "vhead.", in: c, out: c)
        kvhead = Linear(stacking: [k, v])
        let views = kvhead.split([c, c])
        khead = views[0]
        vhead = views[1]
        proj = try Linear(p, prefix + "proj.", in: c, out: c)
    }
}

/// `GSSelfAttn`: window self-attention among the Gaussian tokens of a window, with the
/// standard Swin relative-position bias (index buffer loaded from the checkpoint).
public struct GSSelfAttn: @unchecked Sendable {
    public let qhead: Linear, khead: Linear, vhead: Linear, proj: Linear
    public let relativePosition: RelativePositionBias
    public var bias: Tensor { relativePosition.bias }
    public let heads: Int
    /// qhead, khead and vhead stacked into one (3C × C) layer: one GEMM per layer. The three
    /// official projections are row views of it.
    let qkvhead: Linear

    init(_ p: ParameterLoader, _ prefix: String, _ cfg: Fea2GSConfig) throws {
        let c = cfg.channel
        proj = try Linear(p, prefix + "proj.", in: c, out: c)
        let m = 2 * cfg.numGsSeedSqrt - 1
        heads = cfg.numHeads
        relativePosition = try RelativePositionBias(
            p, prefix: prefix, tableRows: m * m, heads: heads, nq: cfg.numGsSeed, nk: cfg.numGsSeed)
        let q = try Linear(p, prefix + "qhead.", in: c, out: c)
        let k = try Linear(p, prefix + "khead.", in: c, out: c)
        let v = try Linear(p, prefix + "vhead.", in: c, out: c)
        qkvhead = Linear(stacking: [q, k, v])
        let views = qkvhead.split([c, c, c])
        qhead = views[0]
        khead = views[1]
        vhead = views[2]
    }
}
