import GSASRTensor

/// Lane-wise selects with bit operations (`SIMD.replacing(with:where:)` and `pointwiseMin/Max`
/// are generic lane loops in the standard library and too slow for the inner loops).
@inline(__always)
@usableFromInline
func bitsOf(_ v: SIMD8<Float>) -> SIMD8<Int32> { FastMath.bits(v) }

@inline(__always)
@usableFromInline
func floatsOf(_ v: SIMD8<Int32>) -> SIMD8<Float> { FastMath.floats(v) }

/// The shared vector exp (GSASRTensor.FastMath).
@inline(__always)
@usableFromInline
func vexp(_ x: SIMD8<Float>) -> SIMD8<Float> { FastMath.exp(x) }

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
