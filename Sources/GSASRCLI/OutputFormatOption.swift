import Foundation
import GSASR

/// The format of `-f` (`format`), checked against the output file's extension: when both are given they
/// must agree, when only one is given it decides. Folder mode: `-f`, else PNG.
func resolveOutputFormat(_ format: String?, for outURL: URL, folder: Bool, stream: Bool = false) throws -> OutputFormat {
    let requested = try format.map { name -> OutputFormat in
        guard let f = OutputFormat(name: name) else {
            throw CLIError("output format '\(name)' is not png, jpg (jpeg) or webp")
        }
        return f
    }
    if folder { return requested ?? .png }
    let name = outURL.lastPathComponent, ext = outURL.pathExtension
    // Standard output, a pipe or a device: the name need not say the format (default PNG).
    if stream && OutputFormat(name: ext) == nil { return requested ?? .png }
    guard !ext.isEmpty else {
        if let requested { return requested }
        throw CLIError("output '\(name)' has no extension: name it .png, .jpg, .webp, .tif or .avif, or give -f")
    }
    guard let byExtension = OutputFormat(name: ext) else {
        throw CLIError("output '\(name)' has extension .\(ext), which is not .png, .jpg/.jpeg, .webp, .tif/.tiff or .avif")
    }
    if let requested, requested != byExtension {
        throw CLIError(
            "output '\(name)' has extension .\(ext) but the format is \(requested.rawValue) (-f); name it .\(requested.fileExtension)"
        )
    }
    return byExtension
}

/// The destination of `-o` (``OutputDestination``): `-` is standard output; a symlink is
/// followed; a FIFO or character device is streamed; a folder, block device or socket is refused.
func outputDestination(_ output: String) throws -> OutputDestination {
    try OutputDestination.resolve(output == "-" ? "-" : URL(fileURLWithPath: output).path)
}
