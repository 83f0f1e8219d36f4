import Foundation
import GSASR
import GSASRCheckpoint
import Testing

/// Parity of the whole pipeline with the official PyTorch code for the other released model
/// families (fixtures copied from shared/golden/zoo: RDN, SwinIR, HAT-L encoders and the RoPE
/// decoder, random weights, small configurations). Tolerances as SmallParityTests: enc/gs
/// |d| ≤ 1e-4 + 1e-4·|ref|; SR mean|d| ≤ 1e-5, max|d| ≤ 3e-3; PNG ≤ 0.2 % of values differ, by
/// at most 1.
@Suite(.serialized) struct ZooParityTests {
    static let configs = ["rdn_small", "swinir_small", "edsr_rope_small", "swinir_rope_small", "hatl_small"]
    static let images = ["astronaut_48x48", "coffee_37x50"]

    /// Loaded models, shared by the zoo suites (which may run concurrently: hence the lock).
    nonisolated(unsafe) static var cache: [String: GSASRModel] = [:]
    static let cacheLock = NSLock()
    static func model(_ name: String) throws -> GSASRModel {
        cacheLock.lock()
        defer { cacheLock.unlock() }
        if let m = cache[name] { return m }
        let m = try GSASRModel.load(directory: Fixtures.url("zoo/\(name)"))
        cache[name] = m
        return m
    }

    /// The types, hyperparameters and denominator the registry infers, against config.json.
    @Test(arguments: configs) func recognised(config: String) throws {
        let m = try Self.model(config)
        let json =
            try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("zoo/\(config)/config.json")))
            as! [String: Any]
        let enc = json["encoder"] as! [String: Any], dec = json["decoder"] as! [String: Any]
        #expect(type(of: m.encoder).officialName == enc["type"] as! String)
        #expect(m.decoder.config.officialName == dec["type"] as! String)
        for (key, value) in m.decoder.config.argumentValues {
            #expect(value == (dec[key] as? Int), "decoder \(key)")
        }
        #expect(m.denominator == json["denominator"] as! Int)
        let counts = json["param_count"] as! [String: Int]
        #expect(m.encoderState.parameterCount == counts["encoder"])
        #expect(m.decoderState.parameterCount == counts["decoder"])
        print("[zoo] \(config): \(type(of: m.encoder).officialName) + \(m.decoder.config.officialName), denominator \(m.denominator)")
    }

    @Test(arguments: configs, images) func encoderFeatures(config: String, image: String) throws {
        let m = try Self.model(config)
        let lr = try Fixtures.lr(image)
        let up = Upscaler(model: m, mode: .exact)
        let plan = try up.plan(width: lr.width, height: lr.height, request: ScaleRequest(scale: 4, geometry: .official))
        let feat = up.encode(rgb: lr.pixels, plan: plan)
        let ref = try Fixtures.npy(Fixtures.url("zoo/\(config)/\(image)_enc_feat_f32.npy"))
        let d = Diff(feat.array, nchwToHWC(ref.floats, c: ref.shape[1], h: ref.shape[2], w: ref.shape[3]))
        print("[zoo] \(config) \(image) enc_feat: \(d)")
        #expect(d.worstRatio <= 1)
    }

    @Test(arguments: configs, images) func gaussians(config: String, image: String) throws {
        let m = try Self.model(config)
        let lr = try Fixtures.lr(image)
        let up = Upscaler(model: m, mode: .exact)
        let plan = try up.plan(width: lr.width, height: lr.height, request: ScaleRequest(scale: 4, geometry: .official))
        var t = Upscaler.Timings()
        let gs = up.gaussians(rgb: lr.pixels, plan: plan, timings: &t)
        let ref = try Fixtures.npy(Fixtures.url("zoo/\(config)/\(image)_x4_gs_params_f32.npy"))
        #expect(gs.shape == ref.shape)
        let d = Diff(gs.array, ref.floats)
        print("[zoo] \(config) \(image) x4 gs_params: \(d)")
        #expect(d.worstRatio <= 1)
    }

    /// The rendered image (float where stored, PNG at every stored scale).
    @Test(arguments: configs, images) func rendered(config: String, image: String) throws {
        let m = try Self.model(config)
        let lr = try Fixtures.lr(image)
        let scales: [Double] = config == "hatl_small" ? [2, 3.5, 4, 11.3] : [2, 3.5, 4]
        for scale in scales {
            let tag = "zoo/\(config)/\(image)_x\(scaleTag(scale))"
            let r = try Upscaler(model: m, mode: .exact).upscale(
                rgb: lr.pixels, width: lr.width, height: lr.height,
                request: ScaleRequest(scale: scale, geometry: .official))
            var line = "[zoo] \(config) \(image) x\(scaleTag(scale))"
            let floatRef = Fixtures.url("\(tag)_sr_f32.npy")
            if FileManager.default.fileExists(atPath: floatRef.path) {
                let srRef = try Fixtures.npy(floatRef)
                #expect([r.height, r.width, 3] == srRef.shape)
                let ds = Diff(r.pixels, srRef.floats)
                line += " SR: \(ds);"
                #expect(ds.meanAbs <= 1e-5)
                #expect(ds.maxAbs <= 3e-3)
            }
            let png = try pngDifference(r.pixels, goldenPNG: Fixtures.url("\(tag)_sr.png"))
            print(line + " PNG values differing \(String(format: "%.4f", png.fraction * 100)) % (max \(png.maxDiff))")
            #expect(png.fraction <= 0.002)
            #expect(png.maxDiff <= 1)
        }
    }
}

/// Layouts that are not (or not consistently) one of the registered families get one line that
/// names what each architecture found missing or wrong.
@Suite struct ZooRecognitionTests {
    @Test func inconsistentLayoutsAreRefusedInOneLine() throws {
        let dir = Fixtures.url("zoo/swinir_small")
        var enc = try GSASRModel.loadStateDict(dir.appendingPathComponent("encoder.pth"), paramKey: nil)
        let dec = try GSASRModel.loadStateDict(dir.appendingPathComponent("decoder.pth"), paramKey: nil)
        // A SwinIR whose second layer lost a block's MLP.
        var trimmed = StateDict()
        for k in enc.keys where !k.hasPrefix("layers.1.residual_group.blocks.1.mlp.fc2") { trimmed.insert(k, enc[k]!) }
        enc = trimmed
        #expect {
            _ = try GSASRModel.load(encoder: enc, encoderLabel: "encoder.pth", decoder: dec, decoderLabel: "decoder.pth")
        } throws: { e in
            let text = "\(e)"
            print(text)
            return !text.contains("\n") && text.contains("SwinIRNOUP: missing key 'layers.1.residual_group.blocks.1.mlp.fc2.weight'")
                && text.contains("EDSRNOUP: no key 'body.0.conv1.weight'") == false && text.contains("HATNOUP_ROPE_AMP")
        }
        // config.json naming the other decoder type than the checkpoint's layout.
        let cfg = try GSASRModel.loadStateDict(
            Fixtures.url("zoo/edsr_rope_small/decoder.pth"), paramKey: nil)
        #expect {
            _ = try GSASRModel.load(
                encoder: try GSASRModel.loadStateDict(
                    Fixtures.url("zoo/edsr_rope_small/encoder.pth"), paramKey: nil), encoderLabel: "encoder.pth",
                decoder: cfg, decoderLabel: "decoder.pth", decoderType: "Fea2GS")
        } throws: { e in
            print(e)
            return "\(e)".contains("names decoder type 'Fea2GS' but decoder.pth has a Fea2GS_ROPE_AMP layout")
        }
    }
}

/// Crafted state dicts of every family (the fixtures with one entry's shape changed, one entry
/// dropped, or an entry of another family mixed in): each loads or fails with a one-line error,
/// never a crash (a trap would end the test process).
@Suite struct HostileZooLayoutTests {
    @Test(arguments: ZooParityTests.configs) func mutatedLayoutsFailCleanly(config: String) throws {
        let dir = Fixtures.url("zoo/\(config)")
        let enc = try GSASRModel.loadStateDict(dir.appendingPathComponent("encoder.pth"), paramKey: nil)
        let dec = try GSASRModel.loadStateDict(dir.appendingPathComponent("decoder.pth"), paramKey: nil)
        var rng = SplitMix64(seed: UInt64(config.utf8.count) * 7919)
        var loaded = 0, refused = 0
        let dims = [0, 1, 2, 3, 7, 15, 16, 17, 24, 255, 4096, 65_537]
        for trial in 0..<60 {
            let mutateEncoder = trial % 2 == 0
            let sd = mutateEncoder ? enc : dec
            let keys = sd.keys
            let victim = keys[Int(rng.next() % UInt64(keys.count))]
            var out = StateDict()
            for k in keys {
                let t = sd[k]!
                guard k == victim else {
                    out.insert(k, t)
                    continue
                }
                switch trial % 3 {
                case 0: continue  // dropped
                default:
                    var shape = t.shape.isEmpty ? [1] : t.shape
                    shape[Int(rng.next() % UInt64(shape.count))] = dims[Int(rng.next() % UInt64(dims.count))]
                    if trial % 3 == 2 { shape.append(2) }
                    let n = shape.reduce(1, *)
                    guard n <= 1 << 22 else {
                        out.insert(k, t)
                        continue
                    }
                    out.insert(
                        k,
                        LoadedTensor(
                            shape: shape, dtype: t.dtype, floats: [Float](repeating: 0.5, count: n),
                            ints: t.ints == nil ? nil : [Int64](repeating: 0, count: n)))
                }
            }
            do {
                _ = try GSASRModel.load(
                    encoder: mutateEncoder ? out : enc, encoderLabel: "encoder.pth", decoder: mutateEncoder ? dec : out,
                    decoderLabel: "decoder.pth")
                loaded += 1
            } catch {
                refused += 1
                #expect(!"\(error)".contains("\n"), "\(error)")
            }
        }
        print("[hostile zoo] \(config): 60 mutated layouts, \(refused) refused in one line, \(loaded) loaded")
        #expect(refused > 0)
    }
}
