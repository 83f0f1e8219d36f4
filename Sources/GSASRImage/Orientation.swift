/// Exif orientation (TIFF tag 0x0112): how the stored pixels must be turned to be upright.
///
/// | value | stored → upright | upright pixel (x, y) comes from stored |
/// |---|---|---|
/// | 1 | as is | (x, y) |
/// | 2 | mirror left-right | (W−1−x, y) |
/// | 3 | rotate 180° | (W−1−x, H−1−y) |
/// | 4 | mirror top-bottom | (x, H−1−y) |
/// | 5 | transpose | (y, x) |
/// | 6 | rotate 90° clockwise | (y, H−1−x) |
/// | 7 | transverse | (W−1−y, H−1−x) |
/// | 8 | rotate 90° counter-clockwise | (W−1−y, x) |
///
/// W × H is the stored size; orientations 5-8 swap width and height.
enum Orientation {
    /// Turns interleaved samples upright. Values outside 2...8 return the input unchanged.
    static func apply<T>(_ src: [T], width: Int, height: Int, channels: Int, orientation: Int)
        -> (pixels: [T], width: Int, height: Int)
    {
        guard (2...8).contains(orientation), !src.isEmpty else { return (src, width, height) }
        let swaps = orientation >= 5
        let outW = swaps ? height : width, outH = swaps ? width : height
        var out = src  // same count; every element is overwritten
        src.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { d in
                for y in 0..<outH {
                    for x in 0..<outW {
                        let sx: Int, sy: Int
                        switch orientation {
                        case 2: (sx, sy) = (width - 1 - x, y)
                        case 3: (sx, sy) = (width - 1 - x, height - 1 - y)
                        case 4: (sx, sy) = (x, height - 1 - y)
                        case 5: (sx, sy) = (y, x)
                        case 6: (sx, sy) = (y, height - 1 - x)
                        case 7: (sx, sy) = (width - 1 - y, height - 1 - x)
                        default: (sx, sy) = (width - 1 - y, x)  // 8
                        }
                        let si = (sy * width + sx) * channels, di = (y * outW + x) * channels
                        for c in 0..<channels { d[di + c] = s[si + c] }
                    }
                }
            }
        }
        return (out, outW, outH)
    }
}
