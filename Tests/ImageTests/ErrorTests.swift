import Foundation
import GSASRImage
import Testing

@Suite struct ErrorTests {
    /// Runs `load` on bytes written to a temporary file and returns the error message.
    func loadError(_ bytes: [UInt8], name: String, maxPixels: Int = ImageIO.defaultMaxPixels) throws -> String? {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        do {
            _ = try ImageIO.load(url, maxPixels: maxPixels)
            return nil
        } catch let error as ImageIOError {
            return error.message
        }
    }

    func checkOneLine(_ message: String?) {
        #expect(message != nil)
        if let message {
            #expect(!message.contains("\n"))
            #expect(!message.isEmpty)
            print("error: \(message)")
        }
    }

    @Test func missingFile() throws {
        let url = URL(fileURLWithPath: "/nonexistent-dir/missing.png")
        #expect(throws: ImageIOError.self) { try ImageIO.load(url) }
        do { _ = try ImageIO.load(url) } catch let e as ImageIOError {
            #expect(e.message.contains("does not exist"))
            checkOneLine(e.message)
        }
    }

    @Test func truncatedPNG() throws {
        let bytes = [UInt8](try Data(contentsOf: fixture("astronaut_48x48_lr.png")))
        checkOneLine(try loadError(Array(bytes.prefix(100)), name: "trunc.png"))
        // Cut in the middle of the image data too.
        checkOneLine(try loadError(Array(bytes.prefix(bytes.count / 2)), name: "half.png"))
        // Signature only.
        checkOneLine(try loadError(Array(bytes.prefix(8)), name: "sig.png"))
    }

    @Test func corruptPNGData() throws {
        var bytes = [UInt8](try Data(contentsOf: fixture("astronaut_48x48_lr.png")))
        for i in stride(from: 200, to: bytes.count - 20, by: 7) { bytes[i] ^= 0x5A }
        checkOneLine(try loadError(bytes, name: "corrupt.png"))
    }

    @Test func truncatedJPEG() throws {
        let bytes = [UInt8](try Data(contentsOf: fixture("astronaut_q90.jpg")))
        checkOneLine(try loadError(Array(bytes.prefix(bytes.count / 2)), name: "trunc.jpg"))
        checkOneLine(try loadError(Array(bytes.prefix(100)), name: "trunc100.jpg"))
        checkOneLine(try loadError(Array(bytes.prefix(3)), name: "soi.jpg"))
    }

    @Test func randomBytes() throws {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let message = try loadError(bytes, name: "noise.png")
        checkOneLine(message)
        #expect(message?.contains("is not a PNG, JPEG, TIFF, HEIC or AVIF file") == true)
        // Random bytes behind valid signatures must also fail cleanly.
        checkOneLine(try loadError([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + bytes, name: "noise2.png"))
        checkOneLine(try loadError([0xFF, 0xD8, 0xFF] + bytes, name: "noise.jpg"))
        checkOneLine(try loadError([], name: "empty.png"))
    }

    @Test func oversizedHeaderRejectedBeforeAllocation() throws {
        let bytes = [UInt8](try Data(contentsOf: fixture("huge_header.png")))
        let message = try loadError(bytes, name: "huge.png")
        checkOneLine(message)
        #expect(message?.contains("100000x100000") == true)
        #expect(message?.contains("over the limit") == true)
    }

    @Test func maxPixelsLimit() throws {
        #expect(throws: ImageIOError.self) {
            try ImageIO.load(fixture("astronaut_48x48_lr.png"), maxPixels: 48 * 48 - 1)
        }
        #expect(throws: ImageIOError.self) { try ImageIO.load(fixture("astronaut_q90.jpg"), maxPixels: 100) }
        _ = try ImageIO.load(fixture("astronaut_48x48_lr.png"), maxPixels: 48 * 48)
    }
}
