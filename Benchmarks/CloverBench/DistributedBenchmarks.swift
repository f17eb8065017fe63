import Clover
import CloverDistributed
import CloverNN
import CloverRuntime
// FoundationEssentials, never Foundation: see Report.swift.
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `clover-bench --distributed` (or any run under Open MPI's `mpirun`): every
/// rank times the model benchmarks' training steps with its gradients
/// averaged over the ranks inside the optimiser's step, as
/// `clover train --distributed` does (``Optimizer/gradientHook``,
/// ``GradientBuckets`` of 25 MiB in a fixed order, the same
/// ``GradientAverager``), and rank 0 reports.
///
/// Each rank runs the row's batch (weak scaling: the global batch is the
/// per-rank batch times the world size). As in `clover train`, the buckets
/// are reduced during backward (``OverlappedReduction``) on GPUs and after
/// backward on CPU devices; `CLOVER_ALLREDUCE_OVERLAP=1` or `0` forces
/// either. With overlap the row reports the share of `MPI_Allreduce` time
/// hidden behind backward (the warm-up step, which builds the reduction for
/// the optimiser's arena, is not timed).
final class DistributedBench {
    let world: Communicator
    /// `CLOVER_ALLREDUCE_OVERLAP` and `CLOVER_ALLREDUCE_BUCKET_BYTES`, as for `clover train`.
    private let averager: GradientAverager
    var bucketBytes: Int { averager.bucketBytes }

    /// Figures of each step since ``averageGradients(of:parameters:)``.
    private var steps: [GradientAverager.Step] = []

    private init(world: Communicator, environment: [String: String]) {
        self.world = world
        averager = GradientAverager(world: world, environment: environment)
    }

    /// Joins the MPI job when `requested` (`--distributed`) or when Open MPI
    /// started this process (the detection `clover train` uses); nil for an
    /// ordinary single-process run.
    static func start(requested: Bool) throws -> DistributedBench? {
        let environment = ProcessInfo.processInfo.environment
        guard requested || Communicator.isLaunchedByOpenMPI(environment: environment) else { return nil }
        // Serialized: the buckets are reduced on a communication thread
        // while this thread reads and writes the neighbouring buckets, or
        // enqueues backward.
        let world = try Communicator.initialize(requiring: .serialized)
        let job = DistributedBench(world: world, environment: environment)
        if !world.isRoot {
            // Only rank 0 prints the tables and progress; errors use stderr directly.
            StandardError.silenced = true
            fflush(stdout)
            _ = freopen("/dev/null", "w", stdout)
        }
        return job
    }

    var isRoot: Bool { world.isRoot }

    /// This rank's device: `spec` (or `CLOVER_DEVICE`) when given, else the
    /// GPU (or, with none, the CPU device) at this rank's position among
    /// the ranks on its host, as `clover train --distributed` picks it. On
    /// POCL every rank shares the one CPU device.
    func selectDevice(_ spec: String?) throws -> Device {
        if let wanted = spec ?? ProcessInfo.processInfo.environment[DeviceDiscovery.environmentVariable] {
            return try Device.select(wanted)
        }
        let devices = try DeviceDiscovery.allDevices()
        let gpus = devices.filter { $0.kind == .gpu }, cpus = devices.filter { $0.kind == .cpu }
        let matching = gpus.isEmpty ? (cpus.isEmpty ? devices : cpus) : gpus
        guard !matching.isEmpty else { throw RuntimeError.noPlatform }
        return try Device.select(String(matching[world.localRank % matching.count].index))
    }

    /// Makes `optimizer` average its gradients over the ranks before every
    /// update, recording each step's figures.
    ///
    /// - Parameter parameters: the optimiser's parameters, in its order
    ///   (for the reduction during backward).
    func averageGradients(of optimizer: Optimizer, parameters: [Parameter]) {
        steps = []
        // The previous model's arena and readiness observer go.
        averager.stop()
        optimizer.gradientHook = { [unowned self] gradients in
            steps.append(try averager.average(gradients, parameters: parameters.map(\.tensor)))
        }
    }

    /// The figures of the last `timedSteps` steps (the timed ones, after the
    /// warm-up), averaged per step and over the ranks (a collective: every
    /// rank calls it once per model), with `perRankBatch` and the median
    /// step time for the global throughput.
    func figures(timedSteps: Int, perRankBatch: Int, stepSeconds: Double) throws -> DistributedFigures {
        let timed = steps.suffix(timedSteps)
        let n = Double(max(timed.count, 1))
        var s = ReductionStatistics(), wait = 0.0
        for step in timed {
            s += step.statistics
            wait += step.backwardWaitSeconds
        }
        // Every rank takes the same path (same device kind, same setting).
        let overlap = !timed.isEmpty && timed.allSatisfy(\.overlapped)
        // Seconds averaged over the ranks; bytes and buckets are the same on every rank.
        var sums = [s.communicationSeconds, s.exposedSeconds, s.totalSeconds, wait, stepSeconds]
        try world.allreduceSum(&sums)
        let ranks = Double(world.size)
        let communication = sums[0] / ranks / n, exposed = sums[1] / ranks / n
        let hidden = communication > 0 ? max(0, min(1, 1 - exposed / communication)) : 0
        let globalBatch = perRankBatch * world.size
        return DistributedFigures(
            worldSize: world.size, perRankBatch: perRankBatch, globalBatch: globalBatch,
            buckets: Int((Double(s.buckets) / n).rounded()), bucketBytes: bucketBytes, overlap: overlap,
            bytesPerStep: Double(s.bytes) / n, allreduceSecondsPerStep: communication,
            exposedSecondsPerStep: exposed, reductionSecondsPerStep: sums[2] / ranks / n,
            backwardWaitSecondsPerStep: sums[3] / ranks / n,
            hiddenFraction: hidden,
            hiddenBehind: overlap ? "backward (reduced during backward)"
                : "other buckets' device reads and writes (reduced after backward)",
            hiddenBehindBackward: overlap ? hidden : nil,
            imagesPerSecond: Double(globalBatch) / stepSeconds,
            stepSecondsOverRanks: sums[4] / ranks)
    }

    /// Ends the job after a failure on this rank: names the rank and the
    /// error, and ends every rank (`MPI_Abort`) so none waits in a collective.
    func abort(_ message: String) -> Never {
        fflush(stdout)
        fputs("error: rank \(world.rank) of \(world.size): \(message); aborting the job\n", stderr)
        fflush(stderr)
        world.abort(code: 1)
    }

    /// Waits for every rank and shuts MPI down.
    func finish() throws {
        averager.stop()
        try world.barrier()
        try world.finalize()
    }
}

/// The data-parallel figures of a model row (`clover-bench --distributed`).
struct DistributedFigures: Codable {
    var worldSize: Int
    var perRankBatch: Int
    /// Per-rank batch × world size.
    var globalBatch: Int
    /// Buckets per step, and their size limit.
    var buckets: Int
    var bucketBytes: Int
    /// Whether the timed steps' buckets were reduced during backward.
    var overlap: Bool
    /// Bytes each rank allreduced per step (its whole gradient, as Float).
    var bytesPerStep: Double
    /// Seconds inside `MPI_Allreduce` per step (waiting for the slower rank
    /// included), mean over ranks.
    var allreduceSecondsPerStep: Double
    /// Of those, the seconds the step waited for them.
    var exposedSecondsPerStep: Double
    /// The whole reduction per step: reads, communication and writes (with
    /// overlap, what the optimiser's step waited for the rest of backward
    /// and the reductions).
    var reductionSecondsPerStep: Double
    /// Seconds per step waiting for backward to drain before the reduction
    /// (0 with overlap, whose reduction time includes the rest of backward).
    var backwardWaitSecondsPerStep: Double
    /// The fraction of the allreduce time hidden behind other work, and what that work was.
    var hiddenFraction: Double
    var hiddenBehind: String
    /// The fraction hidden behind backward: the hidden fraction with
    /// overlap, nil without (the reduction starts after backward).
    var hiddenBehindBackward: Double?
    /// Global images (sequences) per second: global batch ÷ rank 0's median step.
    var imagesPerSecond: Double
    /// The median step, mean over ranks.
    var stepSecondsOverRanks: Double

    enum CodingKeys: String, CodingKey {
        case buckets, overlap
        case worldSize = "world_size"
        case perRankBatch = "per_rank_batch"
        case globalBatch = "global_batch"
        case bucketBytes = "bucket_bytes"
        case bytesPerStep = "bytes_allreduced_per_step"
        case allreduceSecondsPerStep = "allreduce_seconds_per_step"
        case exposedSecondsPerStep = "exposed_allreduce_seconds_per_step"
        case reductionSecondsPerStep = "reduction_seconds_per_step"
        case backwardWaitSecondsPerStep = "backward_wait_seconds_per_step"
        case hiddenFraction = "hidden_fraction"
        case hiddenBehind = "hidden_behind"
        case hiddenBehindBackward = "hidden_behind_backward_fraction"
        case imagesPerSecond = "global_images_per_second"
        case stepSecondsOverRanks = "step_seconds_mean_over_ranks"
    }
}
