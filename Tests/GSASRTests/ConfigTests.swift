import Foundation
import GSASR
import Testing

/// Hyperparameters come from the checkpoint; a config.json beside the weights overrides them,
/// and strict loading then rejects weights that do not fit.
@Suite struct ConfigTests {
    func modelFolder(config: String?) throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("gsasr-cfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        for f in ["encoder.pth", "decoder.pth"] {
            try FileManager.default.copyItem(at: Fixtures.url("small/\(f)"), to: d.appendingPathComponent(f))
        }
        if let config { try Data(config.utf8).write(to: d.appendingPathComponent("config.json")) }
        return d
    }

    @Test func inferredWithoutConfig() throws {
        let m = try GSASRModel.load(directory: modelFolder(config: nil))
        #expect(m.decoder.config.numHeads == 3 && m.decoder.config.windowSize == 4)
        #expect(m.denominator == 12)
    }

    @Test func matchingConfigLoads() throws {
        let m = try GSASRModel.load(
            directory: modelFolder(config: #"{"decoder": {"num_heads": 3, "window_size": 4}, "denominator": 24}"#))
        #expect(m.denominator == 24)
    }

    @Test func contradictingConfigIsRejectedNamingTheKey() throws {
        do {
            _ = try GSASRModel.load(directory: modelFolder(config: #"{"decoder": {"num_heads": 4}}"#))
            Issue.record("expected a load error")
        } catch let e as ModelLoadError {
            print("config num_heads 4 -> \(e)")
            #expect(e.description.contains("relative_position_bias_table"))
        }
    }

    @Test func malformedConfigIsRejected() throws {
        #expect(throws: ModelLoadError.self) {
            try GSASRModel.load(directory: modelFolder(config: #"{"decoder": {"num_heads": -2}}"#))
        }
        #expect(throws: ModelLoadError.self) { try GSASRModel.load(directory: modelFolder(config: "[1,2")) }
    }
}
