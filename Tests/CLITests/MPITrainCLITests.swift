import Foundation
import GSASR
import GSASRTraining
import Testing

enum OpenMPI {
    static let mpirun: URL? = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].map(URL.init(fileURLWithPath:))
        .first { FileManager.default.isExecutableFile(atPath: $0.path) }
}

/// `mpirun -np N gsasr train`: data-parallel training over Open MPI, through the binary. Skipped
/// (shown as skipped) where Open MPI's `mpirun` is not installed (`openmpi-bin libopenmpi-dev`).
@Suite(.serialized, .enabled(if: OpenMPI.mpirun != nil, "Open MPI's mpirun is not installed"))
struct MPITrainCLITests {
    static var mpirun: URL? { OpenMPI.mpirun }

    /// Open MPI refuses to run as root (CI containers) without these; vader's single-copy
    /// mechanism (CMA) needs ptrace rights that containers often lack.
    static var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        env["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
        return env
    }

    static func mpi(_ ranks: Int, _ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let r = try CLI.runBytes(
            ["--oversubscribe", "-np", "\(ranks)", CLI.binary.path] + args, executable: mpirun!,
            environment: environment)
        return (r.status, String(decoding: r.stdout, as: UTF8.self), r.stderr)
    }

    static func config(photos: String, totalIter: Int, saveFreq: Int) -> String {
        TrainCLITests.config(photos: photos, totalIter: totalIter, saveFreq: saveFreq)
            .replacingOccurrences(of: "batch_size_per_gpu: 2", with: "batch_size_per_gpu: 4")
    }

    /// The checkpoint's tensors (parameters, EMA, Adam moments), without its metadata.
    static func tensors(_ run: URL) throws -> [String: [Float]] {
        let sd = try Safetensors.load(run.appendingPathComponent("checkpoint.safetensors"))
        var out: [String: [Float]] = [:]
        for k in sd.keys { out[k] = sd[k]!.floats }
        return out
    }

    static func differing(_ a: [String: [Float]], _ b: [String: [Float]]) -> Int {
        a.keys.filter { a[$0] != b[$0] }.count + b.keys.filter { a[$0] == nil }.count
    }

    /// The same global batch of 4 as 4 per rank on 1 rank, 2 on 2 and 1 on 4: weights, EMA and
    /// Adam moments bit-identical to the plain single-process trainer's after 3 iterations.
    @Test func sameBitsForOneTwoAndFourRanks() throws {
        let photos = try TrainCLITests.photoFolder()
        let cfg = try TrainCLITests.write(Self.config(photos: photos.path, totalIter: 3, saveFreq: 3))
        let plain = try CLI.tempDir().appendingPathComponent("plain")
        let r = try CLI.run(["train", cfg.path, "--run", plain.path])
        #expect(r.status == 0, "\(r.stderr)")
        let reference = try Self.tensors(plain)
        #expect(reference.count > 100)
        for ranks in [1, 2, 4] {
            let run = try CLI.tempDir().appendingPathComponent("np\(ranks)")
            let m = try Self.mpi(ranks, ["train", cfg.path, "--run", run.path, "--global-batch", "4"])
            #expect(m.status == 0, "\(m.stderr)")
            #expect(m.stdout.components(separatedBy: "iter 3/3").count == 2, "one rank reports: \(m.stdout)")
            if ranks > 1 { #expect(m.stdout.contains("batch \(4 / ranks) per rank x \(ranks) ranks = 4")) }
            let got = try Self.tensors(run)
            let n = Self.differing(reference, got)
            print("mpirun -np \(ranks) (\(4 / ranks) per rank) vs the plain trainer: \(n) of \(reference.count) tensors differ")
            #expect(n == 0)
        }
    }

    /// kill -9 of one rank mid-run (mpirun then ends the others), then --resume: the final
    /// weights equal an uninterrupted run's.
    @Test func killOneRankThenResumeIsExact() throws {
        let photos = try TrainCLITests.photoFolder()
        let cfg = try TrainCLITests.write(Self.config(photos: photos.path, totalIter: 24, saveFreq: 1))
        let straight = try CLI.tempDir().appendingPathComponent("straight")
        #expect(try Self.mpi(2, ["train", cfg.path, "--run", straight.path, "--global-batch", "4"]).status == 0)
        let run = try CLI.tempDir().appendingPathComponent("killed")
        let ckpt = run.appendingPathComponent("checkpoint.safetensors")
        let p = Process()
        p.executableURL = Self.mpirun
        p.arguments = ["--oversubscribe", "-np", "2", CLI.binary.path, "train", cfg.path, "--run", run.path, "--global-batch", "4"]
        p.environment = Self.environment
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let t0 = Date()
        while p.isRunning && Date().timeIntervalSince(t0) < 120 {
            if let d = try? Data(contentsOf: ckpt), d.count > 0 { break }
            usleep(2000)
        }
        // The ranks are mpirun's children named gsasr; kill the last one.
        let children = Self.children(of: p.processIdentifier).filter { $0.name == "gsasr" }
        let victim = children.map(\.pid).max()
        var killed = false
        if p.isRunning, let victim {
            kill(victim, SIGKILL)
            killed = true
        }
        p.waitUntilExit()
        print("killed rank pid \(victim.map(String.init) ?? "none") of \(children.count); mpirun exit \(p.terminationStatus)")
        #expect(killed, "the run finished before a rank could be killed")
        #expect(p.terminationStatus != 0)
        let trained = try Trainer.resume(from: ckpt).iteration
        #expect(trained < 24)
        let fin = try Self.mpi(2, ["train", cfg.path, "--run", run.path, "--global-batch", "4", "--resume"])
        #expect(fin.status == 0, "\(fin.stderr)")
        #expect(fin.stdout.contains("resuming 'tiny' at iteration \(trained)"))
        let n = Self.differing(try Self.tensors(straight), try Self.tensors(run))
        print("resumed after iteration \(trained): \(n) tensors differ from the uninterrupted run")
        #expect(n == 0)
    }

    /// A global batch the ranks cannot split, and a resume with another rank count: one line
    /// naming the fix, a non-zero exit, nothing written.
    @Test func badRankSetupsAreRefused() throws {
        let photos = try TrainCLITests.photoFolder()
        let cfg = try TrainCLITests.write(Self.config(photos: photos.path, totalIter: 2, saveFreq: 2))
        let run = try CLI.tempDir().appendingPathComponent("run")
        let odd = try Self.mpi(2, ["train", cfg.path, "--run", run.path, "--global-batch", "5"])
        #expect(odd.status != 0)
        #expect(odd.stderr.contains("gsasr: error: --global-batch 5 is not a positive multiple of the 2 MPI ranks"))
        #expect(!FileManager.default.fileExists(atPath: run.path))
        let plain = try CLI.run(["train", cfg.path, "--run", run.path, "--global-batch", "0"])
        #expect(plain.status != 0 && plain.stderr.contains("--global-batch 0") && !plain.stderr.contains("\n\n"))
        #expect(try CLI.run(["train", cfg.path, "--run", run.path]).status == 0)
        let before = try Data(contentsOf: run.appendingPathComponent("checkpoint.safetensors"))
        let other = try Self.mpi(2, ["train", cfg.path, "--run", run.path, "--global-batch", "4", "--resume"])
        #expect(other.status != 0)
        #expect(other.stderr.contains("written by a run of 1 rank(s)") && other.stderr.contains("mpirun -np 1"))
        #expect(try Data(contentsOf: run.appendingPathComponent("checkpoint.safetensors")) == before)
    }

    /// (pid, command name) of the processes whose parent is `parent` (from /proc).
    static func children(of parent: Int32) -> [(pid: Int32, name: String)] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { e -> (Int32, String)? in
            guard let pid = Int32(e), let stat = try? String(contentsOfFile: "/proc/\(e)/stat", encoding: .utf8),
                let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")")
            else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, Int32(fields[1]) == parent else { return nil }
            return (pid, String(stat[stat.index(after: open)..<close]))
        }
    }
}
