import Foundation
import GSASR

/// A plain float64 GSASR forward (EDSRNOUP + Fea2GS), written from the official module code
/// with no shortcut (no stacking, no window groups, the scale cross-attention as a real
/// attention over one repeated key), reading parameters by their state-dict keys in PyTorch's
/// layout. It is the reference of ``ModuleGradientTests``: slow, simple and in double precision.
struct Reference64 {
    var p: [String: [Double]]
    let cfg: Fea2GSConfig
    let encoderBlocks: Int
    let selfIndex: [Int], crossIndex: [Int]

    init(model: GSASRModel) {
        var p: [String: [Double]] = [:]
        for e in model.encoderState.parameters { p["encoder." + e.key] = e.torchValues().map(Double.init) }
        for e in model.decoderState.parameters { p["decoder." + e.key] = e.torchValues().map(Double.init) }
        self.p = p
        cfg = model.decoder.config
        encoderBlocks = (model.encoder as! EDSRNOUP).config.numBlock
        func buffer(_ key: String) -> [Int] {
            for e in model.decoderState {
                if case .buffer(let k, _, let v) = e, k.hasSuffix(key) { return v.map { Int($0) } }
            }
            fatalError("no buffer \(key)")
        }
        selfIndex = buffer("gs_self_attn.relative_position_index")
        crossIndex = buffer("window_cross_attn.relative_position_index")
    }

    // MARK: layers (channels-last maps, row-major token matrices)

    func conv(_ key: String, _ x: [Double], h: Int, w: Int, cin: Int) -> [Double] {
        let wt = p[key + ".weight"]!, b = p[key + ".bias"]!
        let cout = b.count
        var y = [Double](repeating: 0, count: h * w * cout)
        for yy in 0..<h {
            for xx in 0..<w {
                for o in 0..<cout {
                    var s = b[o]
                    for ky in 0..<3 {
                        let sy = yy + ky - 1
                        if sy < 0 || sy >= h { continue }
                        for kx in 0..<3 {
                            let sx = xx + kx - 1
                            if sx < 0 || sx >= w { continue }
                            for i in 0..<cin { s += wt[((o * cin + i) * 3 + ky) * 3 + kx] * x[(sy * w + sx) * cin + i] }
                        }
                    }
                    y[(yy * w + xx) * cout + o] = s
                }
            }
        }
        return y
    }

    func linear(_ key: String, _ x: [Double], inF: Int) -> [Double] {
        let wt = p[key + ".weight"]!, b = p[key + ".bias"]!
        let outF = b.count, rows = x.count / inF
        var y = [Double](repeating: 0, count: rows * outF)
        for r in 0..<rows {
            for o in 0..<outF {
                var s = b[o]
                for i in 0..<inF { s += wt[o * inF + i] * x[r * inF + i] }
                y[r * outF + o] = s
            }
        }
        return y
    }

    func relu(_ x: [Double]) -> [Double] { x.map { max($0, 0) } }
    func add(_ a: [Double], _ b: [Double]) -> [Double] { zip(a, b).map { $0 + $1 } }

    func norm(_ key: String, _ x: [Double], n: Int) -> [Double] {
        let g = p[key + ".weight"]!, b = p[key + ".bias"]!
        var y = x
        for r in 0..<(x.count / n) {
            let row = x[(r * n)..<(r * n + n)]
            let mu = row.reduce(0, +) / Double(n)
            let v = row.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / Double(n)
            let rs = 1 / (v + 1e-5).squareRoot()
            for j in 0..<n { y[r * n + j] = (x[r * n + j] - mu) * rs * g[j] + b[j] }
        }
        return y
    }

    func mlp(_ key: String, _ x: [Double], first: String, second: String, n: Int) -> [Double] {
        linear(key + "." + second, relu(linear(key + "." + first, x, inF: n)), inF: n)
    }

    /// nn.MultiheadAttention with one key = value = s for every query: softmax over identical
    /// logits, computed as an attention (not the shortcut).
    func scaleAttention(_ key: String, tokens: Int, s: [Double]) -> [Double] {
        let c = cfg.channel
        let w = p[key + ".in_proj_weight"]!, b = p[key + ".in_proj_bias"]!
        var v = [Double](repeating: 0, count: c)
        for o in 0..<c {
            var acc = b[2 * c + o]
            for i in 0..<c { acc += w[(2 * c + o) * c + i] * s[i] }
            v[o] = acc
        }
        // One key: every softmax weight is 1, the attended value is v.
        let m = linear(key + ".out_proj", v, inF: c)
        return (0..<tokens).flatMap { _ in m }
    }

    /// Multi-head attention of query rows `q` to key/value rows, with bias[h][i][j].
    func attention(q: [[Double]], k: [[Double]], v: [[Double]], bias: (Int, Int, Int) -> Double) -> [[Double]] {
        let c = cfg.channel, heads = cfg.numHeads, d = c / heads
        let scale = 1 / Double(d).squareRoot()
        var out = q.map { _ in [Double](repeating: 0, count: c) }
        for hd in 0..<heads {
            for i in q.indices {
                var logits = k.indices.map { j in
                    (0..<d).reduce(0.0) { $0 + q[i][hd * d + $1] * k[j][hd * d + $1] } * scale + bias(hd, i, j)
                }
                let mx = logits.max()!
                logits = logits.map { exp($0 - mx) }
                let z = logits.reduce(0, +)
                for j in k.indices { for e in 0..<d { out[i][hd * d + e] += logits[j] / z * v[j][hd * d + e] } }
            }
        }
        return out
    }

    // MARK: networks

    func encoder(_ x: [Double], h: Int, w: Int) -> [Double] {
        var f = conv("encoder.conv_first", x, h: h, w: w, cin: 3)
        let nf = p["encoder.conv_first.bias"]!.count
        for b in 0..<encoderBlocks {
            let t = relu(conv("encoder.body.\(b).conv1", f, h: h, w: w, cin: nf))
            f = add(f, conv("encoder.body.\(b).conv2", t, h: h, w: w, cin: nf))
        }
        return conv("encoder.conv_after_body", f, h: h, w: w, cin: nf)
    }

    func decoder(_ features: [Double], hp: Int, wp: Int, scale: Float) -> [Double] {
        let c = cfg.channel, ws = cfg.windowSize, s = cfg.numGsSeedSqrt, seeds = s * s
        let semb = linear(
            "decoder.scale_mlp.2", relu(linear("decoder.scale_mlp.0", [Double(Float(1) / scale)], inF: 1)), inF: 4 * c)
        let feat = conv(
            "decoder.img_feat_proj.2",
            relu(conv("decoder.img_feat_proj.0", features, h: hp, w: wp, cin: cfg.inchannel)),
            h: hp, w: wp, cin: c)
        let hc = hp / ws, wc = wp / ws, windows = hc * wc, t = windows * seeds
        let gh = hc * s, gw = wc * s
        func token(_ gy: Int, _ gx: Int) -> Int { ((gy / s) * wc + gx / s) * seeds + (gy % s) * s + gx % s }
        let emb = p["decoder.gs_embedding"]!, posE = p["decoder.pos_embedding"]!
        var query = (0..<windows).flatMap { _ in emb }
        let pos = (0..<windows).flatMap { _ in posE }
        func rows(_ x: [Double]) -> [[Double]] { (0..<(x.count / c)).map { Array(x[($0 * c)..<($0 * c + c)]) } }
        for b in 0..<cfg.numCrossattnBlocks {
            let bk = "decoder.window_crossattn_blocks.\(b)"
            var x = norm(bk + ".norm", query, n: c)
            for l in 0..<cfg.numCrossattnLayers {
                let lk = bk + ".blocks.\(l)", shift = l % 2 == 0 ? 0 : ws / 2
                x = add(x, scaleAttention(lk + ".gs_cross_attn_scale", tokens: t, s: semb))
                x = add(
                    x, mlp(lk + ".mlp_crossattn_scale", norm(lk + ".norm2", x, n: c), first: "fc1", second: "fc2", n: c)
                )
                let q = rows(linear(lk + ".window_cross_attn.qhead", add(norm(lk + ".norm3", x, n: c), pos), inF: c))
                let k = rows(linear(lk + ".window_cross_attn.khead", feat, inF: c))
                let v = rows(linear(lk + ".window_cross_attn.vhead", feat, inF: c))
                let table = p[lk + ".window_cross_attn.relative_position_bias_table"]!
                var attn = [Double](repeating: 0, count: t * c)
                for mm in 0..<hc {
                    for nn in 0..<wc {
                        let w0 = (mm * wc + nn) * seeds
                        var keys: [Int] = []
                        for dy in 0..<ws {
                            for dx in 0..<ws {
                                keys.append(((mm * ws + dy + shift) % hp) * wp + (nn * ws + dx + shift) % wp)
                            }
                        }
                        let o = attention(
                            q: Array(q[w0..<(w0 + seeds)]), k: keys.map { k[$0] }, v: keys.map { v[$0] },
                            bias: { hd, i, j in table[self.crossIndex[i * ws * ws + j] * self.cfg.numHeads + hd] })
                        for i in 0..<seeds { for e in 0..<c { attn[(w0 + i) * c + e] = o[i][e] } }
                    }
                }
                x = add(x, linear(lk + ".window_cross_attn.proj", attn, inF: c))
                x = add(
                    x,
                    mlp(lk + ".mlp_crossattn_feature", norm(lk + ".norm4", x, n: c), first: "fc1", second: "fc2", n: c))
            }
            query = add(query, mlp(bk + ".mlp", x, first: "0", second: "2", n: c))
        }
        let resi = query
        for b in 0..<cfg.numSelfattnBlocks {
            let bk = "decoder.gs_selfattn_blocks.\(b)"
            var g = norm(bk + ".norm", query, n: c)
            for l in 0..<cfg.numSelfattnLayers {
                let lk = bk + ".blocks.\(l)", shift = l % 2 == 0 ? 0 : s / 2
                g = add(g, scaleAttention(lk + ".gs_cross_attn_scale", tokens: t, s: semb))
                g = add(g, mlp(lk + ".mlp_crossattn", norm(lk + ".norm4", g, n: c), first: "fc1", second: "fc2", n: c))
                let n1 = norm(lk + ".norm1", g, n: c)
                let q = rows(linear(lk + ".gs_self_attn.qhead", n1, inF: c))
                let k = rows(linear(lk + ".gs_self_attn.khead", n1, inF: c))
                let v = rows(linear(lk + ".gs_self_attn.vhead", n1, inF: c))
                let table = p[lk + ".gs_self_attn.relative_position_bias_table"]!
                var attn = [Double](repeating: 0, count: t * c)
                for mm in 0..<hc {
                    for nn in 0..<wc {
                        var slots: [Int] = []
                        for hh in 0..<s {
                            for ww in 0..<s {
                                slots.append(token((mm * s + hh + shift) % gh, (nn * s + ww + shift) % gw))
                            }
                        }
                        let o = attention(
                            q: slots.map { q[$0] }, k: slots.map { k[$0] }, v: slots.map { v[$0] },
                            bias: { hd, i, j in table[self.selfIndex[i * seeds + j] * self.cfg.numHeads + hd] })
                        for (i, tk) in slots.enumerated() { for e in 0..<c { attn[tk * c + e] = o[i][e] } }
                    }
                }
                g = add(g, linear(lk + ".gs_self_attn.proj", attn, inF: c))
                g = add(g, mlp(lk + ".mlp_selfattn", norm(lk + ".norm2", g, n: c), first: "fc1", second: "fc2", n: c))
            }
            query = add(query, mlp(bk + ".mlp", g, first: "0", second: "2", n: c))
        }
        if cfg.numSelfattnBlocks > 0 { query = add(query, resi) }
        var img = [Double](repeating: 0, count: gh * gw * c)
        for gy in 0..<gh {
            for gx in 0..<gw { for e in 0..<c { img[(gy * gw + gx) * c + e] = query[token(gy, gx) * c + e] } }
        }
        func shuffle(_ x: [Double], h: Int, w: Int, r: Int) -> [Double] {
            var y = [Double](repeating: 0, count: x.count)
            for yy in 0..<h {
                for xx in 0..<w {
                    for i in 0..<r {
                        for j in 0..<r {
                            for e in 0..<c {
                                y[((yy * r + i) * w * r + xx * r + j) * c + e] =
                                    x[(yy * w + xx) * c * r * r + e * r * r + i * r + j]
                            }
                        }
                    }
                }
            }
            return y
        }
        let s1 = cfg.shuffleScale1, s2 = cfg.shuffleScale2
        let u0 = shuffle(conv("decoder.UPNet.0", img, h: gh, w: gw, cin: c), h: gh, w: gw, r: s1)
        let uh = gh * s1 * s2, uw = gw * s1 * s2
        let up = shuffle(conv("decoder.UPNet.2", u0, h: gh * s1, w: gw * s1, cin: c), h: gh * s1, w: gw * s1, r: s2)
        var out: [Double] = []
        let refX = Fea2GS.referencePoints(uw).map(Double.init), refY = Fea2GS.referencePoints(uh).map(Double.init)
        for gi in 0..<(uh * uw) {
            let u = Array(up[(gi * c)..<(gi * c + c)])
            var row: [Double] = []
            for name in ["sigma", "rho", "alpha", "rgb", "mean"] {
                let hk = "decoder.mlp_block_\(name)"
                row += linear(
                    hk + ".4", relu(linear(hk + ".2", relu(linear(hk + ".0", u, inF: c)), inF: c)), inF: 4 * c)
            }
            row[7] = row[7] / Double(uw) + refX[gi % uw]
            row[8] = row[8] / Double(uh) + refY[gi / uw]
            out += row
        }
        return out
    }
}
