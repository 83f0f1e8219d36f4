import GSASRCheckpoint
import GSASRTensor

/// SwinIR without its upsampler (`SwinIRNOUP` in the official `swinir.py`), the encoder of
/// GSASR's SwinIR models (paper and enhanced).
///
///   x0 = conv_first(img);  t = patch_embed.norm(x0 as tokens)
///   t = RSTB_k(t) for each layer:  RSTB(t) = conv3×3(blocks(t)) + t
///   y = LeakyReLU_0.01(conv_before_upsample.0(conv_after_body(norm(t)) + x0))   (64 channels)
///
/// A Swin block: t + proj(attn(norm1(t))), then + mlp(norm2(·)) (fc2(GELU_erf(fc1))). Odd blocks
/// (index within their RSTB) roll the map by −ws/2 first and mask the wrapped regions (−100);
/// the attention is softmax(q·kᵀ/√d + B + M)·v with the relative-position bias B.
///
/// There is no mean subtraction (the SwinIR class in the same file has one; this one does not)
/// and `img_range` is 1. Everything is read from the state dict: dim and input channels from
/// `conv_first`, the depths from the blocks present, heads from each bias table, the window from
/// its rows ((2ws − 1)²), the MLP width from `fc1`, and whether odd blocks shift from their
/// `attn_mask` buffer (a constructor with `img_size` ≤ window makes none and uses window =
/// img_size, which the table then shows). The buffer itself (for `img_size`²) is accepted and
/// not used: masks are computed for the run-time size, as the official code does whenever the
/// size differs (and they are equal when it does not). Inference only.
public struct SwinIRNOUP: @unchecked Sendable {
    public struct Config: Codable, Sendable, Equatable {
        public var inChannels = 3
        public var embedDim: Int
        public var depths: [Int]
        public var numHeads: [Int]
        public var windowSize: Int
        public var mlpHidden: Int
        /// Whether odd blocks shift (false when the constructor's img_size ≤ window).
        public var shifted: Bool
        /// The `attn_mask` buffers' window count (img_size² / window²), 0 when there are none.
        public var maskWindows: Int
        public var outChannels = 64
    }

    /// Swin `WindowAttention`: relative-position bias, `qkv` (one Linear, [q|k|v]), `proj`.
    public struct WindowAttention: @unchecked Sendable {
        public let relativePosition: RelativePositionBias
        public let qkv: Linear, proj: Linear
        public let heads: Int
        init(_ s: ParameterSource, dim: Int, heads: Int, window ws: Int) throws {
            self.heads = heads
            let m = 2 * ws - 1
            relativePosition = try RelativePositionBias(
                s, tableRows: m * m, heads: heads, nq: ws * ws, nk: ws * ws,
                official: { SwinWindows.relativePositionIndex(window: ws) })
            qkv = try Linear(s("qkv"), in: dim, out: 3 * dim)
            proj = try Linear(s("proj"), in: dim, out: dim)
        }
    }

    /// `SwinTransformerBlock`.
    public struct SwinTransformerBlock: @unchecked Sendable {
        public let norm1: LayerNorm, norm2: LayerNorm
        public let attn: WindowAttention
        public let mlp: GELUMLP
        public let shift: Int

        init(_ s: ParameterSource, _ cfg: Config, heads: Int, shift: Int) throws {
            self.shift = shift
            if shift > 0 {
                let ws = cfg.windowSize, n = cfg.maskWindows
                _ = try s.floatBuffer("attn_mask", [n, ws * ws, ws * ws]) {
                    let side = Int(Double(n).squareRoot().rounded()) * ws
                    return SwinWindows.officialMaskBuffer(imageSize: side, window: ws)
                }
            }
            norm1 = try LayerNorm(s("norm1"), dim: cfg.embedDim)
            attn = try WindowAttention(s("attn"), dim: cfg.embedDim, heads: heads, window: cfg.windowSize)
            norm2 = try LayerNorm(s("norm2"), dim: cfg.embedDim)
            mlp = try GELUMLP(s("mlp"), in: cfg.embedDim, hidden: cfg.mlpHidden)
        }

        /// t: tokens (h·w × C) → the block's output (a new tensor).
        package func callAsFunction(_ t: Tensor, height h: Int, width w: Int, window ws: Int) -> Tensor {
            self(t, maps: SwinWindowMaps(height: h, width: w, window: ws))
        }

        /// With the window maps of the forward (computed once per size).
        func callAsFunction(_ t: Tensor, maps: SwinWindowMaps) -> Tensor {
            let c = t.shape[1]
            let m = maps.maps(shift: shift, masked: true)
            let qkv = attn.qkv(norm1(t))
            let a = Kernels.swinAttention(
                qkv: qkv, channels: c, windows: m.windows, rows: m.rows, heads: attn.heads,
                bias: attn.relativePosition.bias, masks: m.masks)
            let x = attn.proj(a)
            Kernels.add(x, t)
            Kernels.add(x, mlp(norm2(x)))
            return x
        }
    }

    /// `RSTB`: `residual_group.blocks.{j}` and the closing `conv` ('1conv').
    public struct RSTB: @unchecked Sendable {
        public let blocks: [SwinTransformerBlock]
        public let conv: Conv2d
        init(_ s: ParameterSource, _ cfg: Config, depth: Int, heads: Int) throws {
            blocks = try (0..<depth).map { j in
                try SwinTransformerBlock(
                    s("residual_group")("blocks")(j), cfg, heads: heads,
                    shift: j % 2 == 1 && cfg.shifted ? cfg.windowSize / 2 : 0)
            }
            conv = try Conv2d(s("conv"), in: cfg.embedDim, out: cfg.embedDim)
        }
    }

    public let config: Config
    public let convFirst: Conv2d
    public let patchNorm: LayerNorm
    public let layers: [RSTB]
    public let norm: LayerNorm
    public let convAfterBody: Conv2d
    public let convBeforeUpsample: Conv2d

    /// The declaration, in `state_dict()` order.
    public init(_ s: ParameterSource, config cfg: Config) throws {
        guard cfg.depths.count == cfg.numHeads.count, cfg.numHeads.allSatisfy({ $0 >= 1 && cfg.embedDim % $0 == 0 })
        else { throw ModelLoadError("SwinIR: embed_dim \(cfg.embedDim) is not divisible by the heads \(cfg.numHeads)") }
        config = cfg
        let d = cfg.embedDim
        convFirst = try Conv2d(s("conv_first"), in: cfg.inChannels, out: d)
        patchNorm = try LayerNorm(s("patch_embed")("norm"), dim: d)
        layers = try cfg.depths.indices.map {
            try RSTB(s("layers")($0), cfg, depth: cfg.depths[$0], heads: cfg.numHeads[$0])
        }
        norm = try LayerNorm(s("norm"), dim: d)
        convAfterBody = try Conv2d(s("conv_after_body"), in: d, out: d)
        convBeforeUpsample = try Conv2d(s("conv_before_upsample")(0), in: d, out: cfg.outChannels)
    }

    /// x: (h × w × 3) → (h × w × 64); h and w multiples of the window.
    public func forward(
        _ x: Tensor, height h: Int, width w: Int, step: (_ done: Int, _ total: Int) throws -> Void
    ) rethrows -> Tensor {
        let ws = config.windowSize, d = config.embedDim
        precondition(h % ws == 0 && w % ws == 0, "SwinIR: the size must be a multiple of the window")
        let x0 = convFirst(x, height: h, width: w)
        var t = patchNorm(x0.reshaped([h * w, d]))
        let maps = SwinWindowMaps(height: h, width: w, window: ws)
        for (i, layer) in layers.enumerated() {
            t = SwinOuterPath.residualGroup(t, height: h, width: w, conv: layer.conv) { t in
                layer.blocks.reduce(t) { u, block in block(u, maps: maps) }
            }
            try step(i + 1, layers.count)
        }
        return SwinOuterPath.reconstruct(
            t, x0: x0, height: h, width: w, norm: norm, convAfterBody: convAfterBody,
            convBeforeUpsample: convBeforeUpsample)
    }
}

extension SwinIRNOUP: InferenceOnlyEncoder {
    public static let officialName = "SwinIRNOUP"

    public static func hyperparameters(inferredFrom sd: StateDict) throws -> Config {
        func shape(_ k: String) throws -> [Int] { try SwinOuterPath.shape(sd, k) }
        let first = try shape("conv_first.weight")
        guard first.count == 4, first[2] == 3, first[3] == 3 else {
            throw ModelLoadError("'conv_first.weight' has shape \(first), expected [embed_dim, 3, 3, 3]")
        }
        guard sd["patch_embed.norm.weight"] != nil else { throw ModelLoadError("no key 'patch_embed.norm.weight'") }
        let (depths, heads) = try SwinOuterPath.depthsAndHeads(sd) { l in
            let table = try shape("layers.\(l).residual_group.blocks.0.attn.relative_position_bias_table")
            guard table.count == 2 else { throw ModelLoadError("a relative_position_bias_table has shape \(table)") }
            return table[1]
        }
        let table = try shape("layers.0.residual_group.blocks.0.attn.relative_position_bias_table")
        let side = Int(Double(table[0]).squareRoot().rounded())
        guard side * side == table[0], side % 2 == 1 else {
            throw ModelLoadError("relative_position_bias_table has \(table[0]) rows, not (2·window − 1)²")
        }
        let ws = (side + 1) / 2
        let fc1 = try shape("layers.0.residual_group.blocks.0.mlp.fc1.weight")
        let out = try shape("conv_before_upsample.0.weight")
        var maskWindows = 0
        if let m = sd["layers.0.residual_group.blocks.1.attn_mask"] {
            guard m.shape.count == 3, m.shape[1] == ws * ws, m.shape[2] == ws * ws else {
                throw ModelLoadError("'layers.0.residual_group.blocks.1.attn_mask' has shape \(m.shape)")
            }
            maskWindows = m.shape[0]
        }
        let cfg = Config(
            inChannels: first[1], embedDim: first[0], depths: depths, numHeads: heads, windowSize: ws,
            mlpHidden: fc1.first ?? 0, shifted: maskWindows > 0, maskWindows: maskWindows, outChannels: out.first ?? 0)
        for (name, v) in [
            ("embed_dim", cfg.embedDim), ("in_chans", cfg.inChannels), ("window_size", ws), ("mlp width", cfg.mlpHidden),
            ("out channels", cfg.outChannels), ("mask windows", max(1, maskWindows)),
        ] where v < 1 || v > ModelConfigFile.maxInt {
            throw ModelLoadError("SwinIR \(name) \(v) is outside 1...\(ModelConfigFile.maxInt)")
        }
        guard ws * ws * ws * ws <= 1 << 24 else { throw ModelLoadError("SwinIR window \(ws) is too large") }
        return cfg
    }

    public var inChannels: Int { config.inChannels }
    public var outChannels: Int { config.outChannels }
    public var windowSize: Int? { config.windowSize }
    /// Four windows and a pixel per convolution of the outer path (see
    /// ``EncoderArchitecture/tilingContext``).
    public static var tilingWindows = 4
    public var tilingContext: Int { min(reach, Self.tilingWindows * config.windowSize + 3 + layers.count) }
    /// An upper bound: one pixel per 3×3 conv, and ws − 1 per attention block (a window reaches
    /// at most that far; shifted blocks chain windows across their borders).
    public var reach: Int {
        3 + layers.count + config.depths.reduce(0, +) * (config.windowSize - 1)
    }

    public func flops(height h: Int, width w: Int) -> Double {
        let p = Double(h * w), d = Double(config.embedDim), n = Double(config.windowSize * config.windowSize)
        let block = 2 * p * (3 * d * d + d * d + 2 * d * Double(config.mlpHidden)) + 4 * p * n * d
        let convs = 2 * p * 9 * (Double(config.inChannels) * d + Double(layers.count + 1) * d * d + d * Double(config.outChannels))
        return convs + Double(config.depths.reduce(0, +)) * block
    }

    /// Tokens, the block's qkv (3C), the MLP hidden, the attention output and a residual copy.
    public func workingFloats(height h: Int, width w: Int) -> Double {
        Double(h * w) * (Double(7 * config.embedDim + config.mlpHidden) + Double(config.outChannels))
    }

    public var configArguments: [String: ArgumentValue] {
        var a: [String: ArgumentValue] = [
            "in_chans": .int(config.inChannels), "embed_dim": .int(config.embedDim), "depths": .ints(config.depths),
            "num_heads": .ints(config.numHeads), "window_size": .int(config.windowSize),
            "mlp_ratio": .number(Double(config.mlpHidden) / Double(config.embedDim)),
        ]
        if config.maskWindows > 0 {
            a["img_size"] = .int(Int(Double(config.maskWindows).squareRoot().rounded()) * config.windowSize)
        }
        return a
    }
}
