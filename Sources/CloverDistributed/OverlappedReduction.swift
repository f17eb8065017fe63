import Clover
import CloverRuntime
import Dispatch

/// Reduces the optimiser's gradient arena bucket by bucket while backward
/// is still running, as PyTorch's DDP does.
///
/// Autograd reports each parameter once no later node of the pass can add
/// to its gradient (``Device/gradientReadinessObserver``). When every parameter of the next
/// bucket in the fixed order (``GradientBuckets``, from the end of the
/// arena, where backward's first gradients are) is final, a non-blocking
/// device read of the bucket is enqueued behind the backward kernels that
/// write it, and the communication thread waits for that read and runs a
/// blocking `MPI_Allreduce` (Open MPI progresses collectives only inside
/// MPI calls), while the main thread goes on enqueuing backward. At the
/// optimiser's step the remaining buckets (parameters that got no gradient,
/// zero-filled by the arena's `collect`) are started, every reduction is
/// awaited, and the averages are uploaded before the update.
///
/// Every rank runs the same graph, so buckets become ready in the same
/// order; buckets are in any case started strictly in plan order, so the
/// collectives of all ranks pair up.
///
/// Usually driven by ``GradientAverager``, which builds one for the
/// optimiser's arena and installs ``leafFinished(_:)`` as the
/// ``Device/gradientReadinessObserver``. Needs MPI with at least
/// `MPI_THREAD_SERIALIZED` (``Communicator/initialize(requiring:)``).
public final class OverlappedReduction {
    private let world: Communicator
    private let context: OpenCLContext
    private let arena: BufferView
    private let plan: GradientBuckets
    /// Element range of each parameter in the arena.
    private let parameterRanges: [Range<Int>]
    private let parameterIndex: [ObjectIdentifier: Int]
    /// The buckets each parameter's range touches.
    private let bucketsOfParameter: [[Int]]
    private let parametersPerBucket: [Int]
    private let buffers: [UnsafeMutableBufferPointer<Float>]
    private let queue = DispatchQueue(label: "clover.allreduce.overlap")
    private let clock = ContinuousClock()

    // Per step.
    private var remaining: [Int]
    private var final: [Bool]
    private var next = 0
    private var slots: [Slot?]
    private var pendingError: Error?

    /// A reduction of `arena` over the ranks of `world`.
    ///
    /// - Parameters:
    ///   - world: the job's communicator.
    ///   - context: the OpenCL context that holds `arena` and runs backward.
    ///   - arena: the optimiser's flat gradient arena.
    ///   - parameters: the leaf tensors bound to it, in arena order (their
    ///     counts must add up to the arena's).
    ///   - plan: the buckets over the arena, the same on every rank.
    public init(world: Communicator, context: OpenCLContext, arena: BufferView, parameters: [Tensor], plan: GradientBuckets) {
        self.world = world
        self.context = context
        self.arena = arena
        self.plan = plan
        var offset = 0
        parameterRanges = parameters.map { p in defer { offset += p.count }; return offset..<offset + p.count }
        parameterIndex = Dictionary(uniqueKeysWithValues: parameters.enumerated().map { (ObjectIdentifier($1), $0) })
        bucketsOfParameter = parameterRanges.map { range in
            plan.ranges.indices.filter { plan.ranges[$0].overlaps(range) }
        }
        var perBucket = [Int](repeating: 0, count: plan.ranges.count)
        for buckets in bucketsOfParameter { for k in buckets { perBucket[k] += 1 } }
        parametersPerBucket = perBucket
        buffers = plan.ranges.map { UnsafeMutableBufferPointer<Float>.allocate(capacity: $0.count) }
        remaining = perBucket
        final = [Bool](repeating: false, count: parameters.count)
        slots = [Slot?](repeating: nil, count: plan.ranges.count)
    }

    deinit {
        queue.sync {}
        for buffer in buffers { buffer.deallocate() }
    }

    /// Whether `view` is still the arena this was built for.
    public func matches(_ view: BufferView) -> Bool {
        view.buffer === arena.buffer && view.offset == arena.offset && view.count == arena.count
    }

    /// Autograd's report that `leaf`'s gradient is final (the
    /// ``Device/gradientReadinessObserver``): starts every bucket, in order, whose
    /// parameters are all final. Leaves of other arenas are ignored; an
    /// error is kept and thrown by ``finishStep()``.
    public func leafFinished(_ leaf: Tensor) {
        guard pendingError == nil, let i = parameterIndex[ObjectIdentifier(leaf)], !final[i] else { return }
        // Only a gradient already in its arena slice can be read early; one
        // held elsewhere (or none) is completed by the step's `collect`.
        guard let view = leaf.grad?.deviceView, view.buffer === arena.buffer,
              view.offset == arena.offset + parameterRanges[i].lowerBound else { return }
        final[i] = true
        for k in bucketsOfParameter[i] { remaining[k] -= 1 }
        do { try start(all: false) } catch { pendingError = error }
    }

    /// Starts the next buckets in order: those whose parameters are all
    /// final, or (`all`) every one left.
    private func start(all: Bool) throws {
        while next < plan.ranges.count, all || remaining[next] == 0 {
            let k = next, range = plan.ranges[k], buffer = buffers[k]
            let read = try context.startDownload(arena.slice(offset: range.lowerBound, count: range.count),
                                                 into: UnsafeMutableRawPointer(buffer.baseAddress!))
            let slot = Slot()
            slots[k] = slot
            next += 1
            let scale = 1 / Float(world.size)
            let handed = HandedBuffer(buffer: buffer)
            queue.async { [world, clock] in
                let buffer = handed.buffer
                do {
                    try read.wait()
                    slot.readDone = clock.now
                    try world.allreduceSum(buffer)
                    for i in buffer.indices { buffer[i] *= scale }
                } catch {
                    slot.error = error
                }
                slot.reduceDone = clock.now
                slot.done.signal()
            }
        }
    }

    /// At the step (after the arena's `collect`): starts what is left,
    /// waits for every bucket, uploads the averages, and returns the step's
    /// figures: ``ReductionStatistics/exposedSeconds`` is the communication
    /// not hidden behind backward, so ``ReductionStatistics/hiddenFraction``
    /// is the share hidden behind it.
    ///
    /// - Throws: the first error of a device transfer or of MPI this step.
    public func finishStep() throws -> ReductionStatistics {
        let started = clock.now
        var statistics = ReductionStatistics()
        defer {
            remaining = parametersPerBucket
            final = [Bool](repeating: false, count: final.count)
            next = 0
            slots = [Slot?](repeating: nil, count: slots.count)
            pendingError = nil
        }
        var failure = pendingError
        if failure == nil {
            do { try start(all: true) } catch { failure = error }
        }
        // Every backward kernel and every bucket's read has run once the
        // queue drains: reduction time before this was hidden behind
        // backward, the rest is exposed.
        var backwardEnd = clock.now
        if failure == nil {
            do { try context.finish() } catch { failure = error }
            backwardEnd = clock.now
        }
        // Every started reduction must end before the buffers are reused.
        var finished: [Slot] = []
        for slot in slots.prefix(next) {
            guard let slot else { continue }
            slot.done.wait()
            if failure == nil, let error = slot.error { failure = error }
            finished.append(slot)
        }
        if let failure { throw failure }
        let waited = clock.now
        for (k, range) in plan.ranges.enumerated() {
            try context.upload(Array(buffers[k]), to: arena.slice(offset: range.lowerBound, count: range.count))
        }
        for slot in finished {
            guard let readDone = slot.readDone, let reduceDone = slot.reduceDone else { continue }
            let busy = Communicator.seconds(reduceDone - readDone)
            statistics.communicationSeconds += busy
            let hidden = readDone < backwardEnd ? min(busy, Communicator.seconds(backwardEnd - readDone)) : 0
            statistics.exposedSeconds += busy - hidden
        }
        statistics.bytes = plan.count * MemoryLayout<Float>.stride
        statistics.buckets = plan.ranges.count
        statistics.totalSeconds = Communicator.seconds(waited - started)
        return statistics
    }
}

/// One bucket's reduction on the communication thread; `done` orders the
/// accesses (written before the signal, read after the wait).
private final class Slot: @unchecked Sendable {
    var readDone: ContinuousClock.Instant?
    var reduceDone: ContinuousClock.Instant?
    var error: Error?
    let done = DispatchSemaphore(value: 0)
}

/// A bucket's host buffer handed to the communication thread. Unchecked
/// because it is a raw pointer: from the download's start until the slot's
/// `done` is signalled only that thread touches the memory, and the main
/// thread reads it only after waiting on `done`.
private struct HandedBuffer: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<Float>
}
