@testable import clover
import Clover
@testable import CloverNN
import CloverRuntime
import Foundation
import CloverTestSupport
import XCTest

/// `RunDirectory` on the CPU reference device: a checkpoint is one unit
/// (model, optimiser and progress switch together), a failure while writing
/// any of its files keeps the previous one current, non-finite weights are
/// never saved, and a bad progress.json is an error naming the file.
final class CheckpointTests: XCTestCase {
    private func tempDirectory() -> String {
        let path = NSTemporaryDirectory() + "clover-checkpoint-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    private func makeModel(seed: UInt64 = 0) throws -> (Linear, SGD) {
        let model = try Linear(3, 2, initializer: Initializer(device: .reference, seed: seed))
        let optimizer = try SGD(model.namedParameters(), configuration: SGDConfiguration(learningRate: 0.1, momentum: 0.9))
        return (model, optimizer)
    }

    private func progress(_ epochs: Int) -> RunProgress {
        RunProgress(model: "m", dataset: "d", epochsDone: epochs, history: (0..<epochs).map {
            EpochMetrics(epoch: $0 + 1, trainLoss: 1, trainAccuracy: 0.5, testLoss: 1, testAccuracy: 0.5,
                         seconds: 1, imagesPerSecond: 1, learningRate: 0.1)
        })
    }

    private func weight(_ model: Linear) throws -> [Float] {
        try XCTUnwrap(model.stateDict()["weight"]).values
    }

    /// Saves `epochs` checkpoints, each with weights of its own (`weight[0] = epoch`).
    private func save(_ run: RunDirectory, _ model: Linear, _ optimizer: SGD, epoch: Int) throws {
        var values = try weight(model)
        values[0] = Float(epoch)
        try model.namedParameters().first { $0.0 == "weight" }!.1.tensor.copyValues(values)
        try run.saveCheckpoint(model: model, optimizer: optimizer, progress: progress(epoch))
    }

    private func contents(_ path: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path).sorted()
    }

    func testACheckpointIsOneGenerationSwitchedByOneLink() throws {
        let out = tempDirectory()
        let run = try RunDirectory(path: out)
        let (model, optimizer) = try makeModel()
        try save(run, model, optimizer, epoch: 1)
        try save(run, model, optimizer, epoch: 2)
        // The previous generation is gone once the new one is current.
        XCTAssertEqual(try contents(out), ["checkpoint-000002", "current"] + RunDirectory.files.sorted())
        XCTAssertEqual(RunDirectory.linkTarget(out + "/current"), "checkpoint-000002")
        for file in RunDirectory.files {
            XCTAssertEqual(RunDirectory.linkTarget(out + "/" + file), "current/" + file)
        }
        let weights = try SafeTensors.read(path: out + "/model.safetensors")
        XCTAssertEqual(weights.metadata[RunDirectory.epochsKey], "2")
        XCTAssertEqual(try SafeTensors.read(path: out + "/optimizer.safetensors").metadata[RunDirectory.generationKey], "2")
        let (loaded, loadedOptimizer) = try makeModel(seed: 9)
        let resumed = try run.loadCheckpoint(model: loaded, optimizer: loadedOptimizer)
        XCTAssertEqual(resumed.epochsDone, 2)
        XCTAssertEqual(resumed.generation, 2)
        XCTAssertEqual(try weight(loaded)[0], 2)
    }

    /// A failure at each file of a checkpoint, as a full disk gives it:
    /// the error names the file and the cause, the partial generation is
    /// removed, and the previous checkpoint stays current and loadable.
    func testAFailedWriteOfAnyFileKeepsThePreviousCheckpoint() throws {
        for failing in RunDirectory.files {
            let out = tempDirectory()
            var run = try RunDirectory(path: out)
            let (model, optimizer) = try makeModel()
            try save(run, model, optimizer, epoch: 1)
            run.writeFile = { data, path in
                if path.hasSuffix("/" + failing) {
                    // Half the bytes reach the disk, then it is full.
                    try RunDirectory.writeDurably(data.prefix(data.count / 2), to: path)
                    throw CheckpointError.system("cannot write", path, ENOSPC)
                }
                try RunDirectory.writeDurably(data, to: path)
            }
            XCTAssertThrowsError(try save(run, model, optimizer, epoch: 2), failing) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains("no space left on device"), message)
                XCTAssertTrue(message.contains(failing), message)
                XCTAssertTrue(message.contains("previous checkpoint in \(out) is kept"), message)
            }
            XCTAssertEqual(try contents(out), ["checkpoint-000001", "current"] + RunDirectory.files.sorted(), failing)
            let (loaded, loadedOptimizer) = try makeModel(seed: 5)
            XCTAssertEqual(try run.loadCheckpoint(model: loaded, optimizer: loadedOptimizer).epochsDone, 1, failing)
            XCTAssertEqual(try weight(loaded)[0], 1, failing)
            // The next save succeeds once there is room again.
            run.writeFile = RunDirectory.writeDurably
            try save(run, model, optimizer, epoch: 2)
            XCTAssertEqual(try run.readProgress().epochsDone, 2)
        }
    }

    /// A run killed while writing a generation leaves a partial directory
    /// that `current` does not name: resume ignores it, the next save
    /// removes it.
    func testAPartialGenerationFromAKilledRunIsIgnoredThenRemoved() throws {
        let out = tempDirectory()
        let run = try RunDirectory(path: out)
        let (model, optimizer) = try makeModel()
        try save(run, model, optimizer, epoch: 1)
        try FileManager.default.createDirectory(atPath: out + "/checkpoint-000002", withIntermediateDirectories: false)
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: out + "/checkpoint-000002/model.safetensors"))
        let (loaded, loadedOptimizer) = try makeModel(seed: 5)
        XCTAssertEqual(try run.loadCheckpoint(model: loaded, optimizer: loadedOptimizer).epochsDone, 1)
        try save(run, model, optimizer, epoch: 2)
        XCTAssertEqual(try contents(out), ["checkpoint-000003", "current"] + RunDirectory.files.sorted())
        XCTAssertEqual(try run.readProgress().epochsDone, 2)
    }

    /// Files that disagree on the epoch (as three renames interrupted
    /// between two left them) are refused, naming the file.
    func testMismatchedFilesAreRefused() throws {
        let out = tempDirectory()
        let run = try RunDirectory(path: out)
        let (model, optimizer) = try makeModel()
        try save(run, model, optimizer, epoch: 1)
        var weights = try SafeTensors.read(path: out + "/current/model.safetensors")
        weights.metadata[RunDirectory.epochsKey] = "2"
        try weights.write(path: out + "/current/model.safetensors")
        XCTAssertThrowsError(try run.loadCheckpoint(model: model, optimizer: optimizer)) { error in
            XCTAssertTrue("\(error)".contains("inconsistent checkpoint"), "\(error)")
            XCTAssertTrue("\(error)".contains("model.safetensors is from epoch 2"), "\(error)")
        }
    }

    /// The flat layout of earlier versions (five plain files) still
    /// resumes, and the next save turns it into links to a generation.
    func testTheOldFlatLayoutResumesAndIsConverted() throws {
        let out = tempDirectory()
        let run = try RunDirectory(path: out)
        let (model, optimizer) = try makeModel()
        try model.stateDict().write(path: out + "/model.safetensors")
        try optimizer.stateDict().write(path: out + "/optimizer.safetensors")
        let json = """
            {"model": "m", "dataset": "d", "epochsDone": 1, "history": [{"epoch": 1, "trainLoss": 1, \
            "trainAccuracy": 0.5, "testLoss": "NaN", "testAccuracy": 0.5, "seconds": 1, "imagesPerSecond": 1, \
            "learningRate": 0.1}]}
            """
        try Data(json.utf8).write(to: URL(fileURLWithPath: out + "/progress.json"))
        let (loaded, loadedOptimizer) = try makeModel(seed: 3)
        let progress = try run.loadCheckpoint(model: loaded, optimizer: loadedOptimizer)
        XCTAssertEqual(progress.epochsDone, 1)
        XCTAssertNil(progress.generation)
        XCTAssertEqual(try weight(loaded), try weight(model))
        try save(run, model, optimizer, epoch: 2)
        XCTAssertEqual(RunDirectory.linkTarget(out + "/progress.json"), "current/progress.json")
        XCTAssertEqual(RunDirectory.linkTarget(out + "/model.safetensors"), "current/model.safetensors")
        XCTAssertEqual(try run.readProgress().epochsDone, 2)
    }

    /// NaN or infinity anywhere in the parameters, buffers or optimiser
    /// state: nothing is written and the last good checkpoint stays.
    func testNonFiniteStateIsNeverSaved() throws {
        let out = tempDirectory()
        let run = try RunDirectory(path: out)
        let (model, optimizer) = try makeModel()
        try save(run, model, optimizer, epoch: 1)
        let before = try Data(contentsOf: URL(fileURLWithPath: out + "/model.safetensors"))
        for bad in [Float.nan, .infinity, -.infinity] {
            let bias = model.namedParameters().first { $0.0 == "bias" }!.1.tensor
            try bias.copyValues([0, bad])
            XCTAssertThrowsError(try run.saveCheckpoint(model: model, optimizer: optimizer, progress: progress(2))) { error in
                XCTAssertTrue("\(error)".contains("bias (model.safetensors) holds 1 non-finite value(s)"), "\(error)")
                XCTAssertTrue("\(error)".contains("last good checkpoint in \(out) is kept"), "\(error)")
            }
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/model.safetensors")), before)
            XCTAssertEqual(try contents(out), ["checkpoint-000001", "current"] + RunDirectory.files.sorted())
        }
        // Optimiser state too (SGD momentum).
        try model.namedParameters().first { $0.0 == "bias" }!.1.tensor.copyValues([0, 0])
        var state = try optimizer.stateDict()
        state.entries["momentum.1"]!.values[0] = .nan
        try optimizer.loadStateDict(state)
        XCTAssertThrowsError(try run.saveCheckpoint(model: model, optimizer: optimizer, progress: progress(2))) { error in
            XCTAssertTrue("\(error)".contains("momentum.1 (optimizer.safetensors)"), "\(error)")
        }
        XCTAssertEqual(try run.readProgress().epochsDone, 1)
    }

    // MARK: progress.json

    private func runWithProgress(_ json: String) throws -> (RunDirectory, String) {
        let out = tempDirectory()
        let run = try RunDirectory(path: out)
        try Data(json.utf8).write(to: URL(fileURLWithPath: out + "/progress.json"))
        return (run, out)
    }

    private func assertProgressError(_ json: String, epochLimit: Int? = 10, contains expected: [String],
                                     file: StaticString = #filePath, line: UInt = #line) throws {
        let (run, out) = try runWithProgress(json)
        XCTAssertThrowsError(try run.readProgress(epochLimit: epochLimit), file: file, line: line) { error in
            let message = "\(error)"
            for part in expected + [out] {
                XCTAssertTrue(message.contains(part), "\(message) lacks \(part)", file: file, line: line)
            }
            XCTAssertFalse(message.contains("\n"), "one line: \(message)", file: file, line: line)
        }
    }

    func testBadProgressFilesAreErrorsNamingTheFile() throws {
        func progress(_ epochs: String) -> String {
            #"{"model": "m", "dataset": "d", "epochsDone": \#(epochs), "history": []}"#
        }
        try assertProgressError(progress("-1"), contains: ["progress.json", "epochsDone is -1"])
        try assertProgressError(progress("9223372036854775807"), contains: ["already trained 9223372036854775807 epoch(s)"])
        try assertProgressError(progress("3"), epochLimit: 2, contains: ["already trained 3 epoch(s), more than --epochs 2"])
        try assertProgressError(progress("99999999999999999999"), contains: ["progress.json is not a valid progress file"])
        try assertProgressError("{not json", contains: ["progress.json is not a valid progress file: not valid JSON"])
        try assertProgressError(#"{"model": "m"}"#, contains: ["progress.json is not a valid progress file: missing \"dataset\""])
        try assertProgressError("", contains: ["progress.json is not a valid progress file"])
        // Within the limit: fine.
        let (run, _) = try runWithProgress(progress("2"))
        XCTAssertEqual(try run.readProgress(epochLimit: 2).epochsDone, 2)
    }

    func testResumeWithFewerEpochsThanDoneSaysSo() throws {
        let out = tempDirectory()
        let run = try RunDirectory(path: out)
        let (model, optimizer) = try makeModel()
        try save(run, model, optimizer, epoch: 3)
        XCTAssertThrowsError(try run.loadCheckpoint(model: model, optimizer: optimizer, epochLimit: 2)) { error in
            XCTAssertTrue("\(error)".contains("has already trained 3 epoch(s)"), "\(error)")
        }
    }

    // MARK: --out

    func testOutThatCannotHoldARunIsOneClearLine() throws {
        let base = tempDirectory()
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        let file = base + "/file"
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        XCTAssertThrowsError(try RunDirectory(path: file, label: "--out")) { error in
            XCTAssertEqual("\(error)", "--out \(file) is a file, not a directory")
        }
        XCTAssertThrowsError(try RunDirectory(path: file + "/run", label: "--out")) { error in
            XCTAssertEqual("\(error)", "--out \(file)/run: cannot create directory \(file)/run: not a directory")
        }
        XCTAssertThrowsError(try RunDirectory(path: "/proc/clover-run", label: "--out")) { error in
            XCTAssertTrue("\(error)".hasPrefix("--out /proc/clover-run: cannot create directory /proc/clover-run: "), "\(error)")
        }
    }

    // MARK: Loss guard

    /// A loss that turns non-finite between progress lines (here the only
    /// line is the epoch's last) still stops the run before its checkpoint.
    func testANonFiniteLossBetweenProgressLinesStopsTheRun() throws {
        try TestSupport.requireOpenCL()
        let out = tempDirectory()
        let common = ["--model", "cifar-resnet20", "--dataset", "synthetic", "--train-subset", "64", "--test-subset", "16",
                      "--batch-size", "16", "--log-every", "1000", "--out", out, "--schedule", "constant"]
        try TrainCommand.parse(common + ["--epochs", "1", "--lr", "0.01"]).run()
        let before = try Data(contentsOf: URL(fileURLWithPath: out + "/model.safetensors"))
        XCTAssertThrowsError(try TrainCommand.parse(common + ["--epochs", "2", "--lr", "1e30", "--resume"]).run())
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/model.safetensors")), before)
        XCTAssertEqual(try RunDirectory(path: out).readProgress().epochsDone, 1)
    }

    /// The device-side flag notices a non-finite loss at any step, read
    /// once afterwards.
    func testLossGuardNoticesANonFiniteLossAtAnyStep() throws {
        for bad in [Float.nan, .infinity, -.infinity] {
            var guardian = LossGuard()
            for step in 1...10 {
                let value: Float = step == 3 ? bad : 2.5
                try guardian.record(Tensor(shape: [], values: [value], on: .reference))
            }
            XCTAssertFalse(try guardian.allFinite(throughStep: 10), "\(bad)")
        }
        var guardian = LossGuard()
        for _ in 1...5 { try guardian.record(Tensor(shape: [], values: [1e30], on: .reference)) }
        XCTAssertTrue(try guardian.allFinite(throughStep: 5), "large finite losses do not overflow the flag")
        XCTAssertEqual(guardian.firstUnchecked, 6)
    }
}
