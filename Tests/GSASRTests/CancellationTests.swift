import Foundation
import GSASR
import Testing

/// `Upscaler.upscale(..., cancellableProgress:)`: a throw from the progress closure stops the run
/// at that point and propagates; not throwing gives the same pixels as the plain call.
@Suite struct CancellationTests {
    static let model: GSASRModel = try! GSASRModel.load(directory: Fixtures.url("small"))

    func image(_ w: Int, _ h: Int) -> [Float] {
        (0..<(w * h * 3)).map { 0.5 + 0.4 * sin(Float($0) / 7) }
    }

    @Test(arguments: [UpscaleStage.encode, .decode, .render])
    func throwingStopsAtThatStage(stage: UpscaleStage) throws {
        let up = Upscaler(model: Self.model)
        var seen: [UpscaleStage] = []
        #expect(throws: CancellationError.self) {
            _ = try up.upscale(
                rgb: image(24, 24), width: 24, height: 24, request: ScaleRequest(scale: 2),
                cancellableProgress: { s, f in
                    if seen.last != s { seen.append(s) }
                    if s == stage && f > 0 { throw CancellationError() }
                })
        }
        #expect(seen.last == stage, "stages seen: \(seen)")
    }

    @Test func notThrowingGivesThePlainResult() throws {
        let up = Upscaler(model: Self.model)
        let a = try up.upscale(rgb: image(24, 24), width: 24, height: 24, scale: 2)
        let b = try up.upscale(
            rgb: image(24, 24), width: 24, height: 24, request: ScaleRequest(scale: 2),
            cancellableProgress: { _, _ in try Task.checkCancellation() })
        #expect(a.pixels == b.pixels && a.width == 48)
    }
}
