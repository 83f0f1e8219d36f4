import Foundation
import GSASRImage
import Testing

@Suite struct MetricsTests {
    func bytes(_ name: String) throws -> [UInt8] {
        let decoded = try ImageIO.load(fixture(name)).rgb
        #expect(decoded.width == 192 && decoded.height == 192)
        return decoded.bytes()
    }

    func relErr(_ a: Double, _ b: Double) -> Double { abs(a - b) / abs(b) }

    /// README section 5: official calculate_psnr / calculate_ssim, crop 4, against the HR crop.
    @Test(arguments: [
        (
            "edsr_astronaut_48x48_x4_sr.png", 10.251392125687532, 0.03409914682258807, 8.450419838215389,
            0.025792087644745096, 10.106680831813467
        ),
        (
            "astronaut_48x48_bicubic_x4.png", 27.615341457736, 0.8308302435698725, 26.111128997445206,
            0.801185229353357, 27.470961574274337
        ),
    ])
    func matchesOfficialTable(
        name: String, psnrY: Double, ssimY: Double, psnrRGB: Double, ssimRGB: Double, psnrYSwapped: Double
    ) throws {
        let sr = try bytes(name)
        let gt = try bytes("astronaut_48x48_hr_x4.png")
        let py = Metrics.psnrY(sr, gt, width: 192, height: 192)
        let sy = Metrics.ssimY(sr, gt, width: 192, height: 192)
        let prgb = Metrics.psnr(sr, gt, width: 192, height: 192, cropBorder: 4, testYChannel: false)
        let srgb = Metrics.ssim(sr, gt, width: 192, height: 192, cropBorder: 4, testYChannel: false)
        print("\(name): PSNR-Y \(py) (rel err \(relErr(py, psnrY))), SSIM-Y \(sy) (rel err \(relErr(sy, ssimY)))")
        print(
            "\(name): PSNR-RGB \(prgb) (rel err \(relErr(prgb, psnrRGB))), SSIM-RGB \(srgb) (rel err \(relErr(srgb, ssimRGB)))"
        )
        #expect(relErr(py, psnrY) < 1e-9)
        #expect(relErr(prgb, psnrRGB) < 1e-9)
        #expect(relErr(sy, ssimY) < 1e-6)
        #expect(relErr(srgb, ssimRGB) < 1e-6)

        // Feeding BGR-ordered bytes reproduces the "fed RGB by mistake" column, which shows the
        // channel order is handled (the reference expects BGR, we take RGB).
        var swapped = sr, gtSwapped = gt
        for i in stride(from: 0, to: sr.count, by: 3) {
            swapped.swapAt(i, i + 2)
            gtSwapped.swapAt(i, i + 2)
        }
        let wrong = Metrics.psnrY(swapped, gtSwapped, width: 192, height: 192)
        print("\(name): PSNR-Y with swapped channels \(wrong) (rel err \(relErr(wrong, psnrYSwapped)))")
        #expect(relErr(wrong, psnrYSwapped) < 1e-9)
    }

    @Test func identicalImages() throws {
        let gt = try bytes("astronaut_48x48_hr_x4.png")
        #expect(Metrics.psnrY(gt, gt, width: 192, height: 192) == .infinity)
        #expect(abs(Metrics.ssimY(gt, gt, width: 192, height: 192) - 1) < 1e-12)
    }

    @Test func pairwiseSumMatchesExactSumOfIntegers() {
        let values = (0..<1000).map { Double($0 % 17) }
        #expect(Metrics.pairwiseSum(values) == values.reduce(0, +))
    }
}
