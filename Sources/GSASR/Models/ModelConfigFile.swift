import Foundation

/// The `config.json` beside a model's checkpoints, read as untrusted data: its size is capped
/// before anything is parsed, and every key the loader uses is checked for its type and range,
/// with a one-line error naming the key, what was expected and what was found.
///
/// Layout (the golden and bundled models'): `{"encoder": {"type": "EDSRNOUP", ...},
/// "decoder": {"type": "Fea2GS", "channel": 180, ...}, "denominator": 12, ...}`. Other top-level
/// keys (parameter counts, notes) are allowed and ignored. Inside `"decoder"` only the official
/// `Fea2GS` constructor arguments are allowed; a flat file without `"decoder"` is read as those
/// arguments at the top level (unknown top-level keys are then ignored).
public struct ModelConfigFile: Sendable, Equatable {
    /// The decoder's integer constructor arguments that were given (official names).
    public var decoderInts: [String: Int] = [:]
    /// `denominator`, when given.
    public var denominator: Int?
    /// The `encoder.type` it names (checked against the registry), when given.
    public var encoderType: String?
    /// The `decoder.type` it names, when given (checked against the checkpoint's layout).
    public var decoderType: String?
    /// The encoder's numeric constructor arguments that a state dict does not determine
    /// (`conv_scale`, `img_size`), when given.
    public var encoderNumbers: [String: Double] = [:]

    /// Largest accepted file. Real ones are 1-5 KB.
    public static let maxBytes = 1 << 20
    /// Largest accepted integer (sizes, counts, the denominator).
    public static let maxInt = 1 << 16

    /// The `Fea2GS` integer arguments, in the official constructor's order.
    public static let decoderIntKeys = Fea2GSConfig.arguments.map { $0.name }
    /// The other `Fea2GS` arguments a file may state: each must have the value every released
    /// model uses (`gs_up_factor` 1, `img_range` 1), or be the type name.
    static let decoderFixedKeys = ["type", "gs_up_factor", "img_range", "rope_mixed", "rope_theta"]
    /// The decoder classes this version runs (``Fea2GS`` declares both).
    public static let decoderTypes = ["Fea2GS", "Fea2GS_ROPE_AMP"]

    public init() {}

    /// Reads `url` (a regular file of at most ``maxBytes``) and checks it.
    public static func read(_ url: URL) throws -> ModelConfigFile {
        try parse(SmallFile.read(url.path, maxBytes: maxBytes, label: "config.json"))
    }

    /// Checks the bytes of a config file (see the type's documentation).
    public static func parse(_ data: Data) throws -> ModelConfigFile {
        func fail(_ s: String) -> ModelLoadError { ModelLoadError("config.json: \(s)") }
        guard data.count <= maxBytes else { throw fail("\(data.count) bytes, over the limit of \(maxBytes) bytes") }
        guard !data.isEmpty else { throw fail("the file is empty") }
        guard String(data: data, encoding: .utf8) != nil else { throw fail("the file is not UTF-8 text") }
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data, options: []) } catch {
            throw fail("not valid JSON (\(Self.reason(error)))")
        }
        guard let root = object as? [String: Any] else {
            throw fail("the top level is \(describe(object)), expected an object")
        }
        var file = ModelConfigFile()
        let decoder: [String: Any]
        let prefix: String
        if let d = root["decoder"] {
            guard let obj = d as? [String: Any] else { throw fail("'decoder' is \(describe(d)), expected an object") }
            decoder = obj
            prefix = "decoder."
            let known = Set(decoderIntKeys + decoderFixedKeys)
            if let unknown = obj.keys.sorted().first(where: { !known.contains($0) }) {
                throw fail(
                    "unknown key 'decoder.\(unknown)' (Fea2GS takes \((decoderIntKeys + ["gs_up_factor", "img_range"]).joined(separator: ", ")))"
                )
            }
        } else {
            decoder = root
            prefix = ""
        }
        for key in decoderIntKeys {
            if let v = decoder[key] { file.decoderInts[key] = try positiveInt(v, key: prefix + key) }
        }
        if let t = decoder["type"] {
            guard let s = t as? String else { throw fail("'\(prefix)type' is \(describe(t)), expected a string") }
            guard Self.decoderTypes.contains(s) else {
                throw fail("'\(prefix)type' is '\(s)': this version runs \(Self.decoderTypes.joined(separator: ", "))")
            }
            file.decoderType = s
        }
        if let v = decoder["rope_mixed"] {
            // rope_mixed=False would freeze the frequencies at their initial values (no release uses it).
            guard let b = v as? NSNumber, isBoolean(b), b.boolValue else {
                throw fail("'\(prefix)rope_mixed' is \(describe(v)): only true is supported (every released model)")
            }
        }
        if let v = decoder["rope_theta"], number(v) == nil {
            throw fail("'\(prefix)rope_theta' is \(describe(v)), expected a number")
        }
        for key in ["gs_up_factor", "img_range"] {
            guard let v = decoder[key] else { continue }
            guard let n = number(v) else { throw fail("'\(prefix)\(key)' is \(describe(v)), expected the number 1") }
            guard n == 1 else { throw fail("'\(prefix)\(key)' is \(n): only 1 is supported (every released model)") }
        }
        if let e = root["encoder"] {
            guard let obj = e as? [String: Any] else { throw fail("'encoder' is \(describe(e)), expected an object") }
            if let t = obj["type"] {
                guard let s = t as? String else { throw fail("'encoder.type' is \(describe(t)), expected a string") }
                guard Architectures.encoders.contains(where: { $0.officialName == s }) else {
                    throw fail(
                        "'encoder.type' is '\(s)': this version runs \(Architectures.encoders.map { $0.officialName }.joined(separator: ", "))"
                    )
                }
                file.encoderType = s
            }
            for key in ["num_in_ch", "num_out_ch", "num_feat", "num_block", "upscale"] {
                if let v = obj[key] { _ = try positiveInt(v, key: "encoder." + key, allowZero: key == "num_block") }
            }
            if let v = obj["img_size"] { file.encoderNumbers["img_size"] = Double(try positiveInt(v, key: "encoder.img_size")) }
            if let v = obj["conv_scale"] {
                guard let n = number(v), n.isFinite, abs(n) <= 1e6 else {
                    throw fail("'encoder.conv_scale' is \(describe(v)), expected a finite number")
                }
                file.encoderNumbers["conv_scale"] = n
            }
        }
        if let d = root["denominator"] { file.denominator = try positiveInt(d, key: "denominator") }
        return file
    }

    /// A JSON number that is a whole number in 1...maxInt (0 too with `allowZero`).
    static func positiveInt(_ v: Any, key: String, allowZero: Bool = false) throws -> Int {
        let range = (allowZero ? 0 : 1)...maxInt
        guard let n = number(v), n.isFinite, n == n.rounded(), n >= Double(range.lowerBound),
            n <= Double(range.upperBound)
        else {
            throw ModelLoadError(
                "config.json: '\(key)' is \(describe(v)), expected an integer in \(range.lowerBound)...\(range.upperBound)"
            )
        }
        return Int(n)
    }

    /// The value of a JSON number (not a boolean, which Foundation also bridges to NSNumber).
    static func number(_ v: Any) -> Double? {
        guard let n = v as? NSNumber, !isBoolean(n) else { return nil }
        return n.doubleValue
    }

    /// Whether JSONSerialization made this NSNumber from `true` or `false` (its type code is
    /// `c`, a C char/BOOL; numbers are `q` or `d`). `as? Bool` cannot tell: it bridges 0 and 1.
    static func isBoolean(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

    /// How a JSON value is named in an error: its kind, with a short rendering of scalars.
    static func describe(_ v: Any) -> String {
        if v is [Any] { return "an array" }
        if v is [String: Any] { return "an object" }
        if v is NSNull { return "null" }
        if let s = v as? String { return "the string \"\(s.prefix(40))\"" }
        if let n = v as? NSNumber { return isBoolean(n) ? (n.boolValue ? "true" : "false") : "\(n)" }
        return "\(type(of: v))"
    }

    /// The first line of a parser error, without Foundation's boilerplate.
    static func reason(_ error: Error) -> String {
        let ns = error as NSError
        let detail = (ns.userInfo[NSDebugDescriptionErrorKey] as? String) ?? ns.localizedDescription
        return String(detail.split(separator: "\n").first ?? "").prefix(120).description
    }
}
