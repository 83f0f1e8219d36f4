/// A tensor read from a checkpoint, converted to Float32 (and, for integer dtypes, also kept
/// exactly as Int64).
public struct LoadedTensor: Sendable {
    /// Element type as stored in the file.
    public enum DType: String, Sendable {
        case float32, float16, bfloat16, float64, int64, int32, int16, int8, uint8, bool
        public var isFloatingPoint: Bool {
            switch self {
            case .float32, .float16, .bfloat16, .float64: return true
            default: return false
            }
        }
    }

    public var shape: [Int]
    public var dtype: DType
    /// Row-major (C-contiguous) values converted to Float32. Always populated.
    public var floats: [Float]
    /// Exact values for integer dtypes (int64 `relative_position_index` buffers); nil otherwise.
    public var ints: [Int64]?

    public init(shape: [Int], dtype: DType, floats: [Float], ints: [Int64]? = nil) {
        self.shape = shape
        self.dtype = dtype
        self.floats = floats
        self.ints = ints
    }

    public var count: Int { shape.reduce(1, *) }
}

/// An ordered state dict: key order is the order the file stored them in.
public struct StateDict: Sendable {
    public private(set) var keys: [String] = []
    public private(set) var tensors: [String: LoadedTensor] = [:]

    public init() {}

    public subscript(key: String) -> LoadedTensor? { tensors[key] }

    public mutating func insert(_ key: String, _ tensor: LoadedTensor) {
        if tensors[key] == nil { keys.append(key) }
        tensors[key] = tensor
    }

    public var count: Int { keys.count }
}
