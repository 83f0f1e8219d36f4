import Foundation
import GSASRRaster
import Testing

@Suite struct RasterGoldenTests {
    @Test func exactForwardMatchesF64Golden() throws {
        let k = try Fixture.rasterKernels()
        for (h, w) in Fixture.sizes {
            for (tag, dmax) in Fixture.dmaxes {
                let ref = try Fixture.doubles("raster/\(h)x\(w)_dmax\(tag)_fwd_f64.npy")
                let ref32 = try Fixture.doubles("raster/\(h)x\(w)_dmax\(tag)_fwd_f32.npy")
                let img = Rasterizer(mode: .exact, dmax: dmax).forward(k, width: w, height: h).d
                let st = ErrStats(img, ref)
                let st32 = ErrStats(img, ref32)
                print(
                    "[exact fwd] \(h)x\(w) dmax \(tag): vs f64 \(st) | vs f32 max|d|=\(String(format: "%.3e", st32.maxAbs))"
                )
                var bad = 0
                for i in 0..<ref.count where abs(img[i] - ref[i]) > 1e-5 + 1e-5 * abs(ref[i]) { bad += 1 }
                #expect(bad == 0, "\(h)x\(w) dmax \(tag): \(bad) entries out of tolerance")
            }
        }
    }

    @Test func kernelGradientsMatchF64Golden() throws {
        let k = try Fixture.rasterKernels()
        for (h, w) in Fixture.sizes {
            let up = try Fixture.floats("raster/\(h)x\(w)_upstream_grad.npy")
            for (tag, dmax) in Fixture.dmaxes {
                for mode in [RasterMode.exact, RasterMode.fast] {
                    let g = Rasterizer(mode: mode, dmax: dmax).backward(k, width: w, height: h, upstream: up)
                    for (name, got) in [("sigmas", g.sigmas), ("coords", g.coords), ("colors", g.colors)] {
                        let ref = try Fixture.doubles("raster/\(h)x\(w)_dmax\(tag)_grad_\(name)_f64.npy")
                        let st = ErrStats(got.d, ref)
                        print("[grad \(mode == .exact ? "exact" : "fast ")] \(h)x\(w) dmax \(tag) \(name): \(st)")
                        #expect(st.fracWithin >= 0.995, "\(h)x\(w) dmax \(tag) \(name)")
                    }
                }
            }
        }
    }

    @Test func endToEndRawGradientMatchesF64Golden() throws {
        let raw = try Fixture.floats("small/astronaut_48x48_x4_gs_params_f32.npy")
        let up = try Fixture.floats("raster/e2e_small_astronaut_x4_upstream_grad.npy")
        let ref = try Fixture.doubles("raster/e2e_small_astronaut_x4_grad_gs_params_f64.npy")
        for mode in [RasterMode.exact, RasterMode.fast] {
            let g = Rasterizer(mode: mode, dmax: 0.1).renderBackward(
                raw: raw, width: 192, height: 192, scale: 4, upstream: up)
            let st = ErrStats(g.d, ref)
            print("[e2e raw grad \(mode == .exact ? "exact" : "fast")] all 9 columns: \(st)")
            // Per column the official float32 gradient itself reaches only 98.2-99.5 % against the
            // f64 file with this criterion (ill-conditioned thin Gaussians), so per column we
            // require ≥ 98 % and the pooled ≥ 99.5 % of the issue.
            for col in 0..<9 {
                let gc = stride(from: col, to: g.count, by: 9).map { Double(g[$0]) }
                let rc = stride(from: col, to: ref.count, by: 9).map { ref[$0] }
                let cst = ErrStats(gc, rc)
                print("   column \(col): \(cst)")
                #expect(cst.fracWithin >= 0.98, "column \(col)")
            }
            #expect(st.fracWithin >= 0.995)
        }
    }

    /// Activations + exact render (+ crop) vs the small-model full-pipeline goldens.
    @Test func fullRenderMatchesSRGoldens() throws {
        let cases: [(name: String, scale: Double, lr: (Int, Int), padded: (Int, Int))] = [
            ("astronaut_48x48_x4", 4, (48, 48), (48, 48)),
            ("coffee_37x50_x11.3", 11.3, (37, 50), (48, 60)),
        ]
        for c in cases {
            let raw = try Fixture.floats("small/\(c.name)_gs_params_f32.npy")
            let ref = try Fixture.load("small/\(c.name)_sr_f32.npy")
            let (H, W) = GaussianActivation.renderSize(
                paddedHeight: c.padded.0, paddedWidth: c.padded.1, scale: c.scale)
            let oh = Int((c.scale * Double(c.lr.0)).rounded(.down)), ow = Int((c.scale * Double(c.lr.1)).rounded(.down))
            #expect(ref.shape == [oh, ow, 3])
            var results: [String: [Float]] = [:]
            for (mname, mode) in [("exact", RasterMode.exact), ("fast", RasterMode.fast)] {
                let img = Rasterizer(mode: mode, dmax: 0.1).render(raw: raw, width: W, height: H, scale: Float(c.scale))
                var crop = [Double]()
                crop.reserveCapacity(oh * ow * 3)
                for y in 0..<oh {
                    for x in 0..<ow { for ch in 0..<3 { crop.append(Double(img[(y * W + x) * 3 + ch])) } }
                }
                let st = ErrStats(crop, ref.values)
                print("[sr \(mname)] \(c.name) render \(H)x\(W) crop \(oh)x\(ow): \(st)")
                #expect(st.meanAbs <= 1e-5)
                #expect(st.maxAbs <= 3e-3)
                results[mname] = img
            }
            let diff = zip(results["exact"]!, results["fast"]!).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
            print("[fast vs exact] \(c.name): max|d|=\(diff)")
            #expect(diff <= 1e-5)
        }
    }

    @Test func fastMatchesExactOnRasterGoldens() throws {
        let k = try Fixture.rasterKernels()
        for (h, w) in Fixture.sizes {
            for (tag, dmax) in Fixture.dmaxes {
                let e = Rasterizer(mode: .exact, dmax: dmax).forward(k, width: w, height: h)
                let f = Rasterizer(mode: .fast, dmax: dmax).forward(k, width: w, height: h)
                let diff = zip(e, f).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
                print("[fast vs exact] \(h)x\(w) dmax \(tag): max|d|=\(diff) (ε=\(RasterMode.defaultEpsilon))")
                #expect(diff <= 1e-5)
            }
        }
    }
}

@Suite struct RasterDeterminismTests {
    @Test func bitIdenticalAcrossRunsAndThreadCounts() throws {
        let raw = try Fixture.floats("small/astronaut_48x48_x4_gs_params_f32.npy")
        let up = try Fixture.floats("raster/e2e_small_astronaut_x4_upstream_grad.npy")
        for mode in [RasterMode.exact, RasterMode.fast] {
            let k = GaussianActivation.kernels(fromRaw: raw, width: 192, height: 192, scale: 4)
            let f1 = Rasterizer(mode: mode, threads: 1).forward(k, width: 192, height: 192)
            let b1 = Rasterizer(mode: mode, threads: 1).backward(k, width: 192, height: 192, upstream: up)
            for t in [1, 2, 3, 5] {
                for _ in 0..<2 {
                    let r = Rasterizer(mode: mode, threads: t)
                    let f = r.forward(k, width: 192, height: 192)
                    let b = r.backward(k, width: 192, height: 192, upstream: up)
                    #expect(f.map(\.bitPattern) == f1.map(\.bitPattern), "forward differs with \(t) threads")
                    #expect(b.sigmas.map(\.bitPattern) == b1.sigmas.map(\.bitPattern))
                    #expect(b.coords.map(\.bitPattern) == b1.coords.map(\.bitPattern))
                    #expect(b.colors.map(\.bitPattern) == b1.colors.map(\.bitPattern))
                }
            }
            print(
                "[determinism] \(mode == .exact ? "exact" : "fast"): forward+backward bit-identical for threads 1,2,3,5 (2 runs each)"
            )
        }
    }

    @Test func batchEqualsSingle() throws {
        let k = try Fixture.rasterKernels()
        let r = Rasterizer(mode: .exact, dmax: 0.1)
        let items = Fixture.sizes.map { (kernels: k, width: $0.w, height: $0.h) }
        let batch = r.forwardBatch(items)
        for (i, it) in items.enumerated() {
            #expect(batch[i] == r.forward(k, width: it.width, height: it.height))
        }
        let ups = try Fixture.sizes.map { try Fixture.floats("raster/\($0.h)x\($0.w)_upstream_grad.npy") }
        let gb = r.backwardBatch(items, upstream: ups)
        for (i, it) in items.enumerated() {
            #expect(gb[i].coords == r.backward(k, width: it.width, height: it.height, upstream: ups[i]).coords)
        }
        // raw-parameter batch with different sizes and scales per image
        let raw = try Fixture.floats("small/astronaut_48x48_x4_gs_params_f32.npy")
        let rawItems: [(raw: [Float], width: Int, height: Int, scale: Float)] = [(raw, 192, 192, 4), (raw, 96, 96, 2)]
        let rb = r.renderBatch(rawItems)
        for (i, it) in rawItems.enumerated() {
            #expect(rb[i] == r.render(raw: it.raw, width: it.width, height: it.height, scale: it.scale))
        }
        let rups = rawItems.map { [Float](repeating: 0.25, count: $0.width * $0.height * 3) }
        let rgb = r.renderBackwardBatch(rawItems, upstream: rups)
        #expect(rgb[1] == r.renderBackward(raw: raw, width: 96, height: 96, scale: 2, upstream: rups[1]))
    }
}

@Suite struct RasterFiniteDifferenceTests {
    /// Random Gaussians incl. thin (σ≈0.01) and strongly correlated (|ρ|≈0.95) ones.
    static func randomCase(seed: UInt64) -> (s: [Double], c: [Double], col: [Double], up: [Double], W: Int, H: Int) {
        var rng = SplitMix(state: seed)
        let W = 40, H = 32
        var s = [Double](), c = [Double](), col = [Double]()
        let specials: [(Double, Double, Double)] = [
            (0.01, 0.012, 0.3), (0.08, 0.05, 0.95), (0.06, 0.09, -0.95), (0.011, 0.2, -0.5), (0.15, 0.1, 0.0),
        ]
        for i in 0..<8 {
            if i < specials.count {
                s += [specials[i].0, specials[i].1, specials[i].2]
            } else {
                s += [rng.uniform(0.03, 0.3), rng.uniform(0.03, 0.3), rng.uniform(-0.9, 0.9)]
            }
            c += [rng.uniform(-0.7, 0.7), rng.uniform(-0.7, 0.7)]
            col += [rng.uniform(), rng.uniform(), rng.uniform()]
        }
        let up = (0..<(W * H * 3)).map { _ in rng.normal() }
        // snap to values representable in Float so the library sees the same inputs
        func snap(_ a: [Double]) -> [Double] { a.map { Double(Float($0)) } }
        return (snap(s), snap(c), snap(col), snap(up), W, H)
    }

    static func loss(_ s: [Double], _ c: [Double], _ col: [Double], _ up: [Double], _ W: Int, _ H: Int, _ dmax: Double)
        -> Double
    {
        let img = referenceForward(sigmas: s, coords: c, colors: col, width: W, height: H, dmax: dmax)
        return zip(img, up).reduce(0) { $0 + $1.0 * $1.1 }
    }

    @Test func kernelBackwardMatchesFiniteDifferences() {
        let dmax = 4.0
        for seed in [1, 2] as [UInt64] {
            let (s, c, col, up, W, H) = Self.randomCase(seed: seed)
            let k = GaussianKernels(
                sigmas: s.map { Float($0) }, coords: c.map { Float($0) }, colors: col.map { Float($0) })
            let lib = Rasterizer(mode: .exact, dmax: Float(dmax)).backward(
                k, width: W, height: H, upstream: up.map { Float($0) })
            let libFast = Rasterizer(mode: .fast, dmax: Float(dmax)).backward(
                k, width: W, height: H, upstream: up.map { Float($0) })
            let ana = referenceBackward(
                sigmas: s, coords: c, colors: col, width: W, height: H, dmax: dmax, upstream: up)
            var worstLib = 0.0, worstAna = 0.0, worstFast = 0.0
            func check(
                _ name: String, _ base: [Double], _ libG: [Float], _ fastG: [Float], _ anaG: [Double],
                _ set: ([Double], Double) -> (Double, Double)
            ) {
                let scale = anaG.map { abs($0) }.max()!
                for j in 0..<base.count {
                    let hstep = 1e-6 * max(abs(base[j]), 0.01)
                    var bp = base, bm = base
                    bp[j] += hstep
                    bm[j] -= hstep
                    let fp = set(bp, 0).0, fm = set(bm, 0).0
                    let fd = (fp - fm) / (2 * hstep)
                    let tol = max(abs(fd), 1e-3 * scale)
                    let eLib = abs(Double(libG[j]) - fd) / tol
                    let eFast = abs(Double(fastG[j]) - fd) / tol
                    let eAna = abs(anaG[j] - fd) / tol
                    worstLib = max(worstLib, eLib)
                    worstFast = max(worstFast, eFast)
                    worstAna = max(worstAna, eAna)
                    #expect(eAna <= 1e-5, "analytic \(name)[\(j)] \(anaG[j]) vs fd \(fd)")
                    #expect(eLib <= 1e-3, "library \(name)[\(j)] \(libG[j]) vs fd \(fd)")
                    #expect(eFast <= 1e-3, "library fast \(name)[\(j)] \(fastG[j]) vs fd \(fd)")
                }
                print(
                    "[fd kernel seed \(seed)] \(name): worst rel err analytic(double)=\(String(format: "%.2e", worstAna)) library exact=\(String(format: "%.2e", worstLib)) fast=\(String(format: "%.2e", worstFast))"
                )
                worstLib = 0; worstAna = 0; worstFast = 0
            }
            check("sigmas", s, lib.sigmas, libFast.sigmas, ana.sigmas) { v, _ in
                (Self.loss(v, c, col, up, W, H, dmax), 0)
            }
            check("coords", c, lib.coords, libFast.coords, ana.coords) { v, _ in
                (Self.loss(s, v, col, up, W, H, dmax), 0)
            }
            check("colors", col, lib.colors, libFast.colors, ana.colors) { v, _ in
                (Self.loss(s, c, v, up, W, H, dmax), 0)
            }
        }
    }

    @Test func rawGradientMatchesFiniteDifferences() {
        var rng = SplitMix(state: 7)
        let W = 36, H = 30, scale = 3.0
        let n = 12
        var raw = [Double]()
        for i in 0..<n {
            let gx = Double(i % 4), gy = Double(i / 4)
            raw += [
                rng.normal() - 1, rng.normal() - 1, rng.normal(), rng.normal(), rng.normal(), rng.normal(),
                rng.normal(),
                (gx + 0.5 + 0.3 * rng.normal()) / 4, (gy + 0.5 + 0.3 * rng.normal()) / 3,
            ]
        }
        raw[0] = -4.5; raw[2] = 1.8  // thin, strongly correlated (ρ≈0.95)
        raw[10] = 2.0; raw[11] = -1.9
        raw = raw.map { Double(Float($0)) }
        let up = (0..<(W * H * 3)).map { _ in Double(Float(rng.normal())) }
        let dmax = 4.0
        func L(_ r: [Double]) -> Double {
            let a = referenceActivation(raw: r, width: W, height: H, scale: scale)
            return RasterFiniteDifferenceTests.loss(a.sigmas, a.coords, a.colors, up, W, H, dmax)
        }
        let lib = Rasterizer(mode: .exact, dmax: Float(dmax)).renderBackward(
            raw: raw.map { Float($0) }, width: W, height: H, scale: Float(scale), upstream: up.map { Float($0) })
        var fd = [Double](repeating: 0, count: raw.count)
        for j in 0..<raw.count {
            let h = 1e-6 * max(1, abs(raw[j]))
            var p = raw, m = raw
            p[j] += h
            m[j] -= h
            fd[j] = (L(p) - L(m)) / (2 * h)
        }
        for col in 0..<9 {
            let idx = Array(stride(from: col, to: raw.count, by: 9))
            let scaleG = idx.map { abs(fd[$0]) }.max()!
            var worst = 0.0
            for j in idx {
                let e = abs(Double(lib[j]) - fd[j]) / max(abs(fd[j]), 1e-3 * scaleG)
                worst = max(worst, e)
                #expect(e <= 2e-3, "raw[\(j / 9)][\(col)] lib \(lib[j]) fd \(fd[j])")
            }
            print(
                "[fd raw] column \(col): worst rel err \(String(format: "%.2e", worst)) (max |g| \(String(format: "%.3e", scaleG)))"
            )
        }
    }
}
