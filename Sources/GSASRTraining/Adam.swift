import Foundation
import GSASR
import GSASRTensor

/// Float32 state tensors keyed like ``Gradients`` (one storage per parameter storage), used for
/// Adam's moments and the EMA copy.
public typealias ParameterStateStore = Gradients

/// `torch.optim.Adam` (no weight decay, no amsgrad), reproducing torch 2.x's CPU single-tensor
/// arithmetic in float32 (verified bit for bit by the golden train step, up to torch's sqrt):
///
///     m   = fma(1−β1, g − m, m)                  exp_avg.lerp_(g, 1−β1)
///     v   = fma((1−β2)·g, g, β2·v)               exp_avg_sq.mul_(β2).addcmul_(g, g, value=1−β2)
///     bc1 = 1 − β1^t,  bc2 = 1 − β2^t            (Python doubles)
///     p  += (f32(−lr/bc1)·m) / (sqrt(v)/f32(sqrt(bc2)) + eps)
///
/// Python scalars are rounded to float32 before use, as torch does. Our sqrt is correctly
/// rounded; torch's MKL sqrt is within 1 ulp (the only difference from torch).
public final class Adam: @unchecked Sendable {
    public var beta1: Double
    public var beta2: Double
    public var eps: Double
    /// Number of steps taken (torch's `state['step']`, the same for every parameter).
    public private(set) var step: Int = 0
    public let expAvg = ParameterStateStore()
    public let expAvgSq = ParameterStateStore()

    public init(beta1: Double = 0.9, beta2: Double = 0.99, eps: Double = 1e-8) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
    }

    /// One update of every parameter with its gradient, at learning rate `lr`.
    public func update(_ params: [NamedParameter], grads: Gradients, lr: Double) {
        step += 1
        let t = Double(step)
        let bc1 = 1 - pow(beta1, t), bc2 = 1 - pow(beta2, t)
        let w1 = Float(1 - beta1), b2 = Float(beta2), w2 = Float(1 - beta2)
        let stepSize = Float(-lr / bc1)
        let bc2Sqrt = Float(bc2.squareRoot())
        let epsF = Float(eps)
        for p in params {
            let g = grads.of(p.value), m = expAvg.of(p.value), v = expAvgSq.of(p.value)
            withExtendedLifetime((p, g, m, v)) {
                let pp = p.value.ptr, gp = g.ptr, mp = m.ptr, vp = v.ptr
                Parallel.forChunks(p.value.count, minChunk: 1 << 16) { r in
                    Kernels.adamUpdate(
                        p: pp + r.lowerBound, g: gp + r.lowerBound, m: mp + r.lowerBound, v: vp + r.lowerBound,
                        count: r.count, w1: w1, b2: b2, w2: w2, step: stepSize, bc2Sqrt: bc2Sqrt, eps: epsF)
                }
            }
        }
    }

    /// Restores the step counter (the moments are restored through their stores).
    public func restore(step: Int) { self.step = step }
}

/// Exponential moving average of the parameters (basicsr `model_ema`): after every optimiser
/// step, ema = fma(p, 1 − decay, ema·decay) in float32, over the parameters only (buffers are
/// not averaged).
public final class EMA: @unchecked Sendable {
    public let decay: Double
    public let values = ParameterStateStore()

    /// Starts from a copy of the parameters (basicsr `model_ema(0)`), or from given values.
    public init(decay: Double = 0.999, params: [NamedParameter]) {
        self.decay = decay
        for p in params { values.of(p.value).ptr.update(from: p.value.ptr, count: p.value.count) }
    }

    public func update(_ params: [NamedParameter]) {
        let d = Float(decay), w = Float(1 - decay)
        for p in params {
            let e = values.of(p.value)
            withExtendedLifetime((p, e)) {
                let pp = p.value.ptr, ep = e.ptr
                Parallel.forChunks(p.value.count, minChunk: 1 << 16) { r in
                    Kernels.emaUpdate(e: ep + r.lowerBound, p: pp + r.lowerBound, count: r.count, decay: d, weight: w)
                }
            }
        }
    }

    /// The EMA copy of a parameter.
    public func value(of p: NamedParameter) -> Tensor { values.of(p.value) }
}

/// The official learning-rate schedule: basicsr `MultiStepRestartLR` (milestones, γ; no
/// restarts) plus `update_learning_rate`'s linear warm-up, as a function of the 1-based
/// iteration. It mirrors basicsr exactly, including its quirk: warm-up sets the optimiser's lr
/// to init·i/warmup for i < warmup, and the scheduler then keeps the last warm-up value
/// (init·(warmup−1)/warmup), multiplying it by γ at each milestone.
public struct LearningRateSchedule: Codable, Sendable, Equatable {
    public var initial: Double
    public var milestones: [Int]
    public var gamma: Double
    /// -1 (or ≤ 0) for no warm-up.
    public var warmupIterations: Int

    public init(initial: Double = 2e-4, milestones: [Int] = [], gamma: Double = 0.5, warmupIterations: Int = -1) {
        self.initial = initial
        self.milestones = milestones
        self.gamma = gamma
        self.warmupIterations = warmupIterations
    }

    /// The learning rate used by iteration `iter` (1-based). Closed form of basicsr's updates:
    /// iteration i > 1 first steps the scheduler (last_epoch = i − 1; ×γ per milestone equal to
    /// it), then, for i < warmup, warm-up overrides lr with init/warmup·i.
    public func rate(at iter: Int) -> Double {
        let w = warmupIterations
        if w > 1 && iter < w { return initial / Double(w) * Double(iter) }
        let base = w > 1 ? initial / Double(w) * Double(w - 1) : initial
        let lowest = w > 1 ? w - 1 : 1
        let n = milestones.filter { $0 >= lowest && $0 <= iter - 1 }.count
        var lr = base
        for _ in 0..<n { lr *= gamma }
        return lr
    }
}
