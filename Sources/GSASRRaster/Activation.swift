import Foundation

/// The official `generate_2D_gaussian_splatting_step` front end: from the decoder's raw
/// output (N×9 `[s0, s1, rho_raw, alpha_raw, r, g, b, mean_x, mean_y]`) to kernel inputs, and
/// the chain rule back.
///
/// Float32 semantics of the official code:
/// * `sigma_x = 0.99999·sigmoid(s0) + 1e-6`, `sigma_y = 0.99999·sigmoid(s1) + 1e-6`,
///   `rho = 0.999999·tanh(rho_raw)`, `alpha = sigmoid(alpha_raw)`, `colour = sigmoid(rgb)·alpha`.
/// * `step = (1/Float(scale))·1.2` (torch computes `1.2/t` as `t.reciprocal()*1.2`).
/// * kernel sigmas (note the swap): `sx = ((sigma_y/step)·2)/Float(W-1)`,
///   `sy = ((sigma_x/step)·2)/Float(H-1)`.
/// * coordinates: `c = mean·2 - 1`, `x = ((c_x + 1) - 1/Float(W))·Float(W)/Float(W-1) - 1`,
///   likewise y with H. W, H are the render size. That is pixel position `mean·W − ½` (pixel
///   centres at whole numbers); ours generalises the `Float(W)` that multiplies the mean to an
///   extent `E` (``GaussianGeometry``): `x = ((c_x + 1) - 1/Float(E))·Float(E)/Float(W-1) - 1`,
///   pixel position `mean·E − ½`, with `E = W` the official computation bit for bit.
public enum GaussianActivation {
    @inline(__always)
    static func sigmoid(_ v: Float) -> Float { 1 / (1 + Foundation.exp(-v)) }

    /// The step size `1.2/scale` in float32 as torch computes it.
    public static func stepSize(scale: Float) -> Float {
        (1 / scale) * Float(1.2)
    }

    /// Kernel inputs from raw decoder output (N×9, row-major).
    package static func kernels(fromRaw raw: UnsafeBufferPointer<Float>, width: Int, height: Int, scale: Float)
        -> GaussianKernels
    {
        kernels(fromRaw: raw, width: width, height: height, scaleX: scale, scaleY: scale)
    }

    /// Kernel inputs with a scale per axis (ours; the official code is isotropic): the
    /// kernel's x sigma uses `1.2/scaleX`, its y sigma `1.2/scaleY`; the correlation and the
    /// normalised means do not change under an axis stretch. With scaleX = scaleY this is the
    /// official computation, bit for bit.
    ///
    /// `extentX`/`extentY` are the output lengths that the means' unit interval spans
    /// (``GaussianGeometry/meanExtent(paddedSide:scale:)``): a mean `m` lands at pixel position
    /// `m·extent − ½` of the `width × height` render. Nil (the official geometry) is the render
    /// size itself.
    package static func kernels(
        fromRaw raw: UnsafeBufferPointer<Float>, width: Int, height: Int, scaleX: Float, scaleY: Float,
        extentX: Double? = nil, extentY: Double? = nil
    ) -> GaussianKernels {
        precondition(raw.count % 9 == 0, "raw must be N×9")
        let n = raw.count / 9
        let stepX = stepSize(scale: scaleX), stepY = stepSize(scale: scaleY)
        let wm1 = Float(width - 1), hm1 = Float(height - 1)
        let fw = Float(extentX ?? Double(width)), fh = Float(extentY ?? Double(height))
        let invW = 1 / fw, invH = 1 / fh
        var sig = [Float](repeating: 0, count: 3 * n)
        var co = [Float](repeating: 0, count: 2 * n)
        var col = [Float](repeating: 0, count: 3 * n)
        for i in 0..<n {
            let p = raw.baseAddress! + 9 * i
            let sigmaX = Float(0.99999) * sigmoid(p[0]) + Float(1e-6)
            let sigmaY = Float(0.99999) * sigmoid(p[1]) + Float(1e-6)
            let rho = Float(0.999999) * tanhf(p[2])
            let alpha = sigmoid(p[3])
            sig[3 * i] = ((sigmaY / stepX) * 2) / wm1
            sig[3 * i + 1] = ((sigmaX / stepY) * 2) / hm1
            sig[3 * i + 2] = rho
            col[3 * i] = sigmoid(p[4]) * alpha
            col[3 * i + 1] = sigmoid(p[5]) * alpha
            col[3 * i + 2] = sigmoid(p[6]) * alpha
            let cx = p[7] * 2 - 1
            let cy = p[8] * 2 - 1
            co[2 * i] = ((cx + 1) - invW) * fw / wm1 - 1
            co[2 * i + 1] = ((cy + 1) - invH) * fh / hm1 - 1
        }
        return GaussianKernels(sigmas: sig, coords: co, colors: col)
    }

    /// The opacities `alpha = sigmoid(alpha_raw)` (N), the same Float32 values that
    /// ``kernels(fromRaw:width:height:scaleX:scaleY:)`` multiplies the colours by.
    package static func opacities(fromRaw raw: UnsafeBufferPointer<Float>) -> [Float] {
        precondition(raw.count % 9 == 0, "raw must be N×9")
        let n = raw.count / 9
        return [Float](unsafeUninitializedCapacity: n) { buf, initialized in
            for i in 0..<n { buf[i] = sigmoid(raw[9 * i + 3]) }
            initialized = n
        }
    }

    /// Kernel inputs from raw decoder output (N×9, row-major).
    public static func kernels(fromRaw raw: [Float], width: Int, height: Int, scale: Float) -> GaussianKernels {
        raw.withUnsafeBufferPointer { kernels(fromRaw: $0, width: width, height: height, scale: scale) }
    }

    /// Chains kernel-level gradients back to the raw decoder output (N×9). Derivatives are
    /// evaluated in double from the float32 forward values. `extentX`/`extentY` as in
    /// ``kernels(fromRaw:width:height:scaleX:scaleY:extentX:extentY:)`` (nil: the render size;
    /// training crops have whole canvases, where both geometries agree).
    package static func rawGradients(
        raw: UnsafeBufferPointer<Float>, kernelGrads g: KernelGradients, width: Int, height: Int, scale: Float,
        extentX: Double? = nil, extentY: Double? = nil
    ) -> [Float] {
        precondition(raw.count % 9 == 0 && raw.count / 9 == g.count, "raw and gradients disagree on N")
        let n = raw.count / 9
        let step = Double(stepSize(scale: scale))
        let dsxk = 2 / (step * Double(width - 1))  // d sx_kernel / d sigma_y
        let dsyk = 2 / (step * Double(height - 1))  // d sy_kernel / d sigma_x
        let dxm = 2 * Double(Float(extentX ?? Double(width))) / Double(width - 1)
        let dym = 2 * Double(Float(extentY ?? Double(height))) / Double(height - 1)
        var out = [Float](repeating: 0, count: 9 * n)
        for i in 0..<n {
            let p = raw.baseAddress! + 9 * i
            @inline(__always) func sig(_ v: Float) -> Double { 1 / (1 + Foundation.exp(-Double(v))) }
            let s0 = sig(p[0]), s1 = sig(p[1])
            let th = tanh(Double(p[2]))
            let al = sig(p[3])
            let cr = sig(p[4]), cg = sig(p[5]), cb = sig(p[6])
            let gsx = Double(g.sigmas[3 * i]), gsy = Double(g.sigmas[3 * i + 1]), grho = Double(g.sigmas[3 * i + 2])
            let gr = Double(g.colors[3 * i]), gg = Double(g.colors[3 * i + 1]), gb = Double(g.colors[3 * i + 2])
            out[9 * i + 0] = Float(gsy * dsyk * 0.99999 * s0 * (1 - s0))
            out[9 * i + 1] = Float(gsx * dsxk * 0.99999 * s1 * (1 - s1))
            out[9 * i + 2] = Float(grho * 0.999999 * (1 - th * th))
            out[9 * i + 3] = Float((gr * cr + gg * cg + gb * cb) * al * (1 - al))
            out[9 * i + 4] = Float(gr * al * cr * (1 - cr))
            out[9 * i + 5] = Float(gg * al * cg * (1 - cg))
            out[9 * i + 6] = Float(gb * al * cb * (1 - cb))
            out[9 * i + 7] = Float(Double(g.coords[2 * i]) * dxm)
            out[9 * i + 8] = Float(Double(g.coords[2 * i + 1]) * dym)
        }
        return out
    }

    /// Array convenience for ``rawGradients(raw:kernelGrads:width:height:scale:)``.
    public static func rawGradients(raw: [Float], kernelGrads: KernelGradients, width: Int, height: Int, scale: Float)
        -> [Float]
    {
        raw.withUnsafeBufferPointer {
            rawGradients(raw: $0, kernelGrads: kernelGrads, width: width, height: height, scale: scale)
        }
    }

    /// Render size of the official inference: `floor(scale·paddedH) × floor(scale·paddedW)`
    /// with the scale in double (e.g. floor(11.3·60) = 678). Both geometries render on this
    /// canvas; they differ in where the means land on it (``GaussianGeometry``).
    public static func renderSize(paddedHeight: Int, paddedWidth: Int, scale: Double) -> (height: Int, width: Int) {
        (Int((scale * Double(paddedHeight)).rounded(.down)), Int((scale * Double(paddedWidth)).rounded(.down)))
    }
}

extension Rasterizer {
    /// The whole official render step: activations, rasterization at W×H, HWC RGB output.
    public func render(raw: [Float], width: Int, height: Int, scale: Float) -> [Float] {
        forward(
            GaussianActivation.kernels(fromRaw: raw, width: width, height: height, scale: scale), width: width,
            height: height)
    }

    /// Gradient of `Σ render(raw)·G` w.r.t. the raw decoder output (N×9).
    public func renderBackward(raw: [Float], width: Int, height: Int, scale: Float, upstream: [Float]) -> [Float] {
        let k = GaussianActivation.kernels(fromRaw: raw, width: width, height: height, scale: scale)
        let g = backward(k, width: width, height: height, upstream: upstream)
        return GaussianActivation.rawGradients(raw: raw, kernelGrads: g, width: width, height: height, scale: scale)
    }

    /// Batch of full render steps; each image has its own Gaussians, render size and scale.
    public func renderBatch(_ items: [(raw: [Float], width: Int, height: Int, scale: Float)]) -> [[Float]] {
        items.map { render(raw: $0.raw, width: $0.width, height: $0.height, scale: $0.scale) }
    }

    /// Batch of raw-parameter gradients; `upstream[i]` is image i's H×W×3 gradient.
    public func renderBackwardBatch(
        _ items: [(raw: [Float], width: Int, height: Int, scale: Float)], upstream: [[Float]]
    ) -> [[Float]] {
        precondition(items.count == upstream.count)
        return zip(items, upstream).map {
            renderBackward(raw: $0.0.raw, width: $0.0.width, height: $0.0.height, scale: $0.0.scale, upstream: $0.1)
        }
    }
}
