import Foundation
import GSASR

/// `gsasr bench render`: re-rendering a Gaussian export. The baseline, measured in the same run,
/// is the whole image at zoom 1 (the upscale pipeline's render); the case is a square region
/// at a high zoom (default 512x512 output pixels at zoom 8), where only the Gaussians whose box
/// reaches the region are binned; then the same region with the overlay.
public enum RenderBench {
    public struct Case: Codable, Sendable {
        public var name: String
        public var outputWidth, outputHeight: Int
        public var zoom: Double
        public var seconds: Double
        /// Peak RSS of the process after this case (getrusage: a running maximum, so it includes
        /// everything before it; compare the increase over the previous case).
        public var peakRSSMiB: Double
    }

    public struct Report: Codable, Sendable {
        public var gaussians: Int
        public var imageWidth, imageHeight: Int
        public var renderWidth, renderHeight: Int
        public var rasterMode: String
        public var threads: Int
        public var repeats: Int
        /// Peak RSS once the export is in memory, before any render.
        public var loadedRSSMiB: Double
        public var cases: [Case]
    }

    /// Times `repeats` renders of each case (median) of `export`: the whole image at zoom 1,
    /// then `regionOutput`² pixels at `zoom` centred in the image, plain and with the overlay.
    public static func run(export e: GaussianExport, regionOutput: Int, zoom: Double, repeats: Int) throws -> Report {
        let loaded = ProcessStats.peakRSSMiB()
        var cases: [Case] = []
        func measure(_ name: String, _ view: RenderView, overlay: Bool) {
            let grid = view.grid(e)
            let t = ProcessStats.medianTime(repeats: repeats) {
                var px = e.render(view)
                if overlay {
                    let sel = GaussianOverlay.select(e.kernels, opacity: e.opacity, grid: grid, cap: 50_000)
                    px.withUnsafeMutableBufferPointer {
                        GaussianOverlay.draw(
                            e.kernels, opacity: e.opacity, selection: sel, grid: grid, rows: 0..<view.outputHeight,
                            into: $0)
                    }
                }
                precondition(px.count == view.outputWidth * view.outputHeight * 3)
            }
            cases.append(
                Case(
                    name: name, outputWidth: view.outputWidth, outputHeight: view.outputHeight, zoom: view.zoomX,
                    seconds: t, peakRSSMiB: ProcessStats.peakRSSMiB()))
        }
        measure("whole image, zoom 1 (baseline)", try RenderView(export: e), overlay: false)
        let side = max(1, Int((Double(regionOutput) / zoom).rounded()))
        let w = min(side, e.outputWidth), h = min(side, e.outputHeight)
        let region = ((e.outputWidth - w) / 2, (e.outputHeight - h) / 2, w, h)
        let view = try RenderView(export: e, region: region, size: (regionOutput, regionOutput))
        measure("region \(region.0),\(region.1),\(w),\(h) → \(regionOutput)²", view, overlay: false)
        measure("same region with --overlay", view, overlay: true)
        let mode: String
        switch e.mode {
        case .exact: mode = "exact"
        case .fast: mode = "fast"
        }
        return Report(
            gaussians: e.count, imageWidth: e.outputWidth, imageHeight: e.outputHeight, renderWidth: e.renderWidth,
            renderHeight: e.renderHeight, rasterMode: mode, threads: Parallel.threadCount, repeats: repeats,
            loadedRSSMiB: loaded, cases: cases)
    }

    public static func format(_ r: Report) -> String {
        var s = String(
            format: "render bench: %d Gaussians, image %dx%d (render %dx%d), %@ raster, %d threads, median of %d\n",
            r.gaussians, r.imageWidth, r.imageHeight, r.renderWidth, r.renderHeight, r.rasterMode, r.threads,
            r.repeats)
        s += String(format: "  export loaded: peak RSS %.0f MiB\n", r.loadedRSSMiB)
        for c in r.cases {
            let name = c.name.padding(toLength: max(c.name.count, 36), withPad: " ", startingAt: 0)
            s +=
                "  \(name)"
                + String(
                    format: " %5dx%-5d zoom %-5.3g %8.3f s   peak RSS %.0f MiB\n", c.outputWidth, c.outputHeight, c.zoom,
                    c.seconds, c.peakRSSMiB)
        }
        if r.cases.count >= 2 {
            s += String(
                format: "  region / baseline: %.2f x the time for %.2f x the pixels\n",
                r.cases[1].seconds / r.cases[0].seconds,
                Double(r.cases[1].outputWidth * r.cases[1].outputHeight)
                    / Double(r.cases[0].outputWidth * r.cases[0].outputHeight))
        }
        return s
    }
}
