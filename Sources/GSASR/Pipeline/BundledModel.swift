import CDefaultModel
import Foundation
import GSASRCheckpoint

extension GSASRModel {
    /// The project's default model (`Models/default`: EDSR-baseline encoder at 48 features,
    /// trained with `gsasr train` on the allowed photos; see its README), built into the library:
    /// its files are embedded in the binary at build time, so a program that links `GSASR` (the
    /// `gsasr` tool too) needs no model folder beside it.
    public static func bundledDefault() throws -> GSASRModel {
        func bytes(_ get: (UnsafeMutablePointer<Int>) -> UnsafePointer<UInt8>?) -> Data {
            var n = 0
            guard let p = get(&n) else { return Data() }
            return Data(bytes: p, count: n)
        }
        let enc = bytes { gsasr_default_model_encoder($0) }
        let dec = bytes { gsasr_default_model_decoder($0) }
        let cfg = bytes { gsasr_default_model_config($0) }
        var model = try load(
            encoder: Safetensors.load(data: enc, name: "encoder.safetensors (built in)"),
            encoderLabel: "encoder.safetensors (built in)",
            decoder: Safetensors.load(data: dec, name: "decoder.safetensors (built in)"),
            decoderLabel: "decoder.safetensors (built in)", configFile: ModelConfigFile.parse(cfg))
        // Its bf16 quality was measured against f32 (Models/default/README.md, "bf16"): ≥ 45 dB
        // between the outputs, PSNR-Y within 0.05 dB at every scale of its card.
        model.bf16QualityGateHolds = true
        return model
    }
}
