import Dispatch

/// A flat gradient buffer cut into buckets of about 25 MB, in the order
/// every rank reduces them.
///
/// The order is fixed by the buffer's size alone, so every rank of a job
/// (same model, same buffer) reduces the same ranges in the same order: a
/// different order would pair unrelated data in a collective, or hang.
/// Buckets run from the end of the buffer to its start, as PyTorch's DDP
/// does: the optimiser's arena holds parameters in forward order, so its end
/// holds the gradients backward produces first.
public struct GradientBuckets: Sendable, Equatable {
    /// PyTorch DDP's default bucket size, 25 MiB.
    public static let defaultBucketBytes = 25 << 20

    /// The element ranges, in reduction order; together they cover
    /// `0..<count` once. Empty for an empty buffer.
    public let ranges: [Range<Int>]
    /// The number of elements covered.
    public let count: Int

    /// Buckets of at most `bucketBytes` bytes of `Float` (at least one
    /// element each) over `count` elements.
    public init(count: Int, bucketBytes: Int = Self.defaultBucketBytes) {
        precondition(count >= 0, "negative element count")
        let perBucket = max(1, bucketBytes / MemoryLayout<Float>.stride)
        var ranges: [Range<Int>] = []
        var end = count
        while end > 0 {
            let start = max(0, end - perBucket)
            ranges.append(start..<end)
            end = start
        }
        self.ranges = ranges
        self.count = count
    }
}

/// What one bucketed reduction cost: for `clover train --profile` and the
/// benchmarks.
public struct ReductionStatistics: Sendable {
    /// Bytes this rank contributed (and received) over all buckets.
    public var bytes = 0
    /// Buckets reduced.
    public var buckets = 0
    /// Seconds spent inside `MPI_Allreduce`, summed over buckets.
    public var communicationSeconds = 0.0
    /// Seconds the calling thread waited for the communication thread:
    /// communication not hidden behind the reads and writes of other buckets.
    public var exposedSeconds = 0.0
    /// Seconds the whole reduction took, reads and writes included.
    public var totalSeconds = 0.0

    public init() {}

    /// The fraction of communication time hidden behind other work (0 when
    /// there was none to hide).
    public var hiddenFraction: Double {
        communicationSeconds > 0 ? max(0, min(1, 1 - exposedSeconds / communicationSeconds)) : 0
    }

    /// Adds another reduction's figures.
    public static func += (a: inout ReductionStatistics, b: ReductionStatistics) {
        a.bytes += b.bytes
        a.buckets += b.buckets
        a.communicationSeconds += b.communicationSeconds
        a.exposedSeconds += b.exposedSeconds
        a.totalSeconds += b.totalSeconds
    }
}

extension Communicator {
    /// Replaces a buffer, bucket by bucket, with its average over all ranks.
    ///
    /// `read` fetches a bucket's elements (e.g. from the device) and `write`
    /// stores the averaged bucket back; both run on the calling thread. The
    /// reductions run on a communication thread, so bucket `k` is reduced
    /// while bucket `k + 1` is read and bucket `k - 1` written; the calling
    /// thread makes no MPI call meanwhile, which is why MPI must provide at
    /// least `MPI_THREAD_SERIALIZED`.
    ///
    /// - Throws: the first error of `read`, `write` or MPI (naming the call);
    ///   ``MPIError`` when MPI provides less than serialized thread support.
    @discardableResult
    public func averageInBuckets(_ buckets: GradientBuckets, read: (Range<Int>) throws -> [Float],
                                 write: (Range<Int>, [Float]) throws -> Void) throws -> ReductionStatistics {
        guard threadLevel >= .serialized else {
            throw MPIError(call: "MPI_Allreduce", code: -1,
                           message: "a communication thread needs MPI_THREAD_SERIALIZED; MPI provides \(threadLevel)")
        }
        let clock = ContinuousClock()
        let started = clock.now
        var statistics = ReductionStatistics()
        let scale = 1 / Float(size)
        let queue = DispatchQueue(label: "clover.allreduce")
        let slots = buckets.ranges.map { _ in BucketSlot() }

        /// Waits for bucket `k`'s reduction and writes it back.
        func complete(_ k: Int) throws {
            let waitStart = clock.now
            slots[k].done.wait()
            statistics.exposedSeconds += Self.seconds(clock.now - waitStart)
            statistics.communicationSeconds += slots[k].seconds
            if let error = slots[k].error { throw error }
            try write(buckets.ranges[k], slots[k].values)
            slots[k].values = []
        }

        var submitted = 0
        do {
            for (k, range) in buckets.ranges.enumerated() {
                let slot = slots[k]
                slot.values = try read(range)
                guard slot.values.count == range.count else {
                    throw MPIError(call: "MPI_Allreduce", code: -1,
                                   message: "bucket \(k) read \(slot.values.count) elements for \(range.count)")
                }
                statistics.bytes += range.count * MemoryLayout<Float>.stride
                statistics.buckets += 1
                queue.async { [self] in
                    let start = clock.now
                    do {
                        try allreduceSum(&slot.values)
                        for i in slot.values.indices { slot.values[i] *= scale }
                    } catch {
                        slot.error = error
                    }
                    slot.seconds = Self.seconds(clock.now - start)
                    slot.done.signal()
                }
                submitted += 1
                if k > 0 { try complete(k - 1) }
            }
            if submitted > 0 { try complete(submitted - 1) }
        } catch {
            // Let the communication thread finish with the buffers it holds.
            queue.sync {}
            throw error
        }
        statistics.totalSeconds = Self.seconds(clock.now - started)
        return statistics
    }

    static func seconds(_ d: Duration) -> Double {
        let c = d.components
        return Double(c.seconds) + Double(c.attoseconds) * 1e-18
    }
}

/// One bucket handed to the communication thread; `done` orders the
/// accesses (the thread writes before signalling, the caller reads after
/// waiting).
private final class BucketSlot: @unchecked Sendable {
    var values: [Float] = []
    var error: Error?
    var seconds = 0.0
    let done = DispatchSemaphore(value: 0)
}
