import Foundation
import GSASR
import GSASRTraining
import Testing

/// A tiny configuration so that training tests take a fraction of a second per iteration.
func tinySettings() -> TrainingSettings {
    var s = TrainingSettings()
    s.encoder = EDSRConfig(numFeat: 8, numBlock: 1)
    s.decoder = Fea2GSConfig(
        inchannel: 8, channel: 12, numHeads: 2, numCrossattnBlocks: 1, numCrossattnLayers: 1, numSelfattnBlocks: 1,
        numSelfattnLayers: 1, numGsSeed: 16, windowSize: 4, shuffleScale1: 2, shuffleScale2: 2)
    s.lrSize = 8
    s.batchSize = 2
    s.warmupIter = 3
    s.milestones = [4]
    s.totalIter = 6
    s.lr = 1e-3
    return s
}

func tempFolder() throws -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("gsasr-train-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    return d
}

@Suite(.serialized) struct TrainerTests {
    func snapshot(_ t: Trainer) -> [[Float]] {
        t.parameters.flatMap { _, p in
            [
                p.value.array, t.ema.value(of: p).array, t.adam.expAvg.of(p.value).array,
                t.adam.expAvgSq.of(p.value).array,
            ]
        }
    }

    /// 6 iterations straight equal 3 + checkpoint + resume (new process state) + 3, bit for bit:
    /// parameters, EMA, both Adam moments, and the losses.
    @Test func resumeIsExact() throws {
        let s = tinySettings()
        let ds = ContinuousBicubicDataset(photos: syntheticPhotos(), lrSize: s.lrSize, seed: 5)
        let a = Trainer(settings: s, model: try Trainer.initialModel(s))
        var lossA: [Float] = []
        for it in 1...6 { lossA.append(try a.step(ds.batch(start: (it - 1) * 2, count: 2)).loss) }

        let b = Trainer(settings: s, model: try Trainer.initialModel(s))
        var lossB: [Float] = []
        for it in 1...3 { lossB.append(try b.step(ds.batch(start: (it - 1) * 2, count: 2)).loss) }
        let dir = try tempFolder()
        let url = dir.appendingPathComponent("checkpoint.safetensors")
        try b.saveCheckpoint(to: url, wallSeconds: 1.5)
        let c = try Trainer.resume(from: url)
        #expect(c.iteration == 3 && c.adam.step == 3 && c.previousWallSeconds == 1.5)
        for it in 4...6 { lossB.append(try c.step(ds.batch(start: (it - 1) * 2, count: 2)).loss) }
        print("losses straight \(lossA), resumed \(lossB)")
        #expect(lossA == lossB)
        let sa = snapshot(a), sc = snapshot(c)
        var differing = 0
        for i in 0..<sa.count where sa[i] != sc[i] { differing += 1 }
        print("resume: \(differing) of \(sa.count) state tensors differ")
        #expect(differing == 0)
        #expect(lossA.last! < lossA.first!)
    }

    @Test func damagedCheckpointsAreRefusedAndLeftAlone() throws {
        let s = tinySettings()
        let t = Trainer(settings: s, model: try Trainer.initialModel(s))
        let dir = try tempFolder()
        let url = dir.appendingPathComponent("checkpoint.safetensors")
        try t.saveCheckpoint(to: url, wallSeconds: 0)
        let good = try Data(contentsOf: url)
        // Truncated, bit-flipped header, and garbage: each a one-line error; the file is unchanged.
        for (label, bad) in [
            ("truncated", good.prefix(good.count / 2)), ("garbage", Data(repeating: 0x41, count: 100)),
            ("empty", Data()),
        ] {
            let u = dir.appendingPathComponent("\(label).safetensors")
            try bad.write(to: u)
            do {
                _ = try Trainer.resume(from: u)
                Issue.record("\(label) checkpoint was accepted")
            } catch {
                let msg = "\(error)"
                print("\(label): \(msg)")
                #expect(!msg.contains("\n") && msg.contains(u.lastPathComponent))
            }
            #expect(try Data(contentsOf: u) == bad)
        }
        // A checkpoint whose tensors do not match its settings.
        var other = s
        other.decoder.channel = 16
        other.decoder.numHeads = 2
        let t2 = Trainer(settings: other, model: try Trainer.initialModel(other))
        let u2 = dir.appendingPathComponent("other.safetensors")
        try t2.saveCheckpoint(to: u2, wallSeconds: 0)
        var loaded = try Safetensors.loadWithMetadata(u2)
        var meta = loaded.metadata
        meta["gsasr_state"] = try Safetensors.loadWithMetadata(url).metadata["gsasr_state"]
        try Safetensors.save(loaded.tensors, metadata: meta, to: u2)
        loaded = try Safetensors.loadWithMetadata(u2)
        #expect(throws: TrainingError.self) { _ = try Trainer.resume(from: u2) }
        #expect(try Data(contentsOf: url) == good)
    }

    @Test func writesToAnUnwritablePlaceFailCleanly() throws {
        let s = tinySettings()
        let t = Trainer(settings: s, model: try Trainer.initialModel(s))
        let missing = URL(fileURLWithPath: "/nonexistent-\(UUID().uuidString)/checkpoint.safetensors")
        #expect(throws: TrainingError.self) { try t.saveCheckpoint(to: missing, wallSeconds: 0) }
    }

    /// A full disk (a small tmpfs, when this process may mount one): the save fails with a
    /// one-line error, the previous checkpoint is byte-identical and no temporary file is left.
    @Test func diskFullLeavesThePreviousCheckpoint() throws {
        let s = tinySettings()
        let t = Trainer(settings: s, model: try Trainer.initialModel(s))
        let dir = try tempFolder()
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir.path]
        mount.standardError = FileHandle.nullDevice
        guard (try? mount.run()) != nil else { print("disk-full test skipped: no /bin/mount"); return }
        mount.waitUntilExit()
        guard mount.terminationStatus == 0 else { print("disk-full test skipped: cannot mount a tmpfs here"); return }
        defer {
            let u = Process()
            u.executableURL = URL(fileURLWithPath: "/bin/umount")
            u.arguments = [dir.path]
            try? u.run()
            u.waitUntilExit()
        }
        let url = dir.appendingPathComponent("checkpoint.safetensors")
        try t.saveCheckpoint(to: url, wallSeconds: 0)
        let good = try Data(contentsOf: url)
        // Fill the rest of the file system.
        let filler = dir.appendingPathComponent("filler")
        FileManager.default.createFile(atPath: filler.path, contents: nil)
        let h = try FileHandle(forWritingTo: filler)
        let block = Data(repeating: 0, count: 4096)
        while (try? h.write(contentsOf: block)) != nil {}
        try? h.close()
        _ = try t.step(ContinuousBicubicDataset(photos: syntheticPhotos(), lrSize: 8, seed: 1).batch(start: 0, count: 2))
        do {
            try t.saveCheckpoint(to: url, wallSeconds: 1)
            Issue.record("a save onto a full disk succeeded")
        } catch {
            print("disk full: \(error)")
            #expect("\(error)".contains("No space left"))
        }
        #expect(try Data(contentsOf: url) == good)
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(left == ["checkpoint.safetensors", "filler"])
    }

    @Test func exportedModelLoadsAndEqualsTheEMA() throws {
        let s = tinySettings()
        let ds = ContinuousBicubicDataset(photos: syntheticPhotos(), lrSize: s.lrSize, seed: 5)
        let t = Trainer(settings: s, model: try Trainer.initialModel(s))
        for it in 1...2 { _ = try t.step(ds.batch(start: (it - 1) * 2, count: 2)) }
        let dir = try tempFolder().appendingPathComponent("model")
        try t.exportModel(to: dir)
        let m = try GSASRModel.load(directory: dir)
        let e = try t.emaModel()
        let x = Tensor(shape: [8, 8, 3], values: (0..<192).map { Float($0 % 17) / 17 })
        let f1 = m.encoder(x, height: 8, width: 8).array, f2 = e.encoder(x, height: 8, width: 8).array
        #expect(f1 == f2)
        let g1 = m.decoder(m.encoder(x, height: 8, width: 8), height: 8, width: 8, scale: 2.5).array
        let g2 = e.decoder(e.encoder(x, height: 8, width: 8), height: 8, width: 8, scale: 2.5).array
        #expect(g1 == g2)
        // The official-layout .pth files read back (params_ema = the EMA, params = the raw weights).
        for net in ["encoder", "decoder"] {
            let ema = try PthReader.load(dir.appendingPathComponent("official/\(net).pth"), paramKey: "params_ema")
            let raw = try PthReader.load(dir.appendingPathComponent("official/\(net).pth"), paramKey: "params")
            let st = try Safetensors.load(dir.appendingPathComponent("\(net).safetensors"))
            #expect(ema.keys == st.keys && raw.keys == st.keys)
            #expect(ema.keys.allSatisfy { ema[$0]!.floats == st[$0]!.floats && ema[$0]!.shape == st[$0]!.shape })
            let entries = net == "encoder" ? t.encoderEntries : t.decoderEntries
            let live = entries.stateDict()
            #expect(raw.keys.allSatisfy { raw[$0]!.floats == live[$0]!.floats })
            #expect(
                ema["\(net == "encoder" ? "conv_first.weight" : "gs_embedding")"]!.floats
                    != raw["\(net == "encoder" ? "conv_first.weight" : "gs_embedding")"]!.floats)
        }
        // The EMA differs from the raw parameters after a step (decay 0.999).
        let raw = t.model.encoder(x, height: 8, width: 8).array
        #expect(raw != f1)
    }
}

@Suite struct TrainingSettingsTests {
    static let official = """
        name: t
        manual_seed: 3
        dmax: 0.5
        datasets:
          train:
            type: ContinuousBicubicDownsampleDataset
            all_gt_list: ['/tmp/x']
            lr_size: 48
            scale_list: [1.0, 4.0]
            batch_size_per_gpu: 16
            round_mode: 'round'
            io_backend:
              type: disk
        network_g: {type: EDSRNOUP, num_in_ch: 3, num_out_ch: 3, num_feat: 64, num_block: 16, upscale: 4, res_scale: 1}
        train:
          clip_grad_norm: False
          ema_decay: 0.999
          optim_g: {type: Adam, lr: !!float 2e-4, weight_decay: 0, betas: [0.9, 0.99]}
          scheduler: {type: MultiStepLR, milestones: [250000, 400000], gamma: 0.5}
          total_iter: 500000
          warmup_iter: 2000
        val:
          val_freq: !!float 1e4
        logger:
          print_freq: 100
          save_checkpoint_freq: !!float 1e4
        """

    @Test func readsOfficialKeys() throws {
        let s = try TrainingSettings.load(yaml: Self.official)
        #expect(s.name == "t" && s.manualSeed == 3 && s.lrSize == 48 && s.batchSize == 16)
        #expect(s.milestones == [250000, 400000] && s.warmupIter == 2000 && s.valFreq == 10000)
        #expect(s.photos == ["/tmp/x"] && s.clipGradNorm == nil && s.lr == 2e-4)
        var o = s
        try o.apply(overrides: ["train.total_iter=2000", "datasets.train.batch_size_per_gpu=4"])
        #expect(o.totalIter == 2000 && o.batchSize == 4)
    }

    @Test func badConfigsGetOneLineErrors() throws {
        let cases: [(String, String)] = [
            (Self.official + "\ntrain2: 1\n", "unknown key 'train2'"),
            (
                Self.official.replacingOccurrences(of: "lr_size: 48", with: "lr_sizes: 48"),
                "unknown key 'datasets.train.lr_sizes'"
            ),
            (
                Self.official.replacingOccurrences(of: "lr_size: 48", with: "lr_size: big"),
                "'datasets.train.lr_size' must be an integer"
            ),
            (Self.official.replacingOccurrences(of: "lr_size: 48", with: "lr_size: 50"), "multiple of window_size"),
            (Self.official.replacingOccurrences(of: "use_hflip", with: "x") + "\n", ""),
            (Self.official.replacingOccurrences(of: "type: Adam", with: "type: SGD"), "only Adam"),
            ("- a\n- b\n", "top level must be a mapping"),
            // Numbers are decimal only (YAML 1.1 would read 0x30 as 48).
            (
                Self.official.replacingOccurrences(of: "lr_size: 48", with: "lr_size: 0x30"),
                "'datasets.train.lr_size' must be an integer, not '0x30'"
            ),

            ("a: [\n", "not valid YAML"),
            // network_g.type goes through the architecture registry.
            (
                Self.official.replacingOccurrences(of: "type: EDSRNOUP", with: "type: VDSRNOUP"),
                "network_g.type 'VDSRNOUP' is not a registered encoder (EDSRNOUP, RDNNOUP, SwinIRNOUP, HATNOUP_ROPE_AMP)"
            ),
            (
                Self.official.replacingOccurrences(of: "type: EDSRNOUP", with: "type: RDNNOUP"),
                "training RDNNOUP is not supported yet: it runs for inference only (trainable: EDSRNOUP)"
            ),
        ]
        for (yaml, expected) in cases where !expected.isEmpty {
            do {
                _ = try TrainingSettings.load(yaml: yaml)
                Issue.record("accepted a bad config (expected \(expected))")
            } catch {
                let m = "\(error)"
                #expect(m.contains(expected), "\(m)")
                #expect(!m.contains("\n"))
            }
        }
        var s = TrainingSettings()
        #expect(throws: TrainingError.self) { try s.apply(overrides: ["train.total_iter"]) }
        #expect(throws: TrainingError.self) { try s.apply(overrides: ["train.bogus=1"]) }
        #expect(throws: TrainingError.self) { try s.apply(overrides: ["datasets.train.lr_size=0x30"]) }
        // The bundled config still loads with the strict resolver (floats like 4e-4, lists).
        let bundled = try String(
            contentsOf: Fixtures.packageRoot.appendingPathComponent("Configs/default.yml"), encoding: .utf8)
        #expect(try TrainingSettings.load(yaml: bundled).lrSize == 24)
        // A leading zero is decimal, not YAML 1.1's octal (060 would be 48).
        let zero = try TrainingSettings.load(
            yaml: Self.official.replacingOccurrences(of: "lr_size: 48", with: "lr_size: 060"))
        #expect(zero.lrSize == 60)
    }
}

@Suite struct InitialisationOptionsTests {
    @Test func gainsAndAlphaBiasChangeExactlyTheNamedParameters() throws {
        var s = tinySettings()
        let plain = try Trainer.initialModel(s)
        s.initGains = ["img_feat_proj.": 3, "conv_after_body.": 5]
        s.initAlphaBias = -3
        let tuned = try Trainer.initialModel(s)
        let a =
            plain.encoderState.parameters.map { ("encoder." + $0.key, $0) }
            + plain.decoderState.parameters.map { ("decoder." + $0.key, $0) }
        let b =
            tuned.encoderState.parameters.map { ("encoder." + $0.key, $0) }
            + tuned.decoderState.parameters.map { ("decoder." + $0.key, $0) }
        for ((key, p), (_, q)) in zip(a, b) {
            let x = p.value.array, y = q.value.array
            if key.contains("img_feat_proj.") {
                #expect(y == x.map { $0 * 3 }, "\(key)")
            } else if key.contains("conv_after_body.") {
                #expect(y == x.map { $0 * 5 }, "\(key)")
            } else if key == "decoder.mlp_block_alpha.4.bias" {
                #expect(y == x.map { $0 + Float(-3.0) }, "\(key)")
            } else {
                #expect(y == x, "\(key)")
            }
        }
        s.initGains = ["no_such_parameter": 2]
        #expect(throws: TrainingError.self) { _ = try Trainer.initialModel(s) }
        var t = TrainingSettings()
        try t.apply(overrides: ["train.init_gains={\"img_feat_proj.\": 3.0}", "train.init_alpha_bias=-2"])
        #expect(t.initGains == ["img_feat_proj.": 3.0] && t.initAlphaBias == -2)
    }
}

extension InitialisationOptionsTests {
    /// `init_cross_attn_locality`: every (seed, pixel) pair of the paper layout (12x12 seeds,
    /// window 12) reads −β·d² through the official index, except where the index shares a row
    /// (then the nearer offset wins, so the read bias is ≥ −β·d²); each seed's largest bias is on
    /// the pixel under its centre; only the cross-attention tables change in the model.
    @Test func crossAttentionLocalityTable() throws {
        var paper = InitializationTests.smallDecoder
        paper.numGsSeed = 144
        paper.windowSize = 12
        let beta = 1.5
        let table = try GSASRInitialization.crossAttentionLocalityTable(paper, beta: beta)
        let index = try GSASRInitialization.crossAttentionIndex(seedSide: 12, windowSize: 12)
        #expect(table.count == 23 * 23 * paper.numHeads)
        var exact = 0, shared = 0, worst = 0.0
        for q in 0..<144 {
            var best = (value: -Double.infinity, key: -1)
            for k in 0..<144 {
                let dy = Double(q / 12 - k / 12), dx = Double(q % 12 - k % 12)
                let want = -beta * (dy * dy + dx * dx)
                let got = Double(table[Int(index[q * 144 + k]) * paper.numHeads])
                if got == Double(Float(want)) { exact += 1 } else { shared += 1 }
                #expect(got >= Double(Float(want)))
                worst = max(worst, abs(got - want))
                if got > best.value { best = (got, k) }
            }
            #expect(best.key == q, "seed \(q) attends most to pixel \(best.key)")
        }
        print("locality table: \(exact) pairs exact, \(shared) on a shared row; max |read − (−βd²)| \(worst)")
        #expect(exact > 144 * 144 * 9 / 10)

        var s = tinySettings()
        let plain = try Trainer.initialModel(s)
        s.initCrossAttnLocality = beta
        let local = try Trainer.initialModel(s)
        let want = try GSASRInitialization.crossAttentionLocalityTable(s.decoder, beta: beta)
        var changed = 0
        for (p, q) in zip(plain.decoderState.parameters, local.decoderState.parameters) {
            if p.key.hasSuffix("window_cross_attn.relative_position_bias_table") {
                #expect(q.value.array == want, "\(p.key)")
                changed += 1
            } else {
                #expect(q.value.array == p.value.array, "\(p.key)")
            }
        }
        #expect(changed == s.decoder.numCrossattnBlocks * s.decoder.numCrossattnLayers)
        var t = TrainingSettings()
        try t.apply(overrides: ["train.init_cross_attn_locality=2"])
        #expect(t.initCrossAttnLocality == 2)
        #expect(throws: TrainingError.self) { try t.apply(overrides: ["train.init_cross_attn_locality=-1"]) }
    }
}

@Suite struct HeadsCacheTests {
    /// Keeping the heads' activations or recomputing them in the backward gives the same
    /// gradients bit for bit.
    @Test func cachedAndRecomputedHeadsGiveIdenticalGradients() throws {
        let s = tinySettings()
        let ds = ContinuousBicubicDataset(photos: syntheticPhotos(), lrSize: s.lrSize, seed: 8)
        let batch = ds.batch(start: 0, count: 2)
        func grads(limit: Int) throws -> [[Float]] {
            let saved = Fea2GS.headsCacheLimitBytes
            Fea2GS.headsCacheLimitBytes = limit
            defer { Fea2GS.headsCacheLimitBytes = saved }
            let t = Trainer(settings: s, model: try Trainer.initialModel(s))
            _ = t.model.lossAndGradients(batch, rasterizer: t.rasterizer, grads: t.grads)
            return t.parameters.map { t.grads.of($0.param.value).array }
        }
        let cached = try grads(limit: 1 << 40), recomputed = try grads(limit: 0)
        #expect(cached == recomputed)
        #expect(cached.contains { $0.contains { $0 != 0 } })
        // A reused cache (one buffer for both samples, and for a second call) changes nothing.
        let t = Trainer(settings: s, model: try Trainer.initialModel(s))
        let scratch = TrainingScratch()
        for _ in 0..<2 {
            t.grads.zero()
            _ = t.model.lossAndGradients(batch, rasterizer: t.rasterizer, grads: t.grads, scratch: scratch)
            #expect(t.parameters.map { t.grads.of($0.param.value).array } == cached)
        }
    }
}
