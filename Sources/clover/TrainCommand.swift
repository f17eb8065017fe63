import ArgumentParser
import Clover
import CloverData
import CloverDistributed
import CloverModels
import CloverNN
import CloverTuning
#if canImport(FoundationEssentials)
import FoundationEssentials
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Options shared by `clover train` and `clover eval`: the model, the data
/// and the device.
struct DataOptions: ParsableArguments {
    @Option(name: .long, help: "The model (see `clover models`).")
    var model: String = "cifar-resnet20"

    @Option(name: .long, help: "fashion-mnist, cifar10, cifar100 or synthetic (random images of the model's standard input size and class count).")
    var dataset: String = "fashion-mnist"

    @Option(name: .long, help: "Directory of the data set files (default: the Debian package's for Fashion-MNIST).")
    var dataDir: String?

    @Option(name: .long, help: "Use only the first N training samples (a short schedule).")
    var trainSubset: Int?

    @Option(name: .long, help: "Use only the first N test samples.")
    var testSubset: Int?

    @Option(name: .long, help: "OpenCL device (index or name substring) or cpu-reference; default CLOVER_DEVICE, else the first GPU, else the first CPU.")
    var device: String?

    @Option(name: .long, help: ArgumentHelp(
        "Convolution arithmetic: tf32 (TF32 tensor cores where the device has them and their probe passes, as PyTorch's convolutions default to) or fp32 (strict).",
        valueName: "fp32|tf32"))
    var precision: MatmulPrecision = .tf32

    @Option(name: .long, help: "Batch size.")
    var batchSize: Int = 128

    @Option(name: .long, help: "Seed for initialisation, shuffling and augmentation.")
    var seed: UInt64 = 0

    @Flag(name: .long, help: "Train without random crops and flips (normalisation only): a schedule that sees each image about once gains nothing from them.")
    var noAugment = false

    /// The largest batch accepted: far beyond any device's memory for an
    /// image model, and small enough that no size computed from it overflows.
    static let maxBatchSize = 65_536

    func validate() throws {
        guard (1...Self.maxBatchSize).contains(batchSize) else {
            throw ValidationError("--batch-size must be between 1 and \(Self.maxBatchSize) (got \(batchSize))")
        }
        if let trainSubset, trainSubset < 1 {
            throw ValidationError("--train-subset must be at least 1 (got \(trainSubset))")
        }
        if let testSubset, testSubset < 1 {
            throw ValidationError("--test-subset must be at least 1 (got \(testSubset))")
        }
    }

    /// Loads (train, test) for the chosen data set.
    func loadData() throws -> (train: Dataset, test: Dataset) {
        var (train, test): (Dataset, Dataset)
        switch dataset.lowercased() {
        case "fashion-mnist", "fashionmnist":
            let dir = dataDir ?? FashionMNIST.defaultDirectory
            (train, test) = (try FashionMNIST.load(.train, directory: dir), try FashionMNIST.load(.test, directory: dir))
        case "cifar10", "cifar-10":
            guard let dir = dataDir else { throw ValidationError("--data-dir is required for cifar10") }
            (train, test) = (try CIFAR10.load(.train, directory: dir), try CIFAR10.load(.test, directory: dir))
        case "cifar100", "cifar-100":
            guard let dir = dataDir else { throw ValidationError("--data-dir is required for cifar100") }
            (train, test) = (try CIFAR100.load(.train, directory: dir), try CIFAR100.load(.test, directory: dir))
        case "synthetic":
            // Shaped like the model's standard input and classes, so that any zoo model trains
            // on it at full size (a 224² ImageNet model, a 600² EfficientNet-B7); only as many
            // samples as the subsets ask for are made.
            let spec = try ModelZoo.spec(named: model)
            try requireHostMemory(for: trainSubset ?? 512, option: "--train-subset", sampleShape: spec.inputShape)
            try requireHostMemory(for: testSubset ?? 128, option: "--test-subset", sampleShape: spec.inputShape)
            (train, test) = (try Dataset.synthetic(count: trainSubset ?? 512, sampleShape: spec.inputShape,
                                                   classCount: spec.classes, seed: seed),
                             try Dataset.synthetic(count: testSubset ?? 128, sampleShape: spec.inputShape,
                                                   classCount: spec.classes, seed: seed &+ 1))
        default:
            throw ValidationError("unknown dataset '\(dataset)': use fashion-mnist, cifar10, cifar100 or synthetic")
        }
        // A subset larger than the set is an error rather than a silent
        // clamp: the run would not be the one asked for.
        if let n = trainSubset {
            guard n <= train.count else {
                throw ValidationError("--train-subset \(n) is larger than the \(train.count) training images of \(train.name)")
            }
            train = train.prefix(n)
        }
        if let n = testSubset {
            guard n <= test.count else {
                throw ValidationError("--test-subset \(n) is larger than the \(test.count) test images of \(test.name)")
            }
            test = test.prefix(n)
        }
        return (train, test)
    }

    /// Throws unless `count` synthetic samples of `sampleShape` fit in the
    /// host's memory, instead of letting the allocation abort the process.
    private func requireHostMemory(for count: Int, option: String, sampleShape: [Int]) throws {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
        let available = pages > 0 && pageSize > 0 ? pages.multipliedReportingOverflow(by: pageSize)
                                                  : (partialValue: Int.max, overflow: true)
        let limit = available.overflow ? Int.max : available.partialValue
        let (elements, o1) = sampleShape.reduce(1, *).multipliedReportingOverflow(by: count)
        let (bytes, o2) = elements.multipliedReportingOverflow(by: MemoryLayout<Float>.size)
        if o1 || o2 || bytes > limit {
            let needed = o1 || o2 ? "more than \(Int.max) bytes" : "\(Format.fixed(Double(bytes) / 1e9, decimals: 1)) GB"
            throw ValidationError("\(option) \(count) asks for \(count) synthetic images of shape \(sampleShape), "
                                  + "\(needed); this machine has \(Format.fixed(Double(limit) / 1e9, decimals: 1)) GB of memory")
        }
    }

    /// The augmentation for training (random) and evaluation (normalisation only).
    var augmentations: (train: Augmentation, test: Augmentation) {
        let both = standardAugmentations
        return noAugment ? (both.test, both.test) : both
    }

    private var standardAugmentations: (train: Augmentation, test: Augmentation) {
        switch dataset.lowercased() {
        case "cifar10", "cifar-10":
            return (.cifar10Training, .cifar10Test)
        case "cifar100", "cifar-100":
            return (Augmentation(cropPadding: 4, flipProbability: 0.5, normalization: CIFAR100.normalization),
                    Augmentation(normalization: CIFAR100.normalization))
        case "synthetic":
            return (.none, .none)
        default:
            // Fashion-MNIST: garments are not mirror-symmetric in general, but a
            // horizontal flip keeps the class; a 2-pixel random crop helps too.
            return (Augmentation(cropPadding: 2, flipProbability: 0.5, normalization: FashionMNIST.normalization),
                    Augmentation(normalization: FashionMNIST.normalization))
        }
    }
}

/// `clover train`: trains a model on a data set with a live progress line,
/// per-epoch evaluation, metrics as CSV and JSON, atomic checkpoints and
/// `--resume`.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a model; checkpoints and metrics go to --out.",
        discussion: """
            Each checkpoint is one unit: model.safetensors (parameters and BatchNorm \
            buffers under torchvision's names), optimizer.safetensors (the optimiser \
            state), progress.json (the epoch reached) and the metrics are written into a \
            new checkpoint-N directory, flushed, and then the link "current" switches to \
            it in one rename; the files in --out are links into "current". A run killed \
            at any moment or stopped by a full disk keeps the previous checkpoint, and \
            --resume continues from it. A NaN or infinite loss (checked at every step) \
            stops training, and a model, BatchNorm statistic or optimiser state that is \
            not finite is never saved: the last good checkpoint stays in place.
            """
    )

    @OptionGroup var data: DataOptions

    @Option(name: .long, help: "Epochs to train (in total, counting resumed ones).")
    var epochs: Int = 1

    @Option(name: .long, help: "Peak learning rate.")
    var lr: Float = 0.1

    @Option(name: .long, help: "sgd or adamw.")
    var optimizer: String = "sgd"

    @Option(name: .long, help: "SGD momentum.")
    var momentum: Float = 0.9

    @Flag(name: .long, help: "Nesterov momentum for SGD.")
    var nesterov = false

    @Option(name: .long, help: "Weight decay (SGD: L2 added to the gradient; AdamW: decoupled).")
    var weightDecay: Float = 5e-4

    @Option(name: .long, help: "constant, step (×gamma at --milestones) or cosine.")
    var schedule: String = "cosine"

    @Option(name: .long, parsing: .upToNextOption, help: "Epochs at which the step schedule multiplies the rate by --gamma.")
    var milestones: [Int] = []

    @Option(name: .long, help: "Step schedule factor.")
    var gamma: Float = 0.1

    @Option(name: .long, help: "Linear warm-up, in epochs (may be fractional).")
    var warmup: Double = 0

    @Option(name: .long, help: "Output directory for checkpoints and metrics.")
    var out: String = "runs/latest"

    @Flag(name: .long, help: "Continue from the checkpoint in --out.")
    var resume = false

    @Option(name: .long, help: "Print the progress line every N steps (each print waits for the device).")
    var logEvery: Int = 10

    @Flag(name: .long, help: "Record an OpenCL event per kernel and print device time per kernel after each epoch, and the OpenCL calls per training step (kernel launches, CLBlast calls, host waits, copies, allocations).")
    var profile = false

    @Flag(name: .long, help: "Choose each convolution geometry's algorithm by measurement on first use (and save the choice), as `clover tune conv` does beforehand; otherwise untuned geometries take a heuristic default.")
    var autotune = false

    @Flag(name: .long, help: "Data-parallel training under mpirun, one process per device (implied when Open MPI started the process); --batch-size is per process, the global batch is it times the number of processes.")
    var distributed = false

    /// The most epochs a run may ask for: far beyond any schedule, and small
    /// enough that step counts computed from it cannot overflow.
    static let maxEpochs = 1_000_000

    func validate() throws {
        guard (1...Self.maxEpochs).contains(epochs) else {
            throw ValidationError("--epochs must be between 1 and \(Self.maxEpochs) (got \(epochs))")
        }
        guard lr.isFinite && lr > 0 else { throw ValidationError("--lr must be a finite number above 0 (got \(lr))") }
        guard momentum.isFinite && momentum >= 0 && momentum < 1 else {
            throw ValidationError("--momentum must be at least 0 and below 1 (got \(momentum))")
        }
        guard weightDecay.isFinite && weightDecay >= 0 else {
            throw ValidationError("--weight-decay must be a finite number of at least 0 (got \(weightDecay))")
        }
        guard gamma.isFinite && gamma > 0 else {
            throw ValidationError("--gamma must be a finite number above 0 (got \(gamma))")
        }
        guard warmup.isFinite && warmup >= 0 && warmup <= Double(epochs) else {
            throw ValidationError("--warmup must be between 0 and --epochs (\(epochs)) epochs (got \(warmup))")
        }
        if let bad = milestones.first(where: { !(1...Self.maxEpochs).contains($0) }) {
            throw ValidationError("--milestones must be epochs between 1 and \(Self.maxEpochs) (got \(bad))")
        }
        guard logEvery >= 1 else { throw ValidationError("--log-every must be at least 1 (got \(logEvery))") }
        guard ["sgd", "adamw"].contains(optimizer.lowercased()) else {
            throw ValidationError("--optimizer must be sgd or adamw (got '\(optimizer)')")
        }
        guard ["constant", "step", "cosine"].contains(schedule.lowercased()) else {
            throw ValidationError("--schedule must be constant, step or cosine (got '\(schedule)')")
        }
        guard !out.isEmpty else { throw ValidationError("--out must name a directory") }
    }

    func run() throws {
        try Console.reportingFailures { try DistributedTraining.abortingJobOnFailure(train) }
    }

    private func train() throws {
        // First, so that an --out that cannot hold a run fails before any work.
        let run = try RunDirectory(path: out, label: "--out")
        let distributed = try DistributedTraining.start(requested: self.distributed,
                                                        environment: ProcessInfo.processInfo.environment)
        let device = try distributed?.selectDevice(data.device) ?? Device.select(data.device)
        device.isProfiling = profile
        let precisionLine = device.apply(data.precision)
        BuildProgress.attach(to: device).activity = "first steps of \(data.model)"
        Tuner.autotunesConvolutions = autotune
        let (trainSet, testSet) = try data.loadData()
        let aug = data.augmentations
        let spec = try ModelZoo.spec(named: data.model)
        let initializer = Initializer(device: device, seed: data.seed)
        let model = try spec.make(trainSet.classCount, trainSet.sampleShape[0], initializer)
        let named = model.namedParameters()
        let opt: Optimizer
        switch optimizer.lowercased() {
        case "sgd":
            opt = try SGD(named, configuration: SGDConfiguration(learningRate: lr, momentum: momentum,
                                                                 nesterov: nesterov, weightDecay: weightDecay))
        case "adamw":
            opt = try AdamW(named, configuration: AdamWConfiguration(learningRate: lr, weightDecay: weightDecay))
        default:
            throw ValidationError("unknown optimizer '\(optimizer)': use sgd or adamw")
        }
        let rate: LearningRateSchedule
        switch schedule.lowercased() {
        case "constant": rate = WarmupSchedule(base: lr, warmupEpochs: warmup)
        case "step": rate = StepSchedule(base: lr, milestones: milestones, gamma: gamma)
        case "cosine": rate = CosineSchedule(base: lr, epochs: epochs, warmupEpochs: warmup)
        default: throw ValidationError("unknown schedule '\(schedule)': use constant, step or cosine")
        }
        var firstEpoch = 0
        var history: [EpochMetrics] = []
        if resume, distributed?.isRoot ?? true {
            let progress = try Trainer(model: model, optimizer: opt).resume(from: run, epochLimit: epochs)
            firstEpoch = progress.epochsDone
            history = progress.history
            print("resumed from \(out): \(firstEpoch) epoch(s) done")
        }
        if let distributed {
            // Every rank starts from rank 0's model and optimiser (its checkpoint, when resuming).
            firstEpoch = try distributed.synchronize(model: model, optimizer: opt, epochsDone: firstEpoch)
            distributed.averageGradients(of: opt, parameters: named.map(\.1))
        }
        let worldSize = distributed?.size ?? 1, globalBatch = data.batchSize * worldSize
        guard trainSet.count >= globalBatch else {
            // Training keeps whole batches only: an epoch would have no step.
            guard worldSize == 1 else {
                throw ValidationError("--batch-size \(data.batchSize) × \(worldSize) processes is larger than the "
                                      + "\(trainSet.count) training images; use at most \(trainSet.count / worldSize)")
            }
            throw ValidationError("--batch-size \(data.batchSize) is larger than the \(trainSet.count) training images; "
                                  + "use at most \(trainSet.count)")
        }
        let loader = try BatchLoader(dataset: trainSet, batchSize: data.batchSize, shuffle: true, dropLast: true,
                                     augmentation: aug.train, seed: data.seed,
                                     shard: distributed?.rank ?? 0, shardCount: worldSize)
        let testLoader = try BatchLoader(dataset: distributed?.shard(testSet) ?? testSet, batchSize: data.batchSize,
                                         shuffle: false, augmentation: aug.test, seed: data.seed, prefetch: 1)
        print("training \(spec.name) (\(model.parameterCount) parameters) on \(trainSet.name) (\(trainSet.count) images) "
              + "and testing on \(testSet.count), device \(device), batch \(data.batchSize), \(optimizer) lr \(lr) \(schedule)")
        print(precisionLine)
        if distributed != nil {
            print("distributed: \(worldSize) processes, batch \(data.batchSize) per process, global batch \(globalBatch)")
        }
        Console.flush()
        let trainer = Trainer(model: model, optimizer: opt)
        let observer = TrainProgressPrinter(command: self, device: device, distributed: distributed)
        do {
            history += try trainer.fit(
                loader, testLoader: testLoader, on: device, epochs: firstEpoch..<epochs, schedule: rate, logEvery: logEvery,
                parallel: distributed, checkpoints: Checkpoints(run: run, model: spec.name, dataset: trainSet.name,
                                                                history: history, writes: distributed?.isRoot ?? true),
                observer: observer)
        } catch let error as TrainingError {
            Console.error("\nerror: \(error); stopping. The last good checkpoint in \(out) is kept.")
            throw ExitCode.failure
        }
        if let last = history.last {
            print("final test accuracy \(Format.fixed(100 * last.testAccuracy, decimals: 2))% after \(last.epoch) epoch(s); "
                  + "metrics in \(out)/metrics.csv and \(out)/metrics.json")
        }
        try distributed?.finish(model: model)
    }
}

/// What `clover train` does at the loop's points: the progress line, the
/// per-step OpenCL call counts and kernel profile of `--profile`, and the
/// epoch's line and checkpoint.
private final class TrainProgressPrinter: TrainingObserver {
    let command: TrainCommand
    let device: Device
    let distributed: DistributedTraining?
    private var stepCounts = StepCounterLog()
    private var countsBefore: DeviceCounters?

    init(command: TrainCommand, device: Device, distributed: DistributedTraining?) {
        (self.command, self.device, self.distributed) = (command, device, distributed)
    }

    func trainerWillStep(_ trainer: Trainer) {
        if command.profile { countsBefore = DeviceCounters.current }
    }

    func trainerDidStep(_ trainer: Trainer) {
        if let countsBefore { stepCounts.record(DeviceCounters.current.since(countsBefore)) }
    }

    func trainer(_ trainer: Trainer, madeProgress p: TrainingProgress) {
        print("\repoch \(p.epoch)/\(p.epochs) step \(p.step)/\(p.steps) loss \(Format.fixed(Double(p.loss), decimals: 4)) "
              + "batch-acc \(Format.fixed(100 * p.batchAccuracy, decimals: 1))% "
              + "\(Format.fixed(p.imagesPerSecond, decimals: 1)) img/s ETA \(Format.fixed(p.remainingSeconds, decimals: 0)) s   ",
              terminator: "")
        Console.flush()
    }

    func trainer(_ trainer: Trainer, finishedTrainingEpoch epoch: Int) throws {
        if command.profile, device.openCLDevice != nil {
            try Console.printKernelProfile(of: device, title: "training epoch \(epoch)")
            for line in stepCounts.report() { print(line) }
        }
        if command.profile, let distributed { for line in distributed.takeProfileLines() { print(line) } }
    }

    func trainer(_ trainer: Trainer, finishedEpoch metrics: EpochMetrics) throws {
        print("\nepoch \(metrics.epoch): test loss \(Format.fixed(metrics.testLoss, decimals: 4)) test accuracy "
              + "\(Format.fixed(100 * metrics.testAccuracy, decimals: 2))% (\(Format.fixed(metrics.seconds, decimals: 1)) s, "
              + "\(Format.fixed(metrics.imagesPerSecond, decimals: 1)) img/s)")
        Console.flush()
    }
}

/// `clover eval`: test accuracy of a checkpoint.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "eval", abstract: "Evaluate a checkpoint on the test set.")

    @OptionGroup var data: DataOptions

    @Option(name: .long, help: "A model.safetensors checkpoint (or a run directory holding one).")
    var checkpoint: String

    func run() throws {
        try Console.reportingFailures {
            let device = try Device.select(data.device)
            let (_, testSet) = try data.loadData()
            let spec = try ModelZoo.spec(named: data.model)
            let model = try spec.make(testSet.classCount, testSet.sampleShape[0], Initializer(device: device, seed: data.seed))
            try model.loadStateDict(SafeTensors.read(path: RunDirectory.modelFile(checkpoint)))
            let loader = try BatchLoader(dataset: testSet, batchSize: data.batchSize, shuffle: false,
                                         augmentation: data.augmentations.test, seed: data.seed)
            let result = try Trainer(model: model, optimizer: nil).evaluate(loader.epoch(0), on: device)
            print("\(spec.name) on \(testSet.name): loss \(Format.fixed(result.loss, decimals: 4)) accuracy "
                  + "\(Format.fixed(100 * result.accuracy, decimals: 2))%")
        }
    }
}

func seconds(_ d: Duration) -> Double {
    let (whole, attoseconds) = d.components
    return Double(whole) + Double(attoseconds) * 1e-18
}

extension Console {
    /// Device time per kernel since the last report, the 20 largest (what
    /// `--profile` prints after each epoch of `train` and `pretrain`).
    static func printKernelProfile(of device: Device, title: String) throws {
        // CLBlast reports the event of a GEMM's last kernel only (not its copy/pad kernels).
        print("\ndevice time per kernel (\(title)):")
        for entry in try device.kernelProfile().prefix(20) {
            print("  \(entry.name): \(Format.fixed(entry.seconds, decimals: 3)) s in \(entry.launches) launches")
        }
    }
}
