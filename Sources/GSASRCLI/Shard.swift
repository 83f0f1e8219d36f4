import Foundation

/// `--shard I/N` (or `auto`): which share of a folder this process takes, so that N processes on
/// N machines split one folder with no coordination. The images of the folder, in the folder
/// mode's order (sorted names, sub-folders depth first), are numbered 0, 1, 2, ...; shard I takes
/// those whose number mod N is I. The split depends only on the folder's content, never on the
/// machine or the run, so a killed shard re-run takes the same images (and skips those already
/// written, as the folder mode always does).
struct Shard: Equatable, CustomStringConvertible {
    var index: Int
    var count: Int

    var description: String { "\(index)/\(count)" }

    func owns(_ image: Int) -> Bool { image % count == index }

    /// `I/N` with 0 ≤ I < N, or `auto`: the job system's environment —
    /// - a Kubernetes Indexed Job: `JOB_COMPLETION_INDEX` (set by Kubernetes) and
    ///   `GSASR_SHARD_COUNT` (the Job's `completions`, which Kubernetes does not expose: the
    ///   manifest sets it, docs/cluster.md);
    /// - a Slurm job array: `SLURM_ARRAY_TASK_ID` minus `SLURM_ARRAY_TASK_MIN` (when set) and
    ///   `SLURM_ARRAY_TASK_COUNT`.
    static func parse(_ text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws
        -> Shard
    {
        if text == "auto" {
            func int(_ key: String) throws -> Int? {
                guard let v = environment[key] else { return nil }
                guard let n = Int(v.trimmingCharacters(in: .whitespaces)) else {
                    throw CLIError("--shard auto: \(key)='\(v)' is not an integer")
                }
                return n
            }
            if let i = try int("JOB_COMPLETION_INDEX") {
                guard let n = try int("GSASR_SHARD_COUNT") else {
                    throw CLIError(
                        "--shard auto: JOB_COMPLETION_INDEX is set (Kubernetes) but GSASR_SHARD_COUNT is not: set it to the Job's completions")
                }
                return try make(i, n, "JOB_COMPLETION_INDEX/GSASR_SHARD_COUNT")
            }
            if let id = try int("SLURM_ARRAY_TASK_ID") {
                guard let n = try int("SLURM_ARRAY_TASK_COUNT") else {
                    throw CLIError("--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not")
                }
                return try make(id - (try int("SLURM_ARRAY_TASK_MIN") ?? 0), n, "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT")
            }
            throw CLIError(
                "--shard auto: no job index in the environment (Kubernetes JOB_COMPLETION_INDEX with GSASR_SHARD_COUNT, or Slurm SLURM_ARRAY_TASK_ID with SLURM_ARRAY_TASK_COUNT); give --shard I/N")
        }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]) else {
            throw CLIError("--shard '\(text)' is not I/N (e.g. 0/4) or auto")
        }
        return try make(i, n, "--shard")
    }

    private static func make(_ i: Int, _ n: Int, _ source: String) throws -> Shard {
        guard n >= 1, n <= 1_000_000, i >= 0, i < n else {
            throw CLIError("shard \(i)/\(n) (from \(source)) needs 0 ≤ index < count ≤ 1000000")
        }
        return Shard(index: i, count: n)
    }
}

/// The per-shard summary for the operator (`--summary FILE.json`): what was done, what failed and
/// why, what was skipped, how many images belong to other shards, and the time taken.
struct ShardSummary: Encodable {
    struct Failure: Encodable {
        var file: String
        var reason: String
    }
    var shard: String
    var done: [String] = []
    var failed: [Failure] = []
    var skipped: [String] = []
    var otherShards = 0
    var seconds = 0.0
}
