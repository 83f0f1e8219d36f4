/// 3×3 convolution (stride 1, zero padding 1, channels-last) by Winograd's minimal filtering
/// algorithm F(2×2, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
/// 2016), forward and backward.
///
/// The output is cut into 2×2 tiles. Tile (ty, tx) reads the 4×4 input patch d at rows
/// 2ty − 1 … 2ty + 2 and columns 2tx − 1 … 2tx + 2 (zeros outside the image) and computes
///
///   Y = Aᵀ [ Σ_ci (G g G ᵀ) ⊙ (Bᵀ d B) ] A
///
/// with the 3×3 filter g of each (output, input) channel pair and
///
///   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1],  G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],
///   Aᵀ = [1 1 1 0; 0 1 −1 −1].
///
/// The sum over input channels, for each of the 16 positions ξ of the 4×4 transformed tile, is a
/// GEMM M_ξ (tiles × cout) = V_ξ (tiles × cin) · U_ξᵀ (U_ξ is cout × cin): 16 GEMMs of 2·cin·cout FLOPs
/// per tile instead of im2col's 36 per tile (2.25x fewer). The transforms use only additions and
/// halvings, so the result differs from the direct sum by float rounding only (a few ulp of the
/// largest terms; the parity tests hold it to the same tolerances as the im2col form).
///
/// The backward is the chain rule through the same linear maps: dM = A dY Aᵀ (per tile),
/// dU_ξ = V_ξᵀ dM_ξ and dV_ξ = dM_ξ U_ξ (GEMMs), dW = Gᵀ dU G, and dX gathers B dV Bᵀ from
/// the overlapping tiles.
///
/// Work is cut into blocks of whole tile rows, from the image size only (never the thread
/// count): the results are the same bits for any number of threads.
extension Kernels {
    /// Whether the backward of ``conv3x3(x:height:width:_:y:)``, its bf16 forward and its float32
    /// forward on maps thinner than 4 pixels (where F(4×4, 3×3) does not apply,
    /// ``usesWinograd43(height:width:cin:cout:)``) use F(2×2, 3×3) for these channel counts:
    /// when both are at least 64 (the paper EDSR encoder's body, img_feat_proj and UPNet). Below
    /// that the 16 GEMMs per block get too thin to beat im2col's one; measured with
    /// `gsasr bench train --config paper` (Benchmarks/README.md): encoder.body 0.41 → 0.30 s,
    /// img_feat_proj 0.13 → 0.08 s, UPNet 1.74 → 0.97 s per step.
    @inline(__always)
    public static func usesWinograd(cin: Int, cout: Int) -> Bool { cin >= 64 && cout >= 64 }

    /// The tiling of an h × w map: 2×2 output tiles, cut into blocks of whole tile rows of at
    /// most ~256 tiles, at most ~2M floats of V and M scratch per block (the im2col form's bound:
    /// 145 tiles for 180 → 720 channels), and at least 8 blocks (when there are 8 tile rows);
    /// from the sizes only, never the thread count.
    struct WinogradPlan {
        let h: Int, w: Int, tilesH: Int, tilesW: Int, tileRowsPerBlock: Int, blocks: Int

        init(height h: Int, width w: Int, cin: Int, cout: Int) {
            self.h = h
            self.w = w
            tilesH = (h + 1) / 2
            tilesW = (w + 1) / 2
            let tiles = min(256, (1 << 21) / (16 * max(1, cin + cout)))
            let byTiles = max(1, tiles / max(1, tilesW))
            tileRowsPerBlock = max(1, min(byTiles, (tilesH + 7) / 8))
            blocks = (tilesH + tileRowsPerBlock - 1) / tileRowsPerBlock
        }

        /// The image pixel (y·w + x) at position k (row-major 4 × 4) of tile (ty, tx)'s input
        /// patch, rows 2ty − 1 … 2ty + 2 and columns 2tx − 1 … 2tx + 2; nil outside the image.
        @inline(__always)
        func patchPixel(ty: Int, tx: Int, _ k: Int) -> Int? {
            let yy = 2 * ty - 1 + k / 4, xx = 2 * tx - 1 + k % 4
            return yy >= 0 && yy < h && xx >= 0 && xx < w ? yy * w + xx : nil
        }

        /// Tile rows of block b.
        func tileRows(_ b: Int) -> Range<Int> { (b * tileRowsPerBlock)..<min(tilesH, (b + 1) * tileRowsPerBlock) }
        var maxTiles: Int { tileRowsPerBlock * tilesW }
    }

    typealias WV = SIMD8<Float>

    @inline(__always)
    static func wload(_ p: UnsafePointer<Float>, _ n: Int) -> WV {
        if n == 8 { return UnsafeRawPointer(p).loadUnaligned(as: WV.self) }
        var v = WV()
        for l in 0..<n { v[l] = p[l] }
        return v
    }

    @inline(__always)
    static func wstore(_ p: UnsafeMutablePointer<Float>, _ v: WV, _ n: Int) {
        if n == 8 {
            UnsafeMutableRawPointer(p).storeBytes(of: v, as: WV.self)
            return
        }
        for l in 0..<n { p[l] = v[l] }
    }

    /// The 16 positions ξ (row-major 4 × 4) of one tile's channels c ..< c + n, from a ξ-major
    /// buffer whose positions are `stride` floats apart.
    @inline(__always)
    static func loadTile(_ q: UnsafePointer<Float>, stride: Int, _ n: Int) -> (
        WV, WV, WV, WV, WV, WV, WV, WV, WV, WV, WV, WV, WV, WV, WV, WV
    ) {
        (
            wload(q, n), wload(q + stride, n), wload(q + 2 * stride, n), wload(q + 3 * stride, n),
            wload(q + 4 * stride, n), wload(q + 5 * stride, n), wload(q + 6 * stride, n), wload(q + 7 * stride, n),
            wload(q + 8 * stride, n), wload(q + 9 * stride, n), wload(q + 10 * stride, n), wload(q + 11 * stride, n),
            wload(q + 12 * stride, n), wload(q + 13 * stride, n), wload(q + 14 * stride, n), wload(q + 15 * stride, n)
        )
    }

    /// U_ξ = (G g Gᵀ)_ξ for every (co, ci), as 16 matrices (cout × cin, the weight's own row
    /// order, so the GEMMs read them transposed), from the weight in its im2col layout
    /// (cout × 9·cin, column (ky·3 + kx)·cin + ci): 8 input channels per SIMD lane group, read
    /// and written contiguously. The caller deallocates.
    static func winogradWeights(_ p: Conv3x3Weights) -> UnsafeMutablePointer<Float> {
        let cin = p.cin, cout = p.cout, plane = cin * cout
        let u = UnsafeMutablePointer<Float>.allocate(capacity: 16 * plane)
        withExtendedLifetime(p.weight) {
            let wp = p.weight.ptr
            Parallel.forChunks(cout, minChunk: 16) { cos in
                let half = WV(repeating: 0.5)
                for co in cos {
                    let g = wp + co * 9 * cin
                    var ci = 0
                    while ci < cin {
                        let n = min(8, cin - ci)
                        // Columns kx of G g (4 × 3): G applied down each column of g.
                        @inline(__always) func column(_ kx: Int) -> (WV, WV, WV, WV) {
                            let g0 = wload(g + kx * cin + ci, n), g1 = wload(g + (3 + kx) * cin + ci, n)
                            let g2 = wload(g + (6 + kx) * cin + ci, n)
                            return (g0, (g0 + g1 + g2) * half, (g0 - g1 + g2) * half, g2)
                        }
                        let c0 = column(0), c1 = column(1), c2 = column(2)
                        // Then G across each row i: (G g) Gᵀ.
                        @inline(__always) func row(_ i: Int, _ a: WV, _ b: WV, _ c: WV) {
                            let o = u + (i * 4) * plane + co * cin + ci
                            wstore(o, a, n)
                            wstore(o + plane, (a + b + c) * half, n)
                            wstore(o + 2 * plane, (a - b + c) * half, n)
                            wstore(o + 3 * plane, c, n)
                        }
                        row(0, c0.0, c1.0, c2.0)
                        row(1, c0.1, c1.1, c2.1)
                        row(2, c0.2, c1.2, c2.2)
                        row(3, c0.3, c1.3, c2.3)
                        ci += 8
                    }
                }
            }
        }
        return u
    }

    /// V_ξ (tiles × cin, ξ-major with `ld` = tiles·cin between positions) for the tiles of tile
    /// rows `rows`: Bᵀ d B per tile and channel.
    static func winogradInput(
        _ x: UnsafePointer<Float>, plan: WinogradPlan, cin: Int, rows: Range<Int>, into v: UnsafeMutablePointer<Float>
    ) {
        let tw = plan.tilesW
        let stride = (rows.count * tw) * cin
        let zeros = UnsafeMutablePointer<Float>.allocate(capacity: cin)
        zeros.initialize(repeating: 0, count: cin)
        defer { zeros.deallocate() }
        var src = [UnsafePointer<Float>](repeating: UnsafePointer(zeros), count: 16)
        src.withUnsafeMutableBufferPointer { s in
            for ty in rows {
                for tx in 0..<tw {
                    for k in 0..<16 {
                        s[k] = plan.patchPixel(ty: ty, tx: tx, k).map { x + $0 * cin } ?? UnsafePointer(zeros)
                    }
                    let out = v + ((ty - rows.lowerBound) * tw + tx) * cin
                    var c = 0
                    while c < cin {
                        let n = min(8, cin - c)
                        // t = Bᵀ d (rows i of d), then V = t B (columns).
                        let d00 = wload(s[0] + c, n), d01 = wload(s[1] + c, n), d02 = wload(s[2] + c, n)
                        let d03 = wload(s[3] + c, n), d10 = wload(s[4] + c, n), d11 = wload(s[5] + c, n)
                        let d12 = wload(s[6] + c, n), d13 = wload(s[7] + c, n), d20 = wload(s[8] + c, n)
                        let d21 = wload(s[9] + c, n), d22 = wload(s[10] + c, n), d23 = wload(s[11] + c, n)
                        let d30 = wload(s[12] + c, n), d31 = wload(s[13] + c, n), d32 = wload(s[14] + c, n)
                        let d33 = wload(s[15] + c, n)
                        let t00 = d00 - d20, t01 = d01 - d21, t02 = d02 - d22, t03 = d03 - d23
                        let t10 = d10 + d20, t11 = d11 + d21, t12 = d12 + d22, t13 = d13 + d23
                        let t20 = d20 - d10, t21 = d21 - d11, t22 = d22 - d12, t23 = d23 - d13
                        let t30 = d10 - d30, t31 = d11 - d31, t32 = d12 - d32, t33 = d13 - d33
                        // V row i = t_i B: t0 − t2, t1 + t2, t2 − t1, t1 − t3.
                        @inline(__always) func row(_ i: Int, _ t0: WV, _ t1: WV, _ t2: WV, _ t3: WV) {
                            let o = out + c + 4 * i * stride
                            wstore(o, t0 - t2, n)
                            wstore(o + stride, t1 + t2, n)
                            wstore(o + 2 * stride, t2 - t1, n)
                            wstore(o + 3 * stride, t1 - t3, n)
                        }
                        row(0, t00, t01, t02, t03)
                        row(1, t10, t11, t12, t13)
                        row(2, t20, t21, t22, t23)
                        row(3, t30, t31, t32, t33)
                        c += 8
                    }
                }
            }
        }
    }

    /// Y = Aᵀ M A + bias for the tiles of tile rows `rows` (M ξ-major, tiles × cout), written to
    /// the pixels inside the image.
    static func winogradOutput(
        _ m: UnsafePointer<Float>, plan: WinogradPlan, cout: Int, rows: Range<Int>, bias: UnsafePointer<Float>,
        y: UnsafeMutablePointer<Float>
    ) {
        let h = plan.h, w = plan.w, tw = plan.tilesW
        let stride = (rows.count * tw) * cout
        for ty in rows {
            for tx in 0..<tw {
                let src = m + ((ty - rows.lowerBound) * tw + tx) * cout
                let y0 = 2 * ty, x0 = 2 * tx
                let hasRow1 = y0 + 1 < h, hasCol1 = x0 + 1 < w
                let p00 = y + (y0 * w + x0) * cout
                var c = 0
                while c < cout {
                    let n = min(8, cout - c)
                    let (m00, m01, m02, m03, m10, m11, m12, m13, m20, m21, m22, m23, m30, m31, m32, m33) =
                        loadTile(src + c, stride: stride, n)
                    // s = Aᵀ M (2 × 4), then Y = s A (2 × 2).
                    let s00 = m00 + m10 + m20, s01 = m01 + m11 + m21, s02 = m02 + m12 + m22, s03 = m03 + m13 + m23
                    let s10 = m10 - m20 - m30, s11 = m11 - m21 - m31, s12 = m12 - m22 - m32, s13 = m13 - m23 - m33
                    let b = wload(bias + c, n)
                    wstore(p00 + c, s00 + s01 + s02 + b, n)
                    if hasCol1 { wstore(p00 + cout + c, s01 - s02 - s03 + b, n) }
                    if hasRow1 {
                        wstore(p00 + w * cout + c, s10 + s11 + s12 + b, n)
                        if hasCol1 { wstore(p00 + (w + 1) * cout + c, s11 - s12 - s13 + b, n) }
                    }
                    c += 8
                }
            }
        }
    }

    /// Forward: y (h × w × cout) = conv3x3(x (h × w × cin)) by F(2×2, 3×3).
    package static func conv3x3Winograd(
        x: UnsafePointer<Float>, height h: Int, width w: Int, _ p: Conv3x3Weights, y: UnsafeMutablePointer<Float>
    ) {
        let cin = p.cin, cout = p.cout
        if h == 0 || w == 0 { return }
        let plan = WinogradPlan(height: h, width: w, cin: cin, cout: cout)
        // bf16 (`Precision`): the U_ξ were converted once, at the switch; float32 computes them here.
        let bf16 = p.precision.winograd
        let u = bf16 == nil ? winogradWeights(p) : nil
        defer { u?.deallocate() }
        withExtendedLifetime(p.bias) {
            let bp = p.bias.ptr
            Parallel.forEach(plan.blocks) { b in
                let rows = plan.tileRows(b), tiles = rows.count * plan.tilesW
                let v = UnsafeMutablePointer<Float>.allocate(capacity: 16 * tiles * cin)
                let m = UnsafeMutablePointer<Float>.allocate(capacity: 16 * tiles * cout)
                defer { v.deallocate(); m.deallocate() }
                winogradInput(x, plan: plan, cin: cin, rows: rows, into: v)
                if let products = bf16 {
                    // V rounded to bf16, float32 accumulation into M.
                    let vb = BF16.threadBuffer(slot: 1, count: 16 * tiles * cin)
                    BF16.convert(v, vb, count: 16 * tiles * cin)
                    for xi in 0..<16 {
                        products[xi].run(
                            m: tiles, a: vb + xi * tiles * cin, lda: cin, c: m + xi * tiles * cout, ldc: cout)
                    }
                } else if let u {
                    for xi in 0..<16 {
                        BLAS.sgemm(
                            transA: false, transB: true, m: tiles, n: cout, k: cin, alpha: 1, a: v + xi * tiles * cin,
                            lda: cin, b: u + xi * cin * cout, ldb: cin, beta: 0, c: m + xi * tiles * cout, ldc: cout)
                    }
                }
                winogradOutput(m, plan: plan, cout: cout, rows: rows, bias: bp, y: y)
            }
        }
    }

    /// dM = A dY Aᵀ per tile (ξ-major, tiles × cout), zeros for pixels outside the image.
    static func winogradOutputGradient(
        _ dy: UnsafePointer<Float>, plan: WinogradPlan, cout: Int, rows: Range<Int>,
        into dm: UnsafeMutablePointer<Float>
    ) {
        let h = plan.h, w = plan.w, tw = plan.tilesW
        let stride = (rows.count * tw) * cout
        let zeros = UnsafeMutablePointer<Float>.allocate(capacity: cout)
        zeros.initialize(repeating: 0, count: cout)
        defer { zeros.deallocate() }
        let z = UnsafePointer(zeros)
        for ty in rows {
            for tx in 0..<tw {
                let y0 = 2 * ty, x0 = 2 * tx
                let hasRow1 = y0 + 1 < h, hasCol1 = x0 + 1 < w
                let p00 = dy + (y0 * w + x0) * cout
                let p01 = hasCol1 ? p00 + cout : z
                let p10 = hasRow1 ? p00 + w * cout : z
                let p11 = hasRow1 && hasCol1 ? p00 + (w + 1) * cout : z
                let out = dm + ((ty - rows.lowerBound) * tw + tx) * cout
                var c = 0
                while c < cout {
                    let n = min(8, cout - c)
                    let a = wload(p00 + c, n), b = wload(p01 + c, n), cc = wload(p10 + c, n), d = wload(p11 + c, n)
                    // r = A dY (4 × 2): rows dY0, dY0 + dY1, dY0 − dY1, −dY1 (dY rows: (a b), (cc d)).
                    let r00 = a, r01 = b
                    let r10 = a + cc, r11 = b + d
                    let r20 = a - cc, r21 = b - d
                    let r30 = -cc, r31 = -d
                    // dM = r Aᵀ: columns r0, r0 + r1, r0 − r1, −r1.
                    @inline(__always) func row(_ i: Int, _ r0: WV, _ r1: WV) {
                        let o = out + c + 4 * i * stride
                        wstore(o, r0, n)
                        wstore(o + stride, r0 + r1, n)
                        wstore(o + 2 * stride, r0 - r1, n)
                        wstore(o + 3 * stride, -r1, n)
                    }
                    row(0, r00, r01)
                    row(1, r10, r11)
                    row(2, r20, r21)
                    row(3, r30, r31)
                    c += 8
                }
            }
        }
    }

    /// Adds B dV Bᵀ of each tile of tile rows `rows` into `dx`, an image-row band that starts at
    /// image row 2·rows.lowerBound − 1 (its first row is skipped when that is −1), tiles in
    /// order, so each pixel adds its (up to 4) contributions in a fixed order.
    static func winogradInputGradient(
        _ dv: UnsafePointer<Float>, plan: WinogradPlan, cin: Int, rows: Range<Int>,
        band: UnsafeMutablePointer<Float>
    ) {
        let w = plan.w, tw = plan.tilesW
        let stride = (rows.count * tw) * cin
        let bandTop = 2 * rows.lowerBound - 1
        let dst = UnsafeMutablePointer<UnsafeMutablePointer<Float>?>.allocate(capacity: 16)
        defer { dst.deallocate() }
        for ty in rows {
            for tx in 0..<tw {
                for k in 0..<16 {
                    dst[k] = plan.patchPixel(ty: ty, tx: tx, k).map { band + ($0 - bandTop * w) * cin }
                }
                let src = dv + ((ty - rows.lowerBound) * tw + tx) * cin
                var c = 0
                while c < cin {
                    let n = min(8, cin - c)
                    let (v00, v01, v02, v03, v10, v11, v12, v13, v20, v21, v22, v23, v30, v31, v32, v33) =
                        loadTile(src + c, stride: stride, n)
                    // X = B dV: rows dV0, dV1 − dV2 + dV3, −dV0 + dV1 + dV2, −dV3.
                    let x00 = v00, x01 = v01, x02 = v02, x03 = v03
                    let x10 = v10 - v20 + v30, x11 = v11 - v21 + v31, x12 = v12 - v22 + v32, x13 = v13 - v23 + v33
                    let x20 = v10 + v20 - v00, x21 = v11 + v21 - v01, x22 = v12 + v22 - v02, x23 = v13 + v23 - v03
                    let x30 = -v30, x31 = -v31, x32 = -v32, x33 = -v33
                    // dd = X Bᵀ: columns X0, X1 − X2 + X3, −X0 + X1 + X2, −X3; added where inside.
                    @inline(__always) func add(_ k: Int, _ v: WV) {
                        if let d = dst[k] { wstore(d + c, wload(d + c, n) + v, n) }
                    }
                    @inline(__always) func row(_ i: Int, _ x0: WV, _ x1: WV, _ x2: WV, _ x3: WV) {
                        add(4 * i, x0)
                        add(4 * i + 1, x1 - x2 + x3)
                        add(4 * i + 2, x1 + x2 - x0)
                        add(4 * i + 3, -x3)
                    }
                    row(0, x00, x01, x02, x03)
                    row(1, x10, x11, x12, x13)
                    row(2, x20, x21, x22, x23)
                    row(3, x30, x31, x32, x33)
                    c += 8
                }
            }
        }
    }

    /// Reduction groups of ``conv3x3BackwardWinograd(_:height:width:_:dy:dWeight:dBias:needDX:)``:
    /// group g sums blocks g, g + G, … in order into its own dU; groups are added in order.
    static let winogradReductionGroups = 4

    /// Backward of ``conv3x3Winograd(x:height:width:_:y:)``: accumulates dW and db, returns dX
    /// (nil when `needDX` is false). V is recomputed from the saved input. `threads` bounds the
    /// workers (the result does not depend on it; a test checks that).
    public static func conv3x3BackwardWinograd(
        _ x: Tensor, height h: Int, width w: Int, _ p: Conv3x3Weights, dy: Tensor, dWeight: Tensor, dBias: Tensor,
        needDX: Bool = true, threads: Int = Parallel.threadCount
    ) -> Tensor? {
        let cin = p.cin, cout = p.cout, plane = cin * cout
        precondition(x.count == h * w * cin && dy.count == h * w * cout)
        precondition(dWeight.count == cout * 9 * cin && dBias.count == cout)
        if h == 0 || w == 0 { return needDX ? Tensor(zeros: [h, w, cin]) : nil }
        let plan = WinogradPlan(height: h, width: w, cin: cin, cout: cout)
        let u: UnsafeMutablePointer<Float>? = needDX ? winogradWeights(p) : nil
        defer { u?.deallocate() }
        let groups = min(plan.blocks, winogradReductionGroups)
        let accSize = 16 * plane + cout
        let acc = UnsafeMutablePointer<Float>.allocate(capacity: groups * accSize)
        defer { acc.deallocate() }
        // Each block adds its tiles' dX into its own band of image rows 2·t0 − 1 ..< 2·t1 + 1.
        var bandOffset = [Int](repeating: 0, count: plan.blocks + 1)
        for b in 0..<plan.blocks { bandOffset[b + 1] = bandOffset[b] + (2 * plan.tileRows(b).count + 2) * w * cin }
        let bands: UnsafeMutablePointer<Float>? = needDX ? .allocate(capacity: bandOffset[plan.blocks]) : nil
        bands?.initialize(repeating: 0, count: bandOffset[plan.blocks])
        defer { bands?.deallocate() }
        let workers = max(1, min(threads, groups))
        let maxTiles = plan.maxTiles
        withExtendedLifetime((x, dy)) {
            let xp = x.ptr, dyp = dy.ptr
            bandOffset.withUnsafeBufferPointer { bo in
                Parallel.workers(workers) { worker in
                    let v = UnsafeMutablePointer<Float>.allocate(capacity: 16 * maxTiles * cin)
                    let dm = UnsafeMutablePointer<Float>.allocate(capacity: 16 * maxTiles * cout)
                    let dv: UnsafeMutablePointer<Float>? = needDX ? .allocate(capacity: 16 * maxTiles * cin) : nil
                    defer { v.deallocate(); dm.deallocate(); dv?.deallocate() }
                    for g in stride(from: worker, to: groups, by: workers) {
                        let ga = acc + g * accSize, gb = ga + 16 * plane
                        gb.initialize(repeating: 0, count: cout)
                        var first = true
                        for b in stride(from: g, to: plan.blocks, by: groups) {
                            let rows = plan.tileRows(b), tiles = rows.count * plan.tilesW
                            winogradInput(xp, plan: plan, cin: cin, rows: rows, into: v)
                            winogradOutputGradient(dyp, plan: plan, cout: cout, rows: rows, into: dm)
                            for xi in 0..<16 {
                                // dU_ξ (cin × cout) += V_ξᵀ · dM_ξ
                                BLAS.sgemm(
                                    transA: true, transB: false, m: cin, n: cout, k: tiles, alpha: 1,
                                    a: v + xi * tiles * cin, lda: cin, b: dm + xi * tiles * cout, ldb: cout,
                                    beta: first ? 0 : 1, c: ga + xi * plane, ldc: cout)
                                if let dv, let u {
                                    // dV_ξ (tiles × cin) = dM_ξ · U_ξ (U_ξ stored cout × cin)
                                    BLAS.sgemm(
                                        transA: false, transB: false, m: tiles, n: cin, k: cout, alpha: 1,
                                        a: dm + xi * tiles * cout, lda: cout, b: u + xi * plane, ldb: cin, beta: 0,
                                        c: dv + xi * tiles * cin, ldc: cin)
                                }
                            }
                            // db += Σ dY over the block's pixels, in pixel order.
                            for yy in (2 * rows.lowerBound)..<min(h, 2 * rows.upperBound) {
                                for xx in 0..<w { add(gb, dyp + (yy * w + xx) * cout, cout) }
                            }
                            if let dv, let bands {
                                winogradInputGradient(dv, plan: plan, cin: cin, rows: rows, band: bands + bo[b])
                            }
                            first = false
                        }
                    }
                }
            }
            // Groups in order into group 0, then dW += Gᵀ dU G.
            for g in 1..<groups { add(acc, acc + g * accSize, accSize) }
            add(dBias.ptr, acc + 16 * plane, cout)
            let dwp = dWeight.ptr
            Parallel.forChunks(cin, minChunk: 8) { cis in
                for ci in cis {
                    for co in 0..<cout {
                        let d = acc + ci * cout + co
                        // Column j of Gᵀ dU (3 × 4): dU0 + ½dU1 + ½dU2, ½dU1 − ½dU2, ½dU1 + ½dU2 + dU3.
                        @inline(__always) func column(_ j: Int) -> (Float, Float, Float) {
                            let a = d[j * plane], b = d[(4 + j) * plane], c = d[(8 + j) * plane]
                            let e = d[(12 + j) * plane]
                            return (a + 0.5 * b + 0.5 * c, 0.5 * b - 0.5 * c, 0.5 * b + 0.5 * c + e)
                        }
                        let c0 = column(0), c1 = column(1), c2 = column(2), c3 = column(3)
                        // Then (Gᵀ dU) G along each row ky.
                        let dst = dwp + co * 9 * cin + ci
                        @inline(__always) func row(_ ky: Int, _ t0: Float, _ t1: Float, _ t2: Float, _ t3: Float) {
                            dst[(ky * 3) * cin] += t0 + 0.5 * t1 + 0.5 * t2
                            dst[(ky * 3 + 1) * cin] += 0.5 * t1 - 0.5 * t2
                            dst[(ky * 3 + 2) * cin] += 0.5 * t1 + 0.5 * t2 + t3
                        }
                        row(0, c0.0, c1.0, c2.0, c3.0)
                        row(1, c0.1, c1.1, c2.1, c3.1)
                        row(2, c0.2, c1.2, c2.2, c3.2)
                    }
                }
            }
        }
        guard let bands else { return nil }
        // dX: each image row sums the bands of the (one or two) blocks whose tiles touch it, in
        // block order.
        let dx = Tensor(uninitialized: [h, w, cin])
        let dxp = dx.ptr, rowFloats = w * cin
        Parallel.forChunks(h, minChunk: 4) { rs in
            for r in rs {
                let tyLo = max(0, (r - 1) / 2), tyHi = min(plan.tilesH - 1, (r + 1) / 2)
                let bLo = tyLo / plan.tileRowsPerBlock, bHi = tyHi / plan.tileRowsPerBlock
                let dst = dxp + r * rowFloats
                let top0 = 2 * plan.tileRows(bLo).lowerBound - 1
                dst.update(from: bands + bandOffset[bLo] + (r - top0) * rowFloats, count: rowFloats)
                if bHi != bLo {
                    let top1 = 2 * plan.tileRows(bHi).lowerBound - 1
                    add(dst, bands + bandOffset[bHi] + (r - top1) * rowFloats, rowFloats)
                }
            }
        }
        return dx
    }
}
