import Foundation
import GSASRTensor
import Testing

/// The kernel-set choice made before OpenBLAS loads (see BLAS.swift).
@Suite struct BLASKernelChoiceTests {
    @Test func coreTypeFollowsTheVectorExtensions() {
        let skx: Set<String> = [
            "sse4_2", "avx", "fma", "avx2", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl",
        ]
        #expect(CPUFeatures.openBLASCoreType(for: skx) == "SKYLAKEX")
        // AVX-512 F alone (Knights Landing) is not SkylakeX's set.
        #expect(CPUFeatures.openBLASCoreType(for: ["avx2", "fma", "avx512f", "avx512cd"]) == "HASWELL")
        #expect(CPUFeatures.openBLASCoreType(for: ["sse4_2", "avx", "avx2", "fma"]) == "HASWELL")
        #expect(CPUFeatures.openBLASCoreType(for: ["sse4_2", "avx"]) == nil)
        #expect(CPUFeatures.openBLASCoreType(for: ["asimd"]) == nil)
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx2 fma avx512f\n\nprocessor\t: 1\n"
        #expect(CPUFeatures.flags(cpuinfo: text) == ["fpu", "sse2", "avx2", "fma", "avx512f"])
    }

    /// The CPU's maker and family, which `gsasr info` prints next to the extensions (the
    /// kernel choice rests on the extensions alone: see `openBLASCoreType`).
    @Test func cpuIdentityIsReadFromTheFirstProcessor() {
        let zen4 = CPUFeatures.Identity(vendor: "AuthenticAMD", family: 25)
        let amd = """
            processor\t: 0
            vendor_id\t: AuthenticAMD
            cpu family\t: 25
            model\t\t: 17
            flags\t\t: fpu avx2 fma avx512f

            processor\t: 1
            vendor_id\t: GenuineIntel
            cpu family\t: 6

            """
        #expect(CPUFeatures.identity(cpuinfo: amd) == zen4)
        #expect(CPUFeatures.identity(cpuinfo: amd)?.description == "AuthenticAMD family 25")
        // Arm's /proc/cpuinfo has neither field.
        #expect(CPUFeatures.identity(cpuinfo: "processor\t: 0\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\n") == nil)
        #expect(CPUFeatures.identity(cpuinfo: "vendor_id : AuthenticAMD\ncpu family : x\n") == nil)
    }

    /// Whether the kernel-choice test below can run: OpenBLAS (not Accelerate), a CPU with
    /// AVX2 + FMA, and no OPENBLAS_CORETYPE forced by the user.
    static var kernelChoiceApplies: Bool {
        #if canImport(Accelerate)
            return false
        #else
            let flags = CPUFeatures.flags()
            return BLAS.info.coreTypeChosenBy != "user" && flags.contains("avx2") && flags.contains("fma")
        #endif
    }

    /// In this process (the test runner) the BLAS loaded with a kernel set that matches the CPU:
    /// never the generic one on a CPU with AVX2 + FMA, unless the user forced it.
    @Test(
        .enabled(
            if: kernelChoiceApplies, "needs OpenBLAS on a CPU with AVX2 + FMA and OPENBLAS_CORETYPE not set by the user"
        ))
    func loadedKernelsAreNotGenericOnAVX2() {
        let info = BLAS.info
        print(
            "BLAS: \(info.library), \(info.config); kernels \(info.coreName) (OPENBLAS_CORETYPE=\(info.coreType ?? "unset"), chosen by \(info.coreTypeChosenBy)); CPU \(info.cpuExtensions.joined(separator: " "))"
        )
        let flags = CPUFeatures.flags()
        #expect(info.coreTypeChosenBy == "gsasr")
        #expect(!["Prescott", "Core2", "Katmai", "Nehalem", "Sandybridge", "Atom"].contains(info.coreName))
        let want = CPUFeatures.openBLASCoreType(for: flags) == "SKYLAKEX" ? "SkylakeX" : "Haswell"
        #expect(info.coreName == want)
    }

    /// The GEMM through the loaded BLAS is right.
    @Test func sgemmThroughTheLoadedBLAS() {
        var c = [Float](repeating: 0, count: 4)
        let a: [Float] = [1, 2, 3, 4], b: [Float] = [5, 6, 7, 8]
        BLAS.sgemm(
            transA: false, transB: false, m: 2, n: 2, k: 2, alpha: 1, a: a, lda: 2, b: b, ldb: 2, beta: 0, c: &c, ldc: 2
        )
        #expect(c == [19, 22, 43, 50])
    }
}
