import CWebP
import Foundation
import GSASRImage
import Testing

@Suite struct RowWriterTests {
    /// Writes `samples` (the file layout) through a writer fed in bands of the given sizes.
    func write(
        _ samples: [Float], width: Int, height: Int, channels: Int, options: ImageWriteOptions, bands: [Int]? = nil,
        to url: URL
    ) throws {
        let writer = try ImageRowWriter(url: url, width: width, height: height, channels: channels, options: options)
        var row = 0
        for n in bands ?? [height] {
            let slice = samples[(row * width * channels)..<((row + n) * width * channels)]
            try slice.withUnsafeBufferPointer { try writer.write(rows: $0, rowCount: n) }
            row += n
        }
        try writer.finish()
    }

    /// 16-bit PNG: what the decoder reads back is exactly the quantised float input (clamp,
    /// ×65535 in Float32, round half to even), for RGB and grey; IHDR says 16 bits.
    @Test(arguments: [1, 3])
    func sixteenBitValuesAreTheQuantisedFloats(channels: Int) throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (w, h) = (13, 9)
        var samples = testPattern(width: w, height: h, channels: channels)
        samples[0] = .nan
        samples[1] = Float(1001.5) / 65535  // near a tie
        samples[2] = -3
        samples[3] = 7
        let url = dir.appendingPathComponent("sixteen.png")
        try write(samples, width: w, height: h, channels: channels, options: .init(format: .png, depth: 16), to: url)
        let file = try bytes(url)
        #expect(Containers.pngDepthAndColourType(file) == (16, channels == 1 ? 0 : 2))
        let back = try ImageIO.load(url)
        #expect(back.bitDepth == 16 && back.isGrey == (channels == 1))
        // The decoder gives v / 65535 (Float32); quantize16 maps that back to v for every v
        // (checked in quantize16RoundsHalfToEven), so this compares the stored integers.
        var mismatches = 0
        for i in 0..<(w * h) {
            for c in 0..<channels {
                let expected = ImageIO.quantize16(samples[i * channels + c])
                if ImageIO.quantize16(back.rgb.pixels[i * 3 + c]) != expected { mismatches += 1 }
            }
        }
        #expect(mismatches == 0)
        // Real 16-bit precision, not an 8-bit value scaled up.
        let fine = (0..<(w * h)).filter { ImageIO.quantize16(samples[$0 * channels]) % 257 != 0 }.count
        #expect(fine > w * h / 2)
    }

    @Test func quantize16RoundsHalfToEven() {
        var ties = 0
        for k in stride(from: 0, to: 65535, by: 97) {
            let target = Float(k) + 0.5
            var v = (target / 65535).nextDown.nextDown
            for _ in 0..<5 {
                if v * 65535 == target {
                    ties += 1
                    #expect(ImageIO.quantize16(v) == UInt16(k % 2 == 0 ? k : k + 1), "k=\(k)")
                }
                v = v.nextUp
            }
        }
        #expect(ties > 50)
        #expect(ImageIO.quantize16(0) == 0 && ImageIO.quantize16(1) == 65535)
        #expect(ImageIO.quantize16(-1) == 0 && ImageIO.quantize16(2) == 65535 && ImageIO.quantize16(.nan) == 0)
        let wrong = (0...65535).filter { ImageIO.quantize16(Float($0) / 65535) != UInt16($0) }
        #expect(wrong.isEmpty)
    }

    /// Grey and grey+alpha rows give PNG colour types 0 and 4, and a one-component JPEG.
    @Test func greyLayouts() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (w, h) = (10, 8)
        let g = dir.appendingPathComponent("g.png"), ga = dir.appendingPathComponent("ga.png")
        let gj = dir.appendingPathComponent("g.jpg")
        try write(
            testPattern(width: w, height: h, channels: 1), width: w, height: h, channels: 1, options: .init(), to: g)
        try write(
            testPattern(width: w, height: h, channels: 2), width: w, height: h, channels: 2, options: .init(), to: ga)
        try write(
            testPattern(width: w, height: h, channels: 1), width: w, height: h, channels: 1,
            options: .init(format: .jpeg), to: gj)
        #expect(Containers.pngDepthAndColourType(try bytes(g)) == (8, 0))
        #expect(Containers.pngDepthAndColourType(try bytes(ga)) == (8, 4))
        #expect(Containers.jpegComponents(try bytes(gj)) == 1)
        let decoded = try ImageIO.load(ga)
        #expect(decoded.isGrey && decoded.alpha != nil)
        #expect(try ImageIO.load(gj).isGrey)
        #expect(try !ImageIO.load(fixture("astronaut_48x48_lr.png")).isGrey)
    }

    /// The mean of the rendered channels is the grey value; alpha goes last.
    @Test func outputRowsLayout() {
        let rgb: [Float] = [0.1, 0.2, 0.6, 1, 1, 1]
        #expect(OutputLayout.outputRows(rgb: rgb, alpha: nil, rowCount: 1, width: 2, grey: false) == rgb)
        #expect(
            OutputLayout.outputRows(rgb: rgb, alpha: [0.5, 0.25], rowCount: 1, width: 2, grey: true)
                == [(Float(0.1) + 0.2 + 0.6) / 3, 0.5, 1, 0.25])
        #expect(
            OutputLayout.outputRows(rgb: rgb, alpha: [0.5, 0.25], rowCount: 2, width: 1, grey: false)
                == [0.1, 0.2, 0.6, 0.5, 1, 1, 1, 0.25])
        #expect(OutputLayout.channels(grey: true, alpha: true) == 2)
    }

    /// Fed in uneven bands (including empty ones and more rows than one internal chunk), every
    /// format produces the same bytes as one call with all rows.
    @Test(arguments: [
        (OutputFormat.png, 8, 3), (.png, 16, 4), (.png, 16, 2), (.jpeg, 8, 3), (.jpeg, 8, 1), (.webp, 8, 4),
        (.webp, 8, 1), (.tiff, 8, 3), (.tiff, 16, 4), (.tiff, 16, 1),
    ])
    func bandsGiveTheSameFile(format: OutputFormat, depth: Int, channels: Int) throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (w, h) = (700, 1600)  // 16-bit RGBA: 5.6 kB a row, so the writer splits large bands itself
        let samples = testPattern(width: w, height: h, channels: channels)
        let options = ImageWriteOptions(format: format, depth: depth, icc: Containers.iccProfile(size: 300))
        let whole = dir.appendingPathComponent("whole.\(format.fileExtension)")
        let banded = dir.appendingPathComponent("banded.\(format.fileExtension)")
        try write(samples, width: w, height: h, channels: channels, options: options, to: whole)
        try write(
            samples, width: w, height: h, channels: channels, options: options,
            bands: [1, 0, 7, 64, 1000, 0, 3, 525], to: banded)
        let a = try bytes(whole), b = try bytes(banded)
        #expect(a.count > 1000)
        #expect(a == b)
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
                == [banded, whole].map(\.lastPathComponent).sorted())
    }

    /// A writer released before `finish()` leaves nothing: no file at the destination, no temporary.
    @Test func droppedWriterLeavesNoFile() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        for format in OutputFormat.allCases {
            let url = dir.appendingPathComponent("dropped.\(format.fileExtension)")
            do {
                let writer = try ImageRowWriter(
                    url: url, width: 20, height: 10, channels: 3, options: .init(format: format))
                let rows = testPattern(width: 20, height: 4, channels: 3)
                try rows.withUnsafeBufferPointer { try writer.write(rows: $0, rowCount: 4) }
                // The temporary file exists while the writer is alive, hidden, in the same folder.
                let during = try FileManager.default.contentsOfDirectory(atPath: dir.path)
                #expect(during.count == 1 && during[0].hasPrefix(".dropped.\(format.fileExtension).tmp-"))
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == [])
        }
    }

    /// Missing rows, too many rows or a wrong sample count: an error, the temporary file is
    /// removed at once, and an existing file at the destination is untouched.
    @Test func incompleteOrWrongWritesFailCleanly() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("keep.png")
        try Data("precious".utf8).write(to: url)
        let rows = testPattern(width: 8, height: 8, channels: 3)
        func attempt(_ body: (ImageRowWriter) throws -> Void) throws {
            let writer = try ImageRowWriter(url: url, width: 8, height: 8, channels: 3, options: .init())
            #expect(throws: ImageIOError.self) { try body(writer) }
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["keep.png"])
            #expect(throws: ImageIOError.self) { try writer.finish() }  // spent
        }
        try attempt { w in
            try rows.prefix(8 * 3 * 5).withUnsafeBufferPointer { try w.write(rows: $0, rowCount: 5) }
            try w.finish()
        }
        try attempt { w in try rows.withUnsafeBufferPointer { try w.write(rows: $0, rowCount: 7) } }
        try attempt { w in
            try rows.withUnsafeBufferPointer { try w.write(rows: $0, rowCount: 8) }
            try rows.prefix(24).withUnsafeBufferPointer { try w.write(rows: $0, rowCount: 1) }
        }
        #expect(try String(contentsOf: url, encoding: .utf8) == "precious")
    }

    /// Options that cannot work are refused before any file is created.
    @Test(arguments: [
        (ImageWriteOptions(format: .png, quality: 90), 3, "quality"),
        (ImageWriteOptions(format: .jpeg, depth: 16), 3, "8-bit"),
        (ImageWriteOptions(format: .webp, depth: 16), 3, "8-bit"),
        (ImageWriteOptions(format: .jpeg), 4, "alpha"),
        (ImageWriteOptions(format: .jpeg), 2, "alpha"),
        (ImageWriteOptions(format: .jpeg, quality: 0), 3, "quality"),
        (ImageWriteOptions(format: .webp, quality: 101), 3, "quality"),
        (ImageWriteOptions(format: .png, depth: 12), 3, "depth"),
        (ImageWriteOptions(format: .png), 5, "channels"),
    ])
    func invalidOptionsAreRefused(options: ImageWriteOptions, channels: Int, mentions: String) throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("x.\(options.format.fileExtension)")
        do {
            _ = try ImageRowWriter(url: url, width: 4, height: 4, channels: channels, options: options)
            Issue.record("accepted \(options) with \(channels) channels")
        } catch let e as ImageIOError {
            #expect(e.message.contains(mentions), "\(e.message)")
            #expect(!e.message.contains("\n"))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == [])
    }

    @Test func sizeBeyondTheFormatIsRefused() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: ImageIOError.self) {
            _ = try ImageRowWriter(
                url: dir.appendingPathComponent("x.webp"), width: 16384, height: 2, channels: 3,
                options: .init(format: .webp))
        }
        #expect(throws: ImageIOError.self) {
            _ = try ImageRowWriter(
                url: dir.appendingPathComponent("missing/x.png"), width: 4, height: 4, channels: 3, options: .init())
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == [])
    }

    /// JPEG and WebP decode close to what was written (both lossy); WebP keeps alpha, and a
    /// higher JPEG quality gives a bigger, closer file.
    @Test func lossyFormatsDecodeCloseToTheInput() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = try ImageIO.load(fixture("astronaut_48x48_lr.png")).rgb
        let (w, h) = (source.width, source.height)
        var alpha = [Float](repeating: 1, count: w * h)
        for i in 0..<(w * h) where (i % w) < w / 2 { alpha[i] = 0.4 }
        func meanError(_ a: [Float], _ b: [Float]) -> Float {
            zip(a, b).map { abs($0 - $1) }.reduce(0, +) / Float(a.count)
        }

        var errors: [Int: Float] = [:], sizes: [Int: Int] = [:]
        for q in [50, 95] {
            let url = dir.appendingPathComponent("q\(q).jpg")
            try ImageIO.write(source, alpha: nil, grey: false, to: url, options: .init(format: .jpeg, quality: q))
            errors[q] = meanError(try ImageIO.load(url).rgb.pixels, source.pixels)
            sizes[q] = try bytes(url).count
        }
        print("JPEG q50 / q95: mean abs error \(errors[50]!) / \(errors[95]!), \(sizes[50]!) / \(sizes[95]!) bytes")
        #expect(errors[95]! < 0.02 && errors[95]! < errors[50]! && sizes[95]! > sizes[50]!)

        let url = dir.appendingPathComponent("a.webp")
        try ImageIO.write(source, alpha: alpha, grey: false, to: url, options: .init(format: .webp, quality: 95))
        let file = try bytes(url)
        var width: Int32 = 0, height: Int32 = 0
        let decoded = try #require(WebPDecodeRGBA(file, file.count, &width, &height))
        defer { WebPFree(decoded) }
        #expect(width == Int32(w) && height == Int32(h))
        var rgb: [Float] = [], a: [Float] = []
        for i in 0..<(w * h) {
            for c in 0..<3 { rgb.append(Float(decoded[i * 4 + c]) / 255) }
            a.append(Float(decoded[i * 4 + 3]) / 255)
        }
        let e = meanError(rgb, source.pixels)
        print("WebP q95: mean abs error \(e)")
        #expect(e < 0.03)
        #expect(meanError(a, alpha) < 0.01)
    }
}

#if os(Linux)
    /// PNG and JPEG stream: writing an 8000 × 25000 grey image (191 MiB at 8 bits, 763 MiB as
    /// floats) in bands of 50 rows from one reused buffer raises the peak resident memory by far
    /// less than the image. Each measurement runs in a child process of its own (an exit test),
    /// so the other tests' memory does not blur it. (WebP buffers the whole image by design.)
    @Suite struct StreamingMemoryTests {
        /// Peak resident set size of this process, in bytes.
        static func peakResident() -> Int {
            var usage = rusage()
            getrusage(RUSAGE_SELF.rawValue, &usage)
            return usage.ru_maxrss * 1024
        }

        /// Runs in the child: writes the tall image and exits 0 when the peak grew by less than
        /// 64 MiB and the header is right, 1 when the memory grew, 2 when the file is wrong.
        static func writeTallImage(_ format: OutputFormat) throws {
            let dir = try makeTempDir()
            defer { try? FileManager.default.removeItem(at: dir) }
            let (w, h, band) = (8000, 25000, 50)
            var rows = [Float](repeating: 0, count: w * band)
            let url = dir.appendingPathComponent("tall.\(format.fileExtension)")
            let before = peakResident()
            let writer = try ImageRowWriter(url: url, width: w, height: h, channels: 1, options: .init(format: format))
            for b in 0..<(h / band) {
                for i in 0..<rows.count { rows[i] = Float((i + b * 7) % 200) / 255 }
                try rows.withUnsafeBufferPointer { try writer.write(rows: $0, rowCount: band) }
            }
            try writer.finish()
            let growth = peakResident() - before
            print("\(format): peak resident memory grew by \(growth >> 10) KiB writing a \((w * h) >> 20) MiB image")
            // The header says 8000 × 25000 (decoding it all would need gigabytes of floats).
            let file = try bytes(url)
            let headerOK: Bool
            if format == .png {
                headerOK = file[16..<24].elementsEqual([0, 0, 0x1F, 0x40, 0, 0, 0x61, 0xA8])
            } else {
                let sof: [UInt8] =
                    Containers.jpegSegments(file).first(where: { $0.marker == 0xC0 }).map { $0.payload } ?? []
                headerOK = sof.count > 5 && sof[1..<5].elementsEqual([0x61, 0xA8, 0x1F, 0x40]) && sof[5] == 1
            }
            exit(before <= 0 || growth >= 64 << 20 ? 1 : (headerOK ? 0 : 2))
        }

        @Test func pngStreams() async throws {
            let result = try await #require(processExitsWith: .success, observing: [\.standardOutputContent]) {
                try StreamingMemoryTests.writeTallImage(.png)
            }
            print(String(decoding: result.standardOutputContent, as: UTF8.self), terminator: "")
        }

        @Test func jpegStreams() async throws {
            let result = try await #require(processExitsWith: .success, observing: [\.standardOutputContent]) {
                try StreamingMemoryTests.writeTallImage(.jpeg)
            }
            print(String(decoding: result.standardOutputContent, as: UTF8.self), terminator: "")
        }
    }
#endif
