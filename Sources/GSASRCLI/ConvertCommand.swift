import ArgumentParser
import Foundation
import GSASR

/// `gsasr convert`: writes a model's checkpoints as `.safetensors` (plain tensors, no pickle),
/// after checking that they load strictly as a GSASR model.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert encoder/decoder checkpoints (.pth) to .safetensors in a new model folder.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(
        name: .shortAndLong,
        help: "Output folder (created); receives encoder.safetensors, decoder.safetensors and config.json if present.")
    var output: String

    func run() throws {
        let (encURL, decURL) = try modelOptions.checkpointURLs()
        // Refuse to convert anything that is not a loadable model.
        _ = try modelOptions.load()
        let out = URL(fileURLWithPath: output)
        let fm = FileManager.default
        for src in [encURL, decURL] where src.deletingLastPathComponent().standardizedFileURL == out.standardizedFileURL
        {
            throw CLIError(
                "output folder '\(output)' holds the input checkpoint \(src.lastPathComponent); choose another")
        }
        try fm.createDirectory(at: out, withIntermediateDirectories: true)
        for (src, name) in [(encURL, "encoder"), (decURL, "decoder")] {
            let sd = try GSASRModel.loadStateDict(src, paramKey: modelOptions.paramKey)
            try Safetensors.save(sd, to: out.appendingPathComponent("\(name).safetensors"))
        }
        let cfg = decURL.deletingLastPathComponent().appendingPathComponent("config.json")
        let dst = out.appendingPathComponent("config.json")
        if fm.fileExists(atPath: cfg.path) && !fm.fileExists(atPath: dst.path) {
            try fm.copyItem(at: cfg, to: dst)
        }
        print("wrote \(out.path)/encoder.safetensors, decoder.safetensors")
    }
}
