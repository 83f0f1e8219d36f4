import Foundation
import GSASR
import GSASRTraining

/// Training-step benchmark: the official timing setup (batch B, LR lr_size, scale 4 so GT is
/// 4·lr_size, dmax from the settings, L1, Adam + EMA) on a deterministic synthetic photo.
/// Reports the median step time, its split into network forward / render + loss (forward and
/// backward) / network backward, peak RSS, and — as the same-run baseline — the network
/// forward's GFLOP/s as a ratio to BLAS sgemm measured in the same process.
public enum TrainBench {
    public struct Report: Codable, Sendable {
        public var config: String
        public var parameters: Int
        public var batch: Int
        public var lrSize: Int
        public var steps: Int
        public var stepSeconds: Double
        public var forwardSeconds: Double
        public var renderSeconds: Double
        public var backwardSeconds: Double
        public var optimizerSeconds: Double
        public var forwardGFLOPS: Double
        public var sgemmGFLOPS: Double
        public var forwardToSgemmRatio: Double
        public var peakRSSMiB: Double
        /// Seconds per step in each part of the official module tree, forward and backward
        /// (means over the timed steps; ``StepProfile``).
        public var layers: [StepProfile.Part] = []
        /// The mean step time over the same steps (the table's shares are of it).
        public var meanStepSeconds = 0.0
        /// The BLAS and its best reachable sgemm (set by `gsasr bench`, which can spawn itself).
        public var blas: BLASBench.Report? = nil
    }

    /// The golden small configuration and the paper configuration.
    public static func settings(named name: String) -> TrainingSettings? {
        var s = TrainingSettings()
        switch name {
        case "small":
            s.encoder = EDSRConfig(numFeat: 32, numBlock: 2)
            s.decoder = Fea2GSConfig(
                inchannel: 32, channel: 48, numHeads: 3, numCrossattnBlocks: 1, numCrossattnLayers: 2,
                numSelfattnBlocks: 1, numSelfattnLayers: 2, numGsSeed: 16, windowSize: 4, shuffleScale1: 2,
                shuffleScale2: 2)
        case "paper":
            break  // TrainingSettings' defaults are the paper yml's networks
        default:
            return nil
        }
        return s
    }

    public static func run(settings base: TrainingSettings, name: String, batch: Int, lrSize: Int, steps: Int) throws
        -> Report
    {
        var s = base
        s.batchSize = batch
        s.lrSize = lrSize
        s.initAlphaBias = s.initAlphaBias ?? -3
        let side = 4 * lrSize + 8
        var bytes = [UInt8](repeating: 0, count: side * side * 3)
        for y in 0..<side {
            for x in 0..<side {
                for c in 0..<3 {
                    let v =
                        0.5 + 0.3 * sin(Double(x) * 0.21 + Double(c)) * cos(Double(y) * 0.17) + 0.15
                        * sin(Double(x * y) * 0.003)
                    bytes[(y * side + x) * 3 + c] = UInt8(max(0, min(255, (v * 255).rounded())))
                }
            }
        }
        let photos = TrainingPhotos(photos: [
            TrainingPhotos.Photo(name: "synthetic", width: side, height: side, bytes: bytes)
        ])
        let ds = ContinuousBicubicDataset(
            photos: photos, lrSize: lrSize, scaleMin: 4, scaleMax: 4, flatThreshold: 0, seed: 1)
        let trainer = Trainer(settings: s, model: try Trainer.initialModel(s))
        var times: [(step: Double, fwd: Double, render: Double, bwd: Double)] = []
        let profile = StepProfile()
        for it in 0...steps {  // the first step is a warm-up
            if it == 1 { trainer.profile = profile }
            let b = ds.batch(start: it * batch, count: batch)
            let t0 = Date()
            let r = try trainer.step(b)
            let dt = Date().timeIntervalSince(t0)
            if it > 0 { times.append((dt, r.step.forwardSeconds, r.step.renderSeconds, r.step.backwardSeconds)) }
        }
        let meanStep = times.reduce(0) { $0 + $1.step } / Double(times.count)
        times.sort { $0.step < $1.step }
        let m = times[times.count / 2]
        let fwdFlops =
            Double(batch)
            * (trainer.model.encoder.flops(height: lrSize, width: lrSize)
                + trainer.model.decoder.flops(featureHeight: lrSize, featureWidth: lrSize))
        let sg = PipelineBench.sgemmGFLOPS()
        let fg = fwdFlops / m.fwd / 1e9
        return Report(
            config: name, parameters: trainer.parameters.reduce(0) { $0 + $1.param.value.count }, batch: batch,
            lrSize: lrSize, steps: steps, stepSeconds: m.step, forwardSeconds: m.fwd, renderSeconds: m.render,
            backwardSeconds: m.bwd, optimizerSeconds: m.step - m.fwd - m.render - m.bwd, forwardGFLOPS: fg,
            sgemmGFLOPS: sg, forwardToSgemmRatio: fg / sg, peakRSSMiB: ProcessStats.peakRSSMiB(),
            layers: profile.parts.map {
                var p = $0
                p.forwardSeconds /= Double(steps)
                p.backwardSeconds /= Double(steps)
                return p
            }, meanStepSeconds: meanStep)
    }

    public static func format(_ r: Report) -> String {
        String(
            format: """
                train step, %@ config (%d parameters), batch %d, LR %d, scale 4, median of %d steps after 1 warm-up:
                  step %.3f s = network forward %.3f s + render and loss (fwd+bwd) %.3f s + network backward %.3f s + Adam/EMA %.3f s
                  network forward %.1f GFLOP/s; sgemm (same run) %.1f GFLOP/s; ratio %.2f
                  peak RSS %.0f MiB
                """, r.config, r.parameters, r.batch, r.lrSize, r.steps, r.stepSeconds, r.forwardSeconds,
            r.renderSeconds, r.backwardSeconds, r.optimizerSeconds, r.forwardGFLOPS, r.sgemmGFLOPS,
            r.forwardToSgemmRatio, r.peakRSSMiB)
            + layerTable(r)
            + (r.blas.map {
                "\n" + BLASBench.format($0)
                    + String(format: "\nnetwork forward / best sgemm ratio %.2f", r.forwardGFLOPS / $0.bestSgemmGFLOPS)
            } ?? "")
    }

    /// The per-layer table (Markdown), mean seconds per step; the share is of the whole step.
    static func layerTable(_ r: Report) -> String {
        guard !r.layers.isEmpty else { return "" }
        let step = r.meanStepSeconds
        var out = String(format: "\n\nper part, mean of the %d timed steps (mean step %.3f s):", r.steps, step)
        out +=
            "\n\n| part (official module) | forward s | backward s | total s | share of the step |\n|---|---|---|---|---|"
        for p in r.layers {
            out += String(
                format: "\n| %@ | %.3f | %.3f | %.3f | %.1f %% |", p.name, p.forwardSeconds, p.backwardSeconds,
                p.seconds,
                100 * p.seconds / step)
        }
        let covered = r.layers.reduce(0) { $0 + $1.seconds }
        out += String(
            format: "\n| (not in a part: batch copies, bookkeeping) | | | %.3f | %.1f %% |", step - covered,
            100 * (step - covered) / step)
        return out
    }
}
