import Foundation
import GSASR
import GSASRTraining
import Testing

/// A synthetic photo with texture everywhere (so the flat-crop test never rejects it).
func syntheticPhotos(count: Int = 2, width: Int = 120, height: Int = 100) -> TrainingPhotos {
    var rng = SplitMix64(seed: 7)
    let photos = (0..<count).map { k -> TrainingPhotos.Photo in
        var b = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<3 {
                    let smooth = 128 + 60 * sin(Double(x) / 5 + Double(c)) * cos(Double(y) / 7 + Double(k))
                    b[(y * width + x) * 3 + c] = UInt8(max(0, min(255, smooth + Double(rng.next() % 40) - 20)))
                }
            }
        }
        return TrainingPhotos.Photo(name: "synthetic\(k)", width: width, height: height, bytes: b)
    }
    return TrainingPhotos(photos: photos)
}

@Suite struct DatasetTests {
    /// The official dataset's LR (imresize_new in float32) of the golden batch, bit for bit.
    @Test(.enabled(if: TrainGolden.available)) func lowResolutionMatchesOfficialImresizeNew() throws {
        for (name, gt) in [("A_chelsea", 60), ("B_rocket", 78)] {
            let g = try NPY.load(TrainGolden.url("inputs/\(name)_gt_\(gt)x\(gt).npy")).floats
            let ref = try NPY.load(TrainGolden.url("inputs/\(name)_lr_24x24.npy")).floats
            let lr = ContinuousBicubicDataset.lowResolution(g, gtSize: gt, lrSize: 24)
            var maxErr: Float = 0
            for i in 0..<ref.count { maxErr = max(maxErr, abs(lr[i] - ref[i])) }
            print("imresize_new \(name): max abs error \(maxErr)")
            // The resizer's established tolerance (ResizeTests): float32 sums in a different order than
            // torch's `mv` (sgemv), a few ulp.
            #expect(maxErr <= 2e-6)
        }
    }

    @Test func samplesArePureFunctionsOfSeedAndIndex() {
        let ds = ContinuousBicubicDataset(photos: syntheticPhotos(), lrSize: 12, scaleMin: 1, scaleMax: 4, seed: 3)
        let a = ds.sample(5), b = ds.sample(5), c = ds.sample(6)
        #expect(a.lr == b.lr && a.gt == b.gt && a.scaleModify == b.scaleModify)
        #expect(a.gt != c.gt)
        var sizes = Set<Int>()
        for i in 0..<200 {
            let s = ds.sample(i)
            #expect(s.lrSize == 12 && s.lr.count == 12 * 12 * 3)
            #expect(s.gtSize >= 12 && s.gtSize <= 48 && s.gt.count == s.gtSize * s.gtSize * 3)
            #expect(s.scaleModify == Float(Double(s.gtSize) / 12))
            #expect(s.gt.allSatisfy { $0 >= 0 && $0 <= 1 })
            sizes.insert(s.gtSize)
        }
        // Scales drawn from U(1, 4) cover most GT sizes 12...48.
        #expect(sizes.count > 25)
        let other = ContinuousBicubicDataset(photos: syntheticPhotos(), lrSize: 12, seed: 4)
        #expect(other.sample(5).gt != a.gt)
    }

    /// GT and LR of a sample without augmentation are a crop and its imresize_new.
    @Test func sampleIsCropAndItsResize() {
        let photos = syntheticPhotos(count: 1)
        let ds = ContinuousBicubicDataset(
            photos: photos, lrSize: 12, useFlips: false, useRotation: false, flatThreshold: 0, seed: 11)
        let s = ds.sample(2)
        #expect(s.lr == ContinuousBicubicDataset.lowResolution(s.gt, gtSize: s.gtSize, lrSize: 12))
        // The GT is a crop of the photo: find its first row in the photo.
        let p = photos.photos[0]
        let row0 = s.gt.prefix(s.gtSize * 3).map { UInt8(($0 * 255).rounded()) }
        var found = false
        for y in 0...(p.height - s.gtSize) where !found {
            for x in 0...(p.width - s.gtSize) {
                let o = (y * p.width + x) * 3
                if Array(p.bytes[o..<(o + s.gtSize * 3)]) == row0 { found = true; break }
            }
        }
        #expect(found)
    }

    @Test func augmentationIsFlipThenTranspose() {
        // 2x2 image with pixel values 0..3 (channel 0).
        func img(_ v: [Float]) -> [Float] { v.flatMap { [$0, $0, $0] } }
        let src = img([0, 1, 2, 3])  // rows: [0 1] [2 3]
        let h = ContinuousBicubicDataset.augment(src, side: 2, hflip: true, vflip: false, transpose: false)
        #expect(h == img([1, 0, 3, 2]))
        let v = ContinuousBicubicDataset.augment(src, side: 2, hflip: false, vflip: true, transpose: false)
        #expect(v == img([2, 3, 0, 1]))
        let t = ContinuousBicubicDataset.augment(src, side: 2, hflip: false, vflip: false, transpose: true)
        #expect(t == img([0, 2, 1, 3]))
        // hflip then transpose: [1 0][3 2] transposed = [1 3][0 2].
        let ht = ContinuousBicubicDataset.augment(src, side: 2, hflip: true, vflip: false, transpose: true)
        #expect(ht == img([1, 3, 0, 2]))
    }

    @Test func flatCropsAreRejected() {
        // One photo: left half flat grey, right half textured.
        let w = 80, h = 40
        var b = [UInt8](repeating: 128, count: w * h * 3)
        var rng = SplitMix64(seed: 1)
        for y in 0..<h { for x in (w / 2)..<w { for c in 0..<3 { b[(y * w + x) * 3 + c] = UInt8(rng.next() % 256) } } }
        let photos = TrainingPhotos(photos: [TrainingPhotos.Photo(name: "half", width: w, height: h, bytes: b)])
        let on = ContinuousBicubicDataset(photos: photos, lrSize: 8, scaleMin: 1, scaleMax: 1, seed: 2)
        let off = ContinuousBicubicDataset(photos: photos, lrSize: 8, scaleMin: 1, scaleMax: 1, flatThreshold: 0, seed: 2)
        func flat(_ s: TrainingPair) -> Bool { Set(s.gt).count == 1 }
        let flatOn = (0..<100).filter { flat(on.sample($0)) }.count
        let flatOff = (0..<100).filter { flat(off.sample($0)) }.count
        print("flat crops: \(flatOff)/100 without rejection, \(flatOn)/100 with")
        #expect(flatOff > 20)
        #expect(flatOn == 0)
    }

    @Test func prefetcherReturnsTheSameBatches() {
        let ds = ContinuousBicubicDataset(photos: syntheticPhotos(), lrSize: 8, seed: 9)
        let pf = BatchPrefetcher(dataset: ds, batchSize: 3)
        for it in [1, 2, 3, 7, 8] {
            let a = pf.batch(iteration: it), b = ds.batch(start: (it - 1) * 3, count: 3)
            #expect(a.map(\.gt) == b.map(\.gt) && a.map(\.lr) == b.map(\.lr))
        }
    }
}
