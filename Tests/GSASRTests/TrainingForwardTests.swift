import Foundation
import GSASR
import GSASRTensor
import Testing

/// A saving forward (which keeps activations for the backward: copies for every residual, the
/// window groups' activations in slot order) computes exactly what the non-saving forward (in
/// place, per-group scratch) computes, bit for bit.
@Suite struct TrainingForwardTests {
    @Test func trainingForwardEqualsInferenceBitForBit() throws {
        let model = try GSASRModel.load(directory: Fixtures.url("small"))
        var rng = SplitMix64(seed: 3)
        let h = 24, w = 36
        let x = Tensor(shape: [h, w, 3], values: (0..<(h * w * 3)).map { _ in Float(rng.uniform()) })
        let encInf = model.encoder(x, height: h, width: w)
        let (encTrain, encContext) = model.encoder.encode(
            x, height: h, width: w, saving: true, profile: nil, step: { _, _ in })
        #expect(encContext != nil)
        #expect(encInf.array.map { $0.bitPattern } == encTrain.array.map { $0.bitPattern })
        for s: Float in [1.7, 3.25] {
            let rawInf = model.decoder(encInf, height: h, width: w, scale: s)
            let (rawTrain, context) = model.decoder.forward(
                encInf, height: h, width: w, scale: s, saving: TrainingScratch(), step: { _, _ in })
            #expect(context != nil)
            let same = zip(rawInf.array, rawTrain.array).filter { $0.bitPattern == $1.bitPattern }.count
            print("scale \(s): \(same) of \(rawInf.count) raw outputs bit-identical")
            #expect(same == rawInf.count)
        }
    }
}
