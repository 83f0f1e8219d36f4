import Foundation
import GSASRCheckpoint
import Testing
import ZIPFoundation

/// Broken and hostile `.pth` inputs: each must throw a `CheckpointError` naming the problem.

private func loadError(_ url: URL) -> String? { checkpointError { _ = try PthReader.load(url) } }

private func errorForPickle(_ pickle: [UInt8], storages: [String: [UInt8]] = [:], byteorder: String? = "little") throws
    -> String?
{
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("crafted.pth")
    try writePth(url, pickle: pickle, storages: storages, byteorder: byteorder)
    let message = loadError(url)
    #expect(message?.contains("crafted.pth") == true, "error should name the file: \(message ?? "none")")
    return message
}

/// `module.name(arg)` through GLOBAL + REDUCE.
private func callPickle(_ module: String, _ name: String) -> [UInt8] {
    var p = PickleWriter()
    p.global(module, name)
    p.str("echo pwned")
    p.op(0x85)  // TUPLE1
    p.op(0x52)  // REDUCE
    p.op(0x2E)
    return p.bytes
}

@Test(arguments: [
    "os.system", "builtins.eval", "posix.system", "torch.load", "subprocess.Popen", "collections.defaultdict",
])
func forbiddenGlobalIsRejected(_ qualified: String) throws {
    let parts = qualified.split(separator: ".", maxSplits: 1).map(String.init)
    let message = try errorForPickle(callPickle(parts[0], parts[1]))
    #expect(message?.contains("forbidden global '\(qualified)'") == true, "\(message ?? "no error")")
}

@Test func forbiddenGlobalInsideStateDictIsRejected() throws {
    // A valid-looking state dict whose value is os.system('...').
    let pickle = PickleWriter.stateDict { p in
        p.global("os", "system"); p.str("rm -rf /"); p.op(0x85); p.op(0x52)
    }
    let message = try errorForPickle(pickle)
    #expect(message?.contains("forbidden global 'os.system'") == true, "\(message ?? "no error")")
}

@Test func stackGlobalIsRejected() throws {
    var p = PickleWriter(protocol: 4)
    p.shortStr("os"); p.shortStr("system")
    p.op(0x93)  // STACK_GLOBAL
    p.shortStr("id"); p.op(0x85); p.op(0x52); p.op(0x2E)
    let message = try errorForPickle(p.bytes)
    #expect(message?.contains("STACK_GLOBAL") == true, "\(message ?? "no error")")
    #expect(message?.contains("0x93") == true)
}

@Test(arguments: [
    (UInt8(0x69), "INST"), (0x6F, "OBJ"), (0x81, "NEWOBJ"), (0x92, "NEWOBJ_EX"), (0x82, "EXT1"),
    (0x50, "PERSID"), (0x32, "DUP"), (0x43, "SHORT_BINBYTES"),
])
func unsupportedOpcodeIsRejected(_ code: UInt8, _ name: String) throws {
    var p = PickleWriter()
    p.op(0x7D)
    p.op(code)
    p.op(0x2E)
    let message = try errorForPickle(p.bytes)
    #expect(
        message?.contains("opcode \(name) (0x\(String(code, radix: 16, uppercase: true)))") == true,
        "\(message ?? "no error")")
}

@Test func tensorViewBeyondStorageIsRejected() throws {
    // size (2,3) stride (3,1) reaches element 5, but the storage holds 4.
    let pickle = PickleWriter.stateDict { $0.tensor(numel: 4, offset: 0, size: [2, 3], stride: [3, 1]) }
    let message = try errorForPickle(pickle, storages: ["0": floatBytes([1, 2, 3, 4])])
    #expect(message?.contains("beyond storage") == true, "\(message ?? "no error")")
}

@Test func storageOffsetBeyondStorageIsRejected() throws {
    let pickle = PickleWriter.stateDict { $0.tensor(numel: 4, offset: 4, size: [1], stride: [1]) }
    let message = try errorForPickle(pickle, storages: ["0": floatBytes([1, 2, 3, 4])])
    #expect(message?.contains("beyond storage") == true, "\(message ?? "no error")")
}

@Test func negativeStrideIsRejected() throws {
    let pickle = PickleWriter.stateDict { $0.tensor(numel: 4, offset: 3, size: [4], stride: [-1]) }
    let message = try errorForPickle(pickle, storages: ["0": floatBytes([1, 2, 3, 4])])
    #expect(message?.contains("stride") == true, "\(message ?? "no error")")
}

@Test func hugeSizeIsRejectedBeforeAllocating() throws {
    // Stride 0 would keep every index in bounds; the element count itself must be capped.
    let pickle = PickleWriter.stateDict {
        $0.tensor(numel: 1, offset: 0, size: [Int32.max, Int32.max], stride: [0, 0])
    }
    let message = try errorForPickle(pickle, storages: ["0": floatBytes([1])])
    #expect(message?.contains("too large") == true, "\(message ?? "no error")")
}

@Test func storageLargerThanZipEntryIsRejected() throws {
    let pickle = PickleWriter.stateDict { $0.tensor(numel: 1000, offset: 0, size: [1000], stride: [1]) }
    let message = try errorForPickle(pickle, storages: ["0": floatBytes([1, 2, 3, 4])])
    #expect(message?.contains("needs 4000") == true, "\(message ?? "no error")")
}

@Test func missingStorageEntryIsRejected() throws {
    let pickle = PickleWriter.stateDict { $0.tensor(key: "7", numel: 4, offset: 0, size: [4], stride: [1]) }
    let message = try errorForPickle(pickle, storages: ["0": floatBytes([1, 2, 3, 4])])
    #expect(message?.contains("missing zip entry 'archive/data/7'") == true, "\(message ?? "no error")")
}

@Test func craftedValidTensorLoads() throws {
    // Sanity check for the helpers: the same construction with valid numbers loads.
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("ok.pth")
    let pickle = PickleWriter.stateDict { $0.tensor(numel: 6, offset: 0, size: [3, 2], stride: [1, 3]) }
    try writePth(url, pickle: pickle, storages: ["0": floatBytes([1, 2, 3, 4, 5, 6])])
    let sd = try PthReader.load(url)
    #expect(sd["w"]?.shape == [3, 2])
    #expect(sd["w"]?.floats == [1, 4, 2, 5, 3, 6])
}

@Test func bigEndianIsRejected() throws {
    let pickle = PickleWriter.stateDict { $0.tensor(numel: 4, offset: 0, size: [4], stride: [1]) }
    let message = try errorForPickle(pickle, storages: ["0": floatBytes([1, 2, 3, 4])], byteorder: "big")
    #expect(message?.contains("little-endian") == true, "\(message ?? "no error")")
}

@Test func truncatedPickleIsRejected() throws {
    let full = PickleWriter.stateDict { $0.tensor(numel: 4, offset: 0, size: [4], stride: [1]) }
    for cut in [3, 20, full.count / 2, full.count - 1] {
        let message = try errorForPickle(Array(full.prefix(cut)), storages: ["0": floatBytes([1, 2, 3, 4])])
        #expect(message != nil, "cut at \(cut)")
    }
    let message = try errorForPickle(Array(full.dropLast()), storages: ["0": floatBytes([1, 2, 3, 4])])
    #expect(message?.contains("truncated") == true, "\(message ?? "no error")")
}

@Test func deeplyNestedTuplesAreRejected() throws {
    var p = PickleWriter()
    p.op(0x29)
    for _ in 0..<100_000 { p.op(0x85) }  // TUPLE1
    p.op(0x2E)
    let message = try errorForPickle(p.bytes)
    #expect(message?.contains("nested") == true, "\(message ?? "no error")")
}

@Test func badMemoAndStackUseIsRejected() throws {
    var get = PickleWriter()
    get.op(0x68); get.op(9); get.op(0x2E)  // BINGET 9, never stored
    #expect(try errorForPickle(get.bytes)?.contains("memo") == true)
    var under = PickleWriter()
    under.op(0x73); under.op(0x2E)  // SETITEM on empty stack
    #expect(try errorForPickle(under.bytes)?.contains("underflow") == true)
    var long = PickleWriter()
    long.op(0x8A); long.op(9); long.bytes += [UInt8](repeating: 0xFF, count: 9); long.op(0x2E)
    #expect(try errorForPickle(long.bytes)?.contains("LONG1") == true)
}

@Test func truncatedCheckpointIsRejected() throws {
    let full = try Data(contentsOf: fixture("encoder.pth"))
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    for cut in [1, 10, 100, 1000, 5000, full.count / 2, full.count - 100, full.count - 23, full.count - 1] {
        let url = dir.appendingPathComponent("cut_\(cut).pth")
        try full.prefix(cut).write(to: url)
        let message = loadError(url)
        #expect(message?.contains("cut_\(cut).pth") == true, "cut at \(cut): \(message ?? "no error")")
    }
}

@Test func emptyFileIsRejected() throws {
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("empty.pth")
    try Data().write(to: url)
    #expect(loadError(url)?.contains("empty file") == true)
}

@Test func nonZipFileIsRejected() throws {
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("text.pth")
    try Data(String(repeating: "this is not a zip archive\n", count: 40).utf8).write(to: url)
    let message = loadError(url)
    #expect(message?.contains("not a zip archive") == true, "\(message ?? "no error")")
}

@Test func zipWithoutDataPklIsRejected() throws {
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("nopkl.pth")
    try writeZip([("archive/other.txt", Array("hi".utf8))], to: url)
    #expect(loadError(url)?.contains("data.pkl") == true)
}

@Test func missingFileIsRejected() {
    let url = URL(fileURLWithPath: "/nonexistent/dir/none.pth")
    #expect(loadError(url)?.contains("none.pth") == true)
}

/// A deflated entry is refused before anything is read: torch.save stores entries uncompressed,
/// and a deflated one could inflate far past its storage (here 64 MiB of zeros in ~64 KB).
@Test func compressedEntryIsRejectedBeforeReading() throws {
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("bomb.pth")
    let archive = try Archive(url: url, accessMode: .create)
    try archive.addEntry(with: "archive/data.pkl", type: .file, uncompressedSize: Int64(64 << 20), compressionMethod: .deflate) {
        _, size in Data(count: size)
    }
    let size = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
    let t0 = Date()
    let message = loadError(url)
    print("deflated 64 MiB entry in a \(size)-byte file: \(message ?? "accepted") (\(Date().timeIntervalSince(t0)) s)")
    #expect(message?.contains("is compressed; torch.save stores entries uncompressed") == true)
}

/// Two entries with one name: which one a reader would take is up to the reader, so the file is refused.
@Test func duplicateEntryNamesAreRejected() throws {
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("dup.pth")
    var p = PickleWriter()
    p.op(0x7D)  // EMPTY_DICT
    p.op(0x2E)  // STOP
    try writeZip(
        [("archive/data.pkl", p.bytes), ("archive/version", Array("3\n".utf8)), ("archive/data.pkl", p.bytes)], to: url)
    let message = loadError(url)
    print("duplicate entry: \(message ?? "accepted")")
    #expect(message?.contains("zip entry 'archive/data.pkl' appears twice") == true)
}

/// The fuzzer's find (release build, 2026-12-06): a 788-byte checkpoint whose deflated entry is
/// cut short made ZIPFoundation read empty chunks forever. Now refused at once.
@Test func truncatedDeflateFromTheFuzzerIsRejectedAtOnce() throws {
    let t0 = Date()
    let message = loadError(fixture("fuzz_truncated_deflate.pth"))
    let seconds = Date().timeIntervalSince(t0)
    print("fuzz_truncated_deflate.pth: \(message ?? "accepted") in \(seconds) s")
    #expect(message?.contains("is compressed") == true)
    #expect(seconds < 5)
}
