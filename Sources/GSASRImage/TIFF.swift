import CImageCodec
import CTIFF
import Foundation

/// TIFF decoding through libtiff (C target CImageCodec, `tiff_codec.c`).
///
/// What is read, and how:
/// * **As stored** (8 or 16 bits, the depth kept): grey (min-is-black or min-is-white, inverted)
///   and RGB, with or without one alpha sample, in strips or tiles, contiguous or planar, with
///   any compression libtiff decodes (Deflate, LZW, PackBits, JPEG — YCbCr JPEG converted to RGB
///   by libjpeg —, ZSTD, WebP…). Unassociated alpha is kept; associated (premultiplied) alpha is
///   divided out, as PNG stores it straight.
/// * **Through libtiff's RGBA interface** (8 bits): the other layouts it handles without alpha —
///   palettes, 1-, 2- and 4-bit grey, uncompressed YCbCr, CIE L\*a\*b\*.
/// * The **orientation** tag (274) is applied, all eight values, as for a JPEG's Exif.
/// * The **ICC profile** (tag 34675) is kept as bytes, checked as for PNG and JPEG.
/// * **Exif**: the file's text tags (Make, Model, DateTime…) and its Exif and GPS IFDs become an
///   ``ExifMetadata`` block for the output.
///
/// Refused with a one-line error rather than misread: a **multi-page** file (more than one
/// directory that is not a reduced-resolution thumbnail), **CMYK** (its conversion to RGB
/// depends on a colour profile, as for CMYK JPEGs), floating-point or signed samples, and any
/// count of samples other than grey, grey+alpha, RGB and RGBA (for example 5 samples per pixel).
/// An extra sample that is not marked as alpha is dropped with a note. The size is checked
/// against the pixel ceiling before any pixel buffer exists, and libtiff's own allocations are
/// bounded (1 GiB each).
enum TIFFCodec {
    static func decode(_ data: Data, name: String, maxPixels: Int) throws -> DecodedImage {
        try data.withUnsafeBytes { raw -> DecodedImage in
            guard let base = raw.baseAddress?.assumingMemoryBound(to: UInt8.self), raw.count > 0 else {
                throw ImageIOError("image \(name) is empty")
            }
            var message = [CChar](repeating: 0, count: 256)
            func text() -> String { message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) } }
            var info = cic_tiff_info()
            guard let tiff = cic_tiff_open(base, raw.count, 1 << 30, &info, &message, 256) else {
                throw ImageIOError("cannot decode TIFF \(name): \(text())")
            }
            defer { cic_tiff_close(tiff) }
            if info.pages > 1 {
                throw ImageIOError(
                    "cannot decode TIFF \(name): it is a multi-page TIFF (\(info.pages) pages); upscale one page at a time (tiffsplit writes each page to its own file)"
                )
            }
            let width = Int(info.width), height = Int(info.height)
            try ImageIO.checkDimensions(width: width, height: height, name: name, maxPixels: maxPixels)
            let photometric = Int32(info.photometric)
            if photometric == PHOTOMETRIC_SEPARATED {
                throw ImageIOError(
                    "cannot decode TIFF \(name): CMYK TIFFs are not supported (their conversion to RGB depends on a colour profile)"
                )
            }
            let format = Int32(info.sample_format)
            if format != SAMPLEFORMAT_UINT && format != SAMPLEFORMAT_VOID {
                throw ImageIOError(
                    "cannot decode TIFF \(name): its samples are \(format == SAMPLEFORMAT_IEEEFP ? "floating-point" : "signed or complex"); only unsigned integer samples are read"
                )
            }
            let samples = Int(info.samples), extra = Int(info.extra_count)
            let greyLike = photometric == PHOTOMETRIC_MINISBLACK || photometric == PHOTOMETRIC_MINISWHITE
            let baseSamples = greyLike ? 1 : (photometric == PHOTOMETRIC_RGB ? 3 : samples - extra)
            if samples < 1 || samples > 4 || samples - baseSamples > 1 || samples < baseSamples {
                throw ImageIOError(
                    "cannot decode TIFF \(name): it has \(samples) samples per pixel; grey, grey+alpha, RGB and RGBA are read"
                )
            }
            var notes: [String] = []
            let icc: ContainerMetadata.ICCResult =
                info.icc != nil && info.icc_size > 0
                ? ContainerMetadata.checkedICC(Array(UnsafeBufferPointer(start: info.icc, count: Int(info.icc_size))))
                : .none
            if let note = icc.note { notes.append(note) }
            var exif: ExifMetadata? = nil
            do {
                exif = try ExifMetadata.fromTIFFFile(UnsafeRawBufferPointer(raw))
            } catch let e as ImageIOError {
                notes.append("\(e.message): Exif not carried")
            }
            let orientation = (1...8).contains(Int(info.orientation)) ? Int(info.orientation) : 1
            let n = width * height
            let bits = Int(info.bits)
            if (bits == 8 || bits == 16) && (greyLike || photometric == PHOTOMETRIC_RGB) {
                // As stored.
                let hasAlpha = samples > baseSamples && (info.extra_type == 1 || info.extra_type == 2)
                if samples > baseSamples && !hasAlpha {
                    notes.append("its extra sample is not marked as alpha: dropped")
                }
                let bytesPerSample = bits / 8
                let (total, overflow) = (n * samples).multipliedReportingOverflow(by: bytesPerSample)
                guard !overflow else { throw ImageIOError("cannot decode TIFF \(name): image too large") }
                var stored = [UInt8](repeating: 0, count: total)
                let rc = stored.withUnsafeMutableBufferPointer {
                    cic_tiff_read_samples(tiff, $0.baseAddress, $0.count, &message, 256)
                }
                guard rc == 0 else { throw ImageIOError("cannot decode TIFF \(name): \(text())") }
                let scale: Float = bits == 16 ? 65535 : 255
                var values = [Float](repeating: 0, count: n * samples)
                stored.withUnsafeBytes { bytes in
                    if bits == 16 {
                        let s = bytes.bindMemory(to: UInt16.self)
                        for i in 0..<values.count { values[i] = Float(s[i]) / scale }
                    } else {
                        for i in 0..<values.count { values[i] = Float(bytes[i]) / scale }
                    }
                }
                stored = []
                let upright = Orientation.apply(
                    values, width: width, height: height, channels: samples, orientation: orientation)
                var rgb = [Float](repeating: 0, count: n * 3)
                var alpha: [Float]? = hasAlpha ? [Float](repeating: 0, count: n) : nil
                let invert = photometric == PHOTOMETRIC_MINISWHITE
                let premultiplied = hasAlpha && info.extra_type == 1
                upright.pixels.withUnsafeBufferPointer { v in
                    for i in 0..<n {
                        let a = hasAlpha ? v[i * samples + baseSamples] : 1
                        if hasAlpha { alpha![i] = a }
                        for c in 0..<3 {
                            var x = v[i * samples + (baseSamples == 1 ? 0 : c)]
                            if invert { x = 1 - x }
                            if premultiplied { x = a > 0 ? min(1, x / a) : 0 }
                            rgb[i * 3 + c] = x
                        }
                    }
                }
                return DecodedImage(
                    rgb: Image(width: upright.width, height: upright.height, channels: 3, pixels: rgb), alpha: alpha,
                    sourceFormat: .tiff, bitDepth: bits, isGrey: greyLike, iccProfile: icc.profile,
                    appliedOrientation: orientation, notes: notes, exif: exif)
            }
            // Through libtiff's RGBA interface: layouts without alpha only (it premultiplies).
            if samples > baseSamples {
                throw ImageIOError(
                    "cannot decode TIFF \(name): \(bits)-bit samples with alpha in this layout (photometric \(photometric)) are not supported"
                )
            }
            var packed = [UInt32](repeating: 0, count: n)
            let rc = packed.withUnsafeMutableBufferPointer {
                cic_tiff_read_rgba(tiff, $0.baseAddress, $0.count, &message, 256)
            }
            guard rc == 0 else { throw ImageIOError("cannot decode TIFF \(name): \(text())") }
            let upright = Orientation.apply(packed, width: width, height: height, channels: 1, orientation: orientation)
            var rgb = [Float](repeating: 0, count: n * 3)
            for i in 0..<n {
                let p = upright.pixels[i]
                for c in 0..<3 { rgb[i * 3 + c] = Float((p >> (8 * UInt32(c))) & 0xFF) / 255 }
            }
            return DecodedImage(
                rgb: Image(width: upright.width, height: upright.height, channels: 3, pixels: rgb), alpha: nil,
                sourceFormat: .tiff, bitDepth: 8, isGrey: greyLike, iccProfile: icc.profile,
                appliedOrientation: orientation, notes: notes, exif: exif)
        }
    }
}
