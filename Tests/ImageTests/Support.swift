import Foundation
import GSASRImage

/// URL of a file in the test fixtures.
func fixture(_ name: String) -> URL {
    Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent(name)
}

/// Minimal `.npy` reader for the fixtures: little-endian `<f4` / `<f8`, C order.
func loadNPY(_ name: String) throws -> (shape: [Int], values: [Float]) {
    let data = try Data(contentsOf: fixture(name))
    let bytes = [UInt8](data)
    guard bytes.count > 10, bytes[0] == 0x93, bytes[1...5].elementsEqual("NUMPY".utf8) else {
        throw ImageIOError("\(name) is not an npy file")
    }
    let major = bytes[6]
    let headerLength: Int, start: Int
    if major == 1 {
        headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        start = 10
    } else {
        headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
        start = 12
    }
    let header = String(decoding: bytes[start..<(start + headerLength)], as: UTF8.self)
    guard !header.contains("'fortran_order': True") else { throw ImageIOError("\(name): Fortran order") }
    guard let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")") else {
        throw ImageIOError("\(name): no shape")
    }
    let shape = header[open.upperBound..<close].split(separator: ",")
        .compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    let count = shape.reduce(1, *)
    let body = start + headerLength
    var values = [Float](repeating: 0, count: count)
    if header.contains("'<f4'") {
        for i in 0..<count {
            var bits: UInt32 = 0
            for k in 0..<4 { bits |= UInt32(bytes[body + 4 * i + k]) << (8 * k) }
            values[i] = Float(bitPattern: bits)
        }
    } else if header.contains("'<f8'") {
        for i in 0..<count {
            var bits: UInt64 = 0
            for k in 0..<8 { bits |= UInt64(bytes[body + 8 * i + k]) << (8 * k) }
            values[i] = Float(Double(bitPattern: bits))
        }
    } else {
        throw ImageIOError("\(name): unsupported dtype in \(header)")
    }
    return (shape, values)
}

func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    var m: Float = 0
    for i in 0..<a.count { m = max(m, abs(a[i] - b[i])) }
    return m
}

/// A fresh empty directory under the system temporary directory.
func makeTempDir() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gsasr-image-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}
