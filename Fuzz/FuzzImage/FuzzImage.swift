import Foundation
import GSASRImage

/// libFuzzer entry point: PNG/JPEG bytes (untrusted uploads) through the decoders. Any outcome
/// but a crash, a sanitizer report or a hang is a pass: errors are expected.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(bytes: data, count: size)
    // A small pixel limit keeps each run fast; the header check happens before any allocation.
    _ = try? ImageIO.decode(bytes, name: "fuzz", maxPixels: 1 << 20)
    return 0
}
