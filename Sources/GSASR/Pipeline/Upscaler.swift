import Foundation
import GSASRRaster
import GSASRTensor

/// Errors about the request itself (scale, sizes, memory). One line each.
public struct UpscaleError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Stages reported to a progress callback.
public enum UpscaleStage: String, Sendable {
    case encode = "encoder"
    case decode = "decoder"
    case render = "rasterizer"
}

/// The pipeline of the official `inference_paper.py` (no tiling):
/// 1. reflect-pad the LR image bottom/right to a multiple of `denominator`;
/// 2. encode; decode with the scale (Float32);
/// 3. render at floor(s·Hp) × floor(s·Wp) (sizes in Double, as Python does), a Gaussian with
///    normalised mean m at pixel position m·E − ½ per axis, where E is s·Wp (the exact
///    geometry, ours and the default) or floor(s·Wp) (the official geometry; see
///    `GaussianGeometry`);
/// 4. crop top-left to floor(s·H) × floor(s·W).
/// The result is not clamped; `ImageIO.quantize` clamps and rounds half to even for 8 bits.
public struct Upscaler: @unchecked Sendable {
    public let model: GSASRModel
    public var rasterizer: Rasterizer
    /// Refuse requests whose estimated peak working memory exceeds this many bytes.
    public var memoryLimitBytes: Int = 8 << 30
    /// Refuse outputs with more pixels than this.
    public var maxOutputPixels: Int = 1 << 27

    public init(model: GSASRModel, dmax: Float = 0.1, mode: RasterMode = .fast) {
        self.model = model
        self.rasterizer = Rasterizer(mode: mode, dmax: dmax)
    }

    /// Timings of one run, in seconds.
    public struct Timings: Sendable {
        public var encoder = 0.0, decoder = 0.0, rasterizer = 0.0
        public init() {}
    }

    public struct Result: @unchecked Sendable {
        /// HWC RGB, unclamped, `height × width × 3`.
        public var pixels: [Float]
        public var width: Int
        public var height: Int
        public var gaussianCount: Int
        public var timings: Timings
    }

    /// Sizes of a request; validates the scale and the limits before any work is done.
    public struct Plan: Sendable {
        public let inputWidth, inputHeight, paddedWidth, paddedHeight: Int
        public let renderWidth, renderHeight, outputWidth, outputHeight: Int
        public let gaussians: Int
        public let estimatedBytes: Int
        /// The output lengths that the means' unit interval spans on x and y, from the
        /// request's geometry (`GaussianGeometry/meanExtent(paddedSide:scale:)`): where every
        /// Gaussian centre is placed, in the untiled and the tiled pipeline and the export.
        public let meanExtentX, meanExtentY: Double
        /// The scale per axis and the decoder's conditioning scale.
        public let request: ScaleRequest
    }

    public func plan(width w: Int, height h: Int, scale: Double) throws -> Plan {
        try plan(width: w, height: h, request: ScaleRequest(scale: scale))
    }

    /// Validates a request and estimates its untiled working memory; `checkMemory` refuses an
    /// estimate over `memoryLimitBytes` (the tiled pipeline checks its own estimate instead).
    public func plan(width w: Int, height h: Int, request: ScaleRequest, checkMemory: Bool = true) throws -> Plan {
        for scale in [request.scaleX, request.scaleY, request.conditioning] {
            guard scale.isFinite else { throw UpscaleError("scale \(scale) is not a finite number") }
            guard scale >= 1 else { throw UpscaleError("scale \(scale) is below 1; GSASR upscales (use a scale ≥ 1)") }
        }
        let sx = request.scaleX, sy = request.scaleY
        let d = model.denominator
        let padH = (d - h % d) % d, padW = (d - w % d) % d
        guard padH < h, padW < w else {
            throw UpscaleError(
                "image \(w)x\(h) is too small: reflect padding to a multiple of \(d) needs at least \(d / 2 + 1) pixels per side"
            )
        }
        let hp = h + padH, wp = w + padW
        let outW = Double(w) * sx, outH = Double(h) * sy
        guard outW * outH <= Double(maxOutputPixels) else {
            throw UpscaleError(
                String(
                    format: "output %.10gx%.10g at scale %@ exceeds the limit of %d pixels", outW.rounded(.down),
                    outH.rounded(.down), request.isIsotropic ? "\(sx)" : "\(sx)x\(sy)", maxOutputPixels))
        }
        let rw = Int((Double(wp) * sx).rounded(.down)), rh = Int((Double(hp) * sy).rounded(.down))
        let ow = Int(outW.rounded(.down)), oh = Int(outH.rounded(.down))
        let grid = model.decoder.gaussianGrid(featureHeight: hp, featureWidth: wp)
        let n = grid.height * grid.width
        let c = model.decoder.config.channel
        // Peak: the UPNet output plus the second conv's pre-shuffle output (n × C floats each),
        // the token tensors (a few × tokens × C), the render and the Gaussians.
        let tokens =
            n
            / (model.decoder.config.shuffleScale1 * model.decoder.config.shuffleScale1
                * model.decoder.config.shuffleScale2 * model.decoder.config.shuffleScale2)
        // Exact mode bins every Gaussian into all tiles its dmax box touches (the box is
        // dmax·(W−1)/2 pixels each side): one Int32 per (Gaussian, tile).
        var tileEntries = 0.0
        if rasterizer.mode == .exact {
            let tile = Double(Rasterizer.tileSize), d = Double(rasterizer.dmax)
            tileEntries =
                Double(n) * (min(Double(rw), d * Double(rw - 1)) / tile + 2)
                * (min(Double(rh), d * Double(rh - 1)) / tile + 2)
        }
        let estDouble = 4 * (Double(3 * n * c + 12 * tokens * c + 2 * rw * rh * 3 + 20 * n) + tileEntries)
        let est = Int(min(estDouble, Double(Int.max / 2)))
        guard est <= memoryLimitBytes || !checkMemory else {
            throw UpscaleError(
                "input \(w)x\(h) needs about \(est >> 20) MiB of working memory, over the limit of \(memoryLimitBytes >> 20) MiB"
            )
        }
        return Plan(
            inputWidth: w, inputHeight: h, paddedWidth: wp, paddedHeight: hp, renderWidth: rw, renderHeight: rh,
            outputWidth: ow, outputHeight: oh, gaussians: n, estimatedBytes: est,
            meanExtentX: request.geometry.meanExtent(paddedSide: wp, scale: sx),
            meanExtentY: request.geometry.meanExtent(paddedSide: hp, scale: sy), request: request)
    }

    /// Encoder + decoder: the raw (N × 9) Gaussian parameters for an RGB HWC image in [0,1].
    /// `progress(stage, fraction)` runs at the start of each stage and after each residual or
    /// attention block; a progress closure that throws stops the run there (how `gsasr serve`
    /// drops the work of a client that went away) and the error propagates.
    public func gaussians(rgb: [Float], plan p: Plan, timings: inout Timings) -> Tensor {
        gaussians(rgb: rgb, plan: p, timings: &timings, progress: { _, _ in })
    }

    public func gaussians(
        rgb: [Float], plan p: Plan, timings: inout Timings, progress: (UpscaleStage, Double) throws -> Void
    ) rethrows -> Tensor {
        try progress(.encode, 0)
        var t0 = Date()
        let feat = try encode(rgb: rgb, plan: p) { try progress(.encode, Double($0) / Double($1)) }
        timings.encoder = Date().timeIntervalSince(t0)
        try progress(.decode, 0)
        t0 = Date()
        let gs = try model.decoder(
            feat, height: p.paddedHeight, width: p.paddedWidth, scale: Float(p.request.conditioning),
            step: { try progress(.decode, Double($0) / Double($1)) })
        timings.decoder = Date().timeIntervalSince(t0)
        return gs
    }

    /// The whole pipeline. `progress` receives a stage and a fraction in [0, 1].
    public func upscale(
        rgb: [Float], width w: Int, height h: Int, scale: Double,
        progress: ((UpscaleStage, Double) -> Void)? = nil
    ) throws -> Result {
        try upscale(rgb: rgb, width: w, height: h, request: ScaleRequest(scale: scale), progress: progress)
    }

    /// The whole pipeline for a scale per axis (see ``ScaleRequest``).
    public func upscale(
        rgb: [Float], width w: Int, height h: Int, request: ScaleRequest,
        progress: ((UpscaleStage, Double) -> Void)? = nil
    ) throws -> Result {
        try upscale(rgb: rgb, width: w, height: h, request: request, cancellableProgress: { progress?($0, $1) })
    }

    /// The whole pipeline, cancellable: `cancellableProgress` runs at the start of each stage,
    /// after each residual or attention block and during the render, and may throw to stop the
    /// run there (the error propagates: for example `try Task.checkCancellation()` inside it
    /// ends the work of a cancelled task with `CancellationError`). Nothing is returned then,
    /// and nothing is left allocated.
    public func upscale(
        rgb: [Float], width w: Int, height h: Int, request: ScaleRequest,
        cancellableProgress progress: (UpscaleStage, Double) throws -> Void
    ) throws -> Result {
        guard rgb.count == w * h * 3 else {
            throw UpscaleError("image buffer has \(rgb.count) values, expected \(w * h * 3)")
        }
        let p = try plan(width: w, height: h, request: request)
        var timings = Timings()
        let gs = try gaussians(rgb: rgb, plan: p, timings: &timings, progress: progress)
        try progress(.render, 0)
        let t0 = Date()
        // The rasterizer's callback cannot throw: a throw there is kept and raised after it.
        var stop: Error? = nil
        let full = withoutActuallyEscaping(progress) { progress in
            render(gs, plan: p) { f in
                guard stop == nil else { return }
                do { try progress(.render, f) } catch { stop = error }
            }
        }
        if let stop { throw stop }
        timings.rasterizer = Date().timeIntervalSince(t0)
        try progress(.render, 1)
        return Result(
            pixels: crop(full, plan: p), width: p.outputWidth, height: p.outputHeight, gaussianCount: p.gaussians,
            timings: timings)
    }

    /// Reflect-pads an RGB HWC image to the plan's padded size and runs the encoder.
    public func encode(rgb: [Float], plan p: Plan) -> Tensor { encode(rgb: rgb, plan: p, step: { _, _ in }) }

    public func encode(
        rgb: [Float], plan p: Plan, step: (_ done: Int, _ total: Int) throws -> Void
    ) rethrows -> Tensor {
        let h = p.inputHeight, w = p.inputWidth
        let x = Tensor(shape: [h, w, 3], values: rgb)
        let xp =
            (p.paddedHeight == h && p.paddedWidth == w)
            ? x
            : Kernels.reflectPadBottomRight(
                x, height: h, width: w, channels: 3, padH: p.paddedHeight - h, padW: p.paddedWidth - w)
        return try model.encoder(xp, height: p.paddedHeight, width: p.paddedWidth, step: step)
    }

    /// Crops a padded-size render (HWC RGB) to the output size, top-left.
    public func crop(_ full: [Float], plan p: Plan) -> [Float] {
        var out = [Float](repeating: 0, count: p.outputWidth * p.outputHeight * 3)
        let rowLen = p.outputWidth * 3
        for y in 0..<p.outputHeight {
            for i in 0..<rowLen { out[y * rowLen + i] = full[y * p.renderWidth * 3 + i] }
        }
        return out
    }

    /// Activations + coordinate transform + rasterizer at the padded render size.
    public func render(_ gs: Tensor, plan p: Plan, progress: ((Double) -> Void)? = nil) -> [Float] {
        let kernels = withExtendedLifetime(gs) {
            gs.withBuffer { Self.kernels(raw: UnsafeBufferPointer($0), plan: p) }
        }
        return rasterizer.forward(kernels, width: p.renderWidth, height: p.renderHeight, progress: progress)
    }

    /// The kernel inputs of raw Gaussians (N × 9, means in whole-image units) for a plan: the
    /// render size, the scale per axis and the geometry's extents. The untiled pipeline, the
    /// tiled one and the export all convert through here.
    package static func kernels(raw: UnsafeBufferPointer<Float>, plan p: Plan) -> GaussianKernels {
        GaussianActivation.kernels(
            fromRaw: raw, width: p.renderWidth, height: p.renderHeight, scaleX: Float(p.request.scaleX),
            scaleY: Float(p.request.scaleY), extentX: p.meanExtentX, extentY: p.meanExtentY)
    }
}
