import Foundation
import GSASRTensor
import Testing

/// The bf16 matmul (oneDNN): on a CPU with native bf16 its result is the float32 product of the
/// bf16-rounded inputs (float32 accumulation: relative error against a float64 product of the
/// same rounded inputs ≤ 1e-5), and its error against the float32 product is that of rounding
/// the inputs (relative L2 about 2e-3). Skipped where the CPU has no native bf16.
@Suite(.enabled(if: BF16.native.yes, "no native bf16 on this CPU (oneDNN: \(BF16.native.isa))"))
struct BF16Tests {
    @Test(arguments: [(64, 180, 720), (576, 180, 540), (333, 77, 45)])
    func productOfRoundedInputs(m: Int, k: Int, n: Int) throws {
        var rng = SystemRandomNumberGenerator()
        let a = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
        let w = (0..<(n * k)).map { _ in Float.random(in: -1...1, using: &rng) }
        var a16 = [UInt16](repeating: 0, count: a.count), w16 = [UInt16](repeating: 0, count: w.count)
        BF16.convert(a, &a16, count: a.count)
        BF16.convert(w, &w16, count: w.count)
        func f(_ b: UInt16) -> Double { Double(Float(bitPattern: UInt32(b) << 16)) }
        let g = try w.withUnsafeBufferPointer { try BF16GEMM(k: k, n: n, weights: $0.baseAddress!) }
        var c = [Float](repeating: 0, count: m * n)
        a16.withUnsafeBufferPointer { ap in
            c.withUnsafeMutableBufferPointer { g.run(m: m, a: ap.baseAddress!, lda: k, c: $0.baseAddress!, ldc: n) }
        }
        var errRounded = 0.0, errF32 = 0.0, norm = 0.0
        for i in 0..<m {
            for j in 0..<n {
                var exactRounded = 0.0, exact = 0.0
                for p in 0..<k {
                    exactRounded += f(a16[i * k + p]) * f(w16[j * k + p])
                    exact += Double(a[i * k + p]) * Double(w[j * k + p])
                }
                let got = Double(c[i * n + j])
                errRounded += (got - exactRounded) * (got - exactRounded)
                errF32 += (got - exact) * (got - exact)
                norm += exact * exact
            }
        }
        let relRounded = (errRounded / norm).squareRoot(), relF32 = (errF32 / norm).squareRoot()
        print(
            "bf16 \(m)x\(k)x\(n) (\(BF16.native.isa)): relative L2 error vs the rounded inputs' product \(relRounded), vs the float product \(relF32)"
        )
        #expect(relRounded < 1e-5)
        #expect(relF32 > 1e-4 && relF32 < 1e-2)
    }

    /// One product made once serves any number of rows and any row strides (m and the strides
    /// are run-time dimensions), from several threads at once. oneDNN's kernel depends on m
    /// (a one-row block takes another path), so a split changes float rounding only: row blocks
    /// on threads agree with one call to float32 accumulation error (relative L2 ≤ 1e-6), and
    /// the same blocks give the same bits on any thread (the models' blocks depend on the
    /// problem size only, never on the thread count).
    @Test func rowBlocksOnThreads() throws {
        let m = 1000, k = 96, n = 80, lda = 101, ldc = 85
        var rng = SystemRandomNumberGenerator()
        let w = (0..<(n * k)).map { _ in Float.random(in: -1...1, using: &rng) }
        let a = (0..<(m * lda)).map { _ in UInt16.random(in: 0x3C00...0x3FFF, using: &rng) }  // bf16 in [2^-7, 2)
        let g = try w.withUnsafeBufferPointer { try BF16GEMM(k: k, n: n, weights: $0.baseAddress!) }
        let cuts = [0, 1, 8, 72, 300, 301, 640, 999, 1000]
        func blocks(reversed: Bool) -> [Float] {
            var c = [Float](repeating: .nan, count: m * ldc)
            a.withUnsafeBufferPointer { ap in
                c.withUnsafeMutableBufferPointer { cp in
                    let (ab, cb) = (ap.baseAddress!, cp.baseAddress!)
                    DispatchQueue.concurrentPerform(iterations: cuts.count - 1) { j in
                        let i = reversed ? cuts.count - 2 - j : j
                        let r0 = cuts[i], rows = cuts[i + 1] - r0
                        g.run(m: rows, a: ab + r0 * lda, lda: lda, c: cb + r0 * ldc, ldc: ldc)
                    }
                }
            }
            return c
        }
        var whole = [Float](repeating: .nan, count: m * ldc)
        a.withUnsafeBufferPointer { ap in
            whole.withUnsafeMutableBufferPointer {
                g.run(m: m, a: ap.baseAddress!, lda: lda, c: $0.baseAddress!, ldc: ldc)
            }
        }
        let b1 = blocks(reversed: false), b2 = blocks(reversed: true)
        var err = 0.0, norm = 0.0, sameBits = true
        for r in 0..<m {
            for j in 0..<n {
                let (x, y) = (Double(b1[r * ldc + j]), Double(whole[r * ldc + j]))
                err += (x - y) * (x - y)
                norm += y * y
                if b1[r * ldc + j].bitPattern != b2[r * ldc + j].bitPattern { sameBits = false }
            }
        }
        // The padding columns between n and ldc are never written.
        let untouched = (0..<m).allSatisfy { r in
            (n..<ldc).allSatisfy { whole[r * ldc + $0].isNaN && b1[r * ldc + $0].isNaN }
        }
        let rel = (err / norm).squareRoot()
        print(
            "bf16 \(g.implementation): row blocks on threads vs one call, relative L2 \(rel); same blocks twice: \(sameBits ? "same bits" : "different bits")"
        )
        #expect(rel <= 1e-6)
        #expect(sameBits)
        #expect(untouched)
    }

    @Test func roundingIsToNearestEven() {
        // bf16 keeps 7 fraction bits: at 1 its step is 2^-7. Ties (1 + 2^-8, 1 + 3·2^-8) go to
        // the even one; 1 + 3·2^-9 is nearer 1 + 2^-7, 1 + 2^-9 nearer 1.
        let x: [Float] = [1, 1 + 0x1p-8, 1 + 3 * 0x1p-9, 1 + 0x1p-9, .infinity, -0.0, 1 + 3 * 0x1p-8]
        var y = [UInt16](repeating: 0, count: x.count)
        BF16.convert(x, &y, count: x.count)
        #expect(y == [0x3F80, 0x3F80, 0x3F81, 0x3F80, 0x7F80, 0x8000, 0x3F82])
        var nan = [UInt16](repeating: 0, count: 1)
        BF16.convert([Float.nan], &nan, count: 1)
        #expect(nan[0] & 0x7F80 == 0x7F80 && nan[0] & 0x7F != 0)
    }
}
