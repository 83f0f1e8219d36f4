import Foundation
import GSASR
import Hummingbird

/// A parameter given more than once is an error, not "the first one wins".
func refuseRepeated(_ q: Parameters) throws {
    var seen = Set<String>()
    for (key, _) in q {
        let k = String(key)
        guard seen.insert(k).inserted else {
            throw APIError.unprocessable("parameter '\(printable(k))' is given more than once; give it once")
        }
    }
}

/// A query value as it can appear in a one-line message: control characters (a decoded `%00`,
/// a newline) are shown escaped, and the text is cut at 40 characters.
func printable(_ s: String) -> String {
    String(
        s.unicodeScalars.prefix(40).map {
            $0.value < 0x20 || $0.value == 0x7F ? "\\u{\(String($0.value, radix: 16))}" : String($0)
        }.joined())
}

/// The size request of an upscale: exactly one of `scale`, `size=WxH`, `width`, `height`.
struct UpscaleQuery {
    var scale: Double?
    var size: (width: Int, height: Int)?
    var width: Int?
    var height: Int?
    /// `geometry=exact|official` (default exact; ``GaussianGeometry``).
    var geometry: GaussianGeometry = .default

    init(_ q: Parameters, limits: ServerLimits) throws {
        try refuseRepeated(q)
        if let text = q.get("geometry") {
            do { geometry = try GaussianGeometry(parsing: text) } catch let e as GaussianGeometryError {
                throw APIError.unprocessable(e.description)
            }
        }
        let given = ["scale", "size", "width", "height"].filter { q.get($0) != nil }
        guard !given.isEmpty else {
            throw APIError.unprocessable("give the output size: one of scale, size, width or height")
        }
        guard given.count == 1 else {
            throw APIError.unprocessable(
                "give only one of scale, size, width and height (got \(given.joined(separator: ", ")))")
        }
        if let text = q.get("scale") {
            guard let s = DecimalNumber.double(text) else {
                throw APIError.unprocessable("scale '\(printable(text))' is not a decimal number (e.g. 4 or 3.7)")
            }
            guard s >= 1 else {
                throw APIError.unprocessable("scale \(text) is below 1; GSASR upscales (use a scale ≥ 1)")
            }
            guard s <= limits.maxScale else {
                throw APIError.unprocessable(
                    "scale \(text) is over this server's limit of \(String(format: "%g", limits.maxScale))")
            }
            scale = s
        }
        if let text = q.get("size") {
            // The CLI's parser (its message names the CLI option, so the API says its own).
            guard let s = try? ScaleRequest.parseSize(text) else {
                throw APIError.unprocessable("size '\(text)' is not WIDTHxHEIGHT (e.g. 1920x1080)")
            }
            size = s
        }
        for (key, slot) in [("width", \UpscaleQuery.width), ("height", \UpscaleQuery.height)] {
            if let text = q.get(key) {
                guard let v = DecimalNumber.int(text) else {
                    throw APIError.unprocessable("\(key) '\(printable(text))' is not a whole number")
                }
                self[keyPath: slot] = v
            }
        }
    }

    func resolve(width w: Int, height h: Int) throws -> ScaleRequest {
        try ScaleRequest.resolve(
            inputWidth: w, inputHeight: h, scale: scale, size: size, width: width, height: height, geometry: geometry)
    }
}

/// A deep-zoom request: `region=x,y,w,h` in pixels of the result, `zoom` (default 4),
/// `method=gsasr|bicubic`, `overlay=1`.
struct ZoomQuery {
    var view: RenderView
    var bicubic: Bool
    var overlay: Bool
    /// The most ellipses drawn by the overlay (the most opaque first).
    static let overlayCap = 20_000

    init(_ q: Parameters, result: JobResult, limits: ServerLimits) throws {
        guard let regionText = q.get("region") else {
            throw APIError.unprocessable("give region=x,y,w,h (pixels of the result)")
        }
        guard let region = try? RenderView.parseRegion(regionText) else {
            throw APIError.unprocessable("region '\(regionText)' is not x,y,w,h (e.g. 10,20,64,48)")
        }
        try refuseRepeated(q)
        var zoom = 4.0
        if let z = q.get("zoom") {
            guard let v = DecimalNumber.double(z), v > 0 else {
                throw APIError.unprocessable("zoom '\(printable(z))' is not a positive decimal number")
            }
            guard v <= limits.maxZoom else {
                throw APIError.unprocessable("zoom \(z) is over the limit of \(String(format: "%g", limits.maxZoom))")
            }
            zoom = v
        }
        switch q.get("method") ?? "gsasr" {
        case "gsasr": bicubic = false
        case "bicubic": bicubic = true
        case let m: throw APIError.unprocessable("method '\(m)' is not gsasr or bicubic")
        }
        overlay = q.get("overlay") == "1"
        do {
            view = try RenderView(export: result.export, region: region, zoom: zoom)
        } catch let e as GaussianExportError {
            throw APIError.unprocessable(e.description)
        }
        guard view.outputWidth * view.outputHeight <= limits.maxZoomPixels else {
            throw APIError.unprocessable(
                "zoomed region \(view.outputWidth)x\(view.outputHeight) is over the limit of \(limits.maxZoomPixels) pixels"
            )
        }
    }

    /// The PNG: the Gaussians re-rendered over the region (with their ellipses when `overlay`),
    /// or the bicubic upscale of the input sampled at the same positions.
    func render(_ r: JobResult) throws -> [UInt8] {
        let e = r.export
        var pixels: [Float]
        if bicubic {
            pixels = Resize.apply(
                r.input.pixels, width: r.input.width, height: r.input.height, channels: 3,
                rows: Resize.plan(
                    inLength: r.input.height, scale: e.scaleY, origin: Double(view.y), zoom: view.zoomY,
                    count: view.outputHeight),
                cols: Resize.plan(
                    inLength: r.input.width, scale: e.scaleX, origin: Double(view.x), zoom: view.zoomX,
                    count: view.outputWidth))
        } else {
            pixels = e.render(view)
            if overlay {
                let grid = view.grid(e)
                let selection = GaussianOverlay.select(e.kernels, opacity: e.opacity, grid: grid, cap: Self.overlayCap)
                pixels.withUnsafeMutableBufferPointer {
                    GaussianOverlay.draw(
                        e.kernels, opacity: e.opacity, selection: selection, grid: grid, rows: 0..<view.outputHeight,
                        into: $0)
                }
            }
        }
        return try ImageIO.encodePNG(Image(width: view.outputWidth, height: view.outputHeight, pixels: pixels))
    }
}

/// Re-renders run one at a time on their own queue (they take a fraction of a second; a job may
/// be running beside them), with at most `limit` waiting; past that, 503.
final class RenderLane: @unchecked Sendable {
    private let queue = DispatchQueue(label: "gsasr.render")
    private let lock = NSLock()
    private var pending = 0
    let limit: Int

    init(limit: Int) { self.limit = limit }

    func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        let admitted: Bool = lock.withLock {
            guard pending < limit else { return false }
            pending += 1
            return true
        }
        guard admitted else {
            throw APIError(.serviceUnavailable, "too many re-renders waiting; try again shortly", retryAfter: 1)
        }
        return try await withCheckedThrowingContinuation { c in
            queue.async {
                let r = Result { try work() }
                self.lock.withLock { self.pending -= 1 }
                c.resume(with: r)
            }
        }
    }
}
