import ArgumentParser
import Foundation
import GSASR
import GSASRBench
import GSASRTraining

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Benchmarks: per-stage pipeline timings (default), the rasterizer (`bench raster`), a training step (`bench train`), tiling (`bench tile`), re-rendering an export (`bench render`), float32 vs bf16 GEMMs (`bench gemm`), a model in float32 vs bf16 (`bench precision`), the 3x3 convolution's forms (`bench conv`).",
        subcommands: [
            PipelineBenchCommand.self, RasterBenchCommand.self, TrainBenchCommand.self, TileBenchCommand.self,
            RenderBenchCommand.self, GEMMBenchCommand.self, PrecisionBenchCommand.self, ConvBenchCommand.self,
        ],
        defaultSubcommand: PipelineBenchCommand.self)
}

struct PipelineBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "Time encoder, decoder and rasterizer; peak RSS; decoder GFLOP/s vs sgemm in the same run.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .shortAndLong, help: "LR image; it is mirrored/cropped to --lr-size when that is given.")
    var input: String = "Examples/astronaut_48x48.png"

    @Option(help: "Square LR size in pixels (default: the image's own size).")
    var lrSize: Int?

    @Option(name: .shortAndLong, help: "Scale factor.")
    var scale: String = "4"

    @Option(help: "Rasterizer mode: fast or exact.")
    var rasterMode: String = "fast"

    @Option(help: "dmax.")
    var dmax: Float = 0.1

    @Option(help: "Timed runs after one warm-up (median reported).")
    var repeats: Int = 3

    @Option(name: .short, help: "Threads.")
    var jobs: Int?

    @Option(help: "Also write the figures as JSON to this file.")
    var json: String?

    @OptionGroup var precisionOptions: PrecisionOptions

    @Option(
        help:
            "Also time this precision in the same rounds (each round runs it first) and print the ratios, e.g. --precision bf16 --against f32."
    )
    var against: Precision?

    func run() throws {
        try setThreads(jobs)
        let scale = try parseScale(scale)
        let mode = try parseRasterMode(rasterMode)
        guard repeats >= 1 && repeats <= 100 else { throw CLIError("--repeats must be in 1...100") }
        let precision = try precisionOptions.resolvedForBench()
        Allocator.keepFreedMemoryForReuse()  // as `gsasr upscale` does
        let baseline = try against.map { try $0.resolve(qualityGateHolds: false).precision }
        let (model, name) = try modelOptions.load()
        let img = try ImageIO.load(URL(fileURLWithPath: input)).rgb
        var pixels = img.pixels, w = img.width, h = img.height
        if let n = lrSize {
            guard n >= 12 && n <= 4096 else { throw CLIError("--lr-size must be in 12...4096") }
            pixels = mirrorTile(img, size: n)
            w = n
            h = n
        }
        var report = try PipelineBench.run(
            model: model, modelName: name, image: pixels, width: w, height: h, scale: scale, mode: mode,
            dmax: try parseDmax(dmax), repeats: repeats, precision: precision, baseline: baseline)
        report.blas = BLASBench.run(executable: Bundle.main.executablePath)
        print(PipelineBench.format(report))
        try writeBenchJSON(report, to: json)
    }

    /// Mirror-tiles an image to size × size (deterministic synthetic LR of any size).
    func mirrorTile(_ img: Image, size n: Int) -> [Float] {
        func m(_ i: Int, _ len: Int) -> Int {
            let p = i % (2 * len)
            return p < len ? p : 2 * len - 1 - p
        }
        var out = [Float](repeating: 0, count: n * n * 3)
        for y in 0..<n {
            for x in 0..<n {
                let s = (m(y, img.height) * img.width + m(x, img.width)) * 3
                for c in 0..<3 { out[(y * n + x) * 3 + c] = img.pixels[s + c] }
            }
        }
        return out
    }
}

struct RasterBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raster",
        abstract: "Rasterizer forward/backward (fast and exact) against an in-run CPU port of the official kernel.")

    @Option(help: "Comma-separated cases: 1 = 192² (48x48 x4), 2 = 384², 3 = 720² (paper DIV2K size), 4 = 576² (x12).")
    var cases: String = "1,2,3,4"

    @Option(help: "Raw decoder output (N×9 .npy) of a 48x48 LR, tiled to each case's size.")
    var gsParams: String = "Tests/GSASRTests/Fixtures/small/astronaut_48x48_x4_gs_params_f32.npy"

    @Option(help: "Timed repetitions (best is reported).")
    var repeats: Int = 3

    @Option(name: .short, help: "Threads (default: all cores).")
    var jobs: Int?

    @Option(help: "Write one JSON object per case to this file.")
    var json: String?

    func run() throws {
        let ids = try cases.split(separator: ",").map { s -> Int in
            guard let v = Int(s.trimmingCharacters(in: .whitespaces)), (1...4).contains(v) else {
                throw CLIError("case '\(s)' is not one of 1, 2, 3, 4")
            }
            return v
        }
        guard repeats >= 1 && repeats <= 100 else { throw CLIError("--repeats must be in 1...100") }
        try setThreads(jobs)
        _ = try RasterBench.run(
            cases: ids, gsParamsPath: gsParams, threads: Parallel.threadCount, repeats: repeats, jsonPath: json)
    }
}

struct TrainBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract:
            "Time a training step (official setup: batch 4, LR 48, scale 4); peak RSS; forward GFLOP/s vs sgemm in the same run."
    )

    @Option(help: "small, paper, or a training YAML.")
    var config: String = "small"

    @Option(help: "Batch size.")
    var batch: Int = 4

    @Option(help: "LR patch side (a multiple of the window size).")
    var lrSize: Int = 48

    @Option(help: "Timed steps after one warm-up (median reported).")
    var steps: Int = 3

    @Option(name: .short, help: "Threads.")
    var jobs: Int?

    @Option(help: "Also write the figures as JSON to this file.")
    var json: String?

    func run() throws {
        try setThreads(jobs)
        Allocator.keepFreedMemoryForReuse()  // as `gsasr train` does
        guard (1...64).contains(batch), (1...20).contains(steps) else {
            throw CLIError("--batch must be 1...64 and --steps 1...20")
        }
        var settings: TrainingSettings
        if let s = TrainBench.settings(named: config) {
            settings = s
        } else {
            guard let text = try? String(contentsOfFile: config, encoding: .utf8) else {
                throw CLIError("--config '\(config)' is neither small, paper nor a readable YAML file")
            }
            settings = try TrainingSettings.load(yaml: text, origin: config)
        }
        guard lrSize > 0, lrSize % settings.decoder.windowSize == 0 else {
            throw CLIError(
                "--lr-size \(lrSize) must be a positive multiple of the window size \(settings.decoder.windowSize)")
        }
        let name = TrainBench.settings(named: config) == nil ? (config as NSString).lastPathComponent : config
        var r = try TrainBench.run(settings: settings, name: name, batch: batch, lrSize: lrSize, steps: steps)
        r.blas = BLASBench.run(executable: Bundle.main.executablePath)
        print(TrainBench.format(r))
        try writeBenchJSON(r, to: json)
    }
}

struct TileBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tile",
        abstract:
            "Untiled vs our tiling (Gaussians stitched) vs the official tiling (pixels stitched): time, peak RSS, PSNR vs untiled, seam errors."
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .shortAndLong, help: "LR image (PNG, JPEG, TIFF, HEIC or AVIF).")
    var input: String = "Examples/seeding_160x120.png"

    @Option(name: .shortAndLong, help: "Scale factor.")
    var scale: String = "4"

    @Option(help: "Our core tile side, LR pixels.")
    var tile: Int = TiledUpscaler.defaultTile

    @Option(help: "Our context margin, LR pixels.")
    var margin: Int = TiledUpscaler.defaultMargin

    @Option(help: "Official tiling: tile side (its test configs: 480).")
    var officialTile: Int = 480

    @Option(help: "Official tiling: overlap (its test configs: 8).")
    var officialOverlap: Int = 8

    @Option(help: "Official tiling: crop at interior seams (its test configs: 4).")
    var officialCrop: Int = 4

    @Option(help: "Use the top-left WIDTHxHEIGHT of the image (e.g. a size that fits untiled).")
    var crop: String?

    @Option(help: "Comma-separated methods to run: untiled, ours, official.")
    var methods: String = "untiled,ours,official"

    @Option(help: "Output rows/columns on each side of a seam counted as 'on the seam'.")
    var seamBand: Int = 4

    @Option(name: .short, help: "Threads.")
    var jobs: Int?

    @Option(help: "Also write the figures as JSON to this file.")
    var json: String?

    @Option(help: .hidden) var child: String?
    @Option(help: .hidden) var childRaw: String?
    @Option(help: .hidden) var childJson: String?

    func run() throws {
        try setThreads(jobs)
        let scale = try parseScale(scale)
        let settings = TileBench.Settings(
            scale: scale, tile: tile, margin: margin, officialTile: officialTile, officialOverlap: officialOverlap,
            officialCrop: officialCrop)
        let (model, name) = try modelOptions.loadOrDefault()
        var img = try ImageIO.load(URL(fileURLWithPath: input)).rgb
        if let crop {
            let (cw, ch) = try ScaleRequest.parseSize(crop)
            guard cw >= 12, ch >= 12, cw <= img.width, ch <= img.height else {
                throw CLIError("--crop \(crop) must be at least 12x12 and inside the \(img.width)x\(img.height) image")
            }
            var px = [Float](repeating: 0, count: cw * ch * 3)
            for y in 0..<ch {
                for x in 0..<(cw * 3) { px[y * cw * 3 + x] = img.pixels[y * img.width * 3 + x] }
            }
            img = Image(width: cw, height: ch, pixels: px)
        }
        if let child, let childRaw, let childJson {
            guard let m = TileBench.Method(rawValue: child) else { throw CLIError("unknown method '\(child)'") }
            let r = try TileBench.runOne(
                m, model: model, image: img.pixels, width: img.width, height: img.height, settings: settings,
                raw: URL(fileURLWithPath: childRaw))
            try JSONEncoder().encode(r).write(to: URL(fileURLWithPath: childJson))
            return
        }
        let list = try methods.split(separator: ",").map { s -> TileBench.Method in
            guard let m = TileBench.Method(rawValue: s.trimmingCharacters(in: .whitespaces)) else {
                throw CLIError("method '\(s)' is not untiled, ours or official")
            }
            return m
        }
        guard let exe = Bundle.main.executablePath else { throw CLIError("cannot find the gsasr executable") }
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("gsasr-tile-bench-\(getpid())")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        var runs: [TileBench.Run] = []
        var untiled: [Float]? = nil
        // The untiled render first: every other method is compared against it.
        let ordered = list.sorted { ($0 == .untiled ? 0 : 1) < ($1 == .untiled ? 0 : 1) }
        for m in ordered {
            let raw = tmp.appendingPathComponent("\(m.rawValue).f32"),
                js = tmp.appendingPathComponent("\(m.rawValue).json")
            var args = Array(CommandLine.arguments.dropFirst())
            args += ["--child", m.rawValue, "--child-raw", raw.path, "--child-json", js.path]
            let p = Process()
            p.executableURL = URL(fileURLWithPath: exe)
            p.arguments = args
            try p.run()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw CLIError("bench tile: the \(m.rawValue) run failed") }
            var r = try JSONDecoder().decode(TileBench.Run.self, from: Data(contentsOf: js))
            let pixels = try Data(contentsOf: raw).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            if m == .untiled {
                untiled = pixels
            } else if let u = untiled {
                TileBench.compare(&r, pixels: pixels, untiled: u, band: seamBand)
            }
            runs.append(r)
        }
        let report = TileBench.Report(
            model: name, lrWidth: img.width, lrHeight: img.height, settings: settings, threads: Parallel.threadCount,
            runs: runs)
        print(TileBench.format(report))
        try writeBenchJSON(report, to: json)
    }
}

struct RenderBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract:
            "Re-render a Gaussian export: a region at a high zoom vs the whole image at zoom 1 (in-run baseline); time and peak RSS."
    )

    @Option(help: "A Gaussian export (gsasr gaussians); default: export -i at -s with the model first (not timed).")
    var export: String?

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .shortAndLong, help: "LR image to export when no --export is given.")
    var input: String = "Examples/seeding_160x120.png"

    @Option(name: .shortAndLong, help: "Scale of that export (x4 of the 160x120 photo: 322,560 Gaussians).")
    var scale: String = "4"

    @Option(help: "Output side of the square region, pixels.")
    var regionSize: Int = 512

    @Option(help: "Zoom of the region.")
    var zoom: Double = 8

    @Option(help: "Timed runs per case (median).")
    var repeats: Int = 5

    @Option(name: .short, help: "Threads.")
    var jobs: Int?

    @Option(help: "Also write the figures as JSON to this file.")
    var json: String?

    func run() throws {
        try setThreads(jobs)
        guard (1...100).contains(repeats) else { throw CLIError("--repeats must be in 1...100") }
        guard (1...8192).contains(regionSize), zoom.isFinite, zoom > 0 else {
            throw CLIError("--region-size must be in 1...8192 and --zoom > 0")
        }
        let e: GaussianExport
        if let export {
            e = try GaussianExport.load(URL(fileURLWithPath: export))
        } else {
            let scale = try parseScale(scale)
            let (model, name) = try modelOptions.loadOrDefault()
            let img = try ImageIO.load(URL(fileURLWithPath: input)).rgb
            e = try Upscaler(model: model).export(
                rgb: img.pixels, width: img.width, height: img.height, request: ScaleRequest(scale: scale),
                modelName: name)
        }
        let report = try RenderBench.run(export: e, regionOutput: regionSize, zoom: zoom, repeats: repeats)
        print(RenderBench.format(report), terminator: "")
        try writeBenchJSON(report, to: json)
    }
}

/// The options of the kernel benchmarks (`bench gemm`, `bench conv`): shapes fixed by the
/// benchmark, interleaved timed rounds, threads, JSON output.
struct KernelBenchOptions: ParsableArguments {
    @Option(help: "Timed rounds per shape (interleaved; medians; 1...100).")
    var repeats: Int = 9

    @Option(name: .short, help: "Threads.")
    var jobs: Int?

    @Option(help: "Also write the figures as JSON to this file.")
    var json: String?

    /// Sets the threads and checks the rounds; returns them.
    func prepare() throws -> Int {
        try setThreads(jobs)
        guard (1...100).contains(repeats) else { throw CLIError("--repeats must be in 1...100") }
        return repeats
    }
}

struct GEMMBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm",
        abstract:
            "float32 GEMM (ours) vs oneDNN's bf16 matmul on the decoder's large shapes (in-run baseline); medians, error, peak RSS."
    )

    @OptionGroup var kernel: KernelBenchOptions

    func run() throws {
        let repeats = try kernel.prepare()
        let r = try GEMMBench.run(repeats: repeats)
        print(GEMMBench.format(r))
        try writeBenchJSON(r, to: kernel.json)
    }
}

struct ConvBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conv",
        abstract:
            "The float32 3x3 convolution on the models' shapes: im2col vs Winograd F(2x2,3x3) vs F(4x4,3x3), same run; medians, difference, peak RSS."
    )

    @OptionGroup var kernel: KernelBenchOptions

    func run() throws {
        let repeats = try kernel.prepare()
        let r = ConvBench.run(repeats: repeats)
        print(ConvBench.format(r))
        try writeBenchJSON(r, to: kernel.json)
    }
}

struct PrecisionBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "precision",
        abstract:
            "A model in float32 and in bf16 on the same input, same run: time of each, PSNR of the bf16 8-bit output against the f32 one."
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .shortAndLong, help: "Input image.")
    var input: String = "Examples/astronaut_48x48.png"

    @Option(help: "Centre-crop the input to at most this side (0: whole image).")
    var crop: Int = 0

    @Option(name: .shortAndLong, help: "Comma-separated scales.")
    var scales: String = "2,4,11.3"

    @Option(help: "Timed rounds per scale after a warm-up (interleaved f32, bf16; medians; 1...100).")
    var repeats: Int = 1

    @Option(name: .short, help: "Threads.")
    var jobs: Int?

    @Option(help: "Also write the figures as JSON to this file.")
    var json: String?

    func run() throws {
        try setThreads(jobs)
        guard (1...100).contains(repeats) else { throw CLIError("--repeats must be in 1...100") }
        guard crop >= 0 else { throw CLIError("--crop must be 0 or positive") }
        try PrecisionOptions(precision: .bf16).check()
        Allocator.keepFreedMemoryForReuse()  // as `gsasr upscale` does
        let list = try scales.split(separator: ",").map { try parseScale(String($0)) }
        let (model, name) = try modelOptions.loadOrDefault()
        var img = try ImageIO.load(URL(fileURLWithPath: input)).rgb
        if crop > 0 { img = Evaluation.centerCrop(img, side: crop) }
        let r = try PrecisionBench.run(
            model: model, modelName: name, image: img, inputName: URL(fileURLWithPath: input).lastPathComponent,
            scales: list, repeats: repeats)
        print(PrecisionBench.format(r))
        try writeBenchJSON(r, to: json)
    }
}

/// Writes a bench report as pretty, sorted, snake_case JSON, atomically (nothing when `path` is nil).
func writeBenchJSON<T: Encodable>(_ report: T, to path: String?) throws {
    guard let path else { return }
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
    enc.keyEncodingStrategy = .convertToSnakeCase
    try enc.encode(report).write(to: URL(fileURLWithPath: path), options: .atomic)
}
