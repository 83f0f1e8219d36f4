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
    }
}

extension Kernels {
    /// y (h × w × cout) = conv3x3(x (h × w × cin)).
    public static func conv3x3(_ x: Tensor, height h: Int, width w: Int, _ p: Conv3x3Weights) -> Tensor {
        let y = Tensor(uninitialized: [h, w, p.cout])
        conv3x3(x: x.ptr, height: h, width: w, p, y: y.ptr)
        return y
    }

    public static func conv3x3(
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
    /// The im2col patch matrix of an (h × w × cin) map: (h·w) × 9·cin, tap-major columns
    /// k = (ky·3 + kx)·cin + ci, zeros outside the image (the forward's layout).
    static func im2col3x3(_ x: UnsafePointer<Float>, height h: Int, width w: Int, cin: Int) -> UnsafeMutablePointer<
        Float
    > {
        let kdim = 9 * cin
        let patch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, h * w * kdim))
        Parallel.forChunks(h, minChunk: 2) { rows in
            im2col3x3(x, height: h, width: w, cin: cin, rows: rows, into: patch + rows.lowerBound * w * kdim)
        }
        return patch
    }

    /// Patch rows of image rows `rows` into `patch` (whose first row is image row
    /// `rows.lowerBound`, column 0).
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

    /// Backward of ``conv3x3(_:height:width:_:)``. With P = im2col(x) (recomputed from the saved
    /// input), Y = P·Wᵀ + b, so dW += dYᵀ·P, db += Σ dY, dP = dY·W, and dX is the col2im of dP:
    /// dX[y, x, ci] = Σ over taps (ky, kx) of dP[(y − ky + 1, x − kx + 1), tap, ci], a gather
    /// (each input pixel sums its own 9 contributions in tap order: no races, deterministic).
    /// Returns dX, or nil when `needDX` is false (the first layer of a network).
    @discardableResult
    public static func conv3x3Backward(
        _ x: Tensor, height h: Int, width w: Int, _ p: Conv3x3Weights, dy: Tensor, dWeight: Tensor, dBias: Tensor,
        needDX: Bool = true
    ) -> Tensor? {
        let cin = p.cin, cout = p.cout, kdim = 9 * cin
        precondition(x.count == h * w * cin && dy.count == h * w * cout)
        let npix = h * w
        let patch = im2col3x3(x.ptr, height: h, width: w, cin: cin)
        defer { patch.deallocate() }
        let dPatch: UnsafeMutablePointer<Float>? = needDX ? .allocate(capacity: max(1, npix * kdim)) : nil
        defer { dPatch?.deallocate() }
        linearBackward(
            x: patch, ldx: kdim, m: npix, k: kdim, weight: p.weight.ptr, n: cout, dy: dy.ptr, ldy: cout, dx: dPatch,
            lddx: kdim, dWeight: dWeight.ptr, dBias: dBias.ptr)
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
