import Clover
import CloverNN
#if canImport(FoundationEssentials)
import FoundationEssentials
#endif
#if canImport(Glibc)
import Glibc
#endif

/// One epoch's figures, as written to metrics.csv and metrics.json.
struct EpochMetrics: Codable {
    var epoch: Int
    var trainLoss: Double
    var trainAccuracy: Double
    var testLoss: Double
    var testAccuracy: Double
    var seconds: Double
    var imagesPerSecond: Double
    var learningRate: Double
}

/// Where a run stands: written with every checkpoint.
struct RunProgress: Codable {
    var model: String
    var dataset: String
    var epochsDone: Int
    var history: [EpochMetrics]
}

/// A training run's output directory: model and optimiser checkpoints,
/// progress and metrics. Every file is written to a temporary name and
/// renamed into place, so a run killed at any moment leaves either the old
/// or the new checkpoint, never a torn one.
struct RunDirectory {
    let path: String

    init(path: String) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    private var progressPath: String { path + "/progress.json" }

    /// The model file `checkpoint` names: a `.safetensors` file itself, or
    /// the `model.safetensors` of a run directory.
    static func modelFile(_ checkpoint: String) -> String {
        checkpoint.hasSuffix(".safetensors") ? checkpoint : checkpoint + "/model.safetensors"
    }

    /// How NaN and infinities appear in progress.json and metrics.json.
    static let nonFinite = JSONEncoder.NonConformingFloatEncodingStrategy.convertToString(
        positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
    static let nonFiniteDecoding = JSONDecoder.NonConformingFloatDecodingStrategy.convertFromString(
        positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")

    func saveCheckpoint(model: Module, optimizer: Optimizer, progress: RunProgress) throws {
        // Model and optimiser first, progress last: progress.json names the
        // epoch only once both files for it are in place.
        try model.stateDict().write(path: path + "/model.safetensors")
        try optimizer.stateDict().write(path: path + "/optimizer.safetensors")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        // An evaluation can legitimately give a non-finite loss (a deep net in
        // eval mode whose BN statistics have seen one batch overflows); JSON
        // has no literal for it, so it is written as a string Python's
        // float() reads, instead of failing the run after its work is done.
        encoder.nonConformingFloatEncodingStrategy = Self.nonFinite
        try writeAtomically(encoder.encode(progress), to: progressPath)
        try writeAtomically(encoder.encode(progress.history), to: path + "/metrics.json")
        var csv = "epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds,images_per_second,learning_rate\n"
        for m in progress.history {
            csv += "\(m.epoch),\(m.trainLoss),\(m.trainAccuracy),\(m.testLoss),\(m.testAccuracy),\(m.seconds),\(m.imagesPerSecond),\(m.learningRate)\n"
        }
        try writeAtomically(Data(csv.utf8), to: path + "/metrics.csv")
    }

    func loadCheckpoint(model: Module, optimizer: Optimizer) throws -> RunProgress {
        guard let data = FileManager.default.contents(atPath: progressPath) else {
            throw CloverError.invalidArgument(op: "resume", reason: "no checkpoint in \(path) (progress.json is missing)")
        }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = Self.nonFiniteDecoding
        let progress = try decoder.decode(RunProgress.self, from: data)
        try model.loadStateDict(SafeTensors.read(path: path + "/model.safetensors"))
        try optimizer.loadStateDict(SafeTensors.read(path: path + "/optimizer.safetensors"))
        return progress
    }

    private func writeAtomically(_ data: Data, to target: String) throws {
        let tmp = target + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: tmp, contents: data), rename(tmp, target) == 0 else {
            throw CloverError.invalidArgument(op: "checkpoint", reason: "cannot write \(target)")
        }
    }
}
