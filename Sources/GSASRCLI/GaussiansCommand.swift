import ArgumentParser
import Foundation
import GSASR

/// `gsasr gaussians`: runs the encoder and decoder and writes the activated Gaussians (and what
/// is needed to render them) to a safetensors file, instead of rendering them.
struct Gaussians: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Export the activated Gaussians of an upscale to a .safetensors file (render it with `gsasr render`).",
        discussion: """
            Tensors (F32): centers N×2 [x, y], sigmas N×3 [sx, sy, rho], colors N×3 (RGB × opacity), \
            opacity N; geometry in the normalised units of the render_width × render_height render \
            (pixel (row, col) at (2·col/(render_width−1)−1, 2·row/(render_height−1)−1)). Metadata: sizes, \
            scales, geometry (exact or official: how the centres were placed; --geometry), dmax, raster mode, \
            model. Untiled: the working-memory budget of the upscale command applies.
            """)

    @Option(
        name: .shortAndLong,
        help: "Input image (PNG, JPEG, TIFF, HEIC or AVIF). Alpha is not exported; grey is exported as RGB.")
    var input: String

    @Option(name: .shortAndLong, help: "Output file, .safetensors (written atomically).")
    var output: String

    @OptionGroup var targetOptions: TargetOptions

    @OptionGroup var modelOptions: ModelOptions

    @OptionGroup var precisionOptions: PrecisionOptions

    @Option(help: "Rasterization ratio dmax, in normalised image units (paper: 0.1); stored for rendering.")
    var dmax: Float = 0.1

    @Option(help: "Rasterizer for rendering the export: 'fast' or 'exact'; stored in the file.")
    var rasterMode: String = "fast"

    @Option(help: "Working-memory budget in GiB; inputs over it are refused (this command does not tile).")
    var maxMemoryGib: Double = 4

    @Option(name: .short, help: "Threads (default: all cores).")
    var jobs: Int?

    @Flag(name: .shortAndLong, help: "No progress on stderr.")
    var quiet = false

    func run() throws {
        try setThreads(jobs)
        try precisionOptions.check()
        Allocator.keepFreedMemoryForReuse()  // one job per process (Allocator)
        let target = try targetOptions.target()
        let mode = try parseRasterMode(rasterMode)
        let dmax = try parseDmax(dmax)
        guard maxMemoryGib.isFinite, maxMemoryGib > 0, maxMemoryGib <= 1_048_576 else {
            throw CLIError("--max-memory-gib \(maxMemoryGib) must be a positive number of GiB")
        }
        let inURL = URL(fileURLWithPath: input), outURL = URL(fileURLWithPath: output)
        guard outURL.pathExtension.lowercased() == "safetensors" else {
            throw CLIError("output '\(outURL.lastPathComponent)' must be a .safetensors file")
        }
        try refuseOverwritingInput(inURL, outURL)
        let decoded = try Upscale.loadInput(inURL)
        let img = decoded.rgb
        let request = try target.request(inputWidth: img.width, inputHeight: img.height)
        let (model, name) = try modelOptions.loadOrDefault()
        try precisionOptions.apply(to: model, quiet: quiet)
        var up = Upscaler(model: model, dmax: dmax, mode: mode)
        up.memoryLimitBytes = Int(maxMemoryGib * Double(1 << 30))
        if decoded.alpha != nil { note("gsasr: note: the alpha channel is not exported (Gaussians carry RGB)\n") }
        let start = Date()
        var lastStage: UpscaleStage? = nil
        let export = try up.export(
            rgb: img.pixels, width: img.width, height: img.height, request: request, modelName: name
        ) { stage, _ in
            if stage != lastStage {
                lastStage = stage
                note("\(stage.rawValue)...\n")
            }
        }
        try export.save(to: outURL)
        note(
            String(
                format: "wrote %@: %d Gaussians for a %dx%d output (render %dx%d) in %.2f s\n", outURL.path,
                export.count, export.outputWidth, export.outputHeight, export.renderWidth, export.renderHeight,
                Date().timeIntervalSince(start)))
    }

    func note(_ s: String) { if !quiet { FileHandle.standardError.write(Data(s.utf8)) } }
}
