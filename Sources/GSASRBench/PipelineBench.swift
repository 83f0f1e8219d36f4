import Foundation
import GSASR

/// `gsasr bench`: per-stage times of the pipeline (encoder, decoder, rasterizer), peak RSS, and
/// the decoder's GFLOP/s as a ratio to a BLAS sgemm measured in the same run — the figures of
/// the official `inference_paper_benchmark.py`.
public enum PipelineBench {
    public struct Report: Codable, Sendable {
        public var model: String
        public var lrWidth, lrHeight: Int
        public var scale: Double
        public var gaussians: Int
        public var outputWidth, outputHeight: Int
        public var rasterMode: String
        public var threads: Int
        public var repeats: Int
        public var encoderSeconds, decoderSeconds, rasterizerSeconds, totalSeconds: Double
        public var encoderGFLOP, decoderGFLOP: Double
        public var decoderGFLOPS: Double
        public var sgemmGFLOPS: Double
        public var decoderToSgemmRatio: Double
        public var peakRSSMiB: Double
        /// Decoder seconds per part of the official module tree (one extra run; ``decoderProfile``).
        public var decoderParts: [StepProfile.Part] = []
        /// The BLAS and its best reachable sgemm (set by `gsasr bench`, which can spawn itself).
        public var blas: BLASBench.Report? = nil
        /// The precision of the figures above (`Precision`).
        public var precision: String = "f32"
        /// With a baseline precision: its medians, measured in the same rounds (interleaved).
        public var baseline: Baseline? = nil
        public var decoderToBestSgemmRatio: Double? { blas.map { decoderGFLOPS / $0.bestSgemmGFLOPS } }
    }

    /// The same stages in another precision, timed in the same run (each round runs the
    /// baseline, then the measured precision), and the baseline / measured ratios.
    public struct Baseline: Codable, Sendable {
        public var precision: String
        public var encoderSeconds, decoderSeconds, rasterizerSeconds, totalSeconds: Double
        public var decoderSpeedup, totalSpeedup: Double
    }

    /// Measures sgemm throughput (GFLOP/s) with the package's own GEMM path (rows split over
    /// the threads, single-threaded BLAS each) on a decoder-shaped product: (m × k)·(k × n)
    /// with m = 9216, k = 180, n = 720.
    public static func sgemmGFLOPS(repeats: Int = 15) -> Double {
        let m = 9216, k = 180, n = 720
        let a = Tensor(shape: [m, k], values: (0..<(m * k)).map { Float($0 % 17) * 0.01 })
        let w = Tensor(shape: [n, k], values: (0..<(n * k)).map { Float($0 % 13) * 0.01 })
        let y = Tensor(uninitialized: [m, n])
        let t = ProcessStats.medianTime(repeats: repeats) {
            Kernels.linear(x: a.ptr, ldx: k, m: m, k: k, weight: w.ptr, bias: nil, n: n, y: y.ptr, ldy: n)
        }
        return 2 * Double(m * n * k) / t / 1e9
    }

    /// `precision` must be resolved (not `.auto`); with `baseline`, each round runs the baseline
    /// precision first, then `precision`, and both medians are reported.
    public static func run(
        model: GSASRModel, modelName: String, image: [Float], width: Int, height: Int, scale: Double,
        mode: RasterMode, dmax: Float, repeats: Int, precision: Precision = .f32, baseline: Precision? = nil
    ) throws -> Report {
        let up = Upscaler(model: model, dmax: dmax, mode: mode)
        let plan = try up.plan(width: width, height: height, scale: scale)
        // Warm-up (page faults, lazy BLAS init), then medians of each stage.
        var enc: [Double] = [], dec: [Double] = [], ras: [Double] = []
        var benc: [Double] = [], bdec: [Double] = [], bras: [Double] = []
        for i in 0...max(1, repeats) {
            if let baseline {
                try model.setPrecision(baseline)
                let r = try up.upscale(rgb: image, width: width, height: height, scale: scale)
                if i > 0 {
                    benc.append(r.timings.encoder)
                    bdec.append(r.timings.decoder)
                    bras.append(r.timings.rasterizer)
                }
            }
            try model.setPrecision(precision)
            let r = try up.upscale(rgb: image, width: width, height: height, scale: scale)
            if i == 0 { continue }
            enc.append(r.timings.encoder)
            dec.append(r.timings.decoder)
            ras.append(r.timings.rasterizer)
        }
        func median(_ a: [Double]) -> Double { a.sorted()[a.count / 2] }
        let e = median(enc), d = median(dec), r = median(ras)
        var base: Baseline? = nil
        if let baseline {
            let (be, bd, br) = (median(benc), median(bdec), median(bras))
            base = Baseline(
                precision: baseline.rawValue, encoderSeconds: be, decoderSeconds: bd, rasterizerSeconds: br,
                totalSeconds: be + bd + br, decoderSpeedup: bd / d, totalSpeedup: (be + bd + br) / (e + d + r))
        }
        let parts = decoderProfile(up, image: image, plan: plan)
        let decF = model.decoder.flops(featureHeight: plan.paddedHeight, featureWidth: plan.paddedWidth)
        let encF = model.encoder.flops(height: plan.paddedHeight, width: plan.paddedWidth)
        let sg = sgemmGFLOPS()
        return Report(
            model: modelName, lrWidth: width, lrHeight: height, scale: scale, gaussians: plan.gaussians,
            outputWidth: plan.outputWidth, outputHeight: plan.outputHeight,
            rasterMode: mode == .exact ? "exact" : "fast",
            threads: Parallel.threadCount, repeats: repeats, encoderSeconds: e, decoderSeconds: d,
            rasterizerSeconds: r, totalSeconds: e + d + r, encoderGFLOP: encF / 1e9, decoderGFLOP: decF / 1e9,
            decoderGFLOPS: decF / d / 1e9, sgemmGFLOPS: sg, decoderToSgemmRatio: (decF / d / 1e9) / sg,
            peakRSSMiB: ProcessStats.peakRSSMiB(), decoderParts: parts, precision: model.precision.rawValue,
            baseline: base)
    }

    /// One more decoder run, timed between its taps (which mark the ends of the official
    /// modules): seconds per part, in order; the time after the last tap is the heads.
    static func decoderProfile(_ up: Upscaler, image: [Float], plan: Upscaler.Plan) -> [StepProfile.Part] {
        let feat = up.encode(rgb: image, plan: plan)
        let profile = StepProfile()
        var last = StepProfile.now()
        func part(_ tap: String) -> String {
            if tap == "scale_embedding" { return "scale embedding" }
            if tap == "img_feat_proj" { return "img_feat_proj" }
            if tap == "after_UPNet" { return "residual, token image, UPNet" }
            for (prefix, name) in [
                ("after_window_crossattn_block", "window_crossattn_blocks."),
                ("after_gs_selfattn_block", "gs_selfattn_blocks."),
            ] where tap.hasPrefix(prefix) {
                return name + tap.dropFirst(prefix.count).prefix { $0.isNumber }
            }
            return "gs_selfattn_blocks (last norm)"
        }
        _ = up.model.decoder(
            feat, height: plan.paddedHeight, width: plan.paddedWidth, scale: Float(plan.request.conditioning)
        ) { name, _ in
            profile.add(part(name), .forward, since: last)
            last = StepProfile.now()
        }
        profile.add("the five MLP heads", .forward, since: last)
        return profile.parts
    }

    public static func format(_ r: Report) -> String {
        """
        model \(r.model), LR \(r.lrWidth)x\(r.lrHeight), scale x\(r.scale) -> \(r.outputWidth)x\(r.outputHeight), \
        \(r.gaussians) Gaussians, raster \(r.rasterMode), \(r.threads) threads, median of \(r.repeats), precision \(r.precision)
          encoder     \(String(format: "%8.3f s", r.encoderSeconds))  (\(String(format: "%.1f", r.encoderGFLOP)) GFLOP)
          decoder     \(String(format: "%8.3f s", r.decoderSeconds))  (\(String(format: "%.1f", r.decoderGFLOP)) GFLOP, \(String(format: "%.1f", r.decoderGFLOPS)) GFLOP/s)
          rasterizer  \(String(format: "%8.3f s", r.rasterizerSeconds))
          total       \(String(format: "%8.3f s", r.totalSeconds))
          sgemm (same run, 9216x720x180) \(String(format: "%.1f", r.sgemmGFLOPS)) GFLOP/s; decoder/sgemm ratio \(String(format: "%.2f", r.decoderToSgemmRatio))
          peak RSS    \(String(format: "%.0f", r.peakRSSMiB)) MiB
        """ + baselineLines(r) + partsTable(r)
            + (r.blas.map {
                "\n" + BLASBench.format($0)
                    + String(format: "\ndecoder / best sgemm ratio %.2f", r.decoderGFLOPS / $0.bestSgemmGFLOPS)
            } ?? "")
    }

    static func baselineLines(_ r: Report) -> String {
        guard let b = r.baseline else { return "" }
        return String(
            format: "\n  %@ in the same rounds: encoder %.3f s, decoder %.3f s, rasterizer %.3f s, total %.3f s"
                + "\n  %@ / %@: decoder %.2fx, total %.2fx",
            b.precision, b.encoderSeconds, b.decoderSeconds, b.rasterizerSeconds, b.totalSeconds, b.precision,
            r.precision, b.decoderSpeedup, b.totalSpeedup)
    }

    static func partsTable(_ r: Report) -> String {
        let total = r.decoderParts.reduce(0) { $0 + $1.seconds }
        guard total > 0 else { return "" }
        var out = String(format: "\n  decoder per part (one more run, %.3f s):", total)
        for p in r.decoderParts {
            out += String(
                format: "\n    %-40@ %8.3f s  %5.1f %%", p.name as NSString, p.seconds, 100 * p.seconds / total)
        }
        return out
    }
}
