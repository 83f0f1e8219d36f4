import Foundation

/// Where the time of training steps goes, per layer of the official module tree (for
/// `gsasr bench train --profile` and the table in Benchmarks/README.md). Parts are keyed by the
/// official names (`encoder.body`, `fea2gs.window_crossattn_blocks.0`, ...) and a phase; each
/// keeps its total seconds and call count, in first-seen order. Timing a part costs two clock
/// reads; with no profile (`nil`) the code runs as without it.
public final class StepProfile: @unchecked Sendable {
    public enum Phase: String, Sendable, Codable { case forward, backward }

    public struct Part: Sendable, Codable {
        public var name: String
        public var forwardSeconds = 0.0
        public var backwardSeconds = 0.0
        public var seconds: Double { forwardSeconds + backwardSeconds }
    }

    public private(set) var parts: [Part] = []
    private var index: [String: Int] = [:]

    public init() {}

    public func add(_ name: String, _ phase: Phase, _ seconds: Double) {
        let i: Int
        if let j = index[name] {
            i = j
        } else {
            i = parts.count
            index[name] = i
            parts.append(Part(name: name))
        }
        switch phase {
        case .forward: parts[i].forwardSeconds += seconds
        case .backward: parts[i].backwardSeconds += seconds
        }
    }

    /// A monotonic clock reading, in nanoseconds (for ``add(_:_:since:)``).
    public static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Adds the time from `start` (a ``now()`` reading) to now.
    public func add(_ name: String, _ phase: Phase, since start: UInt64) {
        add(name, phase, Double(Self.now() - start) * 1e-9)
    }

    public func reset() {
        parts = []
        index = [:]
    }
}

/// Runs `body`, adding its wall time to `profile` under `name` and `phase` when a profile is given.
@inline(__always)
func timed<T>(_ profile: StepProfile?, _ name: String, _ phase: StepProfile.Phase, _ body: () throws -> T) rethrows -> T
{
    guard let profile else { return try body() }
    let t0 = DispatchTime.now().uptimeNanoseconds
    let r = try body()
    profile.add(name, phase, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
    return r
}
