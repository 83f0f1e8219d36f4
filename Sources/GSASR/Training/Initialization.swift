import Foundation
import GSASRCheckpoint

/// The encoder's constructor arguments (`EDSRNOUP(num_in_ch, num_out_ch, num_feat, num_block)`).
public typealias EDSRConfig = EDSRNOUP.Config

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
    /// A model with freshly initialised weights: the declarations of ``EDSRNOUP`` and ``Fea2GS``
    /// draw every value, encoder first, from one ``SplitMix64`` seeded with `seed`.
    public static func model(encoder: EDSRConfig, decoder: Fea2GSConfig, seed: UInt64) throws -> GSASRModel {
        try GSASRModel.initialized(EDSRNOUP.self, encoder: encoder, decoder: decoder, seed: seed)
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
    /// iteration order, reproduced by `PythonFloatSet`), then label_y·max + label_x. Offsets
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
