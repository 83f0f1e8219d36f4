extension Fea2GS {
    /// Floating-point operations (2 per multiply-add) this implementation executes for a padded
    /// feature map of hp × wp: convolutions, linear layers and attention products. The constant
    /// scale cross-attention (one vector per layer) and element-wise work are not counted.
    public func flops(featureHeight hp: Int, featureWidth wp: Int) -> Double {
        let c = Double(config.channel), cin = Double(config.inchannel)
        let pix = Double(hp * wp)
        let windows = Double((hp / config.windowSize) * (wp / config.windowSize))
        let seeds = Double(config.numGsSeed), win2 = Double(config.windowSize * config.windowSize)
        let tokens = windows * seeds
        var f = 2 * pix * 9 * (cin * c + c * c)  // img_feat_proj
        // Window cross-attention layers: 2 FFNs, q on tokens, k and v on the map, attention, proj.
        let crossLayer =
            2 * tokens * c * c * 2 * 2 + 2 * tokens * c * c * 2 + 2 * pix * c * c * 2
            + 2 * windows * seeds * win2 * c * 2
        f +=
            Double(config.numCrossattnBlocks)
            * (Double(config.numCrossattnLayers) * crossLayer + 2 * tokens * c * c * 2)
        let selfLayer = 2 * tokens * c * c * 2 * 2 + 2 * tokens * c * c * 4 + 2 * windows * seeds * seeds * c * 2
        f += Double(config.numSelfattnBlocks) * (Double(config.numSelfattnLayers) * selfLayer + 2 * tokens * c * c * 2)
        let s1 = Double(config.shuffleScale1 * config.shuffleScale1),
            s2 = Double(config.shuffleScale2 * config.shuffleScale2)
        f += 2 * tokens * 9 * c * c * s1 + 2 * tokens * s1 * 9 * c * c * s2  // UPNet
        let n = tokens * s1 * s2
        f += 2 * n * (5 * c * c + 5 * c * 4 * c + 4 * c * 9)  // heads
        return f
    }
}
