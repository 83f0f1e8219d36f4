import Foundation
import GSASR

/// What one `gsasr serve` process accepts and holds. Every limit is checked before the work it
/// guards: the upload size while the body arrives, the pixel count from the image header, the
/// scale, the output size and the working memory from the plan.
///
/// **Memory bound.** The server's memory is at most about
/// `model + concurrentJobs × jobMemoryBytes + (concurrentJobs + queueLength) × (maxUploadBytes
/// + 16 B × maxInputPixels) + cacheBytes + 2 × 12 B × maxZoomPixels` (``memoryBoundBytes``): running jobs
/// are bounded by the per-job estimate, waiting jobs hold their upload and decoded input, finished
/// jobs live in a cache bounded by count and bytes, and re-renders run in one lane with a bounded
/// wait list. Everything past these limits is refused (413/422) or told to come back (503).
public struct ServerLimits: Sendable {
    /// Largest request body (bytes). A bigger body gets 413 as soon as it passes the limit (from
    /// its Content-Length, or while it arrives); Hummingbird reads and discards the rest, so that
    /// the connection stays usable and nothing past the limit is kept.
    public var maxUploadBytes = 20 << 20
    /// Largest input image, in pixels, checked from the header before decoding (413). The
    /// default is not a constant: `gsasr serve` derives it from the job-memory limit, the output
    /// limit and the served models (``largestInputPixels(models:)``), and refuses to start when a
    /// given value exceeds what the memory limit allows, so the page never promises what the
    /// server refuses.
    public var maxInputPixels = 512 * 512
    /// Largest output image, in pixels (422).
    public var maxOutputPixels = 4096 * 4096
    /// Largest scale factor (422). The paper trains x1-x4 and evaluates up to x30.
    public var maxScale = 30.0
    /// Per-job working-memory estimate (the untiled plan's) above which a request is refused (422).
    public var jobMemoryBytes = 3 << 30
    /// Jobs that run at once (each with `cores / concurrentJobs` threads).
    public var concurrentJobs = max(1, ProcessInfo.processInfo.activeProcessorCount / 2)
    /// Jobs that may wait for a worker; beyond them a request gets 503 with Retry-After.
    public var queueLength = 8
    /// Finished jobs kept for results, deep zoom and overlays: at most this many, and at most
    /// ``cacheBytes`` bytes (Gaussians, the input, the two PNGs). Oldest first out.
    public var cacheJobs = 16
    public var cacheBytes = 1 << 30
    /// A queued or running job whose status nobody asked for in this many seconds is cancelled
    /// (the page polls every fraction of a second, so this means its tab is gone).
    public var abandonAfter: TimeInterval = 30
    /// Deep zoom: the most output pixels per re-rendered side, the largest zoom, the largest
    /// re-render (pixels).
    public var maxZoom = 8.0
    public var maxZoomPixels = 2048 * 2048
    /// Re-renders waiting for the render lane beyond this get 503.
    public var renderQueueLength = 8
    /// A connection is closed when it has been idle this long: between requests (keep-alive),
    /// or before its request's headers are complete (a client that never finishes them). It does
    /// not limit a request being read or answered: the longest legitimate gap, a browser between
    /// two polls of a running job, is a fraction of a second.
    public var idleTimeout: TimeInterval = 30
    /// Connections held at once; past it a new one gets an immediate 503 and is closed
    /// (`ConnectionCap`). Default: the open-file limit minus 64, at most 1024.
    public var maxConnections = ConnectionCap.defaultLimit()

    public init() {}

    /// The largest input, in pixels, that every model in `models` can upscale within
    /// ``jobMemoryBytes`` at any scale the other limits allow: L² for the largest square side L
    /// whose untiled estimate fits when rendered at the largest scale ≤ ``maxScale`` whose output
    /// stays within ``maxOutputPixels`` (scale 1 at least). The estimate grows with the padded
    /// size, so every square up to L fits too. 0 when not even 12x12 fits. An input of the same
    /// pixel count but a very elongated shape pads proportionally more and can still be refused
    /// by the per-request memory check (422, naming the memory).
    public func largestInputPixels(models: [GSASRModel]) -> Int {
        func fits(_ side: Int) -> Bool {
            models.allSatisfy { model in
                var up = Upscaler(model: model)
                up.maxOutputPixels = Int.max / 4
                let scale = min(maxScale, max(1, Double(maxOutputPixels).squareRoot() / Double(side)))
                guard
                    let p = try? up.plan(
                        width: side, height: side, request: ScaleRequest(scale: scale), checkMemory: false)
                else { return false }
                return p.estimatedBytes <= jobMemoryBytes
            }
        }
        var lo = 12, hi = 1 << 15
        guard fits(lo) else { return 0 }
        if fits(hi) { return hi * hi }
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if fits(mid) { lo = mid } else { hi = mid }
        }
        return lo * lo
    }

    /// The bound of the type's summary, over the idle process: running jobs, waiting uploads and
    /// their decoded inputs, the cache, and the render lane's output and PNG.
    public var memoryBoundBytes: Int {
        concurrentJobs * jobMemoryBytes + (concurrentJobs + queueLength) * (maxUploadBytes + 16 * maxInputPixels)
            + cacheBytes + 2 * 12 * maxZoomPixels
    }
}
