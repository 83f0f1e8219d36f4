import Foundation
import GSASR
import GSASRTraining
import Testing

/// `gsasr train` and `gsasr eval` through the built binary, on a tiny model and synthetic photos.
@Suite(.serialized) struct TrainCLITests {
    /// Two textured synthetic PNG photos in a new folder.
    static func photoFolder() throws -> URL {
        let d = try CLI.tempDir().appendingPathComponent("photos")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        for k in 0..<2 {
            let w = 64, h = 56
            var px = [Float](repeating: 0, count: w * h * 3)
            for y in 0..<h {
                for x in 0..<w {
                    for c in 0..<3 {
                        px[(y * w + x) * 3 + c] = Float(0.5 + 0.4 * sin(Double(x * (k + 1)) / 3 + Double(c)) * cos(Double(y) / 4))
                    }
                }
            }
            try ImageIO.writePNG(Image(width: w, height: h, pixels: px), to: d.appendingPathComponent("p\(k).png"))
        }
        return d
    }

    static func config(photos: String, totalIter: Int, saveFreq: Int = 2, val: String? = nil) -> String {
        """
        name: tiny
        manual_seed: 1
        dmax: 0.5
        datasets:
          train:
            all_gt_list: ['\(photos)']
            lr_size: 8
            scale_list: [1.0, 4.0]
            batch_size_per_gpu: 2
            downscale: 1
        \(val.map { "  val:\n    dataroot_gt: '\($0)'\n    scales: [2]\n" } ?? "")
        network_g: {type: EDSRNOUP, num_feat: 8, num_block: 1}
        network_fea2gs: {type: Fea2GS, inchannel: 8, channel: 12, num_heads: 2, num_crossattn_blocks: 1,
          num_crossattn_layers: 1, num_selfattn_blocks: 1, num_selfattn_layers: 1, num_gs_seed: 16, window_size: 4,
          shuffle_scale1: 2, shuffle_scale2: 2}
        train:
          init_alpha_bias: -3.0
          optim_g: {type: Adam, lr: !!float 1e-3}
          scheduler: {type: MultiStepLR, milestones: [5], gamma: 0.5}
          total_iter: \(totalIter)
          warmup_iter: 3
        val:
          val_freq: 3
        logger:
          print_freq: 1
          save_checkpoint_freq: \(saveFreq)
        """
    }

    static func write(_ text: String) throws -> URL {
        let u = try CLI.tempDir().appendingPathComponent("train.yml")
        try text.write(to: u, atomically: true, encoding: .utf8)
        return u
    }

    /// Two iterations with 1, 2 and 3 worker threads give the same weights, EMA and Adam
    /// moments, bit for bit: every parallel kernel (GEMM splits, convolutions, attention, the
    /// heads' chunked backward, the rasterizer) reduces in an order that does not depend on the
    /// thread count. Sizes are large enough that every kernel splits its work.
    @Test func trainingIsTheSameFor1_2And3Threads() throws {
        let photos = try CLI.tempDir().appendingPathComponent("photos")
        try FileManager.default.createDirectory(at: photos, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            at: CLI.packageRoot.appendingPathComponent("Examples/seeding_160x120.png"),
            to: photos.appendingPathComponent("seeding.png"))
        let cfg = try Self.write(
            """
            name: threads
            manual_seed: 3
            dmax: 0.5
            datasets:
              train:
                all_gt_list: ['\(photos.path)']
                lr_size: 32
                scale_list: [1.0, 3.0]
                batch_size_per_gpu: 2
                downscale: 1
            network_g: {type: EDSRNOUP, num_feat: 16, num_block: 2}
            network_fea2gs: {type: Fea2GS, inchannel: 16, channel: 16, num_heads: 2, num_crossattn_blocks: 1,
              num_crossattn_layers: 2, num_selfattn_blocks: 1, num_selfattn_layers: 2, num_gs_seed: 16, window_size: 4,
              shuffle_scale1: 2, shuffle_scale2: 2}
            train:
              optim_g: {type: Adam, lr: !!float 1e-3}
              total_iter: 2
            logger:
              print_freq: 1
              save_checkpoint_freq: 2
            """)
        var states: [[String: [Float]]] = []
        for threads in 1...3 {
            let run = try CLI.tempDir().appendingPathComponent("run")
            let r = try CLI.run(["train", cfg.path, "--run", run.path, "--threads", "\(threads)"])
            #expect(r.status == 0, "\(r.stderr)")
            let sd = try Safetensors.load(run.appendingPathComponent("checkpoint.safetensors"))
            var state: [String: [Float]] = [:]
            for k in sd.keys where sd[k]!.dtype == .float32 { state[k] = sd[k]!.floats }
            states.append(state)
        }
        #expect(states[0].count > 100)
        for t in 1..<3 {
            #expect(states[t].keys.sorted() == states[0].keys.sorted())
            var differing: [String] = []
            for (k, a) in states[0] where states[t][k] != a {
                let b = states[t][k] ?? []
                let err = zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
                differing.append("\(k) (max abs \(err))")
            }
            print("threads 1 vs \(t + 1): \(differing.count) of \(states[0].count) tensors differ \(differing.sorted().prefix(4))")
            #expect(differing.isEmpty, "\(differing.count) tensors differ between 1 and \(t + 1) threads")
        }
    }

    @Test func trainsResumesExactlyAndRefusesToOverwrite() throws {
        let photos = try Self.photoFolder()
        let cfg6 = try Self.write(Self.config(photos: photos.path, totalIter: 6, val: photos.path))
        let straight = try CLI.tempDir().appendingPathComponent("run")
        let r = try CLI.run(["train", cfg6.path, "--run", straight.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("iter 6/6") && r.stdout.contains("it/s") && r.stdout.contains("ETA"))
        #expect(r.stdout.contains("validation @3"))
        for f in ["checkpoint.safetensors", "log.jsonl", "curve.svg", "model/encoder.safetensors", "model/config.json"] {
            #expect(FileManager.default.fileExists(atPath: straight.appendingPathComponent(f).path), "\(f)")
        }

        // Same run in two processes: 4 iterations, then --resume to 6.
        let cfg4 = try Self.write(Self.config(photos: photos.path, totalIter: 4, val: photos.path))
        let split = try CLI.tempDir().appendingPathComponent("run")
        #expect(try CLI.run(["train", cfg4.path, "--run", split.path]).status == 0)
        let ckpt = split.appendingPathComponent("checkpoint.safetensors")
        let before = try Data(contentsOf: ckpt)
        // A new run into the same folder is refused and the checkpoint is untouched.
        let again = try CLI.run(["train", cfg4.path, "--run", split.path])
        #expect(again.status != 0 && again.stderr.contains("already holds a checkpoint"))
        #expect(try Data(contentsOf: ckpt) == before)
        // A resume with a different network is refused.
        let bad = try CLI.run(["train", cfg4.path, "--run", split.path, "--resume", "--set", "network_g.num_block=2"])
        #expect(bad.status != 0 && bad.stderr.contains("differs from the checkpoint"))
        let res = try CLI.run(["train", cfg4.path, "--run", split.path, "--resume", "--set", "train.total_iter=6"])
        #expect(res.status == 0, "\(res.stderr)")
        #expect(res.stdout.contains("resuming 'tiny' at iteration 4"))
        for f in ["model/encoder.safetensors", "model/decoder.safetensors", "checkpoint.safetensors"] {
            let a = try Safetensors.load(straight.appendingPathComponent(f))
            let b = try Safetensors.load(split.appendingPathComponent(f))
            #expect(a.keys == b.keys)
            let same = a.keys.allSatisfy { a[$0]!.floats == b[$0]!.floats }
            #expect(same, "\(f) differs between the straight and the resumed run")
        }
        // The log has each iteration once, in order.
        let log = try String(contentsOf: split.appendingPathComponent("log.jsonl"), encoding: .utf8)
        let iters = log.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["loss"] != nil
                ? (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["iter"] as? Int : nil
        }
        #expect(iters == [1, 2, 3, 4, 5, 6])
    }

    /// SIGKILL at arbitrary moments (checkpoints are written every iteration, so kills land
    /// during writes too); every resume continues exactly as an uninterrupted run.
    @Test func sigkillAnywhereThenResumeIsExact() throws {
        let photos = try Self.photoFolder()
        let cfg = try Self.write(Self.config(photos: photos.path, totalIter: 14, saveFreq: 1))
        let straight = try CLI.tempDir().appendingPathComponent("run")
        #expect(try CLI.run(["train", cfg.path, "--run", straight.path]).status == 0)
        let run = try CLI.tempDir().appendingPathComponent("run")
        let ckpt = run.appendingPathComponent("checkpoint.safetensors")
        var kills = 0
        var rng = SplitMix64(seed: 42)
        for attempt in 0..<6 {
            let p = Process()
            p.executableURL = CLI.binary
            p.arguments = ["train", cfg.path, "--run", run.path] + (attempt > 0 ? ["--resume"] : [])
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            let before = (try? Data(contentsOf: ckpt)).map { $0.count } ?? 0
            try p.run()
            // Wait for a checkpoint newer than before, then a random extra delay.
            let t0 = Date()
            while p.isRunning && Date().timeIntervalSince(t0) < 60 {
                if let d = try? Data(contentsOf: ckpt), d.count > 0, attempt > 0 || before == 0 { break }
                usleep(2000)
            }
            usleep(UInt32(rng.next() % 60_000))
            if p.isRunning {
                kill(p.processIdentifier, SIGKILL)
                kills += 1
            }
            p.waitUntilExit()
            if !FileManager.default.fileExists(atPath: ckpt.path) { continue }
            // Whatever moment the kill hit, the checkpoint reads back.
            _ = try Trainer.resume(from: ckpt)
        }
        let fin = try CLI.run(["train", cfg.path, "--run", run.path, "--resume"])
        #expect(fin.status == 0, "\(fin.stderr)")
        print("SIGKILL test: \(kills) kills")
        #expect(kills >= 1)
        let a = try Safetensors.load(straight.appendingPathComponent("checkpoint.safetensors"))
        let b = try Safetensors.load(ckpt)
        let same = a.keys == b.keys && a.keys.allSatisfy { a[$0]!.floats == b[$0]!.floats }
        #expect(same, "killed-and-resumed run differs from the uninterrupted one")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: run.path).filter { $0.hasPrefix(".") }
        // The final run's first save removed the temporaries of the writes that kills interrupted.
        #expect(leftovers.isEmpty, "left behind: \(leftovers)")
    }

    @Test func badTrainingInputsGetOneLineErrors() throws {
        let missing = "/nonexistent-\(UUID().uuidString)"
        let cfg = try Self.write(Self.config(photos: missing, totalIter: 2))
        let run = try CLI.tempDir().appendingPathComponent("run")
        let r = try CLI.run(["train", cfg.path, "--run", run.path])
        #expect(r.status != 0)
        #expect(r.stderr.contains("'\(missing)' does not exist") && r.stderr.split(separator: "\n").count == 1)
        #expect(!FileManager.default.fileExists(atPath: run.appendingPathComponent("checkpoint.safetensors").path))
        let typo = try Self.write(Self.config(photos: missing, totalIter: 2) + "\nlogger2: 1\n")
        let t = try CLI.run(["train", typo.path, "--run", run.path])
        #expect(t.status != 0 && t.stderr.contains("unknown key 'logger2'"))
        let nofile = try CLI.run(["train", "/nonexistent.yml"])
        #expect(nofile.status != 0 && nofile.stderr.contains("cannot read '/nonexistent.yml'"))
        // A config that is not a regular file, or is too big, is refused before it is read.
        let dirConfig = try CLI.run(["train", CLI.tempDir().path])
        #expect(dirConfig.status != 0 && dirConfig.stderr.contains("is not a regular file"), "\(dirConfig.stderr)")
        let huge = try CLI.tempDir().appendingPathComponent("huge.yml")
        FileManager.default.createFile(atPath: huge.path, contents: Data("name: x\n".utf8))
        let h = try FileHandle(forWritingTo: huge)
        try h.truncate(atOffset: 100_000_000)
        try h.close()
        let big = try CLI.run(["train", huge.path])
        #expect(big.status != 0 && big.stderr.contains("over the limit of 1048576 bytes"), "\(big.stderr)")
        #expect(big.stderr.split(separator: "\n").count == 1)
        // A corrupt checkpoint is reported, not overwritten.
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        let ck = run.appendingPathComponent("checkpoint.safetensors")
        try Data("not a checkpoint".utf8).write(to: ck)
        let photos = try Self.photoFolder()
        let good = try Self.write(Self.config(photos: photos.path, totalIter: 2))
        let c = try CLI.run(["train", good.path, "--run", run.path, "--resume"])
        #expect(c.status != 0 && c.stderr.contains("unreadable"))
        #expect(try Data(contentsOf: ck) == Data("not a checkpoint".utf8))
    }

    @Test func evalWritesTheIssueJSON() throws {
        let photos = try Self.photoFolder()
        let out = try CLI.tempDir().appendingPathComponent("eval.json")
        let r = try CLI.run([
            "eval", "--hr", photos.path, "--scales", "2,3.5", "-m", CLI.smallModel.path, "--json", out.path,
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("PSNR-Y"))
        let obj = try JSONSerialization.jsonObject(with: Data(contentsOf: out)) as! [String: Any]
        let scales = obj["scales"] as! [[String: Any]]
        #expect(scales.map { $0["scale"] as! Double } == [2, 3.5])
        for s in scales {
            for k in ["model", "bicubic"] {
                let m = s[k] as! [String: Double]
                #expect(m["psnr_y"]!.isFinite && m["psnr_y"]! > 5 && m["ssim_y"]! > -1 && m["ssim_y"]! <= 1)
            }
            // Bicubic on smooth synthetic photos is good; the random-weight small model is not.
            #expect((s["bicubic"] as! [String: Double])["psnr_y"]! > (s["model"] as! [String: Double])["psnr_y"]!)
        }
        let bad = try CLI.run(["eval", "--hr", "/nonexistent-dir", "-m", CLI.smallModel.path])
        #expect(bad.status != 0 && bad.stderr.contains("does not exist"))
        let badScale = try CLI.run(["eval", "--hr", photos.path, "--scales", "2,x", "-m", CLI.smallModel.path])
        #expect(badScale.status != 0 && badScale.stderr.contains("not a decimal number"))
    }
}
