/// A dense, row-major Float32 tensor with reference semantics.
///
/// Storage is one heap block owned by a class, so passing a `Tensor` around never copies and
/// never triggers copy-on-write inside a kernel. Kernels receive raw pointers (`ptr`) and are
/// free functions; layers are structs that own their weights as `Tensor`s. A reverse-mode pass
/// adds backward kernels beside the forward ones and keeps the forward activations it needs
/// (see docs/ARCHITECTURE.md).
public struct Tensor: @unchecked Sendable {
    public final class Storage: @unchecked Sendable {
        package let base: UnsafeMutablePointer<Float>
        public let count: Int
        public init(count: Int) {
            self.count = count
            base = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        }
        deinit { base.deallocate() }
    }

    public let shape: [Int]
    public let storage: Storage
    /// First element of this tensor in `storage` (non-zero for row views, e.g. one projection
    /// of a stacked q|k|v weight).
    public let offset: Int
    /// Number of elements (the product of `shape`).
    public let count: Int

    /// A zero-filled tensor.
    public init(zeros shape: [Int]) {
        self.shape = shape
        let n = shape.reduce(1, *)
        storage = Storage(count: n)
        offset = 0
        count = n
        storage.base.initialize(repeating: 0, count: max(n, 1))
    }

    /// A tensor whose contents are unspecified until written (Float is a trivial type; callers
    /// must write every element before reading it).
    public init(uninitialized shape: [Int]) {
        self.shape = shape
        count = shape.reduce(1, *)
        storage = Storage(count: count)
        offset = 0
    }

    public init(shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not match \(values.count) values")
        self.shape = shape
        storage = Storage(count: values.count)
        offset = 0
        count = values.count
        values.withUnsafeBufferPointer { src in
            if let b = src.baseAddress { storage.base.initialize(from: b, count: values.count) }
        }
    }

    package var ptr: UnsafeMutablePointer<Float> { storage.base + offset }
    package var buffer: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: ptr, count: count)
    }
    public var array: [Float] { withBuffer { Array($0) } }

    /// Runs `body` with a pointer to the first element. The storage lives until `body` returns
    /// (a bare `ptr` does not keep its tensor alive: Swift may release a local right after the
    /// read of its pointer); the pointer must not escape `body`.
    @inline(__always)
    package func withPointer<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) { try body(storage.base + offset) }
    }

    /// Runs `body` with the elements as a buffer (the storage lives until `body` returns).
    @inline(__always)
    package func withBuffer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) {
            try body(UnsafeMutableBufferPointer(start: storage.base + offset, count: count))
        }
    }

    /// Same storage, new shape (element count must match).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count)
        return Tensor(shape: newShape, storage: storage, offset: offset)
    }

    /// Rows `range` of the first dimension, sharing storage (a view, not a copy).
    public func rows(_ range: Range<Int>) -> Tensor {
        precondition(!shape.isEmpty && range.lowerBound >= 0 && range.upperBound <= shape[0])
        let rowSize = shape.dropFirst().reduce(1, *)
        var s = shape
        s[0] = range.count
        return Tensor(shape: s, storage: storage, offset: offset + range.lowerBound * rowSize)
    }

    /// A tensor of `shape` at `offset` elements into `storage` (bounds-checked).
    public init(shape: [Int], storage: Storage, offset: Int = 0) {
        let n = shape.reduce(1, *)
        precondition(offset >= 0 && offset + n <= storage.count, "view \(shape) at \(offset) exceeds storage")
        self.shape = shape
        self.storage = storage
        self.offset = offset
        self.count = n
    }

    /// A new tensor with the same shape and a copy of the values.
    public func copy() -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.ptr.update(from: ptr, count: count)
        return t
    }

    /// Sets every element to zero.
    public func zero() { ptr.update(repeating: 0, count: count) }
}

// Tensor-level element-wise helpers. Kernels that take raw pointers must only be called while
// the owning tensors are provably alive: Swift may release a local tensor right after its last
// use, which can be the `.ptr` read itself. Passing `Tensor` values as arguments keeps them alive
// for the duration of the call (guaranteed parameter convention), so model code uses these.
extension Kernels {
    /// y += x (same element count).
    public static func add(_ y: Tensor, _ x: Tensor) {
        precondition(y.count == x.count, "add: \(y.shape) vs \(x.shape)")
        add(y.ptr, x.ptr, y.count)
    }

    /// Every row of y (rows × v.count) += v.
    public static func addRow(_ y: Tensor, _ v: [Float]) {
        precondition(y.count % v.count == 0)
        v.withUnsafeBufferPointer { addRow(y.ptr, rows: y.count / v.count, $0.baseAddress!, v.count) }
    }
}
