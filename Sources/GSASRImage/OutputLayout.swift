/// Converts rendered rows (float RGB, plus an alpha plane) into the interleaved layout of the
/// output file, the input of `ImageRowWriter.write(rows:rowCount:)`.
public enum OutputLayout {
    /// Samples per pixel in the file: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA.
    public static func channels(grey: Bool, alpha: Bool) -> Int { (grey ? 1 : 3) + (alpha ? 1 : 0) }

    /// Interleaves `rowCount` rows of `width` pixels into the file layout.
    ///
    /// `rgb` holds `rowCount·width·3` samples (HWC), `alpha` nil or `rowCount·width` samples.
    /// With `grey`, the output value is the mean of the three rendered channels,
    /// `(r + g + b) / 3` in Float32. This is an assumption: the model runs on RGB (grey inputs are
    /// replicated to three channels, as the official code does), and its three outputs for a
    /// grey input are close but not equal, so none of them alone is the answer; their mean is.
    /// Nothing is clamped here (the writer quantises). The rows may be a band of a larger image.
    package static func outputRows(
        rgb: UnsafeBufferPointer<Float>, alpha: UnsafeBufferPointer<Float>?, rowCount: Int, width: Int, grey: Bool
    ) -> [Float] {
        let n = rowCount * width
        precondition(rgb.count == n * 3, "rgb has \(rgb.count) samples, expected \(n * 3)")
        precondition(alpha == nil || alpha!.count == n, "alpha has \(alpha!.count) samples, expected \(n)")
        let channels = Self.channels(grey: grey, alpha: alpha != nil)
        var out = [Float](repeating: 0, count: n * channels)
        out.withUnsafeMutableBufferPointer { dst in
            for i in 0..<n {
                let r = rgb[i * 3], g = rgb[i * 3 + 1], b = rgb[i * 3 + 2]
                let o = i * channels
                if grey {
                    dst[o] = (r + g + b) / 3
                } else {
                    dst[o] = r
                    dst[o + 1] = g
                    dst[o + 2] = b
                }
                if let alpha { dst[o + channels - 1] = alpha[i] }
            }
        }
        return out
    }

    /// Array form of `outputRows(rgb:alpha:rowCount:width:grey:)`.
    public static func outputRows(rgb: [Float], alpha: [Float]?, rowCount: Int, width: Int, grey: Bool) -> [Float] {
        rgb.withUnsafeBufferPointer { r in
            if let alpha {
                return alpha.withUnsafeBufferPointer { a in
                    outputRows(rgb: r, alpha: a, rowCount: rowCount, width: width, grey: grey)
                }
            }
            return outputRows(rgb: r, alpha: nil, rowCount: rowCount, width: width, grey: grey)
        }
    }
}
