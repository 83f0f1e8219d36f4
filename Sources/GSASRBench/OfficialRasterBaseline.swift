import Dispatch
import Foundation
import GSASRRaster

/// A faithful CPU port of the *algorithm* of the official `gs_cuda_dmax` kernels, used only as
/// the benchmark baseline: one work item per Gaussian; the forward loops over all rows (row
/// test) and, for rows that pass, over all columns (column test); the backward loops over all
/// H×W pixels with the box test, as the CUDA backward does. Parallel over Gaussians; the forward
/// accumulates into one full-size image per thread (instead of atomics), summed at the end.
public enum OfficialRasterBaseline {
    /// Forward over the Gaussians `indices` (all when nil). Returns the HWC image.
    public static func forward(
        _ k: GaussianKernels, width w: Int, height h: Int, dmax: Float, threads: Int, indices: [Int]? = nil
    ) -> [Float] {
        let n = indices?.count ?? k.count
        let threads = max(1, threads)
        let size = h * w * 3
        let images = UnsafeMutablePointer<Float>.allocate(capacity: size * threads)
        defer { images.deallocate() }
        images.initialize(repeating: 0, count: size * threads)
        k.sigmas.withUnsafeBufferPointer { sig in
            k.coords.withUnsafeBufferPointer { co in
                k.colors.withUnsafeBufferPointer { col in
                    DispatchQueue.concurrentPerform(iterations: threads) { t in
                        let img = images + t * size
                        let lo = n * t / threads, hi = n * (t + 1) / threads
                        for j in lo..<hi {
                            let s = indices?[j] ?? j
                            let sigmaX = sig[s * 3], sigmaY = sig[s * 3 + 1], rho = sig[s * 3 + 2]
                            let x = co[s * 2], y = co[s * 2 + 1]
                            let r = col[s * 3], g = col[s * 3 + 1], b = col[s * 3 + 2]
                            let w1 = Float(-0.5 / Double(1 - rho * rho))
                            let a = Float(1.0 / Double(sigmaX) / Double(sigmaX))
                            let c = Float(1.0 / Double(sigmaY) / Double(sigmaY))
                            let bb = 2 * rho / sigmaX / sigmaY
                            for hi in 0..<h {
                                let curh = Float(2.0 * Double(hi) / Double(h - 1) - 1.0)
                                let dy = curh - y
                                if dy > dmax || dy < -dmax { continue }
                                for wi in 0..<w {
                                    let curw = Float(2.0 * Double(wi) / Double(w - 1) - 1.0)
                                    let dx = curw - x
                                    if dx > dmax || dx < -dmax { continue }
                                    var v = a * dx * dx
                                    v -= bb * dx * dy
                                    v += c * dy * dy
                                    v *= w1
                                    v = Foundation.exp(v)
                                    let p = (hi * w + wi) * 3
                                    img[p] += v * r
                                    img[p + 1] += v * g
                                    img[p + 2] += v * b
                                }
                            }
                        }
                    }
                }
            }
        }
        var out = [Float](repeating: 0, count: size)
        for t in 0..<threads {
            for i in 0..<size { out[i] += images[t * size + i] }
        }
        return out
    }

    /// Backward over the Gaussians `indices` (all when nil); returns (sigmas, coords, colors)
    /// gradients for those Gaussians, in the order of `indices`.
    public static func backward(
        _ k: GaussianKernels, width w: Int, height h: Int, dmax: Float, upstream: [Float], threads: Int,
        indices: [Int]? = nil
    ) -> KernelGradients {
        let n = indices?.count ?? k.count
        let threads = max(1, threads)
        var gs = [Float](repeating: 0, count: 3 * n), gc = [Float](repeating: 0, count: 2 * n)
        var gcol = [Float](repeating: 0, count: 3 * n)
        gs.withUnsafeMutableBufferPointer { gsb in
            gc.withUnsafeMutableBufferPointer { gcb in
                gcol.withUnsafeMutableBufferPointer { gcolb in
                    k.sigmas.withUnsafeBufferPointer { sig in
                        k.coords.withUnsafeBufferPointer { co in
                            k.colors.withUnsafeBufferPointer { col in
                                upstream.withUnsafeBufferPointer { grads in
                                    let gsp = gsb.baseAddress!, gcp = gcb.baseAddress!, gcolp = gcolb.baseAddress!
                                    DispatchQueue.concurrentPerform(iterations: threads) { t in
                                        let lo = n * t / threads, hi = n * (t + 1) / threads
                                        for j in lo..<hi {
                                            let s = indices?[j] ?? j
                                            let sigmaX = sig[s * 3], sigmaY = sig[s * 3 + 1], rho = sig[s * 3 + 2]
                                            let x = co[s * 2], y = co[s * 2 + 1]
                                            let w1 = Float(-0.5 / Double(1 - rho * rho))
                                            let w2 = Float(1.0 / Double(sigmaX * sigmaX))
                                            let w3 = Float(1.0 / Double(sigmaX * sigmaY))
                                            let w4 = Float(1.0 / Double(sigmaY * sigmaY))
                                            let odSx = Float(1.0 / Double(sigmaX))
                                            let odSy = Float(1.0 / Double(sigmaY))
                                            for hi in 0..<h {
                                                for wi in 0..<w {
                                                    let curw = Float(2.0 * Double(wi) / Double(w - 1) - 1.0)
                                                    let curh = Float(2.0 * Double(hi) / Double(h - 1) - 1.0)
                                                    let dx = curw - x
                                                    let dy = curh - y
                                                    if dx > dmax || dx < -dmax || dy > dmax || dy < -dmax { continue }
                                                    let d = w2 * dx * dx - 2 * rho * w3 * dx * dy + w4 * dy * dy
                                                    let v = Foundation.exp(w1 * d)
                                                    let v2w1 = v * 2 * w1
                                                    let gx = v2w1 * (-w2 * dx + rho * w3 * dy)
                                                    let gy = v2w1 * (-w4 * dy + rho * w3 * dx)
                                                    let gsx = v2w1 * odSx * (w3 * rho * dx * dy - w2 * dx * dx)
                                                    let gsy = v2w1 * odSy * (w3 * rho * dx * dy - w4 * dy * dy)
                                                    let grho = -v2w1 * (2 * w1 * rho * d + w3 * dx * dy)
                                                    for ci in 0..<3 {
                                                        let gpc = grads[(hi * w + wi) * 3 + ci]
                                                        let gpt = gpc * col[s * 3 + ci]
                                                        gcolp[j * 3 + ci] += v * gpc
                                                        gcp[j * 2] += gpt * gx
                                                        gcp[j * 2 + 1] += gpt * gy
                                                        gsp[j * 3] += gpt * gsx
                                                        gsp[j * 3 + 1] += gpt * gsy
                                                        gsp[j * 3 + 2] += gpt * grho
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return KernelGradients(sigmas: gs, coords: gc, colors: gcol)
    }
}
