import GSASRCheckpoint
import GSASRTensor

/// An official network architecture: one Swift type named as the official class, built from
/// its one declaration (``init(_:config:)`` on a ``ParameterSource``).
///
/// The protocol is the registry's view of a type: its official name (the `type` in YAML and
/// config.json), how it recognises a state dict (``hyperparameters(inferredFrom:)``: by keys and
/// shapes, throwing a one-line error that names what did not match), and its hyperparameters.
public protocol NetworkArchitecture: Sendable {
    associatedtype Config: Codable & Sendable & Equatable

    /// The official class name (`EDSRNOUP`, `Fea2GS`).
    static var officialName: String { get }

    /// The constructor arguments read from a state dict's keys and shapes. Throws when the
    /// layout is not this architecture's, naming the first key or shape that did not match.
    static func hyperparameters(inferredFrom sd: StateDict) throws -> Config

    /// The declaration.
    init(_ s: ParameterSource, config: Config) throws

    var config: Config { get }
}

/// A constructor argument's value, as config.json and `gsasr info` give it.
public enum ArgumentValue: Sendable, Equatable, Encodable, CustomStringConvertible {
    case int(Int)
    case number(Double)
    case ints([Int])

    /// The JSONSerialization value.
    public var json: Any {
        switch self {
        case .int(let v): return v
        case .number(let v): return v
        case .ints(let v): return v
        }
    }

    public var description: String {
        switch self {
        case .int(let v): return "\(v)"
        case .number(let v): return "\(v)"
        case .ints(let v): return "[" + v.map(String.init).joined(separator: ",") + "]"
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .int(let v): try c.encode(v)
        case .number(let v): try c.encode(v)
        case .ints(let v): try c.encode(v)
        }
    }
}

extension EncoderArchitecture {
    public static var trainable: Bool { false }
    public var windowSize: Int? { nil }
    public var tilingContext: Int { reach }
    public static func override(_ config: inout Config, with numbers: [String: Double]) throws {}
}

/// An encoder with an inference forward only (RDN, SwinIR, HAT: no backward yet): its `encode`
/// refuses `saving` and its `backward` is unreachable (`gsasr train` refuses the type first).
public protocol InferenceOnlyEncoder: EncoderArchitecture {
    /// x: (h × w × inChannels) → (h × w × outChannels).
    func forward(_ x: Tensor, height: Int, width: Int, step: (_ done: Int, _ total: Int) throws -> Void) rethrows
        -> Tensor
}

extension InferenceOnlyEncoder {
    public func encode(
        _ x: Tensor, height h: Int, width w: Int, saving: Bool, profile: StepProfile?,
        step: (_ done: Int, _ total: Int) throws -> Void
    ) rethrows -> (Tensor, (any EncoderContext)?) {
        precondition(!saving, "\(Self.officialName): training is not supported")
        return (try forward(x, height: h, width: w, step: step), nil)
    }

    public func backward(_ context: any EncoderContext, dOut: Tensor, grads: Gradients, profile: StepProfile?) {
        preconditionFailure("\(Self.officialName): training is not supported")
    }
}

/// What the forward of an encoder keeps for its backward (each encoder has its own).
public protocol EncoderContext {}

/// An encoder (EDSR-baseline, RDN, SwinIR, HAT-L without their upsamplers): LR image →
/// feature map, with what tiling, benchmarks and memory estimates need to know about it.
public protocol EncoderArchitecture: NetworkArchitecture {
    /// Input channels (3: RGB).
    var inChannels: Int { get }
    /// Feature channels of the output (the decoder's `inchannel`).
    var outChannels: Int { get }
    /// How far, in LR pixels, an output pixel sees on each side (its receptive-field radius:
    /// one per 3×3 convolution). Tiling takes at least this much margin.
    var reach: Int { get }
    /// The context, in LR pixels on each side, that a tile's encoder pass gets (``TiledUpscaler``):
    /// ``reach`` for the convolutional encoders, whose tiles are then exact. The attention
    /// encoders' receptive field is the whole image (shifted windows chain across it; HAT's
    /// channel attention averages all of it), so their tiles take a bounded context instead
    /// and approximate the untiled features (measured in Benchmarks/README.md).
    var tilingContext: Int { get }
    /// Floating-point operations (2 per multiply-add) for an h × w input.
    func flops(height: Int, width: Int) -> Double
    /// Peak working floats of one forward on an h × w input (inference).
    func workingFloats(height: Int, width: Int) -> Double
    /// The forward (x: h × w × inChannels channels-last → h × w × outChannels); with `saving`
    /// also the context of `backward(_:dOut:grads:profile:)`. `step(done, total)` reports
    /// progress (throw to stop).
    func encode(
        _ x: Tensor, height: Int, width: Int, saving: Bool, profile: StepProfile?,
        step: (_ done: Int, _ total: Int) throws -> Void
    ) rethrows -> (Tensor, (any EncoderContext)?)
    /// The window an LR map's size must be a multiple of (the attention encoders' window;
    /// nil for the convolutional ones). The default padding denominator is lcm(this, the
    /// decoder's window), or lcm(12, the decoder's window) without one: the official scripts'
    /// 12 (EDSR, RDN), 24 (paper SwinIR) and 16 (enhanced SwinIR, HAT-L).
    var windowSize: Int? { get }
    /// Applies the constructor arguments a state dict cannot tell (config.json's `encoder`
    /// object: HAT's `conv_scale`, `img_size`), checked.
    static func override(_ config: inout Config, with numbers: [String: Double]) throws
    /// Accumulates every parameter's gradient from dL/d(output).
    func backward(_ context: any EncoderContext, dOut: Tensor, grads: Gradients, profile: StepProfile?)
    /// The `encoder` object of config.json / `network_g` of a training YAML (without `type`).
    var configArguments: [String: ArgumentValue] { get }
    /// Whether `gsasr train` can train it (its backward is implemented).
    static var trainable: Bool { get }
}

extension EncoderArchitecture {
    /// Builds the encoder from `sd`: hyperparameters by the recogniser, then strict loading by the
    /// declaration; returns it with its state-dict entries.
    static func load(_ sd: StateDict, label: String, numbers: [String: Double] = [:]) throws -> (
        any EncoderArchitecture, [StateEntry]
    ) {
        var cfg = try hyperparameters(inferredFrom: sd)
        try override(&cfg, with: numbers)
        let s = ParameterSource(loading: sd, label: label)
        let e = try Self(s, config: cfg)
        try s.finish()
        return (e, s.entries)
    }

    public func callAsFunction(_ x: Tensor, height h: Int, width w: Int) -> Tensor {
        encode(x, height: h, width: w, saving: false, profile: nil, step: { _, _ in }).0
    }

    public func callAsFunction(
        _ x: Tensor, height h: Int, width w: Int, step: (_ done: Int, _ total: Int) throws -> Void
    ) rethrows -> Tensor {
        try encode(x, height: h, width: w, saving: false, profile: nil, step: step).0
    }
}

/// The registry of architectures (as BasicSR's `ARCH_REGISTRY`): checkpoint detection, the
/// `type` of YAML and config.json, tiling reach, FLOP counts and benches ask it. Adding an
/// encoder is its type plus one line in ``encoders``.
public enum Architectures {
    /// Every encoder this version runs.
    public static let encoders: [any EncoderArchitecture.Type] = [
        EDSRNOUP.self, RDNNOUP.self, SwinIRNOUP.self, HATNOUP_ROPE_AMP.self,
    ]
    /// Every decoder this version runs.
    public static let decoders: [any NetworkArchitecture.Type] = [Fea2GS.self]

    /// The encoder registered under the official class name `name`.
    public static func encoder(named name: String) throws -> any EncoderArchitecture.Type {
        guard let t = encoders.first(where: { $0.officialName == name }) else {
            throw ModelLoadError(
                "encoder type '\(name)' is not one this version runs (\(encoders.map { $0.officialName }.joined(separator: ", ")))"
            )
        }
        return t
    }

    /// Recognises an encoder state dict and builds it: the first registered architecture (of
    /// `among`, the registry's by default) whose recogniser accepts the keys and shapes and
    /// whose declaration then loads strictly, or the one named `type` (from config.json). When
    /// none does, one line says why each did not.
    public static func loadEncoder(
        _ sd: StateDict, label: String, type: String? = nil, among registry: [any EncoderArchitecture.Type] = encoders,
        numbers: [String: Double] = [:]
    ) throws -> (encoder: any EncoderArchitecture, state: [StateEntry]) {
        var candidates = registry
        if let type {
            guard let t = registry.first(where: { $0.officialName == type }) else {
                throw ModelLoadError(
                    "encoder type '\(type)' is not one this version runs (\(registry.map { $0.officialName }.joined(separator: ", ")))"
                )
            }
            candidates = [t]
        }
        var reasons: [String] = []
        for t in candidates {
            do {
                return try t.load(sd, label: label, numbers: numbers)
            } catch {
                // Strict-loading errors already start with the file's label.
                let text = "\(error)"
                let prefix = label + ": "
                reasons.append(
                    "\(t.officialName): " + (text.hasPrefix(prefix) ? String(text.dropFirst(prefix.count)) : text))
            }
        }
        throw ModelLoadError("\(label): not a known encoder layout (\(reasons.joined(separator: "; ")))")
    }
}
