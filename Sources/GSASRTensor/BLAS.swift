// The only file that talks to BLAS. Accelerate on Apple platforms, OpenBLAS elsewhere.
//
// Threading policy: BLAS always runs single-threaded. All parallelism in this package comes
// from `Parallel` (DispatchQueue.concurrentPerform), which splits large GEMMs by rows. This
// way BLAS threads x our threads never exceeds the core count, and GEMMs can be issued from
// inside parallel loops (per attention window) without oversubscription.
#if canImport(Accelerate)
    import Accelerate
#else
    import COpenBLAS
#endif

public enum BLAS {
    /// Call once before any GEMM; idempotent. Pins the BLAS library to one thread.
    public static let configure: Void = {
        #if !canImport(Accelerate)
            openblas_set_num_threads(1)
        #endif
    }()

    /// Row-major single-precision GEMM: C = alpha * op(A) * op(B) + beta * C.
    /// op(A) is m x k, op(B) is k x n, C is m x n with leading dimension ldc.
    @inline(__always)
    public static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        _ = configure
        #if canImport(Accelerate)
            cblas_sgemm(
                CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        #else
            cblas_sgemm(
                CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c,
                blasint(ldc))
        #endif
    }
}
