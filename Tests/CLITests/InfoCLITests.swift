import Foundation
import GSASR
import Testing

/// `gsasr info` through the built binary, with no OPENBLAS_CORETYPE in its environment.
@Suite struct InfoCLITests {
    func run(_ args: [String], environment: [String: String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = CLI.binary
        p.arguments = args
        p.environment = environment
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self))
    }

    @Test func reportsAKernelSetMatchingTheCPU() throws {
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "OPENBLAS_CORETYPE")
        let (status, text) = try run(["info", "--json"], environment: env)
        #expect(status == 0)
        let info = try JSONDecoder().decode(BLASInfo.self, from: Data(text.utf8))
        print("gsasr info: kernels \(info.coreName), chosen by \(info.coreTypeChosenBy), \(info.config)")
        let flags = CPUFeatures.flags()
        if flags.contains("avx2") && flags.contains("fma") {
            #expect(info.coreTypeChosenBy == "gsasr")
            #expect(info.coreName != "Prescott")
            // An x86 CPU: its maker and family are reported too.
            #expect(info.cpu == CPUFeatures.identity()?.description && info.cpu != nil)
        }
        // A user's choice is kept.
        env["OPENBLAS_CORETYPE"] = "PRESCOTT"
        let (s2, t2) = try run(["info", "--json"], environment: env)
        #expect(s2 == 0)
        let forced = try JSONDecoder().decode(BLASInfo.self, from: Data(t2.utf8))
        #expect(forced.coreTypeChosenBy == "user" && forced.coreName == "Prescott")
        let (s3, t3) = try run(["--version"], environment: env)
        #expect(s3 == 0 && t3.hasPrefix("gsasr "))
    }

    /// `gsasr info -m`: the registry's view of a model, parameter counts from the declarations.
    @Test func describesAModel() throws {
        let (status, text) = try run(
            ["info", "-m", CLI.smallModel.path], environment: ProcessInfo.processInfo.environment)
        print(text)
        #expect(status == 0)
        #expect(text.contains("encoder EDSRNOUP:") && text.contains("decoder Fea2GS:"))
        let model = try GSASRModel.load(directory: CLI.smallModel)
        #expect(text.contains("\(model.encoderState.parameterCount) parameters; num_block=2"))
        #expect(text.contains("\(model.decoderState.parameterCount) parameters; channel=48"))
        let (bad, _) = try run(["info", "-m", "/nonexistent"], environment: ProcessInfo.processInfo.environment)
        #expect(bad != 0)
    }
}
