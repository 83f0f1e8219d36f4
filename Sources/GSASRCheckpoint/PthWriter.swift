import Foundation
import ZIPFoundation

/// Writes state dicts in `torch.save`'s zip format (PyTorch ≥ 1.6, `_use_new_zipfile_serialization`),
/// as the official code saves and loads checkpoints: `{'params_ema': OrderedDict, 'params': OrderedDict}`
/// (basicsr `save_network` with `param_key=['params_ema', 'params']`).
///
/// The container: `ARCHIVE/data.pkl` (pickle protocol 2), one stored (uncompressed) entry
/// `ARCHIVE/data/<i>` per tensor with its little-endian bytes, `ARCHIVE/byteorder` = `little`
/// and `ARCHIVE/version` = `3`. Each tensor pickles as
/// `torch._utils._rebuild_tensor_v2(persistent_id(('storage', torch.FloatStorage, '<i>', 'cpu', numel)),
/// 0, size, stride, False, OrderedDict())`, exactly what `torch.save` emits for a contiguous CPU
/// tensor; int64 tensors use `torch.LongStorage`. Only float32 and int64 tensors are written.
public enum PthWriter {
    /// Saves `groups` (e.g. `[("params_ema", sd), ("params", sd)]`) to `url` atomically.
    public static func save(_ groups: [(key: String, dict: StateDict)], to url: URL, archiveName: String = "archive")
        throws
    {
        var pickle: [UInt8] = [0x80, 2, UInt8(ascii: "}")]  // PROTO 2, EMPTY_DICT
        var storages: [[UInt8]] = []
        pickle.append(UInt8(ascii: "("))  // MARK
        for (groupKey, dict) in groups {
            unicode(groupKey, &pickle)
            global("collections", "OrderedDict", &pickle)
            pickle.append(UInt8(ascii: ")"))  // EMPTY_TUPLE
            pickle.append(UInt8(ascii: "R"))  // REDUCE
            pickle.append(UInt8(ascii: "("))  // MARK
            for key in dict.keys {
                let t = dict[key]!
                let id = storages.count
                var bytes: [UInt8] = []
                let storageType: String
                switch t.dtype {
                case .int64:
                    let ints = t.ints ?? t.floats.map { Int64($0) }
                    bytes.reserveCapacity(ints.count * 8)
                    for v in ints { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
                    storageType = "LongStorage"
                case .float32:
                    bytes.reserveCapacity(t.floats.count * 4)
                    for v in t.floats { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
                    storageType = "FloatStorage"
                default:
                    throw CheckpointError("pth writer: tensor '\(key)' has dtype \(t.dtype); only float32 and int64 are written")
                }
                storages.append(bytes)
                unicode(key, &pickle)
                global("torch._utils", "_rebuild_tensor_v2", &pickle)
                pickle.append(UInt8(ascii: "("))  // MARK (args tuple)
                // persistent id ('storage', torch.XStorage, '<id>', 'cpu', numel)
                pickle.append(UInt8(ascii: "("))
                unicode("storage", &pickle)
                global("torch", storageType, &pickle)
                unicode(String(id), &pickle)
                unicode("cpu", &pickle)
                int(t.count, &pickle)
                pickle.append(UInt8(ascii: "t"))  // TUPLE
                pickle.append(UInt8(ascii: "Q"))  // BINPERSID
                int(0, &pickle)  // storage offset
                intTuple(t.shape, &pickle)
                var strides = [Int](repeating: 1, count: t.shape.count)
                if t.shape.count > 1 {
                    for d in stride(from: t.shape.count - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * t.shape[d + 1] }
                }
                intTuple(strides, &pickle)
                pickle.append(0x89)  // NEWFALSE (requires_grad)
                global("collections", "OrderedDict", &pickle)
                pickle.append(UInt8(ascii: ")"))
                pickle.append(UInt8(ascii: "R"))  // backward hooks
                pickle.append(UInt8(ascii: "t"))  // TUPLE (args)
                pickle.append(UInt8(ascii: "R"))  // REDUCE
            }
            pickle.append(UInt8(ascii: "u"))  // SETITEMS into the OrderedDict
        }
        pickle.append(UInt8(ascii: "u"))  // SETITEMS into the top dict
        pickle.append(UInt8(ascii: "."))  // STOP

        let dir = url.deletingLastPathComponent()
        let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UUID().uuidString)")
        do {
            let archive = try Archive(url: tmp, accessMode: .create)
            func add(_ path: String, _ bytes: [UInt8]) throws {
                let data = Data(bytes)
                try archive.addEntry(
                    with: "\(archiveName)/\(path)", type: .file, uncompressedSize: Int64(data.count),
                    compressionMethod: .none
                ) { position, size in
                    data.subdata(in: Int(position)..<(Int(position) + size))
                }
            }
            try add("data.pkl", pickle)
            try add("byteorder", Array("little".utf8))
            for (i, s) in storages.enumerated() { try add("data/\(i)", s) }
            try add("version", Array("3\n".utf8))
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            throw CheckpointError("pth writer: cannot write '\(url.path)' (\(error.localizedDescription))")
        }
        guard rename(tmp.path, url.path) == 0 else {
            let e = errno
            try? FileManager.default.removeItem(at: tmp)
            throw CheckpointError("pth writer: cannot write '\(url.path)' (errno \(e))")
        }
    }

    static func unicode(_ s: String, _ out: inout [UInt8]) {
        let u = Array(s.utf8)
        out.append(UInt8(ascii: "X"))  // BINUNICODE
        withUnsafeBytes(of: UInt32(u.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: u)
    }

    static func global(_ module: String, _ name: String, _ out: inout [UInt8]) {
        out.append(UInt8(ascii: "c"))
        out.append(contentsOf: Array("\(module)\n\(name)\n".utf8))
    }

    static func int(_ v: Int, _ out: inout [UInt8]) {
        if v >= 0 && v < 256 {
            out.append(UInt8(ascii: "K"))
            out.append(UInt8(v))
        } else if v >= Int(Int32.min) && v <= Int(Int32.max) {
            out.append(UInt8(ascii: "J"))
            withUnsafeBytes(of: Int32(v).littleEndian) { out.append(contentsOf: $0) }
        } else {
            out.append(0x8a)  // LONG1, 8 bytes
            out.append(8)
            withUnsafeBytes(of: Int64(v).littleEndian) { out.append(contentsOf: $0) }
        }
    }

    static func intTuple(_ v: [Int], _ out: inout [UInt8]) {
        out.append(UInt8(ascii: "("))
        for x in v { int(x, &out) }
        out.append(UInt8(ascii: "t"))
    }
}
