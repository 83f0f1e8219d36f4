import Foundation
import GSASRTensor

/// The 2-D rotary position embedding of the official RoPE modules (`rope_mixed=True`, every
/// released model): the learned frequencies `rope_freqs` (2 × heads × headDim/2; row 0
/// multiplies the x coordinate, row 1 the y coordinate) and the position buffers `rope_t_x`,
/// `rope_t_y` (position n of a raster of width W: n mod W and n div W).
///
/// The angle of position n, head h, pair j is θ = t_x[n]·F[0,h,j] + t_y[n]·F[1,h,j] in float32
/// (as `compute_cis`); `freqs_cis` = e^{iθ} is tabulated here once at load (the official code
/// recomputes it at every forward from the same values). `Kernels/rotary` applies it.
public struct RotaryEmbedding: @unchecked Sendable {
    public let freqs: Tensor  // (2, heads, headDim/2), the parameter `rope_freqs`
    public let positions: Int
    public let heads: Int, headDim: Int
    /// positions × heads × headDim/2 × [cos θ, sin θ].
    let cosSin: [Float]

    /// Declares `rope_freqs`, `rope_t_x` and `rope_t_y` (in that order, the official one) for a
    /// raster `side` wide and high. Position buffers are loaded as stored (and checked to lie
    /// in the raster: they are untrusted); from scratch they are the official `init_t_xy`.
    init(_ s: ParameterSource, heads: Int, headDim d: Int, side: Int, theta: Double = 10) throws {
        guard d % 4 == 0, d > 0 else {
            throw ModelLoadError("\(s.label): RoPE head dimension \(d) (at '\(s.prefix)') is not a multiple of 4")
        }
        self.heads = heads
        headDim = d
        let n = side * side
        positions = n
        freqs = try s.parameter("rope_freqs", [2, heads, d / 2], .rope2D(heads: heads, headDim: d, theta: theta))
        let tx = try s.floatBuffer("rope_t_x", [n], official: { (0..<n).map { Float($0 % side) } })
        let ty = try s.floatBuffer("rope_t_y", [n], official: { (0..<n).map { Float($0 / side) } })
        for (name, t) in [("rope_t_x", tx), ("rope_t_y", ty)] where !t.allSatisfy({ $0.isFinite && abs($0) <= 65536 }) {
            throw ModelLoadError("\(s.label): '\(s.prefix)\(name)' holds a value that is not a position")
        }
        // The table has positions × heads × headDim floats; the counts come from an untrusted
        // file's shapes, so their product is bounded before anything is allocated (the released
        // models need at most 576 × 192).
        guard n <= 1 << 20, heads * d <= 1 << 16, n * heads * d <= 1 << 26 else {
            throw ModelLoadError(
                "\(s.label): '\(s.prefix)rope_t_x' gives \(n) positions of \(heads) × \(d) channels: too large a RoPE table")
        }
        let f = freqs.array, p = d / 2
        var cs = [Float](repeating: 0, count: n * heads * p * 2)
        for i in 0..<n {
            for h in 0..<heads {
                for j in 0..<p {
                    let fx = tx[i] * f[h * p + j]
                    let fy = ty[i] * f[heads * p + h * p + j]
                    let angle = fx + fy
                    cs[((i * heads + h) * p + j) * 2] = cos(angle)
                    cs[((i * heads + h) * p + j) * 2 + 1] = sin(angle)
                }
            }
        }
        cosSin = cs
    }

    /// Rotates the first heads·headDim channels of `rows` rows of `x` (leading dimension `ld`);
    /// row r sits at position `position(r)` (< ``positions``).
    func apply(_ x: UnsafeMutablePointer<Float>, ld: Int, rows: Int, position: (Int) -> Int) {
        cosSin.withUnsafeBufferPointer { cs in
            Kernels.rotary(
                x, ld: ld, rows: rows, heads: heads, headDim: headDim, cosSin: cs.baseAddress!, position: position)
        }
    }

    /// The (heads × positions × headDim/2 × 2) table in the official `freqs_cis` order, for tests.
    public var freqsCis: [Float] {
        let p = headDim / 2
        var r = [Float](repeating: 0, count: cosSin.count)
        for i in 0..<positions {
            for h in 0..<heads {
                for j in 0..<p {
                    for k in 0..<2 { r[((h * positions + i) * p + j) * 2 + k] = cosSin[((i * heads + h) * p + j) * 2 + k] }
                }
            }
        }
        return r
    }
}
