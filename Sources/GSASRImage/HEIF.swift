import CHeif
import Foundation

/// HEIC and AVIF decoding through libheif (HEVC by libde265, AV1 by dav1d or libaom, as Debian
/// builds it).
///
/// * The **primary image** is decoded (a phone's HEIC may hold others: depth maps, burst
///   frames; a note says how many top-level images there were).
/// * **Orientation**: the container's transformations (`irot` rotation, `imir` mirroring,
///   `clap` crop) are applied by libheif, as the HEIF standard requires. The Exif orientation
///   inside a HEIC is informative only (ISO/IEC 23008-12 §6.5.12 makes `irot`/`imir` normative):
///   it is not applied again, and it is set to 1 in the carried Exif like every other input's.
/// * **Depth**: 8-bit images decode to 8 bits; 10- and 12-bit images keep their precision (values
///   divided by 2^bits − 1) and count as 16-bit sources, so a PNG or TIFF output is 16-bit.
/// * **Alpha** is kept (straight, as libheif returns it).
/// * **ICC**: a raw profile (`prof`, `rICC`) is kept as bytes, checked as for PNG. An `nclx`
///   description (colour primaries and transfer as numbers, no ICC) is not converted: when it
///   names anything other than sRGB/BT.709 a note says so.
/// * **Exif**: the image's Exif item (after its 4-byte offset to the TIFF header), checked.
///
/// The size comes from the header and is checked against the pixel ceiling before decoding;
/// libheif is also given the side limit. Errors are libheif's messages, on one line.
enum HEIFCodec {
    static func decode(_ data: Data, name: String, format: ImageFormat, maxPixels: Int) throws -> DecodedImage {
        let kind = format == .avif ? "AVIF" : "HEIC"
        func fail(_ e: heif_error) -> ImageIOError {
            let text = e.message.map { String(cString: $0) } ?? "error \(e.code.rawValue)"
            return ImageIOError("cannot decode \(kind) \(name): \(text.split(whereSeparator: \.isNewline).joined(separator: " "))")
        }
        guard let ctx = heif_context_alloc() else { throw ImageIOError("cannot decode \(kind) \(name): out of memory") }
        defer { heif_context_free(ctx) }
        heif_context_set_maximum_image_size_limit(ctx, Int32(clamping: min(maxPixels, 1 << 20)))
        return try data.withUnsafeBytes { raw -> DecodedImage in
            var err = heif_context_read_from_memory_without_copy(ctx, raw.baseAddress, raw.count, nil)
            guard err.code == heif_error_Ok else { throw fail(err) }
            var notes: [String] = []
            let images = heif_context_get_number_of_top_level_images(ctx)
            if images > 1 { notes.append("it holds \(images) images: the primary one is upscaled") }
            var handleOut: OpaquePointer? = nil
            err = heif_context_get_primary_image_handle(ctx, &handleOut)
            guard err.code == heif_error_Ok, let handle = handleOut else { throw fail(err) }
            defer { heif_image_handle_release(handle) }
            let width = Int(heif_image_handle_get_width(handle)), height = Int(heif_image_handle_get_height(handle))
            try ImageIO.checkDimensions(width: width, height: height, name: name, maxPixels: maxPixels)
            // The coded size (before a crop) too, and no canvas larger than these sides plus a
            // coding block (HEVC codes whole 64-pixel units, AV1 up to 128): an overlay ('iovl')
            // or grid declares its canvas separately from its size, and a forged one would
            // otherwise make libheif allocate and fill gigabytes (found by fuzzing). Memory is
            // then bounded by the longer side squared.
            let codedWidth = Int(heif_image_handle_get_ispe_width(handle))
            let codedHeight = Int(heif_image_handle_get_ispe_height(handle))
            if codedWidth > 0 && codedHeight > 0 {
                try ImageIO.checkDimensions(width: codedWidth, height: codedHeight, name: name, maxPixels: maxPixels)
            }
            heif_context_set_maximum_image_size_limit(
                ctx, Int32(clamping: max(width, height, codedWidth, codedHeight) + 129))
            let hasAlpha = heif_image_handle_has_alpha_channel(handle) != 0
            let lumaBits = Int(heif_image_handle_get_luma_bits_per_pixel(handle))
            let high = lumaBits > 8
            let chroma: heif_chroma =
                high
                ? (hasAlpha ? heif_chroma_interleaved_RRGGBBAA_LE : heif_chroma_interleaved_RRGGBB_LE)
                : (hasAlpha ? heif_chroma_interleaved_RGBA : heif_chroma_interleaved_RGB)
            guard let options = heif_decoding_options_alloc() else {
                throw ImageIOError("cannot decode \(kind) \(name): out of memory")
            }
            defer { heif_decoding_options_free(options) }
            options.pointee.ignore_transformations = 0
            var imageOut: OpaquePointer? = nil
            err = heif_decode_image(handle, &imageOut, heif_colorspace_RGB, chroma, options)
            guard err.code == heif_error_Ok, let image = imageOut else { throw fail(err) }
            defer { heif_image_release(image) }
            let w = Int(heif_image_get_width(image, heif_channel_interleaved))
            let h = Int(heif_image_get_height(image, heif_channel_interleaved))
            var stride: Int32 = 0
            guard w > 0, h > 0, w * h <= maxPixels,
                let plane = heif_image_get_plane_readonly(image, heif_channel_interleaved, &stride)
            else { throw ImageIOError("cannot decode \(kind) \(name): the decoded image has no pixels") }
            let channels = hasAlpha ? 4 : 3
            let bytesPerSample = high ? 2 : 1
            guard Int(stride) >= w * channels * bytesPerSample else {
                throw ImageIOError("cannot decode \(kind) \(name): the decoded rows are shorter than the image")
            }
            let bits = high ? Int(heif_image_get_bits_per_pixel_range(image, heif_channel_interleaved)) : 8
            let scale = Float((1 << max(1, min(16, bits))) - 1)
            let n = w * h
            var rgb = [Float](repeating: 0, count: n * 3)
            var alpha: [Float]? = hasAlpha ? [Float](repeating: 0, count: n) : nil
            for y in 0..<h {
                let row = plane + y * Int(stride)
                for x in 0..<w {
                    for c in 0..<channels {
                        let v: Float
                        if high {
                            let at = (x * channels + c) * 2
                            v = Float(UInt16(row[at]) | UInt16(row[at + 1]) << 8) / scale
                        } else {
                            v = Float(row[x * channels + c]) / scale
                        }
                        if c < 3 { rgb[(y * w + x) * 3 + c] = min(1, v) } else { alpha![y * w + x] = min(1, v) }
                    }
                }
            }
            // Colour profile.
            var icc: [UInt8]? = nil
            let profileType = heif_image_handle_get_color_profile_type(handle)
            if profileType == heif_color_profile_type_prof || profileType == heif_color_profile_type_rICC {
                let size = heif_image_handle_get_raw_color_profile_size(handle)
                if size > 0 && size <= ContainerMetadata.maxICCBytes {
                    var bytes = [UInt8](repeating: 0, count: size)
                    let e = heif_image_handle_get_raw_color_profile(handle, &bytes)
                    if e.code == heif_error_Ok {
                        let checked = ContainerMetadata.checkedICC(bytes)
                        icc = checked.profile
                        if let note = checked.note { notes.append(note) }
                    }
                }
            } else if profileType == heif_color_profile_type_nclx {
                var nclx: UnsafeMutablePointer<heif_color_profile_nclx>? = nil
                if heif_image_handle_get_nclx_color_profile(handle, &nclx).code == heif_error_Ok, let p = nclx {
                    let primaries = p.pointee.color_primaries.rawValue
                    if primaries != 1 && primaries != 2 {  // BT.709 (sRGB's) or unspecified
                        notes.append(
                            "its colour is described by nclx (colour primaries \(primaries)), not an ICC profile: the output carries no profile"
                        )
                    }
                    heif_nclx_color_profile_free(p)
                }
            }
            // Exif.
            var exif: ExifMetadata? = nil
            let blocks = heif_image_handle_get_number_of_metadata_blocks(handle, "Exif")
            if blocks > 0 {
                var id: heif_item_id = 0
                if heif_image_handle_get_list_of_metadata_block_IDs(handle, "Exif", &id, 1) == 1 {
                    let size = heif_image_handle_get_metadata_size(handle, id)
                    if size >= 4 && size <= ExifMetadata.maxBytes + 64 {
                        var bytes = [UInt8](repeating: 0, count: size)
                        if heif_image_handle_get_metadata(handle, id, &bytes).code == heif_error_Ok {
                            // exif_tiff_header_offset (ISO/IEC 23008-12 Annex A.2.1), then the block
                            let skip = Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
                            if skip <= size - 4 {
                                exif = ExifMetadata.carried(Array(bytes[(4 + skip)...]), notes: &notes)
                            } else {
                                notes.append("its Exif item is malformed: not carried")
                            }
                        }
                    }
                }
            }
            return DecodedImage(
                rgb: Image(width: w, height: h, channels: 3, pixels: rgb), alpha: alpha, sourceFormat: format,
                bitDepth: high ? 16 : 8, isGrey: false, iccProfile: icc, appliedOrientation: 1, notes: notes,
                exif: exif)
        }
    }
}
