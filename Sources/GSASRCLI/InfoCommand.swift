import ArgumentParser
import Foundation
import GSASR
import GSASRBench

/// `gsasr info`: the BLAS library, its version and kernel set, the CPU's vector extensions and
/// the thread counts; `--sgemm` also measures the sgemm peak under each kernel set.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the BLAS, its kernel set, the CPU's vector extensions and the threads.")

    @Flag(help: "Also measure sgemm (2048^3) with the kernels in use and under each kernel set the CPU supports.")
    var sgemm = false

    @Flag(help: .hidden)
    var sgemmOnly = false

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        if sgemmOnly {
            let f = BLASBench.KernelSetFigure(
                coreType: BLAS.info.coreType ?? "", coreName: BLAS.info.coreName, gflops: BLASBench.sgemmGFLOPS())
            print(String(decoding: try enc.encode(f), as: UTF8.self))
            return
        }
        if sgemm {
            let r = BLASBench.run(executable: Bundle.main.executablePath)
            print(json ? String(decoding: try enc.encode(r), as: UTF8.self) : "gsasr \(GSASRVersion.string)\n" + BLASBench.format(r))
            return
        }
        if json {
            print(String(decoding: try enc.encode(BLAS.info), as: UTF8.self))
        } else {
            print("gsasr \(GSASRVersion.string)\n" + BLASBench.describe(BLAS.info, threads: Parallel.threadCount))
        }
    }
}
