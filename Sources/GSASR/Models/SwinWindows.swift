import GSASRCheckpoint
import GSASRTensor

/// Shifted-window bookkeeping shared by the Swin-style encoders (SwinIR, HAT): the windows of a
/// token map (tokens row-major y·W + x, which is also the channels-last image) rolled by
/// −shift on both axes, as row maps, and Swin's shifted-window masks.
struct SwinWindows {
    let height: Int, width: Int, window: Int, shift: Int
    var rowsOfWindows: Int { height / window }
    var colsOfWindows: Int { width / window }
    var count: Int { rowsOfWindows * colsOfWindows }
    var area: Int { window * window }

    /// Slot (w, i) of the rolled windows (row-major windows, row-major inside) reads token
    /// ((m·ws + dy + shift) mod H)·W + (n·ws + dx + shift) mod W. The attention writes its output
    /// at the same rows, which is the roll back.
    func rows() -> [Int32] {
        var r = [Int32](repeating: 0, count: height * width)
        for m in 0..<rowsOfWindows {
            for n in 0..<colsOfWindows {
                for dy in 0..<window {
                    for dx in 0..<window {
                        let y = (m * window + dy + shift) % height, x = (n * window + dx + shift) % width
                        r[((m * colsOfWindows + n) * window + dy) * window + dx] = Int32(y * width + x)
                    }
                }
            }
        }
        return r
    }

    /// Swin's mask for the rolled map: the rolled coordinates fall in the regions [0, L − ws),
    /// [L − ws, L − shift), [L − shift, L) on each axis; a query and a key in different regions
    /// get −100 (not −∞, as the official code), the same region 0. Only the last row and column
    /// of windows straddle regions, so there are four kinds of window: the masks (3 × area ×
    /// area: last column, last row, the corner) and each window's index into them (−1: none).
    func masks() -> (masks: [Float], ofWindow: [Int32]) {
        func region(_ c: Int, _ l: Int) -> Int { c < l - window ? 0 : (c < l - shift ? 1 : 2) }
        let a = area
        var masks = [Float](repeating: 0, count: 3 * a * a)
        for kind in 1...3 {
            let m = kind >= 2 ? rowsOfWindows - 1 : 0, n = kind % 2 == 1 ? colsOfWindows - 1 : 0
            var id = [Int](repeating: 0, count: a)
            for i in 0..<a {
                id[i] = region(m * window + i / window, height) * 3 + region(n * window + i % window, width)
            }
            for i in 0..<a {
                for j in 0..<a where id[i] != id[j] { masks[((kind - 1) * a + i) * a + j] = -100 }
            }
        }
        var of = [Int32](repeating: -1, count: count)
        for m in 0..<rowsOfWindows {
            for n in 0..<colsOfWindows {
                let kind = (m == rowsOfWindows - 1 ? 2 : 0) + (n == colsOfWindows - 1 ? 1 : 0)
                of[m * colsOfWindows + n] = Int32(kind - 1)
            }
        }
        return (masks, of)
    }

    /// The official `calculate_mask` for an img × img map (the `attn_mask` buffer of a
    /// from-scratch model): windows × area × area.
    static func officialMaskBuffer(imageSize img: Int, window ws: Int) -> [Float] {
        let w = SwinWindows(height: img, width: img, window: ws, shift: ws / 2)
        let (m, of) = w.masks()
        let a = ws * ws
        var out = [Float](repeating: 0, count: w.count * a * a)
        for i in 0..<w.count where of[i] >= 0 {
            for j in 0..<(a * a) { out[i * a * a + j] = m[Int(of[i]) * a * a + j] }
        }
        return out
    }

    /// The standard Swin relative-position index: (yᵢ − yⱼ + ws − 1)·(2ws − 1) + xᵢ − xⱼ + ws − 1.
    static func relativePositionIndex(window ws: Int) -> [Int64] {
        GSASRInitialization.selfAttentionIndex(seedSide: ws)
    }
}

/// The window maps of one map size, computed once per forward and shared by its blocks: the
/// row map, each token's slot in its window (RoPE positions) and the masks, per shift.
final class SwinWindowMaps {
    struct Maps {
        let windows: SwinWindows
        let rows: [Int32]
        /// slot[token] = its index inside its (rolled) window.
        let slot: [Int32]
        let masks: (masks: [Float], ofWindow: [Int32])?
    }
    let height: Int, width: Int, window: Int
    private var cache: [Int: Maps] = [:]

    init(height: Int, width: Int, window: Int) {
        self.height = height
        self.width = width
        self.window = window
    }

    /// The maps for `shift` (masked: Swin's masks too).
    func maps(shift: Int, masked: Bool) -> Maps {
        if let m = cache[shift * 2 + (masked ? 1 : 0)] { return m }
        let w = SwinWindows(height: height, width: width, window: window, shift: shift)
        let rows = w.rows()
        var slot = [Int32](repeating: 0, count: rows.count)
        for (s, r) in rows.enumerated() { slot[Int(r)] = Int32(s % w.area) }
        let m = Maps(windows: w, rows: rows, slot: slot, masks: masked && shift > 0 ? w.masks() : nil)
        cache[shift * 2 + (masked ? 1 : 0)] = m
        return m
    }
}

extension Kernels {
    /// Window self-attention on a token map: `qkv` (T × 3C, [q | k | v]) through the window
    /// row map `rows`; output (T × C) at the tokens' own rows.
    static func swinAttention(
        qkv: Tensor, channels c: Int, windows: SwinWindows, rows: [Int32], heads: Int, bias: Tensor?,
        masks: (masks: [Float], ofWindow: [Int32])?
    ) -> Tensor {
        let t = qkv.shape[0]
        let out = Tensor(uninitialized: [t, c])
        qkv.withPointer { q in
            out.withPointer { o in
                let run = { (b: UnsafePointer<Float>?) in
                    if let masks {
                        masks.masks.withUnsafeBufferPointer { mp in
                            masks.ofWindow.withUnsafeBufferPointer { op in
                                windowAttention(
                                    q: q, k: q + c, v: q + 2 * c, channels: c, ldQ: 3 * c, ldKV: 3 * c, ldOut: c,
                                    qRows: rows, kRows: rows, windows: windows.count, nq: windows.area,
                                    nk: windows.area, heads: heads, bias: b, out: o, masks: mp.baseAddress,
                                    maskOfWindow: op.baseAddress)
                            }
                        }
                    } else {
                        windowAttention(
                            q: q, k: q + c, v: q + 2 * c, channels: c, ldQ: 3 * c, ldKV: 3 * c, ldOut: c,
                            qRows: rows, kRows: rows, windows: windows.count, nq: windows.area, nk: windows.area,
                            heads: heads, bias: b, out: o)
                    }
                }
                if let bias { bias.withPointer { run(UnsafePointer($0)) } } else { run(nil) }
            }
        }
        return out
    }
}

/// The outer path that SwinIRNOUP and HATNOUP_ROPE_AMP share around their residual groups.
enum SwinOuterPath {
    /// A residual group on tokens t (h·w × C): conv3×3(body(t)) + t (`resi_connection='1conv'`).
    static func residualGroup(
        _ t: Tensor, height h: Int, width w: Int, conv: Conv2d, body: (Tensor) -> Tensor
    ) -> Tensor {
        let d = t.shape[1]
        let y = conv(body(t).reshaped([h, w, d]), height: h, width: w).reshaped([h * w, d])
        Kernels.add(y, t)
        return y
    }

    /// After the groups: LeakyReLU_0.01(conv_before_upsample.0(conv_after_body(norm(t)) + x0)).
    static func reconstruct(
        _ t: Tensor, x0: Tensor, height h: Int, width w: Int, norm: LayerNorm, convAfterBody: Conv2d,
        convBeforeUpsample: Conv2d
    ) -> Tensor {
        let f = convAfterBody(norm(t).reshaped([h, w, t.shape[1]]), height: h, width: w)
        Kernels.add(f, x0)
        let y = convBeforeUpsample(f, height: h, width: w)
        Kernels.leakyReLU(y, slope: 0.01)
        return y
    }

    /// The groups' depths (blocks present under `layers.{k}.residual_group.blocks.{j}`) and heads
    /// (`heads(k)`: read from group k's first block).
    static func depthsAndHeads(_ sd: StateDict, heads: (Int) throws -> Int) throws -> (depths: [Int], heads: [Int]) {
        var depths: [Int] = [], hs: [Int] = []
        while sd["layers.\(depths.count).residual_group.blocks.0.norm1.weight"] != nil {
            let l = depths.count
            var n = 0
            while sd["layers.\(l).residual_group.blocks.\(n).norm1.weight"] != nil { n += 1 }
            hs.append(try heads(l))
            depths.append(n)
        }
        guard !depths.isEmpty else { throw ModelLoadError("no key 'layers.0.residual_group.blocks.0.norm1.weight'") }
        return (depths, hs)
    }

    /// A key's shape, or a one-line error naming it.
    static func shape(_ sd: StateDict, _ k: String) throws -> [Int] {
        guard let t = sd[k] else { throw ModelLoadError("no key '\(k)'") }
        return t.shape
    }
}
