import Foundation
import GSASRRaster
import GSASRTensor

/// Seam-free tiling with bounded memory: the network runs on LR tiles, the Gaussians of each
/// tile's core are kept in the whole image's coordinates, and the output is rendered band by
/// band from those Gaussians at the whole image's size. Stitching happens on Gaussians, not on
/// pixels: there is no blending and no crop of rendered pixels.
///
/// Why this equals the untiled run (up to float rounding, and to the context the margin gives):
/// - Tile cores and margins are whole windows on the padded image's window grid, so a tile's
///   windows are the untiled windows.
/// - The decoder's shifted layers roll the feature map and the token grid with wrap-around and
///   no mask (the official code), so in the untiled run the right and bottom windows see the
///   left and top edges: the image is a torus for the attention. A tile's context is therefore
///   taken around the torus: the margin of a tile on the left edge is the image's right edge.
/// - The convolutions are not periodic (zero padding at the image's edges), so the features
///   that the attention reads (encoder + `img_feat_proj`) are computed per piece of the torus
///   region, each on the image itself with enough extra rows and columns for the convolutions'
///   reach (one pixel per 3×3 convolution): they are exact.
/// - UPNet (two 3×3 convolutions) runs on the core's tokens plus a ring of `upNetRing` tokens
///   (zero padding where the core touches the image's edge, as untiled), then the heads place
///   the means in the whole grid with the untiled Float32 operations.
/// - Every piece a convolution runs on starts at a multiple of 4 pixels (tokens) of the whole
///   map: the float32 Winograd F(4×4, 3×3) form (GSASRTensor) rounds a pixel according to its
///   place in the map's grid of 4×4 tiles, and so keeps the untiled bits only where that place
///   is the same (`convolutionPhase`). The Gaussian grid's cells (`num_gs_seed` = 144 or 256:
///   12 or 16 tokens a side; 16 in the test models: 4) and the windows (8, 12, 16 pixels) of
///   every released model are multiples of 4. For a model whose cells or windows are not,
///   tiled and untiled runs agree to F(4×4, 3×3)'s rounding instead of to float noise (the
///   test model with the ring misaligned by 2 tokens: up to 27/65535 in a 16-bit output).
/// - The Gaussians are converted with the whole render size and the whole image's mean extents
///   (`Upscaler.kernels(raw:plan:)`, either geometry) and rendered with the whole image's pixel
///   grid, so the dmax box, the sigma conversion, the centres and the size rounding are the
///   untiled ones.
/// The only difference left is the attention's view across a margin's outer edge (where the
/// tile's own roll wraps), which reaches the core only through many layers; `margin` trades
/// that against time (measured in Benchmarks/README.md, `gsasr bench tile`).
///
/// Streaming: tiles run in raster order; after each row of tiles, the output rows that no later
/// tile can reach are rendered and handed to the sink, and the Gaussians that cannot reach later
/// rows are dropped. "Cannot reach" assumes that a Gaussian's centre lies at most `reachSlack`
/// LR pixels above its cell (plus its footprint); any Gaussian that would still reach a written
/// row is counted in ``Stats/lateGaussians`` (0 in every run we measured) rather than ignored.
public struct TiledUpscaler: @unchecked Sendable {
    public let upscaler: Upscaler
    /// Core tile side in LR pixels (a multiple of the model's denominator).
    public let tile: Int
    /// Context on each side of a core, in LR pixels (a multiple of the denominator).
    public let margin: Int
    /// Assumed largest upward offset of a Gaussian's centre from its cell, in LR pixels.
    public var reachSlack: Double = 12

    /// Default core side and margin in LR pixels (see Benchmarks/README.md, `bench tile`).
    public static let defaultTile = 192
    public static let defaultMargin = 24

    /// `tile` and `margin` are rounded up to multiples of the model's denominator; a margin of
    /// at least one window is required (the UPNet ring and the attention context need it).
    public init(upscaler: Upscaler, tile: Int = defaultTile, margin: Int = defaultMargin) throws {
        let d = upscaler.model.denominator
        guard tile >= d else {
            throw UpscaleError(
                "tile \(tile) is smaller than the model's window grid (\(d) LR pixels); use --tile ≥ \(d)")
        }
        guard margin >= 1, margin <= 4096, tile <= 1 << 16 else {
            throw UpscaleError("tile margin \(margin) must be between 1 and 4096 LR pixels")
        }
        self.upscaler = upscaler
        self.tile = (tile + d - 1) / d * d
        self.margin = (margin + d - 1) / d * d
    }

    public struct Stats: Sendable {
        public var tiles = 0
        /// Gaussians that reached output rows already written (their contribution there is lost).
        public var lateGaussians = 0
        public var gaussians = 0
        /// Largest number of Gaussians held at once.
        public var peakHeldGaussians = 0
        public var timings = Upscaler.Timings()
    }

    /// One axis of the tiling, in windows.
    struct Axis {
        let windows: Int
        let cores: [Range<Int>]
        let margin: Int

        init(windows n: Int, core t: Int, margin m: Int) {
            windows = n
            if t + 2 * m >= n {
                cores = [0..<n]
                margin = 0
            } else {
                cores = stride(from: 0, to: n, by: t).map { $0..<min($0 + t, n) }
                margin = m
            }
        }

        /// Contiguous runs of the torus region around core i: (global start, length, offset in
        /// the region), in windows.
        func runs(_ i: Int) -> [(start: Int, count: Int, offset: Int)] {
            let core = cores[i]
            let length = core.count + 2 * margin
            var out: [(Int, Int, Int)] = []
            var offset = 0
            var g = ((core.lowerBound - margin) % windows + windows) % windows
            while offset < length {
                let count = min(length - offset, windows - g)
                out.append((g, count, offset))
                offset += count
                g = 0
            }
            return out
        }
    }

    /// Estimated peak working memory of a tiled run, in bytes.
    public func estimatedBytes(plan p: Upscaler.Plan) -> Int {
        let cfg = upscaler.model.decoder.config
        let c = Double(cfg.channel)
        let hp = p.paddedHeight, wp = p.paddedWidth
        let regionH = Double(min(tile + 2 * margin, hp)), regionW = Double(min(tile + 2 * margin, wp))
        let coreH = Double(min(tile, hp)), coreW = Double(min(tile, wp))
        let perPixelGaussians = Double(p.gaussians) / Double(wp * hp)
        let reach = Double(encoderReach) * 2
        // Floats: the encoder on one column chunk of a strip (input, two feature maps, the
        // im2col buffers), the strip of projected features, the decoder on one region (tokens
        // and their attention temporaries), one UPNet chunk (Gaussian grid × C, twice), the
        // Gaussians held (8 floats each, one row of tiles and some), the rasterizer's tables
        // for one band (16 floats per Gaussian) and the band itself.
        let encoder = upscaler.model.encoder.workingFloats(
            height: Int(regionH + reach), width: min(max(tile, Self.encoderChunk), wp) + Int(reach))
        let strip = regionH * Double(wp) * c
        let decoder = 14 * regionH * regionW * c
        let upChunk =
            2 * perPixelGaussians * Double(min(Self.chunkWindows * cfg.windowSize, hp) + 2 * Self.upNetRing)
            * (coreW + Double(2 * Self.upNetRing)) * c
        let heldGaussians = 1.3 * perPixelGaussians * coreH * Double(wp)
        let band =
            16 * heldGaussians * Double(Self.bandRows) / (coreH * p.request.scaleY) + 3
            * Double(p.renderWidth * Self.bandRows)
        let bytes = 4 * (encoder + strip + decoder + upChunk + 8 * heldGaussians + band)
        return Int(min(bytes, Double(Int.max / 2)))
    }

    /// The largest tile (the default or less, halving down to the window grid) whose estimate
    /// fits `upscaler.memoryLimitBytes`, or nil when none does.
    public static func fitting(_ upscaler: Upscaler, plan: Upscaler.Plan, margin: Int = defaultMargin) throws
        -> TiledUpscaler?
    {
        var t = defaultTile
        while true {
            let candidate = try TiledUpscaler(upscaler: upscaler, tile: t, margin: margin)
            if candidate.estimatedBytes(plan: plan) <= upscaler.memoryLimitBytes { return candidate }
            if t <= upscaler.model.denominator { return nil }
            t = max(upscaler.model.denominator, t / 2)
        }
    }

    /// Where the cores meet, in padded-LR pixels: the first row (column) of every core but the
    /// first (for seam statistics).
    public func coreEdges(plan p: Upscaler.Plan) -> (rows: [Int], cols: [Int]) {
        let ws = upscaler.model.decoder.config.windowSize
        func edges(_ n: Int) -> [Int] {
            Axis(windows: n / ws, core: tile / ws, margin: margin / ws).cores.dropFirst().map { $0.lowerBound * ws }
        }
        return (edges(p.paddedHeight), edges(p.paddedWidth))
    }

    /// Output rows rendered at once.
    static let bandRows = 256

    /// Window rows of a core handled by one UPNet + heads pass.
    static let chunkWindows = 4

    /// Pieces of a map that a 3×3 convolution runs on start at multiples of this many pixels of
    /// the whole map (the Winograd F(4×4, 3×3) tile; see the type's documentation).
    static let convolutionPhase = 4

    /// Tokens around a core that UPNet sees: its two 3×3 convolutions need 2 (one at the token
    /// grid, one at twice its resolution), rounded up to `convolutionPhase`.
    static let upNetRing = 4

    /// LR pixels an attention input sees on each side: the encoder's tiling context (its reach
    /// for the convolutional encoders, from the registry's architecture) and `img_feat_proj`'s
    /// two 3×3 convolutions.
    var encoderReach: Int { upscaler.model.encoder.tilingContext + 2 }

    /// Runs the whole pipeline. `sink(rows, pixels)` receives output rows top to bottom:
    /// `pixels` holds `rows.count × outputWidth × 3` unclamped RGB values. `progress` gets
    /// (tiles done, tiles).
    public func upscale(
        rgb: [Float], width w: Int, height h: Int, request: ScaleRequest,
        progress: ((Int, Int) -> Void)? = nil,
        sink: (Range<Int>, UnsafeBufferPointer<Float>) throws -> Void
    ) throws -> Stats {
        guard rgb.count == w * h * 3 else {
            throw UpscaleError("image buffer has \(rgb.count) values, expected \(w * h * 3)")
        }
        let p = try upscaler.plan(width: w, height: h, request: request, checkMemory: false)
        let est = estimatedBytes(plan: p)
        guard est <= upscaler.memoryLimitBytes else {
            throw UpscaleError(
                "input \(w)x\(h) with tiles of \(tile) needs about \(est >> 20) MiB of working memory, over the limit of \(upscaler.memoryLimitBytes >> 20) MiB; use a smaller --tile"
            )
        }
        let model = upscaler.model, dec = model.decoder, cfg = dec.config
        let ws = cfg.windowSize, ss = cfg.numGsSeedSqrt, up = cfg.shuffleScale1 * cfg.shuffleScale2
        let ay = Axis(windows: p.paddedHeight / ws, core: tile / ws, margin: margin / ws)
        let ax = Axis(windows: p.paddedWidth / ws, core: tile / ws, margin: margin / ws)
        let globalGW = ax.windows * ss * up, globalGH = ay.windows * ss * up
        let semb = dec.scaleEmbedding(scale: Float(p.request.conditioning))
        let rasterizer = upscaler.rasterizer

        // How far (in LR pixels) a Gaussian may reach above its cell: its footprint (fast mode:
        // at most √T·(1/1.2) LR pixels since every sigma ≤ 1; the dmax box in exact mode) plus
        // the slack for its centre's offset.
        let box = Double(rasterizer.dmax) * Double(p.renderHeight - 1) / 2 / p.request.scaleY
        var footprint = box
        if case .fast(let eps) = rasterizer.mode {
            footprint = min(box, (2 * log(1 / Double(eps))).squareRoot() / 1.2 + 1)
        }
        let reach = footprint + reachSlack

        var stats = Stats()
        let total = ay.cores.count * ax.cores.count
        var held: [(kernels: GaussianKernels, first: Int, last: Int)] = []
        var written = 0
        for ti in ay.cores.indices {
            let t0 = Date()
            let strip = projectedStrip(rgb: rgb, width: w, height: h, plan: p, ay: ay, ti: ti)
            stats.timings.encoder += Date().timeIntervalSince(t0)
            for tj in ax.cores.indices {
                let raw = try gaussians(
                    strip: strip, plan: p, ay: ay, ax: ax, ti: ti, tj: tj, semb: semb,
                    globalGW: globalGW, globalGH: globalGH, timings: &stats.timings)
                let t0 = Date()
                for r in raw {
                    let k = r.withBuffer { Upscaler.kernels(raw: UnsafeBufferPointer($0), plan: p) }
                    stats.gaussians += k.count
                    if let e = rasterizer.rowExtent(
                        k, width: p.renderWidth, height: p.renderHeight, countingAbove: written)
                    {
                        stats.lateGaussians += e.startingAbove
                        held.append((k, e.first, e.last))
                    }
                }
                stats.timings.rasterizer += Date().timeIntervalSince(t0)
                stats.tiles += 1
                stats.peakHeldGaussians = max(stats.peakHeldGaussians, held.reduce(0) { $0 + $1.kernels.count })
                progress?(stats.tiles, total)
            }
            // Rows that no later tile can reach.
            let last = ti == ay.cores.count - 1
            let coreEnd = Double(ay.cores[ti].upperBound * ws)
            let safe =
                last
                ? p.renderHeight
                : min(p.renderHeight, max(0, Int(((coreEnd - reach) * p.request.scaleY).rounded(.down))))
            // Render them in bands, each from the groups of Gaussians that reach it (so that
            // the rasterizer's per-Gaussian tables stay small).
            var a = written
            while a < safe {
                let b = min(safe, a + Self.bandRows)
                let t0 = Date()
                let groups = held.filter { $0.first < b && $0.last >= a }.map(\.kernels)
                let band = rasterizer.forward(groups, width: p.renderWidth, height: p.renderHeight, rows: a..<b)
                stats.timings.rasterizer += Date().timeIntervalSince(t0)
                if a < p.outputHeight {
                    try emit(
                        band, rows: a..<min(b, p.outputHeight), renderWidth: p.renderWidth, outputWidth: p.outputWidth,
                        sink: sink)
                }
                a = b
            }
            if safe > written {
                written = safe
                held.removeAll { $0.last < written }
            }
        }
        return stats
    }

    /// Crops a band (rows from `rows.lowerBound`, render width) to the output width and passes it on.
    private func emit(
        _ band: [Float], rows: Range<Int>, renderWidth rw: Int, outputWidth ow: Int,
        sink: (Range<Int>, UnsafeBufferPointer<Float>) throws -> Void
    ) throws {
        if rw == ow {
            try band.withUnsafeBufferPointer {
                try sink(rows, UnsafeBufferPointer(rebasing: $0[0..<(rows.count * ow * 3)]))
            }
            return
        }
        var out = [Float](repeating: 0, count: rows.count * ow * 3)
        band.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for r in 0..<rows.count {
                    (dst.baseAddress! + r * ow * 3).update(from: src.baseAddress! + r * rw * 3, count: ow * 3)
                }
            }
        }
        try out.withUnsafeBufferPointer { try sink(rows, $0) }
    }

    /// The projected features (encoder + `img_feat_proj`) of the torus rows of tile row `ti`
    /// over the whole padded width: (regionH · paddedWidth) × C. Computed piece by piece on the
    /// image itself (column chunks with `encoderReach` extra columns), so every value is the
    /// untiled one.
    func projectedStrip(rgb: [Float], width w: Int, height h: Int, plan p: Upscaler.Plan, ay: Axis, ti: Int) -> Tensor {
        let cfg = upscaler.model.decoder.config
        let ws = cfg.windowSize, c = cfg.channel, wp = p.paddedWidth
        let regionH = (ay.cores[ti].count + 2 * ay.margin) * ws
        let strip = Tensor(uninitialized: [regionH * wp, c])
        let chunk = max(tile, Self.encoderChunk)
        for yp in ay.runs(ti) {
            let y0 = yp.start * ws, y1 = (yp.start + yp.count) * ws
            for x0 in stride(from: 0, to: wp, by: chunk) {
                let x1 = min(wp, x0 + chunk)
                let piece = projected(rgb: rgb, width: w, height: h, plan: p, rows: y0..<y1, cols: x0..<x1)
                strip.withPointer { dst in
                    piece.withPointer { src in
                        for yy in 0..<(y1 - y0) {
                            (dst + ((yp.offset * ws + yy) * wp + x0) * c).update(
                                from: src + yy * (x1 - x0) * c, count: (x1 - x0) * c)
                        }
                    }
                }
            }
        }
        return strip
    }

    /// Columns of the padded image per encoder pass of a strip.
    static let encoderChunk = 512

    /// The raw Gaussians (N × 9, means in whole-image units) of core (ti, tj), in chunks of
    /// rows of the Gaussian grid.
    func gaussians(
        strip: Tensor, plan p: Upscaler.Plan, ay: Axis, ax: Axis, ti: Int, tj: Int,
        semb: [Float], globalGW: Int, globalGH: Int, timings: inout Upscaler.Timings
    ) throws -> [Tensor] {
        let dec = upscaler.model.decoder, cfg = dec.config
        let ws = cfg.windowSize, ss = cfg.numGsSeedSqrt, c = cfg.channel
        let up = cfg.shuffleScale1 * cfg.shuffleScale2
        let xr = ax.runs(tj)
        let regionH = (ay.cores[ti].count + 2 * ay.margin) * ws
        let regionW = (ax.cores[tj].count + 2 * ax.margin) * ws
        let wp = p.paddedWidth

        // 1. The region's projected features: its torus columns of the strip.
        var t0 = Date()
        let feat = Tensor(uninitialized: [regionH * regionW, c])
        feat.withPointer { dst in
            strip.withPointer { src in
                for xp in xr {
                    let x0 = xp.start * ws, n = xp.count * ws
                    for yy in 0..<regionH {
                        (dst + (yy * regionW + xp.offset * ws) * c).update(from: src + (yy * wp + x0) * c, count: n * c)
                    }
                }
            }
        }
        timings.encoder += Date().timeIntervalSince(t0)

        // 2. Attention on the region.
        t0 = Date()
        // Where the torus region wraps around the image's edge (every run after the first
        // starts there): the RoPE decoder's convolutions see an edge there, as untiled.
        let cuts = GridCuts(
            rows: ay.runs(ti).dropFirst().map { $0.offset * ss }, columns: xr.dropFirst().map { $0.offset * ss })
        let attended = dec.attend(
            feat, height: regionH, width: regionW, scaleEmbedding: semb, cuts: cuts, step: { _, _ in })
        let (query, grid) = (attended.query, attended.grid)
        let img = dec.tokenImage(query, grid: grid)
        let gw = grid.gridWidth

        // 3. UPNet on the core plus a two-token ring (none where the core meets the image's
        // edge: zero padding there, as untiled), then the heads in whole-image units.
        let coreY = ay.cores[ti], coreX = ax.cores[tj]
        let cy0 = ay.margin * ss, cy1 = cy0 + coreY.count * ss
        let cx0 = ax.margin * ss, cx1 = cx0 + coreX.count * ss
        let atTop = coreY.lowerBound == 0, atBottom = coreY.upperBound == ay.windows
        let atLeft = coreX.lowerBound == 0, atRight = coreX.upperBound == ax.windows
        let ring = Self.upNetRing
        let sx0 = atLeft ? cx0 : cx0 - ring, sx1 = atRight ? cx1 : cx1 + ring
        let subW = sx1 - sx0
        var out: [Tensor] = []
        let chunk = Self.chunkWindows * ss
        for a in stride(from: cy0, to: cy1, by: chunk) {
            let b = min(a + chunk, cy1)
            let sy0 = (a == cy0 && atTop) ? a : a - ring
            let sy1 = (b == cy1 && atBottom) ? b : b + ring
            let subH = sy1 - sy0
            let sub = Tensor(uninitialized: [subH, subW, c])
            sub.withPointer { dst in
                img.withPointer { src in
                    for yy in 0..<subH {
                        (dst + yy * subW * c).update(from: src + ((sy0 + yy) * gw + sx0) * c, count: subW * c)
                    }
                }
            }
            let u = dec.upNet(sub, height: subH, width: subW)
            let rows = (b - a) * up, cols = (cx1 - cx0) * up
            let x = Tensor(uninitialized: [rows, cols, c])
            let r0 = (a - sy0) * up, c0 = (cx0 - sx0) * up
            x.withPointer { dst in
                u.up.withPointer { src in
                    for r in 0..<rows {
                        (dst + r * cols * c).update(from: src + ((r0 + r) * u.width + c0) * c, count: cols * c)
                    }
                }
            }
            let frame = GaussianFrame(
                originX: (coreX.lowerBound * ss) * up, originY: (coreY.lowerBound * ss + (a - cy0)) * up,
                globalWidth: globalGW, globalHeight: globalGH)
            out.append(dec.heads(x, gridHeight: rows, gridWidth: cols, frame: frame))
        }
        timings.decoder += Date().timeIntervalSince(t0)
        return out
    }

    /// Encoder + `img_feat_proj` for the rows × cols of the padded LR image, computed on the
    /// image with `encoderReach` extra pixels on each side (clamped to the image) and cropped:
    /// (rows·cols) × C, exactly the untiled values there for the convolutional encoders (EDSR,
    /// RDN); approximately for the attention encoders (see below).
    func projected(rgb: [Float], width w: Int, height h: Int, plan p: Upscaler.Plan, rows: Range<Int>, cols: Range<Int>)
        -> Tensor
    {
        let e = encoderReach
        // The piece starts on the whole image's grid of Winograd tiles (`convolutionPhase`).
        let phase = Self.convolutionPhase
        var y0 = max(0, rows.lowerBound - e) / phase * phase, y1 = min(p.paddedHeight, rows.upperBound + e)
        var x0 = max(0, cols.lowerBound - e) / phase * phase, x1 = min(p.paddedWidth, cols.upperBound + e)
        if let ew = upscaler.model.encoder.windowSize {
            // An attention encoder runs on whole windows of the image's window grid (the padded
            // size is a multiple of the window). Its shifted windows then wrap around the region
            // instead of the whole image (and HAT's channel attention averages the region):
            // the features are close to the untiled ones, not equal (Benchmarks/README.md).
            // (The windows are multiples of `convolutionPhase`: 8 or 16 pixels.)
            y0 = y0 / ew * ew
            x0 = x0 / ew * ew
            y1 = min(p.paddedHeight, (y1 + ew - 1) / ew * ew)
            x1 = min(p.paddedWidth, (x1 + ew - 1) / ew * ew)
        }
        let ph = y1 - y0, pw = x1 - x0
        // The padded image's pixels (reflect padding at the bottom and right, as `encode`).
        let x = Tensor(uninitialized: [ph, pw, 3])
        rgb.withUnsafeBufferPointer { src in
            x.withPointer { dst in
                for yy in 0..<ph {
                    let gy = y0 + yy
                    let sy = gy < h ? gy : 2 * (h - 1) - gy
                    for xx in 0..<pw {
                        let gx = x0 + xx
                        let sx = gx < w ? gx : 2 * (w - 1) - gx
                        let s = src.baseAddress! + (sy * w + sx) * 3
                        let d = dst + (yy * pw + xx) * 3
                        d[0] = s[0]
                        d[1] = s[1]
                        d[2] = s[2]
                    }
                }
            }
        }
        let model = upscaler.model
        let feat = model.decoder.projectFeatures(model.encoder(x, height: ph, width: pw), height: ph, width: pw)
        let c = model.decoder.config.channel
        let oh = rows.count, ow = cols.count
        let out = Tensor(uninitialized: [oh * ow, c])
        out.withPointer { dst in
            feat.withPointer { src in
                for yy in 0..<oh {
                    (dst + yy * ow * c).update(
                        from: src + ((rows.lowerBound - y0 + yy) * pw + (cols.lowerBound - x0)) * c, count: ow * c)
                }
            }
        }
        return out
    }
}
