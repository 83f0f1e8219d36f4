import Foundation
import GSASR
import Testing

/// Hyperparameters come from the checkpoint; a config.json beside the weights overrides them,
/// and strict loading then rejects weights that do not fit.
@Suite struct ConfigTests {
    func modelFolder(config: String?) throws -> URL { try modelFolder(data: config.map { Data($0.utf8) }) }

    func modelFolder(data config: Data?) throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("gsasr-cfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        for f in ["encoder.pth", "decoder.pth"] {
            try FileManager.default.copyItem(at: Fixtures.url("small/\(f)"), to: d.appendingPathComponent(f))
        }
        if let config { try config.write(to: d.appendingPathComponent("config.json")) }
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

    /// Every wrong file is refused with one line that names the key (or the problem), what was
    /// expected and what was found (issue 29: nothing is ignored silently).
    @Test(arguments: [
        (#"{"decoder": [1,2,3]}"#, "'decoder' is an array, expected an object"),
        (#"{"decoder": {"type": "Evil"}}"#, "'decoder.type' is 'Evil'"),
        (#"{"decoder": {"type": 7}}"#, "'decoder.type' is 7, expected a string"),
        (#"{"denominator": 12.5}"#, "'denominator' is 12.5, expected an integer in 1...65536"),
        (#"{"denominator": 1e300}"#, "'denominator' is 1e+300, expected an integer in 1...65536"),
        (#"{"denominator": "12"}"#, "'denominator' is the string \"12\", expected an integer"),
        (#"{"decoder": {"num_heads": true}}"#, "'decoder.num_heads' is true, expected an integer"),
        (#"{"decoder": {"num_heads": -2}}"#, "'decoder.num_heads' is -2, expected an integer in 1...65536"),
        (#"{"decoder": {"nm_heads": 3}}"#, "unknown key 'decoder.nm_heads'"),
        (#"{"decoder": {"gs_up_factor": 2}}"#, "'decoder.gs_up_factor' is 2.0: only 1 is supported"),
        (#"{"encoder": {"type": "RDN"}}"#, "'encoder.type' is 'RDN'"),
        (#"{"encoder": 5}"#, "'encoder' is 5, expected an object"),
        ("[1,2", "not valid JSON"),
        (#"{"denominator": NaN}"#, "not valid JSON"),
        ("[1, 2, 3]", "the top level is an array, expected an object"),
        ("", "the file is empty"),
    ])
    func wrongConfigsNameTheProblem(config: String, mentions: String) throws {
        do {
            _ = try GSASRModel.load(directory: modelFolder(config: config))
            Issue.record("\(config): accepted")
        } catch let e as ModelLoadError {
            print("config \(config.prefix(40)) -> \(e)")
            #expect(!e.description.contains("\n"))
            #expect(e.description.contains(mentions), "'\(e)' should mention '\(mentions)'")
        }
    }

    @Test func badBytesAndDeepNestingAreRefused() throws {
        for (data, mentions) in [
            (Data([0x7B, 0xFF, 0xFE, 0x7D]), "not UTF-8"),
            (Data(String(repeating: "[", count: 100_000).utf8), "not valid JSON"),
            (Data(repeating: 0x20, count: ModelConfigFile.maxBytes + 1), "over the limit of 1048576 bytes"),
        ] {
            do {
                _ = try GSASRModel.load(directory: modelFolder(data: data))
                Issue.record("accepted: \(mentions)")
            } catch let e as ModelLoadError {
                print("config (\(data.count) bytes) -> \(e)")
                #expect(e.description.contains(mentions), "'\(e)' should mention '\(mentions)'")
            }
        }
    }

    /// The bundled and golden files (with their extra top-level keys) still load.
    @Test func realConfigsLoad() throws {
        let bundled = try Data(contentsOf: Fixtures.packageRoot.appendingPathComponent("Models/default/config.json"))
        #expect(try ModelConfigFile.parse(bundled).denominator == 12)
        let small = try ModelConfigFile.read(Fixtures.url("small/config.json"))
        #expect(small.decoderInts["window_size"] == 4 && small.decoderInts["num_gs_seed"] == 16)
    }
}
