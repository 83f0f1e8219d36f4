import Foundation
import GSASRRaster

/// Minimal test-only .npy reader: little-endian f4/f8, C order.
enum TestNPY {
    struct Array {
        var shape: [Int]
        var values: [Double]
        var floats: [Float] { values.map { Float($0) } }
    }

    static func load(_ url: URL) throws -> Array {
        let data = try Data(contentsOf: url)
        let bytes = [UInt8](data)
        guard bytes.count > 10, bytes[0] == 0x93, bytes[1] == 0x4E else { throw NSError(domain: "npy", code: 1) }
        let major = bytes[6]
        let headerLen: Int
        let start: Int
        if major == 1 {
            headerLen = Int(bytes[8]) | Int(bytes[9]) << 8
            start = 10
        } else {
            headerLen = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            start = 12
        }
        let header = String(decoding: bytes[start..<(start + headerLen)], as: UTF8.self)
        guard !header.contains("'fortran_order': True") else { throw NSError(domain: "npy fortran", code: 2) }
        let isF8: Bool
        if header.contains("'<f8'") {
            isF8 = true
        } else if header.contains("'<f4'") {
            isF8 = false
        } else {
            throw NSError(domain: "npy dtype \(header)", code: 3)
        }
        let shapeStr = header.components(separatedBy: "'shape': (")[1].components(separatedBy: ")")[0]
        let shape = shapeStr.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let count = shape.reduce(1, *)
        let off = start + headerLen
        var values = [Double](repeating: 0, count: count)
        bytes.withUnsafeBytes { raw in
            for i in 0..<count {
                if isF8 {
                    values[i] = raw.loadUnaligned(fromByteOffset: off + 8 * i, as: Double.self)
                } else {
                    values[i] = Double(raw.loadUnaligned(fromByteOffset: off + 4 * i, as: Float.self))
                }
            }
        }
        return Array(shape: shape, values: values)
    }
}

enum Fixture {
    static let root = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
    static func load(_ rel: String) throws -> TestNPY.Array { try TestNPY.load(root.appendingPathComponent(rel)) }
    static func floats(_ rel: String) throws -> [Float] { try load(rel).floats }
    static func doubles(_ rel: String) throws -> [Double] { try load(rel).values }

    static func rasterKernels() throws -> GaussianKernels {
        GaussianKernels(
            sigmas: try floats("raster/sigmas.npy"), coords: try floats("raster/coords.npy"),
            colors: try floats("raster/colors.npy"))
    }

    static let sizes: [(h: Int, w: Int)] = [(32, 48), (61, 97), (128, 128)]
    static let dmaxes: [(tag: String, value: Float)] = [("0.1", 0.1), ("1", 1)]
}

/// Error statistics against a reference.
struct ErrStats: CustomStringConvertible {
    var maxAbs = 0.0
    var meanAbs = 0.0
    var maxRel = 0.0
    var fracWithin = 1.0
    var description: String {
        String(format: "max|d|=%.3e mean|d|=%.3e maxRel=%.3e within=%.4f%%", maxAbs, meanAbs, maxRel, fracWithin * 100)
    }

    /// `within`: |d| ≤ rtol·max(|ref|, floorFrac·rms(ref)).
    init(_ got: [Double], _ ref: [Double], rtol: Double = 1e-3, floorFrac: Double = 1e-2) {
        precondition(got.count == ref.count, "size mismatch \(got.count) vs \(ref.count)")
        let rms = (ref.reduce(0) { $0 + $1 * $1 } / Double(max(1, ref.count))).squareRoot()
        let floor = floorFrac * rms
        var sum = 0.0
        var ok = 0
        for i in 0..<ref.count {
            let d = abs(got[i] - ref[i])
            maxAbs = max(maxAbs, d)
            sum += d
            let denom = max(abs(ref[i]), floor)
            if denom > 0 { maxRel = max(maxRel, d / denom) }
            if d <= rtol * denom { ok += 1 }
        }
        meanAbs = sum / Double(max(1, ref.count))
        fracWithin = Double(ok) / Double(max(1, ref.count))
    }
}

extension Array where Element == Float {
    var d: [Double] { map { Double($0) } }
}

/// Deterministic random numbers (SplitMix64).
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform(_ lo: Double = 0, _ hi: Double = 1) -> Double {
        lo + (hi - lo) * Double(next() >> 11) / Double(1 << 53)
    }
    mutating func normal() -> Double {
        let u1 = max(uniform(), 1e-300), u2 = uniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}

/// Generic dense reference of the kernel (all pixels tested against dmax, any float type).
func referenceForward<T: BinaryFloatingPoint>(
    sigmas: [T], coords: [T], colors: [T], width: Int, height: Int, dmax: T
) -> [T] where T: ElementaryFunctions {
    let n = coords.count / 2
    var img = [T](repeating: 0, count: width * height * 3)
    for i in 0..<n {
        let sx = sigmas[3 * i], sy = sigmas[3 * i + 1], rho = sigmas[3 * i + 2]
        let x = coords[2 * i], y = coords[2 * i + 1]
        let w1 = T(-0.5) / (1 - rho * rho)
        for hi in 0..<height {
            let py = T(2.0 * Double(hi) / Double(height - 1) - 1.0)
            let dy = py - y
            if dy > dmax || dy < -dmax { continue }
            for wi in 0..<width {
                let px = T(2.0 * Double(wi) / Double(width - 1) - 1.0)
                let dx = px - x
                if dx > dmax || dx < -dmax { continue }
                let q = dx * dx / (sx * sx) - 2 * rho * dx * dy / (sx * sy) + dy * dy / (sy * sy)
                let v = T.exp(w1 * q)
                for c in 0..<3 { img[(hi * width + wi) * 3 + c] += v * colors[3 * i + c] }
            }
        }
    }
    return img
}

/// Minimal elementary-function protocol so the reference can be generic.
protocol ElementaryFunctions {
    static func exp(_ x: Self) -> Self
}
extension Double: ElementaryFunctions {
    static func exp(_ x: Double) -> Double { Foundation.exp(x) }
}
extension Float: ElementaryFunctions {
    static func exp(_ x: Float) -> Float { Foundation.exp(x) }
}

/// Analytic backward of the kernel in double (the per-pixel formulas, box edge ignored).
func referenceBackward(
    sigmas: [Double], coords: [Double], colors: [Double], width: Int, height: Int, dmax: Double, upstream: [Double]
) -> (sigmas: [Double], coords: [Double], colors: [Double]) {
    let n = coords.count / 2
    var gs = [Double](repeating: 0, count: 3 * n), gc = [Double](repeating: 0, count: 2 * n)
    var gcol = [Double](repeating: 0, count: 3 * n)
    for i in 0..<n {
        let sx = sigmas[3 * i], sy = sigmas[3 * i + 1], rho = sigmas[3 * i + 2]
        let x = coords[2 * i], y = coords[2 * i + 1]
        let w1 = -0.5 / (1 - rho * rho)
        for hi in 0..<height {
            let dy = (2.0 * Double(hi) / Double(height - 1) - 1.0) - y
            if abs(dy) > dmax { continue }
            for wi in 0..<width {
                let dx = (2.0 * Double(wi) / Double(width - 1) - 1.0) - x
                if abs(dx) > dmax { continue }
                let q = dx * dx / (sx * sx) - 2 * rho * dx * dy / (sx * sy) + dy * dy / (sy * sy)
                let v = exp(w1 * q)
                var gp = 0.0
                for c in 0..<3 {
                    let g = upstream[(hi * width + wi) * 3 + c]
                    gcol[3 * i + c] += v * g
                    gp += g * colors[3 * i + c]
                }
                // dq/dθ, dv = v·(w1·dq + q·dw1)
                let dqdx = -(2 * dx / (sx * sx) - 2 * rho * dy / (sx * sy))
                let dqdy = -(2 * dy / (sy * sy) - 2 * rho * dx / (sx * sy))
                let dqdsx = -2 * dx * dx / (sx * sx * sx) + 2 * rho * dx * dy / (sx * sx * sy)
                let dqdsy = -2 * dy * dy / (sy * sy * sy) + 2 * rho * dx * dy / (sx * sy * sy)
                let dqdrho = -2 * dx * dy / (sx * sy)
                let dw1drho = -rho / ((1 - rho * rho) * (1 - rho * rho))
                gc[2 * i] += gp * v * w1 * dqdx
                gc[2 * i + 1] += gp * v * w1 * dqdy
                gs[3 * i] += gp * v * w1 * dqdsx
                gs[3 * i + 1] += gp * v * w1 * dqdsy
                gs[3 * i + 2] += gp * v * (w1 * dqdrho + q * dw1drho)
            }
        }
    }
    return (gs, gc, gcol)
}

/// Double-precision version of the official activations + coordinate transform.
func referenceActivation(raw: [Double], width: Int, height: Int, scale: Double)
    -> (sigmas: [Double], coords: [Double], colors: [Double])
{
    let n = raw.count / 9
    let step = 1.2 / scale
    func sig(_ v: Double) -> Double { 1 / (1 + exp(-v)) }
    var s = [Double](), c = [Double](), col = [Double]()
    for i in 0..<n {
        let p = Array(raw[(9 * i)..<(9 * i + 9)])
        let sgx = 0.99999 * sig(p[0]) + 1e-6, sgy = 0.99999 * sig(p[1]) + 1e-6
        s += [sgy / step * 2 / Double(width - 1), sgx / step * 2 / Double(height - 1), 0.999999 * tanh(p[2])]
        let a = sig(p[3])
        col += [sig(p[4]) * a, sig(p[5]) * a, sig(p[6]) * a]
        let W = Double(width), H = Double(height)
        c += [(p[7] * 2 - 1 + 1 - 1 / W) * W / (W - 1) - 1, (p[8] * 2 - 1 + 1 - 1 / H) * H / (H - 1) - 1]
    }
    return (s, c, col)
}
