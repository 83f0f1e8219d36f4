import Foundation

/// Loads PyTorch `.pth` checkpoints written by `torch.save` (zip layout) without executing any of
/// their pickle: see `PickleVM` (restricted interpreter) and `TorchHost` (global allow-list and
/// tensor reconstruction).
public enum PthReader {
    /// Loads the state dict stored in `url`.
    ///
    /// - If the unpickled root is a dict whose values are all tensors, it is the state dict.
    /// - Otherwise, with `paramKey`, `root[paramKey]` is used (an error lists the keys if absent);
    ///   without it, `params_ema` is preferred, then `params` (the BasicSR convention).
    ///
    /// Keys keep the order of the file. Floating-point tensors become Float32; integer tensors
    /// (e.g. int64 `relative_position_index`) also keep exact values in `ints`.
    /// - Throws: `CheckpointError` naming the file and the problem (not a zip, truncated,
    ///   forbidden global or opcode, out-of-bounds tensor view, missing key, ...).
    public static func load(_ url: URL, paramKey: String? = nil) throws -> StateDict {
        let zip = try TorchZip(url: url)
        let context = zip.context
        if zip.has("byteorder") {
            let order = String(
                decoding: try zip.read("byteorder", maxBytes: TorchZip.maxSmallEntryBytes), as: UTF8.self
            )
            .trimmingCharacters(in: .whitespacesAndNewlines)
            guard order == "little" else {
                throw CheckpointError(
                    "\(context): byteorder is '\(order)'; only little-endian checkpoints are supported")
            }
        }
        let pickle = try zip.read("data.pkl", maxBytes: TorchZip.maxPickleBytes)
        let host = TorchHost(zip: zip)
        let vm = PickleVM(bytes: pickle, context: context, host: host)
        return try vm.run { root in try selectStateDict(root, paramKey: paramKey, context: context) }
    }

    /// Picks the state dict out of the unpickled root (see `load`).
    static func selectStateDict(_ root: PickleValue, paramKey: String?, context: String) throws -> StateDict {
        guard case .dict(let dict) = root else {
            throw CheckpointError("\(context): top-level object is a \(root.typeName), expected a dict")
        }
        if dict.count > 0, let bare = try? stateDict(from: dict, name: "root", context: context) {
            return bare
        }
        let keyList = dict.keys.map(\.description).joined(separator: ", ")
        let chosen: String
        if let paramKey {
            guard dict[.string(paramKey)] != nil else {
                throw CheckpointError("\(context): no key '\(paramKey)' in checkpoint; available keys: [\(keyList)]")
            }
            chosen = paramKey
        } else if dict[.string("params_ema")] != nil {
            chosen = "params_ema"
        } else if dict[.string("params")] != nil {
            chosen = "params"
        } else {
            throw CheckpointError(
                "\(context): not a bare state dict and no 'params_ema' or 'params' key; keys found: [\(keyList)]")
        }
        guard case .dict(let inner)? = dict[.string(chosen)] else {
            throw CheckpointError(
                "\(context): '\(chosen)' is a \(dict[.string(chosen)]?.typeName ?? "missing value"), expected a dict of tensors"
            )
        }
        return try stateDict(from: inner, name: "'\(chosen)'", context: context)
    }

    /// Converts a dict of `str -> tensor` into a `StateDict`, or throws naming the first bad entry.
    private static func stateDict(from dict: PickleDict, name: String, context: String) throws -> StateDict {
        var result = StateDict()
        for key in dict.keys {
            guard case .string(let k) = key else {
                throw CheckpointError("\(context): \(name) has a non-string key \(key)")
            }
            guard case .tensor(let t)? = dict[key] else {
                throw CheckpointError(
                    "\(context): \(name)['\(k)'] is a \(dict[key]?.typeName ?? "missing value"), not a tensor")
            }
            result.insert(k, t)
        }
        return result
    }
}
