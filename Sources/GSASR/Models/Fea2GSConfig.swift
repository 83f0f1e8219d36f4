import Foundation
import GSASRCheckpoint

/// Hyperparameters of the Fea2GS decoder (the constructor arguments of the official class).
///
/// They are read from the state dict's shapes and key names (`init(inferringFrom:)`); a
/// `config.json` beside the weights (the official kwargs under "decoder") may override them.
/// Nothing here defaults to the paper configuration.
public struct Fea2GSConfig: Equatable, Sendable, Codable {
    public var inchannel: Int
    public var channel: Int
    public var numHeads: Int
    public var numCrossattnBlocks: Int
    public var numCrossattnLayers: Int
    public var numSelfattnBlocks: Int
    public var numSelfattnLayers: Int
    public var numGsSeed: Int
    public var windowSize: Int
    public var shuffleScale1: Int
    public var shuffleScale2: Int
    /// Which official class: `Fea2GS` (false: relative-position biases) or `Fea2GS_ROPE_AMP`
    /// (true: rotary embeddings in both attentions, a 3×3 conv closing every block, and
    /// `conv_final`). Read from the state dict's keys, never from an argument.
    public var rope = false

    /// The official class name of this configuration.
    public var officialName: String { rope ? "Fea2GS_ROPE_AMP" : "Fea2GS" }

    public var numGsSeedSqrt: Int { Int(Double(numGsSeed).squareRoot().rounded()) }

    enum CodingKeys: String, CodingKey {
        case inchannel, channel
        case numHeads = "num_heads"
        case numCrossattnBlocks = "num_crossattn_blocks"
        case numCrossattnLayers = "num_crossattn_layers"
        case numSelfattnBlocks = "num_selfattn_blocks"
        case numSelfattnLayers = "num_selfattn_layers"
        case numGsSeed = "num_gs_seed"
        case windowSize = "window_size"
        case shuffleScale1 = "shuffle_scale1"
        case shuffleScale2 = "shuffle_scale2"
        case rope
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        inchannel = try c.decode(Int.self, forKey: .inchannel)
        channel = try c.decode(Int.self, forKey: .channel)
        numHeads = try c.decode(Int.self, forKey: .numHeads)
        numCrossattnBlocks = try c.decode(Int.self, forKey: .numCrossattnBlocks)
        numCrossattnLayers = try c.decode(Int.self, forKey: .numCrossattnLayers)
        numSelfattnBlocks = try c.decode(Int.self, forKey: .numSelfattnBlocks)
        numSelfattnLayers = try c.decode(Int.self, forKey: .numSelfattnLayers)
        numGsSeed = try c.decode(Int.self, forKey: .numGsSeed)
        windowSize = try c.decode(Int.self, forKey: .windowSize)
        shuffleScale1 = try c.decode(Int.self, forKey: .shuffleScale1)
        shuffleScale2 = try c.decode(Int.self, forKey: .shuffleScale2)
        rope = try c.decodeIfPresent(Bool.self, forKey: .rope) ?? false
    }

    public init(
        inchannel: Int, channel: Int, numHeads: Int, numCrossattnBlocks: Int, numCrossattnLayers: Int,
        numSelfattnBlocks: Int, numSelfattnLayers: Int, numGsSeed: Int, windowSize: Int,
        shuffleScale1: Int, shuffleScale2: Int
    ) {
        self.inchannel = inchannel
        self.channel = channel
        self.numHeads = numHeads
        self.numCrossattnBlocks = numCrossattnBlocks
        self.numCrossattnLayers = numCrossattnLayers
        self.numSelfattnBlocks = numSelfattnBlocks
        self.numSelfattnLayers = numSelfattnLayers
        self.numGsSeed = numGsSeed
        self.windowSize = windowSize
        self.shuffleScale1 = shuffleScale1
        self.shuffleScale2 = shuffleScale2
    }

    /// Reads the hyperparameters from a decoder state dict (``Fea2GS/hyperparameters(inferredFrom:)``,
    /// beside the declaration whose keys it reads).
    public init(inferringFrom sd: StateDict) throws { self = try Fea2GS.hyperparameters(inferredFrom: sd) }

    /// Applies the `decoder` object of an official-style config.json (any subset of keys),
    /// checked by ``ModelConfigFile/parse(_:)``.
    public mutating func override(withJSON data: Data) throws { apply(try ModelConfigFile.parse(data)) }

    /// The official constructor's integer arguments (config.json's `decoder` object, the training
    /// YAML's `network_fea2gs`), each with the property it sets: the one list the config reader,
    /// the trainer's export and `gsasr info` use.
    public static let arguments: [(name: String, slot: WritableKeyPath<Fea2GSConfig, Int>)] = [
        ("inchannel", \.inchannel), ("channel", \.channel), ("num_heads", \.numHeads),
        ("num_crossattn_blocks", \.numCrossattnBlocks), ("num_crossattn_layers", \.numCrossattnLayers),
        ("num_selfattn_blocks", \.numSelfattnBlocks), ("num_selfattn_layers", \.numSelfattnLayers),
        ("num_gs_seed", \.numGsSeed), ("window_size", \.windowSize), ("shuffle_scale1", \.shuffleScale1),
        ("shuffle_scale2", \.shuffleScale2),
    ]

    /// These hyperparameters under their official argument names.
    public var argumentValues: [String: Int] {
        Dictionary(uniqueKeysWithValues: Self.arguments.map { ($0.name, self[keyPath: $0.slot]) })
    }

    /// Applies the decoder arguments a checked config file gives.
    public mutating func apply(_ file: ModelConfigFile) {
        for (key, slot) in Self.arguments { if let v = file.decoderInts[key] { self[keyPath: slot] = v } }
    }

    /// Structural checks that the official constructor would imply.
    public func validate() throws {
        // Every size at least 1 and at most ModelConfigFile.maxInt: they come from an untrusted
        // file's shapes (a zero-size tensor can carry any dimension), and products of them size
        // the declaration.
        let sizes: [(String, Int)] = [
            ("inchannel", inchannel), ("channel", channel), ("num_heads", numHeads), ("num_gs_seed", numGsSeed),
            ("window_size", windowSize), ("shuffle_scale1", shuffleScale1), ("shuffle_scale2", shuffleScale2),
        ]
        for (name, v) in sizes where v < 1 || v > ModelConfigFile.maxInt {
            throw ModelLoadError("decoder: \(name) \(v) is outside 1...\(ModelConfigFile.maxInt)")
        }
        let s = numGsSeedSqrt
        guard s * s == numGsSeed else {
            throw ModelLoadError("decoder: num_gs_seed \(numGsSeed) is not a perfect square")
        }
        guard channel % numHeads == 0 else {
            throw ModelLoadError("decoder: channel \(channel) is not divisible by num_heads \(numHeads)")
        }
        if rope, (channel / numHeads) % 4 != 0 {
            throw ModelLoadError(
                "decoder: Fea2GS_ROPE_AMP needs a head dimension (channel / num_heads = \(channel / numHeads)) that is a multiple of 4")
        }
        guard numCrossattnBlocks >= 1, numSelfattnBlocks >= 0, numCrossattnLayers >= 1 else {
            throw ModelLoadError("decoder: no window cross-attention blocks found")
        }
    }
}
