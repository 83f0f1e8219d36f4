import Foundation
import GSASR

/// float32 GEMM (our Linear kernel: row blocks over the threads, single-threaded OpenBLAS each)
/// against oneDNN's bf16 matmul (inputs rounded to bf16, float32 accumulation and output), on
/// the decoder's large shapes: the MLP heads at LR 48 and 96, and a window's qkv projection.
/// Both sides split rows over the threads the same way, each block one single-threaded product.
/// The ratio includes converting the activations to bf16 (as the layers do, block by block), and
/// is also given without it.
public enum GEMMBench {
    public struct Figure: Codable, Sendable {
        public var name: String
        public var m: Int, k: Int, n: Int
        public var f32Seconds: Double
        public var bf16Seconds: Double
        public var convertSeconds: Double
        /// f32 time / (bf16 + conversion) time.
        public var speedup: Double
        /// f32 time / bf16 time (conversion fused elsewhere).
        public var speedupWithoutConversion: Double
        public var relativeL2Error: Double
    }

    public struct Report: Codable, Sendable {
        public var isa: String
        public var native: Bool
        public var threads: Int
        public var figures: [Figure]
        public var peakRSSMiB: Double
    }

    public static let shapes: [(String, Int, Int, Int)] = [
        ("heads at LR 48 (9216x180 · 180x720)", 9216, 180, 720),
        ("heads at LR 48, second layer (9216x720 · 720x180)", 9216, 720, 180),
        ("heads at LR 96 (36864x180 · 180x720)", 36864, 180, 720),
        ("window qkv (576x180 · 180x540)", 576, 180, 540),
    ]

    public static func run(repeats: Int) throws -> Report {
        var figures: [Figure] = []
        for (name, m, k, n) in shapes {
            var seed: UInt64 = 0x9E37_79B9
            func next() -> Float {
                seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Float(Int64(bitPattern: seed >> 11) % 2001 - 1000) / 1000
            }
            let a = (0..<(m * k)).map { _ in next() }, w = (0..<(n * k)).map { _ in next() }
            var y32 = [Float](repeating: 0, count: m * n), y16 = [Float](repeating: 0, count: m * n)
            var a16 = [UInt16](repeating: 0, count: m * k)
            let g = try w.withUnsafeBufferPointer { try BF16GEMM(k: k, n: n, weights: $0.baseAddress!) }
            func f32() {
                a.withUnsafeBufferPointer { ap in
                    w.withUnsafeBufferPointer { wp in
                        y32.withUnsafeMutableBufferPointer { yp in
                            Kernels.linear(
                                x: ap.baseAddress!, ldx: k, m: m, k: k, weight: wp.baseAddress!, bias: nil, n: n,
                                y: yp.baseAddress!, ldy: n)
                        }
                    }
                }
            }
            // The conversion alone, split over the threads as the layers' passes split it.
            func convert() {
                a.withUnsafeBufferPointer { ap in
                    a16.withUnsafeMutableBufferPointer { bp in
                        let (x, y) = (ap.baseAddress!, bp.baseAddress!)
                        Parallel.forBlocks(m, block: Parallel.blockLength(m, minBlock: 64)) { rows in
                            BF16.convert(x + rows.lowerBound * k, y + rows.lowerBound * k, count: rows.count * k)
                        }
                    }
                }
            }
            // The product alone (rows already bf16), the same row blocks over the threads.
            func bf16() {
                a16.withUnsafeBufferPointer { ap in
                    y16.withUnsafeMutableBufferPointer { yp in
                        let (x, y) = (ap.baseAddress!, yp.baseAddress!)
                        Parallel.forBlocks(m, block: Parallel.blockLength(m, minBlock: 64)) { rows in
                            g.run(m: rows.count, a: x + rows.lowerBound * k, lda: k, c: y + rows.lowerBound * n, ldc: n)
                        }
                    }
                }
            }
            f32()
            convert()
            bf16()  // warm-ups
            // Interleaved rounds, medians.
            var t32: [Double] = [], t16: [Double] = [], tc: [Double] = []
            for _ in 0..<repeats {
                var t0 = Date()
                f32()
                t32.append(Date().timeIntervalSince(t0))
                t0 = Date()
                convert()
                tc.append(Date().timeIntervalSince(t0))
                t0 = Date()
                bf16()
                t16.append(Date().timeIntervalSince(t0))
            }
            func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
            var err = 0.0, norm = 0.0
            for i in 0..<y32.count {
                err += Double(y16[i] - y32[i]) * Double(y16[i] - y32[i])
                norm += Double(y32[i]) * Double(y32[i])
            }
            let (s32, s16, sc) = (median(t32), median(t16), median(tc))
            figures.append(
                Figure(
                    name: name, m: m, k: k, n: n, f32Seconds: s32, bf16Seconds: s16, convertSeconds: sc,
                    speedup: s32 / (s16 + sc), speedupWithoutConversion: s32 / s16,
                    relativeL2Error: (err / max(norm, 1e-30)).squareRoot()))
        }
        return Report(
            isa: BF16.native.isa, native: BF16.native.yes, threads: Parallel.threadCount, figures: figures,
            peakRSSMiB: ProcessStats.peakRSSMiB())
    }

    public static func format(_ r: Report) -> String {
        var s = "oneDNN instruction set: \(r.isa) (native bf16: \(r.native ? "yes" : "no")), \(r.threads) threads\n"
        s +=
            "| GEMM | f32 ms (GFLOP/s) | bf16 ms (GFLOP/s) | convert A ms | f32 / (bf16 + convert) | f32 / bf16 | rel. L2 error |\n"
        s += "|---|---|---|---|---|---|---|\n"
        for f in r.figures {
            let flop = 2 * Double(f.m * f.k * f.n)
            s += String(
                format: "| %@ | %.2f (%.0f) | %.2f (%.0f) | %.2f | %.2fx | %.2fx | %.1e |\n", f.name,
                f.f32Seconds * 1e3,
                flop / f.f32Seconds / 1e9, f.bf16Seconds * 1e3, flop / f.bf16Seconds / 1e9, f.convertSeconds * 1e3,
                f.speedup, f.speedupWithoutConversion, f.relativeL2Error)
        }
        s += String(format: "peak RSS %.1f MiB", r.peakRSSMiB)
        return s
    }
}
