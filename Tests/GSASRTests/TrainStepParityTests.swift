import Foundation
import GSASR
import GSASRRaster
import GSASRTensor
import Testing

/// Parity of one training step with the official training code (../shared/golden/train_step):
/// loss, renders, intermediate gradients and the gradient of every one of the 184 parameters.
@Suite(.serialized, .enabled(if: TrainGolden.available, "needs ../shared/golden/train_step (present in CI)"))
struct TrainStepParityTests {
    static let rasterizer = Rasterizer(mode: .exact, dmax: 0.5)

    /// Tensors whose gradient is rounding noise around an exact zero (README §5 item 7).
    static func isNoise(_ key: String) -> Bool { key.hasSuffix("khead.bias") }

    struct Captured {
        var enc: [[Float]] = [[], []], raw: [[Float]] = [[], []], render: [[Float]] = [[], []]
        var dRaw: [[Float]] = [[], []], dFeat: [[Float]] = [[], []]
    }

    static func runStep(_ model: GSASRModel, grads: Gradients) throws -> (StepResult, Captured) {
        var cap = Captured()
        var taps = StepTaps()
        taps.encoderOutput = { b, t in cap.enc[b] = t.array }
        taps.rawGaussians = { b, t in cap.raw[b] = t.array }
        taps.render = { b, r in cap.render[b] = r }
        taps.rawGradient = { b, t in cap.dRaw[b] = t.array }
        taps.featureGradient = { b, t in cap.dFeat[b] = t.array }
        let r = model.lossAndGradients(try TrainGolden.batch(), rasterizer: rasterizer, grads: grads, taps: taps)
        return (r, cap)
    }

    @Test func forwardLossAndGradientsMatchOfficial() throws {
        let model = try TrainGolden.model()
        let grads = Gradients()
        let (result, cap) = try Self.runStep(model, grads: grads)

        // Loss (float32 bit pattern 3e48c335) and per-sample losses.
        let lossErr = abs(Double(result.loss) - 0.19605715572834015)
        print(String(format: "loss %.9f (official 0.196057156), |d| %.2e", result.loss, lossErr))
        #expect(lossErr <= 1e-6)
        #expect(abs(Double(result.perSampleLoss[0]) - 0.21972809731960297) <= 1e-6)
        #expect(abs(Double(result.perSampleLoss[1]) - 0.17238621413707733) <= 1e-6)

        let encRef = try NPY.load(TrainGolden.url("forward/enc_feat_f32.npy")).floats
        let rawRef = try NPY.load(TrainGolden.url("forward/gs_params_f32.npy")).floats
        let dRawRef = try NPY.load(TrainGolden.url("forward/d_loss_d_gs_params_f32.npy")).floats
        let dFeatRef = try NPY.load(TrainGolden.url("forward/d_loss_d_enc_feat_f32.npy")).floats
        let n = 24 * 24 * 32, nraw = 9216 * 9
        for (b, name) in ["A_chelsea_60x60", "B_rocket_78x78"].enumerated() {
            let enc = Diff(cap.enc[b], nchwToHWC(Array(encRef[b * n..<(b + 1) * n]), c: 32, h: 24, w: 24))
            print("sample \(b) enc_feat: \(enc)")
            #expect(enc.worstRatio <= 1)
            let raw = Diff(cap.raw[b], Array(rawRef[b * nraw..<(b + 1) * nraw]))
            print("sample \(b) gs_params: \(raw)")
            #expect(raw.worstRatio <= 1)
            let rRef = try NPY.load(TrainGolden.url("forward/render_\(name)_f32.npy")).floats
            let rd = Diff(cap.render[b], rRef)
            print("sample \(b) render: \(rd)")
            #expect(rd.maxAbs <= 5e-4 && rd.meanAbs <= 1e-5)
            let g = GradCheck(cap.dRaw[b], Array(dRawRef[b * nraw..<(b + 1) * nraw]))
            print(String(format: "sample %d dL/dgs_params: rel L2 %.2e, failing %d", b, g.relL2, g.failing))
            #expect(g.relL2 <= 2e-3 && g.failing == 0)
            let gf = GradCheck(cap.dFeat[b], nchwToHWC(Array(dFeatRef[b * n..<(b + 1) * n]), c: 32, h: 24, w: 24))
            print(String(format: "sample %d dL/denc_feat: rel L2 %.2e, failing %d", b, gf.relL2, gf.failing))
            #expect(gf.relL2 <= 2e-3 && gf.failing == 0)
        }

        // Every parameter's gradient.
        let ref = try TrainGolden.npz("step1/grads_f32.npz")
        let params =
            model.encoderState.parameters.map { ("encoder." + $0.key, $0) }
            + model.decoderState.parameters.map { ("decoder." + $0.key, $0) }
        #expect(params.count == 184)
        #expect(ref.count == 184)
        var worstRel = 0.0, worstKey = "", failing = 0
        for (key, p) in params {
            guard let r = ref[key] else {
                Issue.record("golden has no gradient for \(key)")
                continue
            }
            #expect(r.shape == p.torchShape, "\(key): shape \(p.torchShape) vs golden \(r.shape)")
            let g = p.torchValues(of: grads.of(p.value))
            if Self.isNoise(p.key) {
                let m = g.map { abs($0) }.max() ?? 0
                #expect(m <= 1e-8, "\(key): noise gradient \(m)")
                continue
            }
            let c = GradCheck(g, r.floats)
            if c.failing > 0 || c.relL2 > 2e-3 {
                failing += 1
                print(String(format: "FAIL %@: rel L2 %.2e, %d elements out of tolerance", key, c.relL2, c.failing))
            }
            if c.relL2 > worstRel {
                worstRel = c.relL2
                worstKey = key
            }
        }
        print(String(format: "parameter gradients: worst rel L2 %.2e (%@), %d tensors failing", worstRel, worstKey, failing))
        #expect(failing == 0)
    }
}
