import Foundation
import GSASR
import Testing

/// `gsasr gaussians` and `gsasr render` through the built binary.
@Suite(.serialized) struct GaussianCLITests {
    static let seeding = CLI.packageRoot.appendingPathComponent("Examples/seeding_160x120.png")

    /// Exports `input` with the small model (extra options appended) into a new folder.
    static func export(_ extra: [String] = ["-s", "3"], input: URL = seeding) throws -> (dir: URL, file: URL) {
        let d = try CLI.tempDir()
        let g = d.appendingPathComponent("g.safetensors")
        let r = try CLI.run(["gaussians", "-i", input.path, "-o", g.path, "-m", CLI.smallModel.path, "-q"] + extra)
        #expect(r.status == 0, "gaussians failed: \(r.stderr)")
        return (d, g)
    }

    static func load(_ url: URL) throws -> DecodedImage { try ImageIO.load(url) }

    /// The 16-bit render of the export equals the upscale command's 16-bit output, sample for
    /// sample (seeding 160x120 is padded to 168x120, so the render is cropped), in both
    /// geometries (x3.7: a fractional canvas, 621.6 x 444).
    @Test(arguments: [
        ["-s", "3"], ["--size", "500x300"], ["-s", "2.7", "--raster-mode", "exact", "--dmax", "0.2"],
        ["-s", "3.7"], ["-s", "3.7", "--geometry", "official"], ["--size", "500x300", "--geometry", "official"],
    ])
    func renderAtZoomOneIsTheUpscaleOutput(options: [String]) throws {
        let (d, g) = try Self.export(options)
        let up = d.appendingPathComponent("up.png"), re = d.appendingPathComponent("re.png")
        let u = try CLI.run(
            ["-i", Self.seeding.path, "-o", up.path, "-m", CLI.smallModel.path, "--depth", "16", "-q"] + options)
        #expect(u.status == 0, "\(u.stderr)")
        let r = try CLI.run(["render", g.path, "-o", re.path, "--depth", "16", "-q"])
        #expect(r.status == 0, "\(r.stderr)")
        let a = try Self.load(up), b = try Self.load(re)
        #expect(a.bitDepth == 16 && b.bitDepth == 16)
        #expect(a.rgb.width == b.rgb.width && a.rgb.height == b.rgb.height)
        #expect(a.rgb.pixels == b.rgb.pixels, "render differs from the upscale output (\(options))")
        // 8-bit too, and the files are the same bytes (same encoder settings, no ICC in the input).
        let up8 = d.appendingPathComponent("up8.png"), re8 = d.appendingPathComponent("re8.png")
        _ = try CLI.run(["-i", Self.seeding.path, "-o", up8.path, "-m", CLI.smallModel.path, "-q"] + options)
        _ = try CLI.run(["render", g.path, "-o", re8.path, "-q"])
        #expect(try Data(contentsOf: up8) == Data(contentsOf: re8))
    }

    @Test func regionZoomAndSize() throws {
        let (d, g) = try Self.export()
        let z4 = d.appendingPathComponent("z4.png"), z1 = d.appendingPathComponent("z1.png")
        let all = d.appendingPathComponent("all.png"), sz = d.appendingPathComponent("sz.png")
        #expect(
            try CLI.run(["render", g.path, "-o", z4.path, "--region", "10,20,40,30", "--zoom", "4", "-q"]).status == 0)
        let i4 = try Self.load(z4).rgb
        #expect(i4.width == 160 && i4.height == 120)
        // A region at zoom 1 is the same crop of the whole render.
        #expect(
            try CLI.run(["render", g.path, "-o", z1.path, "--region", "10,20,40,30", "--depth", "16", "-q"]).status == 0
        )
        #expect(try CLI.run(["render", g.path, "-o", all.path, "--depth", "16", "-q"]).status == 0)
        let i1 = try Self.load(z1).rgb, w = try Self.load(all).rgb
        var crop: [Float] = []
        for y in 20..<50 { crop += w.pixels[((y * w.width + 10) * 3)..<((y * w.width + 50) * 3)] }
        #expect(i1.width == 40 && i1.height == 30 && i1.pixels == crop)
        let r = try CLI.run(["render", g.path, "-o", sz.path, "--region", "0,0,40,30", "--size", "100x50"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("100x50") && r.stderr.contains("zoom 2.5x1.66667"))
        let s = try Self.load(sz).rgb
        #expect(s.width == 100 && s.height == 50)
    }

    @Test func overlayDrawsAndSaysWhatItLeftOut() throws {
        let (d, g) = try Self.export()
        let plain = d.appendingPathComponent("p.png"), over = d.appendingPathComponent("o.png")
        let capped = d.appendingPathComponent("c.png"), z1 = d.appendingPathComponent("z1.png")
        _ = try CLI.run(["render", g.path, "-o", plain.path, "--region", "100,100,32,24", "--zoom", "8", "-q"])
        let r = try CLI.run([
            "render", g.path, "-o", over.path, "--region", "100,100,32,24", "--zoom", "8", "--overlay",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("overlay:") && r.stderr.contains("Gaussians drawn"), "\(r.stderr)")
        #expect(try Self.load(plain).rgb.pixels != Self.load(over).rgb.pixels)
        let c = try CLI.run([
            "render", g.path, "-o", capped.path, "--region", "100,100,32,24", "--zoom", "8", "--overlay",
            "--overlay-max", "10",
        ])
        #expect(c.stderr.contains("10 Gaussians drawn") && c.stderr.contains("over --overlay-max 10"), "\(c.stderr)")
        // At zoom 1 of a x3 export many ellipses are under a pixel: they are counted, not drawn.
        let s = try CLI.run(["render", g.path, "-o", z1.path, "--overlay"])
        #expect(s.status == 0)
        let m = s.stderr.split(separator: "\n").first { $0.hasPrefix("overlay:") }.map(String.init) ?? ""
        #expect(m.contains("under a pixel"), "\(s.stderr)")
    }

    func expectRejected(
        _ args: [String], output: URL, mentions: String, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let r = try CLI.run(args)
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        print("gsasr \(args.joined(separator: " ")) -> exit \(r.status): \(r.stderr.trimmingCharacters(in: .newlines))")
        #expect(r.status != 0 && r.status < 128, sourceLocation: sourceLocation)
        #expect(lines.count == 1 && r.stderr.hasPrefix("gsasr: error: "), "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(
            r.stderr.lowercased().contains(mentions.lowercased()), "'\(r.stderr)' should mention '\(mentions)'",
            sourceLocation: sourceLocation)
        #expect(
            !FileManager.default.fileExists(atPath: output.path), "an output was written",
            sourceLocation: sourceLocation)
        let left = try FileManager.default.contentsOfDirectory(atPath: output.deletingLastPathComponent().path)
        #expect(left.allSatisfy { !$0.hasPrefix(".") }, "left behind: \(left)", sourceLocation: sourceLocation)
    }

    @Test func badRenderRequestsAreRefused() throws {
        let (d, g) = try Self.export()  // output 480x360
        let out = d.appendingPathComponent("out.png")
        let cases: [([String], String)] = [
            (["--region", "450,0,40,30"], "outside"), (["--region", "0,0,0,30"], "empty"),
            (["--region=-1,0,10,10"], "outside"), (["--region", "1,2,3"], "X,Y,WIDTH,HEIGHT"),
            (["--zoom", "0"], "zoom"), (["--zoom=-1"], "zoom"), (["--zoom", "nan"], "zoom"),
            (["--zoom", "inf"], "zoom"), (["--zoom", "abc"], "not a number"), (["--zoom", "1e6"], "limit"),
            (["--zoom", "2", "--size", "100x100"], "only one"), (["--size", "0x10"], "positive"),
            (["--depth", "16", "-f", "jpg"], "extension"), (["--overlay-max", "-1"], "overlay-max"),
        ]
        for (extra, mentions) in cases {
            try expectRejected(["render", g.path, "-o", out.path] + extra, output: out, mentions: mentions)
        }
        let jpg = d.appendingPathComponent("out.jpg")
        try expectRejected(["render", g.path, "-o", jpg.path, "--depth", "16"], output: jpg, mentions: "16")
        try expectRejected(
            ["render", d.appendingPathComponent("nope.safetensors").path, "-o", out.path], output: out,
            mentions: "does not exist")
        try expectRejected(["render", g.path, "-o", g.path], output: out, mentions: "extension")
        // An error never touches an existing output.
        try Data("keep".utf8).write(to: out)
        let r = try CLI.run(["render", g.path, "-o", out.path, "--zoom", "0"])
        let kept = try Data(contentsOf: out)
        #expect(r.status != 0 && kept == Data("keep".utf8))
    }

    @Test func badExportFilesAreRefused() throws {
        let (d, g) = try Self.export()
        let out = d.appendingPathComponent("out.png")
        let bytes = try Data(contentsOf: g)
        let cut = d.appendingPathComponent("cut.safetensors")
        try bytes.prefix(bytes.count - 100).write(to: cut)
        try expectRejected(["render", cut.path, "-o", out.path], output: out, mentions: "cut.safetensors")
        // A safetensors file that is not an export.
        var sd = StateDict()
        sd.insert("w", LoadedTensor(shape: [2], dtype: .float32, floats: [1, 2]))
        let other = d.appendingPathComponent("model.safetensors")
        try Safetensors.save(sd, to: other)
        try expectRejected(["render", other.path, "-o", out.path], output: out, mentions: "not a Gaussian export")
        // Inconsistent shapes: the count in the metadata disagrees with the tensors.
        let (tensors, meta) = try Safetensors.loadWithMetadata(g)
        var m = meta
        m["gaussians"] = String(Int(meta["gaussians"]!)! + 1)
        let shapes = d.appendingPathComponent("shapes.safetensors")
        try Safetensors.save(tensors, metadata: m, to: shapes)
        try expectRejected(["render", shapes.path, "-o", out.path], output: out, mentions: "shape")
        // An image is not an export.
        try expectRejected(["render", Self.seeding.path, "-o", out.path], output: out, mentions: "seeding_160x120.png")
    }

    @Test func badExportRequestsAreRefused() throws {
        let d = try CLI.tempDir()
        let g = d.appendingPathComponent("g.safetensors")
        let base = ["gaussians", "-i", Self.seeding.path, "-m", CLI.smallModel.path]
        let png = d.appendingPathComponent("g.png")
        try expectRejected(base + ["-o", png.path], output: png, mentions: ".safetensors")
        try expectRejected(base + ["-o", g.path, "-s", "0.5"], output: g, mentions: "scale")
        try expectRejected(base + ["-o", g.path, "-s", "2", "--size", "400x300"], output: g, mentions: "only one")
        try expectRejected(
            base + ["-o", g.path, "-s", "2", "--geometry", "floored"], output: g,
            mentions: "--geometry 'floored' is not one of exact, official")
        try expectRejected(base + ["-o", g.path, "--max-memory-gib", "0.001"], output: g, mentions: "working memory")
        try expectRejected(base + ["-o", g.path, "--raster-mode", "slow"], output: g, mentions: "raster mode")
        try expectRejected(base + ["-o", g.path, "--dmax", "3"], output: g, mentions: "dmax")
        try expectRejected(
            ["gaussians", "-i", d.appendingPathComponent("nope.png").path, "-o", g.path, "-m", CLI.smallModel.path],
            output: g, mentions: "nope.png")
    }
}
