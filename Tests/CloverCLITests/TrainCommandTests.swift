@testable import clover
import Clover
@testable import CloverNN
import CloverRuntime
import Foundation
import CloverTestSupport
import XCTest

/// `clover train` end to end on a tiny synthetic run: metrics and
/// checkpoints appear, resume continues, and a diverging loss stops the run.
final class TrainCommandTests: XCTestCase {
    private func requireOpenCL() throws { try TestSupport.requireOpenCL() }

    private func tempDirectory() -> String {
        let path = NSTemporaryDirectory() + "clover-train-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    private let common = ["--model", "cifar-resnet20", "--dataset", "synthetic", "--train-subset", "64",
                          "--test-subset", "32", "--batch-size", "32", "--log-every", "1"]

    func testTrainWritesMetricsAndCheckpointsAndResumes() throws {
        try requireOpenCL()
        let out = tempDirectory()
        try TrainCommand.parse(common + ["--epochs", "1", "--out", out, "--lr", "0.05"]).run()
        for file in ["model.safetensors", "optimizer.safetensors", "progress.json", "metrics.csv", "metrics.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + file), file)
        }
        let model = try SafeTensors.read(path: out + "/model.safetensors")
        XCTAssertNotNil(model["conv1.weight"])
        XCTAssertNotNil(model["layer1.0.bn1.running_mean"])
        XCTAssertEqual(model["layer1.0.bn1.num_batches_tracked"]?.values, [2])
        let csv1 = try String(contentsOfFile: out + "/metrics.csv", encoding: .utf8)
        XCTAssertEqual(csv1.split(separator: "\n").count, 2)
        // Resume to 2 epochs: one more epoch is appended, BN counters continue.
        try TrainCommand.parse(common + ["--epochs", "2", "--out", out, "--lr", "0.05", "--resume"]).run()
        let csv2 = try String(contentsOfFile: out + "/metrics.csv", encoding: .utf8)
        XCTAssertEqual(csv2.split(separator: "\n").count, 3)
        XCTAssertTrue(csv2.hasPrefix(csv1), "resume keeps the first epoch's metrics")
        let resumed = try SafeTensors.read(path: out + "/model.safetensors")
        XCTAssertEqual(resumed["layer1.0.bn1.num_batches_tracked"]?.values, [4])
        // eval reads the checkpoint back.
        try EvalCommand.parse(["--model", "cifar-resnet20", "--dataset", "synthetic", "--test-subset", "32",
                               "--batch-size", "32", "--checkpoint", out]).run()
    }

    func testDivergingLossStopsAndKeepsTheLastGoodCheckpoint() throws {
        try requireOpenCL()
        let out = tempDirectory()
        try TrainCommand.parse(common + ["--epochs", "1", "--out", out, "--lr", "0.01"]).run()
        let before = try Data(contentsOf: URL(fileURLWithPath: out + "/model.safetensors"))
        XCTAssertThrowsError(try TrainCommand.parse(common + ["--epochs", "2", "--out", out, "--lr", "1e30",
                                                              "--schedule", "constant", "--resume"]).run())
        let after = try Data(contentsOf: URL(fileURLWithPath: out + "/model.safetensors"))
        XCTAssertEqual(before, after, "the checkpoint of the last good epoch is untouched")
    }

    /// `--no-augment` trains on the evaluation transform (normalisation only).
    func testNonFiniteEvaluationLossIsWrittenAndReadBack() throws {
        let out = tempDirectory()
        let directory = try RunDirectory(path: out)
        let model = try Linear(2, 2, initializer: Initializer(device: .reference, seed: 0))
        let optimizer = try SGD(model.namedParameters(), configuration: SGDConfiguration(learningRate: 0.1))
        let epoch = EpochMetrics(epoch: 1, trainLoss: 2.5, trainAccuracy: 0.5, testLoss: .nan, testAccuracy: 0,
                                 seconds: 1, imagesPerSecond: .infinity, learningRate: 0.1)
        try directory.saveCheckpoint(model: model, optimizer: optimizer,
                                     progress: RunProgress(model: "m", dataset: "d", epochsDone: 1, history: [epoch]))
        let json = try String(contentsOfFile: out + "/metrics.json", encoding: .utf8)
        XCTAssertTrue(json.contains("\"testLoss\" : \"NaN\""), json)
        XCTAssertTrue(json.contains("\"imagesPerSecond\" : \"Infinity\""), json)
        let progress = try directory.loadCheckpoint(model: model, optimizer: optimizer)
        XCTAssertTrue(progress.history[0].testLoss.isNaN)
        XCTAssertEqual(progress.history[0].imagesPerSecond, Double.infinity)
        XCTAssertEqual(progress.history[0].trainLoss, 2.5)
    }

    func testNoAugmentTrainsOnTheTestTransform() throws {
        let standard = try TrainCommand.parse(["--dataset", "fashion-mnist"]).data.augmentations
        XCTAssertTrue(standard.train.isRandom)
        XCTAssertFalse(standard.test.isRandom)
        let plain = try TrainCommand.parse(["--dataset", "fashion-mnist", "--no-augment"]).data
            .augmentations
        XCTAssertEqual(plain.train, standard.test)
        XCTAssertEqual(plain.test, standard.test)
    }

    func testResumeWithoutCheckpointIsAnError() throws {
        try requireOpenCL()
        XCTAssertThrowsError(try TrainCommand.parse(common + ["--out", tempDirectory(), "--resume"]).run())
    }
}
