import Foundation

/// Where the decoder's normalised means land on the output pixel grid.
///
/// The decoder places Gaussian `i` at a normalised mean `m = (m_x, m_y)`, a fraction of the
/// reflect-padded LR image (`Wp × Hp` pixels): `m_x = 0` is the padded image's left edge and
/// `m_x = 1` its right edge. Upscaling by `s` maps an LR position `u` (in LR pixels, from the
/// left edge) to `s·u` output pixels, and output pixel `k` covers `[k, k + 1)`, its centre at
/// `k + ½`. With pixel *centres* at whole numbers, as the rasterizer counts them, the centre of
/// Gaussian `i` is therefore at output pixel position
///
///     p = m_x·E − ½,   E = the output length that the padded LR width spans,
///
/// and likewise on y with `Hp`. The two geometries differ only in `E`:
///
/// * ``exact`` (ours, the default): `E = s·Wp`, the true extent, in Double. An LR position `u`
///   lands at output position `s·u − ½`, the same place that MATLAB-style bicubic (`imresize`)
///   and the HR photo put it, at every scale.
/// * ``official``: `E = floor(s·Wp)`, the render canvas. This is what the official
///   `generate_2D_gaussian_splatting_step` computes: it normalises the means to the canvas with
///   `((2m − 1 + 1) − 1/W)·W/(W − 1) − 1` (`W` = canvas width), which is the pixel position
///   `m·W − ½`. Where `s·Wp` is not whole the picture is squeezed toward the top-left corner by
///   `floor(s·Wp)/(s·Wp)`: up to almost one output pixel at the far edge. At integer canvases
///   (every integer scale; every training crop, whose canvas is `round(s·48)` at scale
///   `round(s·48)/48`) the two are the same number.
///
/// Nothing else depends on the geometry: the σ conversion already uses the true scale
/// (`σ·s/1.2` output pixels), and the canvas size, the crop of the output from it, the `dmax`
/// box (normalised to the canvas) and the tiles' placement (in units of the Gaussian grid) are
/// shared by both (README, "Assumptions").
public enum GaussianGeometry: String, Sendable, CaseIterable, Codable {
    /// Means map to the true extent `s·Wp` (ours; the default).
    case exact
    /// Means map to the floored canvas `floor(s·Wp)`, as the official code (bit for bit).
    case official

    /// The default of the command line, the server and the library.
    public static let `default`: GaussianGeometry = .exact

    /// Parses a user's spelling (case-insensitive); the error lists the accepted values.
    public init(parsing text: String) throws {
        guard let g = GaussianGeometry(rawValue: text.lowercased()) else {
            throw GaussianGeometryError(
                "geometry '\(text)' is not one of \(GaussianGeometry.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self = g
    }

    /// The output length `E` (in output pixels, fractional for ``exact``) that the normalised
    /// means' unit interval spans on an axis whose padded LR side is `paddedSide` pixels,
    /// at scale `scale`: `s·paddedSide` or `floor(s·paddedSide)` (Double, as Python computes
    /// the official canvas).
    public func meanExtent(paddedSide: Int, scale: Double) -> Double {
        let e = scale * Double(paddedSide)
        switch self {
        case .exact: return e
        case .official: return e.rounded(.down)
        }
    }
}

/// An unknown geometry name. One line.
public struct GaussianGeometryError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
