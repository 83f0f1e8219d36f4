#if canImport(Glibc)
    import Glibc
#endif

/// Process-wide settings of the C allocator that tensors come from.
public enum Allocator {
    /// Keeps freed tensor memory in the process for reuse: for training and for one-shot
    /// inference commands.
    ///
    /// A training step allocates and frees the same large activation tensors (1–30 MB each)
    /// for every sample. By default glibc's malloc serves blocks above its dynamic mmap
    /// threshold with fresh mappings and hands freed heap back to the kernel above its trim
    /// threshold, so each sample faults in, and the kernel zero-fills, hundreds of MB of new
    /// pages again (the paper config at batch 4: about 1.3 million minor page faults in
    /// `gsasr bench train --config paper --steps 2`). This raises the mmap threshold to glibc's
    /// largest (32 MiB), serves even larger blocks from the heap (M_MMAP_MAX 0: a block above
    /// 32 MiB, such as the heads backward's per-group gradient accumulators, would otherwise get a
    /// fresh mapping every time; 0.66 → 0.60 million faults in that command) and raises the trim
    /// threshold to 2 GiB, so freed blocks are reused. The cost:
    /// the process keeps its peak heap until it exits, which a training process holds anyway.
    /// Inference has the same churn (each decoder block, Winograd block and heads chunk
    /// allocates and frees its buffers): at LR 180 on the paper config about 1.9 million faults
    /// and 7 s of system time per `gsasr bench --against` run, and the decoder 5 % (f32) to 9 %
    /// (bf16) slower than with the memory kept (Benchmarks/README.md, "bf16"). A one-shot
    /// command's process exits after its job, so it keeps nothing for long.
    /// Process-wide, so the program calls it (`gsasr train`, `upscale`, `gaussians`, `eval` and
    /// `bench` do; not `serve`, which hands memory back between jobs), not the library; once,
    /// before the work. With other C libraries it does nothing.
    public static func keepFreedMemoryForReuse() {
        #if canImport(Glibc)
            // mallopt is not in Swift's Glibc module (malloc.h); its parameters from malloc.h.
            typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
            let mTrimThreshold: Int32 = -1, mMmapThreshold: Int32 = -3, mMmapMax: Int32 = -4
            guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
            let mallopt = unsafeBitCast(sym, to: Mallopt.self)
            _ = mallopt(mMmapThreshold, 32 << 20)
            _ = mallopt(mTrimThreshold, Int32.max)
            _ = mallopt(mMmapMax, 0)
        #endif
    }
}
