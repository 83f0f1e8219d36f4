import Foundation
import GSASR
import GSASRRaster

/// `gsasr bench tile`: the untiled render, our tiling (Gaussians stitched, ``TiledUpscaler``) and
/// the official tiling (pixels stitched: `split_and_joint_image` of the official
/// `basicsr/utils/split_and_joint_image.py`) on one image. Each method runs in its own process
/// (so that each peak RSS is its own); the parent compares the renders: PSNR against the untiled
/// float render, and the largest error on the tiles' seams vs inside the tiles.
public enum TileBench {
    public enum Method: String, Codable, CaseIterable, Sendable {
        case untiled, ours, official
    }

    public struct Settings: Codable, Sendable {
        public var scale: Double
        public var tile: Int, margin: Int
        public var officialTile: Int, officialOverlap: Int, officialCrop: Int
        public init(scale: Double, tile: Int, margin: Int, officialTile: Int, officialOverlap: Int, officialCrop: Int) {
            self.scale = scale
            self.tile = tile
            self.margin = margin
            self.officialTile = officialTile
            self.officialOverlap = officialOverlap
            self.officialCrop = officialCrop
        }
    }

    /// One method's run (written by the child process as JSON).
    public struct Run: Codable, Sendable {
        public var method: Method
        public var seconds: Double
        /// Encoder, decoder and rasterizer seconds (untiled and ours; the official tiling: total only).
        public var stageSeconds: [Double]
        public var peakRSSMiB: Double
        public var tiles: Int
        /// Output rows and columns where tiles meet (ours: core edges; official: paste edges).
        public var seamRows: [Int], seamCols: [Int]
        public var outputWidth: Int, outputHeight: Int
        public var psnrVsUntiled: Double? = nil
        public var maxErrorOnSeams: Double? = nil
        public var maxErrorInside: Double? = nil
    }

    public struct Report: Codable, Sendable {
        public var model: String
        public var lrWidth: Int, lrHeight: Int
        public var settings: Settings
        public var threads: Int
        public var runs: [Run]
        public init(model: String, lrWidth: Int, lrHeight: Int, settings: Settings, threads: Int, runs: [Run]) {
            self.model = model
            self.lrWidth = lrWidth
            self.lrHeight = lrHeight
            self.settings = settings
            self.threads = threads
            self.runs = runs
        }
    }

    /// Runs one method and writes its float render (HWC RGB, little-endian Float32) to `raw`.
    public static func runOne(
        _ method: Method, model: GSASRModel, image: [Float], width w: Int, height h: Int, settings s: Settings,
        raw: URL
    ) throws -> Run {
        var up = Upscaler(model: model)
        up.memoryLimitBytes = Int.max / 4
        let t0 = Date()
        var pixels: [Float]
        var tiles = 1
        var seamRows: [Int] = [], seamCols: [Int] = []
        var stages: [Double] = []
        let p = try up.plan(width: w, height: h, request: ScaleRequest(scale: s.scale), checkMemory: false)
        switch method {
        case .untiled:
            let r = try up.upscale(rgb: image, width: w, height: h, scale: s.scale)
            pixels = r.pixels
            stages = [r.timings.encoder, r.timings.decoder, r.timings.rasterizer]
        case .ours:
            let t = try TiledUpscaler(upscaler: up, tile: s.tile, margin: s.margin)
            pixels = []
            pixels.reserveCapacity(p.outputWidth * p.outputHeight * 3)
            let stats = try t.upscale(rgb: image, width: w, height: h, request: ScaleRequest(scale: s.scale)) {
                _, px in pixels.append(contentsOf: px)
            }
            tiles = stats.tiles
            stages = [stats.timings.encoder, stats.timings.decoder, stats.timings.rasterizer]
            let e = t.coreEdges(plan: p)
            seamRows = e.rows.map { Int((Double($0) * s.scale).rounded(.down)) }
            seamCols = e.cols.map { Int((Double($0) * s.scale).rounded(.down)) }
        case .official:
            let r = try officialTiled(up, image: image, width: w, height: h, plan: p, settings: s)
            pixels = r.pixels
            tiles = r.tiles
            seamRows = r.seamRows
            seamCols = r.seamCols
        }
        let seconds = Date().timeIntervalSince(t0)
        try pixels.withUnsafeBytes { try Data($0).write(to: raw) }
        return Run(
            method: method, seconds: seconds, stageSeconds: stages, peakRSSMiB: ProcessStats.peakRSSMiB(), tiles: tiles,
            seamRows: seamRows, seamCols: seamCols, outputWidth: p.outputWidth, outputHeight: p.outputHeight)
    }

    /// The official tiling: the padded LR image is reflect-padded again to a whole number of
    /// `split` tiles with stride `split − overlap`; each tile runs the whole model and renders a
    /// ceil(split·s)² image; tiles are pasted in raster order at stride ceil(split·s) −
    /// ceil(overlap·s), each overwriting the earlier ones except for its first `crop` rows/columns
    /// (none for the first row/column of tiles), with the official non-integer-scale branch's
    /// two exceptions (last-column tiles keep their first rows, last-row tiles their first
    /// columns). The result is cropped top-left to the output size, as the official test does.
    static func officialTiled(
        _ up: Upscaler, image: [Float], width w: Int, height h: Int, plan p: Upscaler.Plan, settings s: Settings
    ) throws -> (pixels: [Float], tiles: Int, seamRows: [Int], seamCols: [Int]) {
        let split = s.officialTile, overlap = s.officialOverlap, crop = s.officialCrop
        guard overlap > 0, overlap < split / 2 else { throw BenchError.badInput("official overlap must be in (0, tile/2)") }
        guard split % up.model.denominator == 0 else {
            throw BenchError.badInput("official tile \(split) must be a multiple of \(up.model.denominator)")
        }
        let hp = p.paddedHeight, wp = p.paddedWidth
        func count(_ n: Int) -> Int { Int((Double(n - overlap) / Double(split - overlap)).rounded(.up)) }
        let nh = max(1, count(hp)), nw = max(1, count(wp))
        let H2 = nh * (split - overlap) + overlap, W2 = nw * (split - overlap) + overlap
        guard H2 - hp < hp, W2 - wp < wp else { throw BenchError.badInput("official tile \(split) is too large for the image") }
        // lq_pad (reflect to a multiple of the denominator), then reflect again to H2 × W2.
        func refl(_ i: Int, _ n: Int) -> Int { i < n ? i : 2 * (n - 1) - i }
        func source(_ y: Int, _ x: Int) -> Int {
            (refl(refl(y, hp), h) * w + refl(refl(x, wp), w)) * 3
        }
        let srTile = Int((Double(split) * s.scale).rounded(.up))
        let srOverlap = Int((Double(overlap) * s.scale).rounded(.up))
        let outH = (nh - 1) * (srTile - srOverlap) + srTile, outW = (nw - 1) * (srTile - srOverlap) + srTile
        var canvas = [Float](repeating: 0, count: outH * outW * 3)
        let integer = s.scale == s.scale.rounded()
        let request = ScaleRequest(scale: s.scale)
        var tileUp = up
        tileUp.memoryLimitBytes = Int.max / 4
        let tp = try tileUp.plan(width: split, height: split, request: request, checkMemory: false)
        for i in 0..<nh {
            for j in 0..<nw {
                let y0 = i * (split - overlap), x0 = j * (split - overlap)
                var tile = [Float](repeating: 0, count: split * split * 3)
                for yy in 0..<split {
                    for xx in 0..<split {
                        let si = source(y0 + yy, x0 + xx)
                        for c in 0..<3 { tile[(yy * split + xx) * 3 + c] = image[si + c] }
                    }
                }
                var timings = Upscaler.Timings()
                let gs = tileUp.gaussians(rgb: tile, plan: tp, timings: &timings)
                let k = withExtendedLifetime(gs) {
                    GaussianActivation.kernels(
                        fromRaw: UnsafeBufferPointer(start: gs.ptr, count: gs.count), width: srTile, height: srTile,
                        scale: Float(s.scale))
                }
                let img = up.rasterizer.forward(k, width: srTile, height: srTile)
                let sy = i * (srTile - srOverlap), sx = j * (srTile - srOverlap)
                var cropRows = i > 0, cropCols = j > 0
                if !integer && i > 0 && j > 0 {
                    if j == nw - 1 && i != nh - 1 { cropRows = false }
                    if i == nh - 1 && j != nw - 1 { cropCols = false }
                }
                let r0 = cropRows ? crop : 0, c0 = cropCols ? crop : 0
                for yy in r0..<min(srTile, outH - sy) {
                    for xx in c0..<min(srTile, outW - sx) {
                        for c in 0..<3 { canvas[((sy + yy) * outW + sx + xx) * 3 + c] = img[(yy * srTile + xx) * 3 + c] }
                    }
                }
            }
        }
        var out = [Float](repeating: 0, count: p.outputWidth * p.outputHeight * 3)
        for y in 0..<p.outputHeight {
            for x in 0..<(p.outputWidth * 3) { out[y * p.outputWidth * 3 + x] = canvas[y * outW * 3 + x] }
        }
        let rows = (1..<nh).map { $0 * (srTile - srOverlap) }.filter { $0 < p.outputHeight }
        let cols = (1..<nw).map { $0 * (srTile - srOverlap) }.filter { $0 < p.outputWidth }
        return (out, nh * nw, rows, cols)
    }

    /// Fills the comparison fields of `run` from its render and the untiled one. A pixel is on a
    /// seam when it lies within `band` output pixels of a seam row or column.
    public static func compare(_ run: inout Run, pixels: [Float], untiled ref: [Float], band: Int) {
        let w = run.outputWidth, h = run.outputHeight
        guard pixels.count == ref.count, ref.count == w * h * 3 else { return }
        var nearRow = [Bool](repeating: false, count: h), nearCol = [Bool](repeating: false, count: w)
        for r in run.seamRows { for y in max(0, r - band)..<min(h, r + band) { nearRow[y] = true } }
        for c in run.seamCols { for x in max(0, c - band)..<min(w, c + band) { nearCol[x] = true } }
        var se = 0.0, seam = 0.0, inside = 0.0
        for y in 0..<h {
            for x in 0..<w {
                for c in 0..<3 {
                    let i = (y * w + x) * 3 + c
                    let d = abs(Double(pixels[i]) - Double(ref[i]))
                    se += d * d
                    if nearRow[y] || nearCol[x] { seam = max(seam, d) } else { inside = max(inside, d) }
                }
            }
        }
        run.psnrVsUntiled = 10 * log10(1 / max(se / Double(ref.count), 1e-30))
        run.maxErrorOnSeams = seam
        run.maxErrorInside = inside
    }

    public static func format(_ r: Report) -> String {
        var s = """
            tile bench: model \(r.model), LR \(r.lrWidth)x\(r.lrHeight), x\(r.settings.scale), \(r.threads) threads; \
            ours: tile \(r.settings.tile) margin \(r.settings.margin); official: tile \(r.settings.officialTile) \
            overlap \(r.settings.officialOverlap) crop \(r.settings.officialCrop)
              method    tiles   time (s)  vs untiled  peak RSS (MiB)  PSNR vs untiled (dB)  max |err| seams / inside
            """
        let base = r.runs.first { $0.method == .untiled }
        for run in r.runs {
            let ratio = base.map { String(format: "%9.2fx", run.seconds / $0.seconds) } ?? "        -"
            let psnr = run.psnrVsUntiled.map { $0 > 200 ? "   identical" : String(format: "%12.2f", $0) } ?? "           -"
            let err =
                run.maxErrorOnSeams.map { String(format: "%.2e / %.2e", $0, run.maxErrorInside ?? 0) } ?? "-"
            let split =
                run.stageSeconds.count == 3
                ? String(format: "  (encoder %.2f, decoder %.2f, rasterizer %.2f s)", run.stageSeconds[0], run.stageSeconds[1], run.stageSeconds[2])
                : ""
            s += "\n" + String(
                format: "  %@ %6d %10.2f %@ %15.0f  %@          %@",
                run.method.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0), run.tiles, run.seconds,
                ratio, run.peakRSSMiB, psnr, err) + split
        }
        return s
    }
}
