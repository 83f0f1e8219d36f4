import Foundation

/// Kernel-level inputs of the rasterizer: exactly the arguments of the official CUDA kernel
/// (after the activations and the coordinate transform).
///
/// Layout (row-major, one row per Gaussian, as in the official `sigmas`/`coords`/`colors` tensors):
/// * `sigmas`: N×3 `[sx, sy, rho]` in normalised units; `sx` divides the *horizontal* offset dx.
/// * `coords`: N×2 `[x, y]` in normalised units (x along the width, y along the height), pixel
///   (hi, wi) sits at `(2·wi/(W-1)-1, 2·hi/(H-1)-1)`.
/// * `colors`: N×3 RGB, already multiplied by alpha.
public struct GaussianKernels: Sendable {
    public var sigmas: [Float]
    public var coords: [Float]
    public var colors: [Float]

    /// Number of Gaussians.
    public var count: Int { coords.count / 2 }

    public init(sigmas: [Float], coords: [Float], colors: [Float]) {
        precondition(sigmas.count % 3 == 0, "sigmas must be N×3")
        precondition(coords.count * 3 == sigmas.count * 2, "coords must be N×2")
        precondition(colors.count == sigmas.count, "colors must be N×3")
        self.sigmas = sigmas
        self.coords = coords
        self.colors = colors
    }
}

/// Gradients of a scalar loss `L = Σ img·G` with respect to the kernel inputs, in the same
/// layout as ``GaussianKernels`` (N×3 sigmas `[sx, sy, rho]`, N×2 coords, N×3 colours).
public struct KernelGradients: Sendable {
    public var sigmas: [Float]
    public var coords: [Float]
    public var colors: [Float]

    public var count: Int { coords.count / 2 }

    public init(sigmas: [Float], coords: [Float], colors: [Float]) {
        self.sigmas = sigmas
        self.coords = coords
        self.colors = colors
    }
}

/// How a Gaussian's footprint is chosen.
public enum RasterMode: Sendable, Equatable {
    /// The official semantics: every pixel inside the `dmax` box (per-axis strict `>` tests in
    /// float32, as in gs.cu) is evaluated.
    case exact
    /// The footprint is the `dmax` box intersected with the ellipse where the (unnormalised)
    /// Gaussian value `v = exp(-q/2) ≥ epsilon`, q = the Mahalanobis form of the kernel
    /// (which uses 1/(1-ρ²)). The ellipse `q ≤ T`, `T = 2·ln(1/ε)`, has the bounding box
    /// `|dx| ≤ sx·√T`, `|dy| ≤ sy·√T`; on each row `dy` its x-range is
    /// `dx/sx ∈ ρ·dy/sy ± √((1-ρ²)(T - dy²/sy²))`. Pixels that are evaluated get exactly the
    /// same value as in ``exact``; each skipped pixel/Gaussian pair has `v < ε` (its
    /// contribution is < ε·colour ≤ ε).
    case fast(epsilon: Float)

    /// The default fast mode. `ε = 1e-7`, which keeps `max |fast − exact| ≤ 1e-6` on the raster
    /// goldens, the small full-pipeline renders and the 4 benchmark cases (measured; see the
    /// tests and `RasterBench`).
    public static let fast: RasterMode = .fast(epsilon: RasterMode.defaultEpsilon)

    /// ε of ``fast``.
    public static let defaultEpsilon: Float = 1e-7
}
