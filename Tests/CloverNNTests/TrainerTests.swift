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
}
