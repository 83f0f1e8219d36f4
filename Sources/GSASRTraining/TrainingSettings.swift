import Foundation
import GSASR
import Yams

/// Everything a training run is configured by, read from an official-style YAML file
/// (key names as TrainTestGSASR/options/train/paper/*.yml) plus a few keys of ours, each
/// documented below and in the README. Unknown keys are errors, so a typo never silently
/// trains with a default.
public struct TrainingSettings: Codable, Sendable, Equatable {
    public var name = "gsasr"
    /// `manual_seed`: initialisation and data order.
    public var manualSeed: UInt64 = 0
    /// `dmax` (with `if_dmax: True`, `dmax_mode: fix`, `mode: scale_modify`,
    /// `default_step_size: 1.2`, the only modes implemented).
    public var dmax: Double = 0.5

    // datasets.train
    /// `all_gt_list`: files or folders of HR photos; `[allowlist]` means the project's 38 photos.
    public var photos: [String] = ["allowlist"]
    public var lrSize = 48
    public var scaleMin = 1.0
    public var scaleMax = 4.0
    public var useHflip = true
    public var useRot = true
    public var batchSize = 4
    /// Ours: 2 halves each photo before use (training-photos.md), 1 keeps it.
    public var downscale = 2
    /// Ours: flat-crop rejection threshold (see ``ContinuousBicubicDataset``); 0 disables it.
    public var flatThreshold = 0.015

    // datasets.val (ours: a folder of HR images, scored as `gsasr eval` does)
    public var valFolder: String?
    public var valScales: [Double] = [2, 3, 4]
    /// Ours: centre-crop each validation image to this side (0 = whole image) to keep validation short.
    public var valCrop = 0

    public var encoder = EDSRConfig(numFeat: 64, numBlock: 16)
    public var decoder = Fea2GSConfig(
        inchannel: 64, channel: 180, numHeads: 6, numCrossattnBlocks: 1, numCrossattnLayers: 2, numSelfattnBlocks: 6,
        numSelfattnLayers: 6, numGsSeed: 144, windowSize: 12, shuffleScale1: 2, shuffleScale2: 2)

    /// path.pretrain_network_g / path_fea2gs.pretrain_network_fea2gs (fine-tuning).
    public var pretrainEncoder: String?
    public var pretrainDecoder: String?
    public var paramKey: String? = "params"

    // train
    public var lr = 2e-4
    public var beta1 = 0.9
    public var beta2 = 0.99
    public var milestones: [Int] = [250_000, 400_000, 450_000, 475_000]
    public var gamma = 0.5
    public var totalIter = 500_000
    public var warmupIter = -1
    public var emaDecay = 0.999
    /// `clip_grad_norm`: nil (False) or the max global L2 norm.
    public var clipGradNorm: Double?
    /// Ours (`train.init_alpha_bias`): added to `mlp_block_alpha.4.bias` of a from-scratch
    /// model. PyTorch's default init gives every Gaussian opacity ≈ sigmoid(0) = 0.5, and the
    /// ~16 overlapping Gaussians per LR pixel then render about 10x too bright (initial L1 ≈ 4);
    /// Adam's first steps then drive all opacities into sigmoid saturation, where every gradient
    /// is exactly zero and training stops (seen at iteration ~60 with lr 4e-4, warm-up 200).
    /// −3 starts near the right brightness. nil keeps the official initialisation.
    public var initAlphaBias: Double?
    /// Ours (`train.init_gains`): multiplies, in a from-scratch model, every parameter whose
    /// checkpoint key (`encoder.<key>` / `decoder.<key>`) contains the given text. With
    /// PyTorch's default init the path from the image features to the Gaussians is weak (the
    /// golden small model scales it up for the same reason), and the network first learns a
    /// constant image; gains on that path let the image reach the Gaussians from the start.
    public var initGains: [String: Double] = [:]
    /// Ours (`train.init_cross_attn_locality`, β ≥ 0): sets, in a from-scratch model, every
    /// window cross-attention `relative_position_bias_table` entry to −β·d², d the distance in
    /// LR pixels between the seed's cell centre and the feature pixel (for rows that the
    /// official index shares between offsets, the nearest one). The official table starts at
    /// trunc_normal(0.02): every Gaussian seed attends to its whole 12x12 window alike, and Adam
    /// (steps of about lr per iteration) needs ~10⁴ iterations to grow a bias large enough to
    /// make the attention local, so the output stays one blurred colour per window that long.
    /// β = 1 starts each seed on about its own and its neighbouring pixels; the table is still
    /// trained as in the paper. nil keeps the official initialisation.
    public var initCrossAttnLocality: Double?

    // val / logger
    public var valFreq = 10_000
    public var printFreq = 100
    public var saveCheckpointFreq = 10_000

    public init() {}

    public var schedule: LearningRateSchedule {
        LearningRateSchedule(initial: lr, milestones: milestones, gamma: gamma, warmupIterations: warmupIter)
    }

    // MARK: YAML

    /// YAML 1.1's implicit types, but numbers in decimal only: `0x10`, `0o17`, `010` (octal),
    /// `1_000`, `.inf` and `.nan` stay strings, so a typed key refuses them by name instead of
    /// reading 16, 15, 8, 1000 or infinity.
    static let strictResolver: Resolver = {
        do {
            return try Resolver.default
                .replacing(.int, with: "^[-+]?(?:0|[1-9][0-9]*)$")
                .replacing(.float, with: "^[-+]?(?:[0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)(?:[eE][-+]?[0-9]+)?$")
                .removing(.timestamp)
        } catch {
            preconditionFailure("the resolver's patterns are constant and valid: \(error)")
        }
    }()

    /// Reads an official-style YAML config. Errors name the key and the problem in one line.
    public static func load(yaml text: String, origin: String = "config") throws -> TrainingSettings {
        let root: Any?
        do { root = try Yams.load(yaml: text, strictResolver) } catch {
            let first = "\(error)".split(separator: "\n").first.map(String.init) ?? "syntax error"
            throw TrainingError("\(origin): not valid YAML (\(first))")
        }
        guard let dict = root as? [String: Any] else {
            throw TrainingError("\(origin): the top level must be a mapping")
        }
        var s = TrainingSettings()
        try s.apply(YAMLNode(dict, path: "", origin: origin))
        try s.validate(origin: origin)
        return s
    }

    /// Applies `key=value` overrides (dotted paths as in the YAML, e.g. `train.total_iter=2000`).
    public mutating func apply(overrides: [String], origin: String = "override") throws {
        for o in overrides {
            guard let eq = o.firstIndex(of: "=") else { throw TrainingError("\(origin) '\(o)' is not KEY=VALUE") }
            let key = String(o[..<eq]), valueText = String(o[o.index(after: eq)...])
            let value = (try? Yams.load(yaml: valueText, Self.strictResolver)) ?? valueText
            var nested: Any = value as Any
            for part in key.split(separator: ".").reversed() { nested = [String(part): nested] }
            guard let d = nested as? [String: Any] else { throw TrainingError("\(origin) '\(o)': empty key") }
            try apply(YAMLNode(d, path: "", origin: origin))
        }
        try validate(origin: origin)
    }

    mutating func apply(_ n: YAMLNode) throws {
        try n.only([
            "name", "model_type", "scale", "num_gpu", "manual_seed", "tile_size", "tile_overlap", "tile_process",
            "crop_size", "denominator", "default_step_size", "cuda_rendering", "mode", "if_dmax", "dmax_mode", "dmax",
            "datasets", "network_g", "network_fea2gs", "path", "path_fea2gs", "train", "val", "logger", "dist_params",
        ])
        if let v = try n.string("name") { name = v }
        if let v = try n.int("manual_seed") { manualSeed = UInt64(max(0, v)) }
        if let v = try n.double("dmax") { dmax = v }
        if let v = try n.double("default_step_size"), v != 1.2 {
            throw TrainingError("\(n.origin): default_step_size \(v) is not supported (only 1.2)")
        }
        if let v = try n.string("mode"), v != "scale_modify" {
            throw TrainingError("\(n.origin): mode '\(v)' is not supported (only scale_modify)")
        }
        if let v = try n.string("dmax_mode"), v != "fix" {
            throw TrainingError("\(n.origin): dmax_mode '\(v)' is not supported (only fix)")
        }
        if let d = try n.child("datasets") {
            try d.only(["train", "val"])
            if let t = try d.child("train") {
                try t.only([
                    "name", "type", "all_gt_list", "filename_tmpl", "io_backend", "lr_size", "use_hflip", "use_rot",
                    "sample_size", "scale_list", "num_worker_per_gpu", "batch_size_per_gpu", "dataset_enlarge_ratio",
                    "prefetch_mode", "round_mode", "downscale", "flat_threshold",
                ])
                if let v = try t.stringList("all_gt_list") { photos = v }
                if let v = try t.int("lr_size") { lrSize = v }
                if let v = try t.bool("use_hflip") { useHflip = v }
                if let v = try t.bool("use_rot") { useRot = v }
                if let v = try t.int("sample_size"), v != 0 {
                    throw TrainingError("\(t.origin): datasets.train.sample_size \(v) is not supported (only 0)")
                }
                if let v = try t.doubleList("scale_list") {
                    guard v.count == 2 else {
                        throw TrainingError("\(t.origin): datasets.train.scale_list must be [min, max]")
                    }
                    scaleMin = v[0]
                    scaleMax = v[1]
                }
                if let v = try t.int("batch_size_per_gpu") { batchSize = v }
                if let v = try t.string("round_mode"), v != "round" {
                    throw TrainingError("\(t.origin): round_mode '\(v)' is not supported (only round)")
                }
                if let v = try t.int("downscale") { downscale = v }
                if let v = try t.double("flat_threshold") { flatThreshold = v }
            }
            if let v = try d.child("val") {
                try v.only(["name", "type", "dataroot_gt", "dataroot_lq", "io_backend", "scales", "crop"])
                if let x = try v.string("dataroot_gt") { valFolder = x }
                if let x = try v.doubleList("scales") { valScales = x }
                if let x = try v.int("crop") { valCrop = x }
            }
        }
        if let g = try n.child("network_g") {
            // The type first: another family's arguments are not EDSRNOUP's.
            if let t = try g.string("type") {
                // The registry names the encoders and which of them can be trained; the settings'
                // hyperparameters are EDSRNOUP's.
                guard let arch = Architectures.encoders.first(where: { $0.officialName == t }) else {
                    throw TrainingError(
                        "\(g.origin): network_g.type '\(t)' is not a registered encoder (\(Architectures.encoders.map { $0.officialName }.joined(separator: ", ")))"
                    )
                }
                guard arch.trainable, t == EDSRNOUP.officialName else {
                    throw TrainingError(
                        "\(g.origin): training \(t) is not supported yet: it runs for inference only (trainable: EDSRNOUP)")
                }
            }
            try g.only([
                "type", "num_in_ch", "num_out_ch", "num_feat", "num_block", "upscale", "res_scale", "img_range",
            ])
            if let v = try g.int("num_feat") { encoder.numFeat = v }
            if let v = try g.int("num_block") { encoder.numBlock = v }
            if let v = try g.int("num_in_ch"), v != 3 {
                throw TrainingError("\(g.origin): network_g.num_in_ch must be 3")
            }
            if let v = try g.double("res_scale"), v != 1 {
                throw TrainingError("\(g.origin): network_g.res_scale must be 1")
            }
        }
        if let f = try n.child("network_fea2gs") {
            if let t = try f.string("type"), t != "Fea2GS" {
                throw TrainingError(
                    ModelConfigFile.decoderTypes.contains(t)
                        ? "\(f.origin): training \(t) is not supported yet: it runs for inference only (trainable: Fea2GS)"
                        : "\(f.origin): network_fea2gs.type '\(t)' is not a decoder this version runs (\(ModelConfigFile.decoderTypes.joined(separator: ", ")))")
            }
            try f.only([
                "type", "inchannel", "channel", "num_heads", "num_crossattn_blocks", "num_crossattn_layers",
                "num_selfattn_blocks", "num_selfattn_layers", "num_gs_seed", "gs_up_factor", "window_size", "img_range",
                "shuffle_scale1", "shuffle_scale2",
            ])
            if let v = try f.int("inchannel") { decoder.inchannel = v }
            if let v = try f.int("channel") { decoder.channel = v }
            if let v = try f.int("num_heads") { decoder.numHeads = v }
            if let v = try f.int("num_crossattn_blocks") { decoder.numCrossattnBlocks = v }
            if let v = try f.int("num_crossattn_layers") { decoder.numCrossattnLayers = v }
            if let v = try f.int("num_selfattn_blocks") { decoder.numSelfattnBlocks = v }
            if let v = try f.int("num_selfattn_layers") { decoder.numSelfattnLayers = v }
            if let v = try f.int("num_gs_seed") { decoder.numGsSeed = v }
            if let v = try f.int("window_size") { decoder.windowSize = v }
            if let v = try f.int("shuffle_scale1") { decoder.shuffleScale1 = v }
            if let v = try f.int("shuffle_scale2") { decoder.shuffleScale2 = v }
        }
        if let p = try n.child("path") {
            try p.only(["pretrain_network_g", "strict_load_g", "resume_state", "param_key_g"])
            pretrainEncoder = try p.string("pretrain_network_g") ?? pretrainEncoder
            paramKey = try p.string("param_key_g") ?? paramKey
        }
        if let p = try n.child("path_fea2gs") {
            try p.only(["pretrain_network_fea2gs", "strict_load_fea2gs", "resume_state", "param_key_fea2gs"])
            pretrainDecoder = try p.string("pretrain_network_fea2gs") ?? pretrainDecoder
        }
        if let t = try n.child("train") {
            try t.only([
                "clip_grad_norm", "ema_decay", "optim_g", "optim_fea2gs", "scheduler", "total_iter", "warmup_iter",
                "pixel_opt", "init_alpha_bias", "init_gains", "init_cross_attn_locality",
            ])
            if let v = t.raw("clip_grad_norm") {
                if let b = v as? Bool {
                    if b {
                        throw TrainingError("\(t.origin): train.clip_grad_norm: give the max norm (a number) or False")
                    }
                    clipGradNorm = nil
                } else if let x = try t.double("clip_grad_norm") {
                    clipGradNorm = x
                }
            }
            if let v = try t.double("ema_decay") { emaDecay = v }
            if let v = try t.double("init_alpha_bias") { initAlphaBias = v }
            if let v = try t.double("init_cross_attn_locality") {
                guard v >= 0, v.isFinite else {
                    throw TrainingError(
                        "\(t.origin): train.init_cross_attn_locality must be a finite number >= 0, not \(v)")
                }
                initCrossAttnLocality = v
            }
            if let g = try t.child("init_gains") {
                var gains: [String: Double] = [:]
                for k in g.dict.keys.sorted() {
                    guard let v = try g.double(k), v.isFinite else { continue }
                    gains[k] = v
                }
                initGains = gains
            }
            for key in ["optim_g", "optim_fea2gs"] {
                if let o = try t.child(key) {
                    try o.only(["type", "lr", "weight_decay", "betas"])
                    if let ty = try o.string("type"), ty != "Adam" {
                        throw TrainingError("\(o.origin): train.\(key).type '\(ty)' is not supported (only Adam)")
                    }
                    if let x = try o.double("lr") { lr = x }
                    if let x = try o.double("weight_decay"), x != 0 {
                        throw TrainingError("\(o.origin): train.\(key).weight_decay must be 0")
                    }
                    if let b = try o.doubleList("betas") {
                        guard b.count == 2 else {
                            throw TrainingError("\(o.origin): train.\(key).betas must be [b1, b2]")
                        }
                        beta1 = b[0]
                        beta2 = b[1]
                    }
                }
            }
            if let sc = try t.child("scheduler") {
                try sc.only(["type", "milestones", "gamma"])
                if let ty = try sc.string("type"), ty != "MultiStepLR" {
                    throw TrainingError(
                        "\(sc.origin): train.scheduler.type '\(ty)' is not supported (only MultiStepLR)")
                }
                if let m = try sc.doubleList("milestones") { milestones = m.map { Int($0) } }
                if let g = try sc.double("gamma") { gamma = g }
            }
            if let v = try t.int("total_iter") { totalIter = v }
            if let v = try t.int("warmup_iter") { warmupIter = v }
            if let p = try t.child("pixel_opt") {
                try p.only(["type", "loss_weight", "reduction"])
                if let ty = try p.string("type"), ty != "L1Loss" {
                    throw TrainingError("\(p.origin): train.pixel_opt.type '\(ty)' is not supported (only L1Loss)")
                }
                if let w = try p.double("loss_weight"), w != 1 {
                    throw TrainingError("\(p.origin): train.pixel_opt.loss_weight must be 1")
                }
            }
        }
        if let v = try n.child("val") {
            try v.only(["val_freq", "save_img", "metrics"])
            if let x = try v.int("val_freq") { valFreq = x }
        }
        if let l = try n.child("logger") {
            try l.only(["print_freq", "save_checkpoint_freq", "use_tb_logger", "wandb"])
            if let x = try l.int("print_freq") { printFreq = x }
            if let x = try l.int("save_checkpoint_freq") { saveCheckpointFreq = x }
        }
    }

    public func validate(origin: String) throws {
        func fail(_ m: String) -> TrainingError { TrainingError("\(origin): \(m)") }
        guard lrSize > 0, lrSize % decoder.windowSize == 0 else {
            throw fail(
                "datasets.train.lr_size \(lrSize) must be a positive multiple of window_size \(decoder.windowSize)")
        }
        guard scaleMin >= 1, scaleMax >= scaleMin, scaleMax <= 16 else {
            throw fail("datasets.train.scale_list [\(scaleMin), \(scaleMax)] must satisfy 1 <= min <= max <= 16")
        }
        guard batchSize >= 1, batchSize <= 1024 else {
            throw fail("datasets.train.batch_size_per_gpu must be 1...1024")
        }
        guard downscale == 1 || downscale == 2 else { throw fail("datasets.train.downscale must be 1 or 2") }
        guard totalIter >= 1 else { throw fail("train.total_iter must be at least 1") }
        guard lr > 0, lr.isFinite else { throw fail("train.optim_g.lr must be positive") }
        guard emaDecay >= 0, emaDecay < 1 else { throw fail("train.ema_decay must be in [0, 1)") }
        guard dmax > 0, dmax <= 1 else { throw fail("dmax must be in (0, 1]") }
        guard encoder.numFeat > 0, encoder.numBlock >= 0 else { throw fail("network_g sizes must be positive") }
        guard encoder.numFeat == decoder.inchannel else {
            throw fail(
                "network_g.num_feat \(encoder.numFeat) differs from network_fea2gs.inchannel \(decoder.inchannel)")
        }
        guard decoder.channel > 0, decoder.numHeads > 0, decoder.channel % decoder.numHeads == 0 else {
            throw fail("network_fea2gs.channel must be a positive multiple of num_heads")
        }
        let seedSide = Int(Double(decoder.numGsSeed).squareRoot().rounded())
        guard seedSide * seedSide == decoder.numGsSeed, decoder.windowSize > 0 else {
            throw fail("network_fea2gs.num_gs_seed must be a perfect square")
        }
        guard valFreq >= 1, printFreq >= 1, saveCheckpointFreq >= 1 else {
            throw fail("val_freq, print_freq and save_checkpoint_freq must be at least 1")
        }
        if let c = clipGradNorm, !(c > 0) { throw fail("train.clip_grad_norm must be positive or False") }
    }
}

/// A YAML mapping with its dotted path, for typed lookups with one-line errors.
struct YAMLNode {
    let dict: [String: Any]
    let path: String
    let origin: String

    init(_ dict: [String: Any], path: String, origin: String) {
        self.dict = dict
        self.path = path
        self.origin = origin
    }

    func name(_ k: String) -> String { path.isEmpty ? k : path + "." + k }
    func raw(_ k: String) -> Any? {
        guard let v = dict[k], !(v is NSNull) else { return nil }
        return v
    }

    func only(_ allowed: Set<String>) throws {
        for k in dict.keys.sorted() where !allowed.contains(k) {
            throw TrainingError("\(origin): unknown key '\(name(k))'")
        }
    }

    func child(_ k: String) throws -> YAMLNode? {
        guard let v = raw(k) else { return nil }
        guard let d = v as? [String: Any] else { throw TrainingError("\(origin): '\(name(k))' must be a mapping") }
        return YAMLNode(d, path: name(k), origin: origin)
    }

    func string(_ k: String) throws -> String? {
        guard let v = raw(k) else { return nil }
        if let s = v as? String { return s }
        throw TrainingError("\(origin): '\(name(k))' must be a string")
    }

    func int(_ k: String) throws -> Int? {
        guard let v = raw(k) else { return nil }
        if let i = v as? Int { return i }
        if let d = v as? Double, d == d.rounded(), abs(d) < 1e15 { return Int(d) }
        throw TrainingError("\(origin): '\(name(k))' must be an integer, not '\(v)'")
    }

    func double(_ k: String) throws -> Double? {
        guard let v = raw(k) else { return nil }
        if v is Bool { throw TrainingError("\(origin): '\(name(k))' must be a number, not '\(v)'") }
        if let i = v as? Int { return Double(i) }
        if let d = v as? Double, d.isFinite { return d }
        if let s = v as? String, let d = DecimalNumber.double(s) { return d }
        throw TrainingError("\(origin): '\(name(k))' must be a number, not '\(v)'")
    }

    func bool(_ k: String) throws -> Bool? {
        guard let v = raw(k) else { return nil }
        if let b = v as? Bool { return b }
        throw TrainingError("\(origin): '\(name(k))' must be true or false, not '\(v)'")
    }

    func doubleList(_ k: String) throws -> [Double]? {
        guard let v = raw(k) else { return nil }
        guard let a = v as? [Any] else { throw TrainingError("\(origin): '\(name(k))' must be a list of numbers") }
        return try a.map { e in
            if let i = e as? Int { return Double(i) }
            if let d = e as? Double, d.isFinite { return d }
            throw TrainingError("\(origin): '\(name(k))' must be a list of numbers")
        }
    }

    func stringList(_ k: String) throws -> [String]? {
        guard let v = raw(k) else { return nil }
        if let s = v as? String { return [s] }
        guard let a = v as? [Any] else { throw TrainingError("\(origin): '\(name(k))' must be a list of paths") }
        return try a.map { e in
            guard let s = e as? String else { throw TrainingError("\(origin): '\(name(k))' must be a list of paths") }
            return s
        }
    }
}
