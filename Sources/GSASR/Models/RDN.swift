import GSASRCheckpoint
import GSASRTensor

/// Residual dense network without its upsampler (`RDNNOUP` in the official `rdn.py`), the
/// encoder of GSASR's RDN models.
///
/// Module tree: `SFENet1` (3×3, 3→G0), `SFENet2` (3×3, G0→G0), `RDBs.{d}` (D residual dense
/// blocks), `GFF.0` (1×1, D·G0→G0), `GFF.1` (3×3, G0→G0). The forward:
///
///   f1 = SFENet1(x), x = SFENet2(f1), out_d = RDB_d(out_{d−1}),
///   y = GFF.1(GFF.0(concat(out_1, …, out_D))) + f1            (the skip is SFENet1's output).
///
/// An RDB keeps a growing map z (its input first): C times z = concat(z, relu(conv3x3(z)))
/// (G new channels each), then returns LFF(z) + input (LFF: 1×1, G0 + C·G → G0).
///
/// D, C and G are read from the state dict (the number of `RDBs.*`, of `convs.*` per block, the
/// out-channels of the first dense conv), never from the preset letter (`RDNconfig` 'A' or 'B').
/// `kSize` (3 in every release) applies to SFENet1/2 and GFF.1; the dense convs are always 3×3.
/// `img_range` is 1 (it multiplies the input). Inference only.
public struct RDNNOUP: @unchecked Sendable {
    public struct Config: Codable, Sendable, Equatable {
        public var inChannels = 3
        /// G0, the feature width.
        public var g0: Int
        /// D blocks of C dense layers with growth G.
        public var d: Int, c: Int, g: Int
        public init(g0: Int, d: Int, c: Int, g: Int, inChannels: Int = 3) {
            self.g0 = g0
            self.d = d
            self.c = c
            self.g = g
            self.inChannels = inChannels
        }
    }

    /// `RDB`: C dense layers (`convs.{i}.conv.0`) and the local fusion `LFF`.
    public struct RDB: @unchecked Sendable {
        public let convs: [Conv2d]
        public let lff: Conv1x1
        init(_ s: ParameterSource, g0: Int, c: Int, g: Int) throws {
            convs = try (0..<c).map { try Conv2d(s("convs")($0)("conv")(0), in: g0 + $0 * g, out: g) }
            lff = try Conv1x1(s("LFF"), in: g0 + c * g, out: g0)
        }

        /// x: (pixels × G0) → (pixels × G0).
        package func callAsFunction(_ x: Tensor, height h: Int, width w: Int) -> Tensor {
            let g0 = x.shape.last!, g = convs.first?.weights.cout ?? 0
            let total = g0 + convs.count * g
            let p = h * w
            // z grows to the right: channels [0, G0) the input, then each layer's G.
            let z = Tensor(uninitialized: [p, total])
            var width = g0
            z.withPointer { zp in
                x.withPointer { xp in for i in 0..<p { (zp + i * total).update(from: xp + i * g0, count: g0) } }
            }
            for conv in convs {
                // The convolution reads the first `width` channels, contiguous.
                let zin = Tensor(uninitialized: [h, w, width])
                zin.withPointer { dst in
                    z.withPointer { zp in for i in 0..<p { (dst + i * width).update(from: zp + i * total, count: width) } }
                }
                let y = conv(zin, height: h, width: w)
                Kernels.relu(y)
                z.withPointer { zp in
                    y.withPointer { yp in for i in 0..<p { (zp + i * total + width).update(from: yp + i * g, count: g) } }
                }
                width += g
            }
            let out = lff(z.reshaped([p, total]))
            Kernels.add(out, x.reshaped([p, g0]))
            return out
        }
    }

    public let config: Config
    public let sfeNet1: Conv2d, sfeNet2: Conv2d
    public let rdbs: [RDB]
    public let gff0: Conv1x1, gff1: Conv2d

    /// The declaration, in `state_dict()` order.
    public init(_ s: ParameterSource, config cfg: Config) throws {
        config = cfg
        sfeNet1 = try Conv2d(s("SFENet1"), in: cfg.inChannels, out: cfg.g0)
        sfeNet2 = try Conv2d(s("SFENet2"), in: cfg.g0, out: cfg.g0)
        rdbs = try (0..<cfg.d).map { try RDB(s("RDBs")($0), g0: cfg.g0, c: cfg.c, g: cfg.g) }
        gff0 = try Conv1x1(s("GFF")(0), in: cfg.d * cfg.g0, out: cfg.g0)
        gff1 = try Conv2d(s("GFF")(1), in: cfg.g0, out: cfg.g0)
    }

    /// x: (h × w × 3) → (h × w × G0).
    public func forward(
        _ x: Tensor, height h: Int, width w: Int, step: (_ done: Int, _ total: Int) throws -> Void
    ) rethrows -> Tensor {
        let g0 = config.g0, p = h * w, d = rdbs.count
        let f1 = sfeNet1(x, height: h, width: w)
        var cur = sfeNet2(f1, height: h, width: w)
        let cat = Tensor(uninitialized: [p, d * g0])
        for (i, rdb) in rdbs.enumerated() {
            cur = rdb(cur, height: h, width: w)
            cat.withPointer { cp in
                cur.withPointer { src in for j in 0..<p { (cp + j * d * g0 + i * g0).update(from: src + j * g0, count: g0) } }
            }
            try step(i + 1, d)
        }
        let y = gff1(gff0(cat).reshaped([h, w, g0]), height: h, width: w)
        Kernels.add(y, f1)
        return y
    }
}

extension RDNNOUP: InferenceOnlyEncoder {
    public static let officialName = "RDNNOUP"

    /// G0 and the input channels from `SFENet1.weight`, D from the `RDBs.{d}` present, C from
    /// the `convs.{i}` of the first block, G from the out-channels of its first dense conv.
    public static func hyperparameters(inferredFrom sd: StateDict) throws -> Config {
        guard let first = sd["SFENet1.weight"] else { throw ModelLoadError("no key 'SFENet1.weight'") }
        let s = first.shape
        guard s.count == 4, s[2] == 3, s[3] == 3 else {
            throw ModelLoadError("'SFENet1.weight' has shape \(s), expected [G0, 3, 3, 3]")
        }
        var d = 0
        while sd["RDBs.\(d).LFF.weight"] != nil { d += 1 }
        var c = 0
        while sd["RDBs.0.convs.\(c).conv.0.weight"] != nil { c += 1 }
        guard d >= 1, c >= 1, let conv0 = sd["RDBs.0.convs.0.conv.0.weight"], conv0.shape.count == 4 else {
            throw ModelLoadError("no residual dense blocks ('RDBs.0.convs.0.conv.0.weight')")
        }
        let cfg = Config(g0: s[0], d: d, c: c, g: conv0.shape[0], inChannels: s[1])
        for (name, v) in [("G0", cfg.g0), ("G", cfg.g), ("in_channels", cfg.inChannels)]
        where v < 1 || v > ModelConfigFile.maxInt {
            throw ModelLoadError("RDN \(name) \(v) is outside 1...\(ModelConfigFile.maxInt)")
        }
        guard cfg.d * cfg.g0 <= ModelConfigFile.maxInt, cfg.g0 + cfg.c * cfg.g <= ModelConfigFile.maxInt else {
            throw ModelLoadError("RDN widths D·G0 = \(cfg.d * cfg.g0), G0 + C·G = \(cfg.g0 + cfg.c * cfg.g) are too large")
        }
        return cfg
    }

    public var inChannels: Int { config.inChannels }
    public var outChannels: Int { config.g0 }
    /// SFENet1, SFENet2, C dense convs per block, GFF.1: one pixel each (the 1×1 convs add none).
    public var reach: Int { 3 + rdbs.count * config.c }

    public func flops(height h: Int, width w: Int) -> Double {
        let p = Double(h * w), g0 = Double(config.g0), g = Double(config.g)
        var dense = 0.0
        for i in 0..<config.c { dense += 9 * (g0 + Double(i) * g) * g }
        let perBlock = dense + (g0 + Double(config.c) * g) * g0
        return 2 * p
            * (9 * Double(config.inChannels) * g0 + 9 * g0 * g0 + Double(config.d) * perBlock
                + Double(config.d) * g0 * g0 + 9 * g0 * g0)
    }

    /// The concatenated block outputs (D·G0), a dense block's growing map and its copy, and a
    /// convolution's scratch.
    public func workingFloats(height h: Int, width w: Int) -> Double {
        let widest = Double(config.g0 + config.c * config.g)
        return Double(h * w) * (Double(config.d * config.g0) + 2 * widest + 4 * Double(config.g0))
    }

    /// `G0` and `n_colors` as the constructor takes them; D, C and G (which the official class
    /// takes only as a preset letter) under their own names.
    public var configArguments: [String: ArgumentValue] {
        [
            "n_colors": .int(config.inChannels), "G0": .int(config.g0), "D": .int(config.d), "C": .int(config.c),
            "G": .int(config.g),
        ]
    }
}
