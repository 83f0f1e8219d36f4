import Foundation
import GSASR
import Testing

/// The other released families through the binary: `gsasr info -m`, an upscale, the Gaussian
/// export, a tiled run, and training refused plainly (fixtures of Tests/GSASRTests/Fixtures/zoo).
@Suite struct ZooCLITests {
    static let zoo = CLI.packageRoot.appendingPathComponent("Tests/GSASRTests/Fixtures/zoo")

    func run(_ args: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = CLI.binary
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self))
    }

    @Test(arguments: [
        ("hatl_small", "HATNOUP_ROPE_AMP", "Fea2GS_ROPE_AMP", 16), ("swinir_small", "SwinIRNOUP", "Fea2GS", 24),
        ("rdn_small", "RDNNOUP", "Fea2GS", 12),
    ])
    func infoUpscaleExportAndTiles(model: String, encoder: String, decoder: String, denominator: Int) throws {
        let dir = Self.zoo.appendingPathComponent(model).path
        let (s, text) = try run(["info", "-m", dir])
        #expect(s == 0)
        #expect(text.contains("encoder \(encoder):") && text.contains("decoder \(decoder):"))
        #expect(text.contains("inputs padded to a multiple of \(denominator)"))
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("zoo-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let out = tmp.appendingPathComponent("out.png"), tiled = tmp.appendingPathComponent("tiled.png")
        let (u, ut) = try run(["-m", dir, "-i", CLI.photo.path, "-o", out.path, "-s", "3.7", "-q"])
        #expect(u == 0, "\(ut)")
        #expect(FileManager.default.fileExists(atPath: out.path))
        let (t, tt) = try run(["-m", dir, "-i", CLI.photo.path, "-o", tiled.path, "-s", "2", "-q", "-t", "24"])
        #expect(t == 0, "\(tt)")
        let gs = tmp.appendingPathComponent("g.safetensors")
        let (g, gt) = try run(["gaussians", "-m", dir, "-i", CLI.photo.path, "-o", gs.path, "-s", "2", "-q"])
        #expect(g == 0, "\(gt)")
        #expect(FileManager.default.fileExists(atPath: gs.path))
    }

    @Test func trainingANewFamilyIsRefusedPlainly() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("zoo-train-\(UUID().uuidString).yml")
        try "network_g:\n  type: SwinIRNOUP\n  embed_dim: 180\n".write(to: tmp, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let (s, text) = try run(["train", tmp.path])
        print(text)
        #expect(s != 0)
        #expect(text.contains("training SwinIRNOUP is not supported yet"))
        #expect(text.split(separator: "\n").count == 1)
    }
}
