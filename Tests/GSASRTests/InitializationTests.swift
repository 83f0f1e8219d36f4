import Foundation
import GSASR
import GSASRCheckpoint
import Testing

@Suite struct InitializationTests {
    static let smallDecoder = Fea2GSConfig(
        inchannel: 32, channel: 48, numHeads: 3, numCrossattnBlocks: 1, numCrossattnLayers: 2, numSelfattnBlocks: 1,
        numSelfattnLayers: 2, numGsSeed: 16, windowSize: 4, shuffleScale1: 2, shuffleScale2: 2)

    /// The computed index buffers equal the ones the official constructors stored in the
    /// golden checkpoints (small: seeds 4×4, window 4; paper: 12×12, window 12, below).
    @Test func relativePositionIndicesMatchOfficialBuffers() throws {
        try Self.checkIndices(Fixtures.url("small/decoder.pth"), seedSide: 4, windowSize: 4)
    }

    @Test(.enabled(if: Fixtures.paperAvailable, "needs ../shared/golden/edsr_paper (present in CI)"))
    func relativePositionIndicesMatchOfficialPaperBuffers() throws {
        try Self.checkIndices(
            Fixtures.sharedGolden.appendingPathComponent("edsr_paper/decoder.pth"), seedSide: 12, windowSize: 12)
    }

    static func checkIndices(_ url: URL, seedSide s: Int, windowSize ws: Int) throws {
        do {
            let sd = try PthReader.load(url)
            let cross = sd["window_crossattn_blocks.0.blocks.0.window_cross_attn.relative_position_index"]!.ints!
            let ours = try GSASRInitialization.crossAttentionIndex(seedSide: s, windowSize: ws)
            #expect(ours == cross, "cross-attention index for \(s)x\(s) seeds, window \(ws)")
            let selfIdx = sd["gs_selfattn_blocks.0.blocks.0.gs_self_attn.relative_position_index"]!.ints!
            #expect(GSASRInitialization.selfAttentionIndex(seedSide: s) == selfIdx)
            print("index buffers for seeds \(s)x\(s), window \(ws): \(ours == cross ? "identical" : "DIFFERENT")")
        }
    }

    @Test func fromScratchModelHasTheOfficialShapesAndRuns() throws {
        let m = try GSASRInitialization.model(
            encoder: EDSRConfig(numFeat: 32, numBlock: 2), decoder: Self.smallDecoder, seed: 7)
        let count = (m.encoderState.parameters + m.decoderState.parameters).reduce(0) { $0 + $1.value.count }
        #expect(count == 444_405)  // golden small config.json param_count
        // Same keys and shapes as the official small checkpoint.
        let golden = try PthReader.load(Fixtures.url("small/decoder.pth"))
        let ours = m.decoderState.stateDict()
        #expect(ours.keys == golden.keys)
        for k in golden.keys { #expect(ours[k]!.shape == golden[k]!.shape, "\(k)") }
        let enc = try PthReader.load(Fixtures.url("small/encoder.pth"))
        #expect(m.encoderState.stateDict().keys == enc.keys)
        // Deterministic from the seed; a different seed differs.
        let m2 = try GSASRInitialization.model(
            encoder: EDSRConfig(numFeat: 32, numBlock: 2), decoder: Self.smallDecoder, seed: 7)
        #expect(m2.decoderState.stateDict()["gs_embedding"]!.floats == ours["gs_embedding"]!.floats)
        let m3 = try GSASRInitialization.model(
            encoder: EDSRConfig(numFeat: 32, numBlock: 2), decoder: Self.smallDecoder, seed: 8)
        #expect(m3.decoderState.stateDict()["gs_embedding"]!.floats != ours["gs_embedding"]!.floats)
        // Linear bounds: U(±1/sqrt(fan_in)).
        let w = ours["mlp_block_rgb.2.weight"]!.floats
        #expect(w.allSatisfy { abs($0) <= 1 / Float(48).squareRoot() })
        #expect((w.map { abs($0) }.max() ?? 0) > 0.9 / Float(48).squareRoot())
    }

    /// CPython 3 `list(set(values))` for these inputs (printed by python3 on this machine).
    @Test func pythonSetIterationOrder() {
        let cases: [([Int64], [Int64])] = [
        ([-3, -2, -1, 0, 1, 2, 3], [0, 1, 2, 3, -1, -3, -2]),
        ([-24, -24, -24, -16, -16, -16, -8, -8, -8, 0, 0, 0, 8, 8, 8, 16, 16, 16, 24, 24, 24], [0, -24, 8, -16, 16, -8, 24]),
        ([-132, -120, -108, -96, -84, -72, -60, -48, -36, -24, -12, 0, 12, 24, 36, 48, 60, 72, 84, 96, 108, 120, 132], [0, 132, -120, 12, -108, 24, -96, 36, -84, 48, -72, 60, -60, 72, -48, 84, -36, 96, -24, 108, -12, 120, -132]),
        ([-498, -491, -478, -474, -471, -469, -436, -404, -396, -380, -363, -286, -279, -276, -273, -266, -264, -262, -239, -228, -175, -147, -112, -110, -101, -68, -57, -52, -44, -40, -17, -1, 7, 40, 54, 66, 82, 105, 122, 165, 167, 193, 202, 212, 238, 243, 279, 280, 282, 285, 307, 321, 355, 367, 402, 414, 423, 461, 467, 492], [-380, 7, -498, -112, -239, -110, 402, -491, -363, 279, 280, 282, -101, -228, 285, 414, -478, 165, -474, 167, 40, -471, 423, -469, 307, 54, -68, 193, 66, 321, -57, 202, -436, -52, 461, -175, 82, 467, -44, 212, -40, -286, 355, 122, -279, 105, -404, -276, -147, -273, -17, 238, 367, 243, -396, 492, -266, -264, -262, -1]),
        ]
        for (values, expected) in cases { #expect(PythonIntSet.iterationOrder(values) == expected) }
    }
}
