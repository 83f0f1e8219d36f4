import Foundation
import GSASR
import GSASRImage

/// A training run in a folder:
///
///     RUN/checkpoint.safetensors   resumable state (``Trainer/saveCheckpoint(to:wallSeconds:)``)
///     RUN/log.jsonl                one JSON object per logged iteration or validation
///     RUN/curve.svg                loss and validation curves, redrawn at every validation
///     RUN/model/                   the EMA networks, exported at every checkpoint
///
/// A new run refuses a folder that already holds a checkpoint (resume it instead), so an
/// existing checkpoint is never overwritten by a different run.
public final class TrainingRun {
    public let folder: URL
    public let trainer: Trainer
    public var totalIter: Int
    public var valFreq: Int
    public var printFreq: Int
    public var saveFreq: Int
    /// Also checkpoint when this many seconds passed since the last one (ours; 0 disables).
    public var checkpointSeconds: Double = 600
    public var output: (String) -> Void = { print($0) }
    let valImages: [Image]

    public var checkpointURL: URL { folder.appendingPathComponent("checkpoint.safetensors") }
    public var logURL: URL { folder.appendingPathComponent("log.jsonl") }
    public var curveURL: URL { folder.appendingPathComponent("curve.svg") }
    public var modelURL: URL { folder.appendingPathComponent("model") }

    public static func checkpointURL(in folder: URL) -> URL { folder.appendingPathComponent("checkpoint.safetensors") }

    public init(folder: URL, trainer: Trainer, settings s: TrainingSettings) throws {
        self.folder = folder
        self.trainer = trainer
        totalIter = s.totalIter
        valFreq = s.valFreq
        printFreq = s.printFreq
        saveFreq = s.saveCheckpointFreq
        if let v = s.valFolder {
            valImages = try Evaluation.loadFolder(v).map { Evaluation.centerCrop($0.image, side: s.valCrop) }
        } else {
            valImages = []
        }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        guard FileManager.default.isWritableFile(atPath: folder.path) else {
            throw TrainingError("run folder '\(folder.path)' is not writable")
        }
        // Temporaries of checkpoint writes that a kill interrupted (their writer is gone); the
        // leader's files (set ``Trainer/world`` first).
        if trainer.world.isLeader {
            TrainingFiles.removeStaleTemporaries(of: checkpointURL)
            TrainingFiles.removeStaleTemporaries(of: logURL)
        }
    }

    /// Drops log lines past the checkpoint's iteration (a resumed run rewrites them).
    public func truncateLog(after iteration: Int) throws {
        guard let text = try? String(contentsOf: logURL, encoding: .utf8) else { return }
        var kept: [String] = []
        for line in text.split(separator: "\n") {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let it = obj["iter"] as? Int
            else { continue }
            if it <= iteration { kept.append(String(line)) }
        }
        try TrainingFiles.atomicWrite(
            Data((kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).utf8), to: logURL)
    }

    func appendLog(_ obj: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]) else { return }
        if !FileManager.default.fileExists(atPath: logURL.path) {
            FileManager.default.createFile(atPath: logURL.path, contents: nil)
        }
        if let h = try? FileHandle(forWritingTo: logURL) {
            h.seekToEndOfFile()
            h.write(data + Data("\n".utf8))
            try? h.close()
        }
    }

    /// Validation with the EMA model: mean PSNR-Y of model and bicubic per scale.
    public func validate() throws -> [Evaluation.ScaleResult] {
        guard !valImages.isEmpty else { return [] }
        let up = Upscaler(model: try trainer.emaModel())
        return try Evaluation.evaluate(
            images: valImages, scales: trainer.settings.valScales, upscaler: up, ssim: false)
    }

    /// Trains until `totalIter` (or `stopAfter` more iterations), checkpointing on the way.
    public func run(dataset: ContinuousBicubicDataset, stopAfter: Int? = nil) throws {
        let t = trainer
        let world = t.world
        let leader = world.isLeader
        let prefetch = BatchPrefetcher(
            dataset: dataset, batchSize: t.settings.batchSize, globalBatch: t.settings.batchSize * world.size,
            offset: world.rank * t.settings.batchSize)
        let start = Date()
        var lastSave = Date()
        var windowStart = Date(), windowIters = 0
        var windowLoss = 0.0
        var phase = (forward: 0.0, render: 0.0, backward: 0.0)
        let firstIter = t.iteration
        let last = min(totalIter, stopAfter.map { firstIter + $0 } ?? totalIter)
        func wall() -> Double { t.previousWallSeconds + Date().timeIntervalSince(start) }
        func save() throws {
            try t.saveCheckpoint(to: checkpointURL, wallSeconds: wall())
            try t.exportModel(to: modelURL, metadata: ["trained_iterations": "\(t.iteration)"])
            lastSave = Date()
        }
        while t.iteration < last {
            let batch = prefetch.batch(iteration: t.iteration + 1)
            let r = try t.step(batch)
            guard r.loss.isFinite else {
                throw TrainingError(
                    "loss became \(r.loss) at iteration \(r.iteration); the last checkpoint is kept (lower the learning rate or clip gradients)"
                )
            }
            windowLoss += Double(r.loss)
            phase.forward += r.step.forwardSeconds
            phase.render += r.step.renderSeconds
            phase.backward += r.step.backwardSeconds
            windowIters += 1
            // Rank 0 reports, validates and writes; the others only train.
            guard leader else { continue }
            if r.iteration % printFreq == 0 || r.iteration == last {
                let dt = Date().timeIntervalSince(windowStart)
                let ips = Double(windowIters) / max(dt, 1e-9)
                let eta = Double(totalIter - r.iteration) / max(ips, 1e-9)
                let mean = windowLoss / Double(windowIters)
                output(
                    String(
                        format:
                            "iter %d/%d  loss %.5f  lr %.3g  |g| %.3g  %.2f it/s  ETA %@  (net fwd %.0f%%, render %.0f%%, net bwd %.0f%%)",
                        r.iteration, totalIter, mean, r.learningRate, r.gradNorm, ips, Self.duration(eta),
                        100 * phase.forward / max(dt, 1e-9), 100 * phase.render / max(dt, 1e-9),
                        100 * phase.backward / max(dt, 1e-9)))
                appendLog([
                    "iter": r.iteration, "loss": mean, "lr": r.learningRate, "grad_norm": r.gradNorm, "it_per_s": ips,
                    "wall_s": wall(), "forward_s": phase.forward, "render_s": phase.render,
                    "backward_s": phase.backward,
                ].merging(world.size > 1 ? ["ranks": world.size, "bytes_sent_rank0": world.bytesSent] : [:]) { a, _ in a })
                phase = (0, 0, 0)
                windowStart = Date()
                windowIters = 0
                windowLoss = 0
            }
            if r.iteration % valFreq == 0 || r.iteration == totalIter {
                let v = try validate()
                if !v.isEmpty {
                    let parts = v.map {
                        String(format: "x%g %.2f dB (bicubic %.2f)", $0.scale, $0.model?.psnrY ?? 0, $0.bicubic.psnrY)
                    }
                    output("validation @\(r.iteration): " + parts.joined(separator: ", "))
                    appendLog([
                        "iter": r.iteration,
                        "val": v.map {
                            ["scale": $0.scale, "psnr_y": $0.model?.psnrY ?? 0, "bicubic_psnr_y": $0.bicubic.psnrY]
                        },
                    ])
                }
                try? writeCurve()
            }
            if r.iteration % saveFreq == 0 || r.iteration == last
                || (checkpointSeconds > 0 && Date().timeIntervalSince(lastSave) >= checkpointSeconds)
            {
                try save()
            }
        }
        if leader { try? writeCurve() }
    }

    static func duration(_ s: Double) -> String {
        guard s.isFinite else { return "?" }
        let t = Int(s.rounded())
        return t >= 3600
            ? String(format: "%dh%02dm", t / 3600, (t % 3600) / 60) : String(format: "%dm%02ds", t / 60, t % 60)
    }

    /// Draws the loss (left axis) and the validation gain over bicubic per scale (right axis).
    public func writeCurve() throws {
        guard let text = try? String(contentsOf: logURL, encoding: .utf8) else { return }
        var loss: [(Double, Double)] = []
        var gains: [Double: [(Double, Double)]] = [:]
        for line in text.split(separator: "\n") {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let it = (o["iter"] as? NSNumber)?.doubleValue
            else { continue }
            if let l = (o["loss"] as? NSNumber)?.doubleValue { loss.append((it, l)) }
            if let v = o["val"] as? [[String: Any]] {
                for e in v {
                    if let s = (e["scale"] as? NSNumber)?.doubleValue, let p = (e["psnr_y"] as? NSNumber)?.doubleValue,
                        let b = (e["bicubic_psnr_y"] as? NSNumber)?.doubleValue
                    {
                        gains[s, default: []].append((it, p - b))
                    }
                }
            }
        }
        try TrainingFiles.atomicWrite(Data(Self.svg(loss: loss, gains: gains).utf8), to: curveURL)
    }

    static func svg(loss: [(Double, Double)], gains: [Double: [(Double, Double)]]) -> String {
        let w = 720.0, h = 360.0, l = 60.0, r = 60.0, t = 30.0, b = 40.0
        let maxIt = max(1, (loss.map(\.0) + gains.values.flatMap { $0.map(\.0) }).max() ?? 1)
        let lossVals = loss.map(\.1)
        let lmin = lossVals.min() ?? 0, lmax = max((lossVals.max() ?? 1), lmin + 1e-6)
        let gvals = gains.values.flatMap { $0.map(\.1) }
        let gmin = min(0, gvals.min() ?? 0), gmax = max(0.5, gvals.max() ?? 0.5)
        func x(_ it: Double) -> Double { l + (w - l - r) * it / maxIt }
        func yl(_ v: Double) -> Double { t + (h - t - b) * (1 - (v - lmin) / (lmax - lmin)) }
        func yg(_ v: Double) -> Double { t + (h - t - b) * (1 - (v - gmin) / (gmax - gmin)) }
        var s =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s +=
            "<rect x=\"\(l)\" y=\"\(t)\" width=\"\(w - l - r)\" height=\"\(h - t - b)\" fill=\"none\" stroke=\"#888\"/>\n"
        s +=
            "<text x=\"\(l)\" y=\"18\">training L1 loss (blue, left) and validation PSNR-Y gain over bicubic, dB (right)</text>\n"
        s += String(
            format: "<text x=\"4\" y=\"%.1f\">%.4f</text><text x=\"4\" y=\"%.1f\">%.4f</text>\n", t + 10, lmax, h - b,
            lmin)
        s += String(
            format: "<text x=\"%.1f\" y=\"%.1f\">%+.2f</text><text x=\"%.1f\" y=\"%.1f\">%+.2f</text>\n", w - r + 4,
            t + 10, gmax,
            w - r + 4, h - b, gmin)
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\">iteration %d</text>\n", w / 2 - 40, h - 10, Int(maxIt))
        if !loss.isEmpty {
            let pts = loss.map { String(format: "%.1f,%.1f", x($0.0), yl($0.1)) }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.2\" points=\"\(pts)\"/>\n"
        }
        s += String(
            format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ccc\" stroke-dasharray=\"4\"/>\n",
            l, w - r, yg(0), yg(0))
        let colors = ["#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]
        for (i, sc) in gains.keys.sorted().enumerated() {
            let c = colors[i % colors.count]
            let pts = gains[sc]!.map { String(format: "%.1f,%.1f", x($0.0), yg($0.1)) }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(c)\" stroke-width=\"1.5\" points=\"\(pts)\"/>\n"
            s += String(
                format: "<text x=\"%.1f\" y=\"%.1f\" fill=\"\(c)\">x%g</text>\n", l + 8 + Double(i) * 40, t + 14, sc)
        }
        return s + "</svg>\n"
    }
}
