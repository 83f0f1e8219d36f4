import ArgumentParser
import Foundation
import GSASR
import GSASRTraining

/// `gsasr train CONFIG.yml`: end-to-end training (official yml key names).
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train GSASR end to end from an official-style YAML config (from scratch, fine-tune, or --resume).")

    @Argument(help: "Training config (YAML, official key names; see Configs/).")
    var config: String

    @Option(
        name: .customLong("run"),
        help: "Run folder for the checkpoint, log.jsonl, curve.svg and the exported model (default: runs/NAME).")
    var runFolder: String?

    @Option(name: .customLong("set"), help: "Override a config value, e.g. --set train.total_iter=2000 (repeatable).")
    var overrides: [String] = []

    @Flag(help: "Continue from RUN/checkpoint.safetensors (exactly: weights, EMA, Adam, schedule, data order).")
    var resume = false

    @Option(help: "Stop after this many iterations in this process (the run stays resumable).")
    var iterations: Int?

    @Option(help: "Also checkpoint every this many seconds (0: only at save_checkpoint_freq).")
    var checkpointSeconds: Double = 600

    @Option(
        help: "Worker threads (default: all cores; under mpirun, the cores divided among the ranks on this machine).")
    var threads: Int?

    @Option(
        help:
            "Global batch: split evenly over the MPI ranks (each rank trains global/ranks samples an iteration; default: datasets.train.batch_size_per_gpu per rank, as BasicSR)."
    )
    var globalBatch: Int?

    func run() throws {
        setvbuf(stdout, nil, _IOLBF, 0)  // progress lines reach a log file as they are printed
        // Under mpirun: this process's rank (Open MPI loaded now); alone otherwise.
        let world = try DataParallel.fromEnvironment()
        if threads == nil && world.localSize > 1 {
            let cores = ProcessInfo.processInfo.activeProcessorCount
            setenv("GSASR_THREADS", String(max(1, cores / world.localSize)), 1)
        }
        try setThreads(threads)
        func say(_ line: String) { if world.isLeader { print(line) } }
        // A process-wide allocator setting, so the process (this command) makes it, not the library.
        Allocator.keepFreedMemoryForReuse()
        let text = try Self.readConfig(config)
        var settings = try TrainingSettings.load(yaml: text, origin: config)
        try settings.apply(overrides: overrides)
        if let g = globalBatch {
            guard g >= 1, g % world.size == 0 else {
                throw CLIError(
                    "--global-batch \(g) is not a positive multiple of the \(world.size) MPI ranks: give a multiple of \(world.size) (each rank trains global/\(world.size) samples an iteration)"
                )
            }
            settings.batchSize = g / world.size
            try settings.validate(origin: "--global-batch")
        }
        let folder = URL(fileURLWithPath: runFolder ?? "runs/\(settings.name)")
        let ckpt = TrainingRun.checkpointURL(in: folder)
        let trainer: Trainer
        if resume {
            guard FileManager.default.fileExists(atPath: ckpt.path) else {
                throw CLIError("--resume: '\(ckpt.path)' does not exist")
            }
            trainer = try Trainer.resume(from: ckpt)
            guard trainer.checkpointWorldSize == world.size else {
                throw CLIError(
                    "--resume: the checkpoint was written by a run of \(trainer.checkpointWorldSize) rank(s) (global batch \(trainer.settings.batchSize * trainer.checkpointWorldSize)); resume it with as many (mpirun -np \(trainer.checkpointWorldSize)), since the global batch and the data order depend on it"
                )
            }
            // Only the run length, the reporting frequencies and the validation folder may change on resume.
            func fixed(_ s: TrainingSettings) -> TrainingSettings {
                var f = s
                (f.totalIter, f.valFreq, f.printFreq, f.saveCheckpointFreq) = (0, 0, 0, 0)
                (f.valFolder, f.pretrainEncoder, f.pretrainDecoder) = (nil, nil, nil)
                return f
            }
            let (a, b) = (fixed(trainer.settings), fixed(settings))
            guard a == b else {
                throw CLIError(
                    "--resume: the config differs from the checkpoint's in more than total_iter, val/print/save frequencies or the validation folder"
                )
            }
            say("resuming '\(settings.name)' at iteration \(trainer.iteration)")
        } else {
            guard !FileManager.default.fileExists(atPath: ckpt.path) else {
                throw CLIError(
                    "run folder '\(folder.path)' already holds a checkpoint: pass --resume, or choose another --run")
            }
            trainer = Trainer(settings: settings, model: try Trainer.initialModel(settings))
        }
        trainer.world = world
        let runner = try TrainingRun(folder: folder, trainer: trainer, settings: settings)
        runner.checkpointSeconds = checkpointSeconds
        if !world.isLeader { runner.output = { _ in } }
        if resume && world.isLeader { try runner.truncateLog(after: trainer.iteration) }
        let t0 = Date()
        say("loading training photos ...")
        let photos = try TrainingPhotos.load(
            paths: settings.photos, downscale: settings.downscale,
            minSide: Int((settings.scaleMax * Double(settings.lrSize)).rounded(.toNearestOrEven)))
        say(
            String(
                format: "%d photos, %.1f megapixels after downscale %d (%.0f s)", photos.photos.count,
                photos.megapixels,
                settings.downscale, Date().timeIntervalSince(t0)))
        let dataset = ContinuousBicubicDataset(
            photos: photos, lrSize: settings.lrSize, scaleMin: settings.scaleMin, scaleMax: settings.scaleMax,
            useFlips: settings.useHflip, useRotation: settings.useRot, flatThreshold: settings.flatThreshold,
            seed: settings.manualSeed)
        let n = trainer.parameters.reduce(0) { $0 + $1.param.value.count }
        say(
            "model: \(n) parameters; batch \(settings.batchSize)"
                + (world.size > 1 ? " per rank x \(world.size) ranks = \(settings.batchSize * world.size)" : "")
                + ", lr_size \(settings.lrSize), to iteration \(settings.totalIter)")
        try runner.run(dataset: dataset, stopAfter: iterations)
        say("checkpoint: \(runner.checkpointURL.path)\nmodel: \(runner.modelURL.path)\ncurve: \(runner.curveURL.path)")
        world.finish()
    }
}

extension Train {
    /// Largest YAML config accepted (real ones are 2-5 KB).
    static let maxConfigBytes = 1 << 20

    /// Reads a YAML config: a regular file of at most ``maxConfigBytes``, UTF-8.
    static func readConfig(_ path: String) throws -> String {
        let data = try SmallFile.read(path, maxBytes: maxConfigBytes, label: "config '\(path)'")
        guard let text = String(data: data, encoding: .utf8) else {
            throw CLIError("config '\(path)' is not UTF-8 text")
        }
        return text
    }
}

/// `gsasr eval --hr DIR --scales 2,3,4`: PSNR-Y / SSIM-Y of a model and of bicubic.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Score a model and MATLAB-style bicubic (PSNR-Y, SSIM-Y) on a folder of HR images, as the official benchmarks."
    )

    @Option(help: "Folder of HR images (PNG or JPEG).")
    var hr: String

    @Option(help: "Comma-separated scales, e.g. 2,3,4 or 1.5,3.7.")
    var scales: String = "2,3,4"

    @OptionGroup var modelOptions: ModelOptions

    @OptionGroup var precisionOptions: PrecisionOptions

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    @Option(help: "Centre-crop each HR image to at most this side (0: whole image).")
    var crop: Int = 0

    @Option(help: "dmax of the render (normalised units; the official inference uses 0.1).")
    var dmax: Float = 0.1

    @Option(
        help:
            "Geometries to score, comma-separated: exact (ours), official, or exact,official (one network pass, two renders)."
    )
    var geometry: String = GaussianGeometry.default.rawValue

    @Flag(
        help:
            "Also measure the best sub-pixel shift against the HR image of the top-left and bottom-right quarters (model and bicubic)."
    )
    var shifts = false

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int?

    func run() throws {
        try setThreads(threads)
        try precisionOptions.check()
        Allocator.keepFreedMemoryForReuse()  // one job per process (Allocator)
        let list = try scales.split(separator: ",").map { try parseScale(String($0)) }
        guard !list.isEmpty else { throw CLIError("no scales given") }
        for s in list where s < 1 { throw CLIError("scale \(s) is below 1") }
        guard crop >= 0 else { throw CLIError("--crop must be 0 or positive") }
        let geometries = try geometry.split(separator: ",", omittingEmptySubsequences: false).map {
            try parseGeometry(String($0))
        }
        guard Set(geometries).count == geometries.count else { throw CLIError("--geometry lists a geometry twice") }
        let (model, name) = try modelOptions.loadOrDefault()
        let precision = try precisionOptions.apply(to: model)
        let images = try Evaluation.loadFolder(hr).map { Evaluation.centerCrop($0.image, side: crop) }
        let results = try Evaluation.evaluate(
            images: images, scales: list, upscaler: Upscaler(model: model, dmax: try parseDmax(dmax)),
            geometries: geometries, shifts: shifts)
        print("model \(name) on \(images.count) images of \(hr), precision \(precision)")
        print(
            "scale   geometry  PSNR-Y model  bicubic   gain   SSIM-Y model  bicubic"
                + (shifts ? "   shift TL / BR (px)" : ""))
        for r in results {
            for g in r.geometries {
                let name = g.geometry.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
                var line = String(
                    format: "x%-5g  %@  %12.3f  %7.3f  %+6.3f  %12.4f  %7.4f", r.scale, name, g.score.psnrY,
                    r.bicubic.psnrY, g.score.psnrY - r.bicubic.psnrY, g.score.ssimY, r.bicubic.ssimY)
                if let q = g.shifts { line += String(format: "   %.3f / %.3f", q.topLeft, q.bottomRight) }
                print(line)
            }
            if let q = r.bicubicShifts {
                print(
                    String(format: "x%-5g  bicubic shift TL / BR (px): %.3f / %.3f", r.scale, q.topLeft, q.bottomRight))
            }
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            struct Report: Encodable {
                var model: String
                var hr: String
                var images: Int
                var precision: String
                var scales: [Evaluation.ScaleResult]
            }
            let data = try encoder.encode(
                Report(model: name, hr: hr, images: images.count, precision: precision.rawValue, scales: results))
            try TrainingFiles.atomicWrite(data, to: URL(fileURLWithPath: json))
        }
    }
}

/// `gsasr compare --hr IMG -s 4 -o OUT.png`: bicubic | model | HR side by side.
struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Make a before/after picture: the HR image is downscaled as `gsasr eval` does, then bicubic | model | HR.")

    @Option(help: "HR image (PNG, JPEG, TIFF, HEIC or AVIF).")
    var hr: String

    @Option(name: .shortAndLong, help: "Scale.")
    var scale: String = "4"

    @Option(name: .shortAndLong, help: "Output PNG (side by side).")
    var output: String

    @Option(help: "Centre-crop the HR image to at most this side first (0: whole image).")
    var crop: Int = 0

    @Option(help: "dmax of the render (normalised units; the official inference uses 0.1).")
    var dmax: Float = 0.1

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Where the Gaussians land: exact (ours) or official.")
    var geometry: String = GaussianGeometry.default.rawValue

    func run() throws {
        let s = try parseScale(scale)
        let geometry = try parseGeometry(geometry)
        guard s >= 1 else { throw CLIError("scale \(s) is below 1") }
        let inURL = URL(fileURLWithPath: hr), outURL = URL(fileURLWithPath: output)
        guard inURL.standardizedFileURL.path != outURL.standardizedFileURL.path else {
            throw CLIError("output '\(output)' would overwrite the input")
        }
        let img = Evaluation.centerCrop(try ImageIO.load(inURL).rgb, side: crop)
        let (model, _) = try modelOptions.loadOrDefault()
        let p = try Evaluation.prepare(hr: img, scale: s)
        let r = try Upscaler(model: model, dmax: try parseDmax(dmax)).upscale(
            rgb: p.lr.pixels, width: p.lr.width, height: p.lr.height,
            request: ScaleRequest(scale: s, geometry: geometry))
        let w = p.gtWidth, h = p.gtHeight, gap = 4
        var out = [Float](repeating: 1, count: (3 * w + 2 * gap) * h * 3)
        let panels: [[Float]] = [p.bicubic.map { Float($0) / 255 }, r.pixels, p.gt.map { Float($0) / 255 }]
        let W = 3 * w + 2 * gap
        for (k, panel) in panels.enumerated() {
            for y in 0..<h {
                for x in 0..<w {
                    for c in 0..<3 { out[(y * W + k * (w + gap) + x) * 3 + c] = panel[(y * w + x) * 3 + c] }
                }
            }
        }
        try ImageIO.writePNG(Image(width: W, height: h, pixels: out), to: outURL)
        let b = Evaluation.cropBorder(scale: s)
        let bic = Metrics.psnrY(p.bicubic, p.gt, width: w, height: h, cropBorder: b)
        let ours = Metrics.psnrY(r.pixels.map(ImageIO.quantize), p.gt, width: w, height: h, cropBorder: b)
        print(String(format: "x%g: bicubic %.2f dB | model %.2f dB (PSNR-Y) -> %@", s, bic, ours, output))
    }
}
