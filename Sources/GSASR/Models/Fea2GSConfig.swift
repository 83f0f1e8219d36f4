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

    /// Reads the hyperparameters from a decoder state dict:
    /// - channel, num_gs_seed: `gs_embedding` (num_gs_seed × channel);
    /// - inchannel: `img_feat_proj.0.weight`;
    /// - num_heads: columns of a `relative_position_bias_table`;
    /// - window_size: `window_cross_attn.relative_position_index` is (num_gs_seed × window²);
    /// - block and layer counts: the `{i}` indices present;
    /// - shuffle factors: `UPNet.0/2.weight` rows = channel · factor².
    public init(inferringFrom sd: StateDict) throws {
        func shape(_ k: String) throws -> [Int] {
            guard let t = sd[k] else { throw ModelLoadError("decoder: missing key '\(k)'") }
            return t.shape
        }
        func count(_ f: (Int) -> String) -> Int {
            var i = 0
            while sd[f(i)] != nil { i += 1 }
            return i
        }
        func isqrt(_ n: Int, _ what: String) throws -> Int {
            let r = Int(Double(n).squareRoot().rounded())
            guard r * r == n, r > 0 else { throw ModelLoadError("decoder: \(what) = \(n) is not a perfect square") }
            return r
        }
        let emb = try shape("gs_embedding")
        guard emb.count == 2 else { throw ModelLoadError("decoder: gs_embedding has shape \(emb), expected 2-D") }
        numGsSeed = emb[0]
        channel = emb[1]
        let proj = try shape("img_feat_proj.0.weight")
        guard proj.count == 4 else { throw ModelLoadError("decoder: img_feat_proj.0.weight has shape \(proj)") }
        inchannel = proj[1]
        numCrossattnBlocks = count { "window_crossattn_blocks.\($0).norm.weight" }
        numSelfattnBlocks = count { "gs_selfattn_blocks.\($0).norm.weight" }
        numCrossattnLayers = count { "window_crossattn_blocks.0.blocks.\($0).norm1.weight" }
        numSelfattnLayers = count { "gs_selfattn_blocks.0.blocks.\($0).norm1.weight" }
        let crossPrefix = "window_crossattn_blocks.0.blocks.0.window_cross_attn."
        let table = try shape(crossPrefix + "relative_position_bias_table")
        guard table.count == 2 else { throw ModelLoadError("decoder: relative_position_bias_table has shape \(table)") }
        numHeads = table[1]
        let index = try shape(crossPrefix + "relative_position_index")
        guard index.count == 2 else { throw ModelLoadError("decoder: relative_position_index has shape \(index)") }
        windowSize = try isqrt(index[1], "window area")
        let up0 = try shape("UPNet.0.weight"), up2 = try shape("UPNet.2.weight")
        guard channel > 0, up0.count == 4, up2.count == 4, up0[0] % channel == 0, up2[0] % channel == 0 else {
            throw ModelLoadError("decoder: UPNet weights \(up0), \(up2) do not match channel \(channel)")
        }
        shuffleScale1 = try isqrt(up0[0] / channel, "UPNet.0 factor²")
        shuffleScale2 = try isqrt(up2[0] / channel, "UPNet.2 factor²")
    }

    /// Applies the `decoder` object of an official-style config.json (any subset of keys),
    /// checked by ``ModelConfigFile/parse(_:)``.
    public mutating func override(withJSON data: Data) throws { apply(try ModelConfigFile.parse(data)) }

    /// Applies the decoder arguments a checked config file gives.
    public mutating func apply(_ file: ModelConfigFile) {
        let slots: [(String, WritableKeyPath<Fea2GSConfig, Int>)] = [
            ("inchannel", \.inchannel), ("channel", \.channel), ("num_heads", \.numHeads),
            ("num_crossattn_blocks", \.numCrossattnBlocks), ("num_crossattn_layers", \.numCrossattnLayers),
            ("num_selfattn_blocks", \.numSelfattnBlocks), ("num_selfattn_layers", \.numSelfattnLayers),
            ("num_gs_seed", \.numGsSeed), ("window_size", \.windowSize), ("shuffle_scale1", \.shuffleScale1),
            ("shuffle_scale2", \.shuffleScale2),
        ]
        for (key, slot) in slots { if let v = file.decoderInts[key] { self[keyPath: slot] = v } }
    }

    /// Structural checks that the official constructor would imply.
    public func validate() throws {
        let s = numGsSeedSqrt
        guard s * s == numGsSeed else {
            throw ModelLoadError("decoder: num_gs_seed \(numGsSeed) is not a perfect square")
        }
        guard channel % numHeads == 0 else {
            throw ModelLoadError("decoder: channel \(channel) is not divisible by num_heads \(numHeads)")
        }
        guard numCrossattnBlocks >= 1, numSelfattnBlocks >= 0, numCrossattnLayers >= 1 else {
            throw ModelLoadError("decoder: no window cross-attention blocks found")
        }
    }
}
