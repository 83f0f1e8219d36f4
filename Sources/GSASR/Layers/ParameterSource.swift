import Foundation
import GSASRCheckpoint
import GSASRTensor

/// How a parameter is drawn when a module is built from scratch: the PyTorch default of the
/// official module that owns it (the distribution, not torch's random stream: ours is
/// ``SplitMix64``).
public enum Initializer: Sendable, Equatable {
    /// U(−bound, bound): `nn.Linear` and `nn.Conv2d` weights and biases (kaiming_uniform with
    /// a = √5 gives bound 1/√fan_in), `nn.MultiheadAttention.in_proj_weight` (xavier_uniform).
    case uniform(bound: Double)
    /// N(0, std²): the learnable embeddings.
    case normal(std: Double)
    /// N(0, std²) redrawn while |x| > bound (`trunc_normal_(std=0.02)`, bounds ±2).
    case truncatedNormal(std: Double, bound: Double)
    /// Every element `value` (LayerNorm's 1 and 0, zero biases).
    case constant(Float)
    /// RoPE's mixed 2-D frequencies (`init_random_2d_freqs`), shape (2, heads, headDim/2):
    /// magnitudes θ^(−4k/headDim) for k < headDim/4, one random angle a per head, x row
    /// [m·cos a, m·cos(a + π/2)], y row [m·sin a, m·sin(a + π/2)].
    case rope2D(heads: Int, headDim: Int, theta: Double)

    /// `n` values drawn in order from `rng`.
    func values(_ n: Int, _ rng: inout SplitMix64) -> [Float] {
        var v = [Float](repeating: 0, count: n)
        switch self {
        case .uniform(let b): for i in 0..<n { v[i] = Float((2 * rng.uniform() - 1) * b) }
        case .normal(let s): for i in 0..<n { v[i] = Float(s * rng.normal()) }
        case .truncatedNormal(let s, let b):
            for i in 0..<n {
                var x = s * rng.normal()
                while abs(x) > b { x = s * rng.normal() }
                v[i] = Float(x)
            }
        case .constant(let c): for i in 0..<n { v[i] = c }
        case .rope2D(let heads, let d, let theta):
            precondition(
                n == 2 * heads * (d / 2) && d % 4 == 0, "rope2D: shape (2, heads, headDim/2), headDim % 4 == 0")
            let quarter = d / 4
            for h in 0..<heads {
                let a = rng.uniform() * 2 * Double.pi
                for k in 0..<quarter {
                    let m = 1 / pow(theta, Double(4 * k) / Double(d))
                    for (half, phase) in [(0, 0.0), (1, Double.pi / 2)] {
                        v[(h * 2 * quarter) + half * quarter + k] = Float(m * cos(a + phase))
                        v[heads * 2 * quarter + (h * 2 * quarter) + half * quarter + k] = Float(m * sin(a + phase))
                    }
                }
            }
        }
        return v
    }
}

/// The one place a module declares its parameters.
///
/// Every official module's initialiser takes a `ParameterSource` and asks it, in the official
/// registration order, for each parameter and buffer by its own key name, with its shape and its
/// from-scratch initialiser (and for child modules, hands them `source("child")`). From that one
/// declaration follow:
/// - **strict loading** (`load_state_dict(strict=True)`): a source over a state dict returns the
///   stored values, names the first missing or mis-shaped key, and ``finish()`` names the first
///   key nobody declared;
/// - **from-scratch initialisation**: a source over a random generator draws each value from the
///   declared ``Initializer``, in declaration order;
/// - **the state dict** for export (``entries``, in `state_dict()` order: each module's own
///   parameters, then its buffers, then its children, as PyTorch orders them — the declaration
///   order), and so the parameter count and the optimiser's parameter list.
public final class ParameterSource {
    /// Where the values come from.
    public enum Values {
        case load(ParameterLoader)
        case initialize(SplitMix64)
    }

    final class Record {
        var values: Values
        var entries: [StateEntry] = []
        var precisionSlots: [PrecisionSlot] = []
        init(_ values: Values) { self.values = values }
    }

    let record: Record
    /// The key prefix of this scope, ending in "." unless empty.
    public let prefix: String

    init(record: Record, prefix: String) {
        self.record = record
        self.prefix = prefix
    }

    /// A source over a state dict (strict loading).
    public convenience init(loading dict: StateDict, label: String) {
        self.init(record: Record(.load(ParameterLoader(dict, label: label))), prefix: "")
    }

    /// A source that draws fresh values (from-scratch initialisation).
    public convenience init(initializing rng: SplitMix64) {
        self.init(record: Record(.initialize(rng)), prefix: "")
    }

    /// The scope of a child module (`source("conv_first")`, `source("body")(3)`).
    public func callAsFunction(_ child: String) -> ParameterSource {
        ParameterSource(record: record, prefix: prefix + child + ".")
    }

    /// The scope of item `i` of an `nn.ModuleList` / `nn.Sequential`.
    public func callAsFunction(_ index: Int) -> ParameterSource { self(String(index)) }

    /// The entries declared so far, in declaration (= `state_dict()`) order.
    public var entries: [StateEntry] { record.entries }

    /// Registers a layer's product (a Linear, a 3×3 convolution) for the precision switch
    /// (`PrecisionSlot`): the layers declared through this source, in declaration order.
    public func registerProduct(_ slot: PrecisionSlot) { record.precisionSlots.append(slot) }

    /// The products registered so far, in declaration order.
    public var products: [PrecisionSlot] { record.precisionSlots }

    /// The random generator's state after the draws so far (nil when loading).
    public var generator: SplitMix64? {
        if case .initialize(let g) = record.values { return g }
        return nil
    }

    /// Declares the learnable parameter `name` of official shape `torchShape` and returns its
    /// tensor in our `layout` (a 3×3 convolution weight is permuted to (cout, ky, kx, cin)).
    /// `into` gives a destination view (a row block of a stacked layer): the values are written
    /// there and the view is the parameter, so there is one copy of every weight.
    @discardableResult
    public func parameter(
        _ name: String, _ torchShape: [Int], _ initializer: Initializer, layout: ParameterLayout = .plain,
        into destination: Tensor? = nil
    ) throws -> Tensor {
        let key = prefix + name
        // Loading checks the stored shape first: the declared one may come from an untrusted
        // file's other shapes, so its element count is only computed after it matched (then it
        // is the stored tensor's, which the reader has bounded) or, from scratch, with overflow
        // checks.
        let torchValues: [Float]
        switch record.values {
        case .load(let p): torchValues = try p.floats(key, torchShape)
        case .initialize(var rng):
            var n = 1
            for d in torchShape {
                let (m, overflow) = n.multipliedReportingOverflow(by: d)
                guard d >= 0, !overflow else { throw ModelLoadError("\(key): shape \(torchShape) is too large") }
                n = m
            }
            torchValues = initializer.values(n, &rng)
            record.values = .initialize(rng)
        }
        let n = torchValues.count
        let ourShape: [Int]
        switch layout {
        case .plain: ourShape = torchShape
        case .conv3x3(let cout, let cin):
            precondition(torchShape == [cout, cin, 3, 3], "\(key): conv3x3 layout needs shape [cout, cin, 3, 3]")
            ourShape = [cout, 9 * cin]
        }
        let t = destination ?? Tensor(uninitialized: ourShape)
        precondition(t.count == n, "\(key): destination holds \(t.count) elements for \(n)")
        let p = NamedParameter(key, Tensor(shape: ourShape, storage: t.storage, offset: t.offset), layout: layout)
        p.setTorchValues(torchValues)
        record.entries.append(.parameter(p))
        return p.value
    }

    /// Declares the integer buffer `name` (`relative_position_index`): loaded from the state
    /// dict, or, from scratch, the values the official constructor computes (`official`).
    public func buffer(_ name: String, _ shape: [Int], official: () throws -> [Int64]) throws -> [Int64] {
        let key = prefix + name
        let v: [Int64]
        switch record.values {
        case .load(let p): v = try p.ints(key, shape)
        case .initialize:
            v = try official()
            precondition(v.count == shape.reduce(1, *), "\(key): \(v.count) values for shape \(shape)")
        }
        record.entries.append(.buffer(key: key, shape: shape, values: v))
        return v
    }

    /// Declares the float buffer `name` (RoPE's position tables, Swin's `attn_mask`): loaded
    /// from the state dict (any float dtype), or, from scratch, the values the official
    /// constructor computes.
    public func floatBuffer(_ name: String, _ shape: [Int], official: () throws -> [Float]) throws -> [Float] {
        let key = prefix + name
        let v: [Float]
        switch record.values {
        case .load(let p): v = try p.floats(key, shape)
        case .initialize:
            v = try official()
            precondition(v.count == shape.reduce(1, *), "\(key): \(v.count) values for shape \(shape)")
        }
        record.entries.append(.floatBuffer(key: key, shape: shape, values: v))
        return v
    }

    /// Fails on the first stored key no declaration asked for (loading); nothing to check when
    /// initialising.
    public func finish() throws {
        if case .load(let p) = record.values { try p.finish() }
    }

    /// The file label for error messages ("encoder.pth"; "initialisation" when drawing).
    public var label: String {
        if case .load(let p) = record.values { return p.fileLabel }
        return "initialisation"
    }

    /// Whether the state dict being loaded has `key` under this scope (counting list items).
    /// Always false when initialising.
    public func has(_ key: String) -> Bool {
        if case .load(let p) = record.values { return p.has(prefix + key) }
        return false
    }
}
