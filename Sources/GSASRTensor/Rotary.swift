/// Rotary position embedding (RoPE) of 2-D positions, as the official GSASR RoPE modules apply it.
///
/// Within each head (channels h·d ..< (h+1)·d), channel pairs (2j, 2j+1) form the complex number
/// z = x[2j] + i·x[2j+1], which is multiplied by e^{iθ}, θ = θ(position, head, j):
///
///   x'[2j] = x[2j]·cos θ − x[2j+1]·sin θ,   x'[2j+1] = x[2j]·sin θ + x[2j+1]·cos θ.
///
/// (Adjacent pairs, not the "rotate half" layout.) The angles are tabulated once per module as
/// `cosSin` (positions × heads × d/2 × [cos, sin]).
extension Kernels {
    /// Rotates `rows` rows of `x` (leading dimension `ld`, `heads`·`headDim` channels from the
    /// row start) in place; row r uses position `position(r)` of the table.
    package static func rotary(
        _ x: UnsafeMutablePointer<Float>, ld: Int, rows: Int, heads: Int, headDim d: Int,
        cosSin: UnsafePointer<Float>, position: (Int) -> Int
    ) {
        let pairs = d / 2
        for r in 0..<rows {
            let row = x + r * ld
            let cs = cosSin + position(r) * heads * pairs * 2
            for h in 0..<heads {
                let xh = row + h * d, ch = cs + h * pairs * 2
                for j in 0..<pairs {
                    let a = xh[2 * j], b = xh[2 * j + 1]
                    let c = ch[2 * j], s = ch[2 * j + 1]
                    xh[2 * j] = a * c - b * s
                    xh[2 * j + 1] = a * s + b * c
                }
            }
        }
    }
}
