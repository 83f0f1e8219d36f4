import ArgumentParser
import Foundation
import GSASR
import GSASRServer

/// `gsasr serve`: the web page and HTTP API (GSASRServer).
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a web page (and an HTTP API) for upscaling, comparing, deep zoom and the Gaussians.")

    @Option(help: "Port (0: any free port; the chosen one is printed).")
    var port: Int = 8080

    @Option(help: "Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).")
    var host: String = "127.0.0.1"

    @Option(
        name: [.short, .customLong("model")],
        help:
            "Model directory; repeat for several (the page offers a choice; the first is the default). Default: the bundled model."
    )
    var models: [String] = []

    @Option(help: "Rasterization ratio dmax, in normalised image units (paper: 0.1).")
    var dmax: Float = 0.1

    @Option(help: "Jobs that run at once (default: one per 2 cores).")
    var concurrentJobs: Int?

    @Option(help: "Jobs that may wait; more get 503 with Retry-After.")
    var queue: Int = ServerLimits().queueLength

    @Option(help: "Largest upload, MiB.")
    var maxUploadMib: Int = ServerLimits().maxUploadBytes >> 20

    @Option(
        help:
            "Largest input image, pixels (checked from the header). Default: the largest square that --job-memory-gib allows at --max-output-pixels for every served model; a larger value is refused at start-up."
    )
    var maxInputPixels: Int?

    @Option(help: "Largest output image, pixels.")
    var maxOutputPixels: Int = ServerLimits().maxOutputPixels

    @Option(help: "Largest scale factor.")
    var maxScale: Double = ServerLimits().maxScale

    @Option(help: "Per-job working-memory limit, GiB (the untiled estimate).")
    var jobMemoryGib: Double = Double(ServerLimits().jobMemoryBytes) / Double(1 << 30)

    @Option(help: "Finished jobs kept for results and zoom: at most this many...")
    var cacheJobs: Int = ServerLimits().cacheJobs

    @Option(help: "...and at most this many MiB.")
    var cacheMib: Int = ServerLimits().cacheBytes >> 20

    @Option(help: "Cancel a job nobody polled for this many seconds.")
    var abandonAfter: Double = ServerLimits().abandonAfter

    @Option(
        help:
            "Close a connection idle this many seconds: between requests, or before its headers are complete (slow or stalled clients)."
    )
    var idleTimeout: Double = ServerLimits().idleTimeout

    @Option(
        help:
            "Connections held at once; past it a new one gets an immediate 503 (default: the open-file limit minus 64, at most 1024)."
    )
    var maxConnections: Int?

    @Option(name: .short, help: "Threads per job (default: the cores divided by --concurrent-jobs).")
    var jobs: Int?

    func limits() throws -> ServerLimits {
        var l = ServerLimits()
        func positive(_ v: Int, _ name: String) throws -> Int {
            guard v > 0 else { throw CLIError("--\(name) \(v) must be positive") }
            return v
        }
        l.concurrentJobs = try positive(concurrentJobs ?? l.concurrentJobs, "concurrent-jobs")
        guard queue >= 0 else { throw CLIError("--queue \(queue) must be ≥ 0") }
        l.queueLength = queue
        l.maxUploadBytes = try positive(maxUploadMib, "max-upload-mib") << 20
        if let maxInputPixels { l.maxInputPixels = try positive(maxInputPixels, "max-input-pixels") }
        l.maxOutputPixels = try positive(maxOutputPixels, "max-output-pixels")
        guard maxScale.isFinite, maxScale >= 1 else { throw CLIError("--max-scale \(maxScale) must be ≥ 1") }
        l.maxScale = maxScale
        guard jobMemoryGib.isFinite, jobMemoryGib > 0, jobMemoryGib < 1_048_576 else {
            throw CLIError("--job-memory-gib \(jobMemoryGib) must be a positive number of GiB")
        }
        l.jobMemoryBytes = Int(jobMemoryGib * Double(1 << 30))
        l.cacheJobs = try positive(cacheJobs, "cache-jobs")
        l.cacheBytes = try positive(cacheMib, "cache-mib") << 20
        guard abandonAfter.isFinite, abandonAfter > 0 else { throw CLIError("--abandon-after must be positive") }
        l.abandonAfter = abandonAfter
        guard idleTimeout.isFinite, idleTimeout >= 0.1, idleTimeout <= 86400 else {
            throw CLIError("--idle-timeout \(idleTimeout) must be between 0.1 and 86400 seconds")
        }
        l.idleTimeout = idleTimeout
        if let maxConnections {
            let fileLimit = ConnectionCap.defaultLimit()
            guard maxConnections >= 1, maxConnections <= max(1, fileLimit) else {
                throw CLIError(
                    "--max-connections \(maxConnections) must be between 1 and \(fileLimit) (the open-file limit minus 64; see ulimit -n)"
                )
            }
            l.maxConnections = maxConnections
        }
        guard l.maxConnections >= 8 || maxConnections != nil else {
            throw CLIError("the open-file limit (ulimit -n) leaves fewer than 8 connections; raise it")
        }
        return l
    }

    @OptionGroup var precisionOptions: PrecisionOptions

    func run() throws {
        guard (0...65535).contains(port) else { throw CLIError("port \(port) is not in 0...65535") }
        try precisionOptions.check()
        var limits = try limits()
        let dmax = try parseDmax(dmax)
        let cores = ProcessInfo.processInfo.activeProcessorCount
        try setThreads(jobs ?? max(1, cores / limits.concurrentJobs))
        var loaded: [(name: String, model: GSASRModel)] = []
        if models.isEmpty { loaded.append(("default", try GSASRModel.bundledDefault())) }
        for path in models {
            // A folder, or a name from the model search path (`default`: the built-in model).
            let name: String, model: GSASRModel
            switch try ModelLocations.resolve(path) {
            case .builtIn: (name, model) = ("default", try GSASRModel.bundledDefault())
            case .folder(let dir):
                (name, model) = (dir.standardizedFileURL.lastPathComponent, try GSASRModel.load(directory: dir))
            }
            guard !loaded.contains(where: { $0.name == name }) else {
                throw CLIError("two models are named '\(name)' (their folder names); rename one")
            }
            loaded.append((name, model))
        }
        // The input limit and the memory limit must agree: derive the first from the second,
        // or refuse a given one that the memory cannot hold.
        for (_, model) in loaded { try precisionOptions.apply(to: model) }
        let fitting = limits.largestInputPixels(models: loaded.map(\.model))
        let side = Int(Double(fitting).squareRoot())
        guard fitting > 0 else {
            throw CLIError(
                "--job-memory-gib \(jobMemoryGib) cannot hold even a 12x12 input with these models; raise it")
        }
        if let given = maxInputPixels {
            guard given <= fitting else {
                throw CLIError(
                    "--max-input-pixels \(given) conflicts with --job-memory-gib \(jobMemoryGib): at --max-output-pixels \(limits.maxOutputPixels) the memory holds inputs up to \(fitting) pixels (\(side)x\(side)); lower the first or raise the second"
                )
            }
        } else {
            limits.maxInputPixels = fitting
        }
        let server = GSASRServer(models: loaded, limits: limits, dmax: dmax)
        let inputLimit = limits.maxInputPixels
        let host = self.host
        let names = loaded.map(\.name).joined(separator: ", ")
        let done = DispatchSemaphore(value: 0)
        let failure = ErrorBox()
        Task.detached {
            do {
                try await server.run(host: host, port: port) { bound in
                    print(
                        "gsasr serve: listening on http://\(host):\(bound) (models: \(names); inputs up to \(inputLimit) pixels)"
                    )
                    fflush(stdout)
                }
            } catch {
                failure.error = error
            }
            done.signal()
        }
        done.wait()
        if let e = failure.error { throw CLIError("the server stopped: \(e)") }
    }
}

final class ErrorBox: @unchecked Sendable {
    var error: Error?
}
