import Foundation
import GSASRCheckpoint

/// libFuzzer entry point: safetensors bytes (untrusted checkpoints and Gaussian exports) through
/// the reader, via a per-process file in /dev/shm (the reader maps files).
let path = "/dev/shm/gsasr-fuzz-safetensors-\(getpid()).safetensors"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let url = URL(fileURLWithPath: path)
    guard (try? Data(bytes: data, count: size).write(to: url)) != nil else { return 0 }
    _ = try? Safetensors.loadWithMetadata(url)
    return 0
}
