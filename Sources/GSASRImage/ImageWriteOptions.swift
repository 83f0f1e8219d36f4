import Foundation

/// The container an output image is written in.
public enum OutputFormat: String, Sendable, CaseIterable {
    /// 8- or 16-bit PNG: grey, grey+alpha, RGB or RGBA; lossless.
    case png
    /// 8-bit baseline JPEG (libjpeg-turbo): grey or RGB, no alpha.
    case jpeg
    /// 8-bit lossy WebP (libwebp): RGB or RGBA (WebP has no grey mode).
    case webp
    /// 8- or 16-bit TIFF (libtiff): grey, grey+alpha, RGB or RGBA, Deflate-compressed with the
    /// horizontal predictor (lossless); one page, top-left orientation, unassociated alpha.
    case tiff
    /// 8-bit lossy AVIF (libheif with libaom's AV1 encoder): RGB or RGBA at 4:4:4 chroma (AVIF
    /// stores grey as RGB with three equal channels here, as WebP).
    case avif

    /// Parses a format name or a file extension, case-insensitively: `png`, `jpg`/`jpeg`, `webp`,
    /// `tif`/`tiff`, `avif`.
    public init?(name: String) {
        switch name.lowercased() {
        case "png": self = .png
        case "jpg", "jpeg": self = .jpeg
        case "webp": self = .webp
        case "tif", "tiff": self = .tiff
        case "avif": self = .avif
        default: return nil
        }
    }

    /// The extension given to files of this format (folder mode): png, jpg, webp, tif.
    public var fileExtension: String {
        switch self {
        case .png: "png"
        case .jpeg: "jpg"
        case .webp: "webp"
        case .tiff: "tif"
        case .avif: "avif"
        }
    }

    /// The name used in messages.
    public var displayName: String {
        switch self {
        case .png: "PNG"
        case .jpeg: "JPEG"
        case .webp: "WebP"
        case .tiff: "TIFF"
        case .avif: "AVIF"
        }
    }

    /// The quality used when none is given: JPEG 95, WebP 90, AVIF 85 (libheif's scale; its own
    /// default, 50, blurs the detail an upscaler adds); PNG and TIFF have none (they are lossless).
    public var defaultQuality: Int? {
        switch self {
        case .png, .tiff: nil
        case .jpeg: 95
        case .webp: 90
        case .avif: 85
        }
    }

    public var supportsAlpha: Bool { self != .jpeg }
    /// WebP stores grey images as RGB with three equal channels.
    public var supportsGrey: Bool { self != .webp && self != .avif }
    public var supportedDepths: [Int] { self == .png || self == .tiff ? [8, 16] : [8] }
    /// Lossless formats (no quality setting).
    public var isLossless: Bool { self == .png || self == .tiff }
    /// Largest width or height the container allows.
    public var maxSide: Int {
        switch self {
        case .png: Int(Int32.max)
        case .jpeg: 65500  // libjpeg's JPEG_MAX_DIMENSION
        case .webp: 16383  // WEBP_MAX_DIMENSION
        case .tiff: Int(UInt32.max)
        case .avif: 16384  // ours: AV1 allows 65536, but libaom's time grows with the area
        }
    }
}

/// How `ImageRowWriter` encodes an image.
///
/// Quantisation is the same for every format: clamp to [0, 1], multiply by 255 (or 65535 for
/// depth 16) in Float32, round half to even (`ImageIO.quantize`, `ImageIO.quantize16`); NaN
/// becomes 0. JPEG uses 4:4:4 chroma at quality ≥ 90 and 4:2:0 below (as libvips does), the
/// standard Huffman tables (optimised tables would buffer the whole image) and no progressive
/// scans. WebP and AVIF are lossy at the given quality (AVIF at 4:4:4 chroma). An `icc` profile
/// is written byte for byte (PNG `iCCP`, JPEG `APP2 ICC_PROFILE` segments, WebP `ICCP`, AVIF
/// `colr`); without one, a PNG gets an `sRGB`
/// chunk, as the pixels are sRGB-encoded values; TIFF takes it as tag 34675. An `exif` block
/// (``ExifMetadata``, its orientation already 1: the pixels are upright) goes into a JPEG APP1
/// segment, a PNG `eXIf` chunk, a WebP `EXIF` chunk, an AVIF Exif item, or, for TIFF, the output's own Exif and GPS
/// IFDs and text tags (see ``ExifMetadata``; not into a BigTIFF, which a TIFF output becomes
/// past 3.5 GiB of samples). A block too large for a JPEG APP1 segment (64 KiB) is refused by
/// ``validate(channels:)``; callers drop it with a note.
public struct ImageWriteOptions: Sendable, Equatable {
    public var format: OutputFormat
    /// 8 or 16 bits per sample (16 for PNG and TIFF only).
    public var depth: Int
    /// 1...100 for JPEG, WebP and AVIF (nil: the format's default); must be nil for PNG and TIFF.
    public var quality: Int?
    /// The ICC profile to embed, or nil.
    public var icc: [UInt8]?
    /// The Exif block to embed, or nil.
    public var exif: ExifMetadata?

    public init(
        format: OutputFormat = .png, depth: Int = 8, quality: Int? = nil, icc: [UInt8]? = nil,
        exif: ExifMetadata? = nil
    ) {
        self.format = format
        self.depth = depth
        self.quality = quality
        self.icc = icc
        self.exif = exif
    }

    /// Largest Exif block a JPEG holds: one APP1 segment of 65533 payload bytes, less `Exif\0\0`.
    public static let maxJPEGExifBytes = 65533 - 6

    /// Whether `format` can hold `exif` (only JPEG limits its size).
    public static func fits(_ exif: ExifMetadata, in format: OutputFormat) -> Bool {
        format != .jpeg || exif.tiff.count <= maxJPEGExifBytes
    }

    /// The quality the encoder uses: the given one or the format's default (nil for PNG).
    public var effectiveQuality: Int? { quality ?? format.defaultQuality }

    /// Checks the options against each other and against an image of `channels` samples per pixel
    /// (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA). The messages are one line each.
    public func validate(channels: Int) throws {
        guard (1...4).contains(channels) else {
            throw ImageIOError("cannot write \(channels) channels per pixel (1 to 4 are supported)")
        }
        guard depth == 8 || depth == 16 else { throw ImageIOError("bit depth \(depth) is not 8 or 16") }
        guard format.supportedDepths.contains(depth) else {
            throw ImageIOError("\(format.displayName) output is 8-bit only; depth \(depth) needs PNG or TIFF")
        }
        if let quality {
            guard !format.isLossless else {
                throw ImageIOError(
                    "quality applies to JPEG, WebP and AVIF only; \(format.displayName) is lossless and takes no quality")
            }
            guard (1...100).contains(quality) else {
                throw ImageIOError("quality \(quality) is not in 1...100")
            }
        }
        if channels % 2 == 0 && !format.supportsAlpha {
            throw ImageIOError(
                "\(format.displayName) has no alpha channel and this image has one; write PNG, WebP, TIFF or AVIF to keep it")
        }
        if let icc, icc.isEmpty { throw ImageIOError("the ICC profile is empty") }
        if format == .jpeg, let icc {
            _ = try ContainerMetadata.jpegICCSegments(icc)  // size check
        }
        if let exif, !Self.fits(exif, in: format) {
            throw ImageIOError(
                "the Exif block (\(exif.tiff.count) bytes) is larger than a JPEG APP1 segment holds (\(Self.maxJPEGExifBytes) bytes)")
        }
    }
}
