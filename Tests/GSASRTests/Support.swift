import Foundation
import GSASR

/// Locations of fixtures: the small config is copied into the test bundle; the paper config is
/// read from ../shared/golden/edsr_paper beside the package (or $GSASR_GOLDEN) when present.
enum Fixtures {
    static let root = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
    static func url(_ path: String) -> URL { root.appendingPathComponent(path) }

    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let sharedGolden: URL = {
        if let env = ProcessInfo.processInfo.environment["GSASR_GOLDEN"] { return URL(fileURLWithPath: env) }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared/golden")
    }()
    static var paperAvailable: Bool {
        FileManager.default.fileExists(atPath: sharedGolden.appendingPathComponent("edsr_paper/decoder.pth").path)
    }

    static func npy(_ url: URL) throws -> (shape: [Int], floats: [Float]) { try NPY.load(url) }

    /// Golden LR image, HWC RGB float32.
    static func lr(_ name: String) throws -> (pixels: [Float], width: Int, height: Int) {
        let img = try ImageIO.load(url("inputs/\(name)_lr.png"))
        return (img.rgb.pixels, img.rgb.width, img.rgb.height)
    }
}

/// Error statistics between two float arrays.
struct Diff: CustomStringConvertible {
    var maxAbs: Double = 0
    var meanAbs: Double = 0
    /// max over elements of |d| / (atol + rtol·|ref|) for the (1e-4, 1e-4) criterion.
    var worstRatio: Double = 0

    init(_ a: [Float], _ ref: [Float], atol: Double = 1e-4, rtol: Double = 1e-4) {
        precondition(a.count == ref.count, "size \(a.count) vs \(ref.count)")
        var s = 0.0
        for i in 0..<a.count {
            let d = abs(Double(a[i]) - Double(ref[i]))
            s += d
            maxAbs = max(maxAbs, d)
            worstRatio = max(worstRatio, d / (atol + rtol * abs(Double(ref[i]))))
        }
        meanAbs = s / Double(max(1, a.count))
        if a.contains(where: { $0.isNaN }) { maxAbs = .nan; worstRatio = .infinity }
    }

    var description: String {
        String(format: "max|d| %.3e  mean|d| %.3e  worst |d|/(1e-4+1e-4|ref|) %.3f", maxAbs, meanAbs, worstRatio)
    }
}

/// NCHW (1, C, H, W) → HWC.
func nchwToHWC(_ x: [Float], c: Int, h: Int, w: Int) -> [Float] {
    var out = [Float](repeating: 0, count: x.count)
    for ch in 0..<c {
        for y in 0..<h {
            for xx in 0..<w { out[(y * w + xx) * c + ch] = x[(ch * h + y) * w + xx] }
        }
    }
    return out
}

/// 8-bit comparison of an SR float image (HWC RGB) with a golden PNG.
func pngDifference(_ sr: [Float], goldenPNG: URL) throws -> (fraction: Double, maxDiff: Int) {
    let g = try ImageIO.load(goldenPNG).rgb
    precondition(g.pixels.count == sr.count)
    var differ = 0, maxDiff = 0
    for i in 0..<sr.count {
        let a = Int(ImageIO.quantize(sr[i]))
        let b = Int(ImageIO.quantize(g.pixels[i]))
        if a != b {
            differ += 1
            maxDiff = max(maxDiff, abs(a - b))
        }
    }
    return (Double(differ) / Double(sr.count), maxDiff)
}

func scaleTag(_ s: Double) -> String {
    s == s.rounded() ? String(Int(s)) : String(s)
}
