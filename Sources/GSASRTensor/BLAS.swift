// The only file that talks to BLAS. Accelerate on Apple platforms, OpenBLAS elsewhere.
//
// Threading policy: BLAS always runs single-threaded. All parallelism in this package comes
// from `Parallel` (DispatchQueue.concurrentPerform), which splits large GEMMs by rows. This
// way BLAS threads x our threads never exceeds the core count, and GEMMs can be issued from
// inside parallel loops (per attention window) without oversubscription.
//
// Kernel choice (Linux): a distribution's OpenBLAS picks its kernels from CPUID when the
// library loads, and one older than the CPU (Debian bookworm's 0.3.21 on a Sapphire Rapids
// Xeon, say) falls back to its generic "Prescott" SSE3 kernels: 39 GFLOP/s instead of 252 on a
// 2-vCPU AVX-512 machine. OpenBLAS reads `OPENBLAS_CORETYPE` in its load-time constructor, so
// the variable has to be set before the library is mapped. We therefore do not link OpenBLAS:
// on first use this file reads the CPU's vector extensions (/proc/cpuinfo), sets
// `OPENBLAS_CORETYPE` when the user has not (see `CPUFeatures.openBLASCoreType`: AVX-512
// F/CD/BW/DQ/VL -> SKYLAKEX, else AVX2 + FMA -> HASWELL, else left to OpenBLAS), and only then
// `dlopen`s libopenblas. SkylakeX and Haswell are the kernel sets every DYNAMIC_ARCH OpenBLAS
// since 0.2.20 has for these extensions; newer names (Cooperlake, Sapphire Rapids, Zen) use the
// same sgemm kernels.
import CBF16
import Foundation

#if canImport(Accelerate)
    import Accelerate
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// What BLAS this process runs, for `gsasr info` and the benchmarks.
public struct BLASInfo: Sendable, Equatable, Codable {
    /// The library, as opened ("Accelerate" on Apple platforms).
    public var library: String
    /// `openblas_get_config()`: version and build options ("OpenBLAS 0.3.21 DYNAMIC_ARCH ...").
    public var config: String
    /// `openblas_get_corename()`: the kernel set in use ("SkylakeX", "Haswell", "Prescott").
    public var coreName: String
    /// The `OPENBLAS_CORETYPE` in effect, and who chose it ("user", "gsasr", or "OpenBLAS
    /// autodetection" when unset).
    public var coreType: String?
    public var coreTypeChosenBy: String
    /// The CPU's SIMD extensions relevant to GEMM kernels, from /proc/cpuinfo.
    public var cpuExtensions: [String]
    /// The CPU's maker and family ("AuthenticAMD family 25"), from /proc/cpuinfo; nil where
    /// it could not be read (Arm, Apple, or an older report).
    public var cpu: String?
    /// Threads BLAS itself runs (always 1; see the threading policy).
    public var blasThreads: Int
}

/// The CPU facts the kernel choice rests on (x86 Linux; empty elsewhere).
public enum CPUFeatures {
    /// Vector-extension flags that matter for the kernel choice, in a fixed order.
    public static let relevant = [
        "sse3", "ssse3", "sse4_1", "sse4_2", "avx", "fma", "avx2", "avx512f", "avx512cd", "avx512bw", "avx512dq",
        "avx512vl", "avx512_bf16", "avx512_fp16", "amx_tile", "asimd", "sve",
    ]

    /// The flags of the first processor in /proc/cpuinfo ("flags" on x86, "Features" on Arm).
    public static func flags(cpuinfo: String? = nil) -> Set<String> {
        guard let text = cpuinfo ?? readFile("/proc/cpuinfo") else { return [] }
        let fields = firstProcessorFields(text)
        guard let list = fields["flags"] ?? fields["Features"] else { return [] }
        var set = Set(list.split(separator: " ").map(String.init))
        if set.contains("pni") { set.insert("sse3") }  // Linux names SSE3 "pni"
        return set
    }

    /// The "key : value" fields of the first processor in /proc/cpuinfo's text (up to the blank
    /// line that ends its block), keys and values trimmed.
    static func firstProcessorFields(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.allSatisfy({ $0 == " " || $0 == "\t" }) {
                if fields.isEmpty { continue } else { break }
            }
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let key = parts[0].trimmingSpaces
            if fields[key] == nil { fields[key] = parts[1].trimmingSpaces }
        }
        return fields
    }

    /// The maker and family of an x86 CPU ("vendor_id" and "cpu family" in /proc/cpuinfo).
    public struct Identity: Sendable, Equatable, CustomStringConvertible {
        public var vendor: String
        public var family: Int
        public init(vendor: String, family: Int) {
            self.vendor = vendor
            self.family = family
        }
        public var description: String { "\(vendor) family \(family)" }
    }

    /// The first processor's identity in /proc/cpuinfo, or nil when it has none (non-x86).
    public static func identity(cpuinfo: String? = nil) -> Identity? {
        guard let text = cpuinfo ?? readFile("/proc/cpuinfo") else { return nil }
        let fields = firstProcessorFields(text)
        guard let vendor = fields["vendor_id"], let family = fields["cpu family"].flatMap({ Int($0) }) else {
            return nil
        }
        return Identity(vendor: vendor, family: family)
    }

    /// Whether the flags hold the AVX-512 subsets OpenBLAS's SkylakeX kernels use (F, CD, BW,
    /// DQ, VL; AVX-512 F alone, as on Knights Landing, is not enough).
    public static func hasSkylakeXExtensions(_ flags: Set<String>) -> Bool {
        ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains)
    }

    /// The OpenBLAS kernel set to request for a CPU with these flags, or nil to let OpenBLAS
    /// choose: AVX-512 F/CD/BW/DQ/VL -> SKYLAKEX, else AVX2 + FMA -> HASWELL, else nil.
    ///
    /// The CPU's maker does not enter the choice. On AMD Zen 4, which runs each 512-bit
    /// operation as two 256-bit halves, a square 2048³ sgemm is faster with Haswell's kernels
    /// (177-207 against 159-174 GFLOP/s, 2 threads), but GSASR's own shapes are not: a paper
    /// training step took 9.97-10.13 s with SkylakeX against 10.27-10.55 s with Haswell (the
    /// self-attention backward's small GEMMs), and the inference decoder the same within noise
    /// (Benchmarks/README.md, 2026-12-05, third session). `gsasr info --sgemm` therefore shows
    /// "in use / best reachable" near 0.85 there, on purpose.
    public static func openBLASCoreType(for flags: Set<String>) -> String? {
        if hasSkylakeXExtensions(flags) { return "SKYLAKEX" }
        if flags.contains("avx2") && flags.contains("fma") { return "HASWELL" }
        return nil
    }

    static func readFile(_ path: String) -> String? {
        #if canImport(Glibc) || canImport(Musl)
            guard let f = fopen(path, "r") else { return nil }
            defer { fclose(f) }
            var bytes: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = fread(&buf, 1, buf.count, f)
                if n <= 0 { break }
                bytes.append(contentsOf: buf[0..<n])
            }
            return String(decoding: bytes, as: UTF8.self)
        #else
            return nil
        #endif
    }
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}

public enum BLAS {
    #if !canImport(Accelerate)
        typealias SgemmFn =
            @convention(c) (
                Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32, UnsafePointer<Float>?,
                Int32, Float, UnsafeMutablePointer<Float>?, Int32
            ) -> Void
        typealias SetThreadsFn = @convention(c) (Int32) -> Void
        typealias StringFn = @convention(c) () -> UnsafeMutablePointer<CChar>?

        struct OpenBLAS: @unchecked Sendable {
            let sgemm: SgemmFn
            let info: BLASInfo
        }

        /// Library names tried in order: Debian/Ubuntu's runtime package (libopenblas0), then
        /// the development symlink.
        static let candidates = ["libopenblas.so.0", "libopenblas.so"]

        static let openBLAS: OpenBLAS = {
            let cpuinfo = CPUFeatures.readFile("/proc/cpuinfo") ?? ""  // read once for both
            let flags = CPUFeatures.flags(cpuinfo: cpuinfo)
            let identity = CPUFeatures.identity(cpuinfo: cpuinfo)
            let chosenBy: String
            if let user = getenv("OPENBLAS_CORETYPE"), !String(cString: user).isEmpty {
                chosenBy = "user"
            } else if let core = CPUFeatures.openBLASCoreType(for: flags) {
                setenv("OPENBLAS_CORETYPE", core, 1)
                chosenBy = "gsasr"
            } else {
                chosenBy = "OpenBLAS autodetection"
            }
            var handle: UnsafeMutableRawPointer?
            var opened = ""
            for name in candidates {
                if let h = dlopen(name, RTLD_NOW | RTLD_LOCAL) {
                    handle = h
                    opened = name
                    break
                }
            }
            func fail(_ message: String) -> Never {
                fputs("error: \(message)\n", stderr)
                exit(3)
            }
            guard let handle else {
                fail(
                    "cannot load OpenBLAS (\(candidates.joined(separator: ", "))); install it, e.g. apt-get install libopenblas0"
                )
            }
            func symbol<T>(_ name: String, _: T.Type) -> T? {
                guard let p = dlsym(handle, name) else { return nil }
                return unsafeBitCast(p, to: T.self)
            }
            guard let sgemm = symbol("cblas_sgemm", SgemmFn.self) else {
                fail("\(opened) has no cblas_sgemm; it is not an OpenBLAS with CBLAS")
            }
            symbol("openblas_set_num_threads", SetThreadsFn.self)?(1)
            func string(_ name: String) -> String {
                guard let f = symbol(name, StringFn.self), let s = f() else { return "unknown" }
                return String(cString: s).trimmingCharacters(" ")
            }
            let coreType = getenv("OPENBLAS_CORETYPE").map { String(cString: $0) }
            let info = BLASInfo(
                library: opened, config: string("openblas_get_config"), coreName: string("openblas_get_corename"),
                coreType: coreType, coreTypeChosenBy: chosenBy,
                cpuExtensions: CPUFeatures.relevant.filter(flags.contains), cpu: identity?.description,
                blasThreads: 1)
            return OpenBLAS(sgemm: sgemm, info: info)
        }()
    #endif

    /// Call once before any GEMM; idempotent. Loads BLAS (choosing its kernels, see above) and
    /// pins it to one thread.
    public static let configure: Void = {
        #if !canImport(Accelerate)
            _ = openBLAS
        #endif
    }()

    /// The BLAS in use (loads it if needed).
    public static var info: BLASInfo {
        #if canImport(Accelerate)
            return BLASInfo(
                library: "Accelerate", config: "Accelerate", coreName: "Accelerate", coreType: nil,
                coreTypeChosenBy: "Accelerate", cpuExtensions: [], cpu: nil, blasThreads: 1)
        #else
            return openBLAS.info
        #endif
    }

    /// Row-major single-precision GEMM: C = alpha * op(A) * op(B) + beta * C.
    /// op(A) is m x k, op(B) is k x n, C is m x n with leading dimension ldc.
    @inline(__always)
    package static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        #if canImport(Accelerate)
            cblas_sgemm(
                CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        #else
            // CBLAS enum values: CblasRowMajor 101, CblasNoTrans 111, CblasTrans 112.
            openBLAS.sgemm(
                101, transA ? 112 : 111, transB ? 112 : 111, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b,
                Int32(ldb), beta, c, Int32(ldc))
        #endif
    }
}

/// bf16 products (issue 26): oneDNN's matmul with bf16 inputs and float32 accumulation and
/// output, on CPUs that multiply bf16 natively (AVX512_BF16, AMX). Weights (PyTorch's out x in
/// layout) are converted and reordered once, when a ``BF16GEMM`` is made; activations are
/// converted by the passes that feed the product (``BF16/convert(_:_:count:)``).
package enum BF16 {
    /// Whether this CPU multiplies bf16 natively, and oneDNN's name for its instruction set.
    /// `GSASR_NO_BF16=1` in the environment masks the feature (as if the CPU had none): the
    /// way to check the refusal and the fallback on a machine that has it.
    package static let native: (yes: Bool, isa: String) = {
        var name = [CChar](repeating: 0, count: 64)
        let yes = cbf16_native(&name, name.count) != 0
        let isa = name.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        if let mask = ProcessInfo.processInfo.environment["GSASR_NO_BF16"], !mask.isEmpty, mask != "0" {
            return (false, isa + ", masked by GSASR_NO_BF16")
        }
        return (yes, isa)
    }()

    /// bf16 of each float, rounded to nearest even (VCVTNEPS2BF16 where the CPU has it).
    package static func convert(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<UInt16>, count: Int) {
        cbf16_from_float(x, y, count)
    }

    /// This thread's reusable bf16 buffer `slot` (0: the input of one product, inside
    /// ``Kernels``; 1: a copy a caller holds across several products) of at least `count`
    /// elements, valid until the next request for the same slot on this thread.
    package static func threadBuffer(slot: Int, count: Int) -> UnsafeMutablePointer<UInt16> {
        guard let p = cbf16_thread_buffer(Int32(slot), max(1, count)) else {
            fatalError("bf16: out of memory for a \(count)-element buffer")
        }
        return p
    }

    /// The same for `rows` rows of `cols` floats, row strides `ldx` and `ldy`.
    package static func convert(
        rows: Int, cols: Int, _ x: UnsafePointer<Float>, ldx: Int, _ y: UnsafeMutablePointer<UInt16>, ldy: Int
    ) {
        cbf16_from_float_rows(x, Int64(ldx), Int64(rows), Int64(cols), y, Int64(ldy))
    }
}

/// C (m x n, row stride ldc) = A (m x k bf16, row stride lda) · Wᵀ (W: n x k floats, converted
/// to bf16 and reordered once, here). One oneDNN primitive with m and the strides left to run
/// time; each ``run(m:a:lda:c:ldc:)`` is single-threaded on the calling thread (its own stream
/// and scratchpad), so callers split rows over `Parallel` workers as for float32.
package final class BF16GEMM: @unchecked Sendable {
    private let handle: OpaquePointer
    package let k: Int, n: Int

    package init(k: Int, n: Int, weights: UnsafePointer<Float>) throws {
        guard BF16.native.yes else { throw BF16Error("bf16: this CPU has no native bf16 (\(BF16.native.isa))") }
        var message = [CChar](repeating: 0, count: 256)
        guard let h = cbf16_gemm_create(Int64(k), Int64(n), weights, &message, message.count) else {
            throw BF16Error(message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        }
        handle = h
        (self.k, self.n) = (k, n)
    }

    deinit { cbf16_gemm_destroy(handle) }

    /// oneDNN's implementation ("gemm:jit", ...).
    package var implementation: String { String(cString: cbf16_gemm_implementation(handle)) }

    /// Runs the product on this thread. A failure inside oneDNN (it allocates nothing per call
    /// but small descriptors) is a programming error, not an input error: it stops the process.
    package func run(m: Int, a: UnsafePointer<UInt16>, lda: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let rc = cbf16_gemm_run(handle, Int64(m), a, Int64(lda), c, Int64(ldc))
        precondition(rc == 0, "oneDNN: the bf16 product \(m)x\(k)x\(n) failed")
    }
}

/// A batch of products C_b = A_b · B_b with both operands in bf16 given per call (the
/// attention's scores Q·Kᵀ, batched over the heads), float32 output; every dimension and
/// stride (in elements: batch, row, column) fixed per ``Shape``: one oneDNN primitive per
/// shape, made on first use and kept for the process (``shared(_:)``).
package final class BF16Batched: @unchecked Sendable {
    package struct Shape: Hashable, Sendable {
        package var batch: Int, m: Int, n: Int, k: Int
        package var a: [Int], b: [Int], c: [Int]
        package init(batch: Int, m: Int, n: Int, k: Int, a: [Int], b: [Int], c: [Int]) {
            (self.batch, self.m, self.n, self.k, self.a, self.b, self.c) = (batch, m, n, k, a, b, c)
        }
    }
    private let handle: OpaquePointer
    package let shape: Shape

    private init(_ shape: Shape) throws {
        guard BF16.native.yes else { throw BF16Error("bf16: this CPU has no native bf16 (\(BF16.native.isa))") }
        var message = [CChar](repeating: 0, count: 256)
        let (a, b, c) = (shape.a.map(Int64.init), shape.b.map(Int64.init), shape.c.map(Int64.init))
        let h = cbf16_batched_create(
            Int64(shape.batch), Int64(shape.m), Int64(shape.n), Int64(shape.k), a, b, c, &message, message.count)
        guard let h else { throw BF16Error(message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }) }
        handle = h
        self.shape = shape
    }

    deinit { cbf16_batched_destroy(handle) }

    nonisolated(unsafe) private static var cache: [Shape: BF16Batched] = [:]
    private static let lock = NSLock()

    /// The product for `shape`, made once per process. A shape oneDNN refuses is a programming
    /// error (the callers' shapes are plain strided matrices): it stops the process.
    package static func shared(_ shape: Shape) -> BF16Batched {
        lock.lock()
        defer { lock.unlock() }
        if let p = cache[shape] { return p }
        do {
            let p = try BF16Batched(shape)
            cache[shape] = p
            return p
        } catch {
            fatalError("\(error)")
        }
    }

    /// Runs the batch on this thread.
    package func run(a: UnsafePointer<UInt16>, b: UnsafePointer<UInt16>, c: UnsafeMutablePointer<Float>) {
        precondition(cbf16_batched_run(handle, a, b, c) == 0, "oneDNN: the batched bf16 product \(shape) failed")
    }
}

package struct BF16Error: Error, CustomStringConvertible {
    package var description: String
    init(_ d: String) { description = d }
}

extension String {
    fileprivate func trimmingCharacters(_ c: Character) -> String {
        String(drop { $0 == c }.reversed().drop { $0 == c }.reversed())
    }
}
