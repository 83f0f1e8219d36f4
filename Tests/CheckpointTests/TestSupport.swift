import Foundation
import GSASRCheckpoint
import ZIPFoundation

/// URL of a file in the copied `Fixtures` folder.
func fixture(_ name: String) -> URL {
    Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent(name)
}

/// A fresh temporary directory for one test.
func makeTempDir() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

/// Writes a zip with stored (uncompressed) entries, in the given order.
func writeZip(_ entries: [(String, [UInt8])], to url: URL) throws {
    let archive = try Archive(url: url, accessMode: .create)
    for (path, bytes) in entries {
        try archive.addEntry(with: path, type: .file, uncompressedSize: Int64(bytes.count)) { position, size in
            let start = Int(position)
            return Data(bytes[start..<min(bytes.count, start + size)])
        }
    }
}

/// Writes a torch.save-style checkpoint with the given pickle and storages.
func writePth(
    _ url: URL, pickle: [UInt8], storages: [String: [UInt8]] = [:], byteorder: String? = "little",
    folder: String = "archive"
) throws {
    var entries: [(String, [UInt8])] = [("\(folder)/data.pkl", pickle)]
    if let byteorder { entries.append(("\(folder)/byteorder", Array(byteorder.utf8))) }
    for key in storages.keys.sorted() { entries.append(("\(folder)/data/\(key)", storages[key]!)) }
    entries.append(("\(folder)/version", Array("3\n".utf8)))
    try writeZip(entries, to: url)
}

/// Little helper to hand-assemble pickle byte streams.
struct PickleWriter {
    var bytes: [UInt8] = [0x80, 2]  // PROTO 2

    init(protocol proto: UInt8 = 2) { bytes = [0x80, proto] }

    mutating func op(_ code: UInt8) { bytes.append(code) }
    mutating func str(_ s: String) {
        let u = Array(s.utf8)
        bytes.append(0x58)  // BINUNICODE
        withUnsafeBytes(of: UInt32(u.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes += u
    }
    mutating func shortStr(_ s: String) {
        bytes.append(0x8C)
        bytes.append(UInt8(s.utf8.count))
        bytes += Array(s.utf8)
    }
    mutating func int(_ v: Int32) {
        bytes.append(0x4A)  // BININT
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }
    mutating func global(_ module: String, _ name: String) {
        bytes.append(0x63)
        bytes += Array("\(module)\n\(name)\n".utf8)
    }
    mutating func intTuple(_ values: [Int32]) {
        op(0x28)
        for v in values { int(v) }
        op(0x74)
    }
    /// Pushes `_rebuild_tensor_v2(storage('0', cls, numel), offset, size, stride, False, OrderedDict())`.
    mutating func tensor(
        storageClass: String = "FloatStorage", key: String = "0", numel: Int32, offset: Int32, size: [Int32],
        stride: [Int32]
    ) {
        global("torch._utils", "_rebuild_tensor_v2")
        op(0x28)  // MARK (args)
        op(0x28); str("storage"); global("torch", storageClass); str(key); str("cpu"); int(numel); op(0x74)
        op(0x51)  // BINPERSID
        int(offset)
        intTuple(size)
        intTuple(stride)
        op(0x89)  // NEWFALSE
        global("collections", "OrderedDict"); op(0x29); op(0x52)
        op(0x74)  // TUPLE
        op(0x52)  // REDUCE
    }
    /// `{name: tensor}` then STOP.
    static func stateDict(_ name: String = "w", build: (inout PickleWriter) -> Void) -> [UInt8] {
        var p = PickleWriter()
        p.op(0x7D)  // EMPTY_DICT
        p.str(name)
        build(&p)
        p.op(0x73)  // SETITEM
        p.op(0x2E)  // STOP
        return p.bytes
    }
}

/// Float32 little-endian bytes.
func floatBytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
}

/// Runs `body` and returns the CheckpointError description it throws, or nil if it did not throw one.
func checkpointError(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch let e as CheckpointError {
        return e.description
    } catch {
        return "unexpected error type: \(error)"
    }
}
