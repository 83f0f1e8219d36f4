import Foundation
import GSASRCheckpoint
import Testing

private func sampleDict() -> StateDict {
    var sd = StateDict()
    sd.insert("z.weight", LoadedTensor(shape: [2, 3], dtype: .float32, floats: [1, -2.5, 3e-8, Float.pi, -0.0, 1e30]))
    sd.insert(
        "a.relative_position_index",
        LoadedTensor(
            shape: [2, 2], dtype: .int64, floats: [0, 5, -3, 1_099_511_627_776], ints: [0, 5, -3, 1 << 40]))
    sd.insert("m.bias", LoadedTensor(shape: [3], dtype: .float32, floats: [0.1, 0.2, 0.3]))
    sd.insert("empty", LoadedTensor(shape: [0, 4], dtype: .float32, floats: []))
    sd.insert("scalar", LoadedTensor(shape: [], dtype: .float32, floats: [7]))
    return sd
}

@Test func safetensorsRoundTrip() throws {
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("model.safetensors")
    let sd = sampleDict()
    try Safetensors.save(sd, to: url)
    let back = try Safetensors.load(url)
    #expect(back.keys == sd.keys)
    for key in sd.keys {
        #expect(back[key]?.shape == sd[key]?.shape, "\(key)")
        #expect(back[key]?.floats == sd[key]?.floats, "\(key)")
    }
    #expect(back["a.relative_position_index"]?.dtype == .int64)
    #expect(back["a.relative_position_index"]?.ints == [0, 5, -3, 1 << 40])
    #expect(back["z.weight"]?.dtype == .float32 && back["z.weight"]?.ints == nil)
    // No temporary files are left behind.
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["model.safetensors"])
}

@Test func safetensorsRoundTripOfRealCheckpoint() throws {
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let sd = try PthReader.load(fixture("decoder.pth"))
    let url = dir.appendingPathComponent("decoder.safetensors")
    try Safetensors.save(sd, to: url)
    let back = try Safetensors.load(url)
    #expect(back.keys == sd.keys)
    for key in sd.keys {
        #expect(back[key]?.floats == sd[key]?.floats, "\(key)")
        #expect(back[key]?.ints == sd[key]?.ints, "\(key)")
        #expect(back[key]?.dtype == sd[key]?.dtype, "\(key)")
    }
}

/// A file with the given JSON header and data bytes.
private func rawSafetensors(_ header: String, data: [UInt8], in dir: URL) throws -> URL {
    var bytes: [UInt8] = []
    withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { bytes += $0 }
    bytes += Array(header.utf8) + data
    let url = dir.appendingPathComponent("crafted.safetensors")
    try Data(bytes).write(to: url)
    return url
}

@Test func safetensorsReadsHalfAndKeepsHeaderOrder() throws {
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let header =
        #"{"__metadata__":{"format":"pt"},"b":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"a":{"dtype":"BF16","shape":[1],"data_offsets":[4,6]}}"#
    // F16 1.0 = 0x3C00, -2.0 = 0xC000; BF16 1.5 = 0x3FC0.
    let url = try rawSafetensors(header, data: [0x00, 0x3C, 0x00, 0xC0, 0xC0, 0x3F], in: dir)
    let sd = try Safetensors.load(url)
    #expect(sd.keys == ["b", "a"])
    #expect(sd["b"]?.floats == [1, -2] && sd["b"]?.dtype == .float16)
    #expect(sd["a"]?.floats == [1.5] && sd["a"]?.dtype == .bfloat16)
}

@Test(arguments: [
    #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,800]}}"#,  // end beyond data
    #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#,  // begin > end
    #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}"#,  // negative
    #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,  // size mismatch
    #"{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#,  // overflow
])
func safetensorsRejectsBadOffsets(_ header: String) throws {
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = try rawSafetensors(header, data: floatBytes([1, 2]), in: dir)
    let message = checkpointError { _ = try Safetensors.load(url) }
    #expect(message?.contains("data_offsets") == true || message?.contains("shape") == true, "\(message ?? "no error")")
    #expect(message?.contains("'w'") == true, "\(message ?? "no error")")
}

@Test func safetensorsRejectsMalformedHeaders() throws {
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    for header in [
        #"{"w":{"dtype":"Q8","shape":[2],"data_offsets":[0,8]}}"#, #"{"w": "#, "[1,2]", #"{"w":{"shape":[2]}}"#,
    ] {
        let url = try rawSafetensors(header, data: floatBytes([1, 2]), in: dir)
        #expect(checkpointError { _ = try Safetensors.load(url) } != nil, "\(header)")
    }
}

@Test func safetensorsRejectsTruncatedFile() throws {
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("t.safetensors")
    try Safetensors.save(sampleDict(), to: url)
    let full = try Data(contentsOf: url)
    for cut in [0, 4, 8, 20, full.count - 1] {
        try full.prefix(cut).write(to: url)
        let message = checkpointError { _ = try Safetensors.load(url) }
        #expect(message != nil, "cut at \(cut)")
        #expect(message?.contains("t.safetensors") == true, "\(message ?? "no error")")
    }
    // An absurd header length is rejected without allocating.
    var huge = Data()
    withUnsafeBytes(of: UInt64.max.littleEndian) { huge.append(contentsOf: $0) }
    try huge.write(to: url)
    #expect(checkpointError { _ = try Safetensors.load(url) }?.contains("header length") == true)
}

/// The reference `safetensors` library refuses a data section that is not exactly the tensors'
/// byte ranges end to end; so do we (the tensors may be listed in any order in the header).
@Test(arguments: [
    (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, "overlap"),
    (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#, "gap"),
    (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#, "gap"),
    (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, "overlap"),
    (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, "after the last tensor"),
    (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, "twice"),
])
func safetensorsRejectsOverlapsGapsAndTrailingBytes(header: String, mentions: String) throws {
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = try rawSafetensors(header, data: floatBytes([1, 2, 3]), in: dir)
    let message = checkpointError { _ = try Safetensors.load(url) }
    print("crafted layout -> \(message ?? "loaded")")
    #expect(message?.contains(mentions) == true, "\(message ?? "no error")")
}

@Test func safetensorsAcceptsTensorsListedOutOfOffsetOrder() throws {
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let header =
        #"{"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
    let sd = try Safetensors.load(try rawSafetensors(header, data: floatBytes([1, 2, 3]), in: dir))
    #expect(sd.keys == ["b", "a"])
    #expect(sd["a"]?.floats == [1] && sd["b"]?.floats == [2, 3])
}
