import Clover
import CloverData

/// Clover's one training step, and the loop and evaluation built on it.
///
/// Every caller that trains — `clover train` and `clover pretrain`, the
/// launch planner, the model benchmarks, `clover tune conv` recording a
/// model's convolutions — runs its steps through ``step(_:)``, so a step is
/// written once: zero the gradients, evaluate the objective, back-propagate,
/// update. Without an optimiser a step stops after backward (what planning
/// and geometry recording need).
///
/// ```swift
/// let trainer = Trainer(model: model, optimizer: try SGD(model.namedParameters(), configuration: .init(learningRate: 0.1)))
/// let step = try trainer.step(images: x, labels: labels)  // forward, loss, backward, update
/// ```
public final class Trainer {
    /// The model whose parameters the steps train.
    public let model: Module
    /// The update of every step; nil for steps that stop after backward.
    public let optimizer: Optimizer?
    /// Watches every step's loss for NaN or infinity when set
    /// (``watchLoss(on:)``); nil by default, because it costs two launches
    /// a step that launch budgets and benchmarks do not include.
    public var lossGuard: LossGuard?

    /// A trainer of `model` that updates it with `optimizer` (nil: steps end
    /// after backward).
    public init(model: Module, optimizer: Optimizer?) {
        self.model = model
        self.optimizer = optimizer
    }

    /// Folds every later step's loss into a ``LossGuard`` on `device`. Called
    /// before the first step, so the guard's flag is allocated before any
    /// step's temporaries (a later step then allocates nothing new).
    public func watchLoss(on device: Device) throws {
        var watcher = lossGuard ?? LossGuard()
        try watcher.prepare(on: device)
        lossGuard = watcher
    }

    /// One training step: zeroes the gradients, evaluates `objective` (the
    /// forward pass and loss), back-propagates the loss, and applies the
    /// optimiser's update. Returns the loss, not read from the device.
    @discardableResult
    public func step(_ objective: () throws -> Tensor) throws -> Tensor {
        model.zeroGrad()
        let loss = try objective()
        try loss.backward()
        try optimizer?.step()
        try lossGuard?.record(loss)
        return loss
    }

    /// One classification step: softmax cross-entropy of the model's logits
    /// for `images` against `labels`, then as ``step(_:)``.
    ///
    /// - Throws: ``CloverError/invalidArgument(op:reason:)`` when the model
    ///   is not a ``Layer`` (maps no tensor to logits), and any error of the
    ///   step.
    public func step(images: Tensor, labels: ClassLabels) throws -> ClassificationStep {
        let classifier = try self.classifier()
        var logits: Tensor?
        let loss = try step {
            let output = try classifier(images)
            logits = output
            return try softmaxCrossEntropy(output, labels: labels)
        }
        return ClassificationStep(loss: loss, logits: logits!)
    }

    /// Mean softmax cross-entropy and accuracy of the model over `batches`,
    /// in evaluation mode and without gradients (the model is back in
    /// training mode afterwards). Each batch's images are uploaded to
    /// `device`.
    public func evaluate(_ batches: some Sequence<Batch>, on device: Device) throws -> Evaluation {
        let classifier = try self.classifier()
        model.eval()
        defer { model.train() }
        var lossSum = 0.0, correct = 0, count = 0
        try withoutGradients {
            for batch in batches {
                let logits = try classifier(try Tensor(shape: batch.shape, values: batch.images, on: device))
                let loss = try softmaxCrossEntropy(logits, labels: ClassLabels(batch.labels))
                lossSum += Double(try loss.toArray()[0]) * Double(batch.count)
                correct += try Self.correctPredictions(logits, labels: batch.labels)
                count += batch.count
            }
        }
        return Evaluation(lossSum: lossSum, correct: correct, count: count)
    }

    /// Trains for `epochs` (a range of 0-based epoch numbers, so a resumed
    /// run starts where it stopped) on `loader`'s batches, evaluating on
    /// `testLoader` after each epoch; returns each epoch's figures. With
    /// `checkpoints`, each epoch ends with a checkpoint of the model, the
    /// optimiser and the run's history in its run directory, after the
    /// observer has seen the epoch's figures.
    ///
    /// Each step's learning rate comes from `schedule`. Every `logEvery`
    /// steps, and at each epoch's last, the loop reads the loss, the
    /// predictions and the ``LossGuard`` flag from the device in one wait and
    /// tells `observer` (``TrainingObserver/trainer(_:madeProgress:)``); it
    /// reads nothing in between, so the host never waits for the device
    /// otherwise. With `parallel`, the progress figures and evaluation are
    /// combined over the processes and the model's buffers (BatchNorm
    /// statistics) averaged before each evaluation; the loader must then hold
    /// this process's shard, and the optimiser average the gradients.
    ///
    /// - Throws: ``TrainingError/nonFiniteLoss(epoch:firstStep:lastStep:globalStep:)``
    ///   when a loss became NaN or infinite (the observer has then not been
    ///   told of that epoch's end, so no checkpoint of it is written),
    ///   ``CloverError/invalidArgument(op:reason:)`` without an optimiser or
    ///   for a `logEvery` below 1, and any error of a step, of evaluation or
    ///   of the observer.
    @discardableResult
    public func fit(_ loader: BatchLoader, testLoader: BatchLoader, on device: Device, epochs: Range<Int>,
                    schedule: LearningRateSchedule, logEvery: Int = 100, parallel: DataParallel? = nil,
                    checkpoints: Checkpoints? = nil, observer: TrainingObserver? = nil) throws -> [EpochMetrics] {
        guard let optimizer else {
            throw CloverError.invalidArgument(op: "Trainer.fit", reason: "the trainer has no optimiser to train with")
        }
        guard logEvery >= 1 else {
            throw CloverError.invalidArgument(op: "Trainer.fit", reason: "logEvery \(logEvery) is below 1")
        }
        if lossGuard == nil { try watchLoss(on: device) }
        let worldSize = parallel?.worldSize ?? 1
        let globalBatch = loader.batchSize * worldSize, steps = loader.batchCount
        var globalStep = epochs.lowerBound * steps
        var history: [EpochMetrics] = []
        var runHistory = checkpoints?.history ?? []
        for epoch in epochs {
            model.train()
            lossGuard?.startEpoch()
            let clock = ContinuousClock()
            let start = clock.now
            var seen = 0, correct = 0, lossSum = 0.0, reads = 0
            for (i, batch) in loader.epoch(epoch).enumerated() {
                // The whole iteration is the observer's step: upload, step and the progress read.
                observer?.trainerWillStep(self)
                optimizer.learningRate = schedule.learningRate(epoch: epoch, progress: Double(i) / Double(steps))
                let x = try Tensor(shape: batch.shape, values: batch.images, on: device)
                let step = try self.step(images: x, labels: ClassLabels(batch.labels))
                globalStep += 1
                seen += batch.count * worldSize
                if (i + 1) % logEvery == 0 || i + 1 == steps {
                    // The guard's flag covers every step since the last read.
                    let from = lossGuard!.firstUnchecked
                    let shown = try lossGuard!.progress(loss: step.loss, logits: step.logits, throughStep: i + 1)
                    guard shown.allFinite else {
                        throw TrainingError.nonFiniteLoss(epoch: epoch + 1, firstStep: from, lastStep: i + 1,
                                                          globalStep: globalStep)
                    }
                    var (value, hits) = (shown.loss, zip(shown.predictions, batch.labels).filter { $0.0 == $0.1 }.count)
                    if let parallel { (value, hits) = try parallel.combineProgress(loss: value, correct: hits) }
                    lossSum += Double(value)
                    reads += 1
                    correct += hits
                    let elapsed = max(Self.seconds(clock.now - start), 1e-9)
                    let rate = Double(seen) / elapsed
                    observer?.trainer(self, madeProgress: TrainingProgress(
                        epoch: epoch + 1, epochs: epochs.upperBound, step: i + 1, steps: steps, loss: value,
                        batchAccuracy: Double(correct) / Double(max(reads * globalBatch, 1)), imagesPerSecond: rate,
                        remainingSeconds: Double(steps - i - 1) * Double(globalBatch) / max(rate, 1e-9)))
                }
                observer?.trainerDidStep(self)
            }
            let seconds = Self.seconds(clock.now - start)
            try observer?.trainer(self, finishedTrainingEpoch: epoch + 1)
            // Per-process BatchNorm statistics become one set before evaluation and any checkpoint.
            try parallel?.averageBuffers(of: model)
            var test = testLoader.dataset.count > 0 ? try evaluate(testLoader.epoch(0), on: device)
                : Evaluation(lossSum: 0, correct: 0, count: 0)
            if let parallel { test = try parallel.combine(test) }
            let metrics = EpochMetrics(epoch: epoch + 1, trainLoss: lossSum / Double(max(reads, 1)),
                                       trainAccuracy: Double(correct) / Double(max(reads * globalBatch, 1)),
                                       testLoss: test.loss, testAccuracy: test.accuracy, seconds: seconds,
                                       imagesPerSecond: Double(seen) / max(seconds, 1e-9),
                                       learningRate: Double(optimizer.learningRate))
            history.append(metrics)
            runHistory.append(metrics)
            try observer?.trainer(self, finishedEpoch: metrics)
            if let checkpoints, checkpoints.writes {
                try checkpoints.run.saveCheckpoint(model: model, optimizer: optimizer, progress: RunProgress(
                    model: checkpoints.model, dataset: checkpoints.dataset, epochsDone: epoch + 1, history: runHistory))
            }
        }
        return history
    }

    /// Restores the model and optimiser from `run`'s current checkpoint and
    /// returns where the run stands, so that ``fit(_:testLoader:on:epochs:schedule:logEvery:parallel:checkpoints:observer:)``
    /// can go on from `epochsDone`.
    ///
    /// - Throws: ``CheckpointError`` when there is no checkpoint, it cannot
    ///   be read or trusted, or it is past `epochLimit` epochs; and
    ///   ``CloverError/invalidArgument(op:reason:)`` without an optimiser.
    public func resume(from run: RunDirectory, epochLimit: Int? = nil) throws -> RunProgress {
        guard let optimizer else {
            throw CloverError.invalidArgument(op: "Trainer.resume", reason: "the trainer has no optimiser to restore")
        }
        return try run.loadCheckpoint(model: model, optimizer: optimizer, epochLimit: epochLimit)
    }

    /// How many rows of `logits` have their largest value (the first on
    /// ties) at the row's label.
    public static func correctPredictions(_ logits: Tensor, labels: [Int32]) throws -> Int {
        let values = try logits.toArray()
        let classes = logits.shape[1]
        var correct = 0
        for (row, label) in labels.enumerated() {
            var best = 0
            for c in 1..<classes where values[row * classes + c] > values[row * classes + best] { best = c }
            if best == Int(label) { correct += 1 }
        }
        return correct
    }

    private static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) * 1e-18
    }

    private func classifier() throws -> Layer {
        guard let classifier = model as? Layer else {
            throw CloverError.invalidArgument(op: "Trainer", reason: "\(type(of: model)) is not a Layer: it maps no "
                                              + "tensor to class logits, so train it with step(_:) and its own loss")
        }
        return classifier
    }
}

/// What a classification step leaves on the device: its loss and logits,
/// not read back (reading waits for the device).
public struct ClassificationStep {
    /// The batch's mean softmax cross-entropy, `[]`.
    public let loss: Tensor
    /// The model's output, `[N, classes]`.
    public let logits: Tensor
}

/// Sums of an evaluation pass, so that passes over shards combine by adding.
public struct Evaluation: Equatable, Sendable {
    /// The sum over samples of each sample's loss.
    public var lossSum: Double
    /// Samples whose prediction was their label.
    public var correct: Int
    /// Samples evaluated.
    public var count: Int

    public init(lossSum: Double, correct: Int, count: Int) {
        (self.lossSum, self.correct, self.count) = (lossSum, correct, count)
    }

    /// The mean loss per sample (0 over no samples).
    public var loss: Double { lossSum / Double(max(count, 1)) }
    /// The fraction of samples predicted right (0 over no samples).
    public var accuracy: Double { Double(correct) / Double(max(count, 1)) }
}

/// One epoch's figures, as `clover train` writes them to metrics.csv and
/// metrics.json.
public struct EpochMetrics: Codable, Equatable, Sendable {
    /// 1-based.
    public var epoch: Int
    /// The mean of the losses the progress reads saw (every `logEvery`-th step and the last).
    public var trainLoss: Double
    /// The accuracy over the batches of those reads.
    public var trainAccuracy: Double
    public var testLoss: Double
    public var testAccuracy: Double
    /// Wall-clock seconds of the epoch's training steps (not its evaluation).
    public var seconds: Double
    public var imagesPerSecond: Double
    /// The learning rate of the epoch's last step.
    public var learningRate: Double

    public init(epoch: Int, trainLoss: Double, trainAccuracy: Double, testLoss: Double, testAccuracy: Double,
                seconds: Double, imagesPerSecond: Double, learningRate: Double) {
        (self.epoch, self.trainLoss, self.trainAccuracy, self.testLoss, self.testAccuracy) =
            (epoch, trainLoss, trainAccuracy, testLoss, testAccuracy)
        (self.seconds, self.imagesPerSecond, self.learningRate) = (seconds, imagesPerSecond, learningRate)
    }
}

/// What ``Trainer/fit(_:testLoader:on:epochs:schedule:logEvery:parallel:checkpoints:observer:)``
/// read at a progress point.
public struct TrainingProgress: Sendable {
    /// 1-based epoch, and the last epoch of the run.
    public let epoch: Int, epochs: Int
    /// 1-based step in the epoch, and the epoch's steps.
    public let step: Int, steps: Int
    /// The step's loss (averaged over the processes when data-parallel).
    public let loss: Float
    /// The accuracy over the batches read so far this epoch.
    public let batchAccuracy: Double
    /// Images (over all processes) per second of the epoch so far.
    public let imagesPerSecond: Double
    /// An estimate of the seconds left in the epoch.
    public let remainingSeconds: Double
}

/// Watches a ``Trainer/fit(_:testLoader:on:epochs:schedule:logEvery:parallel:checkpoints:observer:)``
/// loop: where a command prints progress, counts a step's device calls,
/// profiles an epoch and writes checkpoints. Every method has an empty
/// default.
public protocol TrainingObserver: AnyObject {
    /// Before a step's upload.
    func trainerWillStep(_ trainer: Trainer)
    /// After a step, its progress read included.
    func trainerDidStep(_ trainer: Trainer)
    /// At every progress read.
    func trainer(_ trainer: Trainer, madeProgress progress: TrainingProgress)
    /// After an epoch's last step, before its evaluation (1-based `epoch`).
    func trainer(_ trainer: Trainer, finishedTrainingEpoch epoch: Int) throws
    /// After an epoch's evaluation, before its checkpoint.
    func trainer(_ trainer: Trainer, finishedEpoch metrics: EpochMetrics) throws
}

extension TrainingObserver {
    public func trainerWillStep(_ trainer: Trainer) {}
    public func trainerDidStep(_ trainer: Trainer) {}
    public func trainer(_ trainer: Trainer, madeProgress progress: TrainingProgress) {}
    public func trainer(_ trainer: Trainer, finishedTrainingEpoch epoch: Int) throws {}
    public func trainer(_ trainer: Trainer, finishedEpoch metrics: EpochMetrics) throws {}
}

/// Data-parallel training as the loop needs it: one process of a job that
/// trains on its shard of every global batch (CloverDistributed's
/// communicator behind it, in `clover train`).
public protocol DataParallel: AnyObject {
    /// The processes of the job.
    var worldSize: Int { get }
    /// A progress read's figures over all processes: the mean loss and the
    /// total of correct predictions.
    func combineProgress(loss: Float, correct: Int) throws -> (loss: Float, correct: Int)
    /// Averages the model's buffers (BatchNorm running statistics) over the
    /// processes, so every one evaluates and checkpoints the same model.
    func averageBuffers(of model: Module) throws
    /// This process's evaluation of its test shard, summed over all.
    func combine(_ evaluation: Evaluation) throws -> Evaluation
}

/// Where ``Trainer/fit(_:testLoader:on:epochs:schedule:logEvery:parallel:checkpoints:observer:)``
/// writes a checkpoint after each epoch.
public struct Checkpoints {
    /// The run directory.
    public let run: RunDirectory
    /// The names progress.json records: the model's and the data set's.
    public let model: String, dataset: String
    /// The epochs before this fit (a resumed run's), which every checkpoint's
    /// history starts with.
    public let history: [EpochMetrics]
    /// Whether this process writes them (in a data-parallel job only one does).
    public let writes: Bool

    public init(run: RunDirectory, model: String, dataset: String, history: [EpochMetrics] = [], writes: Bool = true) {
        (self.run, self.model, self.dataset, self.history, self.writes) = (run, model, dataset, history, writes)
    }
}

/// Why a training loop stopped.
public enum TrainingError: Error, Equatable, CustomStringConvertible {
    /// A loss between `firstStep` and `lastStep` (1-based, in 1-based
    /// `epoch`) was NaN or infinite; `globalStep` counts from the run's start.
    case nonFiniteLoss(epoch: Int, firstStep: Int, lastStep: Int, globalStep: Int)

    public var description: String {
        switch self {
        case let .nonFiniteLoss(epoch, first, last, global):
            let steps = first == last ? "at step \(last)" : "between steps \(first) and \(last)"
            return "the loss became NaN or infinite in epoch \(epoch) \(steps) (global step \(global))"
        }
    }
}

/// Notices a NaN or infinite training loss at any step without making the
/// host wait for the device at each one.
///
/// Every step adds `0 · loss` to a scalar on the device: the sum stays
/// exactly 0 while every loss is finite and becomes NaN from the first one
/// that is not (0 · ±∞ and 0 · NaN are NaN), so one read of the flag covers
/// all the steps since the last. A training loop reads it where it waits
/// for the device anyway: with the progress line, which always prints at the
/// end of an epoch, before any checkpoint.
public struct LossGuard {
    private var flag: Tensor?
    /// The first step (1-based, in the epoch) not covered by a read yet.
    public private(set) var firstUnchecked = 1

    public init() {}

    /// Folds one step's loss into the flag: two tiny launches, no wait.
    public mutating func record(_ loss: Tensor) throws {
        let loss = loss.detached()
        try withoutGradients {
            // The flag starts as a zero created before the first step's
            // temporaries, so every step, the first included, holds the same
            // buffers at its peak and a later step allocates nothing new.
            let current = try flag ?? Tensor.zeros(loss.shape, on: loss.device)
            flag = try add(current, try scale(loss, by: 0))
        }
    }

    /// Creates the flag before the first step (see ``record(_:)``).
    public mutating func prepare(on device: Device) throws {
        if flag == nil { flag = try Tensor.zeros([], on: device) }
    }

    /// Whether every loss recorded since the last check was finite (reads
    /// one float, waiting for the queued work). `step` is the last recorded
    /// step, so that the next check reports the steps it covers.
    public mutating func allFinite(throughStep step: Int) throws -> Bool {
        defer { firstUnchecked = step + 1 }
        guard let flag else { return true }
        return try flag.toArray().allSatisfy(\.isFinite)
    }

    /// What a progress line shows, read from the device at once: whether
    /// every loss since the last check was finite, the step's loss, and the
    /// predicted class of each row of `logits`. One blocking read instead of
    /// three (flag, loss, logits): the line costs one wait for the device.
    public mutating func progress(loss: Tensor, logits: Tensor,
                                  throughStep step: Int) throws -> (allFinite: Bool, loss: Float, predictions: [Int32]) {
        let read = try progress(loss: loss, reading: try withoutGradients { try argmax(logits.detached()) },
                                throughStep: step)
        return (read.allFinite, read.loss, read.values.map { Int32($0) })
    }

    /// As ``progress(loss:logits:throughStep:)``, with the values of `extra`
    /// (flattened) in place of the predictions: for heads whose progress is
    /// not an argmax, such as OSCAR's contrastive logit.
    public mutating func progress(loss: Tensor, reading extra: Tensor,
                                  throughStep step: Int) throws -> (allFinite: Bool, loss: Float, values: [Float]) {
        defer { firstUnchecked = step + 1 }
        let packed = try withoutGradients {
            try concat([(flag ?? Tensor.zeros([], on: loss.device)).reshaped([1]), loss.detached().reshaped([1]),
                        extra.detached().reshaped([extra.shape.reduce(1, *)])], axis: 0)
        }
        let values = try packed.toArray()
        return (values[0].isFinite, values[1], Array(values.dropFirst(2)))
    }

    /// Starts a new epoch's step numbering (the flag itself stays: once
    /// non-finite, the run has already stopped).
    public mutating func startEpoch() {
        firstUnchecked = 1
    }
}
