import Foundation

/// The container an output image is written in.
public enum OutputFormat: String, Sendable, CaseIterable {
    /// 8- or 16-bit PNG: grey, grey+alpha, RGB or RGBA; lossless.
    case png
    /// 8-bit baseline JPEG (libjpeg-turbo): grey or RGB, no alpha.
    case jpeg
    /// 8-bit lossy WebP (libwebp): RGB or RGBA (WebP has no grey mode).
    case webp

    /// Parses a format name or a file extension, case-insensitively: `png`, `jpg`/`jpeg`, `webp`.
    public init?(name: String) {
        switch name.lowercased() {
        case "png": self = .png
        case "jpg", "jpeg": self = .jpeg
        case "webp": self = .webp
        default: return nil
        }
    }

    /// The extension given to files of this format (folder mode): png, jpg, webp.
    public var fileExtension: String {
        switch self {
        case .png: "png"
        case .jpeg: "jpg"
        case .webp: "webp"
        }
    }

    /// The name used in messages.
    public var displayName: String {
        switch self {
        case .png: "PNG"
        case .jpeg: "JPEG"
        case .webp: "WebP"
        }
    }

    /// The quality used when none is given: JPEG 95, WebP 90; PNG has none (it is lossless).
    public var defaultQuality: Int? {
        switch self {
        case .png: nil
        case .jpeg: 95
        case .webp: 90
        }
    }

    public var supportsAlpha: Bool { self != .jpeg }
    /// WebP stores grey images as RGB with three equal channels.
    public var supportsGrey: Bool { self != .webp }
    public var supportedDepths: [Int] { self == .png ? [8, 16] : [8] }
    /// Largest width or height the container allows.
    public var maxSide: Int {
        switch self {
        case .png: Int(Int32.max)
        case .jpeg: 65500  // libjpeg's JPEG_MAX_DIMENSION
        case .webp: 16383  // WEBP_MAX_DIMENSION
        }
    }
}

/// How `ImageRowWriter` encodes an image.
///
/// Quantisation is the same for every format: clamp to [0, 1], multiply by 255 (or 65535 for
/// depth 16) in Float32, round half to even (`ImageIO.quantize`, `ImageIO.quantize16`); NaN
/// becomes 0. JPEG uses 4:4:4 chroma at quality ≥ 90 and 4:2:0 below (as libvips does), the
/// standard Huffman tables (optimised tables would buffer the whole image) and no progressive
/// scans. WebP is lossy at the given quality. An `icc` profile is written byte for byte (PNG
/// `iCCP`, JPEG `APP2 ICC_PROFILE` segments, WebP `ICCP`); without one, a PNG gets an `sRGB`
/// chunk, as the pixels are sRGB-encoded values. No Exif is written, so no orientation tag:
/// the pixels are already upright.
public struct ImageWriteOptions: Sendable, Equatable {
    public var format: OutputFormat
    /// 8 or 16 bits per sample (16 for PNG only).
    public var depth: Int
    /// 1...100 for JPEG and WebP (nil: the format's default); must be nil for PNG.
    public var quality: Int?
    /// The ICC profile to embed, or nil.
    public var icc: [UInt8]?

    public init(format: OutputFormat = .png, depth: Int = 8, quality: Int? = nil, icc: [UInt8]? = nil) {
        self.format = format
        self.depth = depth
        self.quality = quality
        self.icc = icc
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
            throw ImageIOError("\(format.displayName) output is 8-bit only; depth \(depth) needs PNG")
        }
        if let quality {
            guard format != .png else {
                throw ImageIOError("quality applies to JPEG and WebP only; PNG is lossless and takes no quality")
            }
            guard (1...100).contains(quality) else {
                throw ImageIOError("quality \(quality) is not in 1...100")
            }
        }
        if channels % 2 == 0 && !format.supportsAlpha {
            throw ImageIOError(
                "\(format.displayName) has no alpha channel and this image has one; write PNG or WebP to keep it")
        }
        if let icc, icc.isEmpty { throw ImageIOError("the ICC profile is empty") }
        if format == .jpeg, let icc {
            _ = try ContainerMetadata.jpegICCSegments(icc)  // size check
        }
    }
}
