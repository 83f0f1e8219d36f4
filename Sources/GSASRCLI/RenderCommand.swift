import ArgumentParser
import Foundation
import GSASR

/// `gsasr render`: renders a Gaussian export (`gsasr gaussians`), whole or a region, at any
/// pixel density, optionally with the Gaussians drawn over it.
struct Render: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render a Gaussian export: the whole image or a region, at any zoom, optionally with an overlay.",
        discussion: """
            The region is in pixels of the zoom-1 output (the upscaled image of the export): \
            --region 10,20,40,30 --zoom 4 gives 160x120. The whole image at zoom 1 is the upscale \
            command's output, bit for bit. Rendering denser is a continuous zoom of the export's one \
            reconstruction, not a new super-resolution at the new scale.
            """)

    @Argument(help: "A Gaussian export (.safetensors) written by `gsasr gaussians`.")
    var input: String

    @Option(name: .shortAndLong, help: "Output image (.png, .jpg/.jpeg, .webp, .tif/.tiff, .avif; written atomically).")
    var output: String

    @Option(help: "Region X,Y,WIDTH,HEIGHT in zoom-1 output pixels (default: the whole image).")
    var region: String?

    @Option(help: "Output pixels per zoom-1 pixel (> 0; default 1). The output side is round(region side · zoom).")
    var zoom: String?

    @Option(help: "Output size WIDTHxHEIGHT for the region instead of --zoom (a zoom per axis).")
    var size: String?

    @Flag(
        help:
            "Draw each Gaussian's 1-sigma ellipse and centre over the render (its colour; opacity alpha / largest alpha)."
    )
    var overlay = false

    @Option(help: "Overlay: draw at most this many Gaussians (the most opaque).")
    var overlayMax: Int = 50_000

    @Option(
        name: [.short, .long],
        help: "Output format: png, jpg (or jpeg), webp (default: the output file's extension).")
    var format: String?

    @Option(help: "JPEG, WebP or AVIF quality, 1...100 (default: JPEG 95, WebP 90, AVIF 85; not for PNG or TIFF).")
    var quality: Int?

    @Option(help: "Bits per output sample, 8 or 16 (16: PNG or TIFF; default 8).")
    var depth: Int?

    @Option(name: .short, help: "Threads (default: all cores).")
    var jobs: Int?

    @Flag(name: .shortAndLong, help: "No progress on stderr.")
    var quiet = false

    /// Rows rendered and written at a time: about 64 MiB of floats, a multiple of the tile.
    static func bandRows(width: Int, height: Int) -> Int {
        let rows = max(Rasterizer.tileSize, (16 << 20) / max(1, width * 3))
        return min(height, rows / Rasterizer.tileSize * Rasterizer.tileSize)
    }

    func run() throws {
        try setThreads(jobs)
        let zoom = try self.zoom.map { text -> Double in
            guard let v = Double(text.trimmingCharacters(in: .whitespaces)) else {
                throw CLIError("zoom '\(text)' is not a number")
            }
            return v
        }
        let size = try self.size.map(ScaleRequest.parseSize)
        let region = try self.region.map(RenderView.parseRegion)
        if zoom != nil && size != nil { throw CLIError("give only one of --zoom and --size") }
        guard overlayMax >= 0 else { throw CLIError("--overlay-max \(overlayMax) must be ≥ 0") }
        let inURL = URL(fileURLWithPath: input), outURL = URL(fileURLWithPath: output)
        let destination = try outputDestination(output)
        let format = try resolveOutputFormat(self.format, for: outURL, folder: false, stream: destination.isStream)
        let options = ImageWriteOptions(format: format, depth: depth ?? 8, quality: quality)
        try options.validate(channels: 3)
        if destination != .standardOutput { try refuseOverwritingInput(inURL, outURL) }
        guard FileManager.default.fileExists(atPath: inURL.path) else {
            throw CLIError("Gaussian export '\(inURL.path)' does not exist")
        }
        let export = try GaussianExport.load(inURL)
        let view = try RenderView(export: export, region: region, zoom: zoom, size: size)
        let grid = view.grid(export)
        var selection: GaussianOverlay.Selection? = nil
        if overlay {
            let s = GaussianOverlay.select(export.kernels, opacity: export.opacity, grid: grid, cap: overlayMax)
            selection = s
            note(
                "overlay: \(s.indices.count) Gaussians drawn; left out: \(s.subPixel) whose 1-sigma ellipse is under a pixel, "
                    + "\(s.transparent) with opacity < 1/255, \(s.overCap) over --overlay-max \(overlayMax)\n")
        }
        let writer = try ImageRowWriter(
            destination: destination, width: view.outputWidth, height: view.outputHeight, channels: 3, options: options)
        let start = Date()
        let rasterizer = export.rasterizer()
        let band = Self.bandRows(width: view.outputWidth, height: view.outputHeight)
        let progress = ProgressReporter(quiet: quiet)
        var top = 0
        while top < view.outputHeight {
            let rows = top..<min(view.outputHeight, top + band)
            var px = rasterizer.forward([export.kernels], grid: grid, rows: rows)
            if let selection {
                px.withUnsafeMutableBufferPointer {
                    GaussianOverlay.draw(
                        export.kernels, opacity: export.opacity, selection: selection, grid: grid, rows: rows,
                        into: $0)
                }
            }
            try px.withUnsafeBufferPointer { try writer.write(rows: $0, rowCount: rows.count) }
            top = rows.upperBound
            if view.outputHeight > band { progress.percent("rendering", Double(top) / Double(view.outputHeight)) }
        }
        try writer.finish()
        note(
            String(
                format: "wrote %@ (%dx%d: region %d,%d,%d,%d at zoom %.6gx%.6g) in %.2f s\n", destination.displayName,
                view.outputWidth, view.outputHeight, view.x, view.y, view.width, view.height, view.zoomX, view.zoomY,
                Date().timeIntervalSince(start)))
    }

    func note(_ s: String) { if !quiet { FileHandle.standardError.write(Data(s.utf8)) } }
}
