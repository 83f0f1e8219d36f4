import Foundation
import GSASR
import Testing

/// Parity of the whole pipeline with the official PyTorch code, small config (fixtures copied
/// from shared/golden/small). Tolerances are the issue's: enc/gs |d| ≤ 1e-4 + 1e-4·|ref|;
/// SR mean|d| ≤ 1e-5, max|d| ≤ 3e-3; PNG ≤ 0.2 % bytes differ, by at most 1.
@Suite(.serialized) struct SmallParityTests {
    static let model: GSASRModel = try! GSASRModel.load(directory: Fixtures.url("small"))

    @Test func inferredConfigMatchesOfficialKwargs() throws {
        let c = Self.model.decoder.config
        #expect(
            c
                == Fea2GSConfig(
                    inchannel: 32, channel: 48, numHeads: 3, numCrossattnBlocks: 1, numCrossattnLayers: 2,
                    numSelfattnBlocks: 1, numSelfattnLayers: 2, numGsSeed: 16, windowSize: 4, shuffleScale1: 2,
                    shuffleScale2: 2))
        #expect((Self.model.encoder as? EDSRNOUP)?.config == EDSRConfig(numFeat: 32, numBlock: 2))
        #expect(Self.model.denominator == 12)
    }

    @Test(arguments: ["astronaut_48x48", "coffee_37x50"])
    func encoderFeatures(image: String) throws {
        let lr = try Fixtures.lr(image)
        let up = Upscaler(model: Self.model, mode: .exact)
        let plan = try up.plan(width: lr.width, height: lr.height, request: ScaleRequest(scale: 4, geometry: .official))
        let feat = up.encode(rgb: lr.pixels, plan: plan)
        let ref = try Fixtures.npy(Fixtures.url("small/\(image)_enc_feat_f32.npy"))
        let d = Diff(feat.array, nchwToHWC(ref.floats, c: ref.shape[1], h: ref.shape[2], w: ref.shape[3]))
        print("[small] \(image) enc_feat: \(d)")
        #expect(d.worstRatio <= 1)
    }

    @Test(arguments: ["astronaut_48x48", "coffee_37x50"], [1.7, 2, 3.5, 4, 11.3])
    func pipeline(image: String, scale: Double) throws {
        let lr = try Fixtures.lr(image)
        let tag = "small/\(image)_x\(scaleTag(scale))"
        // gs_params
        let up = Upscaler(model: Self.model, mode: .exact)
        // The official geometry: the goldens come from the official code (GaussianGeometry).
        let plan = try up.plan(
            width: lr.width, height: lr.height, request: ScaleRequest(scale: scale, geometry: .official))
        var t = Upscaler.Timings()
        let gs = up.gaussians(rgb: lr.pixels, plan: plan, timings: &t)
        let gsRef = try Fixtures.npy(Fixtures.url("\(tag)_gs_params_f32.npy"))
        #expect(gs.shape == gsRef.shape)
        let dg = Diff(gs.array, gsRef.floats)
        print("[small] \(image) x\(scale) gs_params: \(dg)")
        #expect(dg.worstRatio <= 1)
        // SR float image, for both raster modes.
        let srRef = try Fixtures.npy(Fixtures.url("\(tag)_sr_f32.npy"))
        var renders: [[Float]] = []
        for mode in [RasterMode.exact, RasterMode.fast] {
            let r = try Upscaler(model: Self.model, mode: mode).upscale(
                rgb: lr.pixels, width: lr.width, height: lr.height,
                request: ScaleRequest(scale: scale, geometry: .official))
            renders.append(r.pixels)
            #expect([r.height, r.width, 3] == srRef.shape)
            let ds = Diff(r.pixels, srRef.floats)
            let png = try pngDifference(r.pixels, goldenPNG: Fixtures.url("\(tag)_sr.png"))
            print(
                "[small] \(image) x\(scale) \(mode) SR: \(ds); PNG bytes differing \(String(format: "%.4f", png.fraction * 100)) % (max \(png.maxDiff))"
            )
            #expect(ds.meanAbs <= 1e-5)
            #expect(ds.maxAbs <= 3e-3)
            #expect(png.fraction <= 0.002)
            #expect(png.maxDiff <= 1)
        }
        // Fast mode (footprint also bounded by the Gaussian's own extent) vs exact mode.
        let fastVsExact = Diff(renders[1], renders[0])
        print("[small] \(image) x\(scale) fast vs exact: max|d| \(String(format: "%.3e", fastVsExact.maxAbs))")
        #expect(fastVsExact.maxAbs <= 1e-5)
    }

    /// Decoder intermediates, to localise a regression.
    @Test func decoderIntermediates() throws {
        let lr = try Fixtures.lr("astronaut_48x48")
        let ref = try Fixtures.npy(Fixtures.url("small/astronaut_48x48_enc_feat_f32.npy"))
        let feat = Tensor(shape: [48, 48, 32], values: nchwToHWC(ref.floats, c: 32, h: 48, w: 48))
        _ = lr
        var taps: [String: Tensor] = [:]
        _ = Self.model.decoder(feat, height: 48, width: 48, scale: 4) { name, t in
            taps[name] = Tensor(shape: t.shape, values: t.array)
        }
        let dir = "small/intermediates_astronaut_48x48_x4/"
        func check(_ tap: String, _ file: String, transform: ([Float]) -> [Float] = { $0 }) throws {
            let r = try Fixtures.npy(Fixtures.url(dir + file + ".npy"))
            guard let t = taps[tap] else {
                Issue.record("no tap \(tap)")
                return
            }
            let d = Diff(transform(t.array), r.floats)
            print("[small] intermediate \(file): \(d)")
            #expect(d.worstRatio <= 1)
        }
        try check("scale_embedding", "scale_embedding")
        try check("img_feat_proj", "img_feat_proj") { hwc in
            // ours (48·48 × 48) HWC → NCHW
            var o = [Float](repeating: 0, count: hwc.count)
            for p in 0..<48 * 48 { for c in 0..<48 { o[c * 48 * 48 + p] = hwc[p * 48 + c] } }
            return o
        }
        try check("after_window_crossattn_block0_layer0", "after_window_crossattn_block0_layer0")
        try check("after_window_crossattn_block0", "after_window_crossattn_block0")
        try check("after_gs_selfattn_block0_layer0", "after_gs_selfattn_block0_layer0")
        try check("after_last_gs_selfattn_block", "after_last_gs_selfattn_block")
        try check("after_UPNet", "after_UPNet") { hwc in
            // ours (192 × 192 × 48) HWC → NCHW top-left 32×32 crop
            var o = [Float](repeating: 0, count: 48 * 32 * 32)
            for c in 0..<48 {
                for y in 0..<32 { for x in 0..<32 { o[(c * 32 + y) * 32 + x] = hwc[(y * 192 + x) * 48 + c] } }
            }
            return o
        }
    }
}
