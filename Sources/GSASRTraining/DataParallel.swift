import CMPI
import Foundation

/// The processes of a data-parallel training run: one per MPI rank under Open MPI's `mpirun`,
/// or this process alone.
///
/// Each rank trains `batch_size_per_gpu` samples per iteration (BasicSR's meaning: per rank),
/// so the global batch is that times the number of ranks, and rank `r` takes samples
/// `r·k ..< (r+1)·k` of each iteration's global batch (sample `i` is a pure function of the seed
/// and `i`, so a rank draws exactly what the single process would have drawn for its part).
///
/// **Same bits for any rank count.** Gradients are summed over the batch's samples in one
/// fixed binary tree: a sum over `n` samples splits after the largest power of two below `n`
/// (`[0, 4) + [4, 6)` for 6), down to single samples. A rank builds the tree over its own
/// samples (``GradientTree``), and the ranks' partial sums are combined by a binomial-tree
/// reduction (rank `r` adds what rank `r + 2^l` sends at level `l`, left operand first) and
/// broadcast back down that tree, with blocking MPI_Send and MPI_Recv: that is the same tree, so the sum is bit-identical for any number of ranks when
/// `batch_size_per_gpu` is a power of two (every rank's block is then a node of the tree). With
/// other per-rank batches a run is still deterministic for its rank count. MPI's own reductions
/// (MPI_Allreduce) are not used: they may reorder float additions with the rank count and the
/// network layout.
///
/// Open MPI is loaded at run time (see `cmpi.h` for why), only when `mpirun` started the
/// process (`OMPI_COMM_WORLD_SIZE` > 1); `GSASR_MPI_LIBRARY` names another libmpi.
public final class DataParallel: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    /// Ranks on this machine (`OMPI_COMM_WORLD_LOCAL_SIZE`), for dividing its cores.
    public let localSize: Int
    private let usesMPI: Bool
    /// Bytes this rank sent in the last ``sum(_:)``: its partial sum to its tree parent, and the
    /// total to each of its children in the broadcast down the same tree.
    public private(set) var bytesSent = 0

    public static let single = DataParallel(rank: 0, size: 1, localSize: 1, usesMPI: false)

    init(rank: Int, size: Int, localSize: Int, usesMPI: Bool) {
        self.rank = rank
        self.size = size
        self.localSize = localSize
        self.usesMPI = usesMPI
    }

    public var isLeader: Bool { rank == 0 }

    /// The ranks `mpirun` started, or ``single`` outside mpirun (or with one rank).
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws
        -> DataParallel
    {
        guard let sizeText = env["OMPI_COMM_WORLD_SIZE"], let declared = Int(sizeText), declared > 1 else {
            return .single
        }
        var message = [CChar](repeating: 0, count: 512)
        guard cmpi_load(env["GSASR_MPI_LIBRARY"], &message, message.count) == 0 else {
            let text = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw TrainingError("started by mpirun with \(declared) ranks, but \(text) (install openmpi-bin)")
        }
        guard cmpi_init() == 0 else { throw TrainingError("MPI_Init failed") }
        var r: Int32 = 0, n: Int32 = 0
        guard cmpi_rank(&r) == 0, cmpi_size(&n) == 0, n == Int32(declared) else {
            throw TrainingError("MPI reports a world of \(n) ranks, mpirun said \(declared)")
        }
        let local = Int(env["OMPI_COMM_WORLD_LOCAL_SIZE"] ?? "") ?? 1
        return DataParallel(rank: Int(r), size: Int(n), localSize: max(1, local), usesMPI: true)
    }

    /// Replaces `values` on every rank by the sum over ranks, added in the fixed binomial tree
    /// described above (rank order, lower rank's partial on the left).
    public func sum(_ values: inout [Float]) throws {
        bytesSent = 0
        guard usesMPI, size > 1 else { return }
        let count = values.count
        var incoming = [Float](repeating: 0, count: count)
        var step = 1
        while step < size {
            if rank % (2 * step) == 0 {
                let partner = rank + step
                if partner < size {
                    try check(incoming.withUnsafeMutableBufferPointer { cmpi_recv_floats($0.baseAddress, count, Int32(partner), 7) }, "receive")
                    values.withUnsafeMutableBufferPointer { v in
                        incoming.withUnsafeBufferPointer { inc in
                            for i in 0..<count { v[i] = v[i] + inc[i] }
                        }
                    }
                }
            } else {
                try check(values.withUnsafeBufferPointer { cmpi_send_floats($0.baseAddress, count, Int32(rank - step), 7) }, "send")
                bytesSent += 4 * count
                break
            }
            step *= 2
        }
        // Broadcast of the sum down the same binomial tree: receive from the parent (the rank
        // without this rank's lowest set bit), then send to the children below that bit.
        var mask = 1
        while mask < size {
            if rank & mask != 0 {
                try check(values.withUnsafeMutableBufferPointer { cmpi_recv_floats($0.baseAddress, count, Int32(rank - mask), 8) }, "receive")
                break
            }
            mask <<= 1
        }
        mask >>= 1
        while mask > 0 {
            if rank + mask < size {
                try check(values.withUnsafeBufferPointer { cmpi_send_floats($0.baseAddress, count, Int32(rank + mask), 8) }, "send")
                bytesSent += 4 * count
            }
            mask >>= 1
        }
    }

    /// Waits for every rank (used before the leader writes the final files).
    public func barrier() throws {
        guard usesMPI, size > 1 else { return }
        try check(cmpi_barrier(), "barrier")
    }

    /// MPI_Finalize, after the last collective call.
    public func finish() {
        guard usesMPI else { return }
        _ = cmpi_finalize()
    }

    /// Ends every rank (a rank that fails must not leave the others waiting in a collective).
    public func abort(_ code: Int32) {
        guard usesMPI else { return }
        cmpi_abort(code)
    }

    private func check(_ rc: Int32, _ what: String) throws {
        guard rc == 0 else { throw TrainingError("MPI \(what) failed on rank \(rank) (error \(rc))") }
    }
}

/// Sums vectors pushed one by one (a sample's gradient each) in the fixed tree of
/// ``DataParallel``: a stack of partial sums whose sizes are decreasing powers of two, merged
/// like a binary counter as each leaf arrives, then folded right to left. That is the tree that
/// splits a sum over `n` leaves after the largest power of two below `n`; it holds at most
/// log2(n) + 1 vectors.
struct GradientTree {
    private var stack: [(size: Int, values: [Float])] = []

    mutating func push(_ leaf: [Float]) {
        var node = (size: 1, values: leaf)
        while let top = stack.last, top.size == node.size {
            stack.removeLast()
            node = (top.size * 2, Self.add(top.values, node.values))
        }
        stack.append(node)
    }

    /// The sum of everything pushed (nil when nothing was).
    mutating func finish() -> [Float]? {
        guard var right = stack.popLast()?.values else { return nil }
        while let left = stack.popLast() { right = Self.add(left.values, right) }
        return right
    }

    /// `left + right`, elementwise, into `left`'s storage.
    static func add(_ left: [Float], _ right: [Float]) -> [Float] {
        var out = left
        out.withUnsafeMutableBufferPointer { o in
            right.withUnsafeBufferPointer { r in
                for i in 0..<o.count { o[i] = o[i] + r[i] }
            }
        }
        return out
    }
}
