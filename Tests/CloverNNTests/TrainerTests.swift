import Clover
import CloverData
import CloverNN
import CloverRuntime
import CloverTestSupport
import XCTest

/// Flattens `[N, 1, 2, 2]` images and maps them to three class logits.
private final class Probe: Module, Layer {
    let fc: Linear
    init(_ device: Device, seed: UInt64 = 3) throws {
        fc = try Linear(4, 3, initializer: Initializer(device: device, seed: seed))
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        try fc(x.reshaped([x.shape[0], 4]))
    }
}

/// A module that is not a ``Layer``.
private final class Holder: Module {
    let weight: Parameter
    init(_ device: Device) throws { weight = Parameter(try Tensor(shape: [2], values: [1, 2], on: device)) }
}

final class TrainerTests: XCTestCase {
    private let images: [Float] = [0.5, -1, 2, 0.25, -0.5, 1.5, 0, -2, 1, 1, -1, 0.75]
    private let labels: [Int32] = [2, 0, 1]

    private func sgd(_ model: Module) throws -> SGD {
        try SGD(model.namedParameters(), configuration: SGDConfiguration(learningRate: 0.1, momentum: 0.9, weightDecay: 1e-2))
    }

    /// A trainer's step is exactly zero gradients, forward, loss, backward
    /// and update: two steps leave the parameters that two hand-written
    /// steps leave, on the CPU reference and on the OpenCL device.
    func testStepIsZeroingForwardLossBackwardAndUpdate() throws {
        for device in [Device.reference, try TestSupport.newDevice()] {
            let x = try Tensor(shape: [3, 1, 2, 2], values: images, on: device)
            let byTrainer = try Probe(device), byHand = try Probe(device)
            let trainer = Trainer(model: byTrainer, optimizer: try sgd(byTrainer))
            let optimizer = try sgd(byHand)
            for _ in 0..<2 {
                let step = try trainer.step(images: x, labels: ClassLabels(labels))
                XCTAssertEqual(step.logits.shape, [3, 3])
                XCTAssertEqual(step.loss.shape, [])
                byHand.zeroGrad()
                try softmaxCrossEntropy(byHand(x), labels: ClassLabels(labels)).backward()
                try optimizer.step()
            }
            for ((name, a), (_, b)) in zip(byTrainer.namedParameters(), byHand.namedParameters()) {
                XCTAssertEqual(try a.tensor.toArray(), try b.tensor.toArray(), "\(name) on \(device)")
            }
            // The update moved them: the comparison is not between two untouched models.
            XCTAssertNotEqual(try byTrainer.fc.weight.tensor.toArray(), try Probe(device).fc.weight.tensor.toArray())
        }
    }

    /// Without an optimiser a step ends after backward: the parameters stay,
    /// and each step's gradients replace the last's instead of adding up.
    func testStepWithoutOptimizerComputesFreshGradientsOnly() throws {
        let device = try TestSupport.newDevice()
        let model = try Probe(device)
        let before = try model.fc.weight.tensor.toArray()
        let trainer = Trainer(model: model, optimizer: nil)
        let x = try Tensor(shape: [3, 1, 2, 2], values: images, on: device)
        _ = try trainer.step(images: x, labels: ClassLabels(labels))
        let first = try XCTUnwrap(model.fc.weight.grad).toArray()
        _ = try trainer.step(images: x, labels: ClassLabels(labels))
        XCTAssertEqual(try XCTUnwrap(model.fc.weight.grad).toArray(), first)
        XCTAssertTrue(first.contains { $0 != 0 })
        XCTAssertEqual(try model.fc.weight.tensor.toArray(), before)
    }

    /// A classification step or evaluation of a module that maps no tensor
    /// to logits is an error naming the trainer and the type.
    func testNonLayerModelIsRefusedByName() throws {
        let trainer = Trainer(model: try Holder(.reference), optimizer: nil)
        let x = try Tensor(shape: [1, 1, 2, 2], values: [1, 2, 3, 4], on: .reference)
        XCTAssertThrowsError(try trainer.step(images: x, labels: ClassLabels([0]))) { error in
            XCTAssertTrue("\(error)".contains("Trainer"), "\(error)")
            XCTAssertTrue("\(error)".contains("Holder"), "\(error)")
        }
        // The general step still works for it: any objective.
        let loss = try trainer.step { try sum(mul(trainer.model.parameters()[0].tensor, trainer.model.parameters()[0].tensor), axes: [0]).reshaped([]) }
        XCTAssertEqual(try loss.toArray(), [5])
        XCTAssertEqual(try XCTUnwrap(trainer.model.parameters()[0].grad).toArray(), [2, 4])
    }

    /// Evaluation gives the mean cross-entropy and accuracy computed here in
    /// Double from the model's weights, over batches of unequal size, and
    /// leaves the model in training mode.
    func testEvaluationMatchesAHandComputedLossAndAccuracy() throws {
        let device = try TestSupport.newDevice()
        let model = try Probe(device)
        let data = try Dataset(images: images + images.map { -$0 }, labels: labels + [0, 1, 1], sampleShape: [1, 2, 2],
                               classCount: 3)
        let loader = try BatchLoader(dataset: data, batchSize: 4, shuffle: false)
        let result = try Trainer(model: model, optimizer: nil).evaluate(loader.epoch(0), on: device)
        XCTAssertTrue(model.isTraining)

        let w = try model.fc.weight.tensor.toArray().map(Double.init), b = try XCTUnwrap(model.fc.bias).tensor.toArray()
        var lossSum = 0.0, correct = 0
        for (n, label) in data.labels.enumerated() {
            let pixels = data.images[(4 * n)..<(4 * n + 4)].map(Double.init)
            let logits = (0..<3).map { c in (0..<4).reduce(Double(b[c])) { $0 + w[c * 4 + $1] * pixels[$1] } }
            let top = logits.max()!
            lossSum += log(logits.map { exp($0 - top) }.reduce(0, +)) + top - logits[Int(label)]
            if logits.firstIndex(of: top)! == Int(label) { correct += 1 }
        }
        XCTAssertEqual(result.count, 6)
        XCTAssertEqual(result.correct, correct)
        XCTAssertEqual(result.loss, lossSum / 6, accuracy: 1e-5)
        XCTAssertEqual(result.accuracy, Double(correct) / 6)
    }

    /// A watched trainer notices a non-finite loss at any step with one read,
    /// at two launches a step; an unwatched one adds none.
    func testWatchedLossCostsTwoLaunchesAndNoticesNonFiniteLoss() throws {
        let device = try TestSupport.newDevice()
        let context = try XCTUnwrap(device.openCL)
        func launches() -> Int { context.launchCounts.values.reduce(0, +) }
        let model = try Holder(device)
        let plain = Trainer(model: model, optimizer: nil)
        let watched = Trainer(model: model, optimizer: nil)
        try watched.watchLoss(on: device)
        XCTAssertNil(plain.lossGuard)
        let square = { try sum(mul(model.weight.tensor, model.weight.tensor), axes: [0]).reshaped([]) }
        var start = launches()
        try plain.step(square)
        let plainLaunches = launches() - start
        start = launches()
        try watched.step(square)
        XCTAssertEqual(launches() - start, plainLaunches + 2)
        XCTAssertEqual(try watched.lossGuard?.allFinite(throughStep: 1), true)
        try watched.step { try scale(square(), by: .infinity) }
        try watched.step(square)
        XCTAssertEqual(try watched.lossGuard?.allFinite(throughStep: 3), false)
    }

    private final class Recorder: TrainingObserver {
        var steps = 0, progress: [TrainingProgress] = [], trained: [Int] = [], finished: [EpochMetrics] = []
        func trainerDidStep(_ trainer: Trainer) { steps += 1 }
        func trainer(_ trainer: Trainer, madeProgress progress: TrainingProgress) { self.progress.append(progress) }
        func trainer(_ trainer: Trainer, finishedTrainingEpoch epoch: Int) throws { trained.append(epoch) }
        func trainer(_ trainer: Trainer, finishedEpoch metrics: EpochMetrics) throws { finished.append(metrics) }
    }

    private func runDirectory() throws -> RunDirectory {
        let path = NSTemporaryDirectory() + "clover-trainer-" + UUID().uuidString
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return try RunDirectory(path: path)
    }

    /// The loop: every step, a progress read every `logEvery` steps and at
    /// each epoch's end, the epoch's figures, and a checkpoint per epoch that
    /// a resumed trainer takes up (model, optimiser and history).
    func testFitReportsEveryEpochAndCheckpointsWhatResumeRestores() throws {
        let device = try TestSupport.newDevice()
        let data = try Dataset(images: (0..<96).map { Float(($0 * 7) % 11) / 5 - 1 }, labels: (0..<24).map { Int32($0 % 3) },
                               sampleShape: [1, 2, 2], classCount: 3)
        let loader = try BatchLoader(dataset: data, batchSize: 4, shuffle: true, dropLast: true, seed: 5)
        let testLoader = try BatchLoader(dataset: data, batchSize: 8, shuffle: false)
        let model = try Probe(device)
        let trainer = Trainer(model: model, optimizer: try sgd(model))
        let run = try runDirectory()
        let recorder = Recorder()
        let history = try trainer.fit(loader, testLoader: testLoader, on: device, epochs: 0..<2,
                                      schedule: StepSchedule(base: 0.1, milestones: [1], gamma: 0.5), logEvery: 4,
                                      checkpoints: Checkpoints(run: run, model: "probe", dataset: "tiny"),
                                      observer: recorder)
        XCTAssertEqual(recorder.steps, 12)
        // Steps 4 and 6 of each 6-step epoch.
        XCTAssertEqual(recorder.progress.map { [$0.epoch, $0.step, $0.steps] }, [[1, 4, 6], [1, 6, 6], [2, 4, 6], [2, 6, 6]])
        XCTAssertEqual(recorder.trained, [1, 2])
        XCTAssertEqual(recorder.finished, history)
        XCTAssertEqual(history.map(\.epoch), [1, 2])
        XCTAssertEqual(history.map(\.learningRate), [0.1, 0.05].map { Double(Float($0)) })
        let evaluation = try trainer.evaluate(testLoader.epoch(0), on: device)
        XCTAssertEqual(history[1].testLoss, evaluation.loss, accuracy: 1e-6)
        XCTAssertEqual(history[1].testAccuracy, evaluation.accuracy)

        let progress = try run.readProgress()
        XCTAssertEqual(progress.epochsDone, 2)
        XCTAssertEqual(progress.history.map(\.epoch), [1, 2])
        let restored = try Probe(device, seed: 99)
        let resumed = Trainer(model: restored, optimizer: try sgd(restored))
        XCTAssertEqual(try resumed.resume(from: run).epochsDone, 2)
        XCTAssertEqual(try restored.fc.weight.tensor.toArray(), try model.fc.weight.tensor.toArray())
    }

    /// A NaN loss stops the loop with the steps it lies between, before the
    /// epoch's end is reported or checkpointed.
    func testFitStopsAtANonFiniteLossWithoutCheckpointingTheEpoch() throws {
        let device = try TestSupport.newDevice()
        var images = [Float](repeating: 0.5, count: 48)
        images[20] = .nan  // sample 5: in the second batch of 4
        let data = try Dataset(images: images, labels: [Int32](repeating: 1, count: 12), sampleShape: [1, 2, 2], classCount: 3)
        let loader = try BatchLoader(dataset: data, batchSize: 4, shuffle: false, dropLast: true)
        let model = try Probe(device)
        let trainer = Trainer(model: model, optimizer: try sgd(model))
        let run = try runDirectory()
        let recorder = Recorder()
        XCTAssertThrowsError(try trainer.fit(loader, testLoader: loader, on: device, epochs: 0..<1,
                                             schedule: WarmupSchedule(base: 0.1, warmupEpochs: 0), logEvery: 3,
                                             checkpoints: Checkpoints(run: run, model: "probe", dataset: "nan"),
                                             observer: recorder)) { error in
            XCTAssertEqual(error as? TrainingError, .nonFiniteLoss(epoch: 1, firstStep: 1, lastStep: 3, globalStep: 3))
            XCTAssertEqual("\(error)", "the loss became NaN or infinite in epoch 1 between steps 1 and 3 (global step 3)")
        }
        XCTAssertTrue(recorder.finished.isEmpty)
        XCTAssertTrue(recorder.trained.isEmpty)
        XCTAssertThrowsError(try run.readProgress())
    }
}
