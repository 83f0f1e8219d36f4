import Foundation
import GSASR
import Testing

/// The README's first command: the bundled sample photo through the bundled default model,
/// with no -m.
@Suite struct DefaultModelTests {
    @Test func upscalesTheBundledPhotoWithTheDefaultModel() throws {
        let out = try CLI.tempDir().appendingPathComponent("seeding_x2.png")
        let sample = CLI.packageRoot.appendingPathComponent("Examples/seeding_160x120.png")
        let r = try CLI.run(["-i", sample.path, "-o", out.path, "-s", "2"])
        #expect(r.status == 0, "\(r.stderr)")
        let img = try ImageIO.load(out).rgb
        #expect(img.width == 320 && img.height == 240)
        // The default model's config describes the committed weights.
        let m = try GSASRModel.load(directory: CLI.packageRoot.appendingPathComponent("Models/default"))
        #expect(m.decoder.config.windowSize == 12 && m.decoder.config.numGsSeed == 144)
    }
}
