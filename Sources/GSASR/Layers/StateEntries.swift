import GSASRCheckpoint
import GSASRTensor

/// How a parameter's values are laid out in our tensor compared with PyTorch's.
public enum ParameterLayout: Sendable, Equatable {
    /// The same row-major layout as the official tensor.
    case plain
    /// A 3×3 convolution weight stored as (cout, ky, kx, cin) (see `Conv3x3Weights`); the
    /// official tensor is (cout, cin, ky, kx). Element-wise code (Adam, EMA) is layout-blind;
    /// export and import permute.
    case conv3x3(cout: Int, cin: Int)
}

/// One learnable tensor under its official state-dict key. `value` may be a view into a stacked
/// tensor (k|v, q|k|v, the five heads' first layers): there is only one copy of every weight.
public struct NamedParameter: @unchecked Sendable {
    public let key: String
    public let value: Tensor
    public let layout: ParameterLayout
    /// The official shape (PyTorch's).
    public let torchShape: [Int]

    init(_ key: String, _ value: Tensor, layout: ParameterLayout = .plain) {
        self.key = key
        self.value = value
        self.layout = layout
        switch layout {
        case .plain: torchShape = value.shape
        case .conv3x3(let o, let i): torchShape = [o, i, 3, 3]
        }
    }

    /// A parameter record for another tensor of the same layout (a gradient, a moment, an EMA
    /// copy), to convert it to and from PyTorch's layout.
    public static func scratch(like p: NamedParameter, value: Tensor) -> NamedParameter {
        NamedParameter(p.key, value, layout: p.layout)
    }

    /// The values in PyTorch's layout.
    public func torchValues(of t: Tensor? = nil) -> [Float] {
        let src = (t ?? value).array
        switch layout {
        case .plain: return src
        case .conv3x3(let cout, let cin):
            var r = [Float](repeating: 0, count: src.count)
            for o in 0..<cout {
                for i in 0..<cin {
                    for tap in 0..<9 { r[(o * cin + i) * 9 + tap] = src[o * 9 * cin + tap * cin + i] }
                }
            }
            return r
        }
    }

    /// Overwrites the values from PyTorch's layout.
    public func setTorchValues(_ v: [Float]) {
        precondition(v.count == value.count, "\(key): \(v.count) values for \(value.count) elements")
        let p = value.ptr
        switch layout {
        case .plain: for j in 0..<v.count { p[j] = v[j] }
        case .conv3x3(let cout, let cin):
            for o in 0..<cout {
                for i in 0..<cin {
                    for tap in 0..<9 { p[o * 9 * cin + tap * cin + i] = v[(o * cin + i) * 9 + tap] }
                }
            }
        }
    }
}

/// A state-dict entry in the official order: a parameter, or an integer buffer
/// (`relative_position_index`), or a float buffer.
public enum StateEntry: @unchecked Sendable {
    case parameter(NamedParameter)
    case buffer(key: String, shape: [Int], values: [Int64])
    /// A float buffer (RoPE's `rope_t_x`/`rope_t_y`, SwinIR's `attn_mask`).
    case floatBuffer(key: String, shape: [Int], values: [Float])

    public var key: String {
        switch self {
        case .parameter(let p): return p.key
        case .buffer(let k, _, _): return k
        case .floatBuffer(let k, _, _): return k
        }
    }
}

/// Gradient tensors, one per parameter *storage*: the gradient of a view is the same view of
/// the gradient storage, so the stacked layers and their official per-projection views share
/// one gradient, as they share one weight. Created zero-filled on first use.
public final class Gradients: @unchecked Sendable {
    private var storages: [ObjectIdentifier: Tensor.Storage] = [:]

    public init() {}

    /// The gradient of `t` (same shape, same offset into its own storage).
    public func of(_ t: Tensor) -> Tensor {
        let id = ObjectIdentifier(t.storage)
        let s: Tensor.Storage
        if let e = storages[id] {
            s = e
        } else {
            s = Tensor.Storage(count: t.storage.count)
            s.base.initialize(repeating: 0, count: max(1, t.storage.count))
            storages[id] = s
        }
        return Tensor(shape: t.shape, storage: s, offset: t.offset)
    }

    /// Sets every gradient to zero (PyTorch's zero_grad; the storages are kept).
    public func zero() {
        for s in storages.values { s.base.update(repeating: 0, count: max(1, s.count)) }
    }
}

extension Array where Element == StateEntry {
    /// The learnable parameters only (`named_parameters()`).
    public var parameters: [NamedParameter] {
        compactMap { if case .parameter(let p) = $0 { return p } else { return nil } }
    }

    /// A `StateDict` of the current values in PyTorch's layout (`values` replaces each
    /// parameter's tensor, e.g. by its EMA copy, when given).
    public func stateDict(values: ((NamedParameter) -> Tensor)? = nil) -> StateDict {
        var sd = StateDict()
        for e in self {
            switch e {
            case .parameter(let p):
                sd.insert(
                    p.key, LoadedTensor(shape: p.torchShape, dtype: .float32, floats: p.torchValues(of: values?(p))))
            case .buffer(let k, let shape, let v):
                sd.insert(k, LoadedTensor(shape: shape, dtype: .int64, floats: v.map { Float($0) }, ints: v))
            case .floatBuffer(let k, let shape, let v):
                sd.insert(k, LoadedTensor(shape: shape, dtype: .float32, floats: v))
            }
        }
        return sd
    }
}

extension Array where Element == StateEntry {
    /// The number of learnable values (buffers not counted), as `sum(p.numel() for p in
    /// module.parameters())`.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }
}
