import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Progress on stderr that fits where it goes. On a terminal: one line rewritten in place (stage,
/// percent, ETA). On a pipe or a file: one line per stage and at most one percentage line every
/// `interval` seconds (and the final 100 %), with no carriage returns, so a batch job's log stays
/// readable. Quiet: nothing. Errors are not progress: they are printed by the command's handler.
final class ProgressReporter {
    let quiet: Bool
    let terminal: Bool
    /// Least time between two percentage lines on a pipe.
    let interval: TimeInterval
    private var lastLine = Date.distantPast
    private var lastPercent = -1
    private var open = false  // a terminal line is being rewritten
    private var started = Date()

    /// `terminal` defaults to whether stderr is a terminal (`GSASR_PROGRESS=terminal|plain`
    /// overrides, for tests and for log collectors that want one or the other).
    init(quiet: Bool, terminal: Bool? = nil, interval: TimeInterval = 5) {
        self.quiet = quiet
        switch ProcessInfo.processInfo.environment["GSASR_PROGRESS"] {
        case "terminal": self.terminal = true
        case "plain": self.terminal = false
        default: self.terminal = terminal ?? (isatty(2) != 0)
        }
        self.interval = interval
    }

    private func write(_ s: String) { if !quiet { FileHandle.standardError.write(Data(s.utf8)) } }

    /// A line of its own (a stage starting, a summary).
    func line(_ s: String) {
        if open {
            write("\n")
            open = false
        }
        write(s + "\n")
        lastPercent = -1
        started = Date()
    }

    /// `label` at `fraction` (0...1), with `detail` (e.g. "tile 3/12").
    func percent(_ label: String, _ fraction: Double, detail: String = "") {
        let pct = max(0, min(100, Int(fraction * 100)))
        guard pct != lastPercent else { return }
        lastPercent = pct
        let elapsed = Date().timeIntervalSince(started)
        var text = "\(label) \(pct)%"
        if !detail.isEmpty { text += ", \(detail)" }
        if fraction > 0.02 && pct < 100 {
            text += String(format: ", ETA %.0f s", elapsed / fraction * (1 - fraction))
        }
        if terminal {
            write("\r\u{1B}[K" + text + (pct >= 100 ? "\n" : ""))
            open = pct < 100
        } else if pct >= 100 || Date().timeIntervalSince(lastLine) >= interval {
            lastLine = Date()
            write(text + "\n")
        }
    }
}
