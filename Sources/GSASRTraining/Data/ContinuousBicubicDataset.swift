import Foundation
import GSASR
import GSASRImage

/// Training pairs as the official `ContinuousBicubicDownsampleDataset` makes them
/// (TrainTestGSASR/basicsr/data/continuous_bicubic_downsample_dataset.py, `round_mode: round`):
///
/// 1. draw a scale `s ~ U(scaleMin, scaleMax)`;
/// 2. `gt_size = round(s · lr_size)` (Python's round, half to even);
/// 3. a random `gt_size × gt_size` crop of a random photo (`uint8 / 255`, float32);
/// 4. `scale_modify = gt_size / lr_size` (float);
/// 5. LR = MATLAB-style antialiased bicubic of the crop by `1/scale_modify` to `lr_size × lr_size`
///    (basicsr `imresize_new`: output size `round(in · 1/scale_modify)`), in float32, **not**
///    rounded to 8 bits and not clamped;
/// 6. basicsr `augment`: horizontal flip, vertical flip and transpose, each with p = 1/2, applied
///    to GT and LR alike.
///
/// Differences from the official loader, all deliberate and named here:
/// - Sample `i` is a pure function of `(seed, i)` (its own SplitMix64 stream), so the data
///   order resumes exactly from the iteration number alone, and prefetching cannot change it.
///   The photo is drawn uniformly per sample (the official loader visits every photo once per
///   epoch in a shuffled order; with 38 photos and batch 4 the two are the same in distribution).
/// - Flat crops are rejected: if the mean absolute horizontal+vertical difference of the crop's
///   luma is below `flatThreshold` (in [0, 1] units; default 0.015, about 4/255), a new crop
///   position is drawn, up to `flatRetries` times (the last draw is kept). Many of the allowed
///   photos are mostly bokeh; the official DIV2K data is not.
public struct ContinuousBicubicDataset: Sendable {
    public let photos: TrainingPhotos
    public var lrSize: Int
    public var scaleMin: Double
    public var scaleMax: Double
    public var useFlips: Bool
    public var useRotation: Bool
    public var flatThreshold: Double
    public var flatRetries: Int
    public var seed: UInt64

    public init(
        photos: TrainingPhotos, lrSize: Int, scaleMin: Double = 1, scaleMax: Double = 4, useFlips: Bool = true,
        useRotation: Bool = true, flatThreshold: Double = 0.015, flatRetries: Int = 8, seed: UInt64
    ) {
        self.photos = photos
        self.lrSize = lrSize
        self.scaleMin = scaleMin
        self.scaleMax = scaleMax
        self.useFlips = useFlips
        self.useRotation = useRotation
        self.flatThreshold = flatThreshold
        self.flatRetries = flatRetries
        self.seed = seed
    }

    /// The largest GT side a sample can have.
    public var maxGTSize: Int { Int((scaleMax * Double(lrSize)).rounded(.toNearestOrEven)) }

    /// The `index`-th sample (0-based over the whole run).
    public func sample(_ index: Int) -> TrainingPair {
        var rng = SplitMix64(seed: seed ^ (UInt64(truncatingIfNeeded: index) &* 0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
        _ = rng.next()
        let photo = photos.photos[Int(rng.next() % UInt64(photos.photos.count))]
        let s = scaleMin + (scaleMax - scaleMin) * rng.uniform()
        let gt = min(Int((s * Double(lrSize)).rounded(.toNearestOrEven)), photo.width, photo.height)
        var top = 0, left = 0
        for attempt in 0...flatRetries {
            top = Int(rng.next() % UInt64(photo.height - gt + 1))
            left = Int(rng.next() % UInt64(photo.width - gt + 1))
            if attempt == flatRetries || flatThreshold <= 0 { break }
            if Self.activity(photo, top: top, left: left, size: gt) >= flatThreshold { break }
        }
        var crop = [Float](repeating: 0, count: gt * gt * 3)
        photo.bytes.withUnsafeBufferPointer { src in
            for y in 0..<gt {
                let row = ((top + y) * photo.width + left) * 3
                for x in 0..<(gt * 3) { crop[y * gt * 3 + x] = Float(src[row + x]) / 255 }
            }
        }
        let scaleModify = Double(gt) / Double(lrSize)
        let lr = Self.lowResolution(crop, gtSize: gt, lrSize: lrSize)
        let hflip = useFlips && rng.uniform() < 0.5
        let vflip = useRotation && rng.uniform() < 0.5
        let transpose = useRotation && rng.uniform() < 0.5
        let g = Self.augment(crop, side: gt, hflip: hflip, vflip: vflip, transpose: transpose)
        let l = Self.augment(lr, side: lrSize, hflip: hflip, vflip: vflip, transpose: transpose)
        return TrainingPair(lr: l, lrSize: lrSize, gt: g, gtSize: gt, scaleModify: Float(scaleModify))
    }

    /// basicsr `imresize_new(crop, 1/scale_modify, 1/scale_modify)` for a square HWC RGB crop:
    /// antialiased MATLAB bicubic in float32 with the scale `lr_size/gt_size` computed in double
    /// (Python's `1 / (gt/lr)`), output `round(gt · scale) = lr_size`, not rounded or clamped.
    public static func lowResolution(_ crop: [Float], gtSize gt: Int, lrSize: Int) -> [Float] {
        let scaleModify = Double(gt) / Double(lrSize)
        return Resize.imresize(
            Image(width: gt, height: gt, pixels: crop), scale: 1 / scaleModify, outWidth: lrSize, outHeight: lrSize
        ).pixels
    }

    /// Samples `start ..< start + count`.
    public func batch(start: Int, count: Int) -> [TrainingPair] { (start..<(start + count)).map(sample) }

    /// Mean absolute horizontal + vertical difference of the crop's luma (BT.601 weights), in [0, 1] units.
    static func activity(_ p: TrainingPhotos.Photo, top: Int, left: Int, size: Int) -> Double {
        var sum = 0.0
        var count = 0
        p.bytes.withUnsafeBufferPointer { b in
            func luma(_ y: Int, _ x: Int) -> Double {
                let i = ((top + y) * p.width + left + x) * 3
                return (0.299 * Double(b[i]) + 0.587 * Double(b[i + 1]) + 0.114 * Double(b[i + 2])) / 255
            }
            // Every second row and column is enough to tell bokeh from texture.
            for y in stride(from: 0, to: size - 1, by: 2) {
                for x in stride(from: 0, to: size - 1, by: 2) {
                    let c = luma(y, x)
                    sum += abs(luma(y, x + 1) - c) + abs(luma(y + 1, x) - c)
                    count += 1
                }
            }
        }
        return count > 0 ? sum / Double(count) : 0
    }

    /// basicsr `augment` on a square HWC RGB image: horizontal flip, then vertical flip, then
    /// transpose (`img.transpose(1, 0, 2)`).
    public static func augment(_ src: [Float], side n: Int, hflip: Bool, vflip: Bool, transpose: Bool) -> [Float] {
        if !hflip && !vflip && !transpose { return src }
        var out = [Float](repeating: 0, count: src.count)
        for y in 0..<n {
            for x in 0..<n {
                // Output (y, x) reads the source through the inverse of the three maps.
                var sy = transpose ? x : y, sx = transpose ? y : x
                if vflip { sy = n - 1 - sy }
                if hflip { sx = n - 1 - sx }
                let o = (y * n + x) * 3, i = (sy * n + sx) * 3
                out[o] = src[i]
                out[o + 1] = src[i + 1]
                out[o + 2] = src[i + 2]
            }
        }
        return out
    }
}

/// Prepares the next batch on a background thread while the current one trains. Batches are
/// pure functions of their start index, so prefetching never changes what is trained on.
public final class BatchPrefetcher: @unchecked Sendable {
    private let dataset: ContinuousBicubicDataset
    private let batchSize: Int
    private let globalBatch: Int
    private let offset: Int
    private let queue = DispatchQueue(label: "gsasr.prefetch", qos: .userInitiated)
    private let lock = NSLock()
    private var pending: (start: Int, done: DispatchSemaphore, box: Box)?

    private final class Box: @unchecked Sendable { var value: [TrainingPair] = [] }

    /// `batchSize` samples per iteration, at `offset` into each iteration's global batch of
    /// `globalBatch` samples (a data-parallel rank's part; by default the whole batch).
    public init(dataset: ContinuousBicubicDataset, batchSize: Int, globalBatch: Int? = nil, offset: Int = 0) {
        self.dataset = dataset
        self.batchSize = batchSize
        self.globalBatch = globalBatch ?? batchSize
        self.offset = offset
    }

    /// The batch of iteration `iter` (1-based): samples (iter−1)·G + offset ..< + B, where G is
    /// the global batch. Starts preparing the next one before returning.
    public func batch(iteration iter: Int) -> [TrainingPair] {
        let start = (iter - 1) * globalBatch + offset
        let result: [TrainingPair]
        lock.lock()
        let p = pending
        pending = nil
        lock.unlock()
        if let p, p.start == start {
            p.done.wait()
            result = p.box.value
        } else {
            p?.done.wait()
            result = dataset.batch(start: start, count: batchSize)
        }
        schedule(start: start + globalBatch)
        return result
    }

    private func schedule(start: Int) {
        let done = DispatchSemaphore(value: 0), box = Box()
        let ds = dataset, n = batchSize
        queue.async {
            box.value = ds.batch(start: start, count: n)
            done.signal()
        }
        lock.lock()
        pending = (start, done, box)
        lock.unlock()
    }
}
