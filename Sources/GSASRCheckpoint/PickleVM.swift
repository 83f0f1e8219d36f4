/// A restricted, non-executing pickle virtual machine.
///
/// It understands only the opcodes that `torch.save` emits for state dicts (protocol 2, plus the
/// harmless protocol 4 framing opcodes) and never imports or calls anything: `GLOBAL` is resolved
/// through `PickleHost.resolveGlobal` (an allow-list) and `REDUCE` / `BINPERSID` are delegated to
/// the host, which builds plain values. Every read is bounds-checked, the stack, memo, strings and
/// tuple nesting are limited, and malformed input throws `CheckpointError` instead of trapping.

/// A value on the pickle stack.
indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int64)
    case float(Double)
    case string(String)
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    /// A global that the host's allow-list accepted.
    case global(module: String, name: String)
    /// A storage produced by the host's persistent-load hook.
    case storage(TorchStorage)
    /// A tensor produced by the host's reduce hook.
    case tensor(LoadedTensor)

    /// Short type name for error messages (never recursive).
    var typeName: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .global(let m, let n): return "global \(m).\(n)"
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }

    /// Tuple nesting depth (containers count as 1: they are emptied on teardown).
    var nestingDepth: Int {
        if case .tuple(let items) = self { return 1 + (items.map(\.nestingDepth).max() ?? 0) }
        return 1
    }
}

/// Mutable pickle list (reference semantics like Python's, shared through the memo).
final class PickleList {
    var items: [PickleValue] = []
}

/// Hashable dict key; only immutable scalar kinds (and tuples of them) may be keys.
indirect enum PickleKey: Hashable, CustomStringConvertible {
    case none, bool(Bool), int(Int64), float(UInt64), string(String), tuple([PickleKey])

    init?(_ value: PickleValue) {
        switch value {
        case .none: self = .none
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(i)
        case .float(let d): self = .float(d.bitPattern)
        case .string(let s): self = .string(s)
        case .tuple(let items):
            var keys: [PickleKey] = []
            for item in items {
                guard let k = PickleKey(item) else { return nil }
                keys.append(k)
            }
            self = .tuple(keys)
        default: return nil
        }
    }

    var description: String {
        switch self {
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .float(let bits): return String(Double(bitPattern: bits))
        case .string(let s): return "'\(s)'"
        case .tuple(let k): return "(" + k.map(\.description).joined(separator: ", ") + ")"
        }
    }
}

/// Mutable, insertion-ordered pickle dict (also used for `collections.OrderedDict`).
final class PickleDict {
    private(set) var keys: [PickleKey] = []
    private(set) var values: [PickleKey: PickleValue] = [:]

    func set(_ key: PickleKey, _ value: PickleValue) {
        if values.updateValue(value, forKey: key) == nil { keys.append(key) }
    }

    subscript(key: PickleKey) -> PickleValue? { values[key] }

    var count: Int { keys.count }

    /// Drops all contents (used to break reference cycles after a run).
    func removeAll() { keys.removeAll(); values.removeAll() }
}

/// The callbacks through which the VM turns globals, persistent ids and reductions into values.
protocol PickleHost {
    /// Returns `.global(...)` for an allowed global; throws for anything else.
    func resolveGlobal(module: String, name: String) throws -> PickleValue
    /// Handles BINPERSID.
    func persistentLoad(_ pid: PickleValue) throws -> PickleValue
    /// Handles REDUCE for an allowed callable. `makeDict` creates a VM-tracked dict.
    func reduce(module: String, name: String, args: [PickleValue], makeDict: () -> PickleDict) throws -> PickleValue
}

/// The restricted pickle interpreter.
final class PickleVM {
    /// Resource limits.
    static let maxStack = 1 << 22
    static let maxMemo = 1 << 22
    static let maxMarks = 1 << 12
    static let maxStringBytes = 1 << 24
    static let maxTupleDepth = 64

    private let bytes: [UInt8]
    private let context: String
    private let host: PickleHost
    private var pos = 0
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [UInt32: PickleValue] = [:]
    /// Every list and dict created, so that `teardown` can empty them (breaking cycles and
    /// avoiding deep recursive deallocation).
    private var lists: [PickleList] = []
    private var dicts: [PickleDict] = []

    /// - Parameters:
    ///   - bytes: the pickle stream.
    ///   - context: error-message prefix, e.g. "checkpoint x.pth".
    init(bytes: [UInt8], context: String, host: PickleHost) {
        self.bytes = bytes
        self.context = context
        self.host = host
    }

    /// Runs the pickle to STOP, passes the result to `body`, then releases every container the
    /// pickle created. Whatever `body` needs must be copied out of the value before it returns.
    func run<T>(_ body: (PickleValue) throws -> T) throws -> T {
        defer { teardown() }
        let root = try execute()
        return try body(root)
    }

    private func teardown() {
        stack.removeAll(); memo.removeAll(); marks.removeAll()
        for list in lists.reversed() { list.items.removeAll() }
        for dict in dicts.reversed() { dict.removeAll() }
        lists.removeAll(); dicts.removeAll()
    }

    // MARK: - Errors and reading

    private func fail(_ message: String) -> CheckpointError {
        CheckpointError("\(context): \(message)")
    }

    private func truncated(_ what: String) -> CheckpointError {
        fail("pickle data.pkl is truncated (\(what) at offset \(pos) of \(bytes.count))")
    }

    private func readByte(_ what: String) throws -> UInt8 {
        guard pos < bytes.count else { throw truncated(what) }
        defer { pos += 1 }
        return bytes[pos]
    }

    /// Reads `n` bytes as an unsigned little-endian integer (n <= 8).
    private func readLE(_ n: Int, _ what: String) throws -> UInt64 {
        guard n <= bytes.count - pos else { throw truncated(what) }
        var v: UInt64 = 0
        for i in 0..<n { v |= UInt64(bytes[pos + i]) << (8 * UInt64(i)) }
        pos += n
        return v
    }

    private func readSlice(_ n: UInt64, _ what: String) throws -> ArraySlice<UInt8> {
        guard n <= UInt64(Self.maxStringBytes) else {
            throw fail("pickle \(what) of \(n) bytes exceeds the \(Self.maxStringBytes)-byte limit")
        }
        let count = Int(n)
        guard count <= bytes.count - pos else { throw truncated(what) }
        defer { pos += count }
        return bytes[pos..<(pos + count)]
    }

    private func readUTF8(_ n: UInt64, _ what: String) throws -> String {
        let slice = try readSlice(n, what)
        guard let s = String(validating: slice, as: UTF8.self) else { throw fail("pickle \(what) is not valid UTF-8") }
        return s
    }

    /// Reads a newline-terminated ASCII line (GLOBAL operands), at most 256 bytes.
    private func readLine(_ what: String) throws -> String {
        var line: [UInt8] = []
        while true {
            let b = try readByte(what)
            if b == 0x0A { break }
            guard b >= 0x20, b < 0x7F, line.count < 256 else { throw fail("pickle GLOBAL has a malformed \(what)") }
            line.append(b)
        }
        return String(decoding: line, as: UTF8.self)
    }

    // MARK: - Stack

    private func push(_ v: PickleValue) throws {
        guard stack.count < Self.maxStack else { throw fail("pickle stack exceeds \(Self.maxStack) items") }
        stack.append(v)
    }

    private func pop(_ op: String) throws -> PickleValue {
        guard let last = stack.last, stack.count > (marks.last ?? 0) else {
            throw fail("pickle stack underflow in \(op)")
        }
        stack.removeLast()
        return last
    }

    private func top(_ op: String) throws -> PickleValue {
        guard let last = stack.last, stack.count > (marks.last ?? 0) else {
            throw fail("pickle stack underflow in \(op)")
        }
        return last
    }

    private func popMark(_ op: String) throws -> [PickleValue] {
        guard let mark = marks.popLast() else { throw fail("pickle \(op) without MARK") }
        let items = Array(stack[mark...])
        stack.removeSubrange(mark...)
        return items
    }

    private func makeTuple(_ items: [PickleValue]) throws -> PickleValue {
        let depth = 1 + (items.map(\.nestingDepth).max() ?? 0)
        guard depth <= Self.maxTupleDepth else { throw fail("pickle tuples nested deeper than \(Self.maxTupleDepth)") }
        return .tuple(items)
    }

    private func newList() -> PickleList { let l = PickleList(); lists.append(l); return l }
    private func newDict() -> PickleDict { let d = PickleDict(); dicts.append(d); return d }

    private func memoPut(_ index: UInt32) throws {
        let v = try top("PUT")
        guard memo.count < Self.maxMemo || memo[index] != nil else {
            throw fail("pickle memo exceeds \(Self.maxMemo) entries")
        }
        memo[index] = v
    }

    private func memoGet(_ index: UInt32) throws {
        guard let v = memo[index] else { throw fail("pickle GET of unknown memo index \(index)") }
        try push(v)
    }

    private func setItems(_ pairs: [PickleValue], op: String) throws {
        guard pairs.count % 2 == 0 else { throw fail("pickle \(op) with an odd number of items") }
        guard case .dict(let dict) = try top(op) else {
            throw fail("pickle \(op) on a \((try? top(op))?.typeName ?? "missing value"), expected dict")
        }
        var i = 0
        while i < pairs.count {
            guard let key = PickleKey(pairs[i]) else {
                throw fail("pickle dict key of unhashable type \(pairs[i].typeName)")
            }
            dict.set(key, pairs[i + 1])
            i += 2
        }
    }

    private func appendItems(_ items: [PickleValue], op: String) throws {
        guard case .list(let list) = try top(op) else { throw fail("pickle \(op) on a non-list") }
        guard list.items.count + items.count <= Self.maxStack else { throw fail("pickle list too long") }
        list.items.append(contentsOf: items)
    }

    // MARK: - Interpreter

    private func execute() throws -> PickleValue {
        while true {
            let opOffset = pos
            guard pos < bytes.count else { throw truncated("missing STOP opcode") }
            let op = bytes[pos]
            pos += 1
            switch op {
            case 0x80:  // PROTO
                let p = try readByte("PROTO")
                guard p >= 2, p <= 5 else { throw fail("unsupported pickle protocol \(p)") }
            case 0x95:  // FRAME (protocol 4 framing: the length is advisory)
                _ = try readLE(8, "FRAME")
            case 0x7D: try push(.dict(newDict()))  // EMPTY_DICT
            case 0x29: try push(.tuple([]))  // EMPTY_TUPLE
            case 0x5D: try push(.list(newList()))  // EMPTY_LIST
            case 0x28:  // MARK
                guard marks.count < Self.maxMarks else {
                    throw fail("pickle MARKs nested deeper than \(Self.maxMarks)")
                }
                marks.append(stack.count)
            case 0x58: try push(.string(try readUTF8(try readLE(4, "BINUNICODE"), "BINUNICODE string")))
            case 0x8C: try push(.string(try readUTF8(try readLE(1, "SHORT_BINUNICODE"), "SHORT_BINUNICODE string")))
            case 0x8D: try push(.string(try readUTF8(try readLE(8, "BINUNICODE8"), "BINUNICODE8 string")))
            case 0x4A: try push(.int(Int64(Int32(truncatingIfNeeded: try readLE(4, "BININT")))))
            case 0x4B: try push(.int(Int64(try readLE(1, "BININT1"))))
            case 0x4D: try push(.int(Int64(try readLE(2, "BININT2"))))
            case 0x8A:  // LONG1: n-byte little-endian two's complement
                let n = Int(try readLE(1, "LONG1"))
                guard n <= 8 else { throw fail("pickle LONG1 integer of \(n) bytes does not fit in 64 bits") }
                var v = try readLE(n, "LONG1")
                if n > 0, n < 8, v & (1 << (8 * UInt64(n) - 1)) != 0 { v |= ~UInt64(0) << (8 * UInt64(n)) }
                try push(.int(Int64(bitPattern: v)))
            case 0x47:  // BINFLOAT: big-endian double
                let le = try readLE(8, "BINFLOAT")
                try push(.float(Double(bitPattern: le.byteSwapped)))
            case 0x74: try push(try makeTuple(try popMark("TUPLE")))  // TUPLE
            case 0x85:  // TUPLE1
                let a = try pop("TUPLE1")
                try push(try makeTuple([a]))
            case 0x86:  // TUPLE2
                let b = try pop("TUPLE2"); let a = try pop("TUPLE2")
                try push(try makeTuple([a, b]))
            case 0x87:  // TUPLE3
                let c = try pop("TUPLE3"); let b = try pop("TUPLE3"); let a = try pop("TUPLE3")
                try push(try makeTuple([a, b, c]))
            case 0x88: try push(.bool(true))  // NEWTRUE
            case 0x89: try push(.bool(false))  // NEWFALSE
            case 0x4E: try push(.none)  // NONE
            case 0x71: try memoPut(UInt32(try readLE(1, "BINPUT")))
            case 0x72: try memoPut(UInt32(try readLE(4, "LONG_BINPUT")))
            case 0x94: try memoPut(UInt32(truncatingIfNeeded: memo.count))  // MEMOIZE
            case 0x68: try memoGet(UInt32(try readLE(1, "BINGET")))
            case 0x6A: try memoGet(UInt32(try readLE(4, "LONG_BINGET")))
            case 0x63:  // GLOBAL
                let module = try readLine("module name")
                let name = try readLine("global name")
                try push(try host.resolveGlobal(module: module, name: name))
            case 0x51:  // BINPERSID
                let pid = try pop("BINPERSID")
                try push(try host.persistentLoad(pid))
            case 0x52:  // REDUCE
                let args = try pop("REDUCE")
                let callable = try pop("REDUCE")
                guard case .global(let module, let name) = callable else {
                    throw fail("pickle REDUCE on a non-callable \(callable.typeName)")
                }
                guard case .tuple(let argList) = args else {
                    throw fail("pickle REDUCE of \(module).\(name) with \(args.typeName) arguments, expected tuple")
                }
                try push(try host.reduce(module: module, name: name, args: argList, makeDict: newDict))
            case 0x62:  // BUILD: only the OrderedDict attribute state (`_metadata`), which is ignored
                let state = try pop("BUILD")
                guard case .dict = try top("BUILD") else {
                    throw fail("pickle BUILD on a \((try? top("BUILD"))?.typeName ?? "value") is not supported")
                }
                _ = state
            case 0x73:  // SETITEM
                let value = try pop("SETITEM")
                let key = try pop("SETITEM")
                try setItems([key, value], op: "SETITEM")
            case 0x75: try setItems(try popMark("SETITEMS"), op: "SETITEMS")
            case 0x61:  // APPEND
                let value = try pop("APPEND")
                try appendItems([value], op: "APPEND")
            case 0x65: try appendItems(try popMark("APPENDS"), op: "APPENDS")
            case 0x2E:  // STOP
                guard let result = stack.last else { throw fail("pickle STOP with an empty stack") }
                return result
            default:
                throw fail(
                    "unsupported pickle opcode \(Self.opcodeName(op)) (0x\(String(op, radix: 16, uppercase: true))) at offset \(opOffset) in data.pkl"
                )
            }
        }
    }

    /// Names of the pickle opcodes, for error messages.
    static func opcodeName(_ op: UInt8) -> String {
        switch op {
        case 0x28: return "MARK"
        case 0x2E: return "STOP"
        case 0x30: return "POP"
        case 0x31: return "POP_MARK"
        case 0x32: return "DUP"
        case 0x46: return "FLOAT"
        case 0x49: return "INT"
        case 0x4A: return "BININT"
        case 0x4B: return "BININT1"
        case 0x4C: return "LONG"
        case 0x4D: return "BININT2"
        case 0x4E: return "NONE"
        case 0x50: return "PERSID"
        case 0x51: return "BINPERSID"
        case 0x52: return "REDUCE"
        case 0x53: return "STRING"
        case 0x54: return "BINSTRING"
        case 0x55: return "SHORT_BINSTRING"
        case 0x56: return "UNICODE"
        case 0x58: return "BINUNICODE"
        case 0x61: return "APPEND"
        case 0x62: return "BUILD"
        case 0x63: return "GLOBAL"
        case 0x64: return "DICT"
        case 0x7D: return "EMPTY_DICT"
        case 0x65: return "APPENDS"
        case 0x67: return "GET"
        case 0x68: return "BINGET"
        case 0x69: return "INST"
        case 0x6A: return "LONG_BINGET"
        case 0x6C: return "LIST"
        case 0x5D: return "EMPTY_LIST"
        case 0x6F: return "OBJ"
        case 0x70: return "PUT"
        case 0x71: return "BINPUT"
        case 0x72: return "LONG_BINPUT"
        case 0x73: return "SETITEM"
        case 0x74: return "TUPLE"
        case 0x29: return "EMPTY_TUPLE"
        case 0x75: return "SETITEMS"
        case 0x47: return "BINFLOAT"
        case 0x80: return "PROTO"
        case 0x81: return "NEWOBJ"
        case 0x82: return "EXT1"
        case 0x83: return "EXT2"
        case 0x84: return "EXT4"
        case 0x85: return "TUPLE1"
        case 0x86: return "TUPLE2"
        case 0x87: return "TUPLE3"
        case 0x88: return "NEWTRUE"
        case 0x89: return "NEWFALSE"
        case 0x8A: return "LONG1"
        case 0x8B: return "LONG4"
        case 0x42: return "BINBYTES"
        case 0x43: return "SHORT_BINBYTES"
        case 0x8C: return "SHORT_BINUNICODE"
        case 0x8D: return "BINUNICODE8"
        case 0x8E: return "BINBYTES8"
        case 0x8F: return "EMPTY_SET"
        case 0x90: return "ADDITEMS"
        case 0x91: return "FROZENSET"
        case 0x92: return "NEWOBJ_EX"
        case 0x93: return "STACK_GLOBAL"
        case 0x94: return "MEMOIZE"
        case 0x95: return "FRAME"
        case 0x96: return "BYTEARRAY8"
        case 0x97: return "NEXT_BUFFER"
        case 0x98: return "READONLY_BUFFER"
        default: return "unknown"
        }
    }
}
