@testable import clover
import ArgumentParser
import CloverNN
import Foundation
import XCTest

/// Option values that cannot make a sensible run are rejected by
/// `validate()` with a message naming the option and the allowed range
/// (CrashResumeTests runs the same through the binary, with the checks that
/// need the data).
final class OptionValidationTests: XCTestCase {
    private func assertRejected<C: ParsableCommand>(_ command: C.Type, _ arguments: [String], _ expected: String,
                                                    file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try command.parse(arguments), file: file, line: line) { error in
            let message = command.message(for: error)
            XCTAssertTrue(message.contains(expected), "\(arguments): \(message)", file: file, line: line)
        }
    }

    func testGPUKernelsRejectsNonsenseValues() {
        assertRejected(KernelInventoryCommand.self, ["--output", "x", "--batch", "0"],
                       "--batch must be between 1 and 65536 (got 0)")
        assertRejected(KernelInventoryCommand.self, ["--output", "x", "--batch", "4611686018427387904"],
                       "--batch must be between 1 and 65536")
        assertRejected(KernelInventoryCommand.self, ["--output", ""], "--output must name a directory")
        assertRejected(KernelInventoryCommand.self, [], "--output")
    }

    func testTrainRejectsNonsenseValues() {
        let cases: [([String], String)] = [
            (["--log-every", "0"], "--log-every must be at least 1 (got 0)"),
            (["--log-every=-5"], "--log-every must be at least 1"),
            (["--batch-size", "4611686018427387904"], "--batch-size must be between 1 and 65536"),
            (["--batch-size=-1"], "--batch-size must be between 1 and 65536"),
            (["--train-subset", "0"], "--train-subset must be at least 1"),
            (["--test-subset", "0"], "--test-subset must be at least 1"),
            (["--lr=-1"], "--lr must be a finite number above 0"),
            (["--lr", "0"], "--lr must be a finite number above 0"),
            (["--lr", "nan"], "--lr must be a finite number above 0"),
            (["--lr", "inf"], "--lr must be a finite number above 0"),
            (["--weight-decay=-1"], "--weight-decay must be a finite number of at least 0"),
            (["--weight-decay", "nan"], "--weight-decay must be a finite number of at least 0"),
            (["--warmup=-3"], "--warmup must be between 0 and --epochs"),
            (["--warmup", "inf"], "--warmup must be between 0 and --epochs"),
            (["--momentum", "2"], "--momentum must be at least 0 and below 1"),
            (["--momentum", "1"], "--momentum must be at least 0 and below 1"),
            (["--momentum", "nan"], "--momentum must be at least 0 and below 1"),
            (["--gamma", "nan"], "--gamma must be a finite number above 0"),
            (["--gamma=-inf"], "--gamma must be a finite number above 0"),
            (["--epochs", "0"], "--epochs must be between 1 and 1000000"),
            (["--epochs=-1"], "--epochs must be between 1 and 1000000"),
            (["--epochs", "9223372036854775807"], "--epochs must be between 1 and 1000000"),
            (["--milestones", "0"], "--milestones must be epochs between 1 and 1000000"),
            (["--optimizer", "adam"], "--optimizer must be sgd or adamw"),
            (["--schedule", "linear"], "--schedule must be constant, step or cosine"),
        ]
        for (arguments, expected) in cases {
            assertRejected(TrainCommand.self, ["--dataset", "synthetic"] + arguments, expected)
        }
    }

    func testSensibleValuesPass() throws {
        _ = try TrainCommand.parse(["--dataset", "synthetic", "--lr", "0.05", "--momentum", "0", "--weight-decay", "0",
                                    "--warmup", "1", "--epochs", "2", "--gamma", "0.5", "--log-every", "1",
                                    "--optimizer", "AdamW", "--schedule", "step", "--milestones", "1", "2"])
        _ = try EvalCommand.parse(["--checkpoint", "x", "--batch-size", "65536", "--test-subset", "1"])
    }

    func testEvalRejectsNonsenseValues() {
        assertRejected(EvalCommand.self, ["--checkpoint", "x", "--test-subset", "0"], "--test-subset must be at least 1")
        assertRejected(EvalCommand.self, ["--checkpoint", "x", "--batch-size", "0"], "--batch-size must be between 1")
    }

    func testPredictRefusesToWriteOverItsInputs() throws {
        let dir = NSTemporaryDirectory() + "clover-options-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        var input = SafeTensors()
        input.append("input", shape: [1, 3, 4, 4], values: [Float](repeating: 1, count: 48))
        try input.write(path: dir + "/in.safetensors")
        try input.write(path: dir + "/w.safetensors")
        try FileManager.default.createSymbolicLink(atPath: dir + "/link.safetensors", withDestinationPath: dir + "/in.safetensors")
        let common = ["--model", "cifar-resnet20", "--input", dir + "/in.safetensors"]
        assertRejected(PredictCommand.self, common + ["--output", dir + "/in.safetensors"], "is the --input file")
        assertRejected(PredictCommand.self, common + ["--output", dir + "/./in.safetensors"], "is the --input file")
        assertRejected(PredictCommand.self, common + ["--output", dir + "/link.safetensors"], "is the --input file")
        assertRejected(PredictCommand.self, common + ["--output", dir + "/o.safetensors", "--checkpoint", dir + "/w.safetensors",
                                                      "--save-weights", dir + "/w.safetensors"],
                       "--save-weights \(dir)/w.safetensors is the --checkpoint file")
        assertRejected(PredictCommand.self, common + ["--output", dir + "/o.safetensors", "--save-weights", dir + "/o.safetensors"],
                       "--save-weights \(dir)/o.safetensors is the --output file")
        assertRejected(PredictCommand.self, common + ["--output", dir + "/o.safetensors", "--classes", "0"],
                       "--classes must be at least 1")
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/in.safetensors"))
        XCTAssertEqual(try SafeTensors.parse(data, path: "in").names, ["input"], "the input is untouched")
    }
}
