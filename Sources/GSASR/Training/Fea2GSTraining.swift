import GSASRTensor

/// The activations the decoder's backward needs for one image.
public struct Fea2GSContext {
    let hp: Int, wp: Int
    let env: DecoderBlockEnv
    let inverseScale: Float
    let scaleHidden: [Float]  // relu(scale_mlp.0(1/s))
    let features: Tensor, f0: Tensor  // img_feat_proj inputs (f0 after its ReLU)
    let cross: [CrossBlockContext]
    let selfBlocks: [SelfBlockContext]
    let img: Tensor, u0: Tensor  // UPNet conv inputs
    let up: Tensor  // the heads' input (outH·outW × C)
    let upHeight: Int, upWidth: Int
    let headsCache: Fea2GS.HeadsCache?
}

extension Fea2GS {
    /// A training forward keeps the heads' hidden activations when they take at most this many
    /// bytes (768 MiB: 44 MB for the default config at LR 24, 663 MB for the paper config at
    /// LR 48, per sample); above it they are recomputed in the backward, as `use_checkpoint`
    /// would. The buffer is reused from sample to sample and step to step (``TrainingScratch``):
    /// allocating it afresh costs more in page faults than the recomputation saves.
    public static var headsCacheLimitBytes = 768 << 20
}

/// Buffers a training run reuses from one sample to the next (one sample's forward and backward
/// run before the next sample's forward): today the heads' activation cache. Not thread-safe:
/// one per trainer.
public final class TrainingScratch: @unchecked Sendable {
    var headsCache: Fea2GS.HeadsCache?

    public init() {}

    /// A cache for `n` Gaussians of `c` channels: the kept one when it has that size.
    func headsCache(n: Int, channel c: Int) -> Fea2GS.HeadsCache {
        if let h = headsCache, h.n == n, h.channel == c { return h }
        headsCache = nil  // release the old one before allocating
        let h = Fea2GS.HeadsCache(n: n, channel: c)
        headsCache = h
        return h
    }
}

extension Fea2GS {
    /// The forward of ``callAsFunction(_:height:width:scale:tap:)`` keeping its activations.
    /// First refreshes the dense relative-position biases from their tables (the optimiser
    /// updates the tables).
    public func forwardTraining(
        _ features: Tensor, height hp: Int, width wp: Int, scale: Float, profile: StepProfile? = nil,
        scratch: TrainingScratch? = nil
    ) -> (Tensor, Fea2GSContext) {
        let t0 = StepProfile.now()
        refreshRelativePositionBiases()
        let cfg = config, c = cfg.channel, ws = cfg.windowSize
        precondition(hp % ws == 0 && wp % ws == 0, "feature size must be a multiple of the window size")
        let grid = TokenGrid(rowsOfWindows: hp / ws, colsOfWindows: wp / ws, seedSide: cfg.numGsSeedSqrt)
        let t = grid.tokens

        let inv: Float = 1 / scale
        var hidden = scaleMlp0.apply([inv])
        for i in hidden.indices { hidden[i] = max(hidden[i], 0) }
        let semb = scaleMlp2.apply(hidden)

        var query = Tensor(uninitialized: [t, c])
        let pos = Tensor(uninitialized: [t, c])
        for w in 0..<grid.windows {
            (query.ptr + w * grid.seeds * c).update(from: gsEmbedding.ptr, count: grid.seeds * c)
            (pos.ptr + w * grid.seeds * c).update(from: posEmbedding.ptr, count: grid.seeds * c)
        }
        profile?.add(
            "fea2gs: scale MLP, embeddings, biases", .forward, since: t0)
        let (f0, feat) = timed(profile, "fea2gs.img_feat_proj", .forward) {
            let f0 = imgFeatProj0(features, height: hp, width: wp)
            Kernels.relu(f0)
            return (f0, imgFeatProj2(f0, height: hp, width: wp).reshaped([hp * wp, c]))
        }
        let env = DecoderBlockEnv(
            grid: grid, feat: feat, featHeight: hp, featWidth: wp, windowSize: ws, pos: pos, scaleEmbedding: semb)

        var cross: [CrossBlockContext] = []
        for (i, block) in windowCrossattnBlocks.enumerated() {
            let (y, cx) = timed(profile, "fea2gs.window_crossattn_blocks.\(i)", .forward) {
                block.forwardTraining(query, env: env)
            }
            cross.append(cx)
            query = y
        }
        let resi = query
        var selfCtx: [SelfBlockContext] = []
        for (i, block) in gsSelfattnBlocks.enumerated() {
            let (y, cx) = timed(profile, "fea2gs.gs_selfattn_blocks.\(i)", .forward) {
                block.forwardTraining(query, env: env)
            }
            selfCtx.append(cx)
            query = y
        }
        if !gsSelfattnBlocks.isEmpty { query = query.adding(resi) }

        let u = timed(profile, "fea2gs.UPNet", .forward) { upsample(query, grid: grid) }
        let nUp = u.height * u.width
        let cache =
            HeadsCache.bytes(n: nUp, channel: c) <= Fea2GS.headsCacheLimitBytes
            ? (scratch?.headsCache(n: nUp, channel: c) ?? HeadsCache(n: nUp, channel: c)) : nil
        let raw = timed(profile, "fea2gs: the five MLP heads", .forward) {
            heads(u.up, gridHeight: u.height, gridWidth: u.width, cache: cache)
        }
        let ctx = Fea2GSContext(
            hp: hp, wp: wp, env: env, inverseScale: inv, scaleHidden: hidden, features: features, f0: f0, cross: cross,
            selfBlocks: selfCtx, img: u.img, u0: u.u0, up: u.up, upHeight: u.height, upWidth: u.width,
            headsCache: cache)
        return (raw, ctx)
    }
    /// Copies every relative-position table into its dense bias (after the tables changed).
    public func refreshRelativePositionBiases() {
        for b in windowCrossattnBlocks { for l in b.blocks { l.windowCrossAttn.relativePosition.refresh() } }
        for b in gsSelfattnBlocks { for l in b.blocks { l.gsSelfAttn.relativePosition.refresh() } }
    }

    /// Accumulates every parameter's gradient from dL/d(raw output) (N × 9) and returns
    /// dL/d(features) (hp·wp × inchannel), the encoder's upstream gradient.
    public func backward(_ cx: Fea2GSContext, dRaw: Tensor, grads: Gradients, profile: StepProfile? = nil) -> Tensor {
        let cfg = config, c = cfg.channel
        let env = cx.env, grid = env.grid
        // Heads (recomputed chunk by chunk), then UPNet.
        let dUp = timed(profile, "fea2gs: the five MLP heads", .backward) {
            headsBackward(
                cx.up, gridHeight: cx.upHeight, gridWidth: cx.upWidth, dOut: dRaw, grads: grads, cache: cx.headsCache)
        }
        let tUp = StepProfile.now()
        let s1 = cfg.shuffleScale1, s2 = cfg.shuffleScale2
        let gh = grid.gridHeight, gw = grid.gridWidth, h1 = gh * s1, w1 = gw * s1
        let dA2 = Kernels.pixelShuffleBackward(dUp, height: h1, width: w1, channels: c * s2 * s2, factor: s2)
        let dU0 = upNet2.backward(input: cx.u0, height: h1, width: w1, dy: dA2, grads: grads)!
        let dA0 = Kernels.pixelShuffleBackward(dU0, height: gh, width: gw, channels: c * s1 * s1, factor: s1)
        let dImg = upNet0.backward(input: cx.img, height: gh, width: gw, dy: dA0, grads: grads)!
        // Grid image → token rows (a permutation).
        var dq = Tensor(uninitialized: [grid.tokens, c])
        withExtendedLifetime(dImg) {
            for gy in 0..<gh {
                for gx in 0..<gw {
                    (dq.ptr + grid.token(gy: gy, gx: gx) * c).update(from: dImg.ptr + (gy * gw + gx) * c, count: c)
                }
            }
        }
        profile?.add("fea2gs.UPNet", .backward, since: tUp)
        // query = selfBlocks(q) + q
        if !gsSelfattnBlocks.isEmpty {
            let dResi = dq
            for i in stride(from: gsSelfattnBlocks.count - 1, through: 0, by: -1) {
                dq = timed(profile, "fea2gs.gs_selfattn_blocks.\(i)", .backward) {
                    gsSelfattnBlocks[i].backward(cx.selfBlocks[i], dOut: dq, env: env, grads: grads)
                }
            }
            dq = dq.adding(dResi)
        }
        for i in stride(from: windowCrossattnBlocks.count - 1, through: 0, by: -1) {
            dq = timed(profile, "fea2gs.window_crossattn_blocks.\(i)", .backward) {
                windowCrossattnBlocks[i].backward(cx.cross[i], dOut: dq, env: env, grads: grads)
            }
        }
        let tEmb = StepProfile.now()
        // The per-window copies of gs_embedding and pos_embedding: sum over windows.
        let seedCount = grid.seeds * c
        let dGs = grads.of(gsEmbedding), dPosE = grads.of(posEmbedding)
        withExtendedLifetime((dq, env, dGs, dPosE)) {
            for w in 0..<grid.windows {
                Kernels.add(dGs.ptr, dq.ptr + w * seedCount, seedCount)
                Kernels.add(dPosE.ptr, env.dPos.ptr + w * seedCount, seedCount)
            }
        }
        // Scale MLP: semb = W2·relu(W1·(1/s) + b1) + b2.
        scaleMlpBackward(cx, dOut: env.dScaleEmbedding, grads: grads)
        profile?.add(
            "fea2gs: scale MLP, embeddings, biases", .backward, since: tEmb)
        // img_feat_proj: conv → ReLU → conv.
        return timed(profile, "fea2gs.img_feat_proj", .backward) {
            let dFeat = env.dFeat.reshaped([cx.hp, cx.wp, c])
            let dF0 = imgFeatProj2.backward(input: cx.f0, height: cx.hp, width: cx.wp, dy: dFeat, grads: grads)!
            Kernels.reluBackward(dF0, output: cx.f0)
            return imgFeatProj0.backward(input: cx.features, height: cx.hp, width: cx.wp, dy: dF0, grads: grads)!
        }
    }

    func scaleMlpBackward(_ cx: Fea2GSContext, dOut ds: [Float], grads: Gradients) {
        let hdim = scaleMlp2.inFeatures, c = scaleMlp2.outFeatures
        let w2 = scaleMlp2.weight.ptr
        let dW2 = grads.of(scaleMlp2.weight).ptr, dB2 = grads.of(scaleMlp2.bias!).ptr
        var dh = [Float](repeating: 0, count: hdim)
        for o in 0..<c {
            dB2[o] += ds[o]
            for i in 0..<hdim {
                dW2[o * hdim + i] += ds[o] * cx.scaleHidden[i]
                dh[i] += w2[o * hdim + i] * ds[o]
            }
        }
        let dW1 = grads.of(scaleMlp0.weight).ptr, dB1 = grads.of(scaleMlp0.bias!).ptr
        for i in 0..<hdim where cx.scaleHidden[i] > 0 {
            dW1[i] += dh[i] * cx.inverseScale
            dB1[i] += dh[i]
        }
        withExtendedLifetime(self) {}
    }

    /// Backward of ``heads(_:gridHeight:gridWidth:)``. Chunks of tokens are processed in order;
    /// each recomputes its hidden activations (as the forward streams them), so the 4C-wide
    /// activations never exist for the whole grid. GEMMs inside a chunk are parallel.
    /// Reduction groups of ``headsBackward`` (the most workers it uses; each group holds one
    /// copy of the heads' weight gradients, about 0.4 MB at 64 channels).
    static let headsReductionGroups = 16

    func headsBackward(
        _ x: Tensor, gridHeight gh: Int, gridWidth gw: Int, dOut: Tensor, grads: Gradients, cache: HeadsCache? = nil
    ) -> Tensor {
        let c = config.channel
        let n = gh * gw
        let dx = Tensor(uninitialized: [n, c])
        let chunk = 1024
        let heads = [mlpBlockSigma, mlpBlockRho, mlpBlockAlpha, mlpBlockRgb, mlpBlockMean]
        let columns = [0, 2, 3, 4, 7]
        let fgw = Float(gw), fgh = Float(gh)
        // The heads recompute their activations chunk by chunk (as use_checkpoint would). The
        // chunks are dealt to a fixed number of reduction groups, which does not depend on the
        // thread count: group g takes chunks g, g + G, g + 2G, ... in order into its own weight
        // gradients, the workers take whole groups, and the groups are summed into `grads` in
        // group order. So the gradients are the same for any number of threads.
        let targets: [Tensor] =
            [grads.of(fusedHeadInput.weight), grads.of(fusedHeadInput.bias!)]
            + heads.flatMap {
                [grads.of($0.l2.weight), grads.of($0.l2.bias!), grads.of($0.l4.weight), grads.of($0.l4.bias!)]
            }
        let chunks = (n + chunk - 1) / chunk
        let groups = min(chunks, Self.headsReductionGroups)
        let workers = max(1, min(Parallel.threadCount, groups))
        let sizes = targets.map(\.count)
        let total = sizes.reduce(0, +)
        var offsets = [Int](repeating: 0, count: sizes.count)
        for i in 1..<sizes.count { offsets[i] = offsets[i - 1] + sizes[i - 1] }
        let local = UnsafeMutablePointer<Float>.allocate(capacity: groups * total)
        local.initialize(repeating: 0, count: groups * total)
        defer { local.deallocate() }
        withExtendedLifetime((x, dx, dOut, targets, heads, cache)) {
            let xp = x.ptr, dop = dOut.ptr, dxp = dx.ptr
            Parallel.workers(workers) { w in
                let h1Own = cache == nil ? UnsafeMutablePointer<Float>.allocate(capacity: chunk * 5 * c) : nil
                let dh1 = UnsafeMutablePointer<Float>.allocate(capacity: chunk * 5 * c)
                let h2Own = cache == nil ? UnsafeMutablePointer<Float>.allocate(capacity: chunk * 4 * c) : nil
                let dh2 = UnsafeMutablePointer<Float>.allocate(capacity: chunk * 4 * c)
                let dO = UnsafeMutablePointer<Float>.allocate(capacity: chunk * 3)
                defer { h1Own?.deallocate(); dh1.deallocate(); h2Own?.deallocate(); dh2.deallocate(); dO.deallocate() }
                for group in stride(from: w, to: groups, by: workers) {
                    let g = local + group * total
                    for ci in stride(from: group, to: chunks, by: groups) {
                        let r0 = ci * chunk, rows = min(chunk, n - r0)
                        let h1 = h1Own ?? (cache!.h1.ptr + r0 * 5 * c)
                        if cache == nil { headsFirstLayer(xp + r0 * c, rows: rows, into: h1) }
                        for (hi, head) in heads.enumerated() {
                            let h2 = h2Own ?? (cache!.h2[hi].ptr + r0 * 4 * c)
                            if cache == nil {
                                Fea2GS.headSecondLayer(head, h1 + hi * c, rows: rows, channel: c, into: h2)
                            }
                            let k = head.l4.outFeatures, col = columns[hi]
                            for r in 0..<rows {
                                for j in 0..<k { dO[r * k + j] = dop[(r0 + r) * 9 + col + j] }
                            }
                            if hi == 4 {  // mean = head / [gridW, gridH] + reference point
                                for r in 0..<rows {
                                    dO[r * 2] /= fgw
                                    dO[r * 2 + 1] /= fgh
                                }
                            }
                            let t = 2 + 4 * hi
                            Kernels.narrowLinearReluBackward(
                                h: h2, rows: rows, width: 4 * c, weight: head.l4.weight.ptr, outputs: k, dy: dO,
                                dh: dh2, dWeight: g + offsets[t + 2], dBias: g + offsets[t + 3])
                            Kernels.linearBackward(
                                x: h1 + hi * c, ldx: 5 * c, m: rows, k: c, weight: head.l2.weight.ptr, n: 4 * c,
                                dy: dh2,
                                ldy: 4 * c, dx: dh1 + hi * c, lddx: 5 * c, dWeight: g + offsets[t],
                                dBias: g + offsets[t + 1],
                                parallel: false)
                        }
                        Kernels.reluBackward(dh1, output: h1, rows * 5 * c)
                        Kernels.linearBackward(
                            x: xp + r0 * c, ldx: c, m: rows, k: c, weight: fusedHeadInput.weight.ptr, n: 5 * c, dy: dh1,
                            ldy: 5 * c, dx: dxp + r0 * c, lddx: c, dWeight: g + offsets[0], dBias: g + offsets[1],
                            parallel: false)
                    }
                }
            }
            for (i, t) in targets.enumerated() {
                let tp = t.ptr
                for group in 0..<groups {
                    let src = local + group * total + offsets[i]
                    for j in 0..<sizes[i] { tp[j] += src[j] }
                }
            }
        }
        return dx
    }
}
