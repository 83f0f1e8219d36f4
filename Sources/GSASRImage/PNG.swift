import CImageCodec
import CPNG
import Foundation

/// PNG decoding through libpng: the simplified `png_image_*` API for headers and 8-bit data, and
/// the low-level API in the C target CImageCodec for 16-bit data. (In-memory 8-bit encoding,
/// `ImageIO.encodePNG`, also uses the simplified API; files are written by `ImageRowWriter`.)
///
/// The simplified API runs every libpng call under its own `setjmp` and reports failures through
/// `png_image.message`, and CImageCodec does its own `setjmp`, so a corrupt file can never
/// `longjmp` through Swift frames.
///
/// Sample mapping:
/// * 8-bit output (all 1/2/4/8-bit files, palettes expanded, grey replicated to RGB): `Float(v) / 255`.
/// * 16-bit files are read with libpng's low-level API (`cic_png_read16` in CImageCodec) as their
///   stored samples, `Float(v) / 65535`, alpha not premultiplied. (The simplified API returns
///   16-bit data only as premultiplied linear light: it would turn an sRGB-tagged 16-bit file,
///   such as our own 16-bit output, into linear values.)
/// * Alpha: from an alpha channel or a `tRNS` chunk, as its own plane.
/// * Grey files (colour types 0 and 4) are flagged `isGrey`; palettes count as colour.
/// * An `iCCP` profile is returned as bytes (`ContainerMetadata.pngICC`), not applied; one that
///   is malformed, over 16 MiB or without a valid ICC header is dropped with a note.
/// * An animated PNG (`acTL`) decodes to its first frame, with a note.
/// * An `eXIf` chunk is carried (``ExifMetadata``); PNG has no orientation tag of its own, and
///   readers ignore the Exif one in PNG files, so it is not applied (and is set to 1).
/// * Files that declare a non-sRGB gamma (`gAMA`) are converted to sRGB by libpng; files with
///   no colour-space chunks, the usual case, are passed through unchanged.
enum PNGCodec {
    /// `PNG_FORMAT_*` combinations (the composite macros are not imported into Swift).
    private enum Fmt {
        static let rgb = UInt32(PNG_FORMAT_FLAG_COLOR)
        static let rgba = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)
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
                // Stored samples, through the low-level reader of CImageCodec.
                let channels = (isGrey ? 1 : 3) + (hasAlpha ? 1 : 0)
                var buffer = [UInt16](repeating: 0, count: n * channels)
                var message = [CChar](repeating: 0, count: 256)
                let status = buffer.withUnsafeMutableBufferPointer { out in
                    cic_png_read16(
                        base.assumingMemoryBound(to: UInt8.self), raw.count, UInt32(width), UInt32(height),
                        Int32(channels), out.baseAddress, &message, 256)
                }
                guard status == 0 else {
                    let text = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
                    throw ImageIOError("cannot decode PNG \(name): \(text)")
                }
                for i in 0..<n {
                    for c in 0..<3 { rgb[i * 3 + c] = Float(buffer[i * channels + (isGrey ? 0 : c)]) / 65535 }
                    if hasAlpha { alpha![i] = Float(buffer[i * channels + channels - 1]) / 65535 }
                }
            }
            let icc = ContainerMetadata.pngICC(UnsafeRawBufferPointer(raw))
            var notes = icc.note.map { [$0] } ?? []
            if let frames = ContainerMetadata.apngFrameCount(UnsafeRawBufferPointer(raw)) {
                notes.append("it is an animated PNG (\(frames) frames): only its first frame is upscaled")
            }
            let found = ContainerMetadata.pngExif(UnsafeRawBufferPointer(raw))
            if let note = found.note { notes.append(note) }
            let exif = found.exif.flatMap { ExifMetadata.carried($0, notes: &notes) }
            return DecodedImage(
                rgb: Image(width: width, height: height, channels: 3, pixels: rgb),
                alpha: alpha, sourceFormat: .png, bitDepth: sixteen ? 16 : 8, isGrey: isGrey,
                iccProfile: icc.profile, notes: notes, exif: exif)
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
