/// Decoding of raw little-endian element bytes into `Float` / `Int64` / `Double`, shared by the
/// `.pth`, safetensors and `.npy` readers. Every function checks its byte ranges before touching
/// memory and never traps on file data.
enum ElementCodec {
    /// Size in bytes of one element of `dtype`.
    static func size(of dtype: LoadedTensor.DType) -> Int {
        switch dtype {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    /// Converts IEEE 754 binary16 bits to Float32 (handles subnormals, infinities and NaN).
    @inline(__always)
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32((h >> 10) & 0x1F)
        let mantissa = UInt32(h & 0x3FF)
        if exponent == 0 {
            // Zero or subnormal: value = mantissa * 2^-24.
            let magnitude = Float(mantissa) * Float(bitPattern: 0x3380_0000)  // 2^-24
            return sign == 0 ? magnitude : -magnitude
        }
        if exponent == 0x1F {
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }

    /// Appends `count` elements of `dtype`, read from `raw` at element indices
    /// `start, start + step, ...`, to `floats` (and to `ints` for integer / bool dtypes).
    /// - Throws: `CheckpointError` if any index would fall outside `raw`.
    static func append(
        from raw: UnsafeRawBufferPointer, dtype: LoadedTensor.DType, start: Int, step: Int, count: Int,
        floats: inout [Float], ints: inout [Int64], context: String
    ) throws {
        guard count > 0 else { return }
        let elementSize = size(of: dtype)
        let availableElements = raw.count / elementSize
        // Last index touched: start + (count - 1) * step, overflow-checked.
        let (span, o1) = (count - 1).multipliedReportingOverflow(by: step)
        let (last, o2) = start.addingReportingOverflow(span)
        guard start >= 0, step >= 0, !o1, !o2, last < availableElements else {
            throw CheckpointError("\(context): element range exceeds the \(availableElements)-element buffer")
        }
        var index = start
        switch dtype {
        case .float32:
            for _ in 0..<count {
                let bits = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: index &* 4, as: UInt32.self))
                floats.append(Float(bitPattern: bits))
                index &+= step
            }
        case .float16:
            for _ in 0..<count {
                let bits = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: index &* 2, as: UInt16.self))
                floats.append(halfToFloat(bits))
                index &+= step
            }
        case .bfloat16:
            for _ in 0..<count {
                let bits = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: index &* 2, as: UInt16.self))
                floats.append(Float(bitPattern: UInt32(bits) << 16))
                index &+= step
            }
        case .float64:
            for _ in 0..<count {
                let bits = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: index &* 8, as: UInt64.self))
                floats.append(Float(Double(bitPattern: bits)))
                index &+= step
            }
        case .int64:
            for _ in 0..<count {
                let v = Int64(littleEndian: raw.loadUnaligned(fromByteOffset: index &* 8, as: Int64.self))
                ints.append(v); floats.append(Float(v))
                index &+= step
            }
        case .int32:
            for _ in 0..<count {
                let v = Int64(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: index &* 4, as: Int32.self)))
                ints.append(v); floats.append(Float(v))
                index &+= step
            }
        case .int16:
            for _ in 0..<count {
                let v = Int64(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: index &* 2, as: Int16.self)))
                ints.append(v); floats.append(Float(v))
                index &+= step
            }
        case .int8:
            for _ in 0..<count {
                let v = Int64(Int8(bitPattern: raw[index]))
                ints.append(v); floats.append(Float(v))
                index &+= step
            }
        case .uint8:
            for _ in 0..<count {
                let v = Int64(raw[index])
                ints.append(v); floats.append(Float(v))
                index &+= step
            }
        case .bool:
            for _ in 0..<count {
                let v: Int64 = raw[index] != 0 ? 1 : 0
                ints.append(v); floats.append(Float(v))
                index &+= step
            }
        }
    }

    /// Product of `shape`, or nil if any dimension is negative or the product overflows.
    static func checkedCount(_ shape: [Int]) -> Int? {
        var total = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, o) = total.multipliedReportingOverflow(by: d)
            if o { return nil }
            total = p
        }
        return total
    }

    /// `count * elementSize`, or nil on overflow.
    static func checkedBytes(_ count: Int, _ elementSize: Int) -> Int? {
        let (p, o) = count.multipliedReportingOverflow(by: elementSize)
        return o || count < 0 ? nil : p
    }
}
