import Foundation
import GSASR
import Testing

/// Gaussian exports: rendering an export reproduces the upscale pipeline bit for bit, regions
/// and zooms are what they say, and untrusted files are checked.
@Suite struct GaussianExportTests {
    static let smallModel: GSASRModel = try! GSASRModel.load(directory: Fixtures.url("small"))

    static func bits(_ a: [Float]) -> [UInt32] { a.map(\.bitPattern) }

    /// Number of elements whose bits differ (the sizes must agree; -1 when they do not).
    static func differing(_ a: [Float], _ b: [Float]) -> Int {
        a.count == b.count ? zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count : -1
    }

    static func tempURL(_ name: String) throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("gsasr-export-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d.appendingPathComponent(name)
    }

    /// astronaut 48x48 (no padding) and coffee 37x50 (padded to 48x60), isotropic and per-axis
    /// scales, both raster modes, both geometries (x3.7 on 48x60 is a fractional canvas,
    /// 177.6 x 222, where they differ).
    static let cases: [(input: String, request: ScaleRequest, mode: RasterMode, dmax: Float)] = [
        ("astronaut_48x48", ScaleRequest(scale: 4), .fast, 0.1),
        ("coffee_37x50", ScaleRequest(scale: 3.5), .exact, 0.1),
        ("coffee_37x50", ScaleRequest(scaleX: 2.5, scaleY: 3.1), .fast, 0.3),
        ("coffee_37x50", ScaleRequest(scale: 3.7), .fast, 0.1),
        ("coffee_37x50", ScaleRequest(scale: 3.7, geometry: .official), .fast, 0.1),
        ("coffee_37x50", ScaleRequest(scaleX: 2.5, scaleY: 3.1, geometry: .official), .exact, 0.3),
    ]

    @Test(arguments: 0..<cases.count)
    func zoomOneRenderOfTheFileIsThePipelineOutput(index: Int) throws {
        let c = Self.cases[index]
        let lr = try Fixtures.lr(c.input)
        let up = Upscaler(model: Self.smallModel, dmax: c.dmax, mode: c.mode)
        let pipeline = try up.upscale(rgb: lr.pixels, width: lr.width, height: lr.height, request: c.request)
        let export = try up.export(
            rgb: lr.pixels, width: lr.width, height: lr.height, request: c.request, modelName: "small")
        let url = try Self.tempURL("g.safetensors")
        try export.save(to: url)
        let loaded = try GaussianExport.load(url)
        #expect(loaded.count == pipeline.gaussianCount)
        #expect(loaded.outputWidth == pipeline.width && loaded.outputHeight == pipeline.height)
        #expect(loaded.renderWidth == export.renderWidth && loaded.renderHeight == export.renderHeight)
        #expect(loaded.scaleX == c.request.scaleX && loaded.scaleY == c.request.scaleY)
        #expect(loaded.conditioning == c.request.conditioning)
        #expect(loaded.geometry == c.request.geometry)
        #expect(loaded.dmax == c.dmax && loaded.mode == c.mode && loaded.model == "small")
        #expect(Self.differing(loaded.kernels.sigmas, export.kernels.sigmas) == 0)
        #expect(Self.differing(loaded.opacity, export.opacity) == 0)
        let view = try RenderView(export: loaded)
        #expect(view.outputWidth == pipeline.width && view.outputHeight == pipeline.height)
        let rendered = loaded.render(view)
        #expect(rendered.count == pipeline.pixels.count)
        #expect(Self.differing(rendered, pipeline.pixels) == 0, "\(c.input) \(c.request)")
        // In bands, and with another thread count: the same bits.
        let banded = loaded.render(view, rows: 0..<37, threads: 1) + loaded.render(view, rows: 37..<view.outputHeight)
        #expect(Self.differing(banded, pipeline.pixels) == 0)
    }

    @Test func regionsAndZooms() throws {
        let lr = try Fixtures.lr("coffee_37x50")
        let up = Upscaler(model: Self.smallModel)
        let e = try up.export(
            rgb: lr.pixels, width: lr.width, height: lr.height, request: ScaleRequest(scale: 4), modelName: "small")
        let whole = e.render(try RenderView(export: e))
        let ow = e.outputWidth
        // Zoom 1 region = the crop of the whole render.
        let v1 = try RenderView(export: e, region: (10, 20, 40, 30), zoom: 1)
        let r1 = e.render(v1)
        var crop: [Float] = []
        for y in 20..<50 { crop += whole[((y * ow + 10) * 3)..<((y * ow + 50) * 3)] }
        #expect(Self.differing(r1, crop) == 0)
        // Zoom 4: 160x120.
        let v4 = try RenderView(export: e, region: (10, 20, 40, 30), zoom: 4)
        #expect(v4.outputWidth == 160 && v4.outputHeight == 120 && v4.zoomX == 4 && v4.zoomY == 4)
        #expect(e.render(v4).count == 160 * 120 * 3)
        // Zoom 3: the centre sample of each 3x3 block is the zoom-1 pixel.
        let v3 = try RenderView(export: e, region: (10, 20, 40, 30), zoom: 3)
        let r3 = e.render(v3)
        var differ = 0
        for y in 0..<30 {
            for x in 0..<40 {
                for c in 0..<3
                where r3[((3 * y + 1) * 120 + 3 * x + 1) * 3 + c].bitPattern != r1[(y * 40 + x) * 3 + c].bitPattern {
                    differ += 1
                }
            }
        }
        #expect(differ == 0)
        // --size: a zoom per axis that covers the region exactly.
        let vs = try RenderView(export: e, region: (0, 0, 40, 30), size: (100, 50))
        #expect(vs.zoomX == 2.5 && vs.zoomY == 50.0 / 30.0)
        #expect(e.render(vs).count == 100 * 50 * 3)
        // A non-integer zoom rounds the sides: 41 · 2.5 = 102.5 → 103.
        let vn = try RenderView(export: e, region: (0, 0, 41, 30), zoom: 2.5)
        #expect(vn.outputWidth == 103 && vn.outputHeight == 75)
    }

    /// A small valid export (4 Gaussians on a 20x10 render), for the file checks.
    static func tinyExport() -> GaussianExport {
        GaussianExport(
            kernels: GaussianKernels(
                sigmas: [0.1, 0.2, 0, 0.05, 0.05, 0.5, 0.3, 0.1, -0.9, 0.2, 0.2, 0.1],
                coords: [0, 0, -0.5, 0.5, 0.9, -0.9, 0.2, 0.1], colors: [Float](repeating: 0.25, count: 12)),
            opacity: [0.5, 0.5, 0.5, 0.5], renderWidth: 20, renderHeight: 10, outputWidth: 18, outputHeight: 9,
            inputWidth: 5, inputHeight: 3, scaleX: 4, scaleY: 3.5, conditioning: (14.0).squareRoot(),
            geometry: .exact, dmax: 0.1, mode: .fast, model: "tiny")
    }

    @Test func tinyExportRoundTrips() throws {
        let e = Self.tinyExport()
        let url = try Self.tempURL("t.safetensors")
        try e.save(to: url)
        let l = try GaussianExport.load(url)
        #expect(l.metadata == e.metadata)
        #expect(Self.differing(l.render(try RenderView(export: l)), e.render(try RenderView(export: e))) == 0)
    }

    /// Files written before the exact geometry existed have no `geometry` metadata: their
    /// centres were placed on the floored canvas, so they load as official.
    @Test func filesWithoutGeometryAreOfficial() throws {
        let e = Self.tinyExport()
        var meta = e.metadata
        meta["geometry"] = nil
        var sd = StateDict()
        sd.insert("centers", LoadedTensor(shape: [e.count, 2], dtype: .float32, floats: e.kernels.coords))
        sd.insert("sigmas", LoadedTensor(shape: [e.count, 3], dtype: .float32, floats: e.kernels.sigmas))
        sd.insert("colors", LoadedTensor(shape: [e.count, 3], dtype: .float32, floats: e.kernels.colors))
        sd.insert("opacity", LoadedTensor(shape: [e.count], dtype: .float32, floats: e.opacity))
        let url = try Self.tempURL("old.safetensors")
        try Safetensors.save(sd, metadata: meta, to: url)
        let l = try GaussianExport.load(url)
        #expect(l.geometry == .official)
        #expect(Self.differing(l.render(try RenderView(export: l)), e.render(try RenderView(export: e))) == 0)
    }

    /// Each mutation of a valid file must be refused with a one-line message naming the problem.
    @Test(arguments: [
        ("no format", "not a Gaussian export"), ("version 2", "version"), ("missing sigmas", "'sigmas' is missing"),
        ("count mismatch", "shape"), ("shape mismatch", "shape"), ("int dtype", "float32"),
        ("nan sigma", "invalid sigmas"), ("zero sigma", "invalid sigmas"), ("rho 1", "invalid sigmas"),
        ("inf centre", "centre"), ("opacity 2", "opacity"), ("output over render", "output_width"),
        ("render 1", "render_width"), ("bad dmax", "dmax"), ("bad mode", "raster_mode"),
        ("missing size", "'render_height' is missing"), ("huge count", "gaussians"), ("extra tensor", "unexpected"),
        ("bad scale", "scale_x"), ("bad geometry", "'geometry' = 'floored' is not one of exact, official"),
    ])
    func badFilesAreRefused(mutation: String, mentions: String) throws {
        let e = Self.tinyExport()
        var meta = e.metadata
        let n = e.count
        var t: [String: LoadedTensor] = [
            "centers": LoadedTensor(shape: [n, 2], dtype: .float32, floats: e.kernels.coords),
            "sigmas": LoadedTensor(shape: [n, 3], dtype: .float32, floats: e.kernels.sigmas),
            "colors": LoadedTensor(shape: [n, 3], dtype: .float32, floats: e.kernels.colors),
            "opacity": LoadedTensor(shape: [n], dtype: .float32, floats: e.opacity),
        ]
        switch mutation {
        case "no format": meta["format"] = nil
        case "version 2": meta["format_version"] = "2"
        case "missing sigmas": t["sigmas"] = nil
        case "count mismatch": meta["gaussians"] = "5"
        case "shape mismatch":
            t["colors"] = LoadedTensor(shape: [n, 4], dtype: .float32, floats: [Float](repeating: 0, count: 4 * n))
        case "int dtype":
            t["opacity"] = LoadedTensor(shape: [n], dtype: .int64, floats: [0, 0, 0, 0], ints: [0, 0, 0, 0])
        case "nan sigma": t["sigmas"]!.floats[3] = .nan
        case "zero sigma": t["sigmas"]!.floats[1] = 0
        case "rho 1": t["sigmas"]!.floats[2] = 1
        case "inf centre": t["centers"]!.floats[5] = .infinity
        case "opacity 2": t["opacity"]!.floats[2] = 2
        case "output over render": meta["output_width"] = "21"
        case "render 1": meta["render_width"] = "1"
        case "bad dmax": meta["dmax"] = "0"
        case "bad mode": meta["raster_mode"] = "fastest"
        case "missing size": meta["render_height"] = nil
        case "huge count": meta["gaussians"] = "99999999999999999999"
        case "extra tensor": t["raw"] = LoadedTensor(shape: [1], dtype: .float32, floats: [0])
        case "bad scale": meta["scale_x"] = "nan"
        case "bad geometry": meta["geometry"] = "floored"
        default: Issue.record("unknown mutation \(mutation)")
        }
        var sd = StateDict()
        for key in ["centers", "sigmas", "colors", "opacity", "raw"] { if let v = t[key] { sd.insert(key, v) } }
        let url = try Self.tempURL("bad.safetensors")
        try Safetensors.save(sd, metadata: meta, to: url)
        do {
            _ = try GaussianExport.load(url)
            Issue.record("\(mutation): accepted")
        } catch {
            let text = "\(error)"
            print("\(mutation): \(text)")
            #expect(!text.contains("\n"))
            #expect(
                text.lowercased().contains(mentions.lowercased()), "\(mutation): '\(text)' should mention '\(mentions)'"
            )
        }
    }

    @Test func truncatedAndForeignFilesAreRefused() throws {
        let url = try Self.tempURL("t.safetensors")
        try Self.tinyExport().save(to: url)
        let bytes = try Data(contentsOf: url)
        for cut in [4, 100, bytes.count - 7] {
            let bad = try Self.tempURL("cut.safetensors")
            try bytes.prefix(cut).write(to: bad)
            #expect(throws: (any Error).self) { _ = try GaussianExport.load(bad) }
        }
        // A model checkpoint is a safetensors file but no export.
        var sd = StateDict()
        sd.insert("conv.weight", LoadedTensor(shape: [2, 2], dtype: .float32, floats: [1, 2, 3, 4]))
        let model = try Self.tempURL("model.safetensors")
        try Safetensors.save(sd, to: model)
        do {
            _ = try GaussianExport.load(model)
            Issue.record("a model checkpoint was accepted")
        } catch {
            #expect("\(error)".contains("not a Gaussian export"))
        }
    }

    @Test func badViewsAreRefused() throws {
        let e = Self.tinyExport()  // output 18x9
        func refused(
            _ region: (Int, Int, Int, Int)?, zoom: Double? = nil, size: (Int, Int)? = nil, _ mentions: String
        ) {
            do {
                _ = try RenderView(export: e, region: region, zoom: zoom, size: size)
                Issue.record("accepted \(String(describing: region)) zoom \(String(describing: zoom))")
            } catch {
                #expect("\(error)".contains(mentions), "'\(error)' should mention '\(mentions)'")
            }
        }
        refused((0, 0, 19, 9), "outside")
        refused((10, 0, 9, 9), "outside")
        refused((-1, 0, 5, 5), "outside")
        refused((0, 5, 5, 5), "outside")
        refused((0, 0, 0, 5), "empty")
        refused((Int.max, 0, 5, 5), "outside")
        refused(nil, zoom: 0, "zoom")
        refused(nil, zoom: -2, "zoom")
        refused(nil, zoom: .nan, "zoom")
        refused(nil, zoom: .infinity, "zoom")
        refused(nil, zoom: 1e9, "limit")
        refused(nil, zoom: 2, size: (10, 10), "only one")
        refused(nil, size: (0, 10), "positive")
        refused(nil, size: (1 << 20, 1 << 20), "limit")
        // Small zooms stay at least one pixel.
        let v = try RenderView(export: e, zoom: 0.01)
        #expect(v.outputWidth == 1 && v.outputHeight == 1)
    }
}
