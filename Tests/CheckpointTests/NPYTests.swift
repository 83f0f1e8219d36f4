import Foundation
import GSASRCheckpoint
import Testing

@Test func npyLoadsGoldenFloat32() throws {
    let (shape, floats) = try NPY.load(fixture("sigmas.npy"))
    #expect(shape == [300, 3])
    #expect(floats.count == 900)
    // Values from numpy.
    #expect(Array(floats.prefix(3)) == [0.1022239699959755, 0.013341487385332584, -0.21873602271080017])
    #expect(floats[899] == -0.19998003542423248)
    #expect(abs(floats.reduce(0.0) { $0 + Double($1) } - 83.67123386985622) < 1e-4)
}

@Test func npyLoadsGoldenFloat64() throws {
    let (shape, values) = try NPY.loadDouble(fixture("32x48_dmax0.1_fwd_f64.npy"))
    #expect(shape == [32, 48, 3])
    #expect(Array(values.prefix(3)) == [0.681294025880497, 0.04710113289777669, 0.31808595377561144])
    #expect(values.last == 1.6786166301357914)
    #expect(abs(values.reduce(0, +) - 3022.5442025502266) < 1e-9)
    let (_, floats) = try NPY.load(fixture("32x48_dmax0.1_fwd_f64.npy"))
    #expect(floats[0] == Float(0.681294025880497))
}

@Test func npySaveRoundTrip() throws {
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("a.npy")
    let values: [Float] = (0..<24).map { Float($0) * 0.25 - 1 }
    try NPY.save(floats: values, shape: [2, 3, 4], to: url)
    let (shape, back) = try NPY.load(url)
    #expect(shape == [2, 3, 4] && back == values)
    let bytes = try Data(contentsOf: url)
    #expect((bytes.count - 24 * 4) % 64 == 0)  // header aligned like numpy's
    try NPY.save(floats: [5], shape: [1], to: url)
    #expect(try NPY.load(url).shape == [1])
    #expect(checkpointError { try NPY.save(floats: [1, 2], shape: [3], to: url) } != nil)
}

/// Writes a v1 .npy with a custom header dict literal.
private func writeNPY(_ header: String, data: [UInt8], to url: URL) throws {
    var h = header
    while (10 + h.utf8.count + 1) % 64 != 0 { h += " " }
    h += "\n"
    var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(h.utf8.count & 0xFF), UInt8(h.utf8.count >> 8)]
    bytes += Array(h.utf8) + data
    try Data(bytes).write(to: url)
}

@Test func npyReadsInt64AndUInt8() throws {
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("i.npy")
    var data: [UInt8] = []
    for v: Int64 in [-2, 9] { withUnsafeBytes(of: v.littleEndian) { data += $0 } }
    try writeNPY("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", data: data, to: url)
    #expect(try NPY.loadDouble(url).values == [-2, 9])
    try writeNPY("{'descr': '|u1', 'fortran_order': False, 'shape': (1, 3), }", data: [0, 128, 255], to: url)
    let u = try NPY.load(url)
    #expect(u.shape == [1, 3] && u.floats == [0, 128, 255])
}

@Test func npyRejectsFortranOrderBigEndianAndTruncation() throws {
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("bad.npy")
    try writeNPY("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", data: floatBytes([1, 2, 3, 4]), to: url)
    #expect(checkpointError { _ = try NPY.load(url) }?.contains("fortran_order") == true)
    try writeNPY("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", data: [0, 0, 0, 0, 0, 0, 0, 0], to: url)
    #expect(checkpointError { _ = try NPY.load(url) }?.contains("dtype") == true)
    try writeNPY("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", data: floatBytes([1, 2]), to: url)
    #expect(checkpointError { _ = try NPY.load(url) }?.contains("truncated") == true)
    try Data("not numpy".utf8).write(to: url)
    #expect(checkpointError { _ = try NPY.load(url) }?.contains("not an .npy") == true)
    let golden = try Data(contentsOf: fixture("sigmas.npy"))
    for cut in [0, 5, 9, 50, golden.count - 1] {
        try golden.prefix(cut).write(to: url)
        #expect(checkpointError { _ = try NPY.load(url) } != nil, "cut at \(cut)")
    }
}
