import Foundation

/// SplitMix64: a small, fast, well-mixed 64-bit generator with a one-word state (so a training
/// run can save and restore it exactly). Steele, Lea & Flood, "Fast splittable pseudorandom
/// number generators" (OOPSLA 2014).
public struct SplitMix64: RandomNumberGenerator, Codable, Sendable, Equatable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1) with 53 random bits.
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1p-53 }
    /// Standard normal (Box–Muller).
    public mutating func normal() -> Double {
        var u = uniform()
        while u <= 0 { u = uniform() }
        return (-2 * log(u)).squareRoot() * cos(2 * Double.pi * uniform())
    }
}
