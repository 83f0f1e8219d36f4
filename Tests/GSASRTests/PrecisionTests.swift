import Foundation
import GSASR
import Testing

/// bf16 (issue 26) on small inputs: the quality gate (a) — the bf16 output's 8 bits against the
/// f32 output's, PSNR ≥ 45 dB at x2, x4 and x11.3 for the built-in model and the paper config
/// (golden random weights) — that bf16 really ran (the outputs differ), that switching back
/// gives the f32 bits again, and how a request resolves on this CPU. Each test loads its own
/// model: the precision switch acts on the model's layers.
@Suite(.serialized) struct PrecisionTests {
    static let scales = [2.0, 4.0, 11.3]

    static func outputs(_ model: GSASRModel, _ p: Precision, scale: Double) throws -> [UInt8] {
        try model.setPrecision(p)
        let lr = try Fixtures.lr("astronaut_48x48")
        let r = try Upscaler(model: model).upscale(rgb: lr.pixels, width: lr.width, height: lr.height, scale: scale)
        return r.pixels.map(ImageIO.quantize)
    }

    static func gate(_ model: GSASRModel, name: String) throws {
        for s in scales {
            let a = try outputs(model, .f32, scale: s)
            let b = try outputs(model, .bf16, scale: s)
            #expect(model.precision == .bf16)
            let psnr = Metrics.psnr(a, b, width: a.count / 3, height: 1, channels: 3, cropBorder: 0)
            let differing = zip(a, b).filter { $0 != $1 }.count
            print(
                String(
                    format: "bf16 vs f32, %@ x%g: PSNR %.2f dB, %d of %d samples differ", name, s, psnr, differing,
                    a.count))
            #expect(differing > 0, "bf16 changed nothing: it did not run")
            #expect(psnr >= 45)
            // Back to f32: the copies are dropped and the float32 bits return.
            #expect(try outputs(model, .f32, scale: s) == a)
        }
    }

    @Test(.enabled(if: Precision.nativeBF16.available, "no native bf16 on this CPU (\(Precision.nativeBF16.isa))"))
    func builtInModelGate() throws {
        try Self.gate(try GSASRModel.bundledDefault(), name: "built-in model")
    }

    @Test(
        .enabled(if: Precision.nativeBF16.available, "no native bf16 on this CPU (\(Precision.nativeBF16.isa))"),
        .enabled(if: Fixtures.paperAvailable, "needs ../shared/golden/edsr_paper (present in CI)"))
    func paperConfigGate() throws {
        try Self.gate(
            try GSASRModel.load(directory: Fixtures.sharedGolden.appendingPathComponent("edsr_paper")),
            name: "paper config")
    }

    /// What a request becomes on this CPU: never bf16 silently where the CPU lacks it.
    @Test func resolution() throws {
        #expect(try Precision.f32.resolve(qualityGateHolds: true).precision == .f32)
        let noGate = try Precision.auto.resolve(qualityGateHolds: false)
        #expect(noGate.precision == .f32 && noGate.note != nil)
        let model = try GSASRModel.bundledDefault()
        #expect(model.bf16QualityGateHolds)
        if Precision.nativeBF16.available {
            #expect(try Precision.bf16.resolve(qualityGateHolds: false).precision == .bf16)
            #expect(try Precision.auto.resolve(qualityGateHolds: true).precision == .bf16)
            #expect(try model.setPrecision(.auto, qualityGateHolds: model.bf16QualityGateHolds).precision == .bf16)
        } else {
            #expect(throws: PrecisionError.self) { try Precision.bf16.resolve(qualityGateHolds: true) }
            #expect(throws: PrecisionError.self) { try model.setPrecision(.bf16) }
            let auto = try Precision.auto.resolve(qualityGateHolds: true)
            #expect(auto.precision == .f32 && auto.note?.contains("no native bf16") == true)
        }
        try model.setPrecision(.f32)
        #expect(model.precision == .f32)
    }
}
