import GSASRCheckpoint
import GSASRTensor

/// Errors from building a model out of a state dict. One line, naming the first problem key.
public struct ModelLoadError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Strict, prefix-scoped access to a state dict, in the spirit of `load_state_dict(strict=True)`.
///
/// Each module asks for its own keys with the exact expected shape; `finish()` then rejects
/// keys nobody asked for. Errors name the first missing, mis-shaped or unexpected key.
public final class ParameterLoader {
    let dict: StateDict
    let fileLabel: String
    private(set) var used: Set<String> = []

    public init(_ dict: StateDict, label: String) {
        self.dict = dict
        self.fileLabel = label
    }

    public func tensor(_ key: String, _ shape: [Int]) throws -> LoadedTensor {
        guard let t = dict[key] else {
            throw ModelLoadError("\(fileLabel): missing key '\(key)' (expected shape \(shape))")
        }
        guard t.shape == shape else {
            throw ModelLoadError("\(fileLabel): key '\(key)' has shape \(t.shape), expected \(shape)")
        }
        used.insert(key)
        return t
    }

    public func floats(_ key: String, _ shape: [Int]) throws -> [Float] {
        try tensor(key, shape).floats
    }

    public func ints(_ key: String, _ shape: [Int]) throws -> [Int64] {
        let t = try tensor(key, shape)
        guard let ints = t.ints else {
            throw ModelLoadError("\(fileLabel): key '\(key)' must be an integer tensor, found \(t.dtype.rawValue)")
        }
        return ints
    }

    public func has(_ key: String) -> Bool { dict[key] != nil }

    public func shape(_ key: String) throws -> [Int] {
        guard let t = dict[key] else { throw ModelLoadError("\(fileLabel): missing key '\(key)'") }
        return t.shape
    }

    /// Counts consecutive indices i = 0, 1, ... for which `key(i)` exists.
    public func count(_ key: (Int) -> String) -> Int {
        var i = 0
        while dict[key(i)] != nil { i += 1 }
        return i
    }

    /// Fails on the first key (in file order) that no module consumed.
    public func finish() throws {
        for k in dict.keys where !used.contains(k) {
            throw ModelLoadError("\(fileLabel): unexpected key '\(k)'")
        }
    }
}
