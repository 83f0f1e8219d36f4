import Foundation

/// What to render of a ``GaussianExport``: a region of its zoom-1 output (the upscaled image,
/// `outputWidth × outputHeight` pixels) at a pixel density.
///
/// The region `(x, y, width, height)` is in zoom-1 output pixels. At zoom Z it becomes
/// `round(width·Z) × round(height·Z)` output pixels (halves away from zero; at least 1), or
/// exactly the requested size. The effective zoom per axis is then `output side / region side`
/// (= Z whenever `side·Z` is whole), so that the output covers the region exactly: output pixel
/// `i` is the centre of the i-th of equal parts of the region, at zoom-1 position
/// `x + (i + ½)/zoomX − ½` (see `SampleAxis`). At zoom 1 the samples are the zoom-1 pixels.
public struct RenderView: Sendable, Equatable {
    public var x: Int
    public var y: Int
    public var width: Int
    public var height: Int
    /// Output size in pixels.
    public var outputWidth: Int
    public var outputHeight: Int

    /// Largest output accepted (as the upscale pipeline: 2^27 pixels).
    public static let maxOutputPixels = 1 << 27

    /// Samples per zoom-1 pixel on each axis.
    public var zoomX: Double { Double(outputWidth) / Double(width) }
    public var zoomY: Double { Double(outputHeight) / Double(height) }

    /// Validates a request. `region` nil: the whole output image; `zoom` and `size` nil: zoom 1;
    /// giving both is an error.
    public init(
        export e: GaussianExport, region: (x: Int, y: Int, width: Int, height: Int)? = nil, zoom: Double? = nil,
        size: (width: Int, height: Int)? = nil
    ) throws {
        let r = region ?? (0, 0, e.outputWidth, e.outputHeight)
        guard r.width > 0, r.height > 0 else {
            throw GaussianExportError("region \(r.width)x\(r.height) is empty")
        }
        guard r.x >= 0, r.y >= 0, r.x <= e.outputWidth - r.width, r.y <= e.outputHeight - r.height else {
            throw GaussianExportError(
                "region \(r.x),\(r.y),\(r.width),\(r.height) is outside the \(e.outputWidth)x\(e.outputHeight) image")
        }
        guard zoom == nil || size == nil else { throw GaussianExportError("give only one of --zoom and --size") }
        var ow: Double, oh: Double
        if let size {
            guard size.width > 0, size.height > 0 else {
                throw GaussianExportError("size \(size.width)x\(size.height) must be positive on both sides")
            }
            ow = Double(size.width)
            oh = Double(size.height)
        } else {
            let z = zoom ?? 1
            guard z.isFinite, z > 0 else { throw GaussianExportError("zoom \(z) must be a finite number > 0") }
            ow = max(1, (Double(r.width) * z).rounded(.toNearestOrAwayFromZero))
            oh = max(1, (Double(r.height) * z).rounded(.toNearestOrAwayFromZero))
        }
        guard ow * oh <= Double(Self.maxOutputPixels) else {
            throw GaussianExportError(
                String(
                    format: "output %.10gx%.10g exceeds the limit of %d pixels (use a smaller zoom or region)", ow, oh,
                    Self.maxOutputPixels))
        }
        x = r.x
        y = r.y
        width = r.width
        height = r.height
        outputWidth = Int(ow)
        outputHeight = Int(oh)
    }

    /// The sample grid of this view in the export's normalised units.
    public func grid(_ e: GaussianExport) -> SampleGrid {
        SampleGrid(
            x: SampleAxis(count: outputWidth, extent: e.renderWidth, origin: x, zoom: zoomX),
            y: SampleAxis(count: outputHeight, extent: e.renderHeight, origin: y, zoom: zoomY))
    }

    /// Parses "x,y,w,h".
    public static func parseRegion(_ text: String) throws -> (x: Int, y: Int, width: Int, height: Int) {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map {
            Int($0.trimmingCharacters(in: .whitespaces))
        }
        guard parts.count == 4, let a = parts[0], let b = parts[1], let c = parts[2], let d = parts[3] else {
            throw GaussianExportError("--region '\(text)' is not X,Y,WIDTH,HEIGHT (e.g. 10,20,40,30)")
        }
        return (a, b, c, d)
    }
}

extension GaussianExport {
    /// Renders the sample rows `rows` of `view` (all of them by default): `rows.count ×
    /// view.outputWidth × 3` floats (HWC RGB, unclamped). The whole image at zoom 1 is the
    /// upscale pipeline's output, bit for bit.
    public func render(_ view: RenderView, rows: Range<Int>? = nil, threads: Int? = nil) -> [Float] {
        rasterizer(threads: threads).forward([kernels], grid: view.grid(self), rows: rows ?? 0..<view.outputHeight)
    }
}
