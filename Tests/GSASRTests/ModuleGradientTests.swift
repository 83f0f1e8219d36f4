import Foundation
import GSASR
import GSASRTensor
import Testing

/// Every module's backward against float64 central finite differences.
///
/// A tiny from-scratch model (EDSRNOUP: 6 features, 2 blocks; Fea2GS: 8 channels, 2 heads, two
/// cross-attention and two self-attention layers, 4 seeds per window of 2, shuffles 2 and 1) on
/// a 4x6 input. ``Reference64`` recomputes its forward in float64 from the state dict; first it
/// must agree with our float32 forward. Then for each module (every convolution, linear layer,
/// LayerNorm, MLP, multi-head attention, relative-position table, embedding and head: the
/// parameters sharing a key prefix) the module's parameters move along a random direction d
/// (|dᵢ| = 1e-6 of the parameter's RMS), and the directional derivative of L = Σ raw·R (fixed
/// random R) from our backward, Σ ∂L/∂θ·d, is compared with the float64 difference
/// (L₆₄(θ + d) − L₆₄(θ − d)) / 2, to 1e-3 of it (plus the difference's own float64
/// resolution). A step that small keeps the ± pair clear of the ReLU kinks. The backward reaches every module through the chain rule, so
/// the input gradients of the modules downstream are checked too.
@Suite struct ModuleGradientTests {
    static let decoder = Fea2GSConfig(
        inchannel: 6, channel: 8, numHeads: 2, numCrossattnBlocks: 1, numCrossattnLayers: 2, numSelfattnBlocks: 1,
        numSelfattnLayers: 2, numGsSeed: 4, windowSize: 2, shuffleScale1: 2, shuffleScale2: 1)

    @Test func everyModuleMatchesFloat64FiniteDifferences() throws {
        let model = try GSASRModel.initialized(
            EDSRNOUP.self, encoder: EDSRConfig(numFeat: 6, numBlock: 2), decoder: Self.decoder, seed: 21)
        var rng = SplitMix64(seed: 11)
        let h = 4, w = 6, scale: Float = 2.6
        let xs = (0..<(h * w * 3)).map { _ in Float(rng.uniform()) }
        let x = Tensor(shape: [h, w, 3], values: xs)
        let (feat, encCtx) = model.encoder.encode(x, height: h, width: w, saving: true, profile: nil, step: { _, _ in })
        let (raw, decCtx) = model.decoder.forward(
            feat, height: h, width: w, scale: scale, saving: TrainingScratch(), step: { _, _ in })
        var ref = Reference64(model: model)
        func raw64(_ r: Reference64) -> [Double] {
            r.decoder(r.encoder(xs.map(Double.init), h: h, w: w), hp: h, wp: w, scale: scale)
        }
        let r0 = raw64(ref)
        let forwardError = zip(raw.array, r0).map { abs(Double($0) - $1) }.max()!
        print("float64 reference forward vs ours: max abs error \(forwardError) over \(r0.count) raw outputs")
        #expect(r0.count == raw.count && forwardError < 1e-4)

        let weights = (0..<raw.count).map { _ in 2 * rng.uniform() - 1 }
        let grads = Gradients()
        let dFeat = model.decoder.backward(
            decCtx!, dRaw: Tensor(shape: raw.shape, values: weights.map { Float($0) }), grads: grads)
        model.encoder.backward(encCtx!, dOut: dFeat, grads: grads, profile: nil)
        func loss(_ r: Reference64) -> Double { zip(raw64(r), weights).reduce(0) { $0 + $1.0 * $1.1 } }
        // What a float64 difference of L can resolve: a few ulps of the sum of |terms| (a module
        // whose effect on L is below this, such as the cross-attention q/k heads at a random
        // initialisation, with logits near zero, is checked to this absolute level).
        let resolution = 10 * Double.ulpOfOne * zip(r0, weights).reduce(0) { $0 + abs($1.0 * $1.1) }

        let params =
            model.encoderState.parameters.map { ("encoder." + $0.key, $0) }
            + model.decoderState.parameters.map { ("decoder." + $0.key, $0) }
        var modules: [String: [(String, NamedParameter)]] = [:], order: [String] = []
        for (key, p) in params {
            let m = String(key[..<key.lastIndex(of: ".")!])
            if modules[m] == nil { order.append(m) }
            modules[m, default: []].append((key, p))
        }
        var worst = 0.0, worstModule = ""
        for m in order {
            var analytic = 0.0, plus = ref, minus = ref
            for (key, p) in modules[m]! {
                let v = ref.p[key]!
                let rms = (v.reduce(0) { $0 + $1 * $1 } / Double(v.count)).squareRoot()
                let step = max(rms, 0.1) * 1e-6
                let d = v.indices.map { _ in rng.next() & 1 == 0 ? step : -step }
                let g = p.torchValues(of: grads.of(p.value))
                analytic += zip(g, d).reduce(0) { $0 + Double($1.0) * $1.1 }
                plus.p[key] = zip(v, d).map { $0 + $1 }
                minus.p[key] = zip(v, d).map { $0 - $1 }
            }
            let fd = (loss(plus) - loss(minus)) / 2
            let err = abs(fd - analytic) / max(abs(fd), 1e-300)
            if abs(fd) > 1000 * resolution, err > worst { (worst, worstModule) = (err, m) }
            #expect(
                abs(fd - analytic) <= 1e-3 * abs(fd) + resolution,
                "\(m): backward \(analytic), float64 finite difference \(fd) (resolution \(resolution))")
        }
        ref.p = [:]
        print(
            "module gradients vs float64 finite differences: \(order.count) modules, worst relative error \(worst) (\(worstModule)) among those whose difference is over 1000x the float64 resolution \(resolution)"
        )
        #expect(order.count > 60)
    }
}
