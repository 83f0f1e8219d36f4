import Dispatch
import Foundation
import GSASRTensor

/// Per-Gaussian constants, computed with the float semantics of gs.cu.
@usableFromInline
struct PreparedGaussian {
    var x: Float
    var y: Float
    var a: Float  // Float(1.0/sx/sx in double)
    var b: Float  // 2ρ/sx/sy in float
    var c: Float  // Float(1.0/sy/sy in double)
    var w1: Float  // Float(-0.5/(1-ρ²) in double)
    var cr: Float
    var cg: Float
    var cb: Float
    var invSy: Float  // 1/sy (ellipse row spans, fast mode)
    var kx: Float  // ρ·sx
    var ex: Float  // sx·√(1-ρ²)
    var c0: Int32  // inclusive pixel box (empty when c0 > c1 or r0 > r1)
    var c1: Int32
    var r0: Int32
    var r1: Int32

    @inline(__always) var isEmpty: Bool { c0 > c1 || r0 > r1 }
}

/// Sample coordinates of a render in normalised units (see ``SampleGrid``): for the standard
/// W×H grid `Float(2.0·i/(n-1) - 1.0)` computed in double as in gs.cu. Padded with zeros so that
/// 8-wide loads past the end are safe.
@usableFromInline
final class PixelGrid {
    let px: UnsafeMutablePointer<Float>
    let py: UnsafeMutablePointer<Float>
    /// Samples per row and per column (the output size).
    let width: Int
    let height: Int
    /// Converts fast mode's ellipse spans (zoom-1 pixel columns) to sample columns.
    let columns: ColumnMap
    static let pad = 32

    convenience init(width: Int, height: Int) {
        self.init(SampleGrid.standard(width: width, height: height))
    }

    init(_ grid: SampleGrid) {
        width = grid.x.count
        height = grid.y.count
        columns = ColumnMap(grid.x)
        px = .allocate(capacity: width + PixelGrid.pad)
        py = .allocate(capacity: height + PixelGrid.pad)
        px.initialize(repeating: 0, count: width + PixelGrid.pad)
        py.initialize(repeating: 0, count: height + PixelGrid.pad)
        for i in 0..<width { px[i] = grid.x.coordinate(i) }
        for i in 0..<height { py[i] = grid.y.coordinate(i) }
    }

    deinit {
        px.deallocate()
        py.deallocate()
    }
}

/// Fast mode's conversion from a normalised x to columns. The ellipse's extent on a row is
/// first turned into zoom-1 pixel columns, `(x + 1)·(extent − 1)/2`, rounded outwards (as it
/// always was for the standard grid); for any other grid those whole-pixel bounds are then
/// mapped to the samples lying between them (``SampleAxis/samples(fromPixel:toPixel:)``).
/// Rounding to whole zoom-1 pixels first keeps the span a superset of the ellipse and makes a
/// sample that coincides with a zoom-1 pixel get exactly that pixel's set of Gaussians.
@usableFromInline
struct ColumnMap {
    /// (extent − 1)/2: normalised x + 1 times this is the zoom-1 pixel column.
    let halfW: Float
    /// Sample columns are zoom-1 pixel columns (the standard grid): no conversion.
    let identity: Bool
    let axis: SampleAxis

    init(_ axis: SampleAxis) {
        self.axis = axis
        halfW = Float(axis.extent - 1) * 0.5
        identity = axis.isIdentity
    }
}

/// Inclusive index range `[first, last]` of the sorted coordinates `p[0..<n]` with
/// `-lim ≤ p[i] - centre ≤ lim` evaluated in float32 (i.e. *not* `d > lim || d < -lim`, the
/// official skip test). `p[i] - centre` is monotone in i, so the set is an interval.
@inline(__always)
func includedRange(_ p: UnsafeMutablePointer<Float>, _ n: Int, _ centre: Float, _ lim: Float) -> (Int32, Int32) {
    // first i with p[i] - centre >= -lim
    var lo = 0
    var hi = n
    while lo < hi {
        let m = (lo + hi) >> 1
        if p[m] - centre >= -lim { hi = m } else { lo = m + 1 }
    }
    let first = lo
    // first i with !(p[i] - centre <= lim)
    lo = first
    hi = n
    while lo < hi {
        let m = (lo + hi) >> 1
        if p[m] - centre <= lim { lo = m + 1 } else { hi = m }
    }
    return (Int32(first), Int32(lo - 1))
}

/// CPU rasterizer for GSASR's 2D Gaussians, forward and backward.
///
/// Semantics are those of the official `gs_cuda_dmax` kernel: for every pixel inside a
/// Gaussian's `dmax` box, `img[hi, wi, c] += v·colour[c]` with
/// `v = exp(-0.5/(1-ρ²)·(dx²/sx² - 2ρ·dx·dy/(sx·sy) + dy²/sy²))`, a plain sum (no normalisation,
/// no compositing). The backward is the gradient of `Σ img·G`; like the official backward it
/// ignores the box edge.
///
/// Algorithm: the forward bins Gaussians into 16×16-pixel tiles with a counting sort (no
/// depth sort is needed) and renders tiles in parallel; each pixel sums the Gaussians of its
/// tile in increasing Gaussian index, 8 pixels at a time. The backward runs per Gaussian over
/// its own footprint (parallel over Gaussians, no atomics). Memory is O(N + H·W + tile lists).
///
/// Determinism: every output element is computed by exactly one thread in a fixed order that
/// does not depend on the partition, so results are bit-identical run to run *and* for every
/// thread count.
public struct Rasterizer: Sendable {
    public var mode: RasterMode
    /// Box half-width in normalised units (gs.cu's `dmax`).
    public var dmax: Float
    /// Worker threads (default: `Parallel.threadCount`, i.e. `GSASR_THREADS` or the core count).
    public var threads: Int

    /// Tile edge in pixels for the forward.
    public static let tileSize = 16

    public init(mode: RasterMode = .fast, dmax: Float = 0.1, threads: Int? = nil) {
        self.mode = mode
        self.dmax = dmax
        self.threads = max(1, threads ?? Parallel.threadCount)
    }

    /// T = 2·ln(1/ε) for fast mode, nil for exact mode.
    @usableFromInline
    var ellipseT: Float? {
        switch mode {
        case .exact: return nil
        case .fast(let eps):
            precondition(eps > 0 && eps < 1, "epsilon must be in (0, 1)")
            return Float(2.0 * log(1.0 / Double(eps)))
        }
    }

    @inline(__always)
    func prepare(
        _ sig: UnsafeBufferPointer<Float>, _ co: UnsafeBufferPointer<Float>, _ col: UnsafeBufferPointer<Float>,
        _ i: Int, _ grid: PixelGrid, _ sqrtT: Float?
    ) -> PreparedGaussian {
        let sx = sig[3 * i]
        let sy = sig[3 * i + 1]
        let rho = sig[3 * i + 2]
        let x = co[2 * i]
        let y = co[2 * i + 1]
        let w1 = Float(-0.5 / Double(1 - rho * rho))
        let a = Float(1.0 / Double(sx) / Double(sx))
        let c = Float(1.0 / Double(sy) / Double(sy))
        let b = 2 * rho / sx / sy
        var limX = dmax
        var limY = dmax
        if let s = sqrtT {
            limX = min(dmax, sx * s)
            limY = min(dmax, sy * s)
        }
        let (c0, c1) = includedRange(grid.px, grid.width, x, limX)
        let (r0, r1) = includedRange(grid.py, grid.height, y, limY)
        let oneMinus = max(0, 1 - rho * rho)
        return PreparedGaussian(
            x: x, y: y, a: a, b: b, c: c, w1: w1,
            cr: col[3 * i], cg: col[3 * i + 1], cb: col[3 * i + 2],
            invSy: 1 / sy, kx: rho * sx, ex: sx * oneMinus.squareRoot(),
            c0: c0, c1: c1, r0: r0, r1: r1)
    }

    /// Columns of row `dy` inside the ellipse q ≤ T, intersected with the box `[g.c0, g.c1]`
    /// (rounded outwards to whole zoom-1 pixels, then mapped to sample columns by `map`).
    /// Returns an empty range (lo > hi) when the row misses the ellipse.
    @inline(__always)
    static func ellipseSpan(_ g: PreparedGaussian, dy: Float, T: Float, map: ColumnMap) -> (Int32, Int32) {
        let w = dy * g.invSy
        let rem = T - w * w
        if !(rem >= 0) { return (1, 0) }
        let h = g.ex * rem.squareRoot()
        let centre = g.x + g.kx * w
        let loF = ((centre - h) + 1) * map.halfW
        let hiF = ((centre + h) + 1) * map.halfW
        // clamp before converting (thin or far Gaussians can give huge values)
        var lo = Int32(max(-1, min(1e8, loF.rounded(.down))))
        var hi = Int32(max(-1, min(1e8, hiF.rounded(.up))))
        if !map.identity { (lo, hi) = map.axis.samples(fromPixel: lo, toPixel: hi) }
        return (max(lo, g.c0), min(hi, g.c1))
    }

    // MARK: - Forward

    /// Renders the Gaussians into an H×W×3 (HWC, RGB) float image.
    /// `progress`, when given, is called from a worker thread with the fraction of tiles done
    /// (approximate, monotone, at most about 100 times).
    public func forward(
        _ k: GaussianKernels, width: Int, height: Int, progress: ((Double) -> Void)? = nil
    ) -> [Float] {
        forward([k], width: width, height: height, rows: 0..<height, progress: progress)
    }

    /// Renders every sample of `grid` (see ``forward(_:grid:rows:progress:)``).
    public func forward(_ k: GaussianKernels, grid: SampleGrid, progress: ((Double) -> Void)? = nil) -> [Float] {
        forward([k], grid: grid, rows: 0..<grid.height, progress: progress)
    }

    /// Renders the rows `rows` of the W×H image made by several groups of Gaussians (their
    /// union, in group order then index order): a `rows.count × W × 3` (HWC) buffer. Every
    /// pixel gets the value that the whole render gives it when the groups hold all the
    /// Gaussians that reach these rows, up to float summation order (Gaussians sum in group
    /// order here, in index order within a group). Used by the streaming (tiled) pipeline.
    public func forward(
        _ groups: [GaussianKernels], width: Int, height: Int, rows: Range<Int>, progress: ((Double) -> Void)? = nil
    ) -> [Float] {
        precondition(width >= 2 && height >= 2, "render size must be at least 2×2")
        return forward(groups, grid: .standard(width: width, height: height), rows: rows, progress: progress)
    }

    /// Renders the sample rows `rows` of any sample grid (a region of the image at any zoom,
    /// see ``SampleGrid``): a `rows.count × grid.width × 3` (HWC) buffer. The `dmax` box and
    /// fast mode's ellipse are those of the Gaussians in the normalised units of the grid's
    /// extent; only Gaussians whose box reaches the rows are binned. Each sample sums the
    /// Gaussians that reach it in increasing index, so a sample with the same normalised
    /// coordinates as a pixel of another grid (e.g. the standard one) gets the same value, bit
    /// for bit. For the standard grid this is ``forward(_:width:height:rows:progress:)``.
    public func forward(
        _ groups: [GaussianKernels], grid sampleGrid: SampleGrid, rows: Range<Int>,
        progress: ((Double) -> Void)? = nil
    ) -> [Float] {
        precondition(sampleGrid.x.extent >= 2 && sampleGrid.y.extent >= 2, "image extent must be at least 2×2")
        precondition(sampleGrid.x.zoom.isFinite && sampleGrid.x.zoom > 0, "zoom must be finite and positive")
        precondition(sampleGrid.y.zoom.isFinite && sampleGrid.y.zoom > 0, "zoom must be finite and positive")
        precondition(sampleGrid.width >= 1 && sampleGrid.height >= 1, "empty sample grid")
        precondition(rows.lowerBound >= 0 && rows.upperBound <= sampleGrid.height, "rows outside the image")
        let width = sampleGrid.width
        let n = groups.reduce(0) { $0 + $1.count }
        let grid = PixelGrid(sampleGrid)
        let T = ellipseT
        let sqrtT = T.map { $0.squareRoot() }
        let threads = self.threads
        let ts = Rasterizer.tileSize
        let bandTop = rows.lowerBound, bandHeight = rows.count
        if bandHeight == 0 { return [] }

        // 1. per-Gaussian constants and boxes
        let prep = UnsafeMutablePointer<PreparedGaussian>.allocate(capacity: max(n, 1))
        defer { prep.deallocate() }
        var base = 0
        for k in groups {
            let start = base
            k.sigmas.withUnsafeBufferPointer { sig in
                k.coords.withUnsafeBufferPointer { co in
                    k.colors.withUnsafeBufferPointer { col in
                        parallelChunks(k.count, threads: threads) { range in
                            for i in range {
                                (prep + start + i).initialize(to: self.prepare(sig, co, col, i, grid, sqrtT))
                            }
                        }
                    }
                }
            }
            base += k.count
        }

        // 2. counting sort into the band's tiles (tile rows start at the band's top row)
        let tilesX = (width + ts - 1) / ts
        let tilesY = (bandHeight + ts - 1) / ts
        let nTiles = tilesX * tilesY
        let offsets = UnsafeMutablePointer<Int>.allocate(capacity: nTiles + 1)
        defer { offsets.deallocate() }
        offsets.initialize(repeating: 0, count: nTiles + 1)
        let bandLast = bandTop + bandHeight - 1
        // Calls body(tile) for every tile of the band that Gaussian g's pixel box overlaps.
        @inline(__always) func forEachTile(_ g: PreparedGaussian, _ body: (Int) -> Void) {
            if g.isEmpty { return }
            let r0 = max(Int(g.r0), bandTop), r1 = min(Int(g.r1), bandLast)
            if r0 > r1 { return }
            let tx0 = Int(g.c0) / ts, tx1 = Int(g.c1) / ts
            for ty in ((r0 - bandTop) / ts)...((r1 - bandTop) / ts) {
                for tx in tx0...tx1 { body(ty * tilesX + tx) }
            }
        }
        for i in 0..<n { forEachTile(prep[i]) { offsets[$0 + 1] += 1 } }
        for t in 0..<nTiles { offsets[t + 1] += offsets[t] }
        let total = offsets[nTiles]
        let list = UnsafeMutablePointer<Int32>.allocate(capacity: max(total, 1))
        defer { list.deallocate() }
        let cursor = UnsafeMutablePointer<Int>.allocate(capacity: nTiles)
        defer { cursor.deallocate() }
        cursor.initialize(from: offsets, count: nTiles)
        for i in 0..<n {
            forEachTile(prep[i]) { t in
                list[cursor[t]] = Int32(truncatingIfNeeded: i)
                cursor[t] += 1
            }
        }

        // 3. render tiles
        let count = width * bandHeight * 3
        let out = [Float](unsafeUninitializedCapacity: count) { buf, initialized in
            let outp = buf.baseAddress!
            let workers = min(threads, nTiles)
            parallelFor(workers) { worker in
                let acc = UnsafeMutablePointer<Float>.allocate(capacity: 3 * ts * ts)
                defer { acc.deallocate() }
                var t = worker
                let every = max(1, nTiles / (100 * workers))
                while t < nTiles {
                    Rasterizer.renderTile(
                        tile: t, tilesX: tilesX, bandTop: bandTop, bandHeight: bandHeight, grid: grid, prep: prep,
                        list: list + offsets[t], listCount: offsets[t + 1] - offsets[t],
                        acc: acc, out: outp, T: T)
                    // Worker 0 strides through the tiles at the same pace as the others.
                    if worker == 0, let progress, (t / workers) % every == 0 {
                        progress(Double(t) / Double(nTiles))
                    }
                    t += workers
                }
            }
            initialized = count
        }
        return out
    }

    /// The rows that the Gaussians of `k` reach in a W×H render with this mode: the smallest
    /// first row and the largest last row over the Gaussians that touch the image (nil when
    /// none does), and how many start above `row` (for the streaming pipeline's check that no
    /// Gaussian reaches rows already written).
    public func rowExtent(_ k: GaussianKernels, width: Int, height: Int, countingAbove row: Int = 0)
        -> (first: Int, last: Int, startingAbove: Int)?
    {
        precondition(width >= 2 && height >= 2, "render size must be at least 2×2")
        let grid = PixelGrid(width: width, height: height)
        let sqrtT = ellipseT.map { $0.squareRoot() }
        var first = Int.max, last = Int.min, above = 0
        k.sigmas.withUnsafeBufferPointer { sig in
            k.coords.withUnsafeBufferPointer { co in
                k.colors.withUnsafeBufferPointer { col in
                    for i in 0..<k.count {
                        let g = prepare(sig, co, col, i, grid, sqrtT)
                        if g.isEmpty { continue }
                        first = min(first, Int(g.r0))
                        last = max(last, Int(g.r1))
                        if Int(g.r0) < row { above += 1 }
                    }
                }
            }
        }
        return first <= last ? (first, last, above) : nil
    }

    @inline(__always)
    static func renderTile(
        tile: Int, tilesX: Int, bandTop: Int, bandHeight: Int, grid: PixelGrid, prep: UnsafeMutablePointer<PreparedGaussian>,
        list: UnsafeMutablePointer<Int32>, listCount: Int, acc: UnsafeMutablePointer<Float>,
        out: UnsafeMutablePointer<Float>, T: Float?
    ) {
        let ts = 16
        let plane = ts * ts
        let W = grid.width
        let X0 = (tile % tilesX) * ts
        let Y0 = bandTop + (tile / tilesX) * ts
        let tw = min(ts, W - X0)
        let th = min(ts, bandTop + bandHeight - Y0)
        acc.initialize(repeating: 0, count: 3 * plane)
        let px0 = UnsafeRawPointer(grid.px + X0).loadUnaligned(as: SIMD8<Float>.self)
        let px1 = UnsafeRawPointer(grid.px + X0 + 8).loadUnaligned(as: SIMD8<Float>.self)
        let masks = prefixLaneMasks
        let tileColLo = Int32(X0)
        let tileColHi = Int32(X0 + tw - 1)
        let accR = acc
        let accG = acc + plane
        let accB = acc + 2 * plane
        for j in 0..<listCount {
            let g = prep[Int(list[j])]
            let rowLo = max(Int(g.r0), Y0)
            let rowHi = min(Int(g.r1), Y0 + th - 1)
            if rowLo > rowHi { continue }
            let boxLo = max(g.c0, tileColLo)
            let boxHi = min(g.c1, tileColHi)
            if boxLo > boxHi { continue }
            let a = g.a, b = g.b, c = g.c, w1 = g.w1, x = g.x
            let dx0 = px0 - x
            let dx1 = px1 - x
            let adx0 = (a * dx0) * dx0
            let adx1 = (a * dx1) * dx1
            let bdx0 = b * dx0
            let bdx1 = b * dx1
            for row in rowLo...rowHi {
                let dy = grid.py[row] - g.y
                var lo = boxLo
                var hi = boxHi
                if let T = T {
                    let s = ellipseSpan(g, dy: dy, T: T, map: grid.columns)
                    lo = max(lo, s.0)
                    hi = min(hi, s.1)
                    if lo > hi { continue }
                }
                let cdy = (c * dy) * dy
                let l = lo - tileColLo
                let h = hi - tileColLo
                let r = (row - Y0) * ts
                if l < 8 {
                    var q = adx0 - bdx0 * dy
                    q = q + cdy
                    q = q * w1
                    let e = floatsOf(bitsOf(vexp(q)) & laneRange(masks, l, h))
                    let pr = UnsafeMutableRawPointer(accR + r)
                    let pg = UnsafeMutableRawPointer(accG + r)
                    let pb = UnsafeMutableRawPointer(accB + r)
                    pr.storeBytes(of: pr.load(as: SIMD8<Float>.self) + e * g.cr, as: SIMD8<Float>.self)
                    pg.storeBytes(of: pg.load(as: SIMD8<Float>.self) + e * g.cg, as: SIMD8<Float>.self)
                    pb.storeBytes(of: pb.load(as: SIMD8<Float>.self) + e * g.cb, as: SIMD8<Float>.self)
                }
                if h >= 8 {
                    var q = adx1 - bdx1 * dy
                    q = q + cdy
                    q = q * w1
                    let e = floatsOf(bitsOf(vexp(q)) & laneRange(masks, l - 8, h - 8))
                    let pr = UnsafeMutableRawPointer(accR + r + 8)
                    let pg = UnsafeMutableRawPointer(accG + r + 8)
                    let pb = UnsafeMutableRawPointer(accB + r + 8)
                    pr.storeBytes(of: pr.load(as: SIMD8<Float>.self) + e * g.cr, as: SIMD8<Float>.self)
                    pg.storeBytes(of: pg.load(as: SIMD8<Float>.self) + e * g.cg, as: SIMD8<Float>.self)
                    pb.storeBytes(of: pb.load(as: SIMD8<Float>.self) + e * g.cb, as: SIMD8<Float>.self)
                }
            }
        }
        for yy in 0..<th {
            var o = out + ((Y0 - bandTop + yy) * W + X0) * 3
            let r = yy * ts
            for xx in 0..<tw {
                o[0] = accR[r + xx]
                o[1] = accG[r + xx]
                o[2] = accB[r + xx]
                o += 3
            }
        }
    }

    // MARK: - Backward

    /// Gradient of `Σ img·G` w.r.t. the kernel inputs; `upstream` is G, H×W×3 (HWC).
    public func backward(_ k: GaussianKernels, width: Int, height: Int, upstream: [Float]) -> KernelGradients {
        upstream.withUnsafeBufferPointer { backward(k, width: width, height: height, upstream: $0) }
    }

    /// Gradient of `Σ img·G` w.r.t. the kernel inputs; `upstream` is G, H×W×3 (HWC).
    package func backward(
        _ k: GaussianKernels, width: Int, height: Int, upstream: UnsafeBufferPointer<Float>
    ) -> KernelGradients {
        precondition(width >= 2 && height >= 2, "render size must be at least 2×2")
        precondition(upstream.count == width * height * 3, "upstream must be H×W×3")
        let n = k.count
        let grid = PixelGrid(width: width, height: height)
        let T = ellipseT
        let sqrtT = T.map { $0.squareRoot() }
        let threads = self.threads
        let hw = width * height
        // planar copy of G, padded for 8-wide loads
        let planeStride = hw + PixelGrid.pad
        let planes = UnsafeMutablePointer<Float>.allocate(capacity: 3 * planeStride)
        defer { planes.deallocate() }
        planes.initialize(repeating: 0, count: 3 * planeStride)
        let up = upstream.baseAddress!
        parallelChunks(height, threads: threads) { rows in
            for r in rows {
                for p in (r * width)..<((r + 1) * width) {
                    planes[p] = up[3 * p]
                    planes[planeStride + p] = up[3 * p + 1]
                    planes[2 * planeStride + p] = up[3 * p + 2]
                }
            }
        }
        var gs = [Float](repeating: 0, count: 3 * n)
        var gc = [Float](repeating: 0, count: 2 * n)
        var gcol = [Float](repeating: 0, count: 3 * n)
        gs.withUnsafeMutableBufferPointer { gsb in
            gc.withUnsafeMutableBufferPointer { gcb in
                gcol.withUnsafeMutableBufferPointer { gcolb in
                    k.sigmas.withUnsafeBufferPointer { sig in
                        k.coords.withUnsafeBufferPointer { co in
                            k.colors.withUnsafeBufferPointer { col in
                                let gsp = gsb.baseAddress!, gcp = gcb.baseAddress!, gcolp = gcolb.baseAddress!
                                let block = 64
                                let nBlocks = (n + block - 1) / block
                                let workers = max(1, min(threads, nBlocks))
                                parallelFor(workers) { worker in
                                    var bi = worker
                                    while bi < nBlocks {
                                        let end = min(n, (bi + 1) * block)
                                        for i in (bi * block)..<end {
                                            let g = self.prepare(sig, co, col, i, grid, sqrtT)
                                            Rasterizer.backwardOne(
                                                g, sx: sig[3 * i], sy: sig[3 * i + 1], rho: sig[3 * i + 2],
                                                grid: grid, planes: planes, planeStride: planeStride, T: T,
                                                gs: gsp + 3 * i, gc: gcp + 2 * i, gcol: gcolp + 3 * i)
                                        }
                                        bi += workers
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return KernelGradients(sigmas: gs, coords: gc, colors: gcol)
    }

    @inline(__always)
    static func backwardOne(
        _ g: PreparedGaussian, sx: Float, sy: Float, rho: Float, grid: PixelGrid,
        planes: UnsafeMutablePointer<Float>, planeStride: Int, T: Float?,
        gs: UnsafeMutablePointer<Float>, gc: UnsafeMutablePointer<Float>, gcol: UnsafeMutablePointer<Float>
    ) {
        if g.isEmpty { return }
        let W = grid.width
        let masks = prefixLaneMasks
        let gR = planes, gG = planes + planeStride, gB = planes + 2 * planeStride
        var sU = 0.0, sUdx = 0.0, sUdy = 0.0, sUdxdx = 0.0, sUdydy = 0.0, sUdxdy = 0.0
        var sR = 0.0, sG = 0.0, sB = 0.0
        let a = g.a, b = g.b, c = g.c, w1 = g.w1, x = g.x
        let cr = g.cr, cg = g.cg, cb = g.cb
        for row in Int(g.r0)...Int(g.r1) {
            let dy = grid.py[row] - g.y
            var lo = g.c0
            var hi = g.c1
            if let T = T {
                let s = ellipseSpan(g, dy: dy, T: T, map: grid.columns)
                lo = s.0
                hi = s.1
                if lo > hi { continue }
            }
            let cdy = (c * dy) * dy
            var accU = SIMD8<Float>(), accUX = SIMD8<Float>(), accUXX = SIMD8<Float>()
            var accR = SIMD8<Float>(), accG = SIMD8<Float>(), accB = SIMD8<Float>()
            let rowBase = row * W
            var col = Int(lo)
            let last = Int(hi)
            while col <= last {
                let dx = UnsafeRawPointer(grid.px + col).loadUnaligned(as: SIMD8<Float>.self) - x
                var q = (a * dx) * dx - (b * dx) * dy
                q = q + cdy
                q = q * w1
                let e = floatsOf(bitsOf(vexp(q)) & laneRange(masks, 0, Int32(last - col)))
                let p = rowBase + col
                let vr = UnsafeRawPointer(gR + p).loadUnaligned(as: SIMD8<Float>.self)
                let vg = UnsafeRawPointer(gG + p).loadUnaligned(as: SIMD8<Float>.self)
                let vb = UnsafeRawPointer(gB + p).loadUnaligned(as: SIMD8<Float>.self)
                let gp = vr * cr + vg * cg + vb * cb
                let u = gp * e
                accU += u
                let ux = u * dx
                accUX += ux
                accUXX += ux * dx
                accR += e * vr
                accG += e * vg
                accB += e * vb
                col += 8
            }
            let U = Double(accU.sum())
            let UX = Double(accUX.sum())
            let ddy = Double(dy)
            sU += U
            sUdx += UX
            sUdy += ddy * U
            sUdxdx += Double(accUXX.sum())
            sUdydy += ddy * ddy * U
            sUdxdy += ddy * UX
            sR += Double(accR.sum())
            sG += Double(accG.sum())
            sB += Double(accB.sum())
        }
        let dsx = Double(sx), dsy = Double(sy), dr = Double(rho)
        let W1 = -0.5 / (1 - dr * dr)
        let w2 = 1 / (dsx * dsx)
        let w3 = 1 / (dsx * dsy)
        let w4 = 1 / (dsy * dsy)
        let two = 2 * W1
        gc[0] = Float(two * (-w2 * sUdx + dr * w3 * sUdy))
        gc[1] = Float(two * (-w4 * sUdy + dr * w3 * sUdx))
        gs[0] = Float(two / dsx * (dr * w3 * sUdxdy - w2 * sUdxdx))
        gs[1] = Float(two / dsy * (dr * w3 * sUdxdy - w4 * sUdydy))
        let sd = w2 * sUdxdx - 2 * dr * w3 * sUdxdy + w4 * sUdydy
        gs[2] = Float(-two * (two * dr * sd + w3 * sUdxdy))
        gcol[0] = Float(sR)
        gcol[1] = Float(sG)
        gcol[2] = Float(sB)
        _ = sU
    }

    /// Number of Gaussian-pixel pairs this mode evaluates (the sum of the footprints), for
    /// throughput statistics.
    public func footprintPairs(_ k: GaussianKernels, width: Int, height: Int) -> Int {
        let grid = PixelGrid(width: width, height: height)
        let T = ellipseT
        let sqrtT = T.map { $0.squareRoot() }
        var total = 0
        k.sigmas.withUnsafeBufferPointer { sig in
            k.coords.withUnsafeBufferPointer { co in
                k.colors.withUnsafeBufferPointer { col in
                    for i in 0..<k.count {
                        let g = prepare(sig, co, col, i, grid, sqrtT)
                        if g.isEmpty { continue }
                        guard let T = T else {
                            total += Int(g.c1 - g.c0 + 1) * Int(g.r1 - g.r0 + 1)
                            continue
                        }
                        for row in Int(g.r0)...Int(g.r1) {
                            let s = Rasterizer.ellipseSpan(g, dy: grid.py[row] - g.y, T: T, map: grid.columns)
                            if s.0 <= s.1 { total += Int(s.1 - s.0 + 1) }
                        }
                    }
                }
            }
        }
        return total
    }

    // MARK: - Batches

    /// Renders several images, each with its own Gaussians and size (one after another,
    /// parallel inside each).
    public func forwardBatch(_ items: [(kernels: GaussianKernels, width: Int, height: Int)]) -> [[Float]] {
        items.map { forward($0.kernels, width: $0.width, height: $0.height) }
    }

    /// Backward for several images; `upstream[i]` is image i's H×W×3 gradient.
    public func backwardBatch(
        _ items: [(kernels: GaussianKernels, width: Int, height: Int)], upstream: [[Float]]
    ) -> [KernelGradients] {
        precondition(items.count == upstream.count)
        return zip(items, upstream).map {
            backward($0.0.kernels, width: $0.0.width, height: $0.0.height, upstream: $0.1)
        }
    }
}

// MARK: - Parallel helpers (Dispatch only)

/// Runs body(w) for w in 0..<workers, in parallel when workers > 1.
/// Runs `body(worker)` for worker in 0..<workers, in parallel (GSASRTensor.Parallel).
@inline(__always)
func parallelFor(_ workers: Int, _ body: (Int) -> Void) {
    Parallel.workers(workers, body)
}

/// Splits 0..<count into at most `threads` contiguous chunks run in parallel.
@inline(__always)
func parallelChunks(_ count: Int, threads: Int, _ body: (Range<Int>) -> Void) {
    Parallel.forChunks(count, minChunk: 256, threads: threads, body)
}
