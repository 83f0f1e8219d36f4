import Foundation
import GSASR

/// The server's only state: the jobs waiting, running and recently finished.
///
/// - `concurrentJobs` worker threads take jobs in arrival order (Foundation threads, not the
///   async pool, so that a long upscale never blocks the HTTP event loops or the pool);
/// - at most `queueLength` jobs wait; a request past that gets 503 with a Retry-After computed
///   from the recent job times;
/// - finished jobs stay in a cache bounded by count and bytes, oldest out first;
/// - a watchdog cancels queued or running jobs that nobody polled for `abandonAfter` seconds
///   (`heldByConnection` jobs are cancelled by their connection closing instead).
final class JobStore: @unchecked Sendable {
    let limits: ServerLimits
    /// Model name → upscaler (with the limits applied), in the order given; the first is the default.
    let models: [(name: String, upscaler: Upscaler)]

    private let cond = NSCondition()
    private var waiting: [Job] = []
    private var running = 0
    private var jobs: [String: Job] = [:]
    /// Finished jobs, oldest first, and the bytes their results hold.
    private var finishedOrder: [String] = []
    private var cachedBytes = 0
    /// Jobs cancelled, completed and failed since the start (for `/api/info`, and tests).
    private var cancelledCount = 0
    private var completedCount = 0
    private var failedCount = 0
    /// Seconds per finished job (moving average), for Retry-After.
    private var averageSeconds = 5.0

    init(limits: ServerLimits, models: [(name: String, upscaler: Upscaler)]) {
        precondition(!models.isEmpty, "at least one model")
        self.limits = limits
        self.models = models
        for i in 0..<max(1, limits.concurrentJobs) {
            let t = Thread { [unowned self] in self.workerLoop() }
            t.name = "gsasr-job-\(i)"
            t.stackSize = 8 << 20
            t.start()
        }
        let w = Thread { [unowned self] in self.watchdogLoop() }
        w.name = "gsasr-watchdog"
        w.start()
    }

    func upscaler(named name: String?) throws -> (name: String, upscaler: Upscaler) {
        guard let name else { return models[0] }
        guard let m = models.first(where: { $0.name == name }) else {
            throw APIError.unprocessable(
                "model '\(name)' is not served (available: \(models.map(\.name).joined(separator: ", ")))")
        }
        return m
    }

    /// Queues a job, or refuses it with 503 when `queueLength` jobs already wait.
    func submit(_ job: Job) throws {
        cond.lock()
        defer { cond.unlock() }
        // Admitted while a worker is free or a place in the wait list is (running counts the
        // jobs workers hold; a job just queued is still waiting until a worker takes it).
        guard waiting.count + running < limits.concurrentJobs + limits.queueLength else {
            let wait = averageSeconds * Double(waiting.count / max(1, limits.concurrentJobs) + 1)
            throw APIError(
                .serviceUnavailable,
                "the server is busy: \(running) jobs running and \(waiting.count) waiting (the limit); try again later",
                retryAfter: max(1, min(600, Int(wait.rounded(.up)))))
        }
        waiting.append(job)
        jobs[job.id] = job
        cond.signal()
    }

    /// The job with this id, if it is still known; marks it as seen.
    func job(_ id: String) -> Job? {
        cond.lock()
        let j = jobs[id]
        cond.unlock()
        j?.touch()
        return j
    }

    /// Its place among the waiting jobs (0 = next), or nil when not waiting.
    func position(of job: Job) -> Int? {
        cond.lock()
        defer { cond.unlock() }
        return waiting.firstIndex { $0 === job }
    }

    /// Cancels a job. A waiting one leaves the wait list for the cache of finished jobs; a
    /// running one stops at its next block and its worker caches it.
    func cancel(_ job: Job, reason: String) {
        // Under the store's lock (then the job's, the order used everywhere), so that the
        // counts never show a cancelled job as neither running nor cancelled.
        cond.lock()
        if job.cancel(reason) { cancelledCount += 1 }
        if let i = waiting.firstIndex(where: { $0 === job }) {
            waiting.remove(at: i)
            remember(job)
        }
        cond.unlock()
    }

    struct Counts: Encodable {
        var running: Int
        var waiting: Int
        var cached: Int
        var cachedBytes: Int
        var completed: Int
        var cancelled: Int
        var failed: Int
    }

    var counts: Counts {
        cond.lock()
        defer { cond.unlock() }
        return Counts(
            running: running, waiting: waiting.count, cached: finishedOrder.count, cachedBytes: cachedBytes,
            completed: completedCount, cancelled: cancelledCount, failed: failedCount)
    }

    // MARK: - Workers

    private func workerLoop() {
        while true {
            cond.lock()
            while waiting.isEmpty { cond.wait() }
            let job = waiting.removeFirst()
            running += 1
            cond.unlock()
            let t0 = Date()
            run(job)
            cond.lock()
            running -= 1
            switch job.state {
            case .done:
                completedCount += 1
                averageSeconds = 0.7 * averageSeconds + 0.3 * Date().timeIntervalSince(t0)
            case .failed: failedCount += 1
            default: break
            }
            remember(job)
            cond.unlock()
        }
    }

    /// Caches a finished job and evicts the oldest ones past the limits (lock held).
    private func remember(_ job: Job) {
        finishedOrder.append(job.id)
        cachedBytes += job.result?.bytes ?? 0
        while finishedOrder.count > limits.cacheJobs || (cachedBytes > limits.cacheBytes && !finishedOrder.isEmpty) {
            let old = finishedOrder.removeFirst()
            cachedBytes -= jobs[old]?.result?.bytes ?? 0
            jobs[old] = nil
        }
    }

    /// The work of one job: Gaussians, the render at zoom 1 (the upscale), the bicubic
    /// counterpart, and both as PNG.
    private func run(_ job: Job) {
        // nil: cancelled between leaving the wait list and starting (the loop still caches it).
        guard let input = job.start() else { return }
        do {
            let t0 = Date()
            let up = try upscaler(named: job.model).upscaler
            // Overall progress: encoder 0-10 %, decoder 10-85 %, render 85-93 %, files 93-100 %.
            let export = try up.export(
                rgb: input.pixels, width: input.width, height: input.height, request: job.request,
                modelName: job.model
            ) { stage, f in
                switch stage {
                case .encode: try job.report(stage: "encoder", progress: 0.10 * f)
                case .decode: try job.report(stage: "decoder", progress: 0.10 + 0.75 * f)
                case .render: try job.report(stage: "rasterizer", progress: 0.85)
                }
            }
            try job.report(stage: "rasterizer", progress: 0.85)
            let view = try RenderView(export: export)
            let pixels = export.render(view)
            try job.report(stage: "png", progress: 0.93)
            let result = try ImageIO.encodePNG(
                Image(width: view.outputWidth, height: view.outputHeight, pixels: pixels))
            let bicubic = Resize.apply(
                input.pixels, width: input.width, height: input.height, channels: 3,
                rows: Resize.plan(inLength: input.height, outLength: view.outputHeight, scale: job.request.scaleY),
                cols: Resize.plan(inLength: input.width, outLength: view.outputWidth, scale: job.request.scaleX))
            let bicubicPNG = try ImageIO.encodePNG(
                Image(width: view.outputWidth, height: view.outputHeight, pixels: bicubic))
            try job.report(stage: "done", progress: 1)
            job.succeed(
                JobResult(
                    export: export, input: input, resultPNG: result, bicubicPNG: bicubicPNG,
                    seconds: Date().timeIntervalSince(t0)))
        } catch is JobCancelled {
            // Cancelled while running: the state says so already; the work is dropped here.
        } catch {
            job.fail("\(error)")
        }
    }

    // MARK: - Watchdog

    private func watchdogLoop() {
        while true {
            Thread.sleep(forTimeInterval: min(1, limits.abandonAfter / 4))
            let now = Date()
            cond.lock()
            let stale = jobs.values.filter {
                !$0.heldByConnection && !$0.state.isFinal && now.timeIntervalSince($0.lastSeenAt) > limits.abandonAfter
            }
            cond.unlock()
            for job in stale {
                cancel(job, reason: "cancelled: nobody asked for its status in \(Int(limits.abandonAfter)) s")
            }
        }
    }
}
