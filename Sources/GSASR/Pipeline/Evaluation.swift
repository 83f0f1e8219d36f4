import Foundation
import GSASRImage

/// PSNR-Y / SSIM-Y evaluation as the official benchmark prep and metrics do it
/// (TrainTestGSASR/scripts/data_preparation/generate_bicubic_float_scale_img_use_python_matlab.py
/// and basicsr `calculate_psnr` / `calculate_ssim` with `test_y_channel: True`):
///
/// - `h_lr = floor(H / s)`, `w_lr = floor(W / s)`; the GT is the top-left
///   `floor(h_lr·s) × floor(w_lr·s)` of the HR image;
/// - LR = MATLAB-style `imresize(HR, 1/s)` (output `ceil`), cropped top-left to `h_lr × w_lr`
///   and rounded to 8 bits: this is what the model sees;
/// - the bicubic baseline is `imresize(LR_float, s)` of the *unrounded* LR, cropped to the GT
///   size and rounded to 8 bits (as the official script writes its Bicubic folder);
/// - the model output is `floor(s·w_lr) × floor(s·h_lr)`, equal to the GT size;
/// - crop border = `min(ceil(s), 8)` (the official configs use the scale; assumption for
///   non-integer scales: its ceiling; capped at 8 as issue 6 asks).
public enum Evaluation {
    public struct Prepared: Sendable {
        public let lr: Image  // 8-bit values as float (uint8/255)
        public let gt: [UInt8]
        public let bicubic: [UInt8]
        public let gtWidth: Int
        public let gtHeight: Int
    }

    public struct Score: Codable, Sendable, Equatable {
        public var psnrY: Double
        public var ssimY: Double
        enum CodingKeys: String, CodingKey {
            case psnrY = "psnr_y"
            case ssimY = "ssim_y"
        }
        public init(psnrY: Double, ssimY: Double) {
            self.psnrY = psnrY
            self.ssimY = ssimY
        }
    }

    /// The mean best shifts (``Alignment``) of the top-left and bottom-right quarters, over the
    /// images: the mean magnitude and the mean signed components, in output pixels.
    public struct QuarterShifts: Codable, Sendable, Equatable {
        public var topLeft: Double
        public var bottomRight: Double
        public var topLeftDX, topLeftDY, bottomRightDX, bottomRightDY: Double
        enum CodingKeys: String, CodingKey {
            case topLeft = "top_left", bottomRight = "bottom_right"
            case topLeftDX = "top_left_dx", topLeftDY = "top_left_dy"
            case bottomRightDX = "bottom_right_dx", bottomRightDY = "bottom_right_dy"
        }
        static let zero = QuarterShifts(
            topLeft: 0, bottomRight: 0, topLeftDX: 0, topLeftDY: 0, bottomRightDX: 0, bottomRightDY: 0)
        mutating func add(_ q: (topLeft: Alignment.Shift, bottomRight: Alignment.Shift), weight w: Double) {
            topLeft += w * q.topLeft.magnitude
            bottomRight += w * q.bottomRight.magnitude
            topLeftDX += w * q.topLeft.dx
            topLeftDY += w * q.topLeft.dy
            bottomRightDX += w * q.bottomRight.dx
            bottomRightDY += w * q.bottomRight.dy
        }
    }

    /// The model's scores with one geometry.
    public struct GeometryResult: Codable, Sendable {
        public var geometry: GaussianGeometry
        public var score: Score
        public var shifts: QuarterShifts?
    }

    public struct ScaleResult: Codable, Sendable {
        public var scale: Double
        /// The model's scores with the first geometry evaluated.
        public var model: Score?
        public var bicubic: Score
        public var images: Int
        /// Every geometry evaluated, in the order asked (empty without a model).
        public var geometries: [GeometryResult] = []
        /// Bicubic's shifts, when shifts were measured (the measure's own floor: bicubic is
        /// aligned with the ground truth by construction).
        public var bicubicShifts: QuarterShifts?
        enum CodingKeys: String, CodingKey {
            case scale, model, bicubic, images, geometries
            case bicubicShifts = "bicubic_shifts"
        }
    }

    public static func cropBorder(scale: Double) -> Int { min(Int(scale.rounded(.up)), 8) }

    /// The LR, GT and bicubic images of one HR image at one scale.
    public static func prepare(hr: Image, scale s: Double) throws -> Prepared {
        let hLR = Int((Double(hr.height) / s).rounded(.down)), wLR = Int((Double(hr.width) / s).rounded(.down))
        guard hLR >= 1, wLR >= 1 else {
            throw UpscaleError("image \(hr.width)x\(hr.height) is too small for scale \(s)")
        }
        let hGT = Int((Double(hLR) * s).rounded(.down)), wGT = Int((Double(wLR) * s).rounded(.down))
        let lrFull = Resize.imresize(hr, scale: 1 / s)
        let lrFloat = crop(lrFull, width: wLR, height: hLR)
        let lr8 = lrFloat.bytes()
        let bic = crop(Resize.imresize(lrFull, scale: s), width: wGT, height: hGT).bytes()
        let gt = crop(hr, width: wGT, height: hGT).bytes()
        let lrImage = Image(width: wLR, height: hLR, pixels: lr8.map { Float($0) / 255 })
        return Prepared(lr: lrImage, gt: gt, bicubic: bic, gtWidth: wGT, gtHeight: hGT)
    }

    /// Top-left crop.
    public static func crop(_ img: Image, width w: Int, height h: Int) -> Image {
        precondition(w <= img.width && h <= img.height)
        var out = [Float](repeating: 0, count: w * h * img.channels)
        let row = w * img.channels
        for y in 0..<h {
            for i in 0..<row { out[y * row + i] = img.pixels[y * img.width * img.channels + i] }
        }
        return Image(width: w, height: h, channels: img.channels, pixels: out)
    }

    /// Centre crop to at most `side × side` (the whole image when smaller or `side` ≤ 0).
    public static func centerCrop(_ img: Image, side: Int) -> Image {
        guard side > 0, img.width > side || img.height > side else { return img }
        let w = min(side, img.width), h = min(side, img.height)
        let x0 = (img.width - w) / 2, y0 = (img.height - h) / 2
        var out = [Float](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            for i in 0..<(w * 3) { out[y * w * 3 + i] = img.pixels[((y0 + y) * img.width + x0) * 3 + i] }
        }
        return Image(width: w, height: h, pixels: out)
    }

    public static func score(_ a: [UInt8], _ gt: [UInt8], width: Int, height: Int, scale: Double) -> Score {
        let b = cropBorder(scale: scale)
        return Score(
            psnrY: Metrics.psnrY(a, gt, width: width, height: height, cropBorder: b),
            ssimY: Metrics.ssimY(a, gt, width: width, height: height, cropBorder: b))
    }

    /// Mean scores over `images` at each scale, for the model (when given) and for bicubic.
    /// `ssim` false skips SSIM (reported as 0) to save time during training validation.
    /// `geometries`: the model is scored with each (one network pass per image and scale, one
    /// render per geometry). `shifts`: also measure the best sub-pixel shift of the top-left
    /// and bottom-right quarters against the ground truth (``Alignment``), for the model and
    /// bicubic.
    public static func evaluate(
        images: [Image], scales: [Double], upscaler: Upscaler?, ssim: Bool = true,
        geometries: [GaussianGeometry] = [.default], shifts: Bool = false,
        progress: ((String) -> Void)? = nil
    ) throws -> [ScaleResult] {
        precondition(!geometries.isEmpty, "at least one geometry")
        var results: [ScaleResult] = []
        let n = Double(images.count)
        for s in scales {
            var m = [Score](repeating: Score(psnrY: 0, ssimY: 0), count: geometries.count)
            var mShift = [QuarterShifts](repeating: .zero, count: geometries.count)
            var bsum = Score(psnrY: 0, ssimY: 0), bShift = QuarterShifts.zero
            for (k, hr) in images.enumerated() {
                let p = try prepare(hr: hr, scale: s)
                let b = cropBorder(scale: s)
                bsum.psnrY += Metrics.psnrY(p.bicubic, p.gt, width: p.gtWidth, height: p.gtHeight, cropBorder: b)
                if ssim {
                    bsum.ssimY += Metrics.ssimY(p.bicubic, p.gt, width: p.gtWidth, height: p.gtHeight, cropBorder: b)
                }
                if shifts {
                    bShift.add(
                        Alignment.quarterShifts(
                            output: p.bicubic, gt: p.gt, width: p.gtWidth, height: p.gtHeight, border: b),
                        weight: 1 / n)
                }
                if let upscaler {
                    let lr = p.lr
                    let plans = try geometries.map {
                        try upscaler.plan(
                            width: lr.width, height: lr.height, request: ScaleRequest(scale: s, geometry: $0))
                    }
                    var timings = Upscaler.Timings()
                    let gs = upscaler.gaussians(rgb: lr.pixels, plan: plans[0], timings: &timings)
                    for (gi, plan) in plans.enumerated() {
                        guard plan.outputWidth == p.gtWidth, plan.outputHeight == p.gtHeight else {
                            throw UpscaleError(
                                "model output \(plan.outputWidth)x\(plan.outputHeight) differs from GT \(p.gtWidth)x\(p.gtHeight)"
                            )
                        }
                        let out = upscaler.crop(upscaler.render(gs, plan: plan), plan: plan).map(ImageIO.quantize)
                        m[gi].psnrY += Metrics.psnrY(out, p.gt, width: p.gtWidth, height: p.gtHeight, cropBorder: b)
                        if ssim {
                            m[gi].ssimY += Metrics.ssimY(out, p.gt, width: p.gtWidth, height: p.gtHeight, cropBorder: b)
                        }
                        if shifts {
                            mShift[gi].add(
                                Alignment.quarterShifts(
                                    output: out, gt: p.gt, width: p.gtWidth, height: p.gtHeight, border: b),
                                weight: 1 / n)
                        }
                    }
                }
                progress?("x\(s) image \(k + 1)/\(images.count)")
            }
            let byGeometry =
                upscaler == nil
                ? []
                : geometries.indices.map {
                    GeometryResult(
                        geometry: geometries[$0], score: Score(psnrY: m[$0].psnrY / n, ssimY: m[$0].ssimY / n),
                        shifts: shifts ? mShift[$0] : nil)
                }
            results.append(
                ScaleResult(
                    scale: s, model: byGeometry.first?.score,
                    bicubic: Score(psnrY: bsum.psnrY / n, ssimY: bsum.ssimY / n), images: images.count,
                    geometries: byGeometry, bicubicShifts: shifts ? bShift : nil))
        }
        return results
    }

    /// Every PNG/JPEG directly inside `folder`, sorted by name.
    public static func loadFolder(_ folder: String) throws -> [(name: String, image: Image)] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
            throw UpscaleError("HR folder '\(folder)' does not exist")
        }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter {
            ["png", "jpg", "jpeg"].contains(($0 as NSString).pathExtension.lowercased())
        }.sorted()
        guard !names.isEmpty else { throw UpscaleError("HR folder '\(folder)' holds no PNG or JPEG images") }
        return try names.map { n in
            let url = URL(fileURLWithPath: folder).appendingPathComponent(n)
            return (n, try ImageIO.load(url).rgb)
        }
    }
}
