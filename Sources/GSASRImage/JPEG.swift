import CTurboJPEG
import Foundation

/// JPEG decoding through the TurboJPEG API of libjpeg-turbo.
///
/// The classic libjpeg API reports errors by calling `error_exit`, which must not return and
/// therefore needs `setjmp`/`longjmp` (impossible to use safely from Swift). TurboJPEG wraps
/// that inside C and returns -1 with a message instead. Decoding uses libjpeg's defaults
/// (accurate integer IDCT, fancy upsampling), the same as `djpeg` and most readers.
///
/// Grey and YCbCr/RGB JPEGs decode to RGB (a grey file is flagged `isGrey`); CMYK/YCCK files are
/// rejected, because their conversion to RGB depends on a colour profile. Warnings (for example
/// a truncated scan, which libjpeg would otherwise pad with grey) are treated as errors.
///
/// An Exif orientation (APP1, tag 0x0112) is applied after decoding, so a phone photo comes out
/// upright; see `Orientation`. An ICC profile (APP2 `ICC_PROFILE` segments) is kept as bytes and
/// not applied: pixels are never colour-converted. The Exif block is carried (``ExifMetadata``).
enum JPEGCodec {
    static func decode(_ data: Data, name: String, maxPixels: Int) throws -> DecodedImage {
        guard let handle = tjInitDecompress() else {
            throw ImageIOError("cannot decode JPEG \(name): TurboJPEG initialisation failed")
        }
        defer { tjDestroy(handle) }
        func failure(_ context: String) -> ImageIOError {
            let message = tjGetErrorStr2(handle).map { String(cString: $0) } ?? "unknown error"
            let oneLine = message.split(whereSeparator: \.isNewline).joined(separator: " ")
            return ImageIOError("\(context) \(name): \(oneLine)")
        }
        return try data.withUnsafeBytes { raw -> DecodedImage in
            guard let base = raw.baseAddress?.assumingMemoryBound(to: UInt8.self), raw.count > 0,
                raw.count <= Int(UInt32.max)
            else {
                throw ImageIOError("cannot decode JPEG \(name): empty or oversized file")
            }
            var w: Int32 = 0, h: Int32 = 0, subsamp: Int32 = 0, colorspace: Int32 = 0
            guard tjDecompressHeader3(handle, base, UInt(raw.count), &w, &h, &subsamp, &colorspace) == 0 else {
                throw failure("cannot decode JPEG")
            }
            let width = Int(w), height = Int(h)
            if width <= 0 || height <= 0 {
                throw ImageIOError("cannot decode JPEG \(name): no frame header found (truncated or corrupt file)")
            }
            try ImageIO.checkDimensions(width: width, height: height, name: name, maxPixels: maxPixels)
            if colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue) {
                throw ImageIOError("cannot decode JPEG \(name): CMYK JPEGs are not supported")
            }
            let info = ContainerMetadata.jpegInfo(UnsafeRawBufferPointer(raw))
            var bytes = [UInt8](repeating: 0, count: width * height * 3)
            let rc = bytes.withUnsafeMutableBufferPointer { out in
                tjDecompress2(
                    handle, base, UInt(raw.count), out.baseAddress, w, 0, h,
                    Int32(TJPF_RGB.rawValue), TJFLAG_STOPONWARNING)
            }
            guard rc == 0 else { throw failure("cannot decode JPEG") }
            let upright = Orientation.apply(
                bytes, width: width, height: height, channels: 3, orientation: info.orientation)
            var pixels = [Float](repeating: 0, count: bytes.count)
            upright.pixels.withUnsafeBufferPointer { src in
                for i in 0..<src.count { pixels[i] = Float(src[i]) / 255 }
            }
            var notes = info.iccNote.map { [$0] } ?? []
            let exif = info.exif.flatMap { ExifMetadata.carried($0, notes: &notes) }
            return DecodedImage(
                rgb: Image(width: upright.width, height: upright.height, channels: 3, pixels: pixels),
                alpha: nil, sourceFormat: .jpeg, bitDepth: 8, isGrey: colorspace == Int32(TJCS_GRAY.rawValue),
                iccProfile: info.iccProfile, appliedOrientation: info.orientation, notes: notes, exif: exif)
        }
    }
}
