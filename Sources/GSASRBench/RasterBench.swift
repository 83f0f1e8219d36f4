import Dispatch
import Foundation
import GSASR

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

public enum BenchError: Error, CustomStringConvertible {
    case badInput(String)
    public var description: String {
        switch self {
        case .badInput(let s): return s
        }
    }
}

/// `gsasr bench raster`: the tiled rasterizer (fast and exact) against a CPU port of the official
/// kernel's algorithm (``OfficialRasterBaseline``), on realistic Gaussians tiled from a small
/// golden decoder output.
public enum RasterBench {
    public struct Case: Sendable {
        public var id: Int
        public var lr: Int
        public var scale: Int
        public var grid: Int { 4 * lr }
        public var gaussians: Int { grid * grid }
        public var size: Int { lr * scale }
    }

    /// 1: 36,864 Gaussians, 48² x4 → 192²; 2: 147,456, 96² x4 → 384²; 3: 518,400, 180² x4 → 720²;
    /// 4: 36,864, 48² x12 → 576².
    public static let cases: [Int: Case] = [
        1: Case(id: 1, lr: 48, scale: 4), 2: Case(id: 2, lr: 96, scale: 4),
        3: Case(id: 3, lr: 180, scale: 4), 4: Case(id: 4, lr: 48, scale: 12),
    ]

    /// Tiles a (GB·GB)×9 raw parameter block (row n = gy·GB + gx, means in [0,1] over the block)
    /// onto a G×G grid (cropping the last tiles when G is not a multiple of GB), with the means
    /// rescaled to the new grid's image units.
    public static func tileParams(_ base: [Float], baseGrid gb: Int, grid g: Int) -> [Float] {
        var out = [Float](repeating: 0, count: g * g * 9)
        let f = Float(gb) / Float(g)
        for gy in 0..<g {
            let ty = gy / gb, ly = gy % gb
            for gx in 0..<g {
                let tx = gx / gb, lx = gx % gb
                let src = (ly * gb + lx) * 9
                let dst = (gy * g + gx) * 9
                for c in 0..<7 { out[dst + c] = base[src + c] }
                out[dst + 7] = (base[src + 7] + Float(tx)) * f
                out[dst + 8] = (base[src + 8] + Float(ty)) * f
            }
        }
        return out
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Minimum wall time of `repeats` runs.
    static func time<T>(_ repeats: Int, _ body: () -> T) -> (Double, T) {
        var best = Double.infinity
        var last: T? = nil
        for _ in 0..<max(1, repeats) {
            let t0 = now()
            last = body()
            best = min(best, now() - t0)
        }
        return (best, last!)
    }

    /// Progress and results go to stdout as they are measured (a full run takes minutes).
    static func log(_ s: String) {
        FileHandle.standardOutput.write(Data((s + "\n").utf8))
    }

    /// Runs the cases and returns a human-readable report; writes a JSON array (one object per
    /// case) to `jsonPath` when given. `gsParamsPath` is the small golden decoder output for a
    /// 48×48 LR (36864×9, e.g. `small/astronaut_48x48_x4_gs_params_f32.npy`).
    public static func run(cases ids: [Int], gsParamsPath: String, threads: Int, repeats: Int, jsonPath: String?) throws
        -> String
    {
        let npy = try NPY.load(URL(fileURLWithPath: gsParamsPath))
        let base = (shape: npy.shape, values: npy.floats)
        guard base.shape.count == 2, base.shape[1] == 9 else { throw BenchError.badInput("gs params must be N×9") }
        let gb = Int(Double(base.shape[0]).squareRoot())
        guard gb * gb == base.shape[0] else { throw BenchError.badInput("gs params must be a square grid") }
        let threads = max(1, threads)
        var lines: [String] = []
        func say(_ s: String) {
            lines.append(s)
            log(s)
        }
        say(
            "raster benchmark: \(threads) thread(s), best of \(repeats), dmax 0.1, fast ε = \(RasterMode.defaultEpsilon)"
        )
        say(
            "baseline = CPU port of the official gs_cuda_dmax algorithm (per Gaussian: all rows, all columns / all H×W pixels in the backward), same inputs and thread count"
        )
        var json: [[String: Any]] = []
        for id in ids {
            guard let c = cases[id] else { throw BenchError.badInput("unknown case \(id) (1-4)") }
            let raw = tileParams(base.values, baseGrid: gb, grid: c.grid)
            let W = c.size, H = c.size
            let k = GaussianActivation.kernels(fromRaw: raw, width: W, height: H, scale: Float(c.scale))
            let n = k.count
            say("")
            say("case \(id): \(n) Gaussians, LR \(c.lr)x\(c.lr) x\(c.scale) -> \(W)x\(H)")
            let fast = Rasterizer(mode: .fast, dmax: 0.1, threads: threads)
            let exact = Rasterizer(mode: .exact, dmax: 0.1, threads: threads)
            // upstream gradient: deterministic pseudo-random N(0,1)-ish
            var state: UInt64 = 12345
            let up = (0..<(W * H * 3)).map { _ -> Float in
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return Float(Int64(bitPattern: state >> 11) % 2_000_001 - 1_000_000) * 1.7e-6
            }
            let pairsFast = fast.footprintPairs(k, width: W, height: H)
            let pairsExact = exact.footprintPairs(k, width: W, height: H)

            let (tFF, imgF) = time(repeats) { fast.forward(k, width: W, height: H) }
            let (tFE, imgE) = time(repeats) { exact.forward(k, width: W, height: H) }
            var maxDiff: Float = 0
            for i in 0..<imgF.count { maxDiff = max(maxDiff, abs(imgF[i] - imgE[i])) }
            let (tBF, gF) = time(repeats) { fast.backward(k, width: W, height: H, upstream: up) }
            let (tBE, gE) = time(repeats) { exact.backward(k, width: W, height: H, upstream: up) }
            var maxGradRel = 0.0
            for (a, b) in [(gF.sigmas, gE.sigmas), (gF.coords, gE.coords), (gF.colors, gE.colors)] {
                let scale = b.reduce(Float(0)) { max($0, abs($1)) }
                for i in 0..<a.count { maxGradRel = max(maxGradRel, Double(abs(a[i] - b[i]) / max(scale, 1e-30))) }
            }

            // baseline forward: full run when cheap enough, else a random subset scaled linearly
            var rng: UInt64 = 99
            func subset(_ m: Int) -> [Int] {
                var idx = Array(0..<n)
                for i in 0..<m {
                    rng = rng &* 6364136223846793005 &+ 1442695040888963407
                    let j = i + Int(rng >> 33) % (n - i)
                    idx.swapAt(i, j)
                }
                return Array(idx[0..<m]).sorted()
            }
            let probeN = min(n, 4096)
            let probeIdx = subset(probeN)
            let t0 = now()
            _ = OfficialRasterBaseline.forward(k, width: W, height: H, dmax: 0.1, threads: threads, indices: probeIdx)
            let probe = now() - t0
            var tBaseF: Double
            var baseFNote: String
            var baseImgDiff: Float? = nil
            if probe * Double(n) / Double(probeN) < 120 {
                let (t, img) = time(1) {
                    OfficialRasterBaseline.forward(k, width: W, height: H, dmax: 0.1, threads: threads)
                }
                tBaseF = t
                baseFNote = "full run"
                var d: Float = 0
                for i in 0..<img.count { d = max(d, abs(img[i] - imgE[i])) }
                baseImgDiff = d
            } else {
                tBaseF = probe * Double(n) / Double(probeN)
                baseFNote =
                    "timed on \(probeN) random Gaussians, scaled x\(String(format: "%.1f", Double(n) / Double(probeN)))"
            }
            // baseline backward: always O(N·H·W); subset sized to about 10 s
            let bProbeN = min(n, 64)
            let t1 = now()
            _ = OfficialRasterBaseline.backward(
                k, width: W, height: H, dmax: 0.1, upstream: up, threads: threads, indices: subset(bProbeN))
            let bProbe = now() - t1
            var tBaseB: Double
            var baseBNote: String
            let estFull = bProbe * Double(n) / Double(bProbeN)
            if estFull < 60 {
                tBaseB =
                    time(1) {
                        OfficialRasterBaseline.backward(
                            k, width: W, height: H, dmax: 0.1, upstream: up, threads: threads)
                    }.0
                baseBNote = "full run"
            } else {
                let m = max(bProbeN, min(n, Int(10.0 / max(bProbe / Double(bProbeN), 1e-9))))
                let idx = subset(m)
                let tt = time(1) {
                    OfficialRasterBaseline.backward(
                        k, width: W, height: H, dmax: 0.1, upstream: up, threads: threads, indices: idx)
                }.0
                tBaseB = tt * Double(n) / Double(m)
                baseBNote = "timed on \(m) random Gaussians, scaled x\(String(format: "%.1f", Double(n) / Double(m)))"
            }
            let rss = ProcessStats.peakRSSMiB()
            func f(_ t: Double) -> String { t < 1 ? String(format: "%.1f ms", t * 1000) : String(format: "%.2f s", t) }
            func rate(_ p: Int, _ t: Double) -> String { String(format: "%.0f M pairs/s", Double(p) / t / 1e6) }
            say(
                "  pairs evaluated: fast \(pairsFast) (\(String(format: "%.1f", Double(pairsFast) / Double(n))) px/Gaussian), exact \(pairsExact) (\(String(format: "%.1f", Double(pairsExact) / Double(n))) px/Gaussian)"
            )
            say(
                "  forward  fast  \(f(tFF))  (\(rate(pairsFast, tFF)))  speed-up vs baseline \(String(format: "%.1fx", tBaseF / tFF))"
            )
            say(
                "  forward  exact \(f(tFE))  (\(rate(pairsExact, tFE)))  speed-up vs baseline \(String(format: "%.1fx", tBaseF / tFE))"
            )
            say("  forward  baseline \(f(tBaseF))  (\(rate(pairsExact, tBaseF)), \(baseFNote))")
            say(
                "  backward fast  \(f(tBF))  (\(rate(pairsFast, tBF)))  speed-up vs baseline \(String(format: "%.1fx", tBaseB / tBF))"
            )
            say(
                "  backward exact \(f(tBE))  (\(rate(pairsExact, tBE)))  speed-up vs baseline \(String(format: "%.1fx", tBaseB / tBE))"
            )
            say("  backward baseline \(f(tBaseB))  (\(baseBNote))")
            say(
                "  max |fast - exact| forward \(String(format: "%.3e", maxDiff)); backward max |fast - exact| / max|exact| \(String(format: "%.3e", maxGradRel))"
                    + (baseImgDiff.map { "; max |exact - baseline| \(String(format: "%.3e", $0))" } ?? ""))
            say("  peak RSS \(String(format: "%.1f", rss)) MiB")
            json.append([
                "case": id, "gaussians": n, "width": W, "height": H, "threads": threads,
                "forward_fast_s": tFF, "forward_exact_s": tFE, "forward_baseline_s": tBaseF,
                "forward_baseline_subset": baseFNote != "full run",
                "backward_fast_s": tBF, "backward_exact_s": tBE, "backward_baseline_s": tBaseB,
                "backward_baseline_subset": baseBNote != "full run",
                "speedup_forward_fast": tBaseF / tFF, "speedup_forward_exact": tBaseF / tFE,
                "speedup_backward": tBaseB / tBF, "speedup_backward_exact": tBaseB / tBE,
                "pairs_fast": pairsFast, "pairs_exact": pairsExact,
                "max_abs_diff_fast_vs_exact": Double(maxDiff), "peak_rss_mib": rss,
            ])
        }
        if let p = jsonPath {
            let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: p))
        }
        return lines.joined(separator: "\n")
    }
}
