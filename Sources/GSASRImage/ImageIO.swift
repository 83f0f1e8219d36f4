import Foundation

/// Reading and writing image files.
///
/// Formats are recognised by their magic bytes, never by the file extension: PNG files start
/// with the 8-byte signature `89 50 4E 47 0D 0A 1A 0A`, JPEG files with the SOI marker
/// `FF D8` followed by another marker (`FF`), TIFF files with `II*\0` or `MM\0*` (BigTIFF:
/// `II+\0`, `MM\0+`), HEIC and AVIF files with an ISO-BMFF `ftyp` box whose brands name HEVC
/// (`heic`, `heix`, `heim`, `heis`, `hevc`, `hevx`, `hevm`, `hevs`) or AV1 (`avif`, `avis`)
/// images.
public enum ImageIO {
    /// Default ceiling on `width * height` for decoded images (2^28, about 268 megapixels).
    public static let defaultMaxPixels = 1 << 28

    /// Decodes a PNG, JPEG, TIFF, HEIC or AVIF file.
    ///
    /// The dimensions are read from the header and checked (non-zero, `width * height <=
    /// maxPixels`) before any pixel buffer is allocated. Truncated or corrupt files throw an
    /// `ImageIOError` with a one-line message; the C libraries are driven only through APIs that
    /// report errors by return value (libpng's `png_image_*`, TurboJPEG), so no `longjmp` ever
    /// crosses Swift frames.
    public static func load(_ url: URL, maxPixels: Int = defaultMaxPixels) throws -> DecodedImage {
        let name = url.lastPathComponent
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            let reason = FileManager.default.fileExists(atPath: url.path) ? "cannot be read" : "does not exist"
            throw ImageIOError("image \(url.path) \(reason)")
        }
        return try decode(data, name: name, maxPixels: maxPixels)
    }

    /// Decodes PNG, JPEG, TIFF, HEIC or AVIF bytes held in memory. `name` is used only in error
    /// messages.
    public static func decode(_ data: Data, name: String = "<memory>", maxPixels: Int = defaultMaxPixels) throws
        -> DecodedImage
    {
        switch detectFormat(data) {
        case .png?: return try PNGCodec.decode(data, name: name, maxPixels: maxPixels)
        case .jpeg?: return try JPEGCodec.decode(data, name: name, maxPixels: maxPixels)
        case .tiff?: return try TIFFCodec.decode(data, name: name, maxPixels: maxPixels)
        case let f? where f == .heic || f == .avif:
            return try HEIFCodec.decode(data, name: name, format: f, maxPixels: maxPixels)
        default:
            throw ImageIOError(
                "image \(name) is not a PNG, JPEG, TIFF, HEIC or AVIF file (unrecognised signature, \(data.count) bytes)")
        }
    }

    /// Identifies the format from the leading bytes, or nil if it is none of PNG, JPEG, TIFF,
    /// HEIC and AVIF.
    public static func detectFormat(_ data: Data) -> ImageFormat? {
        let head = [UInt8](data.prefix(64))
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        if head.starts(with: png) { return .png }
        if head.starts(with: [0xFF, 0xD8, 0xFF]) { return .jpeg }
        if head.starts(with: [0x49, 0x49, 0x2A, 0x00]) || head.starts(with: [0x4D, 0x4D, 0x00, 0x2A])
            || head.starts(with: [0x49, 0x49, 0x2B, 0x00]) || head.starts(with: [0x4D, 0x4D, 0x00, 0x2B])
        {
            return .tiff
        }
        // ISO-BMFF: box size (4 bytes), "ftyp", major brand, minor version, compatible brands.
        guard head.count >= 16, Array(head[4..<8]) == Array("ftyp".utf8) else { return nil }
        let size = Int(head[0]) << 24 | Int(head[1]) << 16 | Int(head[2]) << 8 | Int(head[3])
        guard size >= 16 else { return nil }
        var brands = [String(decoding: head[8..<12], as: UTF8.self)]
        var at = 16
        while at + 4 <= min(size, head.count) {
            brands.append(String(decoding: head[at..<(at + 4)], as: UTF8.self))
            at += 4
        }
        let av1: Set<String> = ["avif", "avis"]
        let hevc: Set<String> = ["heic", "heix", "heim", "heis", "hevc", "hevx", "hevm", "hevs"]
        if av1.contains(brands[0]) { return .avif }
        if hevc.contains(brands[0]) { return .heic }
        if brands.contains(where: av1.contains) { return .avif }
        if brands.contains(where: hevc.contains) { return .heic }
        return nil
    }

    /// Validates header dimensions against the pixel ceiling before allocation.
    static func checkDimensions(width: Int, height: Int, name: String, maxPixels: Int) throws {
        if width <= 0 || height <= 0 {
            throw ImageIOError("image \(name) has an empty size \(width)x\(height)")
        }
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        if overflow || pixels > maxPixels {
            throw ImageIOError(
                "image \(name) is \(width)x\(height) pixels, over the limit of \(maxPixels) pixels", isPixelLimit: true)
        }
    }

    /// Maps a float sample to a byte as the reference pipeline does when saving:
    /// clamp to [0, 1], multiply by 255 in Float32, then round half to even (numpy `round`).
    /// NaN maps to 0.
    @inline(__always)
    public static func quantize(_ v: Float) -> UInt8 {
        if v.isNaN { return 0 }
        let c = v < 0 ? Float(0) : (v > 1 ? Float(1) : v)
        return UInt8((c * 255).rounded(.toNearestOrEven))
    }

    /// Maps a float sample to a 16-bit value: clamp to [0, 1], multiply by 65535 in Float32,
    /// round half to even. NaN maps to 0.
    @inline(__always)
    public static func quantize16(_ v: Float) -> UInt16 {
        if v.isNaN { return 0 }
        let c = v < 0 ? Float(0) : (v > 1 ? Float(1) : v)
        return UInt16((c * 65535).rounded(.toNearestOrEven))
    }

    /// Writes an 8-bit RGB PNG, or RGBA when `alpha` is given (`height * width` values, quantised
    /// like the colour). The file appears atomically: the bytes go to a temporary file in the
    /// destination directory, which is then renamed over `url`; on failure nothing is left behind.
    public static func writePNG(_ image: Image, alpha: [Float]? = nil, to url: URL) throws {
        try write(image, alpha: alpha, grey: false, to: url, options: ImageWriteOptions(format: .png))
    }

    /// Writes a whole image through `ImageRowWriter`: `image` is RGB (3 channels), `alpha` nil or
    /// `height * width` values; with `grey` the file stores the channel mean (see
    /// `OutputLayout.outputRows`). Atomic, as `writePNG`.
    public static func write(_ image: Image, alpha: [Float]?, grey: Bool, to url: URL, options: ImageWriteOptions)
        throws
    {
        guard image.channels == 3 else {
            throw ImageIOError("cannot write \(url.lastPathComponent): expected 3 channels, got \(image.channels)")
        }
        let n = image.width * image.height
        if let alpha, alpha.count != n {
            throw ImageIOError("cannot write \(url.lastPathComponent): alpha has \(alpha.count) values, expected \(n)")
        }
        let channels = OutputLayout.channels(grey: grey, alpha: alpha != nil)
        let writer = try ImageRowWriter(
            url: url, width: image.width, height: image.height, channels: channels, options: options)
        let rows = OutputLayout.outputRows(
            rgb: image.pixels, alpha: alpha, rowCount: image.height, width: image.width, grey: grey)
        try rows.withUnsafeBufferPointer { try writer.write(rows: $0, rowCount: image.height) }
        try writer.finish()
    }
}
