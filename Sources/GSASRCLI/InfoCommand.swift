import ArgumentParser
import Foundation
import GSASR
import GSASRBench

/// `gsasr info`: the BLAS library, its version and kernel set, the CPU's vector extensions and
/// the thread counts; `--sgemm` also measures the sgemm peak under each kernel set; with a model
/// (`-m` or `--encoder/--decoder`), what the architecture registry recognised in it.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the BLAS, its kernel set, the CPU's vector extensions and the threads; with -m, the model.")

    @OptionGroup var modelOptions: ModelOptions

    @Flag(help: "Also measure sgemm (2048^3) with the kernels in use and under each kernel set the CPU supports.")
    var sgemm = false

    @Flag(help: .hidden)
    var sgemmOnly = false

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        if modelOptions.model != nil || modelOptions.encoder != nil || modelOptions.decoder != nil {
            let (model, name) = try modelOptions.load()
            let summary = ModelSummary(model, name: name)
            print(json ? String(decoding: try enc.encode(summary), as: UTF8.self) : summary.text)
            return
        }
        if sgemmOnly {
            let f = BLASBench.KernelSetFigure(
                coreType: BLAS.info.coreType ?? "", coreName: BLAS.info.coreName, gflops: BLASBench.sgemmGFLOPS())
            print(String(decoding: try enc.encode(f), as: UTF8.self))
            return
        }
        if sgemm {
            let r = BLASBench.run(executable: Bundle.main.executablePath)
            print(
                json
                    ? String(decoding: try enc.encode(r), as: UTF8.self)
                    : "gsasr \(GSASRVersion.string)\n" + BLASBench.format(r))
            return
        }
        if json {
            print(String(decoding: try enc.encode(BLAS.info), as: UTF8.self))
        } else {
            print("gsasr \(GSASRVersion.string)\n" + BLASBench.describe(BLAS.info, threads: Parallel.threadCount))
        }
    }
}

/// What `gsasr info -m` reports: each network's registered architecture, its constructor
/// arguments and parameter count (from the declarations), and what the pipeline derives.
struct ModelSummary: Encodable {
    struct Network: Encodable {
        var type: String
        var arguments: [String: ArgumentValue]
        var parameters: Int
    }
    var name: String
    var encoder: Network
    var decoder: Network
    /// LR pixels an attention input sees on each side (encoder reach + img_feat_proj's two convs).
    var encoderReach: Int
    var denominator: Int
    var registeredEncoders: [String]
    var registeredDecoders: [String]

    init(_ m: GSASRModel, name: String) {
        self.name = name
        let d = m.decoder.config
        encoder = Network(
            type: type(of: m.encoder).officialName, arguments: m.encoder.configArguments,
            parameters: m.encoderState.parameterCount)
        decoder = Network(
            type: d.officialName,
            arguments: d.argumentValues.mapValues { .int($0) },
            parameters: m.decoderState.parameterCount)
        encoderReach = m.encoder.reach + 2
        denominator = m.denominator
        registeredEncoders = Architectures.encoders.map { $0.officialName }
        registeredDecoders = ModelConfigFile.decoderTypes
    }

    var text: String {
        func args(_ a: [String: ArgumentValue]) -> String { a.keys.sorted().map { "\($0)=\(a[$0]!)" }.joined(separator: " ") }
        return """
            model \(name)
              encoder \(encoder.type): \(encoder.parameters) parameters; \(args(encoder.arguments))
              decoder \(decoder.type): \(decoder.parameters) parameters; \(args(decoder.arguments))
              reach \(encoderReach) LR pixels before the attention; inputs padded to a multiple of \(denominator)
              registered architectures: encoders \(registeredEncoders.joined(separator: ", ")); decoders \(registeredDecoders.joined(separator: ", "))
            """
    }
}
