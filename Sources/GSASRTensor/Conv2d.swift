/// 3×3 convolution, stride 1, zero padding 1, on channels-last (H, W, C) maps.
///
/// Computed as im2col + GEMM: rows of output pixels are gathered into a (pixels × 9·Cin)
/// patch matrix (tap-major: k = (ky·3 + kx)·Cin + ci) and multiplied by the weight reordered
/// once at load time to (Cout × 9·Cin) with the same column order. Output rows are processed in
/// chunks, one per thread, so the patch buffer stays small (≤ ~8 MB per thread).
public struct Conv3x3Weights: @unchecked Sendable {
    public let cin: Int
    public let cout: Int
    /// (cout × 9·cin), column index (ky·3 + kx)·cin + ci.
    public let weight: Tensor
    public let bias: Tensor
    /// The bf16 copy of the Winograd products, when the model runs in bf16.
    public let precision: PrecisionSlot

    /// From tensors already in our layout: weight (cout × 9·cin), bias (cout).
    public init(weight: Tensor, bias: Tensor, cout: Int, cin: Int) {
        precondition(weight.count == cout * 9 * cin && bias.count == cout)
        self.cin = cin
        self.cout = cout
        self.weight = weight
        self.bias = bias
        precision = PrecisionSlot(convWeight: weight, bias: bias, cin: cin, cout: cout)
    }

    /// From PyTorch layout (cout, cin, 3, 3).
    public init(torchWeight w: [Float], bias b: [Float], cout: Int, cin: Int) {
        precondition(w.count == cout * cin * 9 && b.count == cout)
        self.cin = cin
        self.cout = cout
        var r = [Float](repeating: 0, count: w.count)
        for o in 0..<cout {
            for i in 0..<cin {
                for t in 0..<9 {
                    r[o * 9 * cin + t * cin + i] = w[(o * cin + i) * 9 + t]
                }
            }
        }
        weight = Tensor(shape: [cout, 9 * cin], values: r)
        bias = Tensor(shape: [cout], values: b)
        precision = PrecisionSlot(convWeight: weight, bias: bias, cin: cin, cout: cout)
    }
}

extension Kernels {
    /// y (h × w × cout) = conv3x3(x (h × w × cin)).
    public static func conv3x3(_ x: Tensor, height h: Int, width w: Int, _ p: Conv3x3Weights) -> Tensor {
        let y = Tensor(uninitialized: [h, w, p.cout])
        conv3x3(x: x.ptr, height: h, width: w, p, y: y.ptr)
        return y
    }

    /// By Winograd F(4×4, 3×3) in float32 where ``usesWinograd43(height:width:cin:cout:)`` says
    /// so, F(2×2, 3×3) where ``usesWinograd(cin:cout:)`` does (and for the bf16 products), else
    /// im2col + GEMM.
    package static func conv3x3(
        x: UnsafePointer<Float>, height h: Int, width w: Int, _ p: Conv3x3Weights, y: UnsafeMutablePointer<Float>
    ) {
        if p.precision.winograd == nil && usesWinograd43(height: h, width: w, cin: p.cin, cout: p.cout) {
            conv3x3Winograd43(x: x, height: h, width: w, p, y: y)
        } else if usesWinograd(cin: p.cin, cout: p.cout) {
            conv3x3Winograd(x: x, height: h, width: w, p, y: y)
        } else {
            conv3x3Im2col(x: x, height: h, width: w, p, y: y)
        }
    }

    /// The im2col + GEMM form.
    package static func conv3x3Im2col(
        x: UnsafePointer<Float>, height h: Int, width w: Int, _ p: Conv3x3Weights, y: UnsafeMutablePointer<Float>
    ) {
        let cin = p.cin, cout = p.cout
        let kdim = 9 * cin
        // Rows of the image per chunk: keep the patch buffer near 2M floats, and cut at least 8
        // chunks (to balance the threads). The cut depends on the sizes only, not on the thread
        // count, so the result is the same bits for any number of threads.
        let byMemory = max(1, (1 << 21) / max(1, w * kdim))
        let rowsPerChunk = max(1, min(byMemory, (h + 7) / 8))
        let chunks = (h + rowsPerChunk - 1) / rowsPerChunk
        let wptr = p.weight.ptr, bptr = p.bias.ptr
        Parallel.forEach(chunks) { c in
            let r0 = c * rowsPerChunk
            let r1 = min(h, r0 + rowsPerChunk)
            if r0 >= r1 { return }
            let npix = (r1 - r0) * w
            let patch = UnsafeMutablePointer<Float>.allocate(capacity: npix * kdim)
            defer { patch.deallocate() }
            im2col3x3(x, height: h, width: w, cin: cin, rows: r0..<r1, into: patch)
            linear(
                x: patch, ldx: kdim, m: npix, k: kdim, weight: wptr, bias: bptr, n: cout,
                y: y + r0 * w * cout, ldy: cout, parallel: false)
        }
    }

    /// PixelShuffle(r) on channels-last maps: input channel c·r² + i·r + j at (h, w) goes to
    /// output channel c at (h·r + i, w·r + j) (PyTorch's channel order).
    public static func pixelShuffle(_ x: Tensor, height h: Int, width w: Int, channels cTotal: Int, factor r: Int)
        -> Tensor
    {
        let c = cTotal / (r * r)
        let y = Tensor(uninitialized: [h * r, w * r, c])
        let xp = x.ptr, yp = y.ptr
        let ow = w * r
        Parallel.forChunks(h, minChunk: 4) { rows in
            for hh in rows {
                for ww in 0..<w {
                    let src = xp + (hh * w + ww) * cTotal
                    for i in 0..<r {
                        for j in 0..<r {
                            let dst = yp + ((hh * r + i) * ow + (ww * r + j)) * c
                            for ch in 0..<c { dst[ch] = src[ch * r * r + i * r + j] }
                        }
                    }
                }
            }
        }
        return y
    }

    /// Reflect padding on the bottom and right of an (h, w, c) map (PyTorch 'reflect': the
    /// edge is not repeated). Requires padH < h and padW < w.
    public static func reflectPadBottomRight(
        _ x: Tensor, height h: Int, width w: Int, channels c: Int, padH: Int, padW: Int
    ) -> Tensor {
        precondition(padH < h && padW < w)
        let oh = h + padH, ow = w + padW
        let y = Tensor(uninitialized: [oh, ow, c])
        for yy in 0..<oh {
            let sy = yy < h ? yy : 2 * (h - 1) - yy
            for xx in 0..<ow {
                let sx = xx < w ? xx : 2 * (w - 1) - xx
                (y.ptr + (yy * ow + xx) * c).update(from: x.ptr + (sy * w + sx) * c, count: c)
            }
        }
        return y
    }
}

// MARK: - Backward

extension Kernels {
    /// Rows of the im2col patch matrix of an (h × w × cin) map for image rows `rows`, into
    /// `patch` (whose first row is image row `rows.lowerBound`, column 0): one row per pixel,
    /// tap-major columns k = (ky·3 + kx)·cin + ci, zeros outside the image (the forward's layout).
    @inline(__always)
    static func im2col3x3(
        _ x: UnsafePointer<Float>, height h: Int, width w: Int, cin: Int, rows: Range<Int>,
        into patch: UnsafeMutablePointer<Float>
    ) {
        let kdim = 9 * cin
        for yy in rows {
            for xx in 0..<w {
                let dst = patch + ((yy - rows.lowerBound) * w + xx) * kdim
                for ky in 0..<3 {
                    let sy = yy + ky - 1
                    for kx in 0..<3 {
                        let sx = xx + kx - 1
                        let d = dst + (ky * 3 + kx) * cin
                        if sy < 0 || sy >= h || sx < 0 || sx >= w {
                            d.update(repeating: 0, count: cin)
                        } else {
                            d.update(from: x + (sy * w + sx) * cin, count: cin)
                        }
                    }
                }
            }
        }
    }

    /// Blocks of image rows of ``conv3x3Backward(_:height:width:_:dy:dWeight:dBias:needDX:)``:
    /// a fixed number (fewer only for images with fewer rows), never the thread count.
    static let convBackwardBlocks = 4

    /// Backward of ``conv3x3(_:height:width:_:)``. With P = im2col(x) (recomputed from the saved
    /// input), Y = P·Wᵀ + b, so dW += dYᵀ·P, db += Σ dY, dP = dY·W, and dX is the col2im of dP:
    /// dX[y, x, ci] = Σ over taps (ky, kx) of dP[(y − ky + 1, x − kx + 1), tap, ci], a gather
    /// (each input pixel sums its own 9 contributions in tap order: no races, deterministic).
    ///
    /// The image is cut into ``convBackwardBlocks`` blocks of whole rows. Each block builds its
    /// own rows of P in a per-worker buffer (P never exists whole), writes its rows of dP, and
    /// sums its pixels' dW and db into its own accumulator with one GEMM each (every GEMM reads
    /// its block's P once; cutting dW by output rows instead would pack all of P once per cut).
    /// The accumulators are then added into dW and db in block order. The blocks depend on the
    /// image size only, so the result is the same bits for any number of threads.
    /// Returns dX, or nil when `needDX` is false (the first layer of a network).
    @discardableResult
    public static func conv3x3Backward(
        _ x: Tensor, height h: Int, width w: Int, _ p: Conv3x3Weights, dy: Tensor, dWeight: Tensor, dBias: Tensor,
        needDX: Bool = true
    ) -> Tensor? {
        if usesWinograd(cin: p.cin, cout: p.cout) {
            return conv3x3BackwardWinograd(
                x, height: h, width: w, p, dy: dy, dWeight: dWeight, dBias: dBias, needDX: needDX)
        }
        return conv3x3BackwardIm2col(x, height: h, width: w, p, dy: dy, dWeight: dWeight, dBias: dBias, needDX: needDX)
    }

    /// The im2col form of ``conv3x3Backward(_:height:width:_:dy:dWeight:dBias:needDX:)``.
    @discardableResult
    public static func conv3x3BackwardIm2col(
        _ x: Tensor, height h: Int, width w: Int, _ p: Conv3x3Weights, dy: Tensor, dWeight: Tensor, dBias: Tensor,
        needDX: Bool = true
    ) -> Tensor? {
        let cin = p.cin, cout = p.cout, kdim = 9 * cin
        precondition(x.count == h * w * cin && dy.count == h * w * cout)
        precondition(dWeight.count == cout * kdim && dBias.count == cout)
        let npix = h * w
        if npix == 0 { return needDX ? Tensor(zeros: [h, w, cin]) : nil }
        let rowsPerBlock = (h + convBackwardBlocks - 1) / convBackwardBlocks
        let blocks = (h + rowsPerBlock - 1) / rowsPerBlock
        let accSize = cout * kdim + cout
        let acc = UnsafeMutablePointer<Float>.allocate(capacity: blocks * accSize)
        defer { acc.deallocate() }
        let dPatch: UnsafeMutablePointer<Float>? = needDX ? .allocate(capacity: npix * kdim) : nil
        defer { dPatch?.deallocate() }
        let blockPixels = rowsPerBlock * w
        let ones = UnsafeMutablePointer<Float>.allocate(capacity: blockPixels)
        ones.initialize(repeating: 1, count: blockPixels)
        defer { ones.deallocate() }
        let workers = max(1, min(Parallel.threadCount, blocks))
        withExtendedLifetime((x, dy, p.weight)) {
            let xp = x.ptr, dyp = dy.ptr, wp = p.weight.ptr
            Parallel.workers(workers) { worker in
                let patch = UnsafeMutablePointer<Float>.allocate(capacity: blockPixels * kdim)
                defer { patch.deallocate() }
                for b in stride(from: worker, to: blocks, by: workers) {
                    let r0 = b * rowsPerBlock, r1 = min(h, r0 + rowsPerBlock)
                    let px0 = r0 * w, pixels = (r1 - r0) * w
                    im2col3x3(xp, height: h, width: w, cin: cin, rows: r0..<r1, into: patch)
                    let g = acc + b * accSize
                    BLAS.sgemm(
                        transA: true, transB: false, m: cout, n: kdim, k: pixels, alpha: 1, a: dyp + px0 * cout,
                        lda: cout, b: patch, ldb: kdim, beta: 0, c: g, ldc: kdim)
                    BLAS.sgemm(
                        transA: true, transB: false, m: cout, n: 1, k: pixels, alpha: 1, a: dyp + px0 * cout,
                        lda: cout, b: ones, ldb: 1, beta: 0, c: g + cout * kdim, ldc: 1)
                    if let dPatch {
                        BLAS.sgemm(
                            transA: false, transB: false, m: pixels, n: kdim, k: cout, alpha: 1, a: dyp + px0 * cout,
                            lda: cout, b: wp, ldb: kdim, beta: 0, c: dPatch + px0 * kdim, ldc: kdim)
                    }
                }
            }
            for b in 0..<blocks {
                add(dWeight.ptr, acc + b * accSize, cout * kdim)
                add(dBias.ptr, acc + b * accSize + cout * kdim, cout)
            }
        }
        guard let dPatch else { return nil }
        let dx = Tensor(uninitialized: [h, w, cin])
        let dxp = dx.ptr
        Parallel.forChunks(h, minChunk: 2) { rows in
            for yy in rows {
                for xx in 0..<w {
                    let d = dxp + (yy * w + xx) * cin
                    d.update(repeating: 0, count: cin)
                    for ky in 0..<3 {
                        let oy = yy - ky + 1
                        if oy < 0 || oy >= h { continue }
                        for kx in 0..<3 {
                            let ox = xx - kx + 1
                            if ox < 0 || ox >= w { continue }
                            let s = dPatch + (oy * w + ox) * kdim + (ky * 3 + kx) * cin
                            for c in 0..<cin { d[c] += s[c] }
                        }
                    }
                }
            }
        }
        return dx
    }

    /// Backward of ``pixelShuffle(_:height:width:channels:factor:)``: the inverse permutation
    /// (dX at input channel c·r² + i·r + j of (h, w) is dY at channel c of (h·r + i, w·r + j)).
    public static func pixelShuffleBackward(
        _ dy: Tensor, height h: Int, width w: Int, channels cTotal: Int, factor r: Int
    ) -> Tensor {
        let c = cTotal / (r * r)
        precondition(dy.count == h * w * cTotal)
        let dx = Tensor(uninitialized: [h, w, cTotal])
        let dyp = dy.ptr, dxp = dx.ptr
        let ow = w * r
        Parallel.forChunks(h, minChunk: 4) { rows in
            for hh in rows {
                for ww in 0..<w {
                    let dst = dxp + (hh * w + ww) * cTotal
                    for i in 0..<r {
                        for j in 0..<r {
                            let src = dyp + ((hh * r + i) * ow + (ww * r + j)) * c
                            for ch in 0..<c { dst[ch * r * r + i * r + j] = src[ch] }
                        }
                    }
                }
            }
        }
        return dx
    }
}
