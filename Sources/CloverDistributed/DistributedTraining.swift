import Clover
import CloverData
import CloverNN
import CloverRuntime
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Data-parallel training under Open MPI's `mpirun` (what `clover train`
/// and ``Trainer`` use as their ``DataParallel``): one process (rank) per
/// device, each training on its shard of every global batch.
///
/// What each rank does, and why the ranks stay identical:
/// - picks its device by its rank on the host among the devices `--device`
///   matches (on POCL every rank shares the one CPU device);
/// - takes rank 0's parameters, buffers and optimiser state (and, with
///   `--resume`, rank 0's checkpoint), so all start equal;
/// - trains on shard `rank` of each global batch of `--batch-size × size`
///   samples of the same seeded permutation (``BatchLoader/shard``);
/// - averages gradients over the ranks (``Communicator/averageInBuckets``,
///   25 MB buckets in a fixed order) inside the optimiser's step, so every
///   rank applies the same update to the same parameters;
/// - keeps its own BatchNorm running statistics, averaged over the ranks at
///   each epoch's end (before evaluation and the checkpoint);
/// - evaluates its shard of the test set; losses and accuracies are
///   combined over the ranks.
///
/// Only rank 0 prints (the others' standard output is discarded) and writes
/// checkpoints. A rank that fails should end the whole job with
/// ``Communicator/abort(code:)`` (the CLI prints `error: rank R of N: ...`
/// first), so no rank waits forever in a collective.
public final class DistributedTraining: DataParallel {
    /// The job's communicator.
    public let world: Communicator
    /// Reductions of the epoch so far, for `--profile`.
    public private(set) var epochStatistics = ReductionStatistics()
    /// Training steps of the epoch so far.
    public private(set) var stepsInEpoch = 0
    /// Seconds of the epoch spent waiting for backward to finish on the
    /// device before the reduction started.
    public private(set) var deviceWaitSeconds = 0.0
    private var parameters: [Parameter] = []
    /// The reduction itself (``GradientAverager``): during backward except
    /// on CPU devices, where the communication thread (Open MPI polls while
    /// it waits) takes a core from the backward kernels (measured on POCL:
    /// slower, see BENCHMARKS.md); `CLOVER_ALLREDUCE_OVERLAP=0/1` forces it,
    /// `CLOVER_ALLREDUCE_BUCKET_BYTES` overrides the 25 MiB buckets (tests
    /// use small ones to get many buckets from a small model).
    public let averager: GradientAverager
    private var stepsRun = 0
    private let failure: (rank: Int, step: Int, kill: Bool)?
    /// The process environment the job started with (device selection,
    /// the test variables below).
    private let environment: [String: String]

    /// Environment variables for tests: `CLOVER_FAIL_RANK=R` makes rank R
    /// throw at its `CLOVER_FAIL_STEP`-th training step (default 1), or
    /// kill itself with SIGKILL there when `CLOVER_FAIL_KILL=1`;
    /// `CLOVER_RANK_STATE_DIR=D` makes every rank write its final
    /// parameters and buffers to `D/rank-R.safetensors`.
    public static let failRankVariable = "CLOVER_FAIL_RANK"
    public static let failStepVariable = "CLOVER_FAIL_STEP"
    public static let failKillVariable = "CLOVER_FAIL_KILL"
    public static let rankStateVariable = "CLOVER_RANK_STATE_DIR"

    private init(world: Communicator, environment: [String: String]) {
        self.world = world
        self.environment = environment
        averager = GradientAverager(world: world, environment: environment)
        if let rank = environment[Self.failRankVariable].flatMap({ Int($0) }) {
            failure = (rank, environment[Self.failStepVariable].flatMap { Int($0) } ?? 1,
                       environment[Self.failKillVariable] == "1")
        } else {
            failure = nil
        }
    }

    /// Joins the MPI job when `requested` (`--distributed`) or when Open MPI
    /// started this process (as `environment` shows); nil for an ordinary
    /// single-process run.
    public static func start(requested: Bool, environment: [String: String]) throws -> DistributedTraining? {
        guard requested || Communicator.isLaunchedByOpenMPI(environment: environment) else { return nil }
        // Serialized: the gradient buckets are reduced on a communication
        // thread while the main thread, which makes no MPI call meanwhile,
        // reads and writes the neighbouring buckets.
        let world = try Communicator.initialize(requiring: .serialized)
        let job = DistributedTraining(world: world, environment: environment)
        if !world.isRoot {
            // Only rank 0 reports progress; errors still reach standard error.
            fflush(stdout)
            if freopen("/dev/null", "w", stdout) == nil {
                throw CloverError.invalidArgument(op: "distributed", reason: "cannot silence rank \(world.rank)'s output")
            }
        }
        return job
    }

    /// This process's rank.
    public var rank: Int { world.rank }
    /// The processes of the job.
    public var size: Int { world.size }
    public var worldSize: Int { world.size }
    /// Whether this is rank 0, the one that prints and writes checkpoints.
    public var isRoot: Bool { world.isRoot }

    // MARK: Devices

    /// The device of this rank: among the devices `spec` (or
    /// `CLOVER_DEVICE`) matches (every match of a name substring; with
    /// neither, all GPUs, else all CPU devices), the one at this rank's
    /// position on its host, wrapping round when ranks outnumber devices.
    public func selectDevice(_ spec: String?) throws -> Device {
        let wanted = spec ?? environment[Device.selectionVariable]
        if let wanted, ["cpu-reference", "reference", "cpu-ref"].contains(wanted.lowercased()) {
            return try Device.select(wanted)
        }
        let devices = try Device.allOpenCLDevices()
        let matching = try Self.matchingDevices(wanted, in: devices)
        let chosen = matching[world.localRank % matching.count]
        return try Device.select(String(chosen.index))
    }

    /// Every device `spec` selects (see ``selectDevice(_:)``).
    public static func matchingDevices(_ spec: String?, in devices: [OpenCLDevice]) throws -> [OpenCLDevice] {
        let trimmed = spec.map { String($0.filter { !$0.isWhitespace }) } ?? ""
        if trimmed.isEmpty {
            let gpus = devices.filter { $0.kind == .gpu }, cpus = devices.filter { $0.kind == .cpu }
            let matching = gpus.isEmpty ? (cpus.isEmpty ? devices : cpus) : gpus
            guard !matching.isEmpty else { throw RuntimeError.noPlatform }
            return matching
        }
        if let index = Int(trimmed), devices.indices.contains(index) { return [devices[index]] }
        let needle = trimmed.lowercased()
        let matching = devices.filter { device in
            [device.name, device.platformName, device.platformVendor, device.vendor]
                .contains { $0.lowercased().contains(needle) }
        }
        guard !matching.isEmpty else {
            throw RuntimeError.noMatchingDevice(spec: trimmed, available: devices.map { "#\($0.index) \($0.description)" })
        }
        return matching
    }

    // MARK: Starting equal

    /// Makes every rank hold rank 0's parameters, buffers and optimiser
    /// state, and returns rank 0's `epochsDone` (from its checkpoint when
    /// resuming). Works for any world size: a checkpoint holds no per-rank
    /// state.
    public func synchronize(model: Module, optimizer: Optimizer, epochsDone: Int) throws -> Int {
        let epochs = Int(try world.broadcast(Int64(epochsDone)))
        for (what, local) in [("model", try model.stateDict()), ("optimizer", try optimizer.stateDict())] {
            let bytes = try world.broadcast(isRoot ? [UInt8](local.encoded()) : [])
            guard !isRoot else { continue }
            let received = try SafeTensors.parse(Data(bytes), path: "rank 0's \(what) state")
            if what == "model" { try model.loadStateDict(received) } else { try optimizer.loadStateDict(received) }
        }
        return epochs
    }

    // MARK: Gradients

    /// Makes `optimizer` average its gradients over the ranks before every
    /// update.
    ///
    /// - Parameter parameters: the optimiser's parameters, in its order;
    ///   their gradients are reduced while backward runs (see
    ///   ``OverlappedReduction``) on GPUs and with
    ///   `CLOVER_ALLREDUCE_OVERLAP=1`, else after backward.
    public func averageGradients(of optimizer: Optimizer, parameters: [Parameter]) {
        self.parameters = parameters
        optimizer.gradientHook = { [unowned self] gradients in try self.average(gradients) }
    }

    private func average(_ gradients: [Tensor]) throws {
        stepsRun += 1
        stepsInEpoch += 1
        if let failure, failure.rank == rank, failure.step == stepsRun {
            if failure.kill {
                // A crash, not an error: the rank dies without a word, and mpirun must end the job.
                fflush(stdout)
                raise(SIGKILL)
            }
            throw CloverError.invalidArgument(op: "training step \(stepsRun)",
                                              reason: "failure injected by \(Self.failRankVariable)=\(rank)")
        }
        let step = try averager.average(gradients, parameters: parameters.map(\.tensor))
        epochStatistics += step.statistics
        deviceWaitSeconds += step.backwardWaitSeconds
    }

    /// The epoch's reductions so far (for `--profile`), and a fresh count
    /// for the next epoch.
    public func takeEpochProfile() -> (statistics: ReductionStatistics, steps: Int, deviceWaitSeconds: Double) {
        defer { epochStatistics = ReductionStatistics(); stepsInEpoch = 0; deviceWaitSeconds = 0 }
        return (epochStatistics, stepsInEpoch, deviceWaitSeconds)
    }

    // MARK: Figures over ranks

    /// The progress line's figures over all ranks: the mean loss and the
    /// total correct predictions.
    public func combineProgress(loss: Float, correct: Int) throws -> (loss: Float, correct: Int) {
        var values = [Double(loss), Double(correct)]
        try world.allreduceSum(&values)
        return (Float(values[0] / Double(size)), Int(values[1].rounded()))
    }

    /// Averages the BatchNorm running statistics (every state tensor) over
    /// the ranks, so every rank evaluates and checkpoints the same model.
    public func averageBuffers(of model: Module) throws {
        for (_, state) in model.namedStates() {
            var values = try state.tensor.toArray()
            try world.allreduceSum(&values)
            try state.tensor.copyValues(values.map { $0 / Float(size) })
        }
    }

    /// This rank's contiguous part of the test set (sizes differ by at most
    /// one sample).
    public func shard(_ set: Dataset) throws -> Dataset {
        let start = set.count * rank / size, end = set.count * (rank + 1) / size
        let sampleSize = set.sampleSize
        return try Dataset(images: Array(set.images[start * sampleSize..<end * sampleSize]),
                           labels: Array(set.labels[start..<end]), sampleShape: set.sampleShape,
                           classCount: set.classCount, classNames: set.classNames, name: set.name)
    }

    /// This rank's evaluation of its test shard (``shard(_:)``), summed
    /// over the ranks.
    public func combine(_ evaluation: Evaluation) throws -> Evaluation {
        var sums = [evaluation.lossSum, Double(evaluation.correct), Double(evaluation.count)]
        try world.allreduceSum(&sums)
        return Evaluation(lossSum: sums[0], correct: Int(sums[1].rounded()), count: Int(sums[2].rounded()))
    }

    // MARK: Finishing

    /// Writes this rank's state when `CLOVER_RANK_STATE_DIR` asks for it,
    /// waits for every rank, and shuts MPI down.
    public func finish(model: Module) throws {
        if let directory = environment[Self.rankStateVariable] {
            try model.stateDict().write(path: directory + "/rank-\(rank).safetensors")
        }
        averager.stop()
        try world.barrier()
        try world.finalize()
    }
}
