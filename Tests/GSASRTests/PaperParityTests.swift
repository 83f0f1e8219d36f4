import Foundation
import GSASR
import Testing

/// Parity with the official code for the paper's EDSR configuration (20.4 M parameters, random
/// weights). The 88 MB checkpoint is not in the repository: these tests read
/// ../shared/golden/edsr_paper (or $GSASR_GOLDEN/edsr_paper) and are skipped when it is absent.
@Suite(.serialized, .enabled(if: Fixtures.paperAvailable, "needs ../shared/golden/edsr_paper (present in CI)"))
struct PaperParityTests {
    static let dir = Fixtures.sharedGolden.appendingPathComponent("edsr_paper")
    static let model: GSASRModel = try! GSASRModel.load(directory: dir)

    static func lr(_ image: String) throws -> (pixels: [Float], width: Int, height: Int) {
        let img = try ImageIO.load(Fixtures.sharedGolden.appendingPathComponent("inputs/\(image)_lr.png"))
        return (img.rgb.pixels, img.rgb.width, img.rgb.height)
    }

    @Test func configInferredFromCheckpoint() {
        #expect(
            Self.model.decoder.config
                == Fea2GSConfig(
                    inchannel: 64, channel: 180, numHeads: 6, numCrossattnBlocks: 1, numCrossattnLayers: 2,
                    numSelfattnBlocks: 6, numSelfattnLayers: 6, numGsSeed: 144, windowSize: 12, shuffleScale1: 2,
                    shuffleScale2: 2))
        #expect((Self.model.encoder as? EDSRNOUP)?.config == EDSRConfig(numFeat: 64, numBlock: 16))
    }

    /// The parameter counts the declarations give equal the official modules' `numel` sums
    /// (../shared/golden/zoo/full_configs/paper_edsr.json, when present).
    static let officialLayout = Fixtures.sharedGolden.appendingPathComponent("zoo/full_configs/paper_edsr.json")

    @Test(.enabled(if: FileManager.default.fileExists(atPath: officialLayout.path), "needs ../shared/golden/zoo"))
    func parameterCountsFromTheDeclarationsMatchOfficial() throws {
        let url = Self.officialLayout
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        let counts = json["param_count"] as! [String: Int]
        print(
            "paper_edsr parameters: ours \(Self.model.encoderState.parameterCount) / \(Self.model.decoderState.parameterCount), official \(counts["encoder"]!) / \(counts["decoder"]!)"
        )
        #expect(Self.model.encoderState.parameterCount == counts["encoder"])
        #expect(Self.model.decoderState.parameterCount == counts["decoder"])
    }

    /// A from-scratch paper-config model's state dict (from the declarations) has the released
    /// files' keys, shapes, dtypes and order (../shared/golden/zoo/full_configs/paper_edsr.tsv).
    @Test(.enabled(if: FileManager.default.fileExists(atPath: officialLayout.path), "needs ../shared/golden/zoo"))
    func initialisedStateDictHasTheOfficialLayout() throws {
        let tsv = try String(
            contentsOf: Fixtures.sharedGolden.appendingPathComponent("zoo/full_configs/paper_edsr.tsv"), encoding: .utf8
        )
        let official = tsv.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { String($0) }
        let m = try GSASRModel.initialized(
            EDSRNOUP.self, encoder: EDSRConfig(numFeat: 64, numBlock: 16), decoder: Self.model.decoder.config, seed: 1)
        func rows(_ net: String, _ entries: [StateEntry]) -> [String] {
            entries.map { e in
                switch e {
                case .parameter(let p): return "\(net)\t\(p.key)\t\(p.torchShape)\tfloat32"
                case .buffer(let k, let shape, _): return "\(net)\t\(k)\t\(shape)\tint64"
                case .floatBuffer(let k, let shape, _): return "\(net)\t\(k)\t\(shape)\tfloat32"
                }
            }
        }
        let ours = rows("encoder", m.encoderState) + rows("decoder", m.decoderState)
        print("paper_edsr layout: \(ours.count) entries, official \(official.count)")
        #expect(ours == official)
    }

    @Test(arguments: ["astronaut_48x48", "coffee_37x50"], [2.0, 4, 11.3])
    func pipeline(image: String, scale: Double) throws {
        let lr = try Self.lr(image)
        let tag = "\(image)_x\(scaleTag(scale))"
        let up = Upscaler(model: Self.model, mode: .exact)
        // The official geometry: the goldens come from the official code (GaussianGeometry).
        let plan = try up.plan(
            width: lr.width, height: lr.height, request: ScaleRequest(scale: scale, geometry: .official))
        var t = Upscaler.Timings()
        let gs = up.gaussians(rgb: lr.pixels, plan: plan, timings: &t)
        if scale == 4 {
            let ref = try NPY.load(Self.dir.appendingPathComponent("\(tag)_gs_params_f32.npy"))
            let d = Diff(gs.array, ref.floats)
            print("[paper] \(tag) gs_params: \(d)")
            #expect(d.worstRatio <= 1)
        }
        let sr = up.crop(up.render(gs, plan: plan), plan: plan)
        let fast = Upscaler(model: Self.model, mode: .fast)
        let fastVsExact = Diff(fast.crop(fast.render(gs, plan: plan), plan: plan), sr)
        print("[paper] \(tag) fast vs exact: max|d| \(String(format: "%.3e", fastVsExact.maxAbs))")
        #expect(fastVsExact.maxAbs <= 1e-5)
        let srURL = Self.dir.appendingPathComponent("\(tag)_sr_f32.npy")
        if FileManager.default.fileExists(atPath: srURL.path) {
            let ref = try NPY.load(srURL)
            let d = Diff(sr, ref.floats)
            print("[paper] \(tag) SR: \(d)")
            #expect(d.meanAbs <= 1e-5)
            #expect(d.maxAbs <= 3e-3)
        }
        let png = try pngDifference(sr, goldenPNG: Self.dir.appendingPathComponent("\(tag)_sr.png"))
        print("[paper] \(tag) PNG bytes differing \(String(format: "%.4f", png.fraction * 100)) % (max \(png.maxDiff))")
        #expect(png.fraction <= 0.002)
        #expect(png.maxDiff <= 1)
    }

    @Test(arguments: ["astronaut_48x48", "coffee_37x50"])
    func encoderFeatures(image: String) throws {
        let lr = try Self.lr(image)
        let up = Upscaler(model: Self.model, mode: .exact)
        let plan = try up.plan(width: lr.width, height: lr.height, request: ScaleRequest(scale: 4, geometry: .official))
        let feat = up.encode(rgb: lr.pixels, plan: plan)
        let ref = try NPY.load(Self.dir.appendingPathComponent("\(image)_enc_feat_f32.npy"))
        let d = Diff(feat.array, nchwToHWC(ref.floats, c: ref.shape[1], h: ref.shape[2], w: ref.shape[3]))
        print("[paper] \(image) enc_feat: \(d)")
        #expect(d.worstRatio <= 1)
    }
}
