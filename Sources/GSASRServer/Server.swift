import Foundation
import GSASR
import Hummingbird

/// `gsasr serve`: the web page and its HTTP API, on Hummingbird.
///
/// API (all errors are `{"error": "...", "status": N}`):
/// - `GET /` the page; `GET /api/info` models and limits.
/// - `POST /api/jobs?scale=S` (or `size=WxH`, `width=W`, `height=H`; optional `model=NAME`,
///   `geometry=exact|official`, default exact: where the Gaussians land, ``GaussianGeometry``) with
///   the image file as the body (PNG, JPEG, TIFF, HEIC or AVIF): 202 and the job's status; 413 (body or pixels over
///   the limit), 415 (not PNG/JPEG), 422 (bad or missing parameter, corrupt image, output or
///   memory over the limits), 503 + Retry-After (queue full).
/// - `GET /api/jobs/{id}`: state (queued, running, done, failed, cancelled), stage, progress,
///   place in the queue, sizes. Polling it is what keeps a job alive (``ServerLimits/abandonAfter``).
/// - `POST /api/jobs/{id}/cancel`.
/// - `GET /api/jobs/{id}/result.png`, `.../bicubic.png` (`?download=1`: as an attachment).
/// - `GET /api/jobs/{id}/zoom.png?region=x,y,w,h&zoom=Z[&method=bicubic][&overlay=1]`: a region of
///   the result (pixels of the result) re-rendered from the cached Gaussians at zoom Z (no
///   network pass), the same region of the bicubic upscale sampled at the same positions, or the
///   re-render with the Gaussians' 1-sigma ellipses and centres drawn over it.
/// - `POST /api/upscale?scale=S` with the image: the PNG itself, for scripts; the work is dropped
///   if the client disconnects.
public struct GSASRServer: Sendable {
    let store: JobStore
    let lane: RenderLane

    /// `models`: name and model, the first being the default.
    public init(
        models: [(name: String, model: GSASRModel)], limits: ServerLimits = ServerLimits(), dmax: Float = 0.1,
        mode: RasterMode = .fast
    ) {
        let ups = models.map { m -> (name: String, upscaler: Upscaler) in
            var up = Upscaler(model: m.model, dmax: dmax, mode: mode)
            up.memoryLimitBytes = limits.jobMemoryBytes
            up.maxOutputPixels = limits.maxOutputPixels
            return (m.name, up)
        }
        store = JobStore(limits: limits, models: ups)
        lane = RenderLane(limit: limits.renderQueueLength)
    }

    var limits: ServerLimits { store.limits }

    /// Serves until SIGINT or SIGTERM. `onListening` gets the bound port (useful with port 0).
    public func run(host: String, port: Int, onListening: @escaping @Sendable (Int) -> Void) async throws {
        let cap = ConnectionCap(limit: limits.maxConnections)
        let app = Application(
            router: router(),
            server: .http1(
                configuration: .init(
                    additionalChannelHandlers: [ConnectionCapHandler(cap: cap)],
                    idleTimeout: .milliseconds(Int64(limits.idleTimeout * 1000)))),
            configuration: .init(address: .hostname(host, port: port), serverName: "gsasr"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? port) })
        try await app.runService()
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        // First, so that it wraps every route and the router's not-found answer.
        router.add(middleware: JSONErrorMiddleware())
        router.get("/") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: Page.html)))
        }
        router.get("/api/info") { _, _ in JSONBody.response(self.info()) }
        router.post("/api/jobs") { request, _ in
            let job = try await self.makeJob(request, body: request.body, heldByConnection: false)
            try self.store.submit(job)
            return JSONBody.response(job.status(position: self.store.position(of: job)), status: .accepted)
        }
        router.get("/api/jobs/:id") { _, context in
            let job = try self.find(context)
            return JSONBody.response(job.status(position: self.store.position(of: job)))
        }
        router.post("/api/jobs/:id/cancel") { _, context in
            let job = try self.find(context)
            self.store.cancel(job, reason: "cancelled by the client")
            return JSONBody.response(job.status(position: nil))
        }
        router.get("/api/jobs/:id/result.png") { request, context in
            self.png(try self.finished(context).resultPNG, request: request)
        }
        router.get("/api/jobs/:id/bicubic.png") { request, context in
            self.png(try self.finished(context).bicubicPNG, request: request)
        }
        router.get("/api/jobs/:id/zoom.png") { request, context in
            let result = try self.finished(context)
            let q = try ZoomQuery(request.uri.queryParameters, result: result, limits: self.limits)
            let bytes = try await self.lane.run { try q.render(result) }
            return self.png(bytes)
        }
        router.post("/api/upscale") { request, context in
            // Watching for the client to go away consumes the connection: Hummingbird closes it
            // after this response, so the response says so (clients must not reuse it).
            let closed = CancelSignal()
            var response: Response
            do {
                response = try await request.body.consumeWithInboundCloseHandler { body in
                    let job = try await self.makeJob(request, body: body, heldByConnection: true)
                    try self.store.submit(job)
                    closed.onSignal { self.store.cancel(job, reason: "cancelled: the client disconnected") }
                    await job.wait()
                    guard let r = job.result else {
                        throw APIError(
                            .internalServerError, job.status(position: nil).error ?? "the job did not finish")
                    }
                    var response = self.png(r.resultPNG)
                    response.headers[.init("X-GSASR-Job")!] = job.id
                    return response
                } onInboundClosed: {
                    closed.signal()
                }
            } catch let e as APIError {
                response = try e.response(from: request, context: context)
            }
            response.headers[.connection] = "close"
            return response
        }
        return router
    }

    // MARK: - Requests

    struct Info: Encodable {
        struct Limits: Encodable {
            var maxUploadBytes, maxInputPixels, maxOutputPixels: Int
            var maxScale, maxZoom: Double
            var maxZoomPixels, concurrentJobs, queueLength, jobMemoryBytes, cacheJobs, cacheBytes: Int
            /// ``ServerLimits/memoryBoundBytes``: what the limits let the work hold, over the
            /// idle process (code and models).
            var memoryBoundBytes: Int
        }
        var models: [String]
        /// Per model, the precision of its decoder's large products (`gsasr serve --precision`).
        var precisions: [String: String]
        var limits: Limits
        var jobs: JobStore.Counts
        var version: String
    }

    func info() -> Info {
        let l = limits
        return Info(
            models: store.models.map(\.name),
            precisions: Dictionary(
                store.models.map { ($0.name, $0.upscaler.model.precision.rawValue) }, uniquingKeysWith: { a, _ in a }),
            limits: .init(
                maxUploadBytes: l.maxUploadBytes, maxInputPixels: l.maxInputPixels, maxOutputPixels: l.maxOutputPixels,
                maxScale: l.maxScale, maxZoom: l.maxZoom, maxZoomPixels: l.maxZoomPixels,
                concurrentJobs: l.concurrentJobs, queueLength: l.queueLength, jobMemoryBytes: l.jobMemoryBytes,
                cacheJobs: l.cacheJobs, cacheBytes: l.cacheBytes, memoryBoundBytes: l.memoryBoundBytes),
            jobs: store.counts, version: GSASRVersion.string)
    }

    /// Validates the parameters, reads the body within the limit, decodes the image (its pixel
    /// count checked from the header first) and plans the job. Every refusal is an `APIError`.
    func makeJob(_ request: Request, body: RequestBody, heldByConnection: Bool) async throws -> Job {
        let q = request.uri.queryParameters
        let target = try UpscaleQuery(q, limits: limits)
        let (modelName, up) = try store.upscaler(named: q.get("model"))
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limits.maxUploadBytes {
            throw APIError.tooLarge("the upload is \(length) bytes, over the limit of \(limits.maxUploadBytes) bytes")
        }
        var bytes: [UInt8] = []
        for try await chunk in body {
            guard bytes.count + chunk.readableBytes <= limits.maxUploadBytes else {
                throw APIError.tooLarge("the upload is over the limit of \(limits.maxUploadBytes) bytes")
            }
            bytes.append(contentsOf: chunk.readableBytesView)
        }
        guard !bytes.isEmpty else {
            throw APIError.unprocessable(
                "the request has no image: send the image file (PNG, JPEG, TIFF, HEIC or AVIF) as the body")
        }
        let data = Data(bytes)
        bytes = []
        guard ImageIO.detectFormat(data) != nil else {
            throw APIError.unsupported("the upload (\(data.count) bytes) is not a PNG, JPEG, TIFF, HEIC or AVIF file")
        }
        let decoded: DecodedImage
        do {
            decoded = try ImageIO.decode(data, name: "upload", maxPixels: limits.maxInputPixels)
        } catch let e as ImageIOError {
            throw e.isPixelLimit
                ? APIError.tooLarge(
                    e.message
                        + "; this server upscales whole images up to that size (the gsasr command tiles larger photos)")
                : APIError.unprocessable(e.message)
        }
        let img = decoded.rgb
        let scaleRequest: ScaleRequest
        let plan: Upscaler.Plan
        do {
            scaleRequest = try target.resolve(width: img.width, height: img.height)
            for s in [scaleRequest.scaleX, scaleRequest.scaleY] where s > limits.maxScale {
                throw UpscaleError("scale \(s) is over the limit of \(limits.maxScale)")
            }
            plan = try up.plan(width: img.width, height: img.height, request: scaleRequest)
        } catch let e as UpscaleError {
            throw APIError.unprocessable(e.description)
        }
        return Job(model: modelName, request: scaleRequest, plan: plan, input: img, heldByConnection: heldByConnection)
    }

    func find(_ context: BasicRequestContext) throws -> Job {
        let id = try context.parameters.require("id")
        guard let job = store.job(id) else { throw APIError.notFound("job '\(id)' is unknown or has expired") }
        return job
    }

    /// The result of a finished job, or 409 (still working) / 410 (failed or cancelled).
    func finished(_ context: BasicRequestContext) throws -> JobResult {
        let job = try find(context)
        if let r = job.result { return r }
        let s = job.status(position: nil)
        if s.state.isFinal {
            throw APIError(.gone, "job \(job.id) has no result: \(s.error ?? s.state.rawValue)")
        }
        throw APIError(.conflict, "job \(job.id) is \(s.state.rawValue); its result is not ready")
    }

    func png(_ bytes: [UInt8], request: Request? = nil) -> Response {
        var headers: HTTPFields = [.contentType: "image/png", .cacheControl: "private, max-age=600"]
        if let request, request.uri.queryParameters.get("download") == "1" {
            // No file name: the page's download attribute names it after the upload.
            headers[.contentDisposition] = "attachment"
        }
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

}

/// Fires its handler once: when the signal comes, or at once if it already came.
final class CancelSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var fired = false
    private var handler: (() -> Void)?

    func onSignal(_ h: @escaping () -> Void) {
        let now: Bool = lock.withLock {
            if fired { return true }
            handler = h
            return false
        }
        if now { h() }
    }

    func signal() {
        let h: (() -> Void)? = lock.withLock {
            fired = true
            defer { handler = nil }
            return handler
        }
        h?()
    }
}
