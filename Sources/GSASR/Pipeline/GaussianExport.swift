import Foundation

/// The activated Gaussians of one upscale, with what is needed to render them again: the
/// contents of a `gsasr gaussians` file.
///
/// **Units.** All geometry is in the *normalised units of the render* the pipeline made:
/// an image of `renderWidth × renderHeight` pixels (the reflect-padded input times the scale,
/// floored) whose pixel `(row, col)` sits at `x = 2·col/(renderWidth − 1) − 1`,
/// `y = 2·row/(renderHeight − 1) − 1`, so x and y both span [−1, 1] across the render, each with
/// its own pixel pitch. The output image is its top-left `outputWidth × outputHeight`.
/// * `centers` (N×2): `[x, y]` of each Gaussian's centre.
/// * `sigmas` (N×3): `[sx, sy, rho]`, the standard deviations along x and y in those units and
///   the correlation in (−1, 1); in render pixels the deviations are `sx·(renderWidth − 1)/2` and
///   `sy·(renderHeight − 1)/2`. The Gaussian's value at an offset `(dx, dy)` is
///   `exp(−(dx²/sx² − 2ρ·dx·dy/(sx·sy) + dy²/sy²)/(2(1 − ρ²)))`, unnormalised.
/// * `colors` (N×3): RGB times opacity, in [0, 1]; a pixel is the plain sum of value × colour
///   over the Gaussians whose `dmax` box (|dx| ≤ dmax and |dy| ≤ dmax, normalised units) holds it.
/// * `opacity` (N): the opacity alpha in (0, 1) that `colors` is multiplied by.
///
/// These are exactly the rasterizer's kernel inputs (`GaussianKernels`), so rendering them at
/// the render size and cropping gives the upscale pipeline's output bit for bit.
public struct GaussianExport: Sendable {
    public var kernels: GaussianKernels
    public var opacity: [Float]
    /// Size of the image the normalised units refer to (the padded render).
    public var renderWidth: Int
    public var renderHeight: Int
    /// Size of the upscaled image (the top-left crop of the render).
    public var outputWidth: Int
    public var outputHeight: Int
    /// The LR input's size.
    public var inputWidth: Int
    public var inputHeight: Int
    /// The scale per axis, and the scale the decoder was conditioned on.
    public var scaleX: Double
    public var scaleY: Double
    public var conditioning: Double
    /// Where the means were placed when the centres were computed (metadata `geometry`; files
    /// without it predate the exact geometry and are `official`). The centres are stored
    /// already placed, so rendering does not read it.
    public var geometry: GaussianGeometry
    /// The rasterizer settings of the export (used again to render it).
    public var dmax: Float
    public var mode: RasterMode
    /// The model's name (its folder).
    public var model: String

    /// `format` metadata value of an export file.
    public static let formatName = "gsasr-gaussians"
    public static let formatVersion = "1"

    public var count: Int { kernels.count }

    public init(
        kernels: GaussianKernels, opacity: [Float], renderWidth: Int, renderHeight: Int, outputWidth: Int,
        outputHeight: Int, inputWidth: Int, inputHeight: Int, scaleX: Double, scaleY: Double, conditioning: Double,
        geometry: GaussianGeometry, dmax: Float, mode: RasterMode, model: String
    ) {
        precondition(opacity.count == kernels.count, "one opacity per Gaussian")
        self.kernels = kernels
        self.opacity = opacity
        self.renderWidth = renderWidth
        self.renderHeight = renderHeight
        self.outputWidth = outputWidth
        self.outputHeight = outputHeight
        self.inputWidth = inputWidth
        self.inputHeight = inputHeight
        self.scaleX = scaleX
        self.scaleY = scaleY
        self.conditioning = conditioning
        self.geometry = geometry
        self.dmax = dmax
        self.mode = mode
        self.model = model
    }

    /// The rasterizer the export was made with.
    public func rasterizer(threads: Int? = nil) -> Rasterizer {
        Rasterizer(mode: mode, dmax: dmax, threads: threads)
    }

    // MARK: - File

    /// `raster_mode` metadata: "exact" or "fast" (with `epsilon`).
    var modeMetadata: [String: String] {
        switch mode {
        case .exact: return ["raster_mode": "exact"]
        case .fast(let eps): return ["raster_mode": "fast", "epsilon": "\(eps)"]
        }
    }

    /// The metadata map (all values strings; numbers in Swift's shortest round-trip form).
    public var metadata: [String: String] {
        var m: [String: String] = [
            "format": Self.formatName, "format_version": Self.formatVersion, "gaussians": "\(count)",
            "render_width": "\(renderWidth)", "render_height": "\(renderHeight)",
            "output_width": "\(outputWidth)", "output_height": "\(outputHeight)",
            "input_width": "\(inputWidth)", "input_height": "\(inputHeight)",
            "scale_x": "\(scaleX)", "scale_y": "\(scaleY)", "conditioning_scale": "\(conditioning)",
            "dmax": "\(dmax)", "model": model, "geometry": geometry.rawValue,
            "units":
                "centers [x,y], sigmas [sx,sy,rho]: normalised to render_width x render_height, pixel (row,col) at (2col/(render_width-1)-1, 2row/(render_height-1)-1); colors: RGB*opacity",
        ]
        m.merge(modeMetadata) { $1 }
        return m
    }

    /// Writes the export as safetensors (F32 tensors `centers`, `sigmas`, `colors`, `opacity`
    /// and the ``metadata``), atomically (temporary sibling, then rename).
    public func save(to url: URL) throws {
        var sd = StateDict()
        sd.insert("centers", LoadedTensor(shape: [count, 2], dtype: .float32, floats: kernels.coords))
        sd.insert("sigmas", LoadedTensor(shape: [count, 3], dtype: .float32, floats: kernels.sigmas))
        sd.insert("colors", LoadedTensor(shape: [count, 3], dtype: .float32, floats: kernels.colors))
        sd.insert("opacity", LoadedTensor(shape: [count], dtype: .float32, floats: opacity))
        try Safetensors.save(sd, metadata: metadata, to: url)
    }

    /// Largest render side accepted from a file (the pipeline's output is at most 2^27 pixels).
    public static let maxRenderSide = 1 << 20

    /// Reads and checks an export. The file is untrusted: every tensor must be present, F32,
    /// and of the shape the `gaussians` count gives; every size must be consistent; every value
    /// finite, with `sx, sy > 0`, `|rho| < 1` and `opacity` in [0, 1].
    /// - Throws: `GaussianExportError` (one line naming the file and the problem), or the
    ///   safetensors reader's `CheckpointError` for a malformed file.
    public static func load(_ url: URL) throws -> GaussianExport {
        let name = url.lastPathComponent
        func fail(_ s: String) -> GaussianExportError { GaussianExportError("\(name): \(s)") }
        let (sd, meta) = try Safetensors.loadWithMetadata(url)
        guard meta["format"] == formatName else {
            throw fail(
                "not a Gaussian export (its metadata has no format '\(formatName)'; make one with gsasr gaussians)")
        }
        guard meta["format_version"] == formatVersion else {
            throw fail("format version '\(meta["format_version"] ?? "")' is not supported (expected \(formatVersion))")
        }
        func int(_ key: String, _ range: ClosedRange<Int>) throws -> Int {
            guard let s = meta[key] else { throw fail("metadata '\(key)' is missing") }
            guard let v = Int(s), range.contains(v) else {
                throw fail("metadata '\(key)' = '\(s)' is not an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            return v
        }
        func double(_ key: String) throws -> Double {
            guard let s = meta[key] else { throw fail("metadata '\(key)' is missing") }
            guard let v = Double(s), v.isFinite, v >= 1, v <= 1e6 else {
                throw fail("metadata '\(key)' = '\(s)' is not a scale ≥ 1")
            }
            return v
        }
        let n = try int("gaussians", 0...(1 << 28))
        let rw = try int("render_width", 2...maxRenderSide), rh = try int("render_height", 2...maxRenderSide)
        let ow = try int("output_width", 1...rw), oh = try int("output_height", 1...rh)
        let iw = try int("input_width", 1...rw), ih = try int("input_height", 1...rh)
        let sx = try double("scale_x"), sy = try double("scale_y"), cond = try double("conditioning_scale")
        guard let dmaxText = meta["dmax"] else { throw fail("metadata 'dmax' is missing") }
        guard let dmax = Float(dmaxText), dmax.isFinite, dmax > 0, dmax <= 2 else {
            throw fail("metadata 'dmax' = '\(dmaxText)' is not in (0, 2]")
        }
        let geometry: GaussianGeometry
        switch meta["geometry"] {
        case nil: geometry = .official
        case let g?:
            guard let v = GaussianGeometry(rawValue: g) else {
                throw fail(
                    "metadata 'geometry' = '\(g)' is not one of \(GaussianGeometry.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            geometry = v
        }
        let mode: RasterMode
        switch meta["raster_mode"] {
        case "exact": mode = .exact
        case "fast":
            guard let t = meta["epsilon"], let eps = Float(t), eps > 0, eps < 1 else {
                throw fail("metadata 'epsilon' of fast mode is missing or not in (0, 1)")
            }
            mode = .fast(epsilon: eps)
        case let other: throw fail("metadata 'raster_mode' = '\(other ?? "")' is not 'fast' or 'exact'")
        }
        func tensor(_ key: String, _ shape: [Int]) throws -> [Float] {
            guard let t = sd[key] else { throw fail("tensor '\(key)' is missing") }
            guard t.dtype == .float32 else { throw fail("tensor '\(key)' is \(t.dtype.rawValue), expected float32") }
            guard t.shape == shape, t.floats.count == shape.reduce(1, *) else {
                throw fail("tensor '\(key)' has shape \(t.shape), expected \(shape) for \(n) Gaussians")
            }
            return t.floats
        }
        let centers = try tensor("centers", [n, 2]), sigmas = try tensor("sigmas", [n, 3])
        let colors = try tensor("colors", [n, 3]), opacity = try tensor("opacity", [n])
        let extra = sd.keys.filter { !["centers", "sigmas", "colors", "opacity"].contains($0) }
        guard extra.isEmpty else { throw fail("unexpected tensor '\(extra[0])'") }
        // A malicious file can hold anything: the rasterizer needs finite values, positive
        // deviations and |ρ| < 1 (1/(1-ρ²) must be finite).
        for i in 0..<n {
            let s0 = sigmas[3 * i], s1 = sigmas[3 * i + 1], r = sigmas[3 * i + 2]
            guard s0.isFinite, s1.isFinite, s0 > 0, s1 > 0, r.isFinite, abs(r) < 1, (1 - r * r) > 0 else {
                throw fail("Gaussian \(i) has invalid sigmas [\(s0), \(s1), \(r)] (need sx, sy > 0 and |rho| < 1)")
            }
            guard centers[2 * i].isFinite, centers[2 * i + 1].isFinite else {
                throw fail("Gaussian \(i) has a centre that is not finite")
            }
            guard colors[3 * i].isFinite, colors[3 * i + 1].isFinite, colors[3 * i + 2].isFinite,
                opacity[i].isFinite, opacity[i] >= 0, opacity[i] <= 1
            else { throw fail("Gaussian \(i) has a colour that is not finite or an opacity outside [0, 1]") }
        }
        return GaussianExport(
            kernels: GaussianKernels(sigmas: sigmas, coords: centers, colors: colors), opacity: opacity,
            renderWidth: rw, renderHeight: rh, outputWidth: ow, outputHeight: oh, inputWidth: iw, inputHeight: ih,
            scaleX: sx, scaleY: sy, conditioning: cond, geometry: geometry, dmax: dmax, mode: mode,
            model: meta["model"] ?? "")
    }
}

/// A Gaussian export file or render request that cannot be used. One line.
public struct GaussianExportError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension Upscaler {
    /// Encoder + decoder + activations: the Gaussians of `rgb` (HWC in [0, 1]) for `request`,
    /// exactly the kernels that ``upscale(rgb:width:height:request:progress:)`` rasterizes.
    /// Untiled: the plan's memory check (``memoryLimitBytes``) applies.
    public func export(
        rgb: [Float], width w: Int, height h: Int, request: ScaleRequest, modelName: String,
        progress: (UpscaleStage, Double) throws -> Void = { _, _ in }
    ) throws -> GaussianExport {
        guard rgb.count == w * h * 3 else {
            throw UpscaleError("image buffer has \(rgb.count) values, expected \(w * h * 3)")
        }
        let p = try plan(width: w, height: h, request: request)
        var timings = Timings()
        let gs = try gaussians(rgb: rgb, plan: p, timings: &timings, progress: progress)
        let (kernels, opacity) = gs.withBuffer {
            let raw = UnsafeBufferPointer($0)
            return (Self.kernels(raw: raw, plan: p), GaussianActivation.opacities(fromRaw: raw))
        }
        return GaussianExport(
            kernels: kernels, opacity: opacity, renderWidth: p.renderWidth, renderHeight: p.renderHeight,
            outputWidth: p.outputWidth, outputHeight: p.outputHeight, inputWidth: w, inputHeight: h,
            scaleX: p.request.scaleX, scaleY: p.request.scaleY, conditioning: p.request.conditioning,
            geometry: p.request.geometry, dmax: rasterizer.dmax, mode: rasterizer.mode, model: modelName)
    }
}
