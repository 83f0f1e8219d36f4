import Foundation
import GSASR
import ZIPFoundation

/// The golden training step of ../shared/golden/train_step (official code, small config).
enum TrainGolden {
    static let root = Fixtures.sharedGolden.appendingPathComponent("train_step")
    static var available: Bool {
        FileManager.default.fileExists(atPath: root.appendingPathComponent("step1/grads_f32.npz").path)
    }
    static func url(_ p: String) -> URL { root.appendingPathComponent(p) }

    /// Members of an `.npz` (a ZIP of `.npy` files), keyed by name without `.npy`.
    static func npz(_ path: String) throws -> [String: (shape: [Int], floats: [Float])] {
        let archive = try Archive(url: url(path), accessMode: .read)
        var out: [String: (shape: [Int], floats: [Float])] = [:]
        for entry in archive {
            var data = Data()
            _ = try archive.extract(entry, skipCRC32: true) { data.append($0) }
            let name = entry.path.hasSuffix(".npy") ? String(entry.path.dropLast(4)) : entry.path
            out[name] = try NPY.load(data: data, name: entry.path)
        }
        return out
    }

    /// The batch: LR (24x24) and GT per sample, scale_modify.
    static func batch() throws -> [TrainingPair] {
        let names = [("A_chelsea", 60, Float(2.5)), ("B_rocket", 78, Float(3.25))]
        return try names.map { name, gt, s in
            let lr = try NPY.load(url("inputs/\(name)_lr_24x24.npy")).floats
            let g = try NPY.load(url("inputs/\(name)_gt_\(gt)x\(gt).npy")).floats
            return TrainingPair(lr: lr, lrSize: 24, gt: g, gtSize: gt, scaleModify: s)
        }
    }

    /// The small model with the golden initial parameters.
    static func model() throws -> GSASRModel {
        try GSASRModel.load(directory: Fixtures.url("small"))
    }
}

/// Per-tensor gradient comparison, the acceptance rule of train_step/README.md §4:
/// relative L2 ≤ 2e-3 and every element |Δ| ≤ 1e-8 + 1e-2·max|g_ref| + 2e-3·|g_ref|.
struct GradCheck {
    var relL2: Double = 0
    var failing = 0
    var worstRatio: Double = 0
    var maxRef: Double = 0

    init(_ a: [Float], _ ref: [Float]) {
        precondition(a.count == ref.count)
        var num = 0.0, den = 0.0
        for r in ref { maxRef = max(maxRef, abs(Double(r))) }
        for i in 0..<a.count {
            let d = Double(a[i]) - Double(ref[i])
            num += d * d
            den += Double(ref[i]) * Double(ref[i])
            let tol = 1e-8 + 1e-2 * maxRef + 2e-3 * abs(Double(ref[i]))
            if !(abs(d) <= tol) { failing += 1 }
            worstRatio = max(worstRatio, abs(d) / tol)
        }
        relL2 = den > 0 ? (num / den).squareRoot() : num.squareRoot()
    }
}
