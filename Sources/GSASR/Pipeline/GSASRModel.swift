import Foundation
import GSASRCheckpoint
import GSASRTensor

/// A loaded GSASR model: encoder (EDSR-baseline without upsampler) + Fea2GS decoder.
public struct GSASRModel: @unchecked Sendable {
    public let encoder: EDSRNOUP
    public let decoder: Fea2GS
    /// LR inputs are reflect-padded (bottom, right) to a multiple of this. The official
    /// inference uses 12 for EDSR and RDN; we use lcm(12, window_size) so that other decoder
    /// window sizes stay valid, or the `denominator` of config.json when given.
    public let denominator: Int

    public init(encoder: EDSRNOUP, decoder: Fea2GS, denominator: Int? = nil) throws {
        guard encoder.numFeat == decoder.config.inchannel else {
            throw ModelLoadError(
                "encoder outputs \(encoder.numFeat) channels but the decoder expects \(decoder.config.inchannel)")
        }
        guard encoder.numInChannels == 3 else {
            throw ModelLoadError("encoder expects \(encoder.numInChannels) input channels; only RGB (3) is supported")
        }
        self.encoder = encoder
        self.decoder = decoder
        let ws = decoder.config.windowSize
        let d = denominator ?? (12 / gcd(12, ws) * ws)
        guard d > 0, d % ws == 0 else {
            throw ModelLoadError("denominator \(d) is not a multiple of the decoder window size \(ws)")
        }
        self.denominator = d
    }

    /// Loads `encoder.pth`/`decoder.pth` (or `.safetensors`) and an optional `config.json`.
    public static func load(
        encoder encURL: URL, decoder decURL: URL, config configURL: URL? = nil, paramKey: String? = nil
    ) throws -> GSASRModel {
        let encSD = try loadStateDict(encURL, paramKey: paramKey)
        let decSD = try loadStateDict(decURL, paramKey: paramKey)
        var cfg = try Fea2GSConfig(inferringFrom: decSD)
        var denominator: Int? = nil
        if let configURL, FileManager.default.fileExists(atPath: configURL.path) {
            // Untrusted: size-capped and checked key by key (ModelConfigFile).
            let file = try ModelConfigFile.read(configURL)
            cfg.apply(file)
            denominator = file.denominator
        }
        let enc = try EDSRNOUP(stateDict: ParameterLoader(encSD, label: encURL.lastPathComponent))
        let dec = try Fea2GS(stateDict: ParameterLoader(decSD, label: decURL.lastPathComponent), config: cfg)
        return try GSASRModel(encoder: enc, decoder: dec, denominator: denominator)
    }

    /// Loads a model directory holding encoder/decoder checkpoints (`.pth` or `.safetensors`)
    /// and optionally `config.json`.
    public static func load(directory: URL, paramKey: String? = nil) throws -> GSASRModel {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: directory.path, isDirectory: &isDir), isDir.boolValue else {
            throw ModelLoadError("model directory '\(directory.path)' does not exist")
        }
        return try load(
            encoder: checkpoint(in: directory, named: "encoder"), decoder: checkpoint(in: directory, named: "decoder"),
            config: directory.appendingPathComponent("config.json"), paramKey: paramKey)
    }

    /// `<directory>/<stem>.pth`, else `<stem>.safetensors`.
    public static func checkpoint(in directory: URL, named stem: String) throws -> URL {
        for ext in ["pth", "safetensors"] {
            let u = directory.appendingPathComponent("\(stem).\(ext)")
            if FileManager.default.fileExists(atPath: u.path) { return u }
        }
        throw ModelLoadError("model directory '\(directory.path)' has no \(stem).pth or \(stem).safetensors")
    }

    /// Reads a `.pth` or `.safetensors` state dict (by extension).
    public static func loadStateDict(_ url: URL, paramKey: String?) throws -> StateDict {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw ModelLoadError("checkpoint '\(url.path)' does not exist")
        }
        if url.pathExtension.lowercased() == "safetensors" { return try Safetensors.load(url) }
        return try PthReader.load(url, paramKey: paramKey)
    }
}

func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
