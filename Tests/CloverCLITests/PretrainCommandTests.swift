@testable import clover
import Clover
import CloverData
import CloverModels
import CloverNN
import CloverTestSupport
import Foundation
import XCTest

/// `clover pretrain` and `clover eval-retrieval` end to end on a tiny
/// synthetic corpus: metrics and checkpoints appear, resume continues, a
/// diverging loss stops the run, retrieval reads the checkpoint back, and
/// bad options and files end in errors that name them.
final class PretrainCommandTests: XCTestCase {
    private func directory(_ what: String) -> String {
        let path = NSTemporaryDirectory() + "clover-\(what)-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// 48 training and 12 test samples: caption "a N thing", tag "tN", 2 to 4
    /// regions of 3 features that encode N.
    private func corpus() throws -> String {
        let path = directory("pretrain-corpus")
        let names = ["zero", "one", "two", "three", "four", "five"]
        let vocabulary = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]", "a", "thing"] + names + names.map { "t" + $0 }
        var rng = SplitMix64(seed: 4)
        func sample(_ i: Int) -> OSCARSample {
            let n = i % names.count, regions = 2 + i % 3
            return OSCARSample(id: "s\(i)", caption: "a \(names[n]) thing", tags: ["t" + names[n]],
                               boxes: (0..<regions).map { r in [0, 0, Float(r + 1) / 4, 1] },
                               features: (0..<(3 * regions)).map { _ in Float(n) + Float.random(in: 0..<0.5, using: &rng) })
        }
        try OSCARCorpus.write(directory: path, vocabulary: vocabulary, train: (0..<48).map(sample),
                              test: (48..<60).map(sample), featureSize: 3)
        return path
    }

    private func lines(_ path: String) throws -> [Substring] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
    }

    func testPretrainWritesMetricsAndCheckpointsResumesAndFeedsRetrieval() throws {
        try TestSupport.requireOpenCL()
        let data = try corpus(), out = directory("pretrain-run")
        let common = ["--data", data, "--batch-size", "16", "--log-every", "1", "--out", out]
        try PretrainCommand.parse(common + ["--epochs", "1", "--lr", "1e-3"]).run()
        for file in ["model.safetensors", "optimizer.safetensors", "progress.json", "metrics.csv", "metrics.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + file), file)
        }
        let model = try SafeTensors.read(path: out + "/model.safetensors")
        XCTAssertTrue(model.names.contains { $0.hasSuffix("encoder.layer.0.attention.self.query.weight") },
                      "BERT's names: \(model.names.prefix(5))")
        let first = try lines(out + "/metrics.csv")
        XCTAssertEqual(first.count, 2, "a header and one epoch")
        // Resume to 2 epochs: one more row, the first kept as it was.
        try PretrainCommand.parse(common + ["--epochs", "2", "--lr", "1e-3", "--resume", "--profile"]).run()
        let second = try lines(out + "/metrics.csv")
        XCTAssertEqual(second.count, 3)
        XCTAssertEqual(Array(second.prefix(2)), first)
        let progress = try String(contentsOfFile: out + "/progress.json", encoding: .utf8)
        XCTAssertTrue(progress.contains("oscar-toy"), progress)

        // Retrieval over the 12 test pairs reads the checkpoint back.
        let recall = try EvalRetrievalCommand.parse(["--data", data, "--checkpoint", out, "--batch-size", "40"]).evaluate()
        XCTAssertEqual(recall.count, 12)
        for r in recall.imageToText + recall.textToImage { XCTAssertTrue((0...1).contains(r), "\(recall)") }
        XCTAssertLessThanOrEqual(recall.imageToText[0], recall.imageToText[1])
        XCTAssertEqual(recall.chance, [1.0 / 12, 5.0 / 12, 10.0 / 12])
        let json = recall.report(json: true)
        XCTAssertTrue(json.hasPrefix("{\"count\": 12, \"imageToText\": ["), json)
        XCTAssertTrue(recall.report(json: false).contains("chance        8.3 / 41.7 / 83.3"), recall.report(json: false))

        // A checkpoint of another shape is named in the error.
        XCTAssertThrowsError(try EvalRetrievalCommand.parse(["--data", data, "--checkpoint", out, "--model", "oscar-tiny"])
            .evaluate()) { error in
            XCTAssertTrue("\(error)".contains("does not hold oscar-tiny"), "\(error)")
        }
    }

    func testDivergingLossStopsAndKeepsTheLastGoodCheckpoint() throws {
        try TestSupport.requireOpenCL()
        let data = try corpus(), out = directory("pretrain-nan")
        let common = ["--data", data, "--batch-size", "16", "--log-every", "1", "--out", out]
        try PretrainCommand.parse(common + ["--epochs", "1"]).run()
        let before = try Data(contentsOf: URL(fileURLWithPath: out + "/model.safetensors"))
        XCTAssertThrowsError(try PretrainCommand.parse(common + ["--epochs", "2", "--lr", "1e30", "--resume"]).run())
        let after = try Data(contentsOf: URL(fileURLWithPath: out + "/model.safetensors"))
        XCTAssertEqual(before, after, "the checkpoint of the last good epoch is untouched")
        XCTAssertEqual(try lines(out + "/metrics.csv").count, 2)
    }

    func testBadOptionsAndFilesAreNamed() throws {
        let data = try corpus()
        for (arguments, fragment) in [
            (["--data", data, "--model", "oscar-huge"], "unknown OSCAR model 'oscar-huge'"),
            (["--data", data, "--epochs", "0"], "--epochs"),
            (["--data", data, "--masking-probability", "1.5"], "--masking-probability must be between 0 and 1"),
            (["--data", data, "--warmup", "5", "--epochs", "2"], "--warmup"),
            (["--data", data, "--batch-size", "0"], "--batch-size"),
        ] {
            XCTAssertThrowsError(try PretrainCommand.parse(arguments), "\(arguments)") { error in
                let text = PretrainCommand.message(for: error)
                XCTAssertTrue(text.contains(fragment), "'\(fragment)' not in: \(text)")
            }
        }
        // Too large a subset or batch for the corpus, and a directory that is no corpus.
        XCTAssertThrowsError(try PretrainCommand.parse(["--data", data, "--train-subset", "49", "--out", directory("x")]).pretrain()) {
            XCTAssertTrue("\($0)".contains("--train-subset 49 is larger than the 48 training samples"), "\($0)")
        }
        XCTAssertThrowsError(try PretrainCommand.parse(["--data", data, "--batch-size", "64", "--out", directory("x")]).pretrain()) {
            XCTAssertTrue("\($0)".contains("--batch-size 64 is larger than the 48 training samples"), "\($0)")
        }
        let empty = directory("not-a-corpus")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        XCTAssertThrowsError(try PretrainCommand.parse(["--data", empty, "--out", directory("x")]).pretrain()) {
            XCTAssertTrue("\($0)".contains("\(empty): is not an OSCAR corpus: no vocab.txt"), "\($0)")
        }
        XCTAssertThrowsError(try EvalRetrievalCommand.parse(["--data", data, "--checkpoint", "/nonexistent/run", "--subset", "13"])
            .evaluate()) {
            XCTAssertTrue("\($0)".contains("--subset 13 is larger than the 12 test samples"), "\($0)")
        }
        XCTAssertThrowsError(try EvalRetrievalCommand.parse(["--data", data, "--checkpoint", "/nonexistent/run"]).evaluate()) {
            XCTAssertTrue("\($0)".contains("/nonexistent/run"), "\($0)")
        }
    }

    /// The documented pipeline, smaller: a LeNet-5 backbone, the Fashion-MNIST
    /// corpus built from it, OSCAR pre-trained on it, and retrieval over the
    /// held-out samples beating chance (loosely: R@10 above K / N in each
    /// direction and 1.5 times it on average; the full-size run in BENCHMARKS.md
    /// does better).
    func testFashionCorpusPretrainingBeatsChanceAtRetrieval() throws {
        try TestSupport.requireOpenCL()
        guard FileManager.default.fileExists(atPath: FashionMNIST.defaultDirectory) else {
            throw TestSupport.unavailable("Fashion-MNIST is absent: scripts/setup.sh installs dataset-fashion-mnist")
        }
        let backbone = directory("oscar-backbone"), corpus = directory("oscar-corpus"), run = directory("oscar-run")
        try TrainCommand.parse(["--model", "lenet5", "--dataset", "fashion-mnist", "--epochs", "1", "--test-subset", "1000",
                                "--lr", "0.05", "--batch-size", "128", "--log-every", "50",
                                "--out", backbone]).run()
        try OSCARCorpusCommand.parse(["--backbone", backbone, "--out", corpus, "--train-count", "6000",
                                      "--test-count", "100"]).run()
        try PretrainCommand.parse(["--data", corpus, "--epochs", "4", "--contrastive-only-epochs", "3", "--pollute", "captions", "--lr", "1e-3",
                                   "--warmup", "0.3", "--batch-size", "32", "--log-every", "20", "--out", run]).run()
        let recall = try EvalRetrievalCommand.parse(["--data", corpus, "--checkpoint", run]).evaluate()
        print(recall.report(json: false))
        XCTAssertEqual(recall.count, 100)
        // Each direction above chance, and the two together at least 1.5 times it: loose, since
        // another CPU's rounding moves these figures (seed 0 here: 29 % and 38 %; seed 1: 25 %
        // and 20 %); random scores over 2 × 100 queries reach 15 % on average about once in 100.
        XCTAssertGreaterThan(recall.imageToText[2], recall.chance[2], "image → text R@10")
        XCTAssertGreaterThan(recall.textToImage[2], recall.chance[2], "text → image R@10")
        XCTAssertGreaterThanOrEqual(recall.imageToText[2] + recall.textToImage[2], 3 * recall.chance[2],
                                    "R@10 \(recall.imageToText[2]) and \(recall.textToImage[2]) against chance \(recall.chance[2])")
    }
}
