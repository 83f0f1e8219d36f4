/// Vectorised single-precision exp, shared by softmax and the rasterizer.
///
/// exp(x) = 2^n · e^r with n = round(x / ln 2) and r = x − n·ln 2 ∈ [−ln2/2, ln2/2] (ln 2 split
/// in two parts so n·ln2_hi is exact); e^r is the Cephes degree-6 minimax polynomial (about
/// 1–2 ulp); n comes from the 1.5·2^23 rounding trick and 2^n is built in the exponent bits.
/// Inputs below ln(2^−126) ≈ −87.34 return 0 (flush instead of subnormals); inputs must be
/// ≤ 88 (softmax and the rasterizer only pass values ≤ 0).
///
/// Lane selects use bit operations: `SIMD.replacing(with:where:)` compiles to a scalar lane loop.
public enum FastMath {
    public typealias V = SIMD8<Float>

    @inlinable @inline(__always)
    public static func bits(_ v: V) -> SIMD8<Int32> { unsafeBitCast(v, to: SIMD8<Int32>.self) }

    @inlinable @inline(__always)
    public static func floats(_ v: SIMD8<Int32>) -> V { unsafeBitCast(v, to: V.self) }

    @inlinable @inline(__always)
    public static func exp(_ x: V) -> V {
        let lo = V(repeating: -87.33654)
        let under = unsafeBitCast(x .< lo, to: SIMD8<Int32>.self)
        let xc = floats((bits(lo) & under) | (bits(x) & ~under))
        let magic = V(repeating: 12582912.0)  // 1.5·2^23: adding it rounds to an integer
        let t = xc * 1.44269504088896341 + magic
        let n = t - magic
        var r = xc - n * 0.693359375
        r = r - n * (-2.12194440e-4)
        var p = V(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let y = p * (r * r) + r + 1.0
        let scale = floats(((bits(t) &- 0x4B40_0000) &+ 127) &<< 23)  // 2^n
        return floats(bits(y * scale) & ~under)
    }

    /// Scalar version with the same numerics as the vector lanes.
    @inlinable @inline(__always)
    public static func exp(_ x: Float) -> Float { exp(V(repeating: x))[0] }

    /// Vectorised single-precision erf: x clamped to [−4, 4] (|erf| rounds to 1 beyond), then
    /// the odd rational minimax form x·P(x²)/Q(x²) (degrees 6 and 4 in x², Eigen's
    /// `generic_fast_erf_float` coefficients), within a few ulp of erf (tested against libm).
    @inlinable @inline(__always)
    public static func erf(_ v: V) -> V {
        let x = v.clamped(lowerBound: V(repeating: -4), upperBound: V(repeating: 4))
        let x2 = x * x
        var p = x2 * -2.72614225801306e-10 + 2.77068142495902e-08
        p = x2 * p + -2.10102402082508e-06
        p = x2 * p + -5.69250639462346e-05
        p = x2 * p + -7.34990630326855e-04
        p = x2 * p + -2.95459980854025e-03
        p = x2 * p + -1.60960333262415e-02
        p = x * p
        var q = x2 * -1.45660718464996e-05 + -2.13374055278905e-04
        q = x2 * q + -1.68282697438203e-03
        q = x2 * q + -7.37332916720468e-03
        q = x2 * q + -1.42647390514189e-02
        return p / q
    }

    @inlinable @inline(__always)
    public static func erf(_ x: Float) -> Float { erf(V(repeating: x))[0] }

    /// In-place exp over a buffer.
    @inlinable
    package static func expInPlace(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i + 8 <= n {
            let v = UnsafeMutableRawPointer(p + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(p + i).storeBytes(of: exp(v), as: V.self)
            i += 8
        }
        while i < n {
            p[i] = exp(p[i])
            i += 1
        }
    }
}
