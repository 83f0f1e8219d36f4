import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Process-level measurements for benchmarks.
public enum ProcessStats {
    /// Peak resident set size of this process so far, in MiB (getrusage ru_maxrss: KiB on
    /// Linux, bytes on Apple platforms).
    public static func peakRSSMiB() -> Double {
        var u = rusage()
        #if canImport(Glibc)
            getrusage(RUSAGE_SELF.rawValue, &u)
        #else
            getrusage(RUSAGE_SELF, &u)
        #endif
        #if canImport(Darwin)
            return Double(u.ru_maxrss) / 1_048_576
        #else
            return Double(u.ru_maxrss) / 1024
        #endif
    }

    /// Median wall time of `repeats` runs of `body`, in seconds.
    public static func medianTime(repeats: Int, _ body: () throws -> Void) rethrows -> Double {
        var times: [Double] = []
        for _ in 0..<max(1, repeats) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        times.sort()
        return times[times.count / 2]
    }
}
