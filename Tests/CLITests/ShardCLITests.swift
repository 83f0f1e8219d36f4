import Foundation
import GSASR
import Testing

/// `--shard`: shards of a folder split it exactly (no image twice, none missed), equal the
/// unsharded run byte for byte, resume, read the job system's environment, and report in JSON.
@Suite struct ShardCLITests {
    @Test func twoShardsSplitAFolderOfSevenExactly() throws {
        let dir = try CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in"), sub = input.appendingPathComponent("sub")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        let names = ["a.png", "b.png", "c.png", "d.png", "sub/e.png", "sub/f.png", "sub/g.png"]
        for n in names { try FileManager.default.copyItem(at: CLI.photo, to: input.appendingPathComponent(n)) }
        let whole = dir.appendingPathComponent("whole"), sharded = dir.appendingPathComponent("sharded")
        let base = ["-s", "2", "-q", "-r", "-m", CLI.smallModel.path]
        let w = try CLI.run(["-i", input.path, "-o", whole.path] + base)
        #expect(w.status == 0, "\(w.stderr)")
        var seen: [String: Int] = [:]
        for i in 0..<2 {
            let summary = dir.appendingPathComponent("shard\(i).json")
            let r = try CLI.run(
                ["-i", input.path, "-o", sharded.path, "--shard", "\(i)/2", "--summary", summary.path] + base)
            #expect(r.status == 0, "\(r.stderr)")
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: summary)) as! [String: Any]
            let done = json["done"] as! [String]
            #expect(json["shard"] as? String == "\(i)/2")
            #expect(json["other_shards"] as? Int == 7 - done.count)
            #expect((json["failed"] as! [Any]).isEmpty)
            #expect((json["seconds"] as? Double ?? -1) >= 0)
            for d in done { seen[d, default: 0] += 1 }
            print("shard \(i)/2: \(done)")
        }
        #expect(seen.count == 7 && seen.values.allSatisfy { $0 == 1 })
        for n in names {
            #expect(
                try Data(contentsOf: whole.appendingPathComponent(n))
                    == Data(contentsOf: sharded.appendingPathComponent(n)), "\(n)")
        }
        // A re-run of a shard (a killed pod, restarted) skips what it already wrote.
        let again = dir.appendingPathComponent("again.json")
        let r = try CLI.run(["-i", input.path, "-o", sharded.path, "--shard", "1/2", "--summary", again.path] + base)
        #expect(r.status == 0)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: again)) as! [String: Any]
        #expect((json["done"] as! [String]).isEmpty && (json["skipped"] as! [String]).count == 3)
        // The job system's environment: Slurm (array 5-6, so task 6 is index 1) and Kubernetes.
        for (env, expected) in [
            (["SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "2"], "1/2"),
            (["JOB_COMPLETION_INDEX": "0", "GSASR_SHARD_COUNT": "2"], "0/2"),
        ] {
            let out = dir.appendingPathComponent("auto-\(expected.replacingOccurrences(of: "/", with: "-"))")
            let s = dir.appendingPathComponent("auto.json")
            var e = ProcessInfo.processInfo.environment
            for (k, v) in env { e[k] = v }
            let a = try CLI.runBytes(
                ["-i", input.path, "-o", out.path, "--shard", "auto", "--summary", s.path] + base, environment: e)
            #expect(a.status == 0, "\(a.stderr)")
            let j = try JSONSerialization.jsonObject(with: Data(contentsOf: s)) as! [String: Any]
            #expect(j["shard"] as? String == expected)
        }
    }

    @Test func badShardsAreOneLineErrors() throws {
        let dir = try CLI.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var env = ProcessInfo.processInfo.environment
        for k in ["JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID", "GSASR_SHARD_COUNT", "SLURM_ARRAY_TASK_COUNT"] {
            env.removeValue(forKey: k)
        }
        for (args, message) in [
            (["--shard", "2/2"], "needs 0 ≤ index < count"), (["--shard", "x"], "is not I/N"),
            (["--shard", "auto"], "no job index in the environment"),
        ] {
            let r = try CLI.runBytes(
                ["-i", CLI.packageRoot.appendingPathComponent("Examples").path, "-o", dir.path, "-m", CLI.smallModel.path]
                    + args, environment: env)
            #expect(r.status != 0)
            #expect(r.stderr.contains(message), "\(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        }
        let single = try CLI.run(
            ["-i", CLI.photo.path, "-o", dir.appendingPathComponent("x.png").path, "--shard", "0/2"])
        #expect(single.status != 0 && single.stderr.contains("are for a folder input"))
    }
}
