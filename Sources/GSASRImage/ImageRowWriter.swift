import CHeif
import CImageCodec
import CWebP
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes an image file band by band, so that a large output never exists in memory as a whole.
///
/// Rows arrive top to bottom as Float samples in the file's layout (see `OutputLayout`); the
/// writer quantises them (`ImageIO.quantize` for 8 bits, `ImageIO.quantize16` for 16, stored
/// big-endian as PNG requires) a few megabytes at a time and hands them to the encoder:
///
/// * PNG streams through libpng's `png_write_row` and JPEG through libjpeg's
///   `jpeg_write_scanlines`, both into a `FILE*` on the temporary file, so their memory does not
///   depend on the image height. libpng and libjpeg report errors by `longjmp`, which must never
///   cross Swift frames, so they are driven through the C target `CImageCodec`, whose entry points
///   each do their own `setjmp` and return an error code and message.
/// * TIFF streams through libtiff's `TIFFWriteScanline` (C target `CImageCodec`), into the
///   temporary file; libtiff must seek, so a TIFF bound for a stream (a pipe, standard output)
///   is written to an anonymous temporary file first and copied out at `finish()`. The Exif and
///   GPS IFDs of an ``ExifMetadata`` are appended after libtiff has closed the file.
/// * WebP and AVIF have no row API in libwebp and libheif: the writer buffers the whole image at 8 bits (width ×
///   height × 3 or 4 bytes) and encodes it in `finish()`. Grey rows (1 or 2 channels) are
///   expanded to RGB(A) with three equal channels, since WebP has no grey mode.
///
/// Where the bytes go is an ``OutputDestination``. A regular file (or a new one) is written to a
/// temporary file in the destination folder (`.<name>.tmp-<pid>-<random>`) which `finish()`
/// flushes, fsyncs and renames over it. If `finish()` is not reached (an error, an early exit),
/// the temporary file is removed, at the latest when the writer is released: no partial file
/// ever appears there, and an existing file stays untouched. A FIFO, a character device or
/// standard output is written directly (streamed; the node is never replaced). After any error
/// the writer is spent; later calls throw.
public final class ImageRowWriter {
    /// The path asked for (standard output: `/dev/stdout`).
    public let url: URL
    /// Where the bytes go (symlinks followed).
    public let destination: OutputDestination
    public let width: Int
    public let height: Int
    /// 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA.
    public let channels: Int
    public let options: ImageWriteOptions
    /// Rows received so far.
    public private(set) var rowsWritten = 0

    private enum Encoder {
        case none
        case png(OpaquePointer)
        case jpeg(OpaquePointer)
        /// The whole image, 8-bit RGB or RGBA.
        case buffered([UInt8])
        case tiff(OpaquePointer)
    }

    private enum State { case open, finished, failed }

    private var encoder = Encoder.none
    private var state = State.failed
    private var file: UnsafeMutablePointer<FILE>?
    /// For a TIFF bound for a stream: the seekable file libtiff writes, copied out at the end.
    private var tiffSpool: UnsafeMutablePointer<FILE>?
    private var tempPath: String?
    private var scratch: [UInt8] = []
    /// Filled by CImageCodec on failure. Its size is passed as a constant, not `message.count`,
    /// which would read the array while `&message` has it borrowed for writing.
    private var message = [CChar](repeating: 0, count: messageSize)
    private static let messageSize = 256
    private let bytesPerSample: Int
    /// Rows quantised per call into the encoder (about 4 MiB of bytes).
    private let rowsPerChunk: Int

    /// Validates the options, creates the temporary file and writes the header (and profile).
    /// `url` is resolved as an ``OutputDestination`` (a symlink followed, a FIFO or character
    /// device streamed).
    public convenience init(url: URL, width: Int, height: Int, channels: Int, options: ImageWriteOptions) throws {
        try self.init(
            destination: try OutputDestination.resolve(url.path), width: width, height: height, channels: channels,
            options: options)
    }

    /// Validates the options, opens the destination (a temporary file for a regular file) and
    /// writes the header (and profile).
    public init(
        destination: OutputDestination, width: Int, height: Int, channels: Int, options: ImageWriteOptions
    ) throws {
        self.destination = destination
        switch destination {
        case .file(let p), .stream(let p): url = URL(fileURLWithPath: p)
        case .standardOutput: url = URL(fileURLWithPath: "/dev/stdout")
        }
        self.width = width
        self.height = height
        self.channels = channels
        self.options = options
        bytesPerSample = options.depth == 16 ? 2 : 1
        let rowBytes = max(1, width) * max(1, channels) * bytesPerSample
        rowsPerChunk = max(1, min(max(1, height), (4 << 20) / rowBytes))
        let name = destination == .standardOutput ? "standard output" : url.lastPathComponent
        try options.validate(channels: channels)
        guard width > 0, height > 0 else { throw ImageIOError("cannot write \(name): empty size \(width)x\(height)") }
        let side = options.format.maxSide
        guard width <= side, height <= side else {
            throw ImageIOError(
                "cannot write \(name): \(width)x\(height) is larger than \(options.format.displayName) allows (\(side) pixels a side)"
            )
        }
        let (bytes, overflow) = (width * channels * bytesPerSample).multipliedReportingOverflow(by: height)
        guard !overflow, bytes < 1 << 46 else { throw ImageIOError("cannot write \(name): image too large") }
        do {
            try openOutput()
            try startEncoder()
            state = .open
        } catch {
            abandon()
            throw error
        }
    }

    deinit {
        if state != .finished { abandon() }
    }

    /// Quantises and encodes the next `rowCount` rows. `rows` holds `rowCount·width·channels`
    /// samples (unclamped; NaN becomes 0).
    package func write(rows: UnsafeBufferPointer<Float>, rowCount: Int) throws {
        guard state == .open else { throw spent() }
        guard rowCount >= 0, rowCount <= height - rowsWritten else {
            abandon()
            throw ImageIOError(
                "cannot write \(destination.displayName): \(rowCount) more rows after \(rowsWritten) exceed the height \(height)")
        }
        let perRow = width * channels
        guard rows.count == rowCount * perRow else {
            abandon()
            throw ImageIOError(
                "cannot write \(destination.displayName): \(rows.count) samples given for \(rowCount) rows of \(perRow)")
        }
        do {
            var done = 0
            while done < rowCount {
                let n = min(rowsPerChunk, rowCount - done)
                let band = UnsafeBufferPointer(rebasing: rows[(done * perRow)..<((done + n) * perRow)])
                try encode(band, rowCount: n)
                done += n
                rowsWritten += n
            }
        } catch {
            abandon()
            throw error
        }
    }

    /// Checks that every row arrived, completes the file, flushes and fsyncs it, and renames it
    /// over `url` (then fsyncs the folder).
    public func finish() throws {
        guard state == .open else { throw spent() }
        do {
            guard rowsWritten == height else {
                throw ImageIOError("cannot write \(destination.displayName): only \(rowsWritten) of \(height) rows were written")
            }
            switch encoder {
            case .png(let png): try check(cic_png_finish(png, &message, Self.messageSize))
            case .jpeg(let jpeg): try check(cic_jpeg_finish(jpeg, &message, Self.messageSize))
            case .buffered(let pixels):
                try writeAll(options.format == .avif ? try encodeAVIF(pixels) : try encodeWebP(pixels))
            case .tiff(let tiff):
                encoder = .none
                let status = cic_tiff_finish(tiff, &message, Self.messageSize)
                cic_tiff_destroy(tiff)
                try check(status)
                try finishTIFF()
            case .none: break
            }
            releaseEncoder()
            guard let file else { throw spent() }
            self.file = nil
            // A pipe or device cannot be fsynced (EINVAL): flush only.
            let flushed =
                fflush(file) == 0 && ferror(file) == 0 && (destination.isStream || fsync(fileno(file)) == 0)
            let flushError = errno
            let closed = fclose(file) == 0
            guard flushed, closed else { throw systemError(flushed ? errno : flushError) }
            if let tempPath, case .file(let path) = destination {
                guard rename(tempPath, path) == 0 else { throw systemError(errno) }
                self.tempPath = nil
            }
            state = .finished
        } catch {
            abandon()
            throw error
        }
        guard case .file(let path) = destination else { return }
        // The rename is durable once the folder is synced; failing that is not an error of the file.
        let dir = open(URL(fileURLWithPath: path).deletingLastPathComponent().path, O_RDONLY)
        if dir >= 0 {
            _ = fsync(dir)
            close(dir)
        }
    }

    // MARK: - Internals

    private func openOutput() throws {
        let fd: Int32
        switch destination {
        case .file(let path):
            let target = URL(fileURLWithPath: path)
            let temp = target.deletingLastPathComponent().appendingPathComponent(
                ".\(target.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))")
            fd = open(temp.path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)  // TIFF reads back its directory
            guard fd >= 0 else {
                let e = errno
                throw ImageIOError(
                    "cannot write \(path): cannot create a temporary file in its folder \(target.deletingLastPathComponent().path) (\(String(cString: strerror(e))))"
                )
            }
            tempPath = temp.path
        case .stream(let path):
            fd = open(path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { throw systemError(errno) }
        case .standardOutput:
            fd = dup(STDOUT_FILENO)
            guard fd >= 0 else { throw systemError(errno) }
        }
        guard let f = fdopen(fd, "wb") else {
            let e = errno
            close(fd)
            throw systemError(e)
        }
        file = f
    }

    private func startEncoder() throws {
        switch options.format {
        case .png:
            let chunk = try options.icc.map(ContainerMetadata.pngICCPChunkData)
            let exif = options.exif?.tiff
            let png = chunk.withOptionalBuffer { data, size in
                exif.withOptionalBuffer { exifData, exifSize in
                    cic_png_create(
                        file, UInt32(width), UInt32(height), Int32(channels), Int32(options.depth), data, size,
                        chunk == nil ? 1 : 0, exifData, exifSize, &message, Self.messageSize)
                }
            }
            guard let png else { throw failure() }
            encoder = .png(png)
        case .jpeg:
            let subsample: Int32 = (options.effectiveQuality ?? 95) >= 90 ? 0 : 1
            guard
                let jpeg = cic_jpeg_create(
                    file, UInt32(width), UInt32(height), Int32(channels), Int32(options.effectiveQuality ?? 95),
                    subsample, &message, Self.messageSize)
            else { throw failure() }
            encoder = .jpeg(jpeg)
            if let exif = options.exif {
                let segment = ContainerMetadata.exifSignature + exif.tiff
                try check(cic_jpeg_write_marker(jpeg, 0xE1, segment, segment.count, &message, Self.messageSize))
            }
            for segment in try ContainerMetadata.jpegICCSegments(options.icc ?? []) {
                try check(cic_jpeg_write_marker(jpeg, 0xE2, segment, segment.count, &message, Self.messageSize))
            }
        case .webp, .avif:
            encoder = .buffered([UInt8](repeating: 0, count: width * height * (channels % 2 == 0 ? 4 : 3)))
        case .tiff:
            try startTIFF()
        }
    }

    /// Quantises one chunk of rows and hands it to the encoder.
    private func encode(_ rows: UnsafeBufferPointer<Float>, rowCount: Int) throws {
        switch encoder {
        case .png, .jpeg, .tiff:
            let rowBytes = width * channels * bytesPerSample
            let bigEndian16 = options.format != .tiff  // PNG stores 16-bit samples big-endian; libtiff takes them native
            if scratch.count < rowCount * rowBytes { scratch = [UInt8](repeating: 0, count: rowCount * rowBytes) }
            scratch.withUnsafeMutableBufferPointer { out in
                if bytesPerSample == 1 {
                    for i in 0..<rows.count { out[i] = ImageIO.quantize(rows[i]) }
                } else {
                    for i in 0..<rows.count {
                        let v = ImageIO.quantize16(rows[i])
                        let stored = bigEndian16 ? v.bigEndian : v  // memory order: big-endian or native
                        withUnsafeBytes(of: stored) { bytes in
                            out[2 * i] = bytes[0]
                            out[2 * i + 1] = bytes[1]
                        }
                    }
                }
            }
            if case .png(let png) = encoder {
                try check(cic_png_write_rows(png, scratch, rowBytes, UInt32(rowCount), &message, Self.messageSize))
            } else if case .jpeg(let jpeg) = encoder {
                try check(cic_jpeg_write_rows(jpeg, scratch, rowBytes, UInt32(rowCount), &message, Self.messageSize))
            } else if case .tiff(let tiff) = encoder {
                try check(cic_tiff_write_rows(tiff, scratch, rowBytes, UInt32(rowCount), &message, Self.messageSize))
            }
        case .buffered(var pixels):
            encoder = .none  // keep the buffer uniquely referenced while it is filled
            let outChannels = channels % 2 == 0 ? 4 : 3
            let start = rowsWritten * width * outChannels
            pixels.withUnsafeMutableBufferPointer { out in
                for p in 0..<(rowCount * width) {
                    let src = p * channels, dst = start + p * outChannels
                    if channels <= 2 {
                        let g = ImageIO.quantize(rows[src])
                        out[dst] = g
                        out[dst + 1] = g
                        out[dst + 2] = g
                    } else {
                        for c in 0..<3 { out[dst + c] = ImageIO.quantize(rows[src + c]) }
                    }
                    if outChannels == 4 { out[dst + 3] = ImageIO.quantize(rows[src + channels - 1]) }
                }
            }
            encoder = .buffered(pixels)
        case .none:
            throw spent()
        }
    }

    /// AVIF of the buffered image through libheif's AV1 encoder (libaom): 4:4:4 chroma at the
    /// given quality, speed 6 (libheif's default), as many encoder threads as ours; the ICC
    /// profile as a `colr` box and the Exif as an Exif item (libheif adds the 4-byte offset).
    private func encodeAVIF(_ pixels: [UInt8]) throws -> [UInt8] {
        let name = destination.displayName
        func check(_ e: heif_error, _ what: String) throws {
            guard e.code == heif_error_Ok else {
                let text = e.message.map { String(cString: $0) } ?? "error \(e.code.rawValue)"
                throw ImageIOError("cannot write \(name): \(what): \(text)")
            }
        }
        guard heif_have_encoder_for_format(heif_compression_AV1) != 0 else {
            throw ImageIOError("cannot write \(name): this libheif has no AV1 encoder (Debian's libheif1 has libaom)")
        }
        guard let ctx = heif_context_alloc() else { throw ImageIOError("cannot write \(name): out of memory") }
        defer { heif_context_free(ctx) }
        var encoderOut: OpaquePointer? = nil
        try check(heif_context_get_encoder_for_format(ctx, heif_compression_AV1, &encoderOut), "no AV1 encoder")
        guard let encoder = encoderOut else { throw ImageIOError("cannot write \(name): no AV1 encoder") }
        defer { heif_encoder_release(encoder) }
        try check(heif_encoder_set_lossy_quality(encoder, Int32(options.effectiveQuality ?? 85)), "quality")
        try check(heif_encoder_set_parameter(encoder, "chroma", "444"), "chroma")
        let threads = max(1, min(16, ProcessInfo.processInfo.activeProcessorCount))
        _ = heif_encoder_set_parameter(encoder, "threads", "\(threads)")  // older libaom builds lack it
        let alpha = channels % 2 == 0
        var imageOut: OpaquePointer? = nil
        try check(
            heif_image_create(
                Int32(width), Int32(height), heif_colorspace_RGB,
                alpha ? heif_chroma_interleaved_RGBA : heif_chroma_interleaved_RGB, &imageOut), "image")
        guard let image = imageOut else { throw ImageIOError("cannot write \(name): out of memory") }
        defer { heif_image_release(image) }
        try check(heif_image_add_plane(image, heif_channel_interleaved, Int32(width), Int32(height), 8), "plane")
        var stride: Int32 = 0
        guard let plane = heif_image_get_plane(image, heif_channel_interleaved, &stride) else {
            throw ImageIOError("cannot write \(name): no image plane")
        }
        let rowBytes = width * (alpha ? 4 : 3)
        pixels.withUnsafeBufferPointer { src in
            for y in 0..<height {
                (plane + y * Int(stride)).update(from: src.baseAddress! + y * rowBytes, count: rowBytes)
            }
        }
        if let icc = options.icc {
            try check(heif_image_set_raw_color_profile(image, "prof", icc, icc.count), "ICC profile")
        }
        var handleOut: OpaquePointer? = nil
        try check(heif_context_encode_image(ctx, image, encoder, nil, &handleOut), "AV1 encoding")
        guard let handle = handleOut else { throw ImageIOError("cannot write \(name): AV1 encoding failed") }
        defer { heif_image_handle_release(handle) }
        if let exif = options.exif {
            try check(heif_context_add_exif_metadata(ctx, handle, exif.tiff, Int32(exif.tiff.count)), "Exif")
        }
        final class Sink { var bytes: [UInt8] = [] }
        let sink = Sink()
        var writer = heif_writer(
            writer_api_version: 1,
            write: { _, data, size, user in
                let sink = Unmanaged<Sink>.fromOpaque(user!).takeUnretainedValue()
                if let data, size > 0 {
                    sink.bytes.append(contentsOf: UnsafeRawBufferPointer(start: data, count: size))
                }
                return heif_error(code: heif_error_Ok, subcode: heif_suberror_Unspecified, message: nil)
            })
        try check(
            withExtendedLifetime(sink) { heif_context_write(ctx, &writer, Unmanaged.passUnretained(sink).toOpaque()) },
            "writing the container")
        return sink.bytes
    }

    /// Lossy WebP of the buffered image, with the ICC profile in an `ICCP` chunk (libwebpmux).
    private func encodeWebP(_ pixels: [UInt8]) throws -> [UInt8] {
        let alpha = channels % 2 == 0
        let quality = Float(options.effectiveQuality ?? 90)
        var output: UnsafeMutablePointer<UInt8>? = nil
        let size =
            alpha
            ? WebPEncodeRGBA(pixels, Int32(width), Int32(height), Int32(width * 4), quality, &output)
            : WebPEncodeRGB(pixels, Int32(width), Int32(height), Int32(width * 3), quality, &output)
        defer { WebPFree(output) }
        guard size > 0, let output else { throw ImageIOError("cannot write \(destination.displayName): the WebP encoder failed") }
        if options.icc == nil && options.exif == nil { return Array(UnsafeBufferPointer(start: output, count: size)) }
        guard let mux = WebPMuxNew() else { throw ImageIOError("cannot write \(destination.displayName): WebPMuxNew failed") }
        defer { WebPMuxDelete(mux) }
        var image = WebPData(bytes: output, size: size)
        guard WebPMuxSetImage(mux, &image, 1) == WEBP_MUX_OK else {
            throw ImageIOError("cannot write \(destination.displayName): cannot add the image to the WebP container")
        }
        for (fourcc, bytes, what) in [("ICCP", options.icc, "ICC profile"), ("EXIF", options.exif?.tiff, "Exif")] {
            guard let bytes else { continue }
            let status = bytes.withUnsafeBufferPointer { buf -> WebPMuxError in
                var chunk = WebPData(bytes: buf.baseAddress, size: buf.count)
                return WebPMuxSetChunk(mux, fourcc, &chunk, 1)
            }
            guard status == WEBP_MUX_OK else {
                throw ImageIOError("cannot write \(destination.displayName): cannot add the \(what) to the WebP container")
            }
        }
        var assembled = WebPData()
        WebPDataInit(&assembled)
        defer { WebPDataClear(&assembled) }
        guard WebPMuxAssemble(mux, &assembled) == WEBP_MUX_OK, let bytes = assembled.bytes else {
            throw ImageIOError("cannot write \(destination.displayName): cannot assemble the WebP container")
        }
        return Array(UnsafeBufferPointer(start: bytes, count: assembled.size))
    }

    private func writeAll(_ bytes: [UInt8]) throws {
        guard let file else { throw spent() }
        let n = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        guard n == bytes.count else { throw systemError(errno) }
    }

    /// Opens libtiff on a duplicate of the output's descriptor (or of a spool file for a stream)
    /// with the header, the profile, the Exif's text tags and its IFD placeholders.
    private func startTIFF() throws {
        guard let file else { throw spent() }
        var target = file
        if destination.isStream {
            guard let spool = tmpfile() else { throw systemError(errno) }
            tiffSpool = spool
            target = spool
        }
        let fd = dup(fileno(target))
        guard fd >= 0 else { throw systemError(errno) }
        let samples = width * height * channels * bytesPerSample
        let bigTIFF = samples > 3584 << 20  // 3.5 GiB: the offsets of a classic TIFF are 32-bit
        let exif = options.exif
        let texts = exif?.textTagsForTIFF() ?? []
        let subIFDs = bigTIFF ? [] : (exif?.subIFDsForTIFF() ?? [])
        var values: [CChar] = []
        for t in texts { values += t.value.utf8CString }  // each NUL-terminated
        let tags = texts.map { UInt32($0.tag) }
        let created = (options.icc ?? []).withUnsafeBufferPointer { icc in
            cic_tiff_create(
                fd, UInt32(width), UInt32(height), Int32(channels), Int32(options.depth),
                (exif.map { !$0.isLittleEndian } ?? false) ? 1 : 0, bigTIFF ? 1 : 0, icc.baseAddress, icc.count,
                tags, values, Int32(tags.count), subIFDs.contains { $0.tag == 0x8769 } ? 1 : 0,
                subIFDs.contains { $0.tag == 0x8825 } ? 1 : 0, &message, Self.messageSize)
        }
        guard let created else {
            close(fd)
            throw failure()
        }
        encoder = .tiff(created)
    }

    /// After libtiff has closed its descriptor: appends the Exif and GPS IFDs, and copies a
    /// spooled TIFF to its stream.
    private func finishTIFF() throws {
        guard let file else { throw spent() }
        let target = tiffSpool ?? file
        if let exif = options.exif, !(width * height * channels * bytesPerSample > 3584 << 20) {
            try exif.appendSubIFDs(toTIFF: fileno(target), name: destination.displayName)
        }
        guard let spool = tiffSpool else { return }
        rewind(spool)
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, spool) }
            if n == 0 { break }
            let written = chunk.withUnsafeBytes { fwrite($0.baseAddress, 1, n, file) }
            guard written == n else { throw systemError(errno) }
        }
        guard ferror(spool) == 0 else { throw systemError(errno) }
        fclose(spool)
        tiffSpool = nil
    }

    /// Frees the encoder, closes and removes the temporary file; idempotent.
    private func abandon() {
        releaseEncoder()
        if let tiffSpool {
            fclose(tiffSpool)
            self.tiffSpool = nil
        }
        if let file {
            fclose(file)
            self.file = nil
        }
        if let tempPath {
            unlink(tempPath)
            self.tempPath = nil
        }
        scratch = []
        if state != .finished { state = .failed }
    }

    private func releaseEncoder() {
        switch encoder {
        case .png(let png): cic_png_destroy(png)
        case .jpeg(let jpeg): cic_jpeg_destroy(jpeg)
        case .tiff(let tiff): cic_tiff_destroy(tiff)
        case .buffered, .none: break
        }
        encoder = .none
    }

    private func check(_ status: Int32) throws {
        if status != 0 { throw failure() }
    }

    private func failure() -> ImageIOError {
        let code = errno
        let text = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        let line = text.split(whereSeparator: \.isNewline).joined(separator: " ")
        // libpng says only "Write Error" when fwrite fails: name the system's reason (a full
        // disk, a closed pipe) when the stream has an error.
        if let file, ferror(file) != 0, code != 0 {
            return ImageIOError(
                "cannot write \(destination.displayName): \(String(cString: strerror(code))) (\(line.isEmpty ? "encoder" : line))")
        }
        return ImageIOError("cannot write \(destination.displayName): \(line.isEmpty ? "encoder error" : line)")
    }

    private func systemError(_ code: Int32) -> ImageIOError {
        ImageIOError("cannot write \(destination.displayName): \(String(cString: strerror(code)))")
    }

    private func spent() -> ImageIOError {
        ImageIOError(
            "cannot write \(destination.displayName): the writer is \(state == .finished ? "already finished" : "spent after an error")"
        )
    }
}

extension Optional where Wrapped == [UInt8] {
    /// Calls `body` with the array's bytes, or with (nil, 0).
    fileprivate func withOptionalBuffer<R>(_ body: (UnsafePointer<UInt8>?, Int) -> R) -> R {
        switch self {
        case .some(let bytes): bytes.withUnsafeBufferPointer { body($0.baseAddress, $0.count) }
        case .none: body(nil, 0)
        }
    }
}
