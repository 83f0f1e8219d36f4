import Foundation
import GSASR

/// Thrown inside a job's work when the job was cancelled; the work stops at the next residual
/// or attention block and everything it allocated is released.
struct JobCancelled: Error {}

/// The states of a job. `done`, `failed` and `cancelled` are final.
enum JobState: String, Codable, Sendable {
    case queued, running, done, failed, cancelled
    var isFinal: Bool { self == .done || self == .failed || self == .cancelled }
}

/// What a finished job keeps, for the result downloads, the deep zoom and the overlay.
struct JobResult: Sendable {
    /// The activated Gaussians (the re-render source).
    var export: GaussianExport
    /// The LR input (RGB), for the bicubic zoom.
    var input: Image
    var resultPNG: [UInt8]
    var bicubicPNG: [UInt8]
    var seconds: Double
    /// Bytes held: 9 floats per Gaussian, the input, the two PNGs.
    var bytes: Int { export.count * 36 + input.pixels.count * 4 + resultPNG.count + bicubicPNG.count }
}

/// One upscale request: immutable inputs, and a state behind a lock that the worker thread, the
/// status requests and the watchdog share.
final class Job: @unchecked Sendable {
    let id: String
    let model: String
    let request: ScaleRequest
    let plan: Upscaler.Plan
    /// True for `POST /api/upscale`, whose open connection (not polling) says the client is there.
    let heldByConnection: Bool
    let created = Date()

    private let lock = NSLock()
    private var input: Image?
    private var _state = JobState.queued
    private var stage = "queued"
    private var progress = 0.0
    private var error: String?
    private var lastSeen = Date()
    private var started: Date?
    private var finished: Date?
    private var _result: JobResult?
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(model: String, request: ScaleRequest, plan: Upscaler.Plan, input: Image, heldByConnection: Bool) {
        var rng = SystemRandomNumberGenerator()
        id = (0..<4).map { _ in String(format: "%08x", UInt32.random(in: .min ... .max, using: &rng)) }.joined()
        self.model = model
        self.request = request
        self.plan = plan
        self.input = input
        self.heldByConnection = heldByConnection
    }

    var state: JobState { lock.withLock { _state } }
    var result: JobResult? { lock.withLock { _result } }
    var lastSeenAt: Date { lock.withLock { lastSeen } }

    /// A status request arrived: the client is still there.
    func touch() { lock.withLock { lastSeen = Date() } }

    /// Takes the input for the worker; nil when the job was cancelled while it waited.
    func start() -> Image? {
        lock.withLock {
            guard _state == .queued, let img = input else { return nil }
            _state = .running
            started = Date()
            stage = "starting"
            return img
        }
    }

    /// Progress from the worker (overall fraction in [0, 1]); throws once the job is cancelled.
    func report(stage s: String, progress p: Double) throws {
        try lock.withLock {
            guard _state == .running else { throw JobCancelled() }
            stage = s
            progress = max(progress, min(1, p))
        }
    }

    /// Cancels a queued or running job (a running one stops at its next block). Returns false if
    /// it had already finished.
    @discardableResult
    func cancel(_ reason: String) -> Bool {
        let w: [CheckedContinuation<Void, Never>]? = lock.withLock {
            guard !_state.isFinal else { return nil }
            _state = .cancelled
            error = reason
            input = nil
            finished = Date()
            defer { waiters = [] }
            return waiters
        }
        w?.forEach { $0.resume() }
        return w != nil
    }

    func succeed(_ r: JobResult) { finish(.done, result: r, error: nil) }
    func fail(_ message: String) { finish(.failed, result: nil, error: message) }

    private func finish(_ s: JobState, result r: JobResult?, error e: String?) {
        let w: [CheckedContinuation<Void, Never>] = lock.withLock {
            guard !_state.isFinal else { return [] }
            _state = s
            _result = r
            error = e
            input = nil
            finished = Date()
            if s == .done {
                stage = "done"
                progress = 1
            }
            defer { waiters = [] }
            return waiters
        }
        w.forEach { $0.resume() }
    }

    /// Returns once the job is final.
    func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now: Bool = lock.withLock {
                if _state.isFinal { return true }
                waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    /// The JSON of `GET /api/jobs/{id}`.
    struct Status: Encodable {
        var id: String
        var state: JobState
        var stage: String
        var progress: Double
        var position: Int?
        var model: String
        var inputWidth: Int
        var inputHeight: Int
        var outputWidth: Int
        var outputHeight: Int
        var scaleX: Double
        var scaleY: Double
        var geometry: GaussianGeometry
        var gaussians: Int
        var seconds: Double?
        var error: String?
    }

    func status(position: Int?) -> Status {
        lock.withLock {
            Status(
                id: id, state: _state, stage: stage, progress: progress, position: position, model: model,
                inputWidth: plan.inputWidth, inputHeight: plan.inputHeight, outputWidth: plan.outputWidth,
                outputHeight: plan.outputHeight, scaleX: request.scaleX, scaleY: request.scaleY,
                geometry: request.geometry, gaussians: plan.gaussians,
                seconds: started.map { (finished ?? Date()).timeIntervalSince($0) }, error: error)
        }
    }
}
