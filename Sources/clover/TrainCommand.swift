import ArgumentParser
import Clover
import CloverData
import CloverModels
import CloverNN
import CloverRuntime
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

    @Option(name: .long, help: "Batch size.")
    var batchSize: Int = 128

    @Option(name: .long, help: "Seed for initialisation, shuffling and augmentation.")
    var seed: UInt64 = 0

    @Flag(name: .long, help: "Train without random crops and flips (normalisation only): a schedule that sees each image about once gains nothing from them.")
    var noAugment = false

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
            (train, test) = (try Dataset.synthetic(count: trainSubset ?? 512, sampleShape: spec.inputShape,
                                                   classCount: spec.classes, seed: seed),
                             try Dataset.synthetic(count: testSubset ?? 128, sampleShape: spec.inputShape,
                                                   classCount: spec.classes, seed: seed &+ 1))
        default:
            throw ValidationError("unknown dataset '\(dataset)': use fashion-mnist, cifar10, cifar100 or synthetic")
        }
        if let n = trainSubset { train = train.prefix(n) }
        if let n = testSubset { test = test.prefix(n) }
        return (train, test)
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
            Checkpoints are safetensors files written atomically (a temporary file, then \
            a rename): model.safetensors holds parameters and BatchNorm buffers under \
            torchvision's names, optimizer.safetensors the optimiser state, and \
            progress.json the epoch reached. --resume continues from them. A NaN or \
            infinite loss stops training, naming the step, and leaves the last good \
            checkpoint in place.
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

    func run() throws {
        try Console.reportingFailures(train)
    }

    private func train() throws {
        let device = try Device.select(data.device)
        device.openCL?.isProfiling = profile
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
        let run = try RunDirectory(path: out)
        var firstEpoch = 0
        var history: [EpochMetrics] = []
        if resume {
            let progress = try run.loadCheckpoint(model: model, optimizer: opt)
            firstEpoch = progress.epochsDone
            history = progress.history
            print("resumed from \(out): \(firstEpoch) epoch(s) done")
        }
        let loader = try BatchLoader(dataset: trainSet, batchSize: data.batchSize, shuffle: true, dropLast: true,
                                     augmentation: aug.train, seed: data.seed)
        let testLoader = try BatchLoader(dataset: testSet, batchSize: data.batchSize, shuffle: false,
                                         augmentation: aug.test, seed: data.seed, prefetch: 1)
        print("training \(spec.name) (\(model.parameterCount) parameters) on \(trainSet.name) (\(trainSet.count) images) "
              + "and testing on \(testSet.count), device \(device), batch \(data.batchSize), \(optimizer) lr \(lr) \(schedule)")
        Console.flush()
        var globalStep = firstEpoch * loader.batchCount
        var stepCounts = StepCounterLog()
        for epoch in firstEpoch..<epochs {
            model.train()
            let clock = ContinuousClock()
            let start = clock.now
            var seen = 0, correct = 0, lossSum = 0.0, lossCount = 0
            for (i, batch) in loader.epoch(epoch).enumerated() {
                // The whole iteration counts: upload, step and the progress line's reads.
                let countsBefore = profile ? DeviceCounters.current : nil
                opt.learningRate = rate.learningRate(epoch: epoch, progress: Double(i) / Double(loader.batchCount))
                let x = try Tensor(shape: batch.shape, values: batch.images, on: device)
                let labels = ClassLabels(batch.labels)
                model.zeroGrad()
                let logits = try model(x)
                let loss = try softmaxCrossEntropy(logits, labels: labels)
                try loss.backward()
                try opt.step()
                globalStep += 1
                seen += batch.count
                if (i + 1) % logEvery == 0 || i + 1 == loader.batchCount {
                    // Reading the loss waits for the device; done only every few steps.
                    let value = try loss.toArray()[0]
                    guard value.isFinite else {
                        Console.error("\nerror: loss is \(value) at epoch \(epoch + 1) step \(i + 1) (global step \(globalStep)); "
                                      + "stopping. The last good checkpoint in \(out) is kept.")
                        throw ExitCode.failure
                    }
                    lossSum += Double(value)
                    lossCount += 1
                    correct += try countCorrect(logits, batch.labels)
                    let elapsed = seconds(clock.now - start)
                    let rateImages = Double(seen) / max(elapsed, 1e-9)
                    let remaining = Double(loader.batchCount - i - 1) * Double(data.batchSize) / max(rateImages, 1e-9)
                    print("\repoch \(epoch + 1)/\(epochs) step \(i + 1)/\(loader.batchCount) loss \(Format.fixed(Double(value), decimals: 4)) "
                          + "batch-acc \(Format.fixed(100 * Double(correct) / Double(max(lossCount * data.batchSize, 1)), decimals: 1))% "
                          + "\(Format.fixed(rateImages, decimals: 1)) img/s ETA \(Format.fixed(remaining, decimals: 0)) s   ",
                          terminator: "")
                    Console.flush()
                }
                if let countsBefore { stepCounts.record(DeviceCounters.current - countsBefore) }
            }
            let trainSeconds = seconds(clock.now - start)
            if profile, let context = device.openCL {
                // CLBlast reports the event of a GEMM's last kernel only (not its copy/pad kernels).
                print("\ndevice time per kernel (training epoch \(epoch + 1)):")
                for entry in try context.profile().prefix(20) {
                    print("  \(entry.name): \(Format.fixed(entry.seconds, decimals: 3)) s in \(entry.launches) launches")
                }
                for line in stepCounts.report() { print(line) }
            }
            let (testLoss, testAccuracy) = try evaluate(model, testLoader, device: device)
            let metrics = EpochMetrics(epoch: epoch + 1, trainLoss: lossSum / Double(max(lossCount, 1)),
                                       trainAccuracy: Double(correct) / Double(max(lossCount * data.batchSize, 1)),
                                       testLoss: testLoss, testAccuracy: testAccuracy, seconds: trainSeconds,
                                       imagesPerSecond: Double(seen) / max(trainSeconds, 1e-9),
                                       learningRate: Double(opt.learningRate))
            history.append(metrics)
            print("\nepoch \(epoch + 1): test loss \(Format.fixed(testLoss, decimals: 4)) test accuracy "
                  + "\(Format.fixed(100 * testAccuracy, decimals: 2))% (\(Format.fixed(trainSeconds, decimals: 1)) s, "
                  + "\(Format.fixed(metrics.imagesPerSecond, decimals: 1)) img/s)")
            try run.saveCheckpoint(model: model, optimizer: opt, progress: RunProgress(
                model: spec.name, dataset: trainSet.name, epochsDone: epoch + 1, history: history))
            Console.flush()
        }
        if let last = history.last {
            print("final test accuracy \(Format.fixed(100 * last.testAccuracy, decimals: 2))% after \(last.epoch) epoch(s); "
                  + "metrics in \(out)/metrics.csv and \(out)/metrics.json")
        }
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
            let (loss, accuracy) = try evaluate(model, loader, device: device)
            print("\(spec.name) on \(testSet.name): loss \(Format.fixed(loss, decimals: 4)) accuracy \(Format.fixed(100 * accuracy, decimals: 2))%")
        }
    }
}

/// Mean loss and accuracy over a loader, in evaluation mode without gradients.
func evaluate(_ model: ImageModel, _ loader: BatchLoader, device: Device) throws -> (loss: Double, accuracy: Double) {
    model.eval()
    defer { model.train() }
    var lossSum = 0.0, correct = 0, count = 0
    try withoutGradients {
        for batch in loader.epoch(0) {
            let x = try Tensor(shape: batch.shape, values: batch.images, on: device)
            let logits = try model(x)
            let loss = try softmaxCrossEntropy(logits, labels: ClassLabels(batch.labels))
            lossSum += Double(try loss.toArray()[0]) * Double(batch.count)
            correct += try countCorrect(logits, batch.labels)
            count += batch.count
        }
    }
    return (lossSum / Double(max(count, 1)), Double(correct) / Double(max(count, 1)))
}

/// How many rows' argmax equals the label (first index on ties).
func countCorrect(_ logits: Tensor, _ labels: [Int32]) throws -> Int {
    let values = try logits.toArray()
    let classes = logits.shape[1]
    var correct = 0
    for (r, label) in labels.enumerated() {
        var best = 0
        for c in 1..<classes where values[r * classes + c] > values[r * classes + best] { best = c }
        if best == Int(label) { correct += 1 }
    }
    return correct
}

func seconds(_ d: Duration) -> Double {
    let c = d.components
    return Double(c.seconds) + Double(c.attoseconds) * 1e-18
}
