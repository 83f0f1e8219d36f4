import Foundation
import GSASR
import Testing

/// Request validation happens before any work: sizes follow the official floor() rules, and bad
/// scales or oversized requests are refused with a message naming the problem.
@Suite struct PlanTests {
    static let model: GSASRModel = try! GSASRModel.load(directory: Fixtures.url("small"))

    @Test func sizesFollowInferencePaper() throws {
        let up = Upscaler(model: Self.model)
        // 37x50 → padded 48x60; x11.3: render floor(11.3·48) x floor(11.3·60) = 542 x 678 (Python
        // double arithmetic gives 678.0000000000001 → 678), output floor(11.3·37) x floor(11.3·50).
        let p = try up.plan(width: 50, height: 37, scale: 11.3)
        #expect(p.paddedWidth == 60 && p.paddedHeight == 48)
        #expect(p.renderWidth == 678 && p.renderHeight == 542)
        #expect(p.outputWidth == 565 && p.outputHeight == 418)
        #expect(p.gaussians == 16 * 48 * 60)
    }

    @Test(arguments: [0.0, -1, .nan, .infinity, 0.5, 1e9, 1e300, .greatestFiniteMagnitude])
    func badScalesAreRefused(scale: Double) {
        let up = Upscaler(model: Self.model)
        #expect(throws: UpscaleError.self) { try up.plan(width: 48, height: 48, scale: scale) }
    }

    @Test func tooSmallToPadIsRefused() {
        let up = Upscaler(model: Self.model)
        #expect(throws: UpscaleError.self) { try up.plan(width: 6, height: 40, scale: 2) }
        #expect((try? up.plan(width: 7, height: 7, scale: 2)) != nil)
    }

    @Test func memoryLimitIsEnforced() throws {
        var up = Upscaler(model: Self.model)
        up.memoryLimitBytes = 64 << 20
        do {
            _ = try up.plan(width: 480, height: 480, scale: 2)
            Issue.record("expected a memory error")
        } catch let e as UpscaleError {
            #expect(e.description.contains("MiB"))
        }
    }
}
