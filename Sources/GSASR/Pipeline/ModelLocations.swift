import Foundation

/// Where models are found by name (`gsasr -m NAME`, `gsasr models`, a library user's
/// `ModelLocations.resolve`).
///
/// A model is a folder holding `encoder.pth`/`encoder.safetensors`, `decoder.*` and, optionally,
/// `config.json`. `-m` takes a folder path, or a name looked up in the search path:
/// 1. each folder of `$GSASR_MODELS` (colon-separated), in order;
/// 2. the per-user folder `$XDG_DATA_HOME/gsasr/models`, or `~/.local/share/gsasr/models` when
///    `XDG_DATA_HOME` is unset (the XDG base-directory convention).
/// The name `default` is the model built into the binary (``GSASRModel/bundledDefault()``) unless
/// a folder of that name comes first in the search path.
public enum ModelLocations {
    /// A resolved `-m` argument.
    public enum Location: Equatable, Sendable {
        /// The model built into the binary.
        case builtIn
        /// A model folder.
        case folder(URL)
    }

    /// The folders searched for names, in order.
    public static func searchPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> [URL] {
        var dirs: [URL] = []
        if let list = environment["GSASR_MODELS"] {
            dirs += list.split(separator: ":").filter { !$0.isEmpty }.map { URL(fileURLWithPath: String($0)) }
        }
        if let xdg = environment["XDG_DATA_HOME"], !xdg.isEmpty {
            dirs.append(URL(fileURLWithPath: xdg).appendingPathComponent("gsasr/models"))
        } else if let home = environment["HOME"], !home.isEmpty {
            dirs.append(URL(fileURLWithPath: home).appendingPathComponent(".local/share/gsasr/models"))
        }
        return dirs
    }

    /// Whether `dir` holds an encoder and a decoder checkpoint.
    public static func isModelFolder(_ dir: URL) -> Bool {
        let fm = FileManager.default
        func has(_ stem: String) -> Bool {
            ["pth", "safetensors"].contains { fm.fileExists(atPath: dir.appendingPathComponent("\(stem).\($0)").path) }
        }
        return has("encoder") && has("decoder")
    }

    /// `argument` as a folder path when one exists there; else a name in the search path; else
    /// `default` as the built-in model. Throws a one-line error listing where it looked.
    public static func resolve(
        _ argument: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> Location {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: argument, isDirectory: &isDir), isDir.boolValue {
            return .folder(URL(fileURLWithPath: argument))
        }
        let path = searchPath(environment: environment)
        if !argument.contains("/"), !argument.isEmpty, argument != ".", argument != ".." {
            if let dir = path.map({ $0.appendingPathComponent(argument) }).first(where: isModelFolder) {
                return .folder(dir)
            }
            if argument == "default" { return .builtIn }
        }
        let looked = path.map(\.path).joined(separator: ", ")
        throw ModelLoadError(
            "model '\(argument)' is neither a folder nor a model name in the search path (\(looked.isEmpty ? "empty" : looked); see `gsasr models`)"
        )
    }

    /// The named models of the search path: (name, folder), the first of each name winning, in
    /// search-path order and then by name.
    public static func installed(environment: [String: String] = ProcessInfo.processInfo.environment) -> [(
        name: String, folder: URL
    )] {
        var seen = Set<String>()
        var out: [(String, URL)] = []
        for dir in searchPath(environment: environment) {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            for n in names.sorted() where !seen.contains(n) {
                let u = dir.appendingPathComponent(n)
                if isModelFolder(u) {
                    seen.insert(n)
                    out.append((n, u))
                }
            }
        }
        return out
    }
}
