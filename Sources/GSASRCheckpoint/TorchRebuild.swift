/// The torch-specific half of `.pth` loading: the global allow-list, storages (BINPERSID) and the
/// reconstruction of tensors from `_rebuild_tensor_v2` / `_rebuild_parameter` calls. Nothing is
/// executed: allowed callables are interpreted here, everything else is an error.

/// A typed storage referenced by a persistent id: `('storage', StorageClass, key, location, numel)`.
struct TorchStorage {
    var key: String
    var dtype: LoadedTensor.DType
    var numel: Int
    /// Raw little-endian bytes, exactly `numel * elementSize` long.
    var bytes: [UInt8]
}

/// `PickleHost` for torch.save state dicts.
final class TorchHost: PickleHost {
    /// Storage classes allowed in persistent ids and GLOBAL, with their element types.
    static let storageClasses: [String: LoadedTensor.DType] = [
        "FloatStorage": .float32, "HalfStorage": .float16, "BFloat16Storage": .bfloat16,
        "DoubleStorage": .float64, "LongStorage": .int64, "IntStorage": .int32, "ShortStorage": .int16,
        "CharStorage": .int8, "ByteStorage": .uint8, "BoolStorage": .bool,
    ]
    /// Largest tensor materialised, in elements (a tensor with zero strides could otherwise claim
    /// far more elements than its storage holds).
    static let maxTensorElements = 1 << 31

    private let zip: TorchZip
    private var context: String { zip.context }
    private var storageCache: [String: TorchStorage] = [:]

    init(zip: TorchZip) { self.zip = zip }

    private func fail(_ message: String) -> CheckpointError { CheckpointError("\(context): \(message)") }

    func resolveGlobal(module: String, name: String) throws -> PickleValue {
        let allowed: Bool
        switch module {
        case "collections": allowed = name == "OrderedDict"
        case "torch._utils": allowed = name == "_rebuild_tensor_v2" || name == "_rebuild_parameter"
        case "torch": allowed = Self.storageClasses[name] != nil
        default: allowed = false
        }
        guard allowed else { throw fail("pickle references forbidden global '\(module).\(name)'") }
        return .global(module: module, name: name)
    }

    func persistentLoad(_ pid: PickleValue) throws -> PickleValue {
        guard case .tuple(let t) = pid, t.count == 5, case .string("storage") = t[0] else {
            throw fail("unsupported persistent id (\(pid.typeName)); expected ('storage', class, key, location, numel)")
        }
        guard case .global("torch", let className) = t[1], let dtype = Self.storageClasses[className] else {
            throw fail("persistent id names \(t[1].typeName), expected a torch.*Storage class")
        }
        guard case .string(let key) = t[2], case .string = t[3], case .int(let numel64) = t[4] else {
            throw fail("malformed storage persistent id")
        }
        guard numel64 >= 0, let numel = Int(exactly: numel64) else { throw fail("storage '\(key)' has negative size") }
        let elementSize = ElementCodec.size(of: dtype)
        guard let byteCount = ElementCodec.checkedBytes(numel, elementSize) else {
            throw fail("storage '\(key)' size \(numel) x \(elementSize) bytes overflows")
        }
        if let cached = storageCache[key] {
            guard cached.dtype == dtype, cached.numel == numel else {
                throw fail("storage '\(key)' is referenced with conflicting types or sizes")
            }
            return .storage(cached)
        }
        guard !key.contains("/"), !key.contains(".."), !key.isEmpty else { throw fail("invalid storage key '\(key)'") }
        let bytes = try zip.readPrefix("data/\(key)", byteCount: byteCount)
        let storage = TorchStorage(key: key, dtype: dtype, numel: numel, bytes: bytes)
        storageCache[key] = storage
        return .storage(storage)
    }

    func reduce(module: String, name: String, args: [PickleValue], makeDict: () -> PickleDict) throws -> PickleValue {
        switch (module, name) {
        case ("collections", "OrderedDict"):
            guard args.isEmpty else { throw fail("collections.OrderedDict called with arguments") }
            return .dict(makeDict())
        case ("torch._utils", "_rebuild_tensor_v2"):
            return .tensor(try rebuildTensor(args))
        case ("torch._utils", "_rebuild_parameter"):
            guard args.count == 3, case .tensor(let t) = args[0] else {
                throw fail("_rebuild_parameter expects (tensor, requires_grad, backward_hooks)")
            }
            return .tensor(t)
        default:
            throw fail("pickle calls '\(module).\(name)', which is not callable here")
        }
    }

    private func intTuple(_ v: PickleValue, _ what: String) throws -> [Int] {
        guard case .tuple(let items) = v else {
            throw fail("_rebuild_tensor_v2 \(what) is \(v.typeName), expected tuple")
        }
        return try items.map { item in
            guard case .int(let i) = item, let n = Int(exactly: i), n >= 0 else {
                throw fail("_rebuild_tensor_v2 \(what) has a negative or non-integer entry")
            }
            return n
        }
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`:
    /// a C-contiguous copy of the strided view, every reachable element bounds-checked.
    private func rebuildTensor(_ args: [PickleValue]) throws -> LoadedTensor {
        guard args.count == 6 || args.count == 7 else {
            throw fail("_rebuild_tensor_v2 expects 6 or 7 arguments, got \(args.count)")
        }
        guard case .storage(let storage) = args[0] else {
            throw fail("_rebuild_tensor_v2 storage argument is \(args[0].typeName)")
        }
        guard case .int(let offset64) = args[1], let offset = Int(exactly: offset64), offset >= 0 else {
            throw fail("_rebuild_tensor_v2 storage_offset is invalid")
        }
        let shape = try intTuple(args[2], "size")
        let stride = try intTuple(args[3], "stride")
        guard shape.count == stride.count else {
            throw fail("_rebuild_tensor_v2 size \(shape) and stride \(stride) differ in rank")
        }
        guard let count = ElementCodec.checkedCount(shape), count <= Self.maxTensorElements else {
            throw fail("tensor size \(shape) is too large")
        }
        let where_ = "storage '\(storage.key)' (\(storage.numel) elements)"
        if count == 0 {
            guard offset <= storage.numel else { throw fail("tensor offset \(offset) is beyond \(where_)") }
            return LoadedTensor(
                shape: shape, dtype: storage.dtype, floats: [], ints: storage.dtype.isFloatingPoint ? nil : [])
        }
        // Largest reachable index: offset + sum((size_i - 1) * stride_i).
        var last = offset
        for (s, st) in Swift.zip(shape, stride) {
            let (m, o1) = (s - 1).multipliedReportingOverflow(by: st)
            let (a, o2) = last.addingReportingOverflow(m)
            guard !o1, !o2 else { throw fail("tensor size \(shape) / stride \(stride) overflows") }
            last = a
        }
        guard last < storage.numel else {
            throw fail(
                "tensor size \(shape), stride \(stride), offset \(offset) reaches element \(last), beyond \(where_)")
        }
        var floats: [Float] = []
        floats.reserveCapacity(count)
        var ints: [Int64] = []
        let isInt = !storage.dtype.isFloatingPoint
        if isInt { ints.reserveCapacity(count) }
        let ctx = context
        try storage.bytes.withUnsafeBytes { raw in
            let rank = shape.count
            if rank == 0 {
                try ElementCodec.append(
                    from: raw, dtype: storage.dtype, start: offset, step: 1, count: 1,
                    floats: &floats, ints: &ints, context: ctx)
                return
            }
            // Collapse to contiguous when strides are row-major.
            var contiguous = true
            var expected = 1
            for d in stride.indices.reversed() where shape[d] != 1 {
                if stride[d] != expected { contiguous = false; break }
                expected &*= shape[d]
            }
            if contiguous {
                try ElementCodec.append(
                    from: raw, dtype: storage.dtype, start: offset, step: 1, count: count,
                    floats: &floats, ints: &ints, context: ctx)
                return
            }
            // Odometer over the outer dimensions; the innermost one is a strided run.
            let inner = shape[rank - 1], innerStride = stride[rank - 1]
            var index = [Int](repeating: 0, count: rank - 1)
            var base = offset
            let rows = count / inner
            for _ in 0..<rows {
                try ElementCodec.append(
                    from: raw, dtype: storage.dtype, start: base, step: innerStride, count: inner,
                    floats: &floats, ints: &ints, context: ctx)
                var d = rank - 2
                while d >= 0 {
                    index[d] += 1
                    base += stride[d]
                    if index[d] < shape[d] { break }
                    base -= stride[d] * shape[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
        return LoadedTensor(shape: shape, dtype: storage.dtype, floats: floats, ints: isInt ? ints : nil)
    }
}
