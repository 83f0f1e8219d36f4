import Foundation
import GSASRCheckpoint
import Testing
import ZIPFoundation

/// Deterministic xorshift generator for reproducible mutations.
private struct XorShift {
    var state: UInt64
    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// Reads one entry of a fixture zip.
private func entry(_ name: String, of url: URL) throws -> [UInt8] {
    let archive = try Archive(url: url, accessMode: .read)
    let e = try #require(archive[name])
    var out: [UInt8] = []
    _ = try archive.extract(e) { out += $0 }
    return out
}

/// Randomly mutated pickles must load or throw CheckpointError, never crash.
@Test func mutatedPicklesNeverCrash() throws {
    let source = fixture("bare_state_dict.pth")
    let pickle = try entry("bare_state_dict/data.pkl", of: source)
    var storages: [String: [UInt8]] = [:]
    for key in ["0", "1", "2", "3"] { storages[key] = try entry("bare_state_dict/data/\(key)", of: source) }
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    var rng = XorShift(state: 0x9E37_79B9_7F4A_7C15)
    var failures = 0
    for i in 0..<400 {
        var bytes = pickle
        for _ in 0..<(1 + rng.below(4)) {
            switch rng.below(3) {
            case 0: bytes[rng.below(bytes.count)] = UInt8(truncatingIfNeeded: rng.next())
            case 1: bytes.remove(at: rng.below(bytes.count))
            default: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: rng.below(bytes.count))
            }
        }
        let url = dir.appendingPathComponent("fuzz\(i).pth")
        try writePth(url, pickle: bytes, storages: storages, folder: "bare_state_dict")
        do { _ = try PthReader.load(url) } catch is CheckpointError { failures += 1 }
        try FileManager.default.removeItem(at: url)
    }
    #expect(failures > 0)
}

/// Randomly corrupted zip containers must load or throw CheckpointError, never crash.
@Test func corruptedZipsNeverCrash() throws {
    let original = [UInt8](try Data(contentsOf: fixture("bare_state_dict.pth")))
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    var rng = XorShift(state: 0xD1B5_4A32_D192_ED03)
    for i in 0..<300 {
        var bytes = original
        for _ in 0..<(1 + rng.below(3)) { bytes[rng.below(bytes.count)] = UInt8(truncatingIfNeeded: rng.next()) }
        let url = dir.appendingPathComponent("zip\(i).pth")
        try Data(bytes).write(to: url)
        do { _ = try PthReader.load(url) } catch is CheckpointError {}
        try FileManager.default.removeItem(at: url)
    }
}
