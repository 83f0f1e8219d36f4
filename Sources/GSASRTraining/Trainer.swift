import Foundation
import GSASR
import GSASRCheckpoint
import GSASRImage
import GSASRRaster
import GSASRTensor

/// The official `GSASRModel.optimize_parameters` loop: per iteration one batch from
/// ``ContinuousBicubicDataset``, L1 loss and gradients (``GSASRModel/lossAndGradients``),
/// optional global gradient-norm clipping, Adam at the scheduled learning rate (the official
/// code has one Adam per network with identical settings, which is the same as one over both),
/// then the EMA of the parameters.
///
/// Gradients are summed over the batch's samples in a fixed tree, each sample's computed on
/// its own, so that training over any number of MPI ranks gives the same bits
/// (``DataParallel``): ``world`` sums the ranks' partial sums.
///
/// State that makes a resume exact: parameters, EMA, Adam moments and step, the iteration
/// (the data order is a pure function of seed and sample index, the schedule of the
/// iteration), all written by ``saveCheckpoint(to:)``.
public final class Trainer: @unchecked Sendable {
    public let settings: TrainingSettings
    public let model: GSASRModel
    public let rasterizer: Rasterizer
    public let encoderEntries: [StateEntry]
    public let decoderEntries: [StateEntry]
    /// Encoder then decoder parameters, with checkpoint keys `encoder.<key>` / `decoder.<key>`.
    public let parameters: [(key: String, param: NamedParameter)]
    public let grads = Gradients()
    public let adam: Adam
    public let ema: EMA
    public private(set) var iteration = 0
    /// Seconds of training wall time before this process (from the checkpoint).
    public var previousWallSeconds = 0.0
    /// The ranks this trainer's gradients are summed over (``DataParallel/single`` by default).
    public var world = DataParallel.single
    /// The rank count of the run that wrote the checkpoint this trainer resumed from (1 when
    /// fresh): a resume must keep it, or the global batch (and the data order) would change.
    public private(set) var checkpointWorldSize = 1

    public struct IterationResult: Sendable {
        public var iteration: Int
        public var loss: Float
        public var learningRate: Double
        public var gradNorm: Double
        public var step: StepResult
    }

    /// Training runs in float32: a model switched to bf16 is switched back here (its bf16
    /// copies would not follow the optimiser's updates).
    public init(settings: TrainingSettings, model: GSASRModel) {
        self.settings = settings
        // f32 is never refused.
        _ = try? model.setPrecision(.f32)
        self.model = model
        rasterizer = Rasterizer(mode: .fast, dmax: Float(settings.dmax))
        encoderEntries = model.encoderState
        decoderEntries = model.decoderState
        parameters =
            encoderEntries.parameters.map { ("encoder." + $0.key, $0) }
            + decoderEntries.parameters.map { ("decoder." + $0.key, $0) }
        adam = Adam(beta1: settings.beta1, beta2: settings.beta2)
        ema = EMA(decay: settings.emaDecay, params: parameters.map(\.param))
    }

    /// A from-scratch model (``GSASRInitialization``) or the pretrained weights of the settings.
    public static func initialModel(_ s: TrainingSettings) throws -> GSASRModel {
        if s.pretrainEncoder != nil || s.pretrainDecoder != nil {
            guard let e = s.pretrainEncoder, let d = s.pretrainDecoder else {
                throw TrainingError(
                    "fine-tuning needs both path.pretrain_network_g and path_fea2gs.pretrain_network_fea2gs")
            }
            let m = try GSASRModel.load(
                encoder: URL(fileURLWithPath: e), decoder: URL(fileURLWithPath: d), paramKey: s.paramKey)
            guard (m.encoder as? EDSRNOUP)?.config == s.encoder, m.decoder.config == s.decoder
            else {
                throw TrainingError("the pretrained networks do not match network_g / network_fea2gs of the config")
            }
            return m
        }
        let m = try GSASRInitialization.model(encoder: s.encoder, decoder: s.decoder, seed: s.manualSeed)
        if !s.initGains.isEmpty {
            let all =
                m.encoderState.parameters.map { ("encoder." + $0.key, $0) }
                + m.decoderState.parameters.map { ("decoder." + $0.key, $0) }
            for (pattern, gain) in s.initGains.sorted(by: { $0.key < $1.key }) {
                let hits = all.filter { $0.0.contains(pattern) }
                guard !hits.isEmpty else {
                    throw TrainingError("train.init_gains: no parameter key contains '\(pattern)'")
                }
                for (_, p) in hits { for i in 0..<p.value.count { p.value.ptr[i] *= Float(gain) } }
            }
        }
        if let b = s.initAlphaBias {
            let bias = m.decoderState.parameters.first { $0.key == "mlp_block_alpha.4.bias" }!
            for i in 0..<bias.value.count { bias.value.ptr[i] += Float(b) }
        }
        if let beta = s.initCrossAttnLocality {
            let table = try GSASRInitialization.crossAttentionLocalityTable(s.decoder, beta: beta)
            let hits = m.decoderState.parameters.filter {
                $0.key.hasSuffix("window_cross_attn.relative_position_bias_table")
            }
            for p in hits {
                precondition(p.value.count == table.count)
                for i in 0..<table.count { p.value.ptr[i] = table[i] }
            }
        }
        return m
    }

    /// When set, each step adds its time per layer to it (`gsasr bench train`).
    public var profile: StepProfile?

    /// Buffers reused across samples and steps.
    let scratch = TrainingScratch()

    /// One training iteration on `batch`, this rank's part of the global batch (all of it when
    /// training alone): each sample's gradient on its own, summed in ``GradientTree`` order
    /// with the batch loss as one more element, then summed over ``world``'s ranks.
    public func step(_ batch: [TrainingPair]) throws -> IterationResult {
        iteration += 1
        let globalBatch = batch.count * world.size
        var r = StepResult(loss: 0, perSampleLoss: [])
        var tree = GradientTree()
        let total = parameters.reduce(0) { $0 + $1.param.value.count }
        for sample in batch {
            grads.zero()
            let one = model.lossAndGradients(
                [sample], rasterizer: rasterizer, grads: grads, profile: profile, scratch: scratch,
                batchSize: globalBatch)
            r.perSampleLoss += one.perSampleLoss
            r.forwardSeconds += one.forwardSeconds
            r.renderSeconds += one.renderSeconds
            r.backwardSeconds += one.backwardSeconds
            var leaf = [Float](repeating: 0, count: total + 1)
            var at = 0
            for (_, p) in parameters {
                let g = grads.of(p.value)
                withExtendedLifetime(g) {
                    leaf.withUnsafeMutableBufferPointer { l in
                        for i in 0..<g.count { l[at + i] = g.ptr[i] }
                    }
                }
                at += g.count
            }
            leaf[total] = one.perSampleLoss[0]
            tree.push(leaf)
        }
        var summed = tree.finish() ?? [Float](repeating: 0, count: total + 1)
        let tComm = StepProfile.now()
        try world.sum(&summed)
        profile?.add("gradient sum over ranks (MPI)", .backward, since: tComm)
        var at = 0
        for (_, p) in parameters {
            let g = grads.of(p.value)
            withExtendedLifetime(g) {
                summed.withUnsafeBufferPointer { s in
                    for i in 0..<g.count { g.ptr[i] = s[at + i] }
                }
            }
            at += g.count
        }
        r.loss = summed[total] / Float(globalBatch)
        let tOpt = StepProfile.now()
        var norm2 = 0.0
        for (_, p) in parameters {
            let g = grads.of(p.value)
            withExtendedLifetime(g) {
                // Σ g² in 8 float lanes, then across them (a scalar float sum is a chain of
                // dependent adds); the same order for any thread count.
                let gp = g.ptr, n = g.count
                var acc = SIMD8<Float>()
                var i = 0
                while i + 8 <= n {
                    let v = UnsafeRawPointer(gp + i).loadUnaligned(as: SIMD8<Float>.self)
                    acc += v * v  // not addingProduct: a libm fmaf call per lane on the baseline
                    i += 8
                }
                var s = acc.sum()
                while i < n {
                    s += gp[i] * gp[i]
                    i += 1
                }
                norm2 += Double(s)
            }
        }
        let norm = norm2.squareRoot()
        if let maxNorm = settings.clipGradNorm, norm > maxNorm {
            // torch.nn.utils.clip_grad_norm_: g *= max_norm / (norm + 1e-6).
            let f = Float(maxNorm / (norm + 1e-6))
            for (_, p) in parameters {
                let g = grads.of(p.value)
                withExtendedLifetime(g) { for i in 0..<g.count { g.ptr[i] *= f } }
            }
        }
        let lr = settings.schedule.rate(at: iteration)
        adam.update(parameters.map(\.param), grads: grads, lr: lr)
        ema.update(parameters.map(\.param))
        profile?.add(
            "Adam + EMA (with the gradient norm)", .backward, since: tOpt)
        return IterationResult(iteration: iteration, loss: r.loss, learningRate: lr, gradNorm: norm, step: r)
    }

    // MARK: models from the current state

    /// The EMA networks as a model (what validation and export use, as the official code does).
    public func emaModel() throws -> GSASRModel {
        let e = encoderEntries.stateDict { self.ema.value(of: $0) }
        let d = decoderEntries.stateDict { self.ema.value(of: $0) }
        return try GSASRModel.load(
            encoder: e, encoderLabel: "encoder (EMA)", decoder: d, decoderLabel: "decoder (EMA)",
            config: model.decoder.config, encoderType: type(of: model.encoder).officialName,
            denominator: model.denominator)
    }

    /// Writes a model directory `encoder.safetensors`, `decoder.safetensors` (official key
    /// names and layouts, EMA weights), `config.json` (official kwargs), and
    /// `official/{encoder,decoder}.pth` in torch.save's format with `params_ema` and `params`.
    public func exportModel(to dir: URL, metadata: [String: String] = [:]) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let e = encoderEntries.stateDict { self.ema.value(of: $0) }
        let d = decoderEntries.stateDict { self.ema.value(of: $0) }
        try Safetensors.save(e, metadata: metadata, to: dir.appendingPathComponent("encoder.safetensors"))
        try Safetensors.save(d, metadata: metadata, to: dir.appendingPathComponent("decoder.safetensors"))
        // The official layout for the official code: torch.save({'params_ema': EMA, 'params': raw}).
        let official = dir.appendingPathComponent("official")
        try FileManager.default.createDirectory(at: official, withIntermediateDirectories: true)
        try PthWriter.save(
            [("params_ema", e), ("params", encoderEntries.stateDict())],
            to: official.appendingPathComponent("encoder.pth"),
            archiveName: "encoder")
        try PthWriter.save(
            [("params_ema", d), ("params", decoderEntries.stateDict())],
            to: official.appendingPathComponent("decoder.pth"),
            archiveName: "decoder")
        let cfg = settings.decoder
        let json: [String: Any] = [
            "encoder": model.encoder.configArguments.reduce(
                into: ["type": type(of: model.encoder).officialName] as [String: Any]
            ) {
                $0[$1.key] = $1.value.json
            },
            "decoder": cfg.argumentValues.reduce(
                into: ["type": Fea2GS.officialName, "gs_up_factor": 1.0, "img_range": 1.0] as [String: Any]
            ) { $0[$1.key] = $1.value },
            "denominator": model.denominator,
            "trained_iterations": iteration,
        ]
        let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        try TrainingFiles.atomicWrite(data, to: dir.appendingPathComponent("config.json"))
    }

    // MARK: checkpoints

    /// The resumable state as JSON (in the checkpoint's metadata).
    struct State: Codable {
        var format = "gsasr-train-state-1"
        var iteration: Int
        var adamStep: Int
        var wallSeconds: Double
        var settings: TrainingSettings
        /// MPI ranks of the run (absent in checkpoints from before data-parallel training: 1).
        var worldSize: Int?
    }

    /// One safetensors file: `params.`, `ema.`, `adam_m.` and `adam_v.` + the parameter key, in
    /// PyTorch layout, and the JSON ``State`` under the metadata key `gsasr_state`. Written to
    /// a temporary file, fsynced and renamed over the old checkpoint, so a crash at any point
    /// leaves either the old or the new checkpoint, never a damaged one.
    public func saveCheckpoint(to url: URL, wallSeconds: Double) throws {
        var sd = StateDict()
        for (key, p) in parameters {
            let shape = p.torchShape
            sd.insert("params." + key, LoadedTensor(shape: shape, dtype: .float32, floats: p.torchValues()))
            sd.insert(
                "ema." + key, LoadedTensor(shape: shape, dtype: .float32, floats: p.torchValues(of: ema.value(of: p))))
            sd.insert(
                "adam_m." + key,
                LoadedTensor(shape: shape, dtype: .float32, floats: p.torchValues(of: adam.expAvg.of(p.value))))
            sd.insert(
                "adam_v." + key,
                LoadedTensor(shape: shape, dtype: .float32, floats: p.torchValues(of: adam.expAvgSq.of(p.value))))
        }
        let state = State(
            iteration: iteration, adamStep: adam.step, wallSeconds: wallSeconds, settings: settings,
            worldSize: world.size)
        let json = String(decoding: try JSONEncoder().encode(state), as: UTF8.self)
        let data = try Safetensors.data(sd, metadata: ["gsasr_state": json], context: "checkpoint")
        try TrainingFiles.atomicWrite(data, to: url)
    }

    /// Rebuilds a trainer from a checkpoint. Every tensor is checked against the model the
    /// saved settings describe; any mismatch or damage is a one-line error and nothing is written.
    public static func resume(from url: URL) throws -> Trainer {
        let loaded: (tensors: StateDict, metadata: [String: String])
        do { loaded = try Safetensors.loadWithMetadata(url) } catch {
            throw TrainingError("checkpoint '\(url.path)' is unreadable: \(error)")
        }
        guard let json = loaded.metadata["gsasr_state"],
            let state = try? JSONDecoder().decode(State.self, from: Data(json.utf8)),
            state.format == "gsasr-train-state-1"
        else { throw TrainingError("checkpoint '\(url.path)' has no valid gsasr_state metadata") }
        guard state.iteration >= 0, state.adamStep == state.iteration else {
            throw TrainingError(
                "checkpoint '\(url.path)': inconsistent iteration \(state.iteration) / Adam step \(state.adamStep)")
        }
        var s = state.settings
        s.pretrainEncoder = nil
        s.pretrainDecoder = nil
        try s.validate(origin: "checkpoint '\(url.path)'")
        let model = try GSASRInitialization.model(encoder: s.encoder, decoder: s.decoder, seed: s.manualSeed)
        let t = Trainer(settings: state.settings, model: model)
        var expected = Set<String>()
        for (key, _) in t.parameters {
            for g in ["params.", "ema.", "adam_m.", "adam_v."] { expected.insert(g + key) }
        }
        for k in loaded.tensors.keys where !expected.contains(k) {
            throw TrainingError("checkpoint '\(url.path)': unexpected tensor '\(k)'")
        }
        for (key, p) in t.parameters {
            func get(_ group: String) throws -> [Float] {
                guard let v = loaded.tensors[group + key] else {
                    throw TrainingError("checkpoint '\(url.path)': missing tensor '\(group + key)'")
                }
                guard v.shape == p.torchShape, v.dtype == .float32 else {
                    throw TrainingError(
                        "checkpoint '\(url.path)': '\(group + key)' has shape \(v.shape), expected \(p.torchShape)")
                }
                let f = v.floats
                guard f.allSatisfy(\.isFinite) else {
                    throw TrainingError("checkpoint '\(url.path)': '\(group + key)' holds non-finite values")
                }
                return f
            }
            p.setTorchValues(try get("params."))
            NamedParameter.scratch(like: p, value: t.ema.value(of: p)).setTorchValues(try get("ema."))
            NamedParameter.scratch(like: p, value: t.adam.expAvg.of(p.value)).setTorchValues(try get("adam_m."))
            NamedParameter.scratch(like: p, value: t.adam.expAvgSq.of(p.value)).setTorchValues(try get("adam_v."))
        }
        t.adam.restore(step: state.adamStep)
        t.iteration = state.iteration
        t.previousWallSeconds = state.wallSeconds
        t.checkpointWorldSize = state.worldSize ?? 1
        return t
    }

    /// The iteration and settings recorded in a checkpoint, without building a model.
    public static func checkpointSettings(_ url: URL) throws -> TrainingSettings {
        let loaded = try Safetensors.loadWithMetadata(url)
        guard let json = loaded.metadata["gsasr_state"],
            let state = try? JSONDecoder().decode(State.self, from: Data(json.utf8))
        else { throw TrainingError("checkpoint '\(url.path)' has no valid gsasr_state metadata") }
        return state.settings
    }
}

/// Durable file writes for training runs.
public enum TrainingFiles {
    /// Removes `.NAME.tmp-PID` siblings of `url` left by writers that were killed mid-write
    /// (their process no longer exists); a live writer's temporary is left alone.
    static func removeStaleTemporaries(of url: URL) {
        let dir = url.deletingLastPathComponent()
        let prefix = ".\(url.lastPathComponent).tmp-"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else { return }
        for name in names where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count)), pid > 0, pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { unlink(dir.appendingPathComponent(name).path) }
        }
    }

    /// Writes through a temporary sibling, fsyncs it, renames it over `url` and fsyncs the
    /// folder. Throws a one-line error (the old file is untouched) when the disk is full or
    /// the folder is not writable.
    public static func atomicWrite(_ data: Data, to url: URL) throws {
        let dir = url.deletingLastPathComponent()
        removeStaleTemporaries(of: url)
        let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        let fd = open(tmp.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else {
            throw TrainingError("cannot write '\(url.path)': \(String(cString: strerror(errno)))")
        }
        var ok = true
        var err: Int32 = 0
        data.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = write(fd, raw.baseAddress! + off, raw.count - off)
                if n <= 0 {
                    if n < 0 && errno == EINTR { continue }
                    ok = false
                    err = n < 0 ? errno : ENOSPC
                    return
                }
                off += n
            }
        }
        if ok && fsync(fd) != 0 {
            ok = false
            err = errno
        }
        close(fd)
        guard ok else {
            unlink(tmp.path)
            throw TrainingError("cannot write '\(url.path)': \(String(cString: strerror(err)))")
        }
        guard rename(tmp.path, url.path) == 0 else {
            let e = errno
            unlink(tmp.path)
            throw TrainingError("cannot write '\(url.path)': \(String(cString: strerror(e)))")
        }
        let dfd = open(dir.path, O_RDONLY)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
    }
}
