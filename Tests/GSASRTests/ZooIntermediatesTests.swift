import Foundation
import GSASR
import GSASRTensor
import Testing

/// The official run's stored intermediates (shared/golden/zoo/*/intermediates_*), module by
/// module, to localise a regression: every stored array but the two pre-merge attention outputs
/// (`dec_*_attn_out`, `enc_layers0_block0_window_attn_out`), which the stages after them cover.
/// Same tolerance as the outputs: |d| ≤ 1e-4 + 1e-4·|ref|.
@Suite(.serialized) struct ZooIntermediatesTests {
    static func reference(_ config: String, _ image: String = "astronaut_48x48", _ name: String) throws -> [Float] {
        try Fixtures.npy(Fixtures.url("zoo/\(config)/intermediates_\(image)_x4/\(name).npy")).floats
    }

    static func check(_ config: String, _ name: String, _ ours: [Float], image: String = "astronaut_48x48") throws {
        let d = Diff(ours, try reference(config, image, name))
        print("[zoo intermediates] \(config) \(image) \(name): \(d)")
        #expect(d.worstRatio <= 1, "\(config) \(name)")
    }

    /// HWC (h·w × c) → NCHW.
    static func nchw(_ t: Tensor) -> [Float] {
        let c = t.shape.last!, p = t.count / c, a = t.array
        var o = [Float](repeating: 0, count: a.count)
        for i in 0..<p { for j in 0..<c { o[j * p + i] = a[i * c + j] } }
        return o
    }

    /// The LR image reflect-padded (bottom, right) to the model's denominator, as the pipeline does.
    static func input(_ image: String, denominator d: Int) throws -> (Tensor, Int, Int) {
        let lr = try Fixtures.lr(image)
        let hp = (lr.height + d - 1) / d * d, wp = (lr.width + d - 1) / d * d
        let x = Tensor(shape: [lr.height, lr.width, 3], values: lr.pixels)
        if hp == lr.height && wp == lr.width { return (x, hp, wp) }
        return (
            Kernels.reflectPadBottomRight(
                x, height: lr.height, width: lr.width, channels: 3, padH: hp - lr.height, padW: wp - lr.width), hp, wp
        )
    }

    @Test func rdn() throws {
        let m = try ZooParityTests.model("rdn_small")
        let e = try #require(m.encoder as? RDNNOUP)
        let (x, h, w) = try Self.input("astronaut_48x48", denominator: m.denominator)
        let f1 = e.sfeNet1(x, height: h, width: w)
        try Self.check("rdn_small", "enc_SFENet1", Self.nchw(f1))
        var cur = e.sfeNet2(f1, height: h, width: w)
        var outs: [Tensor] = []
        for rdb in e.rdbs {
            cur = rdb(cur, height: h, width: w)
            outs.append(cur)
        }
        try Self.check("rdn_small", "enc_RDB0", Self.nchw(outs[0]))
        let g0 = e.config.g0
        var cat = [Float](repeating: 0, count: h * w * outs.count * g0)
        for (i, o) in outs.enumerated() {
            let a = o.array
            for p in 0..<(h * w) { for j in 0..<g0 { cat[p * outs.count * g0 + i * g0 + j] = a[p * g0 + j] } }
        }
        let fused = e.gff1(
            e.gff0(Tensor(shape: [h * w, outs.count * g0], values: cat)).reshaped([h, w, g0]), height: h, width: w)
        try Self.check("rdn_small", "enc_GFF_before_global_residual", Self.nchw(fused))
    }

    @Test(arguments: ["astronaut_48x48", "coffee_37x50"]) func swinir(image: String) throws {
        let m = try ZooParityTests.model("swinir_small")
        let e = try #require(m.encoder as? SwinIRNOUP)
        let (x, h, w) = try Self.input(image, denominator: m.denominator)
        let d = e.config.embedDim, ws = e.config.windowSize
        let x0 = e.convFirst(x, height: h, width: w)
        let t = e.patchNorm(x0.reshaped([h * w, d]))
        let b0 = e.layers[0].blocks[0](t, height: h, width: w, window: ws)
        let b1 = e.layers[0].blocks[1](b0, height: h, width: w, window: ws)
        try Self.check("swinir_small", "enc_layers0_block1_shifted_tokens", b1.array, image: image)
        guard image == "astronaut_48x48" else { return }
        try Self.check("swinir_small", "enc_conv_first", Self.nchw(x0))
        try Self.check("swinir_small", "enc_layers0_block0_tokens", b0.array)
        var u = e.layers[0].conv(b1.reshaped([h, w, d]), height: h, width: w).reshaped([h * w, d])
        Kernels.add(u, t)
        try Self.check("swinir_small", "enc_layers0_RSTB_tokens", u.array)
        for layer in e.layers.dropFirst() {
            var v = u
            for block in layer.blocks { v = block(v, height: h, width: w, window: ws) }
            let y = layer.conv(v.reshaped([h, w, d]), height: h, width: w).reshaped([h * w, d])
            Kernels.add(y, u)
            u = y
        }
        let n = e.norm(u)
        try Self.check("swinir_small", "enc_after_final_norm_tokens", n.array)
        let f = e.convAfterBody(n.reshaped([h, w, d]), height: h, width: w)
        Kernels.add(f, x0)
        try Self.check("swinir_small", "enc_conv_after_body_plus_skip", Self.nchw(f))
    }

    @Test func hat() throws {
        let m = try ZooParityTests.model("hatl_small")
        let e = try #require(m.encoder as? HATNOUP_ROPE_AMP)
        let (x, h, w) = try Self.input("astronaut_48x48", denominator: m.denominator)
        let d = e.config.embedDim, ws = e.config.windowSize, scale = Float(e.config.convScale)
        let group = e.layers[0]
        try Self.check("hatl_small", "enc_rope_freqs_cis_layers0_block0", group.blocks[0].attn.rope.freqsCis)
        try Self.check("hatl_small", "enc_rope_freqs_cis_layers0_OCAB", group.overlapAttn.rope.freqsCis)
        let x0 = e.convFirst(x, height: h, width: w)
        let t = e.patchNorm(x0.reshaped([h * w, d]))
        let cab = group.blocks[0].convBlock(group.blocks[0].norm1(t).reshaped([h, w, d]), height: h, width: w)
        try Self.check("hatl_small", "enc_layers0_block0_CAB_out", Self.nchw(cab))
        let b0 = group.blocks[0](t, height: h, width: w, window: ws, convScale: scale)
        try Self.check("hatl_small", "enc_layers0_block0_tokens", b0.array)
        let b1 = group.blocks[1](b0, height: h, width: w, window: ws, convScale: scale)
        try Self.check("hatl_small", "enc_layers0_block1_shifted_tokens", b1.array)
        let o = group.overlapAttn(b1, height: h, width: w, window: ws, overlap: e.config.overlapWindowSize)
        try Self.check("hatl_small", "enc_layers0_OCAB_tokens", o.array)
        let r = group.conv(o.reshaped([h, w, d]), height: h, width: w).reshaped([h * w, d])
        Kernels.add(r, t)
        try Self.check("hatl_small", "enc_layers0_RHAG_tokens", r.array)
    }

    @Test func ropeDecoder() throws {
        let m = try ZooParityTests.model("edsr_rope_small")
        let dec = m.decoder
        let config = "edsr_rope_small"
        try Self.check(
            config, "dec_rope_freqs_cis_crossblock0_layer0",
            try #require(dec.windowCrossattnBlocks[0].blocks[0].windowCrossAttn.rope).freqsCis)
        try Self.check(
            config, "dec_rope_freqs_cis_selfblock0_layer0",
            try #require(dec.gsSelfattnBlocks[0].blocks[0].gsSelfAttn.rope).freqsCis)
        let ref = try Fixtures.npy(Fixtures.url("zoo/\(config)/astronaut_48x48_enc_feat_f32.npy"))
        let c = ref.shape[1]
        let feat = Tensor(shape: [48, 48, c], values: nchwToHWC(ref.floats, c: c, h: 48, w: 48))
        var taps: [String: Tensor] = [:]
        _ = dec(feat, height: 48, width: 48, scale: 4) { name, t in taps[name] = Tensor(shape: t.shape, values: t.array) }
        for (tap, file) in [
            ("scale_embedding", "dec_scale_embedding"),
            ("after_window_crossattn_block0_layer0", "dec_after_crossblock0_layer0"),
            ("after_window_crossattn_block0", "dec_after_crossblock0"),
            ("after_last_gs_selfattn_block", "dec_after_last_selfblock"),
        ] {
            try Self.check(config, file, try #require(taps[tap], "tap \(tap)").array)
        }
        // conv_final(query) + resi as the (gridH × gridW × C) image, NCHW in the fixture.
        let tokens = try #require(taps["conv_final_plus_resi"])
        let side = dec.config.numGsSeedSqrt, cols = 48 / dec.config.windowSize, gw = cols * side
        let a = tokens.array
        var img = [Float](repeating: 0, count: a.count)
        let ch = dec.config.channel
        for gy in 0..<gw {
            for gx in 0..<gw {
                let tok = ((gy / side) * cols + gx / side) * side * side + (gy % side) * side + gx % side
                for j in 0..<ch { img[j * gw * gw + gy * gw + gx] = a[tok * ch + j] }
            }
        }
        try Self.check(config, "dec_UPNet_input_convfinal_plus_resi", img)
    }
}
