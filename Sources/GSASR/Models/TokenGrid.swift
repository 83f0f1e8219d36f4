import GSASRTensor

/// Token layout shared by the decoder blocks: `windows` windows in row-major (m, n) order,
/// each holding num_gs_seed tokens in row-major (h, w) order — the official
/// `(b h_count w_count) (dh dw) c` layout for batch 1. Rows are tokens, columns channels.
struct TokenGrid {
    let rowsOfWindows: Int  // h_count
    let colsOfWindows: Int  // w_count
    let seedSide: Int  // sqrt(num_gs_seed)
    var windows: Int { rowsOfWindows * colsOfWindows }
    var seeds: Int { seedSide * seedSide }
    var tokens: Int { windows * seeds }
    var gridHeight: Int { rowsOfWindows * seedSide }
    var gridWidth: Int { colsOfWindows * seedSide }

    /// Token row of grid position (gy, gx).
    func token(gy: Int, gx: Int) -> Int {
        ((gy / seedSide) * colsOfWindows + gx / seedSide) * seeds + (gy % seedSide) * seedSide + gx % seedSide
    }

    /// Row map of the windows of the grid rolled by −shift on both axes (torch.roll with
    /// negative shifts): window slot (w, i) reads token at grid position + shift (mod size).
    func shiftedWindowRows(shift: Int) -> [Int32] {
        var rows = [Int32](repeating: 0, count: tokens)
        for m in 0..<rowsOfWindows {
            for n in 0..<colsOfWindows {
                for h in 0..<seedSide {
                    for w in 0..<seedSide {
                        let gy = (m * seedSide + h + shift) % gridHeight
                        let gx = (n * seedSide + w + shift) % gridWidth
                        rows[(m * colsOfWindows + n) * seeds + h * seedSide + w] = Int32(token(gy: gy, gx: gx))
                    }
                }
            }
        }
        return rows
    }
}

extension TokenGrid {
    /// Tokens (window-major rows, C channels) → the (gridHeight × gridWidth × C) image.
    func image(_ x: Tensor) -> Tensor {
        let c = x.shape.last!
        let img = Tensor(uninitialized: [gridHeight, gridWidth, c])
        img.withPointer { ip in
            x.withPointer { xp in
                for gy in 0..<gridHeight {
                    for gx in 0..<gridWidth {
                        (ip + (gy * gridWidth + gx) * c).update(from: xp + token(gy: gy, gx: gx) * c, count: c)
                    }
                }
            }
        }
        return img
    }

    /// The inverse of ``image(_:)``: (gridHeight × gridWidth × C) → tokens × C.
    func tokens(fromImage img: Tensor) -> Tensor {
        let c = img.shape.last!
        let x = Tensor(uninitialized: [tokens, c])
        img.withPointer { ip in
            x.withPointer { xp in
                for gy in 0..<gridHeight {
                    for gx in 0..<gridWidth {
                        (xp + token(gy: gy, gx: gx) * c).update(from: ip + (gy * gridWidth + gx) * c, count: c)
                    }
                }
            }
        }
        return x
    }

    /// A 3×3 convolution of the token image (zero padding at the image's edges only, so it mixes
    /// neighbouring windows across their borders), back as tokens: the RoPE decoder's block
    /// convs and `conv_final`.
    ///
    /// `cuts` (token-grid rows and columns where a tile's torus region wraps around the image's
    /// edge) split the image into pieces convolved on their own, so that the convolution sees
    /// zero padding at the image's true edges there, as the untiled run does.
    func convolve(_ x: Tensor, _ conv: Conv2d, cuts: GridCuts = GridCuts()) -> Tensor {
        let img = image(x)
        if cuts.rows.isEmpty && cuts.columns.isEmpty {
            return tokens(fromImage: conv(img, height: gridHeight, width: gridWidth))
        }
        let c = img.shape.last!, co = conv.weights.cout
        let out = Tensor(uninitialized: [gridHeight, gridWidth, co])
        let ys = [0] + cuts.rows.filter { $0 > 0 && $0 < gridHeight }.sorted() + [gridHeight]
        let xs = [0] + cuts.columns.filter { $0 > 0 && $0 < gridWidth }.sorted() + [gridWidth]
        for (y0, y1) in zip(ys, ys.dropFirst()) {
            for (x0, x1) in zip(xs, xs.dropFirst()) {
                let ph = y1 - y0, pw = x1 - x0
                let piece = Tensor(uninitialized: [ph, pw, c])
                piece.withPointer { d in
                    img.withPointer { s in
                        for yy in 0..<ph { (d + yy * pw * c).update(from: s + ((y0 + yy) * gridWidth + x0) * c, count: pw * c) }
                    }
                }
                let y = conv(piece, height: ph, width: pw)
                out.withPointer { d in
                    y.withPointer { s in
                        for yy in 0..<ph { (d + ((y0 + yy) * gridWidth + x0) * co).update(from: s + yy * pw * co, count: pw * co) }
                    }
                }
            }
        }
        return tokens(fromImage: out)
    }
}

/// Rows and columns of a token grid where the map it covers is cut (a tile's torus region
/// wrapping around the image's edge), in token-grid units.
struct GridCuts {
    var rows: [Int] = []
    var columns: [Int] = []
}

/// The inputs every decoder block layer reads for one image, and (for a backward) the fan-in
/// gradients of those inputs, summed over every layer. The gradients are created on first use,
/// so an inference forward allocates nothing for them.
final class DecoderBlockEnv {
    let grid: TokenGrid
    let feat: Tensor  // (hp·wp) × C, the projected features
    let featHeight: Int, featWidth: Int, windowSize: Int
    let pos: Tensor  // tokens × C, per-window copies of pos_embedding
    let scaleEmbedding: [Float]
    /// Where the grid's map wraps around the image's edge (tiles): the RoPE decoder's block
    /// convolutions treat those lines as edges.
    var cuts = GridCuts()
    /// dL/dfeat, dL/dpos (tokens × C) and dL/d(scale embedding).
    lazy var dFeat = Tensor(zeros: feat.shape)
    lazy var dPos = Tensor(zeros: pos.shape)
    lazy var dScaleEmbedding = [Float](repeating: 0, count: scaleEmbedding.count)

    init(
        grid: TokenGrid, feat: Tensor, featHeight: Int, featWidth: Int, windowSize: Int, pos: Tensor,
        scaleEmbedding: [Float]
    ) {
        self.grid = grid
        self.feat = feat
        self.featHeight = featHeight
        self.featWidth = featWidth
        self.windowSize = windowSize
        self.pos = pos
        self.scaleEmbedding = scaleEmbedding
    }

    func addScaleGradient(_ ds: [Float]) {
        for i in ds.indices { dScaleEmbedding[i] += ds[i] }
    }
}

/// Column sums (over tokens) of a tokens × C gradient: the gradient of a per-layer constant
/// row added to every token.
func columnSums(_ x: Tensor, channels c: Int) -> [Float] {
    var s = [Float](repeating: 0, count: c)
    s.withUnsafeMutableBufferPointer { Kernels.addColumnSums(x, into: $0.baseAddress!, n: c) }
    return s
}
