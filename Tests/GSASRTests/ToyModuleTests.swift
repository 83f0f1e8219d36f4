import Foundation
import GSASR
import GSASRCheckpoint
import GSASRTensor
import Testing

/// A module that is not in the package: a toy encoder (conv → LayerNorm, plus a learnable
/// per-channel offset), written the way every official module is. Its one declaration (the
/// `init` on a `ParameterSource`) is all there is about its parameters; its one forward saves
/// an optional context and its backward sits beside it. The tests below get strict loading,
/// the state dict for export, from-scratch initialisation and the parameter count from that
/// declaration, and run it in the upscaler through the registry's protocol.
struct ToyEncoder: EncoderArchitecture {
    struct Config: Codable, Sendable, Equatable { var feat: Int }
    static let officialName = "ToyEncoder"

    let config: Config
    let conv: Conv2d
    let norm: LayerNorm
    let offset: Tensor

    init(_ s: ParameterSource, config: Config) throws {
        self.config = config
        conv = try Conv2d(s("conv"), in: 3, out: config.feat)
        norm = try LayerNorm(s("norm"), dim: config.feat)
        offset = try s.parameter("offset", [config.feat], .normal(std: 0.1))
    }

    static func hyperparameters(inferredFrom sd: StateDict) throws -> Config {
        guard let w = sd["conv.weight"], w.shape.count == 4 else { throw ModelLoadError("no 4-D key 'conv.weight'") }
        return Config(feat: w.shape[0])
    }

    struct Context: EncoderContext {
        let input: Tensor, height: Int, width: Int
        let norm: LayerNorm.Context
    }

    var inChannels: Int { 3 }
    var outChannels: Int { config.feat }
    var reach: Int { 1 }
    func flops(height h: Int, width w: Int) -> Double { 2 * Double(h * w * 27 * config.feat) }
    func workingFloats(height h: Int, width w: Int) -> Double { 3 * Double(h * w * config.feat) }
    var configArguments: [String: ArgumentValue] { ["feat": .int(config.feat)] }

    func encode(
        _ x: Tensor, height h: Int, width w: Int, saving: Bool, profile: StepProfile?,
        step: (_ done: Int, _ total: Int) throws -> Void
    ) rethrows -> (Tensor, (any EncoderContext)?) {
        let (y, n) = norm.forward(conv(x, height: h, width: w), saving: saving)
        Kernels.addRow(y, offset.array)
        try step(1, 1)
        guard let n else { return (y, nil) }
        return (y, Context(input: x, height: h, width: w, norm: n))
    }

    func backward(_ context: any EncoderContext, dOut: Tensor, grads: Gradients, profile: StepProfile?) {
        let c = context as! Context
        let dy = dOut.array, dOffset = grads.of(offset).ptr
        for r in 0..<(dy.count / config.feat) { for j in 0..<config.feat { dOffset[j] += dy[r * config.feat + j] } }
        let dConv = norm.backward(c.norm, dy: dOut, grads: grads)
        _ = conv.backward(input: c.input, height: c.height, width: c.width, dy: dConv, grads: grads, needDX: false)
    }
}

@Suite struct ToyModuleTests {
    static let cfg = ToyEncoder.Config(feat: 32)

    /// conv (32·3·9 + 32) + norm (32 + 32) + offset (32).
    static let expectedCount = 32 * 27 + 32 + 64 + 32

    @Test func declarationGivesInitialisationOrderAndCount() throws {
        let s = ParameterSource(initializing: SplitMix64(seed: 5))
        let toy = try ToyEncoder(s, config: Self.cfg)
        #expect(s.entries.map(\.key) == ["conv.weight", "conv.bias", "norm.weight", "norm.bias", "offset"])
        #expect(s.entries.parameterCount == Self.expectedCount)
        // The declared initialisers: LayerNorm 1 and 0, conv U(±1/√27), offset N(0, 0.1²).
        #expect(toy.norm.weight.array.allSatisfy { $0 == 1 } && toy.norm.bias.array.allSatisfy { $0 == 0 })
        let bound = Float(1 / 27.0.squareRoot())
        #expect(toy.conv.weights.weight.array.allSatisfy { abs($0) <= bound })
        #expect(toy.offset.array.contains { $0 != 0 })
        // Same seed, same values; another seed, others.
        let again = ParameterSource(initializing: SplitMix64(seed: 5))
        _ = try ToyEncoder(again, config: Self.cfg)
        #expect(again.entries.stateDict()["conv.weight"]!.floats == s.entries.stateDict()["conv.weight"]!.floats)
        let other = ParameterSource(initializing: SplitMix64(seed: 6))
        _ = try ToyEncoder(other, config: Self.cfg)
        #expect(other.entries.stateDict()["conv.weight"]!.floats != s.entries.stateDict()["conv.weight"]!.floats)
    }

    @Test func exportThenStrictLoadRoundTrips() throws {
        let s = ParameterSource(initializing: SplitMix64(seed: 9))
        _ = try ToyEncoder(s, config: Self.cfg)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("toy-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: file) }
        let exported = s.entries.stateDict()
        #expect(exported["conv.weight"]!.shape == [32, 3, 3, 3])  // PyTorch's layout in the file
        try Safetensors.save(exported, to: file)
        let sd = try Safetensors.load(file)
        let (loaded, state) = try Architectures.loadEncoder(sd, label: "toy.safetensors", among: [ToyEncoder.self])
        #expect(loaded is ToyEncoder)
        #expect(state.parameterCount == Self.expectedCount)
        for key in exported.keys { #expect(state.stateDict()[key]!.floats == exported[key]!.floats, "\(key)") }

        // Strict loading names the key: missing, mis-shaped, unexpected.
        var missing = StateDict(), wrong = StateDict(), extra = StateDict()
        for k in sd.keys {
            if k != "offset" { missing.insert(k, sd[k]!) }
            wrong.insert(
                k,
                k == "norm.bias"
                    ? LoadedTensor(shape: [31], dtype: .float32, floats: .init(repeating: 0, count: 31)) : sd[k]!)
            extra.insert(k, sd[k]!)
        }
        extra.insert("stray", LoadedTensor(shape: [1], dtype: .float32, floats: [0]))
        for (dict, needle) in [
            (missing, "missing key 'offset'"), (wrong, "'norm.bias' has shape [31]"), (extra, "unexpected key 'stray'"),
        ] {
            do {
                _ = try Architectures.loadEncoder(dict, label: "toy", among: [ToyEncoder.self])
                Issue.record("loaded a bad state dict (\(needle))")
            } catch {
                #expect("\(error)".contains(needle), "\(error)")
            }
        }
        // A layout no registered architecture has: one line naming why each did not match.
        do {
            _ = try Architectures.loadEncoder(extra, label: "toy")
            Issue.record("EDSRNOUP accepted a toy state dict")
        } catch {
            print("unrecognised layout: \(error)")
            #expect("\(error)".contains("EDSRNOUP: no key 'conv_first.weight'"))
        }
    }

    /// The toy runs in the pipeline with the small decoder, and its saving forward gives the
    /// same bits as the plain one.
    @Test func newEncoderRunsInTheUpscaler() throws {
        let small = try GSASRModel.load(directory: Fixtures.url("small"))
        let s = ParameterSource(initializing: SplitMix64(seed: 1))
        let toy = try ToyEncoder(s, config: Self.cfg)
        let model = try GSASRModel(
            encoder: toy, encoderState: s.entries, decoder: small.decoder, decoderState: small.decoderState)
        var rng = SplitMix64(seed: 2)
        let (w, h) = (20, 14)
        let rgb = (0..<(w * h * 3)).map { _ in Float(rng.uniform()) }
        let r = try Upscaler(model: model).upscale(rgb: rgb, width: w, height: h, scale: 2.5)
        #expect(r.width == 50 && r.height == 35)
        #expect(r.pixels.allSatisfy { $0.isFinite })
        let x = Tensor(shape: [h, w, 3], values: rgb)
        let plain = model.encoder(x, height: h, width: w)
        let (saved, ctx) = model.encoder.encode(x, height: h, width: w, saving: true, profile: nil, step: { _, _ in })
        #expect(ctx != nil && plain.array == saved.array)
    }
}

/// An encoder whose recogniser accepts any state dict: the registry must still try the next
/// architecture when its strict loading fails.
struct LaxToyEncoder: EncoderArchitecture {
    static let officialName = "LaxToy"
    let config: ToyEncoder.Config
    let inner: ToyEncoder
    init(_ s: ParameterSource, config: ToyEncoder.Config) throws {
        self.config = config
        inner = try ToyEncoder(s, config: config)
    }
    static func hyperparameters(inferredFrom sd: StateDict) throws -> ToyEncoder.Config { .init(feat: 32) }
    var inChannels: Int { 3 }
    var outChannels: Int { inner.outChannels }
    var reach: Int { inner.reach }
    func flops(height h: Int, width w: Int) -> Double { inner.flops(height: h, width: w) }
    func workingFloats(height h: Int, width w: Int) -> Double { inner.workingFloats(height: h, width: w) }
    var configArguments: [String: ArgumentValue] { inner.configArguments }
    func encode(
        _ x: Tensor, height h: Int, width w: Int, saving: Bool, profile: StepProfile?,
        step: (_ done: Int, _ total: Int) throws -> Void
    ) rethrows -> (Tensor, (any EncoderContext)?) {
        try inner.encode(x, height: h, width: w, saving: saving, profile: profile, step: step)
    }
    func backward(_ context: any EncoderContext, dOut: Tensor, grads: Gradients, profile: StepProfile?) {
        inner.backward(context, dOut: dOut, grads: grads, profile: profile)
    }
}

/// Crafted checkpoints (untrusted files) get one-line errors, never a trap: zero-size tensors
/// can carry any dimension, and the hyperparameters read from them size the declarations.
@Suite struct HostileStateDictTests {
    static let small = Fixtures.url("small")

    static func dicts() throws -> (StateDict, StateDict) {
        (
            try GSASRModel.loadStateDict(GSASRModel.checkpoint(in: small, named: "encoder"), paramKey: nil),
            try GSASRModel.loadStateDict(GSASRModel.checkpoint(in: small, named: "decoder"), paramKey: nil)
        )
    }

    static func replacing(_ sd: StateDict, _ changes: [String: [Int]]) -> StateDict {
        var out = StateDict()
        for k in sd.keys {
            if let shape = changes[k] {
                out.insert(k, LoadedTensor(shape: shape, dtype: .float32, floats: []))
            } else {
                out.insert(k, sd[k]!)
            }
        }
        return out
    }

    func refused(_ enc: StateDict, _ dec: StateDict, mentioning needle: String) {
        do {
            _ = try GSASRModel.load(
                encoder: enc, encoderLabel: "encoder.pth", decoder: dec, decoderLabel: "decoder.pth")
            Issue.record("loaded a crafted checkpoint (\(needle))")
        } catch {
            print("refused: \(error)")
            #expect("\(error)".contains(needle), "\(error)")
        }
    }

    @Test func hugeOrZeroSizesAreRefused() throws {
        let (enc, dec) = try Self.dicts()
        let big = 1 << 40
        refused(
            enc,
            Self.replacing(
                dec,
                [
                    "gs_embedding": [0, big], "pos_embedding": [0, big], "img_feat_proj.0.weight": [0, 1 << 30, 3, 3],
                    "UPNet.0.weight": [4 * big, 0, 3, 3], "UPNet.2.weight": [4 * big, 0, 3, 3],
                ]),
            mentioning: "outside 1...65536")
        refused(
            enc, Self.replacing(dec, ["gs_embedding": [0, 48], "pos_embedding": [0, 48]]), mentioning: "num_gs_seed 0")
        refused(Self.replacing(enc, ["conv_first.weight": [4, 1 << 40, 3, 3]]), dec, mentioning: "num_in_ch")
        refused(Self.replacing(enc, ["conv_first.weight": [0, 3, 3, 3]]), dec, mentioning: "num_feat 0")
    }

    @Test func aFailedStrictLoadFallsThroughToTheNextArchitecture() throws {
        let (enc, _) = try Self.dicts()
        let (e, _) = try Architectures.loadEncoder(
            enc, label: "encoder.pth", among: [LaxToyEncoder.self, EDSRNOUP.self])
        #expect(e is EDSRNOUP)
        do {
            _ = try Architectures.loadEncoder(enc, label: "encoder.pth", among: [LaxToyEncoder.self])
            Issue.record("LaxToy loaded an EDSR state dict")
        } catch {
            #expect("\(error)".contains("LaxToy: missing key 'conv.weight'"), "\(error)")
        }
    }
}
