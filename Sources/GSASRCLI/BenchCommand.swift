import ArgumentParser
import Foundation
import GSASR
import GSASRBench

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks: per-stage pipeline timings (default), the rasterizer (`bench raster`), a training step (`bench train`).",
        subcommands: [PipelineBenchCommand.self, RasterBenchCommand.self, TrainBenchCommand.self],
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

    func run() throws {
        try setThreads(jobs)
        let scale = try parseScale(scale)
        let mode = try parseRasterMode(rasterMode)
        guard repeats >= 1 && repeats <= 100 else { throw CLIError("--repeats must be in 1...100") }
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
            dmax: try parseDmax(dmax), repeats: repeats)
        report.blas = BLASBench.run(executable: Bundle.main.executablePath)
        print(PipelineBench.format(report))
        if let json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            enc.keyEncodingStrategy = .convertToSnakeCase
            try enc.encode(report).write(to: URL(fileURLWithPath: json), options: .atomic)
        }
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
        abstract: "Time a training step (official setup: batch 4, LR 48, scale 4); peak RSS; forward GFLOP/s vs sgemm in the same run.")

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
        guard (1...64).contains(batch), (1...20).contains(steps) else { throw CLIError("--batch must be 1...64 and --steps 1...20") }
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
            throw CLIError("--lr-size \(lrSize) must be a positive multiple of the window size \(settings.decoder.windowSize)")
        }
        let name = TrainBench.settings(named: config) == nil ? (config as NSString).lastPathComponent : config
        var r = try TrainBench.run(settings: settings, name: name, batch: batch, lrSize: lrSize, steps: steps)
        r.blas = BLASBench.run(executable: Bundle.main.executablePath)
        print(TrainBench.format(r))
        if let json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            enc.keyEncodingStrategy = .convertToSnakeCase
            try enc.encode(r).write(to: URL(fileURLWithPath: json), options: .atomic)
        }
    }
}
