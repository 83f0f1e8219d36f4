import Foundation
import GSASRTensor
import Testing

// Winograd F(4×4, 3×3) (Winograd43.swift, CKernels/winograd43.c): the float32 forward against a
// float64 reference. Its backward is F(2×2, 3×3)'s (WinogradTests.swift, BackwardKernelTests.swift).

/// Odd sizes (partial 4×4 tiles at the bottom and right), channel counts off the 8 SIMD lanes
/// (the transforms' zero-padded last group), one and several blocks of tile rows (the last case
/// has 2 × 36 × 72 floats per tile: 405 tiles per block, 4 blocks). The error is measured in
/// units of 2⁻²⁴·√(9·cin)·Σ|terms| of each output (the scale of a direct sum's rounding), and
/// bounded by the transforms' gain: an input value reaches the products through Bᵀ on both sides
/// (row sums of |Bᵀ| at most 10), the weights through G (at most ½), the products leave through Aᵀ
/// (row sums at most 19); (10·½·19)² ≈ 9·10³ is the worst case, 2¹⁰ the bound used here (the
/// errors print; they stay far below the worst case because the big entries rarely line up).
@Test(arguments: [
    (4, 4, 3, 5), (5, 7, 13, 11), (9, 10, 8, 9), (37, 23, 16, 8), (48, 50, 9, 17), (13, 17, 64, 72),
    (92, 90, 40, 32),
])
func winograd43MatchesReference(h: Int, w: Int, cin: Int, cout: Int) {
    let e = convolutionError(
        h: h, w: w, cin: cin, cout: cout, unit: { Double(9 * cin).squareRoot() * 0x1p-24 * $0 + 1e-7 }
    ) { x, p, y in
        Kernels.conv3x3Winograd43(x: x, height: h, width: w, p, y: y)
    }
    print("Winograd F(4x4,3x3) conv \(h)x\(w) \(cin)->\(cout): max|d| \(e.maxAbs), worst in units \(e.worst)")
    #expect(e.worst <= 1024)
}

/// F(4×4, 3×3) and F(2×2, 3×3) agree to rounding on a model-sized map (48 × 48, 64 → 64, the
/// paper EDSR body), and F(4×4, 3×3)'s error against float64 is within a small multiple of
/// F(2×2, 3×3)'s: both are printed.
@Test func winograd43AgreesWithWinograd23AtModelWidth() {
    let h = 48, w = 48, cin = 64, cout = 64
    var r = RNG(state: 64)
    let x = r.array(h * w * cin), wt = r.array(cout * cin * 9), bias = r.array(cout)
    let p = Conv3x3Weights(torchWeight: wt, bias: bias, cout: cout, cin: cin)
    let xt = Tensor(shape: [h, w, cin], values: x)
    let y4 = Tensor(uninitialized: [h, w, cout]), y2 = Tensor(uninitialized: [h, w, cout])
    Kernels.conv3x3Winograd43(x: xt.ptr, height: h, width: w, p, y: y4.ptr)
    Kernels.conv3x3Winograd(x: xt.ptr, height: h, width: w, p, y: y2.ptr)
    let ref = conv3x3Double(
        x.map(Double.init), wt.map(Double.init), bias.map(Double.init), h: h, wd: w, cin: cin, cout: cout)
    var e4 = 0.0, e2 = 0.0, d42 = 0.0
    for i in ref.indices {
        e4 = max(e4, abs(Double(y4.ptr[i]) - ref[i]))
        e2 = max(e2, abs(Double(y2.ptr[i]) - ref[i]))
        d42 = max(d42, abs(Double(y4.ptr[i]) - Double(y2.ptr[i])))
    }
    print("48x48 64->64: max|d| vs float64: F(4x4,3x3) \(e4), F(2x2,3x3) \(e2); between them \(d42)")
    #expect(e4 <= 16 * e2)
    #expect(d42 <= e4 + e2)
    withExtendedLifetime(xt) {}
}

/// The AVX2 and the baseline builds of the transforms give the same bits (no FMA contraction in
/// either; partial channel groups and partial tiles included). Where the CPU has no AVX2 both
/// runs take the baseline and the test says so.
@Test func winograd43IsTheSameOnEveryInstructionSet() {
    let h = 23, w = 18, cin = 44, cout = 37
    var r = RNG(state: 43)
    let x = Tensor(shape: [h, w, cin], values: r.array(h * w * cin))
    let p = Conv3x3Weights(torchWeight: r.array(cout * cin * 9), bias: r.array(cout), cout: cout, cin: cin)
    let yBase = Tensor(uninitialized: [h, w, cout]), yAVX2 = Tensor(uninitialized: [h, w, cout])
    Kernels.winograd43PreferAVX2(false)
    Kernels.conv3x3Winograd43(x: x.ptr, height: h, width: w, p, y: yBase.ptr)
    let avx2 = Kernels.winograd43PreferAVX2(true)
    Kernels.conv3x3Winograd43(x: x.ptr, height: h, width: w, p, y: yAVX2.ptr)
    print(
        "F(4x4,3x3) transforms: baseline vs \(avx2 ? "AVX2" : "baseline (no AVX2 here)"): identical \(yBase.array == yAVX2.array)"
    )
    #expect(yBase.array == yAVX2.array)
}
