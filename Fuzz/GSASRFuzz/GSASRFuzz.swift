import Foundation
import GSASR
import GSASRCheckpoint
import GSASRImage

/// libFuzzer harness for the parsers of untrusted input. `GSASR_FUZZ_TARGET` picks one:
/// - `image`: PNG/JPEG bytes (uploads) through `ImageIO.decode` (headers checked before allocation);
/// - `tiff`: TIFF bytes through `ImageIO.decode` (libtiff behind tiff_codec.c, our Exif reader);
/// - `heif`: HEIC and AVIF bytes through `ImageIO.decode` (libheif; the Exif item);
/// - `exif`: an Exif block through `ExifMetadata.parse`, then, when it parses, written into a
///   2x2 TIFF (the Exif and GPS IFDs re-laid) and a PNG in /dev/shm;
/// - `safetensors`: checkpoints and Gaussian exports through `Safetensors.loadWithMetadata`;
/// - `pth`: torch.save zips through `PthReader.load` (the restricted pickle machine);
/// - `config`: a model folder's `config.json` through `ModelConfigFile.parse`.
/// The two checkpoint readers open files, so their input goes through a per-process file in
/// /dev/shm. Any outcome but a crash, a sanitizer report or a hang is a pass: errors are expected.
enum Harness: String {
    case image, tiff, heif, exif, safetensors, pth, config
    static let current = Harness(rawValue: ProcessInfo.processInfo.environment["GSASR_FUZZ_TARGET"] ?? "") ?? .image
    static let file = URL(fileURLWithPath: "/dev/shm/gsasr-fuzz-\(getpid())")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(bytes: data, count: size)
    switch Harness.current {
    case .image, .tiff, .heif:
        // A small pixel limit keeps each run fast.
        _ = try? ImageIO.decode(bytes, name: "fuzz", maxPixels: 1 << 20)
    case .exif:
        guard let exif = ExifMetadata.parse([UInt8](bytes)) else { return 0 }
        let image = Image(width: 2, height: 2, pixels: [Float](repeating: 0.5, count: 12))
        for format in [OutputFormat.tiff, .png] {
            let url = Harness.file.appendingPathExtension(format.fileExtension)
            try? ImageIO.write(image, alpha: nil, grey: false, to: url, options: .init(format: format, exif: exif))
            _ = try? ImageIO.load(url)
        }
    case .safetensors:
        guard (try? bytes.write(to: Harness.file)) != nil else { return 0 }
        _ = try? Safetensors.loadWithMetadata(Harness.file)
    case .pth:
        guard (try? bytes.write(to: Harness.file)) != nil else { return 0 }
        _ = try? PthReader.load(Harness.file)
    case .config:
        _ = try? ModelConfigFile.parse(bytes)
    }
    return 0
}

// SwiftPM links an executable's entry point as `GSASRFuzz_main`; it hands over to libFuzzer's
// driver, so libFuzzer's own main is not needed.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

@_cdecl("GSASRFuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var c = argc
    var v = argv
    return LLVMFuzzerRunDriver(&c, &v, testOneInput)
}
