import Foundation
import GSASRRaster
import GSASRTensor

/// One training pair as the official `ContinuousBicubicDownsampleDataset` makes it.
public struct TrainingPair: Sendable {
    /// LR input, lrSize × lrSize × 3 (HWC RGB, float, not rounded).
    public var lr: [Float]
    public var lrSize: Int
    /// GT crop, gtSize × gtSize × 3 (HWC RGB).
    public var gt: [Float]
    public var gtSize: Int
    /// gt_size / lr_size in Float32: the decoder's scale input and the renderer's scale.
    public var scaleModify: Float

    public init(lr: [Float], lrSize: Int, gt: [Float], gtSize: Int, scaleModify: Float) {
        self.lr = lr
        self.lrSize = lrSize
        self.gt = gt
        self.gtSize = gtSize
        self.scaleModify = scaleModify
    }
}

/// What one forward/backward over a batch measured.
public struct StepResult: Sendable {
    /// The batch loss (mean of per-sample L1 means).
    public var loss: Float
    public var perSampleLoss: [Float]
    /// Seconds spent in the network forward, render + loss, and backward (network + render).
    public var forwardSeconds = 0.0, renderSeconds = 0.0, backwardSeconds = 0.0

    public init(loss: Float, perSampleLoss: [Float]) {
        self.loss = loss
        self.perSampleLoss = perSampleLoss
    }
}

/// Optional taps into a step (for the parity tests).
public struct StepTaps {
    public var encoderOutput: ((Int, Tensor) -> Void)?
    public var rawGaussians: ((Int, Tensor) -> Void)?
    public var render: ((Int, [Float]) -> Void)?
    public var rawGradient: ((Int, Tensor) -> Void)?
    public var featureGradient: ((Int, Tensor) -> Void)?
    public init() {}
}

extension GSASRModel {
    /// The official `optimize_parameters` up to `loss.backward()`: for each sample, encoder on
    /// the unpadded LR, decoder with scale_modify, render at gt_size × gt_size with
    /// step = 1.2/scale_modify, L1 against the GT; the gradient of the batch loss is accumulated
    /// into `grads` (not zeroed here). Samples run one after another (activations of one sample
    /// at a time), which computes the same gradient as a batched forward. `batchSize` is the
    /// batch the loss averages over (default: `batch.count`; the trainer passes one sample at a
    /// time with the global batch size).
    public func lossAndGradients(
        _ batch: [TrainingPair], rasterizer: Rasterizer, loss: L1Loss = L1Loss(), grads: Gradients,
        taps: StepTaps = StepTaps(), profile: StepProfile? = nil, scratch: TrainingScratch? = nil,
        batchSize: Int? = nil
    ) -> StepResult {
        var result = StepResult(loss: 0, perSampleLoss: [])
        let ws = decoder.config.windowSize
        var total = 0.0
        for (b, s) in batch.enumerated() {
            precondition(s.lrSize % ws == 0, "lr_size \(s.lrSize) is not a multiple of the window size \(ws)")
            precondition(s.lr.count == s.lrSize * s.lrSize * 3 && s.gt.count == s.gtSize * s.gtSize * 3)
            var t0 = Date()
            let x = Tensor(shape: [s.lrSize, s.lrSize, 3], values: s.lr)
            let (feat, encCtx) = encoder.encode(
                x, height: s.lrSize, width: s.lrSize, saving: true, profile: profile, step: { _, _ in })
            taps.encoderOutput?(b, feat)
            let (raw, decCtx) = decoder.forward(
                feat, height: s.lrSize, width: s.lrSize, scale: s.scaleModify, saving: scratch ?? TrainingScratch(),
                profile: profile, step: { _, _ in })
            taps.rawGaussians?(b, raw)
            result.forwardSeconds += Date().timeIntervalSince(t0)
            t0 = Date()
            let rawArray = raw.array
            let render = timed(profile, "rasterizer", .forward) {
                rasterizer.render(raw: rawArray, width: s.gtSize, height: s.gtSize, scale: s.scaleModify)
            }
            taps.render?(b, render)
            let tLoss = StepProfile.now()
            let l = loss.value(render, s.gt)
            result.perSampleLoss.append(l)
            total += Double(l)
            let dRender = loss.gradient(render, s.gt, batchSize: batchSize ?? batch.count)
            profile?.add("L1 loss (value and gradient)", .forward, since: tLoss)
            let dRawArray = timed(profile, "rasterizer", .backward) {
                rasterizer.renderBackward(
                    raw: rawArray, width: s.gtSize, height: s.gtSize, scale: s.scaleModify, upstream: dRender)
            }
            result.renderSeconds += Date().timeIntervalSince(t0)
            t0 = Date()
            let dRaw = Tensor(shape: raw.shape, values: dRawArray)
            taps.rawGradient?(b, dRaw)
            let dFeat = decoder.backward(decCtx!, dRaw: dRaw, grads: grads, profile: profile)
            taps.featureGradient?(b, dFeat)
            encoder.backward(encCtx!, dOut: dFeat, grads: grads, profile: profile)
            result.backwardSeconds += Date().timeIntervalSince(t0)
        }
        // The batch loss in float32 as torch sums the per-sample means: ((l0 + l1) + ...) / B.
        var sum: Float = 0
        for l in result.perSampleLoss { sum += l }
        result.loss = sum / Float(batch.count)
        _ = total
        return result
    }
}
