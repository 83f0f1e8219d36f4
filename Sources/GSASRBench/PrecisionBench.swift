import Foundation
import GSASR

/// `gsasr bench precision`: the same model on the same input in float32 and in bf16, in the
/// same run — the time of each (medians of interleaved rounds) and how far apart the 8-bit
/// outputs are (PSNR over all pixels and channels, no border crop; the largest level
/// difference; the share of samples that differ). Issue 26's quality gate (a) asks ≥ 45 dB.
public enum PrecisionBench {
    public struct Figure: Codable, Sendable {
        public var scale: Double
        public var outputWidth, outputHeight: Int
        public var f32Seconds, bf16Seconds: Double
        public var speedup: Double
        /// PSNR (dB) of the bf16 output's 8-bit samples against the f32 output's; nil when equal.
        public var psnr: Double?
        public var maxLevelDifference: Int
        public var differingSampleShare: Double
    }

    public struct Report: Codable, Sendable {
        public var model: String
        public var input: String
        public var inputWidth, inputHeight: Int
        public var threads: Int
        public var repeats: Int
        public var isa: String
        public var figures: [Figure]
        public var peakRSSMiB: Double
    }

    public static func run(
        model: GSASRModel, modelName: String, image: Image, inputName: String, scales: [Double], repeats: Int
    ) throws -> Report {
        let up = Upscaler(model: model)
        var figures: [Figure] = []
        for s in scales {
            var t32: [Double] = [], t16: [Double] = []
            var out32: Upscaler.Result? = nil, out16: Upscaler.Result? = nil
            for round in 0...repeats {  // round 0 warms up
                for p in [Precision.f32, .bf16] {
                    try model.setPrecision(p)
                    let t0 = Date()
                    let r = try up.upscale(rgb: image.pixels, width: image.width, height: image.height, scale: s)
                    let t = Date().timeIntervalSince(t0)
                    if p == .f32 { out32 = r } else { out16 = r }
                    if round > 0 { if p == .f32 { t32.append(t) } else { t16.append(t) } }
                }
            }
            try model.setPrecision(.f32)
            let a = out32!.pixels.map(ImageIO.quantize), b = out16!.pixels.map(ImageIO.quantize)
            var maxDiff = 0, differing = 0
            for i in 0..<a.count where a[i] != b[i] {
                differing += 1
                maxDiff = max(maxDiff, abs(Int(a[i]) - Int(b[i])))
            }
            let psnr = Metrics.psnr(a, b, width: out32!.width, height: out32!.height, channels: 3, cropBorder: 0)
            func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
            figures.append(
                Figure(
                    scale: s, outputWidth: out32!.width, outputHeight: out32!.height, f32Seconds: median(t32),
                    bf16Seconds: median(t16), speedup: median(t32) / median(t16), psnr: psnr.isFinite ? psnr : nil,
                    maxLevelDifference: maxDiff, differingSampleShare: Double(differing) / Double(a.count)))
        }
        return Report(
            model: modelName, input: inputName, inputWidth: image.width, inputHeight: image.height,
            threads: Parallel.threadCount, repeats: repeats, isa: Precision.nativeBF16.isa, figures: figures,
            peakRSSMiB: ProcessStats.peakRSSMiB())
    }

    public static func format(_ r: Report) -> String {
        var s = "model \(r.model), input \(r.input) (\(r.inputWidth)x\(r.inputHeight)), \(r.threads) threads, "
        s += "median of \(r.repeats) interleaved rounds, bf16 through oneDNN (\(r.isa))\n"
        s +=
            "| scale | output | f32 s | bf16 s | f32 / bf16 | PSNR bf16 vs f32 (8-bit) | max level diff | samples differing |\n"
        s += "|---|---|---|---|---|---|---|---|\n"
        for f in r.figures {
            s += String(
                format: "| x%g | %dx%d | %.3f | %.3f | %.2fx | %@ | %d | %.3f %% |\n", f.scale, f.outputWidth,
                f.outputHeight, f.f32Seconds, f.bf16Seconds, f.speedup,
                f.psnr.map { String(format: "%.2f dB", $0) } ?? "identical", f.maxLevelDifference,
                100 * f.differingSampleShare)
        }
        s += String(format: "peak RSS %.1f MiB", r.peakRSSMiB)
        return s
    }
}
