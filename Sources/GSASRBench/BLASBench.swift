import Foundation
import GSASR

/// What BLAS runs and how fast it can be on this machine: the sgemm peak (2048³, the package's
/// own row split over `Parallel.threadCount` threads, single-threaded BLAS each) with the
/// kernel set in use, and the same measurement in child processes of this binary under each
/// OpenBLAS kernel set the CPU supports, so that a wrong kernel choice shows as a ratio < 1.
public enum BLASBench {
    public struct KernelSetFigure: Codable, Sendable, Equatable {
        public var coreType: String
        public var coreName: String
        public var gflops: Double
        public init(coreType: String, coreName: String, gflops: Double) {
            self.coreType = coreType
            self.coreName = coreName
            self.gflops = gflops
        }
    }

    public struct Report: Codable, Sendable {
        public var blas: BLASInfo
        public var threads: Int
        /// sgemm 2048³ with the kernel set in use (this process).
        public var sgemmGFLOPS: Double
        /// The same measurement under each candidate kernel set (child processes); empty on
        /// Accelerate or when the children could not run.
        public var candidates: [KernelSetFigure]
        /// max(sgemmGFLOPS, candidates): the best sgemm reachable on this machine.
        public var bestSgemmGFLOPS: Double
        /// sgemmGFLOPS / bestSgemmGFLOPS: 1 when the chosen kernels are the best ones.
        public var inUseToBestRatio: Double
    }

    /// The OpenBLAS kernel sets worth trying on a CPU with these flags: always the generic
    /// one, plus Haswell with AVX2 + FMA and SkylakeX with AVX-512 (whichever of the two
    /// `CPUFeatures.openBLASCoreType` picks).
    public static func candidateCoreTypes(flags: Set<String>) -> [String] {
        var out = ["PRESCOTT"]
        if flags.contains("avx2") && flags.contains("fma") { out.append("HASWELL") }
        if CPUFeatures.hasSkylakeXExtensions(flags) { out.append("SKYLAKEX") }
        return out
    }

    /// GFLOP/s of a square n³ sgemm (median of `repeats`).
    public static func sgemmGFLOPS(n: Int = 2048, repeats: Int = 5) -> Double {
        let a = Tensor(shape: [n, n], values: (0..<(n * n)).map { Float($0 % 17) * 0.01 })
        let w = Tensor(shape: [n, n], values: (0..<(n * n)).map { Float($0 % 13) * 0.01 })
        let y = Tensor(uninitialized: [n, n])
        Kernels.linear(x: a.ptr, ldx: n, m: n, k: n, weight: w.ptr, bias: nil, n: n, y: y.ptr, ldy: n)
        let t = ProcessStats.medianTime(repeats: repeats) {
            Kernels.linear(x: a.ptr, ldx: n, m: n, k: n, weight: w.ptr, bias: nil, n: n, y: y.ptr, ldy: n)
        }
        return 2 * Double(n * n * n) / t / 1e9
    }

    /// Runs `executable info --sgemm-only --json` with OPENBLAS_CORETYPE set to each candidate.
    public static func measureCandidates(executable: String) -> [KernelSetFigure] {
        #if canImport(Accelerate)
            return []
        #else
            var out: [KernelSetFigure] = []
            for core in candidateCoreTypes(flags: CPUFeatures.flags()) {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: executable)
                p.arguments = ["info", "--sgemm-only", "--json"]
                var env = ProcessInfo.processInfo.environment
                env["OPENBLAS_CORETYPE"] = core
                p.environment = env
                let pipe = Pipe()
                p.standardOutput = pipe
                p.standardError = FileHandle.nullDevice
                do { try p.run() } catch { continue }
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                p.waitUntilExit()
                guard p.terminationStatus == 0, let r = try? JSONDecoder().decode(KernelSetFigure.self, from: data)
                else { continue }
                out.append(KernelSetFigure(coreType: core, coreName: r.coreName, gflops: r.gflops))
            }
            return out
        #endif
    }

    public static func run(executable: String?) -> Report {
        let sg = sgemmGFLOPS()
        let cands = executable.map(measureCandidates) ?? []
        let best = max(sg, cands.map(\.gflops).max() ?? 0)
        return Report(
            blas: BLAS.info, threads: Parallel.threadCount, sgemmGFLOPS: sg, candidates: cands,
            bestSgemmGFLOPS: best, inUseToBestRatio: sg / best)
    }

    public static func describe(_ b: BLASInfo, threads: Int) -> String {
        """
        BLAS        \(b.library): \(b.config)
        kernels     \(b.coreName) (OPENBLAS_CORETYPE=\(b.coreType ?? "unset"), chosen by \(b.coreTypeChosenBy))
        CPU         \(b.cpu.map { $0 + ": " } ?? "")\(b.cpuExtensions.isEmpty ? "(no x86/Arm vector flags read)" : b.cpuExtensions.joined(separator: " "))
        threads     \(threads) (ours, Parallel) x \(b.blasThreads) (BLAS)
        precisions  \(Precision.nativePrecisions.map(\.rawValue).joined(separator: ", ")) run natively (oneDNN: \(BF16.native.isa)\(BF16.native.yes ? "; --precision bf16 or auto" : "; --precision bf16 is refused here"))
        """
    }

    public static func format(_ r: Report) -> String {
        var s = describe(r.blas, threads: r.threads) + "\n"
        s += String(format: "sgemm 2048^3, kernels in use: %.1f GFLOP/s\n", r.sgemmGFLOPS)
        for c in r.candidates {
            s += String(format: "  OPENBLAS_CORETYPE=%@ (%@): %.1f GFLOP/s\n", c.coreType, c.coreName, c.gflops)
        }
        s += String(format: "in use / best reachable: %.2f", r.inUseToBestRatio)
        return s
    }
}
