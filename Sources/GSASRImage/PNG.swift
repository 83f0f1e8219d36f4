import CPNG
import Foundation

/// PNG decoding and encoding through libpng's simplified `png_image_*` API.
///
/// That API runs every libpng call under its own `setjmp` and reports failures through
/// `png_image.message`, so a corrupt file can never `longjmp` through Swift frames.
///
/// Sample mapping:
/// * 8-bit output (all 1/2/4/8-bit files, palettes expanded, grey replicated to RGB): `Float(v) / 255`.
/// * 16-bit files are read as 16-bit "linear" samples, `Float(v) / 65535`. libpng assumes 16-bit
///   data is linear, so no gamma conversion happens, but for files with alpha it premultiplies the
///   colour. The colour is therefore recovered as `premultiplied / alpha`, whose error is at most
///   `0.5 / alpha16`; where `alpha16 < 256` that would be worse than 8 bits, so those pixels take
///   their colour from a second, 8-bit read (flagged as sRGB-encoded so nothing is gamma-converted).
/// * Alpha: from an alpha channel or a `tRNS` chunk, as its own plane.
/// * Grey files (colour types 0 and 4) are flagged `isGrey`; palettes count as colour.
/// * An `iCCP` profile is returned as bytes (`ContainerMetadata.pngICCProfile`), not applied.
/// * Files that declare a non-sRGB gamma (`gAMA`) are converted to sRGB by libpng; files with
///   no colour-space chunks, the usual case, are passed through unchanged.
enum PNGCodec {
    /// `PNG_FORMAT_*` combinations (the composite macros are not imported into Swift).
    private enum Fmt {
        static let rgb = UInt32(PNG_FORMAT_FLAG_COLOR)
        static let rgba = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)
        static let linearRGB = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_LINEAR)
        static let linearRGBA = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_LINEAR | PNG_FORMAT_FLAG_ALPHA)
    }

    static func decode(_ data: Data, name: String, maxPixels: Int) throws -> DecodedImage {
        try data.withUnsafeBytes { raw -> DecodedImage in
            guard let base = raw.baseAddress else { throw ImageIOError("image \(name) is empty") }
            var header = png_image()
            header.version = UInt32(PNG_IMAGE_VERSION)
            guard png_image_begin_read_from_memory(&header, base, raw.count) != 0 else {
                throw failure(header, "cannot decode PNG \(name)")
            }
            let width = Int(header.width), height = Int(header.height)
            let fileFormat = header.format
            png_image_free(&header)
            try ImageIO.checkDimensions(width: width, height: height, name: name, maxPixels: maxPixels)

            let hasAlpha = fileFormat & UInt32(PNG_FORMAT_FLAG_ALPHA) != 0
            let isGrey = fileFormat & UInt32(PNG_FORMAT_FLAG_COLOR) == 0
            let sixteen = fileFormat & UInt32(PNG_FORMAT_FLAG_LINEAR) != 0
            let n = width * height
            let outChannels = hasAlpha ? 4 : 3
            var rgb = [Float](repeating: 0, count: n * 3)
            var alpha: [Float]? = hasAlpha ? [Float](repeating: 0, count: n) : nil

            if !sixteen {
                let buffer: [UInt8] = try read(
                    base, raw.count, name: name, format: hasAlpha ? Fmt.rgba : Fmt.rgb,
                    flags: 0, count: n * outChannels)
                for i in 0..<n {
                    for c in 0..<3 { rgb[i * 3 + c] = Float(buffer[i * outChannels + c]) / 255 }
                    if hasAlpha { alpha![i] = Float(buffer[i * 4 + 3]) / 255 }
                }
            } else {
                let buffer: [UInt16] = try read(
                    base, raw.count, name: name,
                    format: hasAlpha ? Fmt.linearRGBA : Fmt.linearRGB,
                    flags: 0, count: n * outChannels)
                if !hasAlpha {
                    for i in 0..<(n * 3) { rgb[i] = Float(buffer[i]) / 65535 }
                } else {
                    var needsFallback = false
                    for i in 0..<n {
                        let a = buffer[i * 4 + 3]
                        alpha![i] = Float(a) / 65535
                        if a == 65535 {
                            for c in 0..<3 { rgb[i * 3 + c] = Float(buffer[i * 4 + c]) / 65535 }
                        } else if a >= 256 {
                            for c in 0..<3 {
                                let v = Double(buffer[i * 4 + c]) / Double(a)
                                rgb[i * 3 + c] = Float(min(v, 1))
                            }
                        } else {
                            needsFallback = true
                        }
                    }
                    if needsFallback {
                        let b8: [UInt8] = try read(
                            base, raw.count, name: name, format: Fmt.rgba,
                            flags: UInt32(PNG_IMAGE_FLAG_16BIT_sRGB), count: n * 4)
                        for i in 0..<n where buffer[i * 4 + 3] < 256 {
                            for c in 0..<3 { rgb[i * 3 + c] = Float(b8[i * 4 + c]) / 255 }
                        }
                    }
                }
            }
            return DecodedImage(
                rgb: Image(width: width, height: height, channels: 3, pixels: rgb),
                alpha: alpha, sourceFormat: .png, bitDepth: sixteen ? 16 : 8, isGrey: isGrey,
                iccProfile: ContainerMetadata.pngICCProfile(UnsafeRawBufferPointer(raw)))
        }
    }

    /// One complete simplified-API read of the in-memory file into a buffer of `count` samples.
    private static func read<T: FixedWidthInteger>(
        _ base: UnsafeRawPointer, _ size: Int, name: String,
        format: UInt32, flags: UInt32, count: Int
    ) throws -> [T] {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_memory(&image, base, size) != 0 else {
            throw failure(image, "cannot decode PNG \(name)")
        }
        image.format = format
        image.flags |= flags
        var buffer = [T](repeating: 0, count: count)
        let ok = buffer.withUnsafeMutableBytes { out in
            png_image_finish_read(&image, nil, out.baseAddress, 0, nil)
        }
        // finish_read frees the control structure itself, on success and on failure.
        guard ok != 0 else { throw failure(image, "cannot decode PNG \(name)") }
        return buffer
    }

    /// Encodes 8-bit RGB(A) PNG bytes.
    static func encode(_ image: Image, alpha: [Float]?, name: String) throws -> [UInt8] {
        guard image.channels == 3 else {
            throw ImageIOError("cannot write \(name): expected 3 channels, got \(image.channels)")
        }
        guard image.width > 0, image.height > 0, image.width <= 0x7FFF_FFFF / 4, image.height <= 0x7FFF_FFFF else {
            throw ImageIOError("cannot write \(name): invalid size \(image.width)x\(image.height)")
        }
        let n = image.width * image.height
        if let alpha, alpha.count != n {
            throw ImageIOError("cannot write \(name): alpha has \(alpha.count) values, expected \(n)")
        }
        let channels = alpha == nil ? 3 : 4
        var buffer = [UInt8](repeating: 0, count: n * channels)
        image.pixels.withUnsafeBufferPointer { src in
            buffer.withUnsafeMutableBufferPointer { dst in
                for i in 0..<n {
                    for c in 0..<3 { dst[i * channels + c] = ImageIO.quantize(src[i * 3 + c]) }
                    if let alpha { dst[i * 4 + 3] = ImageIO.quantize(alpha[i]) }
                }
            }
        }
        var png = png_image()
        png.version = UInt32(PNG_IMAGE_VERSION)
        png.width = UInt32(image.width)
        png.height = UInt32(image.height)
        png.format = alpha == nil ? Fmt.rgb : Fmt.rgba
        var size: png_alloc_size_t = 0
        // First pass measures, second pass writes.
        guard png_image_write_to_memory(&png, nil, &size, 0, buffer, 0, nil) != 0 else {
            throw failure(png, "cannot encode PNG \(name)")
        }
        var out = [UInt8](repeating: 0, count: Int(size))
        let ok = out.withUnsafeMutableBytes { dst in
            png_image_write_to_memory(&png, dst.baseAddress, &size, 0, buffer, 0, nil)
        }
        guard ok != 0 else { throw failure(png, "cannot encode PNG \(name)") }
        return Array(out.prefix(Int(size)))
    }

    /// Builds an error from the message libpng left in the control structure.
    private static func failure(_ image: png_image, _ context: String) -> ImageIOError {
        var copy = image.message
        let text = withUnsafeBytes(of: &copy) { raw -> String in
            let bytes = raw.prefix(while: { $0 != 0 })
            return String(decoding: bytes, as: UTF8.self)
        }
        return ImageIOError(text.isEmpty ? context : "\(context): \(text)")
    }
}

extension ImageIO {
    /// PNG-encodes an image in memory (8-bit RGB, or RGBA when `alpha` is given), quantising
    /// with `quantize`.
    public static func encodePNG(_ image: Image, alpha: [Float]? = nil) throws -> [UInt8] {
        try PNGCodec.encode(image, alpha: alpha, name: "<memory>")
    }
}
