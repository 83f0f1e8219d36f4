import Foundation
import GSASRCheckpoint
import GSASRTensor

/// HAT without its upsampler, with RoPE attention (`HATNOUP_ROPE_AMP` in the official
/// `hatropeamp.py`), the encoder of GSASR's "ultra" HAT-L model.
///
/// The outer structure is SwinIRNOUP's: `conv_first`, `patch_embed.norm`, residual hybrid
/// attention groups (`layers.{k}`, RHAG), `norm`, `conv_after_body(·) + x0`, then
/// LeakyReLU_0.01(`conv_before_upsample.0`) (64 channels). No mean subtraction, `img_range` 1.
///
/// - RHAG(t) = conv3×3(OCAB(HAB_1..HAB_d(t))) + t.
/// - HAB(t), n = norm1(t): x = t + attn(n) + conv_scale·CAB(n), then x + mlp(norm2(x)). The
///   attention: odd blocks roll n by −ws/2; ws × ws windows; `qkv`; RoPE on q and k (slot i at
///   position i); softmax(q·kᵀ/√d)·v with **no mask and no bias** (the official code computes
///   a mask and ignores it); `proj`; roll back. CAB = conv3×3 (C → C/compress), GELU, conv3×3
///   (→ C), channel attention (mean over the whole map, 1×1 → C/squeeze, ReLU, 1×1, sigmoid,
///   multiplied in). The mean spans the whole (padded) map, so tiles can only approximate it.
/// - OCAB(t), n = norm1(t), q|k|v = qkv(n): queries in ws × ws windows, keys and values in the
///   overlapping ows × ows patches around them (stride ws, **zero** padding (ows − ws)/2, zeros
///   after the projection), RoPE on a raster ows wide (key m of the patch at position m, query i
///   of the window at position i — the table's first entries, not its geometric place),
///   softmax(q·kᵀ/√d)·v, then proj(·) + t and + mlp(norm2(·)).
///
/// `relative_position_index_SA` and `_OCA` are in the checkpoint and unused: accepted, not
/// used. `conv_scale` (0.01 in the release) is not in the state dict: config.json's
/// `encoder.conv_scale` sets it. A constructor `img_size` ≤ window (no release) would turn the
/// shifts off and shrink the HAB window; that case is refused. Inference only.
public struct HATNOUP_ROPE_AMP: @unchecked Sendable {
    public struct Config: Codable, Sendable, Equatable {
        public var inChannels = 3
        public var embedDim: Int
        public var depths: [Int]
        public var numHeads: [Int]
        public var windowSize: Int
        public var overlapWindowSize: Int
        public var mlpHidden: Int
        public var ocabMlpHidden: Int
        public var cabHidden: Int
        public var channelAttentionHidden: Int
        public var convScale: Double = 0.01
        public var outChannels = 64
    }

    /// HAB's `attn` (RoPE window attention).
    public struct WindowAttention: @unchecked Sendable {
        public let rope: RotaryEmbedding
        public let qkv: Linear, proj: Linear
        public let heads: Int
        init(_ s: ParameterSource, dim: Int, heads: Int, window ws: Int) throws {
            self.heads = heads
            rope = try RotaryEmbedding(s, heads: heads, headDim: dim / heads, side: ws)
            qkv = try Linear(s("qkv"), in: dim, out: 3 * dim)
            proj = try Linear(s("proj"), in: dim, out: dim)
        }
    }

    /// `CAB`: conv, GELU, conv, channel attention (`cab.0`, `cab.2`, `cab.3.attention.1/3`).
    public struct CAB: @unchecked Sendable {
        public let conv0: Conv2d, conv2: Conv2d
        public let squeeze: Conv1x1, excite: Conv1x1
        init(_ s: ParameterSource, dim: Int, hidden: Int, attentionHidden: Int) throws {
            let cab = s("cab")
            conv0 = try Conv2d(cab(0), in: dim, out: hidden)
            conv2 = try Conv2d(cab(2), in: hidden, out: dim)
            squeeze = try Conv1x1(cab(3)("attention")(1), in: dim, out: attentionHidden)
            excite = try Conv1x1(cab(3)("attention")(3), in: attentionHidden, out: dim)
        }

        /// x: (h × w × C) → (h × w × C).
        package func callAsFunction(_ x: Tensor, height h: Int, width w: Int) -> Tensor {
            let a = conv0(x, height: h, width: w)
            Kernels.gelu(a)
            let y = conv2(a, height: h, width: w)
            let c = y.shape.last!, p = h * w
            // Channel attention: the mean over every pixel (float32 sums of each channel, in
            // pixel order), then the two 1×1 layers.
            var mean = [Float](repeating: 0, count: c)
            y.withPointer { yp in
                for i in 0..<p { for j in 0..<c { mean[j] += yp[i * c + j] } }
            }
            for j in 0..<c { mean[j] /= Float(p) }
            var s = squeeze.apply(mean)
            for j in s.indices { s[j] = max(s[j], 0) }
            var e = excite.apply(s)
            for j in e.indices { e[j] = 1 / (1 + Foundation.exp(-e[j])) }
            y.withPointer { yp in
                for i in 0..<p { for j in 0..<c { yp[i * c + j] *= e[j] } }
            }
            return y
        }
    }

    /// `HAB`.
    public struct HAB: @unchecked Sendable {
        public let norm1: LayerNorm, norm2: LayerNorm
        public let attn: WindowAttention
        public let convBlock: CAB
        public let mlp: GELUMLP
        public let shift: Int

        init(_ s: ParameterSource, _ cfg: Config, heads: Int, shift: Int) throws {
            self.shift = shift
            let d = cfg.embedDim
            norm1 = try LayerNorm(s("norm1"), dim: d)
            attn = try WindowAttention(s("attn"), dim: d, heads: heads, window: cfg.windowSize)
            convBlock = try CAB(
                s("conv_block"), dim: d, hidden: cfg.cabHidden, attentionHidden: cfg.channelAttentionHidden)
            norm2 = try LayerNorm(s("norm2"), dim: d)
            mlp = try GELUMLP(s("mlp"), in: d, hidden: cfg.mlpHidden)
        }

        package func callAsFunction(_ t: Tensor, height h: Int, width w: Int, window ws: Int, convScale: Float) -> Tensor {
            self(t, height: h, width: w, maps: SwinWindowMaps(height: h, width: w, window: ws), convScale: convScale)
        }

        /// With the window maps of the forward (computed once per size).
        func callAsFunction(_ t: Tensor, height h: Int, width w: Int, maps: SwinWindowMaps, convScale: Float) -> Tensor {
            let c = t.shape[1]
            let n = norm1(t)
            let convX = convBlock(n.reshaped([h, w, c]), height: h, width: w)
            let m = maps.maps(shift: shift, masked: false)
            let qkv = attn.qkv(n)
            // RoPE: the token at slot i of its (rolled) window at position i.
            let slot = m.slot
            qkv.withPointer { p in
                attn.rope.apply(p, ld: 3 * c, rows: h * w) { Int(slot[$0]) }
                attn.rope.apply(p + c, ld: 3 * c, rows: h * w) { Int(slot[$0]) }
            }
            let a = Kernels.swinAttention(
                qkv: qkv, channels: c, windows: m.windows, rows: m.rows, heads: attn.heads, bias: nil, masks: nil)
            let x = attn.proj(a)
            // x = (t + attn_x) + conv_x·conv_scale, in the official order.
            x.withPointer { xp in
                t.withPointer { tp in
                    convX.withPointer { cp in
                        for i in 0..<(h * w * c) { xp[i] = (tp[i] + xp[i]) + cp[i] * convScale }
                    }
                }
            }
            Kernels.add(x, mlp(norm2(x)))
            return x
        }
    }

    /// `OCAB`: overlapping cross-attention.
    public struct OCAB: @unchecked Sendable {
        public let rope: RotaryEmbedding
        public let norm1: LayerNorm, norm2: LayerNorm
        public let qkv: Linear, proj: Linear
        public let mlp: GELUMLP
        public let heads: Int

        init(_ s: ParameterSource, _ cfg: Config, heads: Int) throws {
            let d = cfg.embedDim
            self.heads = heads
            rope = try RotaryEmbedding(
                s, heads: heads, headDim: d / heads, side: max(cfg.windowSize, cfg.overlapWindowSize))
            norm1 = try LayerNorm(s("norm1"), dim: d)
            qkv = try Linear(s("qkv"), in: d, out: 3 * d)
            proj = try Linear(s("proj"), in: d, out: d)
            norm2 = try LayerNorm(s("norm2"), dim: d)
            mlp = try GELUMLP(s("mlp"), in: d, hidden: cfg.ocabMlpHidden)
        }

        package func callAsFunction(_ t: Tensor, height h: Int, width w: Int, window ws: Int, overlap ows: Int) -> Tensor {
            self(t, height: h, width: w, maps: SwinWindowMaps(height: h, width: w, window: ws), overlap: ows)
        }

        /// With the window maps of the forward (computed once per size).
        func callAsFunction(_ t: Tensor, height h: Int, width w: Int, maps: SwinWindowMaps, overlap ows: Int) -> Tensor {
            let c = t.shape[1], ws = maps.window
            let qkvT = qkv(norm1(t))
            let plain = maps.maps(shift: 0, masked: false)
            let win = plain.windows, rows = plain.rows
            let pad = (ows - ws) / 2, area = ows * ows
            let windows = win.count
            // Per window: the ows × ows patch of k and v (zeros outside the map), k rotated
            // (key m at position m of the ows-wide raster).
            let kv = Tensor(zeros: [windows * area, 2 * c])
            let side = max(ws, ows)
            kv.withPointer { kp in
                qkvT.withPointer { src in
                    Parallel.forEach(windows) { wi in
                        let m = wi / win.colsOfWindows, n = wi % win.colsOfWindows
                        for a in 0..<ows {
                            let y = m * ws - pad + a
                            if y < 0 || y >= h { continue }
                            for b in 0..<ows {
                                let x = n * ws - pad + b
                                if x < 0 || x >= w { continue }
                                (kp + (wi * area + a * ows + b) * 2 * c).update(from: src + (y * w + x) * 3 * c + c, count: 2 * c)
                            }
                        }
                        rope.apply(kp + wi * area * 2 * c, ld: 2 * c, rows: area) { r in (r / ows) * side + r % ows }
                    }
                    // Queries: slot i of each window at position i.
                    let slot = plain.slot
                    rope.apply(src, ld: 3 * c, rows: h * w) { Int(slot[$0]) }
                }
            }
            let out = Tensor(uninitialized: [h * w, c])
            let kRows = (0..<Int32(windows * area)).map { $0 }
            qkvT.withPointer { q in
                kv.withPointer { k in
                    out.withPointer { o in
                        Kernels.windowAttention(
                            q: q, k: k, v: k + c, channels: c, ldQ: 3 * c, ldKV: 2 * c, ldOut: c, qRows: rows,
                            kRows: kRows, windows: windows, nq: ws * ws, nk: area, heads: heads, bias: nil, out: o)
                    }
                }
            }
            let x = proj(out)
            Kernels.add(x, t)
            Kernels.add(x, mlp(norm2(x)))
            return x
        }
    }

    /// `RHAG`: `residual_group.blocks.{j}` (HABs), `residual_group.overlap_attn` (OCAB), `conv`.
    public struct RHAG: @unchecked Sendable {
        public let blocks: [HAB]
        public let overlapAttn: OCAB
        public let conv: Conv2d
        init(_ s: ParameterSource, _ cfg: Config, depth: Int, heads: Int) throws {
            let g = s("residual_group")
            blocks = try (0..<depth).map { j in
                try HAB(g("blocks")(j), cfg, heads: heads, shift: j % 2 == 1 ? cfg.windowSize / 2 : 0)
            }
            overlapAttn = try OCAB(g("overlap_attn"), cfg, heads: heads)
            conv = try Conv2d(s("conv"), in: cfg.embedDim, out: cfg.embedDim)
        }
    }

    public let config: Config
    public let convFirst: Conv2d
    public let patchNorm: LayerNorm
    public let layers: [RHAG]
    public let norm: LayerNorm
    public let convAfterBody: Conv2d
    public let convBeforeUpsample: Conv2d

    /// The declaration, in `state_dict()` order.
    public init(_ s: ParameterSource, config cfg: Config) throws {
        guard cfg.depths.count == cfg.numHeads.count,
            cfg.numHeads.allSatisfy({ $0 >= 1 && cfg.embedDim % $0 == 0 && (cfg.embedDim / $0) % 4 == 0 })
        else {
            throw ModelLoadError(
                "HAT: embed_dim \(cfg.embedDim) does not split into heads \(cfg.numHeads) of a multiple of 4 channels")
        }
        guard cfg.overlapWindowSize >= cfg.windowSize, (cfg.overlapWindowSize - cfg.windowSize) % 2 == 0 else {
            throw ModelLoadError("HAT: overlap window \(cfg.overlapWindowSize) does not fit window \(cfg.windowSize)")
        }
        config = cfg
        let ws = cfg.windowSize, ows = cfg.overlapWindowSize
        _ = try s.buffer("relative_position_index_SA", [ws * ws, ws * ws]) {
            SwinWindows.relativePositionIndex(window: ws)
        }
        _ = try s.buffer("relative_position_index_OCA", [ws * ws, ows * ows]) {
            HATNOUP_ROPE_AMP.overlapIndex(window: ws, overlap: ows)
        }
        let d = cfg.embedDim
        convFirst = try Conv2d(s("conv_first"), in: cfg.inChannels, out: d)
        patchNorm = try LayerNorm(s("patch_embed")("norm"), dim: d)
        layers = try cfg.depths.indices.map {
            try RHAG(s("layers")($0), cfg, depth: cfg.depths[$0], heads: cfg.numHeads[$0])
        }
        norm = try LayerNorm(s("norm"), dim: d)
        convAfterBody = try Conv2d(s("conv_after_body"), in: d, out: d)
        convBeforeUpsample = try Conv2d(s("conv_before_upsample")(0), in: d, out: cfg.outChannels)
    }

    /// The official `calculate_rpi_oca` (unused at inference; a from-scratch model's buffer).
    static func overlapIndex(window ws: Int, overlap ows: Int) -> [Int64] {
        var r = [Int64](repeating: 0, count: ws * ws * ows * ows)
        for i in 0..<(ws * ws) {
            for j in 0..<(ows * ows) {
                let dy = j / ows - i / ws + ws - ows + 1, dx = j % ows - i % ws + ws - ows + 1
                r[i * ows * ows + j] = Int64(dy * (ws + ows - 1) + dx)
            }
        }
        return r
    }

    /// x: (h × w × 3) → (h × w × 64); h and w multiples of the window.
    public func forward(
        _ x: Tensor, height h: Int, width w: Int, step: (_ done: Int, _ total: Int) throws -> Void
    ) rethrows -> Tensor {
        let ws = config.windowSize, d = config.embedDim
        precondition(h % ws == 0 && w % ws == 0, "HAT: the size must be a multiple of the window")
        let x0 = convFirst(x, height: h, width: w)
        var t = patchNorm(x0.reshaped([h * w, d]))
        let scale = Float(config.convScale)
        let maps = SwinWindowMaps(height: h, width: w, window: ws)
        for (i, layer) in layers.enumerated() {
            t = SwinOuterPath.residualGroup(t, height: h, width: w, conv: layer.conv) { t in
                let u = layer.blocks.reduce(t) { u, block in block(u, height: h, width: w, maps: maps, convScale: scale) }
                return layer.overlapAttn(u, height: h, width: w, maps: maps, overlap: config.overlapWindowSize)
            }
            try step(i + 1, layers.count)
        }
        return SwinOuterPath.reconstruct(
            t, x0: x0, height: h, width: w, norm: norm, convAfterBody: convAfterBody,
            convBeforeUpsample: convBeforeUpsample)
    }
}

extension HATNOUP_ROPE_AMP: InferenceOnlyEncoder {
    public static let officialName = "HATNOUP_ROPE_AMP"

    /// embed_dim and input channels from `conv_first`; depths from the HABs present; heads from
    /// each HAB's `rope_freqs`; the window from its `rope_t_x` (ws²), the overlap window from the
    /// OCAB's (ows²); the MLP, CAB and channel-attention widths from their weights.
    public static func hyperparameters(inferredFrom sd: StateDict) throws -> Config {
        func shape(_ k: String) throws -> [Int] { try SwinOuterPath.shape(sd, k) }
        func square(_ n: Int, _ what: String) throws -> Int {
            let r = Int(Double(n).squareRoot().rounded())
            guard r >= 1, r * r == n else { throw ModelLoadError("\(what) holds \(n) positions, not a square") }
            return r
        }
        guard sd["relative_position_index_SA"] != nil else { throw ModelLoadError("no key 'relative_position_index_SA'") }
        let first = try shape("conv_first.weight")
        guard first.count == 4, first[2] == 3, first[3] == 3 else {
            throw ModelLoadError("'conv_first.weight' has shape \(first), expected [embed_dim, 3, 3, 3]")
        }
        let (depths, heads) = try SwinOuterPath.depthsAndHeads(sd) { l in
            let f = try shape("layers.\(l).residual_group.blocks.0.attn.rope_freqs")
            guard f.count == 3, f[0] == 2 else { throw ModelLoadError("a HAB rope_freqs has shape \(f)") }
            return f[1]
        }
        let b = "layers.0.residual_group.blocks.0."
        let ws = try square(try shape(b + "attn.rope_t_x").first ?? 0, "'\(b)attn.rope_t_x'")
        let ows = try square(
            try shape("layers.0.residual_group.overlap_attn.rope_t_x").first ?? 0, "the OCAB's rope_t_x")
        let cfg = Config(
            inChannels: first[1], embedDim: first[0], depths: depths, numHeads: heads, windowSize: ws,
            overlapWindowSize: ows, mlpHidden: try shape(b + "mlp.fc1.weight").first ?? 0,
            ocabMlpHidden: try shape("layers.0.residual_group.overlap_attn.mlp.fc1.weight").first ?? 0,
            cabHidden: try shape(b + "conv_block.cab.0.weight").first ?? 0,
            channelAttentionHidden: try shape(b + "conv_block.cab.3.attention.1.weight").first ?? 0,
            outChannels: try shape("conv_before_upsample.0.weight").first ?? 0)
        for (name, v) in [
            ("embed_dim", cfg.embedDim), ("in_chans", cfg.inChannels), ("window_size", ws), ("overlap window", ows),
            ("mlp width", cfg.mlpHidden), ("OCAB mlp width", cfg.ocabMlpHidden), ("CAB width", cfg.cabHidden),
            ("channel attention width", cfg.channelAttentionHidden), ("out channels", cfg.outChannels),
        ] where v < 1 || v > ModelConfigFile.maxInt {
            throw ModelLoadError("HAT \(name) \(v) is outside 1...\(ModelConfigFile.maxInt)")
        }
        guard ws * ws * ows * ows <= 1 << 24 else { throw ModelLoadError("HAT windows \(ws)/\(ows) are too large") }
        return cfg
    }

    /// config.json's `conv_scale` (not in the state dict; 0.01 in the release); an `img_size`
    /// no larger than the window (which would disable the shifts) is refused.
    public static func override(_ config: inout Config, with numbers: [String: Double]) throws {
        if let s = numbers["conv_scale"] { config.convScale = s }
        if let img = numbers["img_size"], Int(img) <= config.windowSize {
            throw ModelLoadError(
                "config.json: HAT img_size \(Int(img)) ≤ window_size \(config.windowSize) (no shifts, a smaller window) is not supported")
        }
    }

    public var inChannels: Int { config.inChannels }
    public var outChannels: Int { config.outChannels }
    public var windowSize: Int? { config.windowSize }
    /// Four windows and a pixel per convolution of the outer path (see
    /// ``EncoderArchitecture/tilingContext``).
    public static var tilingWindows = 4
    public var tilingContext: Int { min(reach, Self.tilingWindows * config.windowSize + 3 + layers.count) }
    /// An upper bound: one pixel per 3×3 conv (two per CAB), ws − 1 per HAB and (ows + ws)/2
    /// per OCAB. The channel attention's mean is global: tiles approximate it.
    public var reach: Int {
        let blocks = config.depths.reduce(0, +)
        return 3 + layers.count * (1 + (config.overlapWindowSize + config.windowSize) / 2)
            + blocks * (config.windowSize - 1 + 2)
    }

    public func flops(height h: Int, width w: Int) -> Double {
        let p = Double(h * w), d = Double(config.embedDim), n = Double(config.windowSize * config.windowSize)
        let cab = 2 * p * 9 * 2 * d * Double(config.cabHidden)
        let hab = 2 * p * (4 * d * d + 2 * d * Double(config.mlpHidden)) + 4 * p * n * d + cab
        let ocab = 2 * p * (4 * d * d + 2 * d * Double(config.ocabMlpHidden))
            + 4 * p * Double(config.overlapWindowSize * config.overlapWindowSize) * d
        let convs = 2 * p * 9 * (Double(config.inChannels) * d + Double(layers.count + 1) * d * d + d * Double(config.outChannels))
        return convs + Double(config.depths.reduce(0, +)) * hab + Double(layers.count) * ocab
    }

    /// Tokens, qkv (3C), the MLP hidden, the OCAB's gathered keys and values (4.5C at ows = 1.5
    /// ws), the CAB's maps and a residual copy.
    public func workingFloats(height h: Int, width w: Int) -> Double {
        let ratio = Double(config.overlapWindowSize * config.overlapWindowSize) / Double(config.windowSize * config.windowSize)
        return Double(h * w)
            * (Double(7 * config.embedDim + max(config.mlpHidden, config.ocabMlpHidden)) + 2 * ratio * Double(config.embedDim)
                + Double(config.outChannels))
    }

    public var configArguments: [String: ArgumentValue] {
        [
            "in_chans": .int(config.inChannels), "embed_dim": .int(config.embedDim), "depths": .ints(config.depths),
            "num_heads": .ints(config.numHeads), "window_size": .int(config.windowSize),
            "overlap_ratio": .number(Double(config.overlapWindowSize - config.windowSize) / Double(config.windowSize)),
            "mlp_ratio": .number(Double(config.mlpHidden) / Double(config.embedDim)),
            "compress_ratio": .number(Double(config.embedDim) / Double(config.cabHidden)),
            "squeeze_factor": .number(Double(config.embedDim) / Double(config.channelAttentionHidden)),
            "conv_scale": .number(config.convScale),
        ]
    }
}
