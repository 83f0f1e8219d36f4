/// Vectorised exp for softmax and activations.
///
/// exp(x) = 2^n · e^r with n = round(x / ln 2) and r = x − n·ln 2 ∈ [−ln2/2, ln2/2]; e^r is the
/// Cephes degree-6 minimax polynomial (relative error ≈ 1 ulp on that interval). n is obtained
/// with the 1.5·2^23 rounding trick, and 2^n is built directly in the exponent bits.
/// Inputs are clamped to [−87.3, 88.7]; results for x < −87.3 flush to 0 (they are below
/// Float's normal range anyway).
public enum FastMath {
    public typealias V = SIMD8<Float>

    @inline(__always)
    public static func exp(_ x: V) -> V {
        let lo = V(repeating: -87.3), hi = V(repeating: 88.7)
        let under = x .< lo
        var xc = x.replacing(with: lo, where: under)
        xc = xc.replacing(with: hi, where: xc .> hi)
        let magic = V(repeating: 12582912.0)  // 1.5 * 2^23
        let t = xc * V(repeating: 1.44269504088896341) + magic
        let n = t - magic
        var r = xc - n * V(repeating: 0.693359375)
        r = r - n * V(repeating: -2.12194440e-4)
        var p = V(repeating: 1.9875691500e-4)
        p = p * r + V(repeating: 1.3981999507e-3)
        p = p * r + V(repeating: 8.3334519073e-3)
        p = p * r + V(repeating: 4.1665795894e-2)
        p = p * r + V(repeating: 1.6666665459e-1)
        p = p * r + V(repeating: 5.0000001201e-1)
        let y = p * (r * r) + r + V(repeating: 1)
        let tBits = unsafeBitCast(t, to: SIMD8<Int32>.self)
        let nInt = tBits &- SIMD8<Int32>(repeating: 0x4B40_0000)
        let scaleBits = (nInt &+ SIMD8<Int32>(repeating: 127)) &<< SIMD8<Int32>(repeating: 23)
        let scale = unsafeBitCast(scaleBits, to: V.self)
        return (y * scale).replacing(with: 0, where: under)
    }

    /// Scalar version with the same numerics as the vector lanes.
    @inline(__always)
    public static func exp(_ x: Float) -> Float {
        exp(V(repeating: x))[0]
    }

    /// In-place exp over a buffer.
    public static func expInPlace(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
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
