import Foundation
import GSASR
import GSASRTensor
import Testing

/// The training forwards (which keep activations for the backward) compute exactly what the
/// inference forwards compute, bit for bit.
@Suite struct TrainingForwardTests {
    @Test func trainingForwardEqualsInferenceBitForBit() throws {
        let model = try GSASRModel.load(directory: Fixtures.url("small"))
        var rng = SplitMix64(seed: 3)
        let h = 24, w = 36
        let x = Tensor(shape: [h, w, 3], values: (0..<(h * w * 3)).map { _ in Float(rng.uniform()) })
        let encInf = model.encoder(x, height: h, width: w)
        let (encTrain, _) = model.encoder.forwardTraining(x, height: h, width: w)
        #expect(encInf.array.map(\.bitPattern) == encTrain.array.map(\.bitPattern))
        for s: Float in [1.7, 3.25] {
            let rawInf = model.decoder(encInf, height: h, width: w, scale: s)
            let (rawTrain, _) = model.decoder.forwardTraining(encInf, height: h, width: w, scale: s)
            let same = zip(rawInf.array, rawTrain.array).filter { $0.bitPattern == $1.bitPattern }.count
            print("scale \(s): \(same) of \(rawInf.count) raw outputs bit-identical")
            #expect(same == rawInf.count)
        }
    }
}
