import ArgumentParser
import Foundation
import GSASR
import GSASRBench
import GSASRTraining

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Entry point. Errors are printed as one line (`gsasr: error: ...`) with exit status 1.
@main
struct GSASRCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gsasr",
        abstract: "Arbitrary-scale super-resolution with 2D Gaussian splatting (GSASR, ICCV 2025).",
        version: "gsasr \(GSASRVersion.string)",
        subcommands: [
            Upscale.self, Gaussians.self, Render.self, Serve.self, Train.self, Eval.self, Compare.self, Bench.self,
            Convert.self, Info.self, Models.self,
        ],
        defaultSubcommand: Upscale.self)

    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let e as ExitCode {
            Foundation.exit(e.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success || error is CleanExit {
                Self.exit(withError: error)
            }
            // Our own errors: exactly one line. ArgumentParser's usage errors keep their text.
            let message: String
            switch error {
            case let e as CustomStringConvertible where !(error is ValidationError) && isOurs(error):
                message = e.description
            default:
                message = fullMessage(for: error)
            }
            let line = message.split(separator: "\n").first.map(String.init) ?? "unknown error"
            FileHandle.standardError.write(Data("gsasr: error: \(line)\n".utf8))
            Foundation.exit(code == .success ? 1 : code.rawValue)
        }
    }

    static func isOurs(_ error: Error) -> Bool {
        error is CLIError || error is UpscaleError || error is ModelLoadError || error is CheckpointError
            || error is ImageIOError || error is BenchError || error is TrainingError
            || error is GaussianExportError
    }
}

struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Shared model-selection options.
struct ModelOptions: ParsableArguments {
    @Option(
        name: [.short, .customLong("model")],
        help:
            "Model folder (encoder.pth and decoder.pth or .safetensors, optional config.json) or a model name from the search path ($GSASR_MODELS, then ~/.local/share/gsasr/models; `gsasr models` lists them). Default: the model built into gsasr."
    )
    var model: String?

    @Option(help: "Encoder checkpoint (instead of -m).")
    var encoder: String?

    @Option(help: "Decoder checkpoint (instead of -m).")
    var decoder: String?

    @Option(help: "Key of the state dict inside .pth files (default: params_ema, then params, or a bare state dict).")
    var paramKey: String?

    /// The encoder and decoder checkpoint files selected by the options.
    func checkpointURLs() throws -> (encoder: URL, decoder: URL) {
        if let enc = encoder, let dec = decoder {
            return (URL(fileURLWithPath: enc), URL(fileURLWithPath: dec))
        }
        if encoder != nil || decoder != nil { throw CLIError("--encoder and --decoder must be given together") }
        guard let m = model else {
            throw CLIError("no model given: use -m MODELDIR (for example -m Models/small) or --encoder/--decoder")
        }
        guard case .folder(let dir) = try ModelLocations.resolve(m) else {
            throw CLIError("the built-in model has no checkpoint files: give a model folder")
        }
        return (
            try GSASRModel.checkpoint(in: dir, named: "encoder"), try GSASRModel.checkpoint(in: dir, named: "decoder")
        )
    }

    /// `load()`, or the model built into gsasr when no model option is given (or `-m default`
    /// with no folder of that name in the search path). `$GSASR_DEFAULT_MODEL` (a folder)
    /// replaces the built-in model.
    func loadOrDefault() throws -> (GSASRModel, String) {
        if encoder == nil && decoder == nil {
            var builtIn = model == nil
            if let m = model, case .builtIn = try ModelLocations.resolve(m) { builtIn = true }
            if builtIn {
                if let e = ProcessInfo.processInfo.environment["GSASR_DEFAULT_MODEL"] {
                    return (try GSASRModel.load(directory: URL(fileURLWithPath: e), paramKey: paramKey), "default")
                }
                return (try GSASRModel.bundledDefault(), "default")
            }
        }
        return try load()
    }

    func load() throws -> (GSASRModel, String) {
        let (enc, dec) = try checkpointURLs()
        let folder = dec.deletingLastPathComponent()
        let model = try GSASRModel.load(
            encoder: enc, decoder: dec, config: folder.appendingPathComponent("config.json"), paramKey: paramKey)
        return (model, folder.lastPathComponent)
    }
}

/// `-s`, `--size`, `--width`, `--height`: the output size of `upscale` and `gaussians`.
struct TargetOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "Scale factor, integer or not (e.g. 2, 3.5, 11.3); default 4.")
    var scale: String?

    @Option(
        help:
            "Output size WIDTHxHEIGHT instead of -s (exact; a changed aspect renders with a scale per axis, our extension)."
    )
    var size: String?

    @Option(help: "Output width; the height keeps the aspect.")
    var width: Int?

    @Option(help: "Output height; the width keeps the aspect.")
    var height: Int?

    @Option(
        help:
            "Where the Gaussians land: 'exact' (at scale × their LR position; ours) or 'official' (on the floored canvas, as the official code: squeezed by up to a pixel at fractional scales)."
    )
    var geometry: String = GaussianGeometry.default.rawValue

    /// The parsed request (at most one of the four), resolved later per image.
    func target() throws -> Target {
        let scale = try self.scale.map(parseScale)
        let size = try self.size.map(ScaleRequest.parseSize)
        let given = [scale != nil, size != nil, width != nil, height != nil].filter { $0 }.count
        guard given <= 1 else { throw CLIError("give only one of -s/--scale, --size, --width and --height") }
        return Target(scale: scale, size: size, width: width, height: height, geometry: try parseGeometry(geometry))
    }
}

/// Parses `--geometry`; the one-line error lists the accepted values.
func parseGeometry(_ text: String) throws -> GaussianGeometry {
    do { return try GaussianGeometry(parsing: text) } catch let e as GaussianGeometryError {
        throw CLIError("--\(e.description)")
    }
}

/// The size request of the command line, resolved per image (folder mode).
struct Target {
    var scale: Double?
    var size: (width: Int, height: Int)?
    var width: Int?
    var height: Int?
    var geometry: GaussianGeometry = .default
    func request(inputWidth w: Int, inputHeight h: Int) throws -> ScaleRequest {
        try ScaleRequest.resolve(
            inputWidth: w, inputHeight: h, scale: scale, size: size, width: width, height: height, geometry: geometry)
    }
}

/// Parses a scale given as text so that every bad value gets the same one-line error.
func parseScale(_ s: String) throws -> Double {
    guard let v = DecimalNumber.double(s.trimmingCharacters(in: .whitespaces)) else {
        throw CLIError("scale '\(s)' is not a decimal number (e.g. 4 or 3.7)")
    }
    guard v > 0 else { throw CLIError("scale \(s) must be positive") }
    return v
}

func parseRasterMode(_ s: String) throws -> RasterMode {
    switch s.lowercased() {
    case "fast": return .fast
    case "exact": return .exact
    default: throw CLIError("raster mode '\(s)' is not 'fast' or 'exact'")
    }
}

func parseDmax(_ s: Float) throws -> Float {
    // Pixel coordinates span [−1, 1], so any dmax ≥ 2 already covers the whole image.
    guard s.isFinite, s > 0, s <= 2 else {
        throw CLIError("dmax \(s) must be in (0, 2] (normalised image units; the paper uses 0.1)")
    }
    return s
}

func setThreads(_ n: Int?) throws {
    guard let n else { return }
    guard n >= 1 && n <= 1024 else { throw CLIError("thread count \(n) must be between 1 and 1024") }
    setenv("GSASR_THREADS", String(n), 1)
}

struct Upscale: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Upscale an image (PNG, JPEG, TIFF, HEIC or AVIF in; PNG, JPEG, WebP, TIFF or AVIF out) by any factor ≥ 1.")

    @Option(
        name: .shortAndLong,
        help: "Input image (PNG, JPEG, TIFF, HEIC or AVIF; grey, RGB or RGBA), or a folder of them.")
    var input: String

    @Option(
        name: .shortAndLong,
        help:
            "Output file (.png, .jpg/.jpeg, .webp, .tif/.tiff, .avif; written atomically; never the input), or a folder when -i is a folder."
    )
    var output: String

    @OptionGroup var targetOptions: TargetOptions

    @OptionGroup var modelOptions: ModelOptions

    @OptionGroup var precisionOptions: PrecisionOptions

    @Option(help: "Rasterization ratio dmax, in normalised image units (paper: 0.1).")
    var dmax: Float = 0.1

    @Option(
        help:
            "Rasterizer: 'fast' (footprint bounded by each Gaussian's extent too) or 'exact' (official dmax box only).")
    var rasterMode: String = "fast"

    @Option(
        name: [.short, .long],
        help:
            "Output format: png, jpg (or jpeg), webp, tiff (or tif), avif (default: the output file's extension; png for folders)."
    )
    var format: String?

    @Option(help: "JPEG, WebP or AVIF quality, 1...100 (default: JPEG 95, WebP 90, AVIF 85; not for PNG or TIFF).")
    var quality: Int?

    @Option(
        help:
            "Bits per output sample, 8 or 16 (16: PNG or TIFF; default: 16 for 16-bit inputs (PNG, TIFF, 10/12-bit HEIC or AVIF) written as PNG or TIFF, else 8)."
    )
    var depth: Int?

    @Flag(
        inversion: .prefixedNo,
        help:
            "Carry the input's Exif (camera, dates, exposure, GPS) into the output, its orientation set to 1 (the pixels are upright); --no-exif leaves it out."
    )
    var exif = true

    @Flag(name: .shortAndLong, help: "Folder mode: include sub-folders, mirrored into the output folder.")
    var recursive = false

    @Flag(help: "Folder mode: replace output files that already exist (default: skip them).")
    var overwrite = false

    @Option(
        help:
            "Folder mode: process only share I of N of the folder's images (I/N, 0-based), or `auto` from a Kubernetes Indexed Job or Slurm job array (docs/cluster.md)."
    )
    var shard: String?

    @Option(help: "Folder mode: write a JSON summary of this run (done, failed with reasons, skipped, seconds).")
    var summary: String?

    @Option(name: .short, help: "Threads (default: all cores).")
    var jobs: Int?

    @Flag(name: .shortAndLong, help: "No progress on stderr.")
    var quiet = false

    @Option(
        help:
            "Working-memory budget in GiB: with no -t, an input whose untiled estimate exceeds it is tiled; a tiled run over it is refused."
    )
    var maxMemoryGib: Double = 4

    @Option(
        name: [.short, .customLong("tile")],
        help:
            "Tile side in LR pixels (a multiple of the window grid, rounded up; 0 = never tile). Default: tile (\(TiledUpscaler.defaultTile)) only when the untiled estimate exceeds --max-memory-gib."
    )
    var tile: Int?

    @Option(help: "Context around each tile, LR pixels (rounded up to the window grid).")
    var tileMargin: Int = TiledUpscaler.defaultMargin

    func run() throws {
        try setThreads(jobs)
        try precisionOptions.check()
        Allocator.keepFreedMemoryForReuse()  // one job per process (Allocator)
        let target = try targetOptions.target()
        let mode = try parseRasterMode(rasterMode)
        let dmax = try parseDmax(dmax)
        let inURL = URL(fileURLWithPath: input), outURL = URL(fileURLWithPath: output)
        let folder = isDirectory(inURL)
        let destination = folder ? nil : try outputDestination(output)
        let format = try resolveOutputFormat(
            self.format, for: outURL, folder: folder, stream: destination?.isStream ?? false)
        // The options that do not depend on the image, checked before anything is read.
        try ImageWriteOptions(format: format, depth: depth ?? 8, quality: quality).validate(channels: 3)
        if folder {
            try runFolder(inURL, outURL, target: target, mode: mode, dmax: dmax, format: format)
            return
        }
        if shard != nil || summary != nil {
            throw CLIError("--shard and --summary are for a folder input (-i FOLDER -o FOLDER)")
        }
        if destination != .standardOutput { try refuseOverwritingInput(inURL, outURL) }
        // Everything that can be rejected is checked before the first progress line.
        let decoded = try Self.loadInput(inURL)
        let output: OutputSettings
        do {
            output = try outputSettings(for: decoded, format: format, name: inURL.lastPathComponent)
        } catch let e as ImageIOError {
            throw CLIError("\(inURL.lastPathComponent): \(e.message)")
        }
        let (model, _) = try modelOptions.loadOrDefault()
        try precisionOptions.apply(to: model, quiet: quiet)
        try upscale(
            decoded, with: try makeUpscaler(model, mode: mode, dmax: dmax), target: target, output: output, to: outURL,
            destination: destination)
    }

    /// How one decoded image is written: the options, and whether the file stores grey.
    struct OutputSettings {
        var options: ImageWriteOptions
        var grey: Bool
        var channels: Int
    }

    /// Grey stays grey (WebP: RGB with equal channels), a 16-bit PNG gives a 16-bit PNG unless
    /// `--depth` says otherwise (JPEG and WebP are 8-bit), the ICC profile is carried over.
    /// Checked here, before any work: alpha with JPEG is an error (an `ImageIOError`; `name` is
    /// the input's name, for the note about a dropped grey profile).
    func outputSettings(for decoded: DecodedImage, format: OutputFormat, name: String) throws -> OutputSettings {
        let depth = self.depth ?? (format.supportedDepths.contains(16) && decoded.bitDepth == 16 ? 16 : 8)
        // What the decode left out (an ICC profile that is not valid, an APNG's later frames).
        for note in decoded.notes { warn("gsasr: note: \(name): \(note)\n") }
        var icc = decoded.iccProfile
        if let profile = icc, decoded.isGrey, !format.supportsGrey, profile.count >= 20,
            Array(profile[16..<20]) == Array("GRAY".utf8)
        {
            // A grey profile does not describe the RGB samples WebP stores.
            icc = nil
            warn(
                "gsasr: note: \(name): its grey ICC profile is not carried into \(format.displayName), which stores RGB\n"
            )
        }
        var exif = self.exif ? decoded.exif : nil
        if let block = exif, !ImageWriteOptions.fits(block, in: format) {
            exif = nil
            warn(
                "gsasr: note: \(name): its Exif block (\(block.tiff.count) bytes) is larger than a JPEG holds (\(ImageWriteOptions.maxJPEGExifBytes) bytes): not carried\n"
            )
        }
        let options = ImageWriteOptions(format: format, depth: depth, quality: quality, icc: icc, exif: exif)
        let channels = OutputLayout.channels(grey: decoded.isGrey, alpha: decoded.alpha != nil)
        try options.validate(channels: channels)
        return OutputSettings(options: options, grey: decoded.isGrey, channels: channels)
    }

    func isDirectory(_ url: URL) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) && isDir.boolValue
    }

    func makeUpscaler(_ model: GSASRModel, mode: RasterMode, dmax: Float) throws -> Upscaler {
        guard maxMemoryGib.isFinite, maxMemoryGib > 0, maxMemoryGib <= 1_048_576 else {
            throw CLIError("--max-memory-gib \(maxMemoryGib) must be a positive number of GiB")
        }
        var up = Upscaler(model: model, dmax: dmax, mode: mode)
        up.memoryLimitBytes = Int(maxMemoryGib * Double(1 << 30))
        return up
    }

    func note(_ s: String) { if !quiet { FileHandle.standardError.write(Data(s.utf8)) } }

    /// Messages that are results, not progress (skipped files, the folder summary): shown with -q too.
    func warn(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }

    /// 2^24 input pixels is far beyond what the memory limit lets the model process (about
    /// 23 KB per LR pixel for the paper config), so larger files are refused from their header.
    static func loadInput(_ url: URL) throws -> DecodedImage { try ImageIO.load(url, maxPixels: 1 << 24) }

    /// Plans (validates), upscales, puts back a resized alpha channel and writes the file.
    /// `destination` nil: `outURL`'s (folder mode).
    func upscale(
        _ decoded: DecodedImage, with up: Upscaler, target: Target, output: OutputSettings, to outURL: URL,
        destination: OutputDestination? = nil
    ) throws {
        let destination = try destination ?? OutputDestination.resolve(outURL.path)
        let img = decoded.rgb
        let request = try target.request(inputWidth: img.width, inputHeight: img.height)
        let plan = try up.plan(width: img.width, height: img.height, request: request, checkMemory: false)
        if let t = try tiler(up, plan: plan) {
            try upscaleTiled(
                decoded, with: t, request: request, plan: plan, output: output, to: outURL, destination: destination)
            return
        }
        _ = try up.plan(width: img.width, height: img.height, request: request)
        // Opened before the work, so that an unwritable destination fails early; if anything
        // below throws, the writer is released and its temporary file removed.
        let writer = try ImageRowWriter(
            destination: destination, width: plan.outputWidth, height: plan.outputHeight, channels: output.channels,
            options: output.options)
        var lastStage: UpscaleStage? = nil
        let progress = ProgressReporter(quiet: quiet)
        let result = try up.upscale(rgb: img.pixels, width: img.width, height: img.height, request: request) {
            stage, frac in
            if stage != lastStage {
                lastStage = stage
                progress.line("\(stage.rawValue)...")
            }
            if stage == .render { progress.percent("rendering", frac) }
        }
        var alpha: [Float]? = nil
        if let a = decoded.alpha {
            alpha = Resize.imresize(
                plane: a, width: img.width, height: img.height, scaleX: request.scaleX, scaleY: request.scaleY,
                outWidth: result.width, outHeight: result.height)
        }
        let rows = OutputLayout.outputRows(
            rgb: result.pixels, alpha: alpha, rowCount: result.height, width: result.width, grey: output.grey)
        try rows.withUnsafeBufferPointer { try writer.write(rows: $0, rowCount: result.height) }
        try writer.finish()
        let t = result.timings
        note(
            String(
                format: "wrote %@ (%dx%d) in %.2f s (encoder %.2f, decoder %.2f, rasterizer %.2f)\n",
                destination.displayName, result.width, result.height, t.encoder + t.decoder + t.rasterizer, t.encoder,
                t.decoder, t.rasterizer))
    }

    /// The tiled pipeline to use, or nil for the untiled one: `-t 0` never tiles, `-t N` always
    /// does, and with no `-t` the input is tiled when the untiled estimate exceeds the budget.
    func tiler(_ up: Upscaler, plan: Upscaler.Plan) throws -> TiledUpscaler? {
        if let tile, tile == 0 { return nil }
        if let tile { return try TiledUpscaler(upscaler: up, tile: tile, margin: tileMargin) }
        if plan.estimatedBytes <= up.memoryLimitBytes { return nil }
        // The largest tile that fits the budget; else the default, which upscaleTiled refuses
        // with the estimate in the message.
        return try TiledUpscaler.fitting(up, plan: plan, margin: tileMargin)
            ?? TiledUpscaler(upscaler: up, tile: TiledUpscaler.defaultTile, margin: tileMargin)
    }

    /// Tiled run: output rows go to the writer band by band as the tiles complete, so the whole
    /// float image never exists. The alpha channel (if any) is resized for the whole image first
    /// (one float plane of the output size: `imresize` is not banded).
    func upscaleTiled(
        _ decoded: DecodedImage, with t: TiledUpscaler, request: ScaleRequest, plan: Upscaler.Plan,
        output: OutputSettings, to outURL: URL, destination: OutputDestination
    ) throws {
        let img = decoded.rgb
        let est = t.estimatedBytes(plan: plan)
        guard est <= t.upscaler.memoryLimitBytes else {
            throw CLIError(
                "input \(img.width)x\(img.height) with tiles of \(t.tile) needs about \(est >> 20) MiB of working memory, over the limit of \(t.upscaler.memoryLimitBytes >> 20) MiB; use a smaller --tile or a larger --max-memory-gib"
            )
        }
        let writer = try ImageRowWriter(
            destination: destination, width: plan.outputWidth, height: plan.outputHeight, channels: output.channels,
            options: output.options)
        var alpha: [Float]? = nil
        if let a = decoded.alpha {
            alpha = Resize.imresize(
                plane: a, width: img.width, height: img.height, scaleX: request.scaleX, scaleY: request.scaleY,
                outWidth: plan.outputWidth, outHeight: plan.outputHeight)
        }
        let start = Date()
        let progress = ProgressReporter(quiet: quiet)
        progress.line("tiling: tiles of \(t.tile) LR pixels with a margin of \(t.margin)")
        let stats = try t.upscale(
            rgb: img.pixels, width: img.width, height: img.height, request: request,
            progress: { done, total in
                progress.percent("tiles", Double(done) / Double(max(1, total)), detail: "tile \(done)/\(total)")
            }
        ) { rows, px in
            let w = plan.outputWidth
            let out: [Float]
            if let alpha {
                out = alpha.withUnsafeBufferPointer { a in
                    OutputLayout.outputRows(
                        rgb: px, alpha: UnsafeBufferPointer(rebasing: a[(rows.lowerBound * w)..<(rows.upperBound * w)]),
                        rowCount: rows.count, width: w, grey: output.grey)
                }
            } else {
                out = OutputLayout.outputRows(rgb: px, alpha: nil, rowCount: rows.count, width: w, grey: output.grey)
            }
            try out.withUnsafeBufferPointer { try writer.write(rows: $0, rowCount: rows.count) }
        }
        if stats.lateGaussians > 0 {
            note(
                "warning: \(stats.lateGaussians) Gaussians reached rows already written (their contribution there is missing); use a larger --tile\n"
            )
        }
        try writer.finish()
        let tm = stats.timings
        note(
            String(
                format: "wrote %@ (%dx%d) in %.2f s, %d tiles (encoder %.2f, decoder %.2f, rasterizer %.2f)\n",
                destination.displayName, plan.outputWidth, plan.outputHeight, Date().timeIntervalSince(start),
                stats.tiles,
                tm.encoder, tm.decoder, tm.rasterizer))
    }

    /// Files that are never images and are skipped without trying: macOS and Windows folder metadata.
    static let systemFiles: Set<String> = [".ds_store", "thumbs.db", "desktop.ini"]
    static let inputExtensions: Set<String> = ["png", "jpg", "jpeg", "tif", "tiff", "heic", "heif", "avif"]
    static let inputExtensionList = ".png, .jpg, .jpeg, .tif, .tiff, .heic, .heif or .avif"

    /// One image of folder mode: its path relative to the input folder, and where it goes.
    struct FolderJob {
        var relative: String
        var source: URL
        var destination: URL
    }

    /// Folder mode (as realesrgan-ncnn-vulkan): every image (``inputExtensions``) of the input folder (with -r,
    /// of its sub-folders too, mirrored), in name order, to `<output folder>/<relative path>.<ext
    /// of the format>`. Hidden files and folders (names starting with '.'), system files
    /// (`.DS_Store`, `Thumbs.db`, `desktop.ini`), other files, symbolic links to folders and, unless
    /// --overwrite, images whose output exists are skipped with a note. The model loads once; a file
    /// that fails is reported on its own line and the others go on. The last line on stderr is
    /// `N succeeded, N failed, N skipped`; the exit status is non-zero if any failed.
    func runFolder(_ inDir: URL, _ outDir: URL, target: Target, mode: RasterMode, dmax: Float, format: OutputFormat)
        throws
    {
        let fm = FileManager.default
        let inReal = inDir.standardizedFileURL.resolvingSymlinksInPath()
        let outReal = outDir.standardizedFileURL.resolvingSymlinksInPath()
        if inReal == outReal {
            throw CLIError("output folder '\(outDir.path)' is the input folder; choose another")
        }
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: outDir.path, isDirectory: &isDir), !isDir.boolValue {
            throw CLIError("input '\(inDir.path)' is a folder, so the output '\(outDir.path)' must be a folder too")
        }
        let share = try shard.map { try Shard.parse($0) }
        let started = Date()
        var report = ShardSummary(shard: share?.description ?? "all")
        var jobs: [FolderJob] = []
        var skipped = 0, failed = 0, images = 0
        var claimed: [String: String] = [:]  // output path -> the input that produces it
        func skip(_ relative: String, _ why: String) {
            skipped += 1
            report.skipped.append(relative)
            warn("gsasr: skipping \(relative): \(why)\n")
        }
        func collect(_ dir: URL, _ prefix: String) throws {
            let names: [String]
            do {
                names = try fm.contentsOfDirectory(atPath: dir.path).sorted()
            } catch {
                throw CLIError("cannot list folder '\(dir.path)'")
            }
            for name in names {
                let url = dir.appendingPathComponent(name)
                let folder = isDirectory(url)
                let relative = prefix + name
                if Self.systemFiles.contains(name.lowercased()) {
                    skip(relative, "system file")
                    continue
                }
                if name.hasPrefix(".") {
                    skip(relative + (folder ? "/" : ""), "hidden")
                    continue
                }
                if folder {
                    let link = (try? url.resourceValues(forKeys: [.isSymbolicLinkKey]))?.isSymbolicLink ?? false
                    if link {
                        skip(relative + "/", "symbolic link to a folder, not followed")
                    } else if !recursive {
                        skip(relative + "/", "folder (use -r to include sub-folders)")
                    } else if url.standardizedFileURL.resolvingSymlinksInPath() == outReal {
                        skip(relative + "/", "it is the output folder")
                    } else {
                        try collect(url, relative + "/")
                    }
                    continue
                }
                guard Self.inputExtensions.contains((name as NSString).pathExtension.lowercased()) else {
                    skip(relative, "not a \(Self.inputExtensionList) file")
                    continue
                }
                images += 1
                // The image's number in the folder's order decides its shard (before any check
                // that depends on the disk's state, so every shard numbers alike).
                let mine = share?.owns(images - 1) ?? true
                let outRelative = (relative as NSString).deletingPathExtension + "." + format.fileExtension
                let destination = outDir.appendingPathComponent(outRelative)
                if let first = claimed[destination.path] {
                    if mine {
                        failed += 1
                        let reason = "its output \(outRelative) is also the output of \(first)"
                        report.failed.append(.init(file: relative, reason: reason))
                        warn("gsasr: error: \(relative): \(reason)\n")
                    }
                    continue
                }
                claimed[destination.path] = relative
                guard mine else {
                    report.otherShards += 1
                    continue
                }
                if !overwrite && fm.fileExists(atPath: destination.path) {
                    skip(relative, "\(outRelative) exists (use --overwrite to replace it)")
                    continue
                }
                jobs.append(FolderJob(relative: relative, source: url, destination: destination))
            }
        }
        try collect(inDir, "")
        guard images > 0 else {
            throw CLIError(
                "folder '\(inDir.path)' holds no \(Self.inputExtensionList) files"
                    + (recursive ? "" : " (-r: sub-folders too)"))
        }
        var succeeded = 0
        if !jobs.isEmpty {
            let (model, _) = try modelOptions.loadOrDefault()
            try precisionOptions.apply(to: model, quiet: quiet)
            let up = try makeUpscaler(model, mode: mode, dmax: dmax)
            for job in jobs {
                do {
                    try refuseOverwritingInput(job.source, job.destination)
                    let decoded = try Self.loadInput(job.source)
                    let output = try outputSettings(for: decoded, format: format, name: job.relative)
                    try fm.createDirectory(
                        at: job.destination.deletingLastPathComponent(), withIntermediateDirectories: true)
                    try upscale(decoded, with: up, target: target, output: output, to: job.destination)
                    succeeded += 1
                    report.done.append(job.relative)
                } catch {
                    failed += 1
                    let message = "\(error)".split(separator: "\n").first.map(String.init) ?? "failed"
                    report.failed.append(.init(file: job.relative, reason: message))
                    warn("gsasr: error: \(job.relative): \(message)\n")
                }
            }
        }
        let others = share.map { ", \(report.otherShards) for other shards (this is shard \($0))" } ?? ""
        warn("\(succeeded) succeeded, \(failed) failed, \(skipped) skipped\(others)\n")
        if let summary {
            report.seconds = Date().timeIntervalSince(started)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            try TrainingFiles.atomicWrite(encoder.encode(report), to: URL(fileURLWithPath: summary))
        }
        if failed > 0 { throw ExitCode(1) }
    }
}

/// The output must not be the input file (same path, or same file through a link).
func refuseOverwritingInput(_ input: URL, _ output: URL) throws {
    let a = input.resolvingSymlinksInPath().standardizedFileURL.path
    let b = output.resolvingSymlinksInPath().standardizedFileURL.path
    if a == b { throw CLIError("output '\(output.path)' is the input file; refusing to overwrite it") }
    let fm = FileManager.default
    if let ia = try? fm.attributesOfItem(atPath: a), let ib = try? fm.attributesOfItem(atPath: b),
        let na = ia[.systemFileNumber] as? UInt64, let nb = ib[.systemFileNumber] as? UInt64,
        let da = ia[.systemNumber] as? UInt64, let db = ib[.systemNumber] as? UInt64, na == nb, da == db
    {
        throw CLIError("output '\(output.path)' is the same file as the input; refusing to overwrite it")
    }
}
