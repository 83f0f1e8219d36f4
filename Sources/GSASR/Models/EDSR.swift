import GSASRTensor

/// EDSR-baseline without its upsampler (`EDSRNOUP`), the encoder of GSASR.
///
/// Mirrors the official module tree: `conv_first`, `body.{i}.conv1/conv2`, `conv_after_body`.
/// Note the official forward computes `res + x` and then discards it: the encoder output is
/// `conv_after_body(body(conv_first(x)))`, without the global skip. `res_scale` is 1 (it is not
/// stored in checkpoints; the official GSASR configs all use 1).
public struct EDSRNOUP: @unchecked Sendable {
    public struct ResidualBlockNoBN: @unchecked Sendable {
        public let conv1: Conv2d
        public let conv2: Conv2d
    }

    public let numInChannels: Int
    public let numFeat: Int
    public let convFirst: Conv2d
    public let body: [ResidualBlockNoBN]
    public let convAfterBody: Conv2d

    /// Hyperparameters are read from the shapes: num_feat and num_in_ch from
    /// `conv_first.weight`, num_block from the number of `body.{i}` entries.
    public init(stateDict p: ParameterLoader) throws {
        let s = try p.shape("conv_first.weight")
        guard s.count == 4, s[2] == 3, s[3] == 3 else {
            throw ModelLoadError("encoder: conv_first.weight has shape \(s), expected [num_feat, 3, 3, 3]")
        }
        numFeat = s[0]
        numInChannels = s[1]
        convFirst = try Conv2d(p, "conv_first.", in: numInChannels, out: numFeat)
        let blocks = p.count { "body.\($0).conv1.weight" }
        var b: [ResidualBlockNoBN] = []
        for i in 0..<blocks {
            b.append(
                ResidualBlockNoBN(
                    conv1: try Conv2d(p, "body.\(i).conv1.", in: numFeat, out: numFeat),
                    conv2: try Conv2d(p, "body.\(i).conv2.", in: numFeat, out: numFeat)))
        }
        body = b
        convAfterBody = try Conv2d(p, "conv_after_body.", in: numFeat, out: numFeat)
        try p.finish()
    }

    /// x: (h, w, num_in_ch) channels-last → (h, w, num_feat).
    public func callAsFunction(_ x: Tensor, height h: Int, width w: Int) -> Tensor {
        callAsFunction(x, height: h, width: w, step: { _, _ in })
    }

    /// `step(done, total)` runs after each residual block (for progress, and to stop a run by
    /// throwing: nothing is left half-written, the caller just drops the result).
    public func callAsFunction(
        _ x: Tensor, height h: Int, width w: Int, step: (_ done: Int, _ total: Int) throws -> Void
    ) rethrows -> Tensor {
        var f = convFirst(x, height: h, width: w)
        for (i, blk) in body.enumerated() {
            let t = blk.conv1(f, height: h, width: w)
            Kernels.relu(t)
            let u = blk.conv2(t, height: h, width: w)
            Kernels.add(u, f)
            f = u
            try step(i + 1, body.count)
        }
        return convAfterBody(f, height: h, width: w)
    }
}
