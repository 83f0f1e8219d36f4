import CKernels

/// 3×3 convolution (stride 1, zero padding 1, channels-last) by Winograd's F(4×4, 3×3) (Lavin &
/// Gray 2016), the float32 forward of the wide convolutions.
///
/// The output is cut into 4×4 tiles; tile (ty, tx) reads the 6×6 input patch d at rows
/// 4ty − 1 … 4ty + 4 and columns 4tx − 1 … 4tx + 4 (zeros outside the image) and computes
///
///   Y = Aᵀ [ Σ_ci (G g Gᵀ) ⊙ (Bᵀ d B) ] A
///
/// with the interpolation points 0, ±1, ±2 and ∞ (the matrices are written out in
/// CKernels/winograd43.c, which holds the transforms). For each of the 36 positions ξ of the
/// transformed tile the sum over input channels is one GEMM, M_ξ (tiles × cout) =
/// V_ξ (tiles × cin) · U_ξᵀ: 36 multiplications per 16 outputs where F(2×2, 3×3) needs 16 per 4
/// and im2col 9 per output, so 1.78x fewer multiply-adds than F(2×2, 3×3) and 4x fewer than the
/// direct sum. The price is rounding: the transforms multiply by up to 8 and the weight
/// transform by ⅙, 1⁄12 and 1⁄24 (not exact in binary), so the error is a few times F(2×2, 3×3)'s
/// (`winograd43MatchesReference` bounds it against float64 sums; the zoo's parity tests pass at
/// their tolerances).
///
/// Work: the tiles are cut into blocks of whole tile rows of bounded scratch (`Winograd43Plan`:
/// about 2M floats of V and M, at least 128 tiles); within a block the transforms run in parallel over tiles and the 36 GEMMs in
/// parallel over ξ, so each GEMM multiplies every tile of the block (taller GEMMs than
/// F(2×2, 3×3)'s per-thread blocks). The cut depends on the sizes only, so the results are the same
/// bits for any number of threads. The backward stays F(2×2, 3×3)
/// (``conv3x3BackwardWinograd(_:height:width:_:dy:dWeight:dBias:needDX:threads:)``): it
/// differentiates the same convolution, recomputing its own V from the saved input.
extension Kernels {
    /// Whether the float32 forward ``conv3x3(x:height:width:_:y:)`` uses F(4×4, 3×3): both channel
    /// counts at least 16 and the map at least one whole tile each way (4 × 4). Measured with
    /// `gsasr bench conv` (Benchmarks/README.md, "Winograd F(4×4, 3×3)"): faster than im2col on
    /// every shape measured, from 16 → 64 (1.13x) up to the UPNet's 180 → 720 (2.65x), and
    /// than F(2×2, 3×3) (1.04x at 64 → 16, up to 1.67x). Narrower convolutions (the RGB input's
    /// 3 channels) keep im2col. The bf16 products stay F(2×2, 3×3) (`PrecisionSlot`).
    @inline(__always)
    public static func usesWinograd43(height h: Int, width w: Int, cin: Int, cout: Int) -> Bool {
        cin >= 16 && cout >= 16 && h >= 4 && w >= 4
    }

    /// Chooses the instruction set of the F(4×4, 3×3) transforms (CKernels/winograd43.c): the
    /// x86-64 baseline build (false) or AVX2 where the CPU has it (true, the default); returns
    /// whether AVX2 is in use. Both give the same bits (`winograd43IsTheSameOnEveryInstructionSet`).
    @discardableResult
    package static func winograd43PreferAVX2(_ yes: Bool) -> Bool { gsasr_wino43_prefer_avx2(yes ? 1 : 0) != 0 }

    /// The tiling of an h × w map into 4×4 output tiles, in blocks of whole tile rows: about
    /// 2M floats of V and M (8 MB) per block, but at least 128 tiles (the GEMMs' rows; fewer
    /// make OpenBLAS's packing dominate), the map's tile rows cut evenly into the nearest whole
    /// number of such blocks; from the sizes only. Measured with `gsasr bench conv`: against
    /// blocks of at most 4M floats, RDN's widest layer at LR 180 76.7 → 52.1 ms, the paper UPNet
    /// 43.0 → 40.4 ms.
    struct Winograd43Plan {
        let tilesH: Int, tilesW: Int, tileRowsPerBlock: Int, blocks: Int

        init(height h: Int, width w: Int, cin: Int, cout: Int) {
            tilesH = (h + 3) / 4
            tilesW = (w + 3) / 4
            let tiles = max(128, (1 << 21) / (36 * max(1, cin + cout)))
            let rows = max(1, (tiles + tilesW - 1) / max(1, tilesW))
            // The nearest whole number of blocks, cut evenly (no thin last block).
            let count = max(1, (tilesH + rows / 2) / rows)
            tileRowsPerBlock = (tilesH + count - 1) / count
            blocks = (tilesH + tileRowsPerBlock - 1) / tileRowsPerBlock
        }

        func tileRows(_ b: Int) -> Range<Int> { (b * tileRowsPerBlock)..<min(tilesH, (b + 1) * tileRowsPerBlock) }
        var maxTiles: Int { tileRowsPerBlock * tilesW }
    }

    /// Forward: y (h × w × cout) = conv3x3(x (h × w × cin)) + bias by F(4×4, 3×3), float32.
    package static func conv3x3Winograd43(
        x: UnsafePointer<Float>, height h: Int, width w: Int, _ p: Conv3x3Weights, y: UnsafeMutablePointer<Float>
    ) {
        let cin = p.cin, cout = p.cout
        if h == 0 || w == 0 { return }
        let plan = Winograd43Plan(height: h, width: w, cin: cin, cout: cout)
        let plane = cin * cout
        let u = UnsafeMutablePointer<Float>.allocate(capacity: 36 * plane)
        let v = UnsafeMutablePointer<Float>.allocate(capacity: 36 * plan.maxTiles * cin)
        let m = UnsafeMutablePointer<Float>.allocate(capacity: 36 * plan.maxTiles * cout)
        let zeros = UnsafeMutablePointer<Float>.allocate(capacity: cin)
        zeros.initialize(repeating: 0, count: cin)
        defer {
            u.deallocate()
            v.deallocate()
            m.deallocate()
            zeros.deallocate()
        }
        withExtendedLifetime((p.weight, p.bias)) {
            let wp = p.weight.ptr, bp = p.bias.ptr
            Parallel.forChunks(cout, minChunk: 8) { cos in
                gsasr_wino43_weights(wp, cin, cout, cos.lowerBound, cos.upperBound, u)
            }
            for b in 0..<plan.blocks {
                let rows = plan.tileRows(b), tiles = rows.count * plan.tilesW
                let vStride = tiles * cin, mStride = tiles * cout
                Parallel.forChunks(tiles, minChunk: 4) { ts in
                    gsasr_wino43_input(
                        x, h, w, cin, plan.tilesW, rows.lowerBound, ts.lowerBound, ts.upperBound, vStride, v,
                        zeros)
                }
                Parallel.forEach(36) { xi in
                    BLAS.sgemm(
                        transA: false, transB: true, m: tiles, n: cout, k: cin, alpha: 1, a: v + xi * vStride,
                        lda: cin, b: u + xi * plane, ldb: cin, beta: 0, c: m + xi * mStride, ldc: cout)
                }
                Parallel.forChunks(tiles, minChunk: 4) { ts in
                    gsasr_wino43_output(
                        m, h, w, cout, plan.tilesW, rows.lowerBound, ts.lowerBound, ts.upperBound, mStride, bp, y)
                }
            }
        }
    }
}
