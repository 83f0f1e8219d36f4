import Foundation

/// A float RGB image in HWC row-major order.
///
/// `pixels[(y * width + x) * channels + c]` holds channel `c` of pixel `(x, y)`. Decoded 8-bit
/// images store `Float(byte) / 255` computed in Float32, which is bit-identical to numpy's
/// `png.astype(np.float32) / 255` (the cast is exact, the division is one correctly rounded
/// float32 operation). Values produced by models or by `Resize` may leave [0, 1]; nothing
/// here clamps except `ImageIO.quantize`.
public struct Image: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var pixels: [Float]

    public init(width: Int, height: Int, channels: Int = 3, pixels: [Float]) {
        precondition(width >= 0 && height >= 0 && channels > 0, "invalid image dimensions")
        precondition(
            pixels.count == width * height * channels,
            "pixel count \(pixels.count) does not match \(width)x\(height)x\(channels)")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// A zero-filled image.
    public init(width: Int, height: Int, channels: Int = 3) {
        self.init(
            width: width, height: height, channels: channels,
            pixels: [Float](repeating: 0, count: width * height * channels))
    }

    /// Copies one channel out as a `height * width` plane.
    public func plane(_ channel: Int) -> [Float] {
        precondition(channel >= 0 && channel < channels)
        var out = [Float](repeating: 0, count: width * height)
        for i in 0..<(width * height) { out[i] = pixels[i * channels + channel] }
        return out
    }

    /// The image quantised to bytes with `ImageIO.quantize` (clamp, ×255, round half to even).
    public func bytes() -> [UInt8] { pixels.map(ImageIO.quantize) }
}

/// The container format an image was decoded from.
public enum ImageFormat: String, Sendable {
    case png
    case jpeg
    case tiff
    /// HEIF with HEVC-coded images (phones' `.heic`).
    case heic
    /// HEIF with AV1-coded images (`.avif`).
    case avif
}

/// The result of `ImageIO.load`: the colour as RGB, plus the alpha plane if the file had one.
public struct DecodedImage: Sendable {
    /// Always three channels (grey sources are replicated to RGB). JPEGs with an Exif
    /// orientation are already turned upright.
    public var rgb: Image
    /// `height * width` alpha values in [0, 1], or nil when the file has no alpha (a PNG `tRNS`
    /// chunk counts as alpha).
    public var alpha: [Float]?
    public var sourceFormat: ImageFormat
    /// Bits per sample of the decoded data: 8, or 16 for 16-bit PNGs and TIFFs and 10- or 12-bit
    /// HEIC and AVIF images.
    public var bitDepth: Int
    /// True when the file stores grey samples (PNG colour type 0 or 4, a one-component JPEG);
    /// `rgb` then holds three equal channels. Palette PNGs count as colour, even if every
    /// palette entry is grey.
    public var isGrey: Bool
    /// The embedded ICC colour profile, byte for byte as stored (PNG `iCCP` after inflating,
    /// JPEG `APP2 ICC_PROFILE` segments joined in sequence order), or nil when there is none or
    /// it is malformed or has no valid ICC header (then ``notes`` says so).
    public var iccProfile: [UInt8]?
    /// The orientation (1-8, Exif's numbering) that was applied while decoding: a JPEG's Exif
    /// orientation or a TIFF's orientation tag; 1 when there was none (always 1 for PNG, and for
    /// HEIC and AVIF, whose rotation and mirroring libheif applies).
    public var appliedOrientation: Int
    /// What the file holds that the decode leaves out, one line each (an ICC profile that is not
    /// valid or is over 16 MiB, the frames of an animated PNG after the first): notes for the
    /// user, not errors.
    public var notes: [String]
    /// The file's Exif (JPEG APP1, PNG `eXIf`, TIFF tags and Exif IFDs, HEIF Exif item), its
    /// orientation set to 1, or nil when there is none or it is malformed (then ``notes`` says so).
    public var exif: ExifMetadata?

    public init(
        rgb: Image, alpha: [Float]?, sourceFormat: ImageFormat, bitDepth: Int, isGrey: Bool = false,
        iccProfile: [UInt8]? = nil, appliedOrientation: Int = 1, notes: [String] = [], exif: ExifMetadata? = nil
    ) {
        self.notes = notes
        self.exif = exif
        self.rgb = rgb
        self.alpha = alpha
        self.sourceFormat = sourceFormat
        self.bitDepth = bitDepth
        self.isGrey = isGrey
        self.iccProfile = iccProfile
        self.appliedOrientation = appliedOrientation
    }
}

/// A failure to read or write an image. `description` is a single line meant for users.
public struct ImageIOError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public var message: String
    /// True when the image was refused for its size (from the header, before decoding), not
    /// because it is broken (a server answers 413 rather than 422).
    public var isPixelLimit = false
    public init(_ message: String, isPixelLimit: Bool = false) {
        self.message = message
        self.isPixelLimit = isPixelLimit
    }
    public var description: String { message }
    public var errorDescription: String? { message }
}
