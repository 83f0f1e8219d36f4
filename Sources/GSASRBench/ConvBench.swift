import Foundation
import GSASR

/// The three forms of the float32 3×3 convolution on the models' shapes, same run: im2col + GEMM,
/// Winograd F(2×2, 3×3) and Winograd F(4×4, 3×3) (the form the forward now picks for wide maps).
/// Interleaved rounds, medians; the F(4×4, 3×3) output's relative L2 difference from
/// F(2×2, 3×3)'s (both against the same input); peak RSS.
public enum ConvBench {
    public struct Figure: Codable, Sendable {
        public var name: String
        public var height: Int, width: Int, cin: Int, cout: Int
        public var im2colSeconds: Double
        public var winograd23Seconds: Double
        public var winograd43Seconds: Double
        /// F(2×2, 3×3) time / F(4×4, 3×3) time.
        public var speedupOver23: Double
        public var speedupOverIm2col: Double
        public var relativeL2Difference: Double
    }

    public struct Report: Codable, Sendable {
        public var threads: Int
        public var figures: [Figure]
        public var peakRSSMiB: Double
    }

    public static let shapes: [(String, Int, Int, Int, Int)] = [
        ("EDSR body, LR 48", 48, 48, 64, 64),
        ("narrow, 32 -> 32", 48, 48, 32, 32),
        ("narrow, 48 -> 48", 48, 48, 48, 48),
        ("narrow, 16 -> 64", 48, 48, 16, 64),
        ("narrow, 64 -> 16", 48, 48, 64, 16),
        ("narrow, 32 -> 180", 48, 48, 32, 180),
        ("RDN dense layer 4 of 8, LR 48", 48, 48, 320, 64),
        ("RDN dense layer 8 of 8, LR 48", 48, 48, 512, 64),
        ("SwinIR / HAT-L conv, LR 48", 48, 48, 180, 180),
        ("HAT-L channel attention, squeeze, LR 48", 48, 48, 180, 60),
        ("HAT-L channel attention, expand, LR 48", 48, 48, 60, 180),
        ("UPNet, paper, LR 48 (96x96, 180 -> 720)", 96, 96, 180, 720),
        ("RDN dense layer 8 of 8, LR 180", 180, 180, 512, 64),
    ]

    public static func run(repeats: Int) -> Report {
        // As in the model runs of `gsasr upscale` and `gsasr bench`: freed scratch stays mapped.
        Allocator.keepFreedMemoryForReuse()
        var figures: [Figure] = []
        for (name, h, w, cin, cout) in shapes {
            var seed: UInt64 = 0x9E37_79B9
            func next() -> Float {
                seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Float(Int64(bitPattern: seed >> 11) % 2001 - 1000) / 1000
            }
            let x = Tensor(shape: [h, w, cin], values: (0..<(h * w * cin)).map { _ in next() })
            let p = Conv3x3Weights(
                torchWeight: (0..<(cout * cin * 9)).map { _ in next() / Float(3 * cin) },
                bias: (0..<cout).map { _ in next() }, cout: cout, cin: cin)
            let y = [
                Tensor(uninitialized: [h, w, cout]), Tensor(uninitialized: [h, w, cout]),
                Tensor(uninitialized: [h, w, cout]),
            ]
            let forms: [() -> Void] = [
                { Kernels.conv3x3Im2col(x: x.ptr, height: h, width: w, p, y: y[0].ptr) },
                { Kernels.conv3x3Winograd(x: x.ptr, height: h, width: w, p, y: y[1].ptr) },
                { Kernels.conv3x3Winograd43(x: x.ptr, height: h, width: w, p, y: y[2].ptr) },
            ]
            for f in forms { f() }  // warm-ups
            var times = [[Double]](repeating: [], count: 3)
            for _ in 0..<repeats {
                for (i, f) in forms.enumerated() {
                    let t0 = Date()
                    f()
                    times[i].append(Date().timeIntervalSince(t0))
                }
            }
            func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
            var diff = 0.0, norm = 0.0
            for i in 0..<(h * w * cout) {
                let a = Double(y[2].ptr[i]), b = Double(y[1].ptr[i])
                diff += (a - b) * (a - b)
                norm += b * b
            }
            let (t0, t1, t2) = (median(times[0]), median(times[1]), median(times[2]))
            figures.append(
                Figure(
                    name: name, height: h, width: w, cin: cin, cout: cout, im2colSeconds: t0, winograd23Seconds: t1,
                    winograd43Seconds: t2, speedupOver23: t1 / t2, speedupOverIm2col: t0 / t2,
                    relativeL2Difference: (diff / max(norm, 1e-30)).squareRoot()))
            withExtendedLifetime((x, p, y)) {}
        }
        return Report(threads: Parallel.threadCount, figures: figures, peakRSSMiB: ProcessStats.peakRSSMiB())
    }

    public static func format(_ r: Report) -> String {
        var s = "\(r.threads) threads; GFLOP/s count the direct convolution's 2·9·cin·cout per pixel\n"
        s += "| convolution | im2col ms (GFLOP/s) | F(2x2,3x3) ms (GFLOP/s) | F(4x4,3x3) ms (GFLOP/s) "
        s += "| F(2x2) / F(4x4) | im2col / F(4x4) | rel. L2 F(4x4) vs F(2x2) |\n"
        s += "|---|---|---|---|---|---|---|\n"
        for f in r.figures {
            let flop = 2 * 9 * Double(f.height * f.width * f.cin * f.cout)
            s += String(
                format: "| %@ | %.2f (%.0f) | %.2f (%.0f) | %.2f (%.0f) | %.2fx | %.2fx | %.1e |\n", f.name,
                f.im2colSeconds * 1e3, flop / f.im2colSeconds / 1e9, f.winograd23Seconds * 1e3,
                flop / f.winograd23Seconds / 1e9, f.winograd43Seconds * 1e3, flop / f.winograd43Seconds / 1e9,
                f.speedupOver23, f.speedupOverIm2col, f.relativeL2Difference)
        }
        s += String(format: "peak RSS %.1f MiB", r.peakRSSMiB)
        return s
    }
}
