import Foundation
import GSASR
import GSASRCheckpoint
import Testing

/// The layouts of every released model (shared/golden/zoo/full_configs: keys, shapes and dtypes
/// of the official state dicts, no weights): a checkpoint with exactly those entries (values
/// made up, integer buffers valid indices) loads strictly, the registry infers the released
/// hyperparameters and padding denominator, the declaration lists the same entries in the same
/// order, and a 48×48 input upscales ×2.
@Suite(.serialized) struct FullConfigLayoutTests {
    static let names = [
        "paper_edsr", "paper_rdn", "paper_swinir", "enhanced_edsr", "enhanced_rdn", "enhanced_swinir", "ultra_hatl",
    ]

    struct Entry: Equatable, CustomStringConvertible {
        var key: String, shape: [Int], dtype: String
        var description: String { "\(key) \(shape) \(dtype)" }
    }

    static func layout(_ name: String) throws -> (encoder: [Entry], decoder: [Entry]) {
        let text = try String(contentsOf: Fixtures.url("zoo/full_configs/\(name).tsv"), encoding: .utf8)
        var enc: [Entry] = [], dec: [Entry] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let f = line.split(separator: "\t").map(String.init)
            let shape = f[2].trimmingCharacters(in: CharacterSet(charactersIn: "[]")).split(separator: ",").map {
                Int($0.trimmingCharacters(in: .whitespaces))!
            }
            let e = Entry(key: f[1], shape: shape, dtype: f[3])
            if f[0] == "encoder" { enc.append(e) } else { dec.append(e) }
        }
        return (enc, dec)
    }

    /// A state dict with those entries: floats a deterministic pattern of small values, int64
    /// buffers 0 (a valid index).
    static func stateDict(_ entries: [Entry]) -> StateDict {
        var sd = StateDict()
        var k = 0
        for e in entries {
            let n = e.shape.reduce(1, *)
            if e.dtype == "int64" {
                sd.insert(e.key, LoadedTensor(shape: e.shape, dtype: .int64, floats: [Float](repeating: 0, count: n), ints: [Int64](repeating: 0, count: n)))
            } else {
                var v = [Float](repeating: 0, count: n)
                for i in 0..<n { v[i] = 0.02 * Float((i * 7 + k * 13) % 101 - 50) / 50 }
                sd.insert(e.key, LoadedTensor(shape: e.shape, dtype: .float32, floats: v))
            }
            k += 1
        }
        return sd
    }

    static func entries(_ state: [StateEntry]) -> [Entry] {
        state.map { e in
            switch e {
            case .parameter(let p): return Entry(key: p.key, shape: p.torchShape, dtype: "float32")
            case .buffer(let k, let s, _): return Entry(key: k, shape: s, dtype: "int64")
            case .floatBuffer(let k, let s, _): return Entry(key: k, shape: s, dtype: "float32")
            }
        }
    }

    @Test(arguments: names) func releasedLayout(name: String) throws {
        let (encEntries, decEntries) = try Self.layout(name)
        let json =
            try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("zoo/full_configs/\(name).json")))
            as! [String: Any]
        let m = try GSASRModel.load(
            encoder: Self.stateDict(encEntries), encoderLabel: "encoder.pth", decoder: Self.stateDict(decEntries),
            decoderLabel: "decoder.pth")
        // The declaration's entries, in order, are the official ones.
        #expect(Self.entries(m.encoderState) == encEntries)
        #expect(Self.entries(m.decoderState) == decEntries)
        let counts = json["param_count"] as! [String: Int]
        #expect(m.encoderState.parameterCount == counts["encoder"])
        #expect(m.decoderState.parameterCount == counts["decoder"])
        #expect(m.denominator == json["denominator"] as! Int)
        // The hyperparameters the registry read against the released constructor arguments.
        let enc = json["encoder"] as! [String: Any], dec = json["decoder"] as! [String: Any]
        #expect(type(of: m.encoder).officialName == enc["type"] as! String)
        #expect(m.decoder.config.officialName == dec["type"] as! String)
        let decArgs = (dec["resolved_constructor_args"] ?? dec["kwargs"]) as! [String: Any]
        for (key, value) in m.decoder.config.argumentValues {
            #expect(value == (decArgs[key] as? Int), "decoder \(key)")
        }
        let encArgs = (enc["resolved_constructor_args"] ?? enc["kwargs"]) as! [String: Any]
        var expected = encArgs
        if encArgs["RDNconfig"] as? String == "B" {  // RDN's preset: (D, C, G) = (16, 8, 64)
            expected["D"] = 16
            expected["C"] = 8
            expected["G"] = 64
        }
        for (key, value) in m.encoder.configArguments {
            let official = expected[key]
            switch value {
            case .int(let v): #expect(v == (official as? Int), "encoder \(key)")
            case .ints(let v): #expect(v == (official as? [Int]), "encoder \(key)")
            case .number(let v):
                #expect(official != nil, "encoder \(key)")
                if let o = (official as? NSNumber)?.doubleValue { #expect(abs(v - o) < 1e-9, "encoder \(key)") }
            }
        }
        // A 48×48 input at ×2.
        var pixels = [Float](repeating: 0, count: 48 * 48 * 3)
        for i in pixels.indices { pixels[i] = Float((i * 37) % 255) / 255 }
        let t0 = Date()
        let r = try Upscaler(model: m, mode: .fast).upscale(
            rgb: pixels, width: 48, height: 48, request: ScaleRequest(scale: 2))
        #expect(r.width == 96 && r.height == 96)
        #expect(r.pixels.allSatisfy { $0.isFinite })
        print(
            "[full_configs] \(name): \(type(of: m.encoder).officialName) \(m.encoderState.parameterCount) + \(m.decoder.config.officialName) \(m.decoderState.parameterCount) parameters, \(m.encoderState.count)/\(m.decoderState.count) entries, denominator \(m.denominator); 48x48 x2 in \(String(format: "%.1f", Date().timeIntervalSince(t0))) s"
        )
    }
}
