/// The official pixel loss: `L1Loss(loss_weight 1, reduction 'mean')` applied per sample and
/// averaged over the batch (the mean of per-sample means; samples of different sizes weigh
/// their pixels differently). The render is not clamped. torch's sign(0) = 0.
public struct L1Loss: Sendable {
    public var weight: Float = 1
    public init(weight: Float = 1) { self.weight = weight }

    /// Mean |render − target| over all elements, accumulated in Double.
    public func value(_ render: [Float], _ target: [Float]) -> Float {
        precondition(render.count == target.count)
        var s = 0.0
        for i in 0..<render.count { s += Double(abs(render[i] - target[i])) }
        return weight * Float(s / Double(max(1, render.count)))
    }

    /// d(loss_b / batchSize)/d(render): weight · sign(render − target) / (batchSize · count).
    public func gradient(_ render: [Float], _ target: [Float], batchSize: Int) -> [Float] {
        let g = weight / (Float(batchSize) * Float(render.count))
        var out = [Float](repeating: 0, count: render.count)
        for i in 0..<render.count {
            let d = render[i] - target[i]
            out[i] = d > 0 ? g : (d < 0 ? -g : 0)
        }
        return out
    }
}
