import Clover
import CloverConformance
import XCTest

final class RegulatorTests: XCTestCase {
    func testRegulatorCellMatchesTheReference() throws {
        try assertConformance(ConformanceSuite.allCases().filter { $0.op == "regulator_cell" })
    }

    /// (2 + 1 + 9 + 1)·G·N, plus the GRU candidate's (2 + 1 + 9 + 1)·N.
    func testParameterCountsAreExact() {
        XCTAssertEqual(RegulatorWeights.parameterCount(.convRNN, channels: 16), 13 * 16)
        XCTAssertEqual(RegulatorWeights.parameterCount(.convLSTM, channels: 16), 13 * 64)
        XCTAssertEqual(RegulatorWeights.parameterCount(.convGRU, channels: 32), 13 * 64 + 13 * 32)
    }

    /// H carried over two blocks: the loss after block 2 has a gradient with
    /// respect to block 1's input and weights, equal on both devices.
    func testGradientFlowsThroughHAcrossTwoBlocks() throws {
        let gpu = try TestDevice.get()
        var results: [[Float]] = []
        for device in [Device.reference, gpu] {
            var rng = SplitMix64(seed: 9)
            let shape = [2, 4, 5, 5]
            func t(_ s: [Int], _ scale: Float = 0.5) throws -> Tensor {
                try Tensor(shape: s, values: rng.uniformArray(count: s.reduce(1, *), bound: scale), on: device)
            }
            let ws = try RegulatorWeights.shapes(.convLSTM, channels: 4).map { try t($0) }
            for w in ws { w.requiresGrad = true }
            let weights = RegulatorWeights(pointwise: ws[0], pointwiseBias: ws[1], depthwise: ws[2], depthwiseBias: ws[3])
            let x1 = try t(shape), x2 = try t(shape)
            x1.requiresGrad = true
            let h0 = try Tensor.zeros(shape, on: device), c0 = try Tensor.zeros(shape, on: device)
            let s1 = try regulatorCell(.convLSTM, x: x1, h: h0, c: c0, weights: weights)
            let s2 = try regulatorCell(.convLSTM, x: x2, h: s1.h, c: s1.c, weights: weights)
            let loss = try sum(mul(s2.h, s2.h), axes: [0, 1, 2, 3])
            try loss.backward()
            let gx1 = try XCTUnwrap(x1.grad).toArray()
            XCTAssertGreaterThan(gx1.map { abs($0) }.max() ?? 0, 0, "block 2's loss reaches block 1's input through H and C")
            results.append(gx1 + (try XCTUnwrap(ws[0].grad).toArray()))
        }
        for (a, b) in zip(results[0], results[1]) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }
}
