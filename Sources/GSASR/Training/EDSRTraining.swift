import GSASRTensor

/// The activations the encoder's backward needs: the input of every convolution.
public struct EDSRContext {
    let height: Int, width: Int
    let input: Tensor
    /// Per block: the block input f (conv1's input) and the ReLU output t (conv2's input).
    let blockInputs: [Tensor], hidden: [Tensor]
    let lastFeature: Tensor
}

extension EDSRNOUP {
    /// The forward of ``callAsFunction(_:height:width:)`` keeping its activations.
    public func forwardTraining(_ x: Tensor, height h: Int, width w: Int, profile: StepProfile? = nil) -> (
        Tensor, EDSRContext
    ) {
        var f = timed(profile, "encoder.conv_first", .forward) { convFirst(x, height: h, width: w) }
        var inputs: [Tensor] = [], hidden: [Tensor] = []
        timed(profile, "encoder.body", .forward) {
            for blk in body {
                let t = blk.conv1(f, height: h, width: w)
                Kernels.relu(t)
                let u = blk.conv2(t, height: h, width: w)
                Kernels.add(u, f)
                inputs.append(f)
                hidden.append(t)
                f = u
            }
        }
        let y = timed(profile, "encoder.conv_after_body", .forward) { convAfterBody(f, height: h, width: w) }
        return (y, EDSRContext(height: h, width: w, input: x, blockInputs: inputs, hidden: hidden, lastFeature: f))
    }

    /// Accumulates every parameter's gradient from dL/d(output). The input image needs no
    /// gradient.
    public func backward(_ c: EDSRContext, dOut: Tensor, grads: Gradients, profile: StepProfile? = nil) {
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
}
