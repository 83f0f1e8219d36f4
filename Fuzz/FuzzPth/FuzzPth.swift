import Foundation
import GSASRCheckpoint

/// libFuzzer entry point: `.pth` bytes (torch.save zip + pickle; untrusted checkpoints) through
/// the restricted pickle machine, via a per-process file in /dev/shm (the zip reader opens files).
let path = "/dev/shm/gsasr-fuzz-pth-\(getpid()).pth"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPth(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let url = URL(fileURLWithPath: path)
    guard (try? Data(bytes: data, count: size).write(to: url)) != nil else { return 0 }
    _ = try? PthReader.load(url)
    return 0
}
