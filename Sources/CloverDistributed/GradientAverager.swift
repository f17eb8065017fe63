import Clover
import CloverRuntime

/// Averages an optimiser's gradients over the ranks of a job, as
/// `clover train --distributed` and `clover-bench --distributed` do: call
/// ``average(_:parameters:)`` from the optimiser's gradient hook.
///
/// On an OpenCL device whose optimiser keeps its gradients in one flat
/// arena, the buckets (``GradientBuckets``) are reduced while backward runs
/// (``OverlappedReduction``) when overlap is on, else after backward (the
/// queue drained first, then ``Communicator/averageInBuckets(_:read:write:)``
/// over device reads and writes). On the CPU reference device the gradients
/// are averaged as one host array.
///
/// Overlap is on by default on GPUs and off on CPU devices, where Open MPI's
/// polling communication thread takes a core from the backward kernels;
/// `CLOVER_ALLREDUCE_OVERLAP=1` or `0` forces it either way.
/// With overlap on, the first step after a new arena is reduced at the
/// step (the arena is not known before it); from the next step on, buckets
/// start during backward.
public final class GradientAverager {
    /// The variable that forces overlap on (`1`, or any value but `0`) or off (`0`).
    public static let overlapVariable = "CLOVER_ALLREDUCE_OVERLAP"
    /// The variable that overrides the 25 MiB bucket size, in bytes (at least 4).
    public static let bucketBytesVariable = "CLOVER_ALLREDUCE_BUCKET_BYTES"

    /// The figures of one step's reduction.
    public struct Step: Sendable {
        /// Bytes, buckets and seconds of the reduction.
        public var statistics: ReductionStatistics
        /// Seconds spent waiting for backward to drain before a reduction
        /// after backward (0 with overlap and on the reference device).
        public var backwardWaitSeconds: Double
        /// Whether the buckets were reduced during backward, so that
        /// ``ReductionStatistics/hiddenFraction`` is the share hidden behind it.
        public var overlapped: Bool
    }

    /// The job's communicator.
    public let world: Communicator
    /// The bucket size limit in bytes.
    public let bucketBytes: Int
    /// Forced overlap (`true` or `false`), or nil for the default rule.
    public let overlapSetting: Bool?
    /// The reduction during backward, once a step has used it.
    public private(set) var overlap: OverlappedReduction?
    /// The device whose backward passes report leaves to ``overlap``.
    private var observedDevice: Device?
    private var buckets: GradientBuckets?

    /// - Parameters:
    ///   - world: the job's communicator (`MPI_THREAD_SERIALIZED` or more).
    ///   - bucketBytes: the bucket size limit.
    ///   - overlap: forces overlap on or off; nil for the default rule.
    public init(world: Communicator, bucketBytes: Int = GradientBuckets.defaultBucketBytes, overlap: Bool? = nil) {
        self.world = world
        self.bucketBytes = max(4, bucketBytes)
        overlapSetting = overlap
    }

    /// Settings from ``overlapVariable`` and ``bucketBytesVariable``.
    public convenience init(world: Communicator, environment: [String: String]) {
        self.init(world: world,
                  bucketBytes: environment[Self.bucketBytesVariable].flatMap { Int($0) } ?? GradientBuckets.defaultBucketBytes,
                  overlap: environment[Self.overlapVariable].map { $0 != "0" })
    }

    /// Whether buckets are reduced during backward on `context`'s device:
    /// the setting, else on every device but a CPU.
    public func overlapAllowed(on context: OpenCLContext) -> Bool {
        overlapSetting ?? (context.device.kind != .cpu)
    }

    /// Replaces `gradients` (the optimiser's flat arena, or one tensor per
    /// parameter) with their average over the ranks.
    ///
    /// - Parameter parameters: the optimiser's parameter tensors, in arena
    ///   order (as bound to it); needed for overlap only.
    public func average(_ gradients: [Tensor], parameters: [Tensor]) throws -> Step {
        if gradients.count == 1, let view = gradients[0].deviceView, let context = gradients[0].device.openCL,
           overlapAllowed(on: context), parameters.reduce(0, { $0 + $1.count }) == view.count {
            if overlap?.matches(view) != true {
                // From the next step on, buckets start during backward.
                overlap = OverlappedReduction(world: world, context: context, arena: view,
                                              parameters: parameters, plan: bucketPlan(count: view.count))
                gradients[0].device.gradientReadinessObserver = { [weak self] leaf in self?.overlap?.leafFinished(leaf) }
                observedDevice = gradients[0].device
            }
            return Step(statistics: try overlap!.finishStep(), backwardWaitSeconds: 0, overlapped: true)
        }
        return try averageAfterBackward(gradients)
    }

    /// The reduction without overlap: the optimiser's flat arena on an
    /// OpenCL device (drained first, so the figures hold transfers and
    /// communication only), each bucket read, reduced and written back in
    /// place; else (the reference device) one host array over all gradients.
    public func averageAfterBackward(_ gradients: [Tensor]) throws -> Step {
        if gradients.count == 1, let view = gradients[0].deviceView, let context = gradients[0].device.openCL {
            let plan = bucketPlan(count: view.count)
            // A blocking read of the first bucket would otherwise count the whole backward pass.
            let clock = ContinuousClock(), start = clock.now
            try context.finish()
            let wait = Communicator.seconds(clock.now - start)
            let statistics = try world.averageInBuckets(plan, read: { range in
                try context.download(view.slice(offset: range.lowerBound, count: range.count), as: Float.self)
            }, write: { range, values in
                try context.upload(values, to: view.slice(offset: range.lowerBound, count: range.count))
            })
            return Step(statistics: statistics, backwardWaitSeconds: wait, overlapped: false)
        }
        var flat = try gradients.flatMap { try $0.toArray() }
        let statistics = try world.averageInBuckets(bucketPlan(count: flat.count), read: { Array(flat[$0]) },
                                                    write: { flat.replaceSubrange($0, with: $1) })
        var offset = 0
        for g in gradients {
            try g.copyValues(Array(flat[offset..<offset + g.count]))
            offset += g.count
        }
        return Step(statistics: statistics, backwardWaitSeconds: 0, overlapped: false)
    }

    /// The buckets over `count` elements (kept while the count is the same).
    public func bucketPlan(count: Int) -> GradientBuckets {
        if let buckets, buckets.count == count { return buckets }
        let plan = GradientBuckets(count: count, bucketBytes: bucketBytes)
        buckets = plan
        return plan
    }

    /// Stops reducing during backward: removes the
    /// ``Device/gradientReadinessObserver`` this installed and the arena's
    /// reduction (call before another optimiser's steps, and at the end).
    public func stop() {
        observedDevice?.gradientReadinessObserver = nil
        observedDevice = nil
        overlap = nil
    }
}
