import Clover
import CloverConformance
import CloverRuntime
import XCTest

/// Batch norm, layer norm and the reductions: their conformance sweeps, bad
/// input, and hand-computed values for the running statistics and edge cases.
final class NormalizationTests: XCTestCase {
    // MARK: Conformance, one op group per test

    func testBatchNormTraining() throws {
        try assertConformance(ConformanceSuite.allCases().filter { $0.op == "batchnorm_train" })
    }

    func testBatchNormInference() throws {
        try assertConformance(ConformanceSuite.allCases().filter { $0.op == "batchnorm_inference" })
    }

    func testBatchNormRunningUpdate() throws {
        try assertConformance(ConformanceSuite.allCases().filter { $0.op == "batchnorm_running_update" })
    }

    func testLayerNorm() throws {
        try assertConformance(ConformanceSuite.allCases().filter { $0.op == "layernorm" })
    }

    func testSumAndMean() throws {
        try assertConformance(ConformanceSuite.allCases().filter { ["sum", "mean"].contains($0.op) })
    }

    func testMax() throws {
        try assertConformance(ConformanceSuite.allCases().filter { $0.op == "max" })
    }

    func testBroadcast() throws {
        try assertConformance(ConformanceSuite.allCases().filter { $0.op == "broadcast" })
    }

    // MARK: Bad input

    private func devices() throws -> [Device] {
        [.reference, try TestDevice.get()]
    }

    private func assertError(_ body: @autoclosure () throws -> Any, contains fragments: [String],
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertTrue(error is CloverError, "\(error) is not a CloverError", file: file, line: line)
            let text = "\(error)"
            for fragment in fragments {
                XCTAssertTrue(text.contains(fragment), "'\(text)' lacks '\(fragment)'", file: file, line: line)
            }
        }
    }

    func testWrongParameterLengthsNameOpAndShapes() throws {
        for device in try devices() {
            let x = try Tensor.zeros([2, 16, 4, 4], on: device)
            let c16 = try Tensor.zeros([16], on: device)
            let c15 = try Tensor.zeros([15], on: device)
            assertError(try batchNorm(x, gamma: c15, beta: c16),
                        contains: ["batchnorm_train", "gamma", "2x16x4x4", "15"])
            assertError(try batchNorm(x, gamma: c16, beta: c15), contains: ["batchnorm_train", "beta", "15"])
            assertError(try batchNorm(try Tensor.zeros([16], on: device), gamma: c16, beta: c16),
                        contains: ["batchnorm_train", "rank 2"])
            assertError(try batchNormInference(x, gamma: c16, beta: c16, runningMean: c16, runningVariance: c15),
                        contains: ["batchnorm_inference", "running_var", "2x16x4x4", "15"])
            assertError(try updateRunningStatistics(runningMean: c16, runningVariance: c16, batchMean: c15,
                                                    batchInvstd: c16, count: 32),
                        contains: ["batchnorm_running_update", "mean", "15"])
            assertError(try updateRunningStatistics(runningMean: c16, runningVariance: c16, batchMean: c16,
                                                    batchInvstd: c16, count: 0),
                        contains: ["batchnorm_running_update", "count 0"])
            let rows = try Tensor.zeros([3, 16], on: device)
            assertError(try layerNorm(rows, gamma: c15, beta: c16), contains: ["layernorm", "gamma", "3x16", "15"])
        }
    }

    func testAxesOutOfRangeAreRejected() throws {
        for device in try devices() {
            let x = try Tensor.zeros([2, 3], on: device)
            assertError(try sum(x, axes: [2]), contains: ["sum", "axis 2", "2x3"])
            assertError(try mean(x, axes: [-3]), contains: ["mean", "axis -3", "2x3"])
            assertError(try sum(x, axes: [1, -1]), contains: ["sum", "repeated"])
            assertError(try sum(x, axes: []), contains: ["sum", "no axes"])
            assertError(try reduceMax(x, axis: 5), contains: ["max", "axis 5", "2x3"])
            assertError(try broadcast(try Tensor.zeros([3], on: device), to: [2, 3], axes: [3]),
                        contains: ["broadcast", "axis 3"])
            assertError(try broadcast(try Tensor.zeros([2], on: device), to: [2, 3], axes: [0]),
                        contains: ["broadcast", "3"])
        }
    }

    // MARK: Hand-computed values

    /// PyTorch's update: running = (1 − m)·running + m·batch, with the
    /// unbiased batch variance var·n/(n − 1).
    func testRunningStatisticsMatchHandComputedValues() throws {
        let epsilon: Float = 1e-5
        for device in try devices() {
            // Batch variances 0.25 and 4 over n = 4 elements: unbiased 1/3 and 16/3.
            let invstd = [0.25, 4.0].map { Float(1 / (Double($0) + Double(epsilon)).squareRoot()) }
            let out = try updateRunningStatistics(
                runningMean: try Tensor(shape: [2], values: [0.5, -1], on: device),
                runningVariance: try Tensor(shape: [2], values: [1, 2], on: device),
                batchMean: try Tensor(shape: [2], values: [2, 3], on: device),
                batchInvstd: try Tensor(shape: [2], values: invstd, on: device),
                count: 4, momentum: 0.1, epsilon: epsilon)
            let m = try out.mean.toArray(), v = try out.variance.toArray()
            XCTAssertEqual(m[0], 0.65, accuracy: 1e-6, "\(device)")   // 0.9·0.5 + 0.1·2
            XCTAssertEqual(m[1], -0.6, accuracy: 1e-6, "\(device)")   // 0.9·(−1) + 0.1·3
            XCTAssertEqual(v[0], 0.9 + 0.1 / 3, accuracy: 1e-5, "\(device)")     // 0.9·1 + 0.1·(0.25·4/3)
            XCTAssertEqual(v[1], 1.8 + 1.6 / 3, accuracy: 1e-5, "\(device)")     // 0.9·2 + 0.1·(4·4/3)

            // One element per channel: no unbiased variance exists; the
            // biased one (0) is used instead of a division by zero.
            let single = try updateRunningStatistics(
                runningMean: try Tensor(shape: [1], values: [1], on: device),
                runningVariance: try Tensor(shape: [1], values: [2], on: device),
                batchMean: try Tensor(shape: [1], values: [5], on: device),
                batchInvstd: try Tensor(shape: [1], values: [Float(1 / Double(epsilon).squareRoot())], on: device),
                count: 1, momentum: 0.1, epsilon: epsilon)
            XCTAssertEqual(try single.mean.toArray()[0], 1.4, accuracy: 1e-6)
            XCTAssertEqual(try single.variance.toArray()[0], 1.8, accuracy: 1e-5)
        }
    }

    /// A training step's statistics feed the update end to end: channel
    /// values 1, 3, 5, 7 have mean 4, biased variance 5, unbiased 20/3.
    func testBatchStatisticsFeedTheRunningUpdate() throws {
        for device in try devices() {
            let x = try Tensor(shape: [2, 1, 2, 1], values: [1, 3, 5, 7], on: device)
            let one = try Tensor(shape: [1], values: [1], on: device)
            let zero = try Tensor(shape: [1], values: [0], on: device)
            let bn = try batchNorm(x, gamma: one, beta: zero)
            XCTAssertEqual(try bn.mean.toArray()[0], 4, accuracy: 1e-6)
            XCTAssertEqual(try bn.invstd.toArray()[0], Float(1 / (5 + 1e-5).squareRoot()), accuracy: 1e-6)
            let y = try bn.y.toArray()
            for (a, b) in zip(y, [-3, -1, 1, 3].map { Float(Double($0) / (5 + 1e-5).squareRoot()) }) {
                XCTAssertEqual(a, b, accuracy: 1e-5)
            }
            let r = try updateRunningStatistics(runningMean: zero, runningVariance: one, batchMean: bn.mean,
                                                batchInvstd: bn.invstd, count: 4)
            XCTAssertEqual(try r.mean.toArray()[0], 0.4, accuracy: 1e-6)
            XCTAssertEqual(try r.variance.toArray()[0], Float(0.9 + 0.1 * 20.0 / 3), accuracy: 1e-5)
        }
    }

    /// N·H·W = 1: variance 0, y = beta exactly, and a zero, finite gradient.
    func testSingleElementChannelsStayFinite() throws {
        for device in try devices() {
            let x = try Tensor(shape: [1, 3, 1, 1], values: [5, -2, 1e4], on: device)
            let gamma = try Tensor(shape: [3], values: [1.5, -1, 2], on: device)
            let beta = try Tensor(shape: [3], values: [0.25, -0.5, 3], on: device)
            let bn = try batchNorm(x, gamma: gamma, beta: beta)
            XCTAssertEqual(try bn.y.toArray(), [0.25, -0.5, 3], "\(device)")
            XCTAssertEqual(try bn.mean.toArray(), [5, -2, 1e4], "\(device)")
            XCTAssertTrue(try bn.invstd.toArray().allSatisfy(\.isFinite))
            let grads = try BatchNormTraining().vjp(
                inputs: [x, gamma, beta], outputs: [bn.y, bn.mean, bn.invstd],
                cotangents: [try Tensor(shape: [1, 3, 1, 1], values: [1, 2, 3], on: device),
                             try Tensor.zeros([3], on: device), try Tensor.zeros([3], on: device)])
            XCTAssertEqual(try grads[0]!.toArray(), [0, 0, 0], "\(device)")
            XCTAssertEqual(try grads[1]!.toArray(), [0, 0, 0], "\(device)")
            XCTAssertEqual(try grads[2]!.toArray(), [1, 2, 3], "\(device)")
            let ln = try layerNorm(try Tensor(shape: [2, 1], values: [7, -7], on: device),
                                   gamma: try Tensor(shape: [1], values: [2], on: device),
                                   beta: try Tensor(shape: [1], values: [0.5], on: device))
            XCTAssertEqual(try ln.y.toArray(), [0.5, 0.5], "\(device)")
        }
    }

    /// Ties go to the first index; NaN propagates with its first index;
    /// reducing every axis gives a scalar.
    func testMaxTiesNaNAndScalarShapes() throws {
        for device in try devices() {
            let x = try Tensor(shape: [3, 3], values: [2, 5, 5, 1, .nan, 3, -1, -1, -1], on: device)
            let (values, indices) = try reduceMax(x, axis: 1)
            let v = try values.toArray()
            XCTAssertEqual(v[0], 5)
            XCTAssertTrue(v[1].isNaN, "\(device)")
            XCTAssertEqual(v[2], -1)
            XCTAssertEqual(try indices.toArray(), [1, 1, 0], "\(device)")
            let all = try sum(try Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6], on: device), axes: [0, 1])
            XCTAssertEqual(all.shape, [])
            XCTAssertEqual(try all.toArray(), [21])
            let m = try mean(try Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6], on: device), axes: [-1])
            XCTAssertEqual(m.shape, [2])
            XCTAssertEqual(try m.toArray(), [2, 5])
        }
    }
}
