/// The arithmetic a model's large products run in.
///
/// - `f32`: float32 throughout (the default, and what every parity test checks).
/// - `bf16`: the large GEMMs of the decoder (attention projections, MLPs, the heads' first two
///   layers, UPNet's Winograd products) and the attention's scores Q·Kᵀ take bf16 inputs — each
///   factor rounded to 8 significant bits, to nearest even — and accumulate and output in
///   float32 (oneDNN's matmul); everything else (LayerNorm, softmax and its statistics, the
///   attention's weighted sums P·V, the scale MLP, the heads' last layers, the encoder, the
///   rasterizer) stays float32. Only
///   on a CPU that multiplies bf16 natively: elsewhere it is refused.
/// - `auto`: bf16 where the CPU has native bf16 and the model's measured quality gate holds,
///   else f32 (see `Precision.resolve`).
public enum Precision: String, CaseIterable, Sendable, CustomStringConvertible {
    case f32, bf16, auto
    public var description: String { rawValue }
}

/// What a bf16 request could not get.
public struct PrecisionError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ d: String) { description = d }
}

extension Precision {
    /// Whether this CPU multiplies bf16 natively (AVX512_BF16 or AMX, through oneDNN), and
    /// oneDNN's name of its instruction set. `GSASR_NO_BF16=1` masks the feature.
    public static var nativeBF16: (available: Bool, isa: String) { (BF16.native.yes, BF16.native.isa) }

    /// The precisions this CPU runs natively, for `gsasr info`.
    public static var nativePrecisions: [Precision] { BF16.native.yes ? [.f32, .bf16] : [.f32] }

    /// The precision a request runs in: `f32` stays; `bf16` is refused with one line on a CPU
    /// without native bf16; `auto` is bf16 when the CPU has it and `qualityGateHolds`, else
    /// f32, with a note saying why.
    public func resolve(qualityGateHolds: Bool) throws -> (precision: Precision, note: String?) {
        switch self {
        case .f32: return (.f32, nil)
        case .bf16:
            guard BF16.native.yes else {
                throw PrecisionError(
                    "--precision bf16: this CPU has no native bf16 (oneDNN: \(BF16.native.isa)); use f32 or auto")
            }
            return (.bf16, nil)
        case .auto:
            if !BF16.native.yes {
                return (.f32, "precision auto: f32 (no native bf16 on this CPU: \(BF16.native.isa))")
            }
            if !qualityGateHolds { return (.f32, "precision auto: f32 (this model has no measured bf16 quality gate)") }
            return (.bf16, nil)
        }
    }
}

/// A layer's bf16 copy of its weights, made once when its model switches to bf16
/// (``set(bf16:)``) and dropped when it switches back. A slot belongs to one layer: a Linear
/// (its n × k weight) or a 3×3 convolution that runs by Winograd (its 16 transformed weight
/// matrices). Switch precision only while no forward runs; forwards read it from any thread.
public final class PrecisionSlot: @unchecked Sendable {
    enum Kind {
        case linear(weight: Tensor, k: Int, n: Int)
        case winograd(weight: Tensor, bias: Tensor, cin: Int, cout: Int)
    }
    let kind: Kind
    /// The Linear's product in bf16 (nil: float32).
    package private(set) var gemm: BF16GEMM?
    /// The Winograd products U_ξ in bf16, one per ξ (nil: float32).
    package private(set) var winograd: [BF16GEMM]?

    package init(linear weight: Tensor, k: Int, n: Int) { kind = .linear(weight: weight, k: k, n: n) }
    package init(convWeight weight: Tensor, bias: Tensor, cin: Int, cout: Int) {
        kind = .winograd(weight: weight, bias: bias, cin: cin, cout: cout)
    }

    /// The inputs and outputs of this slot's products (for the per-layer policy).
    public var inputs: Int {
        switch kind {
        case .linear(_, let k, _): return k
        case .winograd(_, _, let cin, _): return cin
        }
    }
    public var outputs: Int {
        switch kind {
        case .linear(_, _, let n): return n
        case .winograd(_, _, _, let cout): return cout
        }
    }
    public var isBF16: Bool { gemm != nil || winograd != nil }

    /// Makes (or drops) the bf16 copy from the layer's current weights. Throws on a CPU without
    /// native bf16.
    public func set(bf16 on: Bool) throws {
        guard on else {
            gemm = nil
            winograd = nil
            return
        }
        switch kind {
        case .linear(let w, let k, let n):
            gemm = try withExtendedLifetime(w) { try BF16GEMM(k: k, n: n, weights: w.ptr) }
        case .winograd(let w, let b, let cin, let cout):
            guard Kernels.usesWinograd(cin: cin, cout: cout) else { return }
            let p = Conv3x3Weights(weight: w, bias: b, cout: cout, cin: cin)
            let u = Kernels.winogradWeights(p)
            defer { u.deallocate() }
            winograd = try (0..<16).map { xi in try BF16GEMM(k: p.cin, n: p.cout, weights: u + xi * p.cin * p.cout) }
        }
    }
}
