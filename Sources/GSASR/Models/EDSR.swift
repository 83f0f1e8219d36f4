import GSASRCheckpoint
import GSASRTensor

/// EDSR-baseline without its upsampler (`EDSRNOUP` in the official `edsr_arch.py`), the encoder
/// of GSASR's EDSR models.
///
/// Module tree (the state-dict keys): `conv_first`, `body.{i}.conv1/conv2` (`ResidualBlockNoBN`),
/// `conv_after_body`. The official forward computes `res + x` and then discards it: the encoder
/// output is `conv_after_body(body(conv_first(x)))`, without the global skip. `res_scale` is 1
/// (it is not stored in checkpoints; the official GSASR configs all use 1).
public struct EDSRNOUP: @unchecked Sendable {
    /// The constructor arguments (`EDSRNOUP(num_in_ch, num_out_ch, num_feat, num_block)`;
    /// num_out_ch, upscale and res_scale do not change the module tree).
    public struct Config: Codable, Sendable, Equatable {
        public var numInChannels = 3
        public var numFeat: Int
        public var numBlock: Int
        public init(numFeat: Int, numBlock: Int, numInChannels: Int = 3) {
            self.numFeat = numFeat
            self.numBlock = numBlock
            self.numInChannels = numInChannels
        }
    }

    /// `ResidualBlockNoBN`: x + conv2(relu(conv1(x))).
    public struct ResidualBlockNoBN: @unchecked Sendable {
        public let conv1: Conv2d
        public let conv2: Conv2d
        init(_ s: ParameterSource, feat: Int) throws {
            conv1 = try Conv2d(s("conv1"), in: feat, out: feat)
            conv2 = try Conv2d(s("conv2"), in: feat, out: feat)
        }
    }

    public let config: Config
    public var numInChannels: Int { config.numInChannels }
    public var numFeat: Int { config.numFeat }
    public let convFirst: Conv2d
    public let body: [ResidualBlockNoBN]
    public let convAfterBody: Conv2d

    /// The declaration: every parameter, in `state_dict()` order.
    public init(_ s: ParameterSource, config: Config) throws {
        self.config = config
        let f = config.numFeat
        convFirst = try Conv2d(s("conv_first"), in: config.numInChannels, out: f)
        body = try (0..<config.numBlock).map { try ResidualBlockNoBN(s("body")($0), feat: f) }
        convAfterBody = try Conv2d(s("conv_after_body"), in: f, out: f)
    }

    /// The activations the backward needs: the input of every convolution.
    public struct Context {
        let height: Int, width: Int
        let input: Tensor
        /// Per block: the block input f (conv1's input) and the ReLU output t (conv2's input).
        let blockInputs: [Tensor], hidden: [Tensor]
        let lastFeature: Tensor
    }

    /// x: (h, w, num_in_ch) channels-last → (h, w, num_feat).
    public func callAsFunction(_ x: Tensor, height h: Int, width w: Int) -> Tensor {
        forward(x, height: h, width: w, saving: false, step: { _, _ in }).0
    }

    /// `step(done, total)` runs after each residual block (for progress, and to stop a run by
    /// throwing: nothing is left half-written, the caller just drops the result).
    public func callAsFunction(
        _ x: Tensor, height h: Int, width w: Int, step: (_ done: Int, _ total: Int) throws -> Void
    ) rethrows -> Tensor {
        try forward(x, height: h, width: w, saving: false, step: step).0
    }

    /// The forward; with `saving`, also the ``Context`` of `backward(_:dOut:grads:profile:)`
    /// (the residual sums are then new tensors, so the saved inputs are never overwritten).
    public func forward(
        _ x: Tensor, height h: Int, width w: Int, saving: Bool, profile: StepProfile? = nil,
        step: (_ done: Int, _ total: Int) throws -> Void
    ) rethrows -> (Tensor, Context?) {
        var f = timed(profile, "encoder.conv_first", .forward) { convFirst(x, height: h, width: w) }
        var inputs: [Tensor] = [], hidden: [Tensor] = []
        try timed(profile, "encoder.body", .forward) {
            for (i, blk) in body.enumerated() {
                let t = blk.conv1(f, height: h, width: w)
                Kernels.relu(t)
                let u = blk.conv2(t, height: h, width: w)
                Kernels.add(u, f)
                if saving {
                    inputs.append(f)
                    hidden.append(t)
                }
                f = u
                try step(i + 1, body.count)
            }
        }
        let y = timed(profile, "encoder.conv_after_body", .forward) { convAfterBody(f, height: h, width: w) }
        guard saving else { return (y, nil) }
        return (y, Context(height: h, width: w, input: x, blockInputs: inputs, hidden: hidden, lastFeature: f))
    }

    /// Accumulates every parameter's gradient from dL/d(output). The input image needs no
    /// gradient.
    public func backward(_ c: Context, dOut: Tensor, grads: Gradients, profile: StepProfile? = nil) {
        let h = c.height, w = c.width
        var df = timed(profile, "encoder.conv_after_body", .backward) {
            convAfterBody.backward(input: c.lastFeature, height: h, width: w, dy: dOut, grads: grads)!
        }
        timed(profile, "encoder.body", .backward) {
            for i in stride(from: body.count - 1, through: 0, by: -1) {
                let blk = body[i]
                let dt = blk.conv2.backward(input: c.hidden[i], height: h, width: w, dy: df, grads: grads)!
                Kernels.reluBackward(dt, output: c.hidden[i])
                let dIn = blk.conv1.backward(input: c.blockInputs[i], height: h, width: w, dy: dt, grads: grads)!
                Kernels.add(dIn, df)
                df = dIn
            }
        }
        timed(profile, "encoder.conv_first", .backward) {
            _ = convFirst.backward(input: c.input, height: h, width: w, dy: df, grads: grads, needDX: false)
        }
    }

    /// Convolution FLOPs (2 per multiply-add) for an h × w input.
    public func flops(height h: Int, width w: Int) -> Double {
        let p = Double(h * w), f = Double(numFeat)
        return 2 * p * 9 * (Double(numInChannels) * f + Double(2 * body.count + 1) * f * f)
    }
}

extension EDSRNOUP: EncoderArchitecture {
    public static let officialName = "EDSRNOUP"
    public static var trainable: Bool { true }

    /// num_feat and num_in_ch from `conv_first.weight` ([num_feat, num_in_ch, 3, 3]), num_block
    /// from the number of `body.{i}` blocks; the declaration then checks every key.
    public static func hyperparameters(inferredFrom sd: StateDict) throws -> Config {
        guard let first = sd["conv_first.weight"] else { throw ModelLoadError("no key 'conv_first.weight'") }
        let s = first.shape
        guard s.count == 4, s[2] == 3, s[3] == 3 else {
            throw ModelLoadError("'conv_first.weight' has shape \(s), expected [num_feat, num_in_ch, 3, 3]")
        }
        for (name, v) in [("num_feat", s[0]), ("num_in_ch", s[1])] where v < 1 || v > ModelConfigFile.maxInt {
            throw ModelLoadError("'conv_first.weight' gives \(name) \(v), outside 1...\(ModelConfigFile.maxInt)")
        }
        guard sd["conv_after_body.weight"] != nil else { throw ModelLoadError("no key 'conv_after_body.weight'") }
        var blocks = 0
        while sd["body.\(blocks).conv1.weight"] != nil { blocks += 1 }
        return Config(numFeat: s[0], numBlock: blocks, numInChannels: s[1])
    }

    public var inChannels: Int { numInChannels }
    public var outChannels: Int { numFeat }
    /// conv_first, two convolutions per block, conv_after_body: one pixel each.
    public var reach: Int { 2 + 2 * body.count }

    /// The input, two feature maps and a convolution's scratch, about 4 maps of num_feat.
    public func workingFloats(height h: Int, width w: Int) -> Double { 4 * Double(numFeat) * Double(h) * Double(w) }

    public func encode(
        _ x: Tensor, height h: Int, width w: Int, saving: Bool, profile: StepProfile?,
        step: (_ done: Int, _ total: Int) throws -> Void
    ) rethrows -> (Tensor, (any EncoderContext)?) {
        let (y, c) = try forward(x, height: h, width: w, saving: saving, profile: profile, step: step)
        return (y, c)
    }

    public func backward(_ context: any EncoderContext, dOut: Tensor, grads: Gradients, profile: StepProfile?) {
        guard let c = context as? Context else { preconditionFailure("EDSRNOUP.backward: not an EDSRNOUP context") }
        backward(c, dOut: dOut, grads: grads, profile: profile)
    }

    /// The official constructor's arguments (`num_out_ch`, `upscale` and `res_scale` as the GSASR
    /// configs set them: they do not change the module tree).
    public var configArguments: [String: ArgumentValue] {
        [
            "num_in_ch": .int(numInChannels), "num_out_ch": .int(3), "num_feat": .int(numFeat),
            "num_block": .int(body.count), "upscale": .int(4), "res_scale": .int(1),
        ]
    }
}

extension EDSRNOUP.Context: EncoderContext {}
