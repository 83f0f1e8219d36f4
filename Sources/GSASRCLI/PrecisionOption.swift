import ArgumentParser
import Foundation
import GSASR

extension Precision: ExpressibleByArgument {}

/// `--precision f32|bf16|auto`, shared by upscale, gaussians, eval, serve and bench.
struct PrecisionOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Arithmetic of the decoder's large products: f32, bf16 or auto.",
            discussion:
                "bf16 rounds the inputs of the decoder's large matrix products to bf16 and accumulates in float32 (oneDNN); it needs a CPU that multiplies bf16 natively (AVX512_BF16 or AMX; `gsasr info` says) and is refused elsewhere. auto is bf16 where the CPU has it and the model's bf16 quality was measured (the built-in model), else f32 with a note. Set GSASR_NO_BF16=1 to behave as on a CPU without bf16."
        ))
    var precision: Precision = .f32

    init() {}
    init(precision: Precision) { self.precision = precision }

    /// Refuses `bf16` on a CPU without native bf16 before any work (one line, nothing written).
    func check() throws {
        do { _ = try precision.resolve(qualityGateHolds: false) } catch let e as PrecisionError {
            throw CLIError(e.description)
        }
    }

    /// Switches `model` to the requested precision; a note (auto falling back) goes to stderr.
    @discardableResult
    func apply(to model: GSASRModel, quiet: Bool = false) throws -> Precision {
        let (p, note) = try model.setPrecision(precision, qualityGateHolds: model.bf16QualityGateHolds)
        if let note, !quiet { FileHandle.standardError.write(Data((note + "\n").utf8)) }
        return p
    }

    /// The precision a benchmark measures: auto is bf16 wherever the CPU has it.
    func resolvedForBench() throws -> Precision {
        try precision.resolve(qualityGateHolds: true).precision
    }
}
