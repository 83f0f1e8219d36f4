import Foundation
import GSASRCheckpoint

/// SplitMix64: a small, fast, well-mixed 64-bit generator with a one-word state (so a training
/// run can save and restore it exactly). Steele, Lea & Flood, "Fast splittable pseudorandom
/// number generators" (OOPSLA 2014).
public struct SplitMix64: RandomNumberGenerator, Codable, Sendable, Equatable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1) with 53 random bits.
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1p-53 }
    /// Standard normal (Box–Muller).
    public mutating func normal() -> Double {
        var u = uniform()
        while u <= 0 { u = uniform() }
        return (-2 * log(u)).squareRoot() * cos(2 * Double.pi * uniform())
    }
}

/// The encoder's constructor arguments (`EDSRNOUP(num_in_ch, num_out_ch, num_feat, num_block)`).
public struct EDSRConfig: Codable, Sendable, Equatable {
    public var numInChannels = 3
    public var numFeat: Int
    public var numBlock: Int
    public init(numFeat: Int, numBlock: Int) {
        self.numFeat = numFeat
        self.numBlock = numBlock
    }
}

/// A from-scratch initialisation following the official modules' PyTorch defaults (same
/// distributions; the random stream is our SplitMix64, not torch's Mersenne Twister):
/// - `nn.Linear`, `nn.Conv2d`: weight and bias U(−1/√fan_in, 1/√fan_in) (kaiming_uniform with
///   a = √5, PyTorch's default; EDSRNOUP's blocks use `pytorch_init=True`);
/// - `nn.LayerNorm`: weight 1, bias 0;
/// - `nn.MultiheadAttention`: in_proj_weight xavier_uniform U(±√(6/(C + 3C))), in_proj_bias 0,
///   out_proj.bias 0, out_proj.weight the Linear default;
/// - `gs_embedding`, `pos_embedding`: N(0, 1);
/// - `relative_position_bias_table`: trunc_normal(std 0.02, bounds ±2) (the window
///   cross-attention's "closest pixel gets 2" table is overwritten by this call in the official
///   code, so it has no effect);
/// - the `relative_position_index` buffers as the official constructors compute them (see
///   ``crossAttentionIndex(seedSide:windowSize:)``).
public enum GSASRInitialization {
    public static func encoderStateDict(_ cfg: EDSRConfig, rng: inout SplitMix64) -> StateDict {
        var sd = StateDict()
        func conv(_ prefix: String, _ cin: Int, _ cout: Int) {
            let bound = 1 / Double(cin * 9).squareRoot()
            sd.insert(prefix + "weight", uniform([cout, cin, 3, 3], bound, &rng))
            sd.insert(prefix + "bias", uniform([cout], bound, &rng))
        }
        conv("conv_first.", cfg.numInChannels, cfg.numFeat)
        for i in 0..<cfg.numBlock {
            conv("body.\(i).conv1.", cfg.numFeat, cfg.numFeat)
            conv("body.\(i).conv2.", cfg.numFeat, cfg.numFeat)
        }
        conv("conv_after_body.", cfg.numFeat, cfg.numFeat)
        return sd
    }

    public static func decoderStateDict(_ cfg: Fea2GSConfig, rng: inout SplitMix64) throws -> StateDict {
        try cfg.validate()
        let c = cfg.channel, s = cfg.numGsSeedSqrt, ws = cfg.windowSize
        var sd = StateDict()
        func linear(_ prefix: String, _ i: Int, _ o: Int) {
            let bound = 1 / Double(i).squareRoot()
            sd.insert(prefix + "weight", uniform([o, i], bound, &rng))
            sd.insert(prefix + "bias", uniform([o], bound, &rng))
        }
        func conv(_ prefix: String, _ cin: Int, _ cout: Int) {
            let bound = 1 / Double(cin * 9).squareRoot()
            sd.insert(prefix + "weight", uniform([cout, cin, 3, 3], bound, &rng))
            sd.insert(prefix + "bias", uniform([cout], bound, &rng))
        }
        func norm(_ prefix: String) {
            sd.insert(
                prefix + "weight", LoadedTensor(shape: [c], dtype: .float32, floats: .init(repeating: 1, count: c)))
            sd.insert(prefix + "bias", LoadedTensor(shape: [c], dtype: .float32, floats: .init(repeating: 0, count: c)))
        }
        func mha(_ prefix: String) {
            let b = (6.0 / Double(c + 3 * c)).squareRoot()
            sd.insert(prefix + "in_proj_weight", uniform([3 * c, c], b, &rng))
            sd.insert(
                prefix + "in_proj_bias",
                LoadedTensor(shape: [3 * c], dtype: .float32, floats: .init(repeating: 0, count: 3 * c)))
            sd.insert(prefix + "out_proj.weight", uniform([c, c], 1 / Double(c).squareRoot(), &rng))
            sd.insert(
                prefix + "out_proj.bias",
                LoadedTensor(shape: [c], dtype: .float32, floats: .init(repeating: 0, count: c)))
        }
        func table(_ prefix: String, rows: Int, index: [Int64], nq: Int, nk: Int) {
            var v = [Float](repeating: 0, count: rows * cfg.numHeads)
            for i in v.indices {
                var x = 0.02 * rng.normal()
                while abs(x) > 2 { x = 0.02 * rng.normal() }
                v[i] = Float(x)
            }
            sd.insert(
                prefix + "relative_position_bias_table",
                LoadedTensor(shape: [rows, cfg.numHeads], dtype: .float32, floats: v))
            sd.insert(
                prefix + "relative_position_index",
                LoadedTensor(shape: [nq, nk], dtype: .int64, floats: index.map { Float($0) }, ints: index))
        }
        sd.insert("gs_embedding", normal([cfg.numGsSeed, c], &rng))
        sd.insert("pos_embedding", normal([cfg.numGsSeed, c], &rng))
        conv("img_feat_proj.0.", cfg.inchannel, c)
        conv("img_feat_proj.2.", c, c)
        let crossIndex = try crossAttentionIndex(seedSide: s, windowSize: ws)
        let m = 2 * max(s, ws) - 1
        guard let top = crossIndex.max(), top < Int64(m * m) else {
            throw ModelLoadError(
                "decoder: the official relative-position index for num_gs_seed \(cfg.numGsSeed) and window \(ws) exceeds its table (\(m * m) rows)"
            )
        }
        let selfIndex = selfAttentionIndex(seedSide: s)
        for b in 0..<cfg.numCrossattnBlocks {
            let p = "window_crossattn_blocks.\(b)."
            linear(p + "mlp.0.", c, c)
            linear(p + "mlp.2.", c, c)
            norm(p + "norm.")
            for l in 0..<cfg.numCrossattnLayers {
                let q = p + "blocks.\(l)."
                mha(q + "gs_cross_attn_scale.")
                for n in 1...4 { norm(q + "norm\(n).") }
                table(q + "window_cross_attn.", rows: m * m, index: crossIndex, nq: s * s, nk: ws * ws)
                for h in ["qhead", "khead", "vhead", "proj"] { linear(q + "window_cross_attn.\(h).", c, c) }
                for f in ["mlp_crossattn_scale", "mlp_crossattn_feature"] {
                    linear(q + "\(f).fc1.", c, c)
                    linear(q + "\(f).fc2.", c, c)
                }
            }
        }
        for b in 0..<cfg.numSelfattnBlocks {
            let p = "gs_selfattn_blocks.\(b)."
            linear(p + "mlp.0.", c, c)
            linear(p + "mlp.2.", c, c)
            norm(p + "norm.")
            for l in 0..<cfg.numSelfattnLayers {
                let q = p + "blocks.\(l)."
                for n in 1...4 { norm(q + "norm\(n).") }
                table(q + "gs_self_attn.", rows: (2 * s - 1) * (2 * s - 1), index: selfIndex, nq: s * s, nk: s * s)
                for h in ["proj", "qhead", "khead", "vhead"] { linear(q + "gs_self_attn.\(h).", c, c) }
                linear(q + "mlp_selfattn.fc1.", c, c)
                linear(q + "mlp_selfattn.fc2.", c, c)
                mha(q + "gs_cross_attn_scale.")
                linear(q + "mlp_crossattn.fc1.", c, c)
                linear(q + "mlp_crossattn.fc2.", c, c)
            }
        }
        for (name, k) in [("sigma", 2), ("rho", 1), ("alpha", 1), ("rgb", 3), ("mean", 2)] {
            linear("mlp_block_\(name).0.", c, c)
            linear("mlp_block_\(name).2.", c, 4 * c)
            linear("mlp_block_\(name).4.", 4 * c, k)
        }
        linear("scale_mlp.0.", 1, 4 * c)
        linear("scale_mlp.2.", 4 * c, c)
        conv("UPNet.0.", c, c * cfg.shuffleScale1 * cfg.shuffleScale1)
        conv("UPNet.2.", c, c * cfg.shuffleScale2 * cfg.shuffleScale2)
        return sd
    }

    /// A model with freshly initialised weights.
    public static func model(encoder: EDSRConfig, decoder: Fea2GSConfig, seed: UInt64) throws -> GSASRModel {
        var rng = SplitMix64(seed: seed)
        let e = encoderStateDict(encoder, rng: &rng)
        let d = try decoderStateDict(decoder, rng: &rng)
        return try GSASRModel(
            encoder: EDSRNOUP(stateDict: ParameterLoader(e, label: "encoder")),
            decoder: Fea2GS(stateDict: ParameterLoader(d, label: "decoder"), config: decoder))
    }

    static func uniform(_ shape: [Int], _ bound: Double, _ rng: inout SplitMix64) -> LoadedTensor {
        let n = shape.reduce(1, *)
        var v = [Float](repeating: 0, count: n)
        for i in 0..<n { v[i] = Float((2 * rng.uniform() - 1) * bound) }
        return LoadedTensor(shape: shape, dtype: .float32, floats: v)
    }

    static func normal(_ shape: [Int], _ rng: inout SplitMix64) -> LoadedTensor {
        let n = shape.reduce(1, *)
        var v = [Float](repeating: 0, count: n)
        for i in 0..<n { v[i] = Float(rng.normal()) }
        return LoadedTensor(shape: shape, dtype: .float32, floats: v)
    }

    /// The Swin relative-position index of `GSSelfAttn`: for tokens a, b of an s×s window,
    /// (Δy + s − 1)·(2s − 1) + (Δx + s − 1).
    public static func selfAttentionIndex(seedSide s: Int) -> [Int64] {
        var out = [Int64](repeating: 0, count: s * s * s * s)
        for a in 0..<(s * s) {
            for b in 0..<(s * s) {
                let dy = a / s - b / s + s - 1, dx = a % s - b % s + s - 1
                out[a * s * s + b] = Int64(dy * (2 * s - 1) + dx)
            }
        }
        return out
    }

    /// The window cross-attention bias table (rows × heads, row-major) with entry −β·d² for
    /// every (seed, pixel) pair that uses the row: d is the distance in LR pixels between the
    /// seed's cell centre ((q + ½)·ws/s) and the pixel centre (k + ½). The official index
    /// (``crossAttentionIndex(seedSide:windowSize:)``) can give two offsets one row; such a
    /// row takes the nearer offset. Rows no pair uses keep −β·(2·ws)².
    public static func crossAttentionLocalityTable(_ cfg: Fea2GSConfig, beta: Double) throws -> [Float] {
        let s = cfg.numGsSeedSqrt, ws = cfg.windowSize
        let index = try crossAttentionIndex(seedSide: s, windowSize: ws)
        let m = 2 * max(s, ws) - 1
        var nearest = [Double](repeating: Double(4 * ws * ws), count: m * m)
        var i = 0
        for qy in 0..<s {
            for qx in 0..<s {
                for ky in 0..<ws {
                    for kx in 0..<ws {
                        let dy = (Double(qy) + 0.5) * Double(ws) / Double(s) - (Double(ky) + 0.5)
                        let dx = (Double(qx) + 0.5) * Double(ws) / Double(s) - (Double(kx) + 0.5)
                        let row = Int(index[i])
                        nearest[row] = min(nearest[row], dy * dy + dx * dx)
                        i += 1
                    }
                }
            }
        }
        var table = [Float](repeating: 0, count: m * m * cfg.numHeads)
        for r in 0..<m * m { for h in 0..<cfg.numHeads { table[r * cfg.numHeads + h] = Float(-beta * nearest[r]) } }
        return table
    }

    /// The index buffer of `WindowCrossAttn`, exactly as its constructor builds it: the offsets
    /// between seed centres ((i + ½)·window) and feature-pixel centres ((j + ½)·seedSide) along
    /// each axis are labelled by their position in `list(set(sorted(offsets)))` (CPython's set
    /// iteration order, reproduced by ``PythonFloatSet``), then label_y·max + label_x. Offsets
    /// must be integers (true when seedSide and window are both even or equal).
    public static func crossAttentionIndex(seedSide s: Int, windowSize ws: Int) throws -> [Int64] {
        // coords_delta[axis, q, k] for q over s×s seeds, k over ws×ws pixels.
        var dyAll: [Double] = [], dxAll: [Double] = []
        for qy in 0..<s {
            for qx in 0..<s {
                for ky in 0..<ws {
                    for kx in 0..<ws {
                        dyAll.append((Double(qy) + 0.5) * Double(ws) - (Double(ky) + 0.5) * Double(s))
                        dxAll.append((Double(qx) + 0.5) * Double(ws) - (Double(kx) + 0.5) * Double(s))
                    }
                }
            }
        }
        let flat = dyAll + dxAll  // coords_delta.flatten(): axis 0 first
        var ints: [Int64] = []
        for v in flat {
            guard v == v.rounded() else {
                throw ModelLoadError(
                    "decoder: seed side \(s) and window \(ws) give non-integer offsets; their official index order is not reproduced"
                )
            }
            ints.append(Int64(v))
        }
        let order = PythonIntSet.iterationOrder(ints.sorted())
        var position: [Int64: Int] = [:]
        for (i, v) in order.enumerated() { position[v] = i }
        let labels = ints.map { Int64(position[$0]!) }
        let n = s * s * ws * ws
        let maxLabel = labels.max() ?? 0
        var out = [Int64](repeating: 0, count: n)
        for i in 0..<n { out[i] = labels[i] * maxLabel + labels[n + i] }
        return out
    }
}

/// CPython's set of integers (and of integer-valued floats, which hash alike): the iteration
/// order of `set(values)` built by adding `values` in order (Objects/setobject.c: open
/// addressing, 9 linear probes, perturbed probing, resize when fill·5 ≥ mask·3 to the smallest
/// power of two > 4·used, starting from 8 slots). hash(n) = n for small n, except hash(−1) = −2.
public enum PythonIntSet {
    static func hash(_ v: Int64) -> Int64 { v == -1 ? -2 : v }

    public static func iterationOrder(_ values: [Int64]) -> [Int64] {
        var mask = 7
        var table = [Int64?](repeating: nil, count: 8)
        var fill = 0
        func insert(_ v: Int64, into t: inout [Int64?], mask: Int) -> Bool {
            let h = hash(v)
            var perturb = UInt64(bitPattern: h)
            var i = Int(UInt64(bitPattern: h) & UInt64(mask))
            while true {
                var j = i
                let probes = (i + 9 <= mask) ? 9 : 0
                for _ in 0...probes {
                    if let e = t[j] {
                        if e == v { return false }
                    } else {
                        t[j] = v
                        return true
                    }
                    j += 1
                }
                perturb >>= 5
                i = Int((UInt64(i) &* 5 &+ 1 &+ perturb) & UInt64(mask))
            }
        }
        for v in values {
            if insert(v, into: &table, mask: mask) {
                fill += 1
                if fill * 5 >= mask * 3 {
                    let used = fill
                    var newSize = 8
                    while newSize <= used * 4 { newSize <<= 1 }
                    var nt = [Int64?](repeating: nil, count: newSize)
                    for e in table { if let e { _ = insert(e, into: &nt, mask: newSize - 1) } }
                    table = nt
                    mask = newSize - 1
                }
            }
        }
        return table.compactMap { $0 }
    }
}
