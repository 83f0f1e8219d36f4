import Foundation
import GSASR
import Testing

@Suite struct ScaleRequestTests {
    /// 1000x563 → 1920x1080 is the isotropic scale up to rounding; the plan's output is exact.
    @Test func isotropicUpToRounding() throws {
        let r = try ScaleRequest.resolve(
            inputWidth: 1000, inputHeight: 563, scale: nil, size: (1920, 1080), width: nil, height: nil)
        #expect(r.isIsotropic)
        #expect(Int((r.scaleX * 1000).rounded(.down)) == 1920 && Int((r.scaleY * 563).rounded(.down)) == 1080)
        let keep = try ScaleRequest.resolve(
            inputWidth: 1000, inputHeight: 563, scale: nil, size: nil, width: 1000, height: nil)
        #expect(keep.isIsotropic && Int((keep.scaleY * 563).rounded(.down)) == 563)
        let up = Upscaler(model: try GSASRModel.load(directory: Fixtures.url("small")))
        let p = try up.plan(width: 1000, height: 563, request: r)
        #expect(p.outputWidth == 1920 && p.outputHeight == 1080)
        // Exact geometry: one scale, 1920/1000, that spans the width exactly.
        #expect(r.scaleX == 1.92)
        // Every size from 1x to 3x on an awkward input is met exactly, in both geometries; with
        // the exact one, each axis's scale is the target over the input within a few ulps.
        for geometry in GaussianGeometry.allCases {
            for tw in stride(from: 37, through: 111, by: 1) {
                for th in [50, 77, 100, 150] {
                    let q = try ScaleRequest.resolve(
                        inputWidth: 37, inputHeight: 50, scale: nil, size: (tw, th), width: nil, height: nil,
                        geometry: geometry)
                    let pq = try up.plan(width: 37, height: 50, request: q)
                    #expect(pq.outputWidth == tw && pq.outputHeight == th, "\(tw)x\(th) \(geometry)")
                    if geometry == .exact && !q.isIsotropic {
                        #expect(abs(q.scaleX * 37 - Double(tw)) < 1e-12 && abs(q.scaleY * 50 - Double(th)) < 1e-12)
                    }
                }
            }
            for tw in stride(from: 37, through: 400, by: 7) {
                let q = try ScaleRequest.resolve(
                    inputWidth: 37, inputHeight: 50, scale: nil, size: nil, width: tw, height: nil, geometry: geometry)
                #expect(try up.plan(width: 37, height: 50, request: q).outputWidth == tw)
            }
        }
    }

    @Test func anisotropicUsesOneScalePerAxisAndTheGeometricMean() throws {
        // Exact geometry: the exact ratios (the 100 input pixels span the 400 and 200 output ones).
        let r = try ScaleRequest.resolve(
            inputWidth: 100, inputHeight: 100, scale: nil, size: (400, 200), width: nil, height: nil)
        #expect(!r.isIsotropic && r.geometry == .exact)
        #expect(r.scaleX == 4 && r.scaleY == 2)
        // Official geometry: the middle of each interval, as before the exact geometry.
        let o = try ScaleRequest.resolve(
            inputWidth: 100, inputHeight: 100, scale: nil, size: (400, 200), width: nil, height: nil,
            geometry: .official)
        #expect(!o.isIsotropic && o.geometry == .official)
        #expect(abs(o.scaleX - 4.005) < 1e-12 && abs(o.scaleY - 2.005) < 1e-12)
        #expect(abs(r.conditioning - (r.scaleX * r.scaleY).squareRoot()) < 1e-12)
        #expect(throws: UpscaleError.self) {
            _ = try ScaleRequest.resolve(inputWidth: 100, inputHeight: 100, scale: 2, size: (400, 200), width: nil, height: nil)
        }
        #expect(throws: UpscaleError.self) {
            _ = try ScaleRequest.resolve(inputWidth: 100, inputHeight: 100, scale: nil, size: (400, 99), width: nil, height: nil)
        }
    }

    /// The per-axis kernels: x sigmas as if the whole image had scaleX, y sigmas as with scaleY;
    /// correlation, positions and colours unchanged. Equal scales give the official kernels bit for bit.
    @Test func perAxisKernels() {
        var raw: [Float] = []
        var rng = SplitMix64(seed: 3)
        for _ in 0..<(50 * 9) { raw.append(Float(rng.normal())) }
        let w = 90, h = 70
        let a = GaussianActivation.kernels(fromRaw: raw, width: w, height: h, scale: 3)
        let b = GaussianActivation.kernels(fromRaw: raw, width: w, height: h, scale: 2)
        let ab = raw.withUnsafeBufferPointer {
            GaussianActivation.kernels(fromRaw: $0, width: w, height: h, scaleX: 3, scaleY: 2)
        }
        let same = raw.withUnsafeBufferPointer {
            GaussianActivation.kernels(fromRaw: $0, width: w, height: h, scaleX: 3, scaleY: 3)
        }
        #expect(same.sigmas == a.sigmas && same.coords == a.coords && same.colors == a.colors)
        for i in 0..<50 {
            #expect(ab.sigmas[3 * i] == a.sigmas[3 * i])
            #expect(ab.sigmas[3 * i + 1] == b.sigmas[3 * i + 1])
            #expect(ab.sigmas[3 * i + 2] == a.sigmas[3 * i + 2])
        }
        #expect(ab.coords == a.coords && ab.colors == a.colors)
    }

    /// Decimal only: hexadecimal floats, nan/inf and trailing bytes are refused.
    @Test func decimalNumbersOnly() {
        for (text, value) in [("4", 4.0), ("3.7", 3.7), (".5", 0.5), ("2.", 2), ("+1e1", 10), ("-2E-1", -0.2)] {
            #expect(DecimalNumber.double(text) == value, "\(text)")
        }
        for text in ["", "0x10", "0x1p4", "nan", "inf", "infinity", "2\u{0}", "2 ", " 2", "1e", "e5", ".", "+", "1e400", "2,5"] {
            #expect(DecimalNumber.double(text) == nil, "\(text) accepted")
        }
        #expect(DecimalNumber.int("96") == 96 && DecimalNumber.int("-3") == -3)
        for text in ["", "0x60", "96.0", "9 6", "1e2", "99999999999999999999"] {
            #expect(DecimalNumber.int(text) == nil, "\(text) accepted")
        }
    }
}
