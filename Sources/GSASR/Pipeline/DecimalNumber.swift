import Foundation

/// Strict parsing of the numbers people type (scales, sizes, zooms) in the command line and the
/// server's queries: decimal only. Swift's `Double(_:)` also takes hexadecimal floats
/// (`0x10` = 16), `nan`, `inf` and `infinity`; these are not what anyone means by a scale, so
/// they are refused here, as is any byte beyond the number (`2%00` decodes to "2\0").
public enum DecimalNumber {
    /// `[+-]digits[.digits][(e|E)[+-]digits]` (or `.digits`), nothing else: the value, finite, or nil.
    public static func double(_ text: String) -> Double? {
        let u = Array(text.utf8)
        var i = 0
        func digits() -> Int {
            let start = i
            while i < u.count, u[i] >= 0x30, u[i] <= 0x39 { i += 1 }
            return i - start
        }
        if i < u.count, u[i] == 0x2B || u[i] == 0x2D { i += 1 }
        var mantissa = digits()
        if i < u.count, u[i] == 0x2E {
            i += 1
            mantissa += digits()
        }
        guard mantissa > 0 else { return nil }
        if i < u.count, u[i] == 0x65 || u[i] == 0x45 {
            i += 1
            if i < u.count, u[i] == 0x2B || u[i] == 0x2D { i += 1 }
            guard digits() > 0 else { return nil }
        }
        guard i == u.count, let v = Double(text), v.isFinite else { return nil }
        return v
    }

    /// `[+-]digits` only (no spaces, no hexadecimal), within Int: the value, or nil.
    public static func int(_ text: String) -> Int? {
        let u = Array(text.utf8)
        let body = (u.first == 0x2B || u.first == 0x2D) ? u.dropFirst() : u[...]
        guard !body.isEmpty, body.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(text)
    }
}
