import GSASRTensor

/// Buffers a training run reuses from one sample to the next (one sample's forward and backward
/// run before the next sample's forward): today the heads' activation cache. Not thread-safe:
/// one per trainer.
public final class TrainingScratch: @unchecked Sendable {
    var headsCache: Fea2GS.HeadsCache?

    public init() {}

    /// A cache for `n` Gaussians of `c` channels: the kept one when it has that size.
    func headsCache(n: Int, channel c: Int) -> Fea2GS.HeadsCache {
        if let h = headsCache, h.n == n, h.channel == c { return h }
        headsCache = nil  // release the old one before allocating
        let h = Fea2GS.HeadsCache(n: n, channel: c)
        headsCache = h
        return h
    }
}
