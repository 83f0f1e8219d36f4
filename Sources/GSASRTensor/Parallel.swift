import Dispatch
import Foundation

/// Data-parallel loops over the machine's cores. The only source of threads in the package.
public enum Parallel {
    /// Number of worker threads. Defaults to the active processor count; `GSASR_THREADS`
    /// overrides it (useful for benchmarks and for checking determinism across thread counts).
    public static let threadCount: Int = {
        if let s = ProcessInfo.processInfo.environment["GSASR_THREADS"], let n = Int(s), n > 0 {
            return n
        }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Runs `body(i)` for i in 0..<count on at most `threadCount` concurrent workers (worker w
    /// takes i = w, w + workers, ...), so `-j`/`GSASR_THREADS` bounds the threads even on
    /// machines with more cores. Runs inline when count or the thread count is 1.
    @inline(__always)
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        if count <= 0 { return }
        let workers = min(count, threadCount)
        if workers == 1 {
            for i in 0..<count { body(i) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            var i = w
            while i < count {
                body(i)
                i += workers
            }
        }
    }

    /// Splits 0..<count into at most `threadCount` contiguous chunks (at least `minChunk` long)
    /// and runs `body(range)` on each in parallel.
    public static func forChunks(
        _ count: Int, minChunk: Int = 1, threads: Int = threadCount, _ body: (Range<Int>) -> Void
    ) {
        if count <= 0 { return }
        let chunks = max(1, min(threads, count / max(1, minChunk)))
        if chunks == 1 {
            body(0..<count)
            return
        }
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = count * c / chunks
            let hi = count * (c + 1) / chunks
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Runs `body(w)` for exactly `workers` workers, concurrently when workers > 1, whatever
    /// `threadCount` is (for callers that partition work themselves, e.g. the rasterizer with an
    /// explicit thread count).
    @inline(__always)
    public static func workers(_ workers: Int, _ body: (Int) -> Void) {
        if workers <= 1 {
            body(0)
        } else {
            DispatchQueue.concurrentPerform(iterations: workers, execute: body)
        }
    }

    /// Runs `body` over 0..<count cut into consecutive blocks of `block` (the last one shorter),
    /// the blocks spread over at most `threadCount` workers. The cut depends on `count` and
    /// `block` only, never on the thread count, so a kernel whose blocks are computed
    /// independently (a GEMM split by output rows: each block one BLAS call of a fixed shape)
    /// gives the same bits with any number of threads.
    public static func forBlocks(_ count: Int, block: Int, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let b = max(1, block)
        let blocks = (count + b - 1) / b
        forEach(blocks) { i in body((i * b)..<min(count, (i + 1) * b)) }
    }

    /// A block length for ``forBlocks(_:block:_:)`` from the problem size alone: about
    /// `count / maxBlocks` (enough blocks to balance up to `maxBlocks` workers), rounded up to a
    /// multiple of `align` (whole BLAS micro-tiles), and at least `minBlock`.
    public static func blockLength(_ count: Int, minBlock: Int, maxBlocks: Int = 16, align: Int = 16) -> Int {
        let even = (count + maxBlocks - 1) / maxBlocks
        let aligned = (even + align - 1) / align * align
        return max(minBlock, aligned)
    }
}
