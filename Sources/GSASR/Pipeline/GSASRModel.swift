import Foundation
import GSASRCheckpoint
import GSASRTensor

/// A loaded GSASR model: an encoder (any registered ``EncoderArchitecture``) and the Fea2GS
/// decoder, with their state-dict entries (from their declarations).
public struct GSASRModel: @unchecked Sendable {
    public let encoder: any EncoderArchitecture
    public let decoder: Fea2GS
    /// The official state dicts, in `state_dict()` order (parameters and buffers, one copy:
    /// each entry's tensor is the model's own).
    public let encoderState: [StateEntry]
    public let decoderState: [StateEntry]
    /// LR inputs are reflect-padded (bottom, right) to a multiple of this: the `denominator` of
    /// config.json when given, else lcm(encoder window, decoder window) for the attention
    /// encoders and lcm(12, decoder window) for the convolutional ones — the official scripts'
    /// 12 (EDSR, RDN), 24 (paper SwinIR) and 16 (enhanced SwinIR, HAT-L) for every release.
    public let denominator: Int

    public init(
        encoder: any EncoderArchitecture, encoderState: [StateEntry], decoder: Fea2GS, decoderState: [StateEntry],
        denominator: Int? = nil
    ) throws {
        guard encoder.outChannels == decoder.config.inchannel else {
            throw ModelLoadError(
                "encoder outputs \(encoder.outChannels) channels but the decoder expects \(decoder.config.inchannel)")
        }
        guard encoder.inChannels == 3 else {
            throw ModelLoadError("encoder expects \(encoder.inChannels) input channels; only RGB (3) is supported")
        }
        self.encoder = encoder
        self.decoder = decoder
        self.encoderState = encoderState
        self.decoderState = decoderState
        let ws = decoder.config.windowSize
        let base = encoder.windowSize ?? 12
        let d = denominator ?? (base / gcd(base, ws) * ws)
        guard d > 0, d % ws == 0 else {
            throw ModelLoadError("denominator \(d) is not a multiple of the decoder window size \(ws)")
        }
        if let ew = encoder.windowSize, d % ew != 0 {
            throw ModelLoadError("denominator \(d) is not a multiple of the encoder window size \(ew)")
        }
        self.denominator = d
    }

    /// The precision the decoder's large products run in now (`Precision`).
    public var precision: Precision { decoder.precision }

    /// Whether this model's bf16 quality was measured and passed the gates of issue 26 (bf16
    /// against f32 ≥ 45 dB on its outputs, PSNR-Y within 0.05 dB on the validation photos at
    /// every scale of its card): true for the built-in model (Models/default/README.md, "bf16"),
    /// which lets `--precision auto` choose bf16 for it. Other models run auto in f32.
    public var bf16QualityGateHolds = false

    /// Switches the decoder's large products to `requested` (``Fea2GS/setPrecision(_:)``):
    /// `.bf16` is refused with a one-line error on a CPU without native bf16; `.auto` is bf16
    /// there only when `qualityGateHolds` (this model's bf16 quality was measured and passed),
    /// else f32 with the returned note. Returns the precision now in use and that note. The
    /// encoder stays float32 (a few percent of the time for the EDSR models).
    @discardableResult
    public func setPrecision(_ requested: Precision, qualityGateHolds: Bool = false) throws -> (
        precision: Precision, note: String?
    ) {
        let (p, note) = try requested.resolve(qualityGateHolds: qualityGateHolds)
        try decoder.setPrecision(p)
        return (p, note)
    }

    /// Builds a model from two state dicts: the encoder recognised by the registry (or the
    /// one `encoderType` names), the decoder with `config` (inferred from the shapes when nil).
    public static func load(
        encoder encSD: StateDict, encoderLabel: String, decoder decSD: StateDict, decoderLabel: String,
        config: Fea2GSConfig? = nil, encoderType: String? = nil, denominator: Int? = nil,
        encoderNumbers: [String: Double] = [:], decoderType: String? = nil
    ) throws -> GSASRModel {
        let (enc, encState) = try Architectures.loadEncoder(
            encSD, label: encoderLabel, type: encoderType, numbers: encoderNumbers)
        let cfg = try config ?? Fea2GSConfig(inferringFrom: decSD)
        if let decoderType, decoderType != cfg.officialName {
            throw ModelLoadError(
                "config.json names decoder type '\(decoderType)' but \(decoderLabel) has a \(cfg.officialName) layout")
        }
        let s = ParameterSource(loading: decSD, label: decoderLabel)
        let dec = try Fea2GS(s, config: cfg)
        try s.finish()
        return try GSASRModel(
            encoder: enc, encoderState: encState, decoder: dec, decoderState: s.entries, denominator: denominator)
    }

    /// A from-scratch model: each network's declaration draws its values (encoder first, then
    /// the decoder, from one generator seeded with `seed`).
    public static func initialized<E: EncoderArchitecture>(
        _ encoderType: E.Type, encoder: E.Config, decoder: Fea2GSConfig, seed: UInt64
    ) throws -> GSASRModel {
        let es = ParameterSource(initializing: SplitMix64(seed: seed))
        let enc = try E(es, config: encoder)
        let ds = ParameterSource(initializing: es.generator!)
        let dec = try Fea2GS(ds, config: decoder)
        return try GSASRModel(encoder: enc, encoderState: es.entries, decoder: dec, decoderState: ds.entries)
    }

    /// Builds a model from two state dicts and a checked config file (`config.json`'s decoder
    /// arguments, denominator, types and encoder numbers).
    public static func load(
        encoder encSD: StateDict, encoderLabel: String, decoder decSD: StateDict, decoderLabel: String,
        configFile file: ModelConfigFile?
    ) throws -> GSASRModel {
        var cfg = try Fea2GSConfig(inferringFrom: decSD)
        if let file { cfg.apply(file) }
        return try load(
            encoder: encSD, encoderLabel: encoderLabel, decoder: decSD, decoderLabel: decoderLabel, config: cfg,
            encoderType: file?.encoderType, denominator: file?.denominator, encoderNumbers: file?.encoderNumbers ?? [:],
            decoderType: file?.decoderType)
    }

    /// Loads `encoder.pth`/`decoder.pth` (or `.safetensors`) and an optional `config.json`.
    public static func load(
        encoder encURL: URL, decoder decURL: URL, config configURL: URL? = nil, paramKey: String? = nil
    ) throws -> GSASRModel {
        let encSD = try loadStateDict(encURL, paramKey: paramKey)
        let decSD = try loadStateDict(decURL, paramKey: paramKey)
        var file: ModelConfigFile? = nil
        if let configURL, FileManager.default.fileExists(atPath: configURL.path) {
            // Untrusted: size-capped and checked key by key (ModelConfigFile).
            file = try ModelConfigFile.read(configURL)
        }
        return try load(
            encoder: encSD, encoderLabel: encURL.lastPathComponent, decoder: decSD,
            decoderLabel: decURL.lastPathComponent, configFile: file)
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
