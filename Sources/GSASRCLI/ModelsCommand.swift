import ArgumentParser
import Foundation
import GSASR

/// `gsasr models`: the models `-m NAME` can name — the built-in one and each folder of the
/// search path (`ModelLocations`) — with their architectures, parameter counts and places.
struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the models -m NAME finds: the built-in default, then $GSASR_MODELS and ~/.local/share/gsasr/models.")

    func run() throws {
        print("search path: " + ModelLocations.searchPath().map(\.path).joined(separator: ", "))
        var rows: [[String]] = [["name", "architecture", "parameters", "where"]]
        func row(_ name: String, _ load: () throws -> GSASRModel, _ place: String) {
            do {
                let m = try load()
                rows.append([
                    name, "\(type(of: m.encoder).officialName) + \(m.decoder.config.officialName)",
                    "\(m.encoderState.parameterCount + m.decoderState.parameterCount)", place,
                ])
            } catch {
                rows.append([name, "unreadable: \(error)", "-", place])
            }
        }
        let installed = ModelLocations.installed()
        if !installed.contains(where: { $0.name == "default" }) {
            row("default", { try GSASRModel.bundledDefault() }, "built into gsasr")
        }
        for (name, folder) in installed { row(name, { try GSASRModel.load(directory: folder) }, folder.path) }
        let widths = (0..<4).map { c in rows.map { $0[c].count }.max() ?? 0 }
        for r in rows {
            print((0..<4).map { c in c == 3 ? r[c] : r[c].padding(toLength: widths[c], withPad: " ", startingAt: 0) }
                .joined(separator: "  "))
        }
    }
}
