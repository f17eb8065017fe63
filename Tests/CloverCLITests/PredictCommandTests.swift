@testable import clover
import CloverNN
import CloverRuntime
import Foundation
import CloverTestSupport
import XCTest

/// `clover predict`: weights written with `--save-weights` load back
/// through `--checkpoint` and give the same logits, on OpenCL and on the CPU
/// reference; a different initialisation gives different ones.
final class PredictCommandTests: XCTestCase {
    private func tempDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "clover-predict-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    private func logits(_ path: String) throws -> [Float] {
        let file = try SafeTensors.read(path: path)
        XCTAssertEqual(file["logits"]?.shape, [2, 10])
        return try XCTUnwrap(file["logits"]).values
    }

    private func maxRelativeError(_ a: [Float], _ b: [Float]) -> Float {
        let scale = b.map(abs).max() ?? 1
        return zip(a, b).map { abs($0 - $1) }.max()! / max(scale, 1e-30)
    }

    func testSavedWeightsReproduceTheLogits() throws {
        try TestSupport.requireOpenCL()
        let dir = try tempDirectory()
        var input = SafeTensors()
        var rng = SystemRandomNumberGenerator()
        input.append("input", shape: [2, 1, 12, 12], values: (0..<288).map { _ in Float.random(in: -1...1, using: &rng) })
        try input.write(path: dir + "/input.safetensors")
        let common = ["--model", "cifar-resnet20", "--input", dir + "/input.safetensors"]

        try PredictCommand.parse(common + ["--seed", "3", "--save-weights", dir + "/w.safetensors",
                                           "--output", dir + "/a.safetensors"]).run()
        try PredictCommand.parse(common + ["--seed", "9", "--checkpoint", dir + "/w.safetensors",
                                           "--output", dir + "/b.safetensors"]).run()
        try PredictCommand.parse(common + ["--seed", "9", "--output", dir + "/c.safetensors"]).run()
        try PredictCommand.parse(common + ["--checkpoint", dir + "/w.safetensors", "--device", "cpu-reference",
                                           "--output", dir + "/r.safetensors"]).run()
        let a = try logits(dir + "/a.safetensors"), b = try logits(dir + "/b.safetensors")
        let c = try logits(dir + "/c.safetensors"), r = try logits(dir + "/r.safetensors")
        XCTAssertLessThanOrEqual(maxRelativeError(b, a), 1e-6, "loaded weights give the saved model's logits")
        XCTAssertLessThanOrEqual(maxRelativeError(a, r), 1e-4, "OpenCL logits match the CPU reference")
        XCTAssertGreaterThan(maxRelativeError(c, a), 1e-3, "another seed gives other logits")
        let weights = try SafeTensors.read(path: dir + "/w.safetensors")
        XCTAssertNotNil(weights["layer3.2.bn2.running_var"])
    }

    func testInputMustBeABatchOfImages() throws {
        let dir = try tempDirectory()
        var input = SafeTensors()
        input.append("a", shape: [2, 12, 12], values: [Float](repeating: 0, count: 288))
        input.append("b", shape: [1], values: [0])
        try input.write(path: dir + "/two.safetensors")
        XCTAssertThrowsError(try PredictCommand.parse(["--model", "cifar-resnet20", "--input", dir + "/two.safetensors",
                                                        "--output", dir + "/o.safetensors"]).run())
        var flat = SafeTensors()
        flat.append("input", shape: [2, 12, 12], values: [Float](repeating: 0, count: 288))
        try flat.write(path: dir + "/flat.safetensors")
        XCTAssertThrowsError(try PredictCommand.parse(["--model", "cifar-resnet20", "--input", dir + "/flat.safetensors",
                                                        "--output", dir + "/o.safetensors"]).run())
    }
}
