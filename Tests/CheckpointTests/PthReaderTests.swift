import Foundation
import GSASRCheckpoint
import Testing

/// Rows of `state_dict_keys.tsv` for one module: (key, shape, dtype).
private func expectedKeys(_ module: String) throws -> [(String, [Int], String)] {
    let text = try String(contentsOf: fixture("state_dict_keys.tsv"), encoding: .utf8)
    return text.split(separator: "\n").compactMap { line in
        let cols = line.split(separator: "\t").map(String.init)
        guard cols.count == 4, cols[0] == module else { return nil }
        let shape = cols[2].dropFirst().dropLast().split(separator: ",").compactMap {
            Int($0.trimmingCharacters(in: .whitespaces))
        }
        return (cols[1], shape, cols[3])
    }
}

private func checkAgainstTSV(_ file: String, module: String, count: Int) throws {
    let sd = try PthReader.load(fixture(file))
    let expected = try expectedKeys(module)
    #expect(expected.count == count)
    #expect(sd.count == count)
    #expect(sd.keys == expected.map(\.0))
    for (key, shape, dtype) in expected {
        let t = try #require(sd[key])
        #expect(t.shape == shape, "\(key)")
        #expect(t.dtype.rawValue == dtype, "\(key)")
        #expect(t.floats.count == t.count, "\(key)")
        if dtype == "int64" {
            #expect(t.ints?.count == t.count, "\(key) should keep exact int64 values")
        } else {
            #expect(t.ints == nil, "\(key)")
        }
    }
}

@Test func encoderMatchesStateDictKeysTSV() throws {
    try checkAgainstTSV("encoder.pth", module: "encoder", count: 12)
}

@Test func decoderMatchesStateDictKeysTSV() throws {
    try checkAgainstTSV("decoder.pth", module: "decoder", count: 176)
    let sd = try PthReader.load(fixture("decoder.pth"))
    let rpi = sd.keys.filter { $0.hasSuffix("relative_position_index") }
    #expect(!rpi.isEmpty)
    for key in rpi { #expect(sd[key]?.dtype == .int64) }
}

/// Values extracted with python3 + numpy from the storage bytes.
@Test func encoderValuesMatchPython() throws {
    let sd = try PthReader.load(fixture("encoder.pth"))
    let w = try #require(sd["conv_first.weight"])
    #expect(Array(w.floats.prefix(3)) == [-0.0014408392598852515, 0.10323861986398697, -0.15839511156082153])
    #expect(w.floats.last == -0.012822308577597141)
    #expect(abs(w.floats.reduce(0.0) { $0 + Double($1) } - -0.07490452515048673) < 1e-6)
    let b = try #require(sd["conv_after_body.bias"])
    #expect(Array(b.floats.prefix(3)) == [-0.20607522130012512, 0.12762771546840668, 0.04476170986890793])
    #expect(b.floats.last == -0.24367061257362366)
    let c = try #require(sd["body.0.conv1.weight"])
    #expect(Array(c.floats.prefix(3)) == [-0.05223679170012474, -0.0037415092810988426, 0.019654691219329834])
}

@Test func decoderValuesMatchPython() throws {
    let sd = try PthReader.load(fixture("decoder.pth"))
    let g = try #require(sd["gs_embedding"])
    #expect(Array(g.floats.prefix(3)) == [-0.22518540918827057, 0.591374397277832, 1.0676548480987549])
    #expect(g.floats.last == -1.1069310903549194)
    #expect(abs(g.floats.reduce(0.0) { $0 + Double($1) } - 20.840730104595423) < 1e-4)
    let rpi = try #require(sd["window_crossattn_blocks.0.blocks.0.window_cross_attn.relative_position_index"])
    #expect(rpi.shape == [16, 16])
    let ints = try #require(rpi.ints)
    #expect(Array(ints.prefix(3)) == [0, 6, 5])
    #expect(ints.reduce(0, +) == 4704)
    #expect(rpi.floats.reduce(0, +) == 4704)
    let up = try #require(sd["UPNet.2.bias"])
    #expect(up.floats.last == 0.02445453777909279)
}

@Test func paramsEmaIsDefaultAndParamsKeySelectable() throws {
    let ema = try PthReader.load(fixture("encoder.pth"))
    let explicitEma = try PthReader.load(fixture("encoder.pth"), paramKey: "params_ema")
    let params = try PthReader.load(fixture("encoder.pth"), paramKey: "params")
    #expect(ema.keys == params.keys)
    #expect(ema.keys == explicitEma.keys)
    for key in ema.keys { #expect(ema[key]?.floats == params[key]?.floats) }
}

@Test func missingParamKeyListsAvailableKeys() {
    let message = checkpointError { _ = try PthReader.load(fixture("encoder.pth"), paramKey: "nope") }
    #expect(message?.contains("'nope'") == true, "\(message ?? "no error")")
    #expect(message?.contains("params_ema") == true)
    #expect(message?.contains("'params'") == true)
    #expect(message?.contains("encoder.pth") == true)
}

@Test func paramsUsedWhenNoParamsEma() throws {
    let sd = try PthReader.load(fixture("params_only.pth"))
    #expect(sd.keys == ["a", "b"])
    #expect(sd["a"]?.floats == [-3.0, -2.5, -2.0, -1.5])
    #expect(sd["b"]?.ints == [-1, 7])  // storage offset 1
}

@Test func checkpointWithoutKnownKeysNamesKeysFound() {
    let message = checkpointError { _ = try PthReader.load(fixture("other_keys.pth")) }
    #expect(message?.contains("'model'") == true, "\(message ?? "no error")")
    #expect(message?.contains("'epoch'") == true)
    // But an explicit key works.
    #expect((try? PthReader.load(fixture("other_keys.pth"), paramKey: "model"))?.keys == ["a"])
}

@Test func bareStateDictWithStridesAndDtypes() throws {
    let sd = try PthReader.load(fixture("bare_state_dict.pth"))
    #expect(sd.keys == ["weight", "transposed", "index", "half", "double", "scalar"])
    let w = try #require(sd["weight"])
    #expect(w.shape == [2, 3, 4] && w.dtype == .float32)
    #expect(w.floats == (0..<24).map { Float($0) * 0.5 - 3 })
    let t = try #require(sd["transposed"])
    #expect(t.shape == [3, 2])
    #expect(t.floats == [-2.0, 0.5, -1.5, 1.0, -1.0, 1.5])
    let i = try #require(sd["index"])
    #expect(i.dtype == .int64 && i.ints == [3, -1, 7, 1 << 40])
    #expect(i.floats == [3, -1, 7, 1099511627776])
    let h = try #require(sd["half"])
    #expect(h.dtype == .float16 && h.ints == nil)
    #expect(h.floats == [1.5, -2.25, 65504, 6.103515625e-05, 5.960464477539063e-08])
    let d = try #require(sd["double"])
    #expect(d.dtype == .float64)
    #expect(d.floats == [Float(0.1), Float(-0.001), 1e10])
    let s = try #require(sd["scalar"])
    #expect(s.shape == [] && s.floats == [0.5])
}
