import GSASRTensor

// The residual sums of the model forwards, with or without a saved context.

extension Tensor {
    /// self + other, as a new tensor (a saving forward never adds in place into a saved tensor).
    func adding(_ other: Tensor) -> Tensor {
        let y = copy()
        Kernels.add(y, other)
        return y
    }

    /// The residual sum self + d: a new tensor when `keep` (the forward saves `self`), else in
    /// place into `self` (the same float additions either way).
    func residual(_ d: Tensor, keep: Bool) -> Tensor {
        if keep { return adding(d) }
        Kernels.add(self, d)
        return self
    }
}
