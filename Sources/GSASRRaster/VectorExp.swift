/// Vector single-precision exponential, accurate to about 1-2 ulp for normal results.
///
/// Range reduction x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in two parts so n·ln2_hi is
/// exact), a degree-7 polynomial (Cephes expf coefficients) for e^r, and the scale 2^n built
/// from the exponent bits. Inputs below ln(2^-126) ≈ -87.34 return 0 (flush instead of
/// subnormals); inputs above 88 are clamped (never happens in the rasterizer, where x ≤ ~0).
@inline(__always)
@usableFromInline
func vexp(_ x: SIMD8<Float>) -> SIMD8<Float> {
    let lo = SIMD8<Float>(repeating: -87.33654)
    let hi = SIMD8<Float>(repeating: 88.0)
    let xc = pointwiseMin(pointwiseMax(x, lo), hi)
    let magic = SIMD8<Float>(repeating: 12582912.0)  // 1.5·2^23: adding it rounds to an integer
    let t = xc * 1.44269504088896341 + magic
    let n = t - magic
    var r = xc - n * 0.693359375
    r = r - n * (-2.12194440e-4)
    var p = SIMD8<Float>(repeating: 1.9875691500e-4)
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    let r2 = r * r
    let y = p * r2 + r + 1.0
    let tb = unsafeBitCast(t, to: SIMD8<Int32>.self)
    let ni = tb &- 0x4B40_0000  // bit pattern of `magic`
    let scaleBits = (ni &+ 127) &<< 23
    let scale = unsafeBitCast(scaleBits, to: SIMD8<Float>.self)
    let res = y * scale
    return res.replacing(with: 0, where: x .< lo)
}

/// Scalar version of ``vexp`` (same algorithm, same results lane by lane).
@inline(__always)
@usableFromInline
func sexp(_ x: Float) -> Float {
    vexp(SIMD8<Float>(repeating: x))[0]
}
