/// Lane-wise select with bit operations (`SIMD.replacing(with:where:)` and `pointwiseMin/Max`
/// are generic lane loops in the standard library and too slow for the inner loops).
@inline(__always)
@usableFromInline
func bitsOf(_ v: SIMD8<Float>) -> SIMD8<Int32> { unsafeBitCast(v, to: SIMD8<Int32>.self) }

@inline(__always)
@usableFromInline
func floatsOf(_ v: SIMD8<Int32>) -> SIMD8<Float> { unsafeBitCast(v, to: SIMD8<Float>.self) }

/// All-ones lanes where `m` is set.
@inline(__always)
@usableFromInline
func maskBits(_ m: SIMDMask<SIMD8<Int32>>) -> SIMD8<Int32> { unsafeBitCast(m, to: SIMD8<Int32>.self) }

/// Vector single-precision exponential, accurate to about 1-2 ulp for normal results.
///
/// Range reduction x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in two parts so n·ln2_hi is
/// exact), a degree-7 polynomial (Cephes expf coefficients) for e^r, and the scale 2^n built
/// from the exponent bits. Inputs below ln(2^-126) ≈ -87.34 return 0 (flush instead of
/// subnormals). Inputs must be ≤ 88 (in the rasterizer the argument is ≤ ~0).
@inline(__always)
@usableFromInline
func vexp(_ x: SIMD8<Float>) -> SIMD8<Float> {
    let lo = SIMD8<Float>(repeating: -87.33654)
    let under = maskBits(x .< lo)
    let xc = floatsOf((bitsOf(lo) & under) | (bitsOf(x) & ~under))
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
    let ni = bitsOf(t) &- 0x4B40_0000  // bit pattern of `magic`
    let scale = floatsOf((ni &+ 127) &<< 23)
    let res = y * scale
    return floatsOf(bitsOf(res) & ~under)
}

/// Masks for "first k lanes" (k = 0...8).
@usableFromInline
let prefixLaneMasks: UnsafeMutablePointer<SIMD8<Int32>> = {
    let p = UnsafeMutablePointer<SIMD8<Int32>>.allocate(capacity: 9)
    for k in 0...8 {
        var m = SIMD8<Int32>(repeating: 0)
        for l in 0..<k { m[l] = -1 }
        p[k] = m
    }
    return p
}()

/// All-ones lanes for lane indices in [l, h] (any integers).
@inline(__always)
@usableFromInline
func laneRange(_ table: UnsafeMutablePointer<SIMD8<Int32>>, _ l: Int32, _ h: Int32) -> SIMD8<Int32> {
    let lc = Int(min(max(l, 0), 8))
    let hc = Int(min(max(h + 1, 0), 8))
    return table[hc] & ~table[lc]
}
