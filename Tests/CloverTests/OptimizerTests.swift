import Clover
import CloverConformance
import XCTest

final class OptimizerTests: XCTestCase {
    func testFusedUpdatesMatchTheReference() throws {
        try assertConformance(ConformanceSuite.allCases().filter { $0.op == "sgd_update" || $0.op == "adamw_update" })
    }

    /// Hand-computed PyTorch semantics: SGD with momentum 0.9 and weight
    /// decay 0.1 on the first segment only, two steps.
    func testSGDMomentumMatchesHandComputedSteps() throws {
        for device in [Device.reference, try TestDevice.get()] {
            let segments = ParameterSegments(sizes: [1, 1], decays: [true, false])
            let p = try Tensor(shape: [2], values: [1, 1], on: device)
            let g = try Tensor(shape: [2], values: [0.5, 0.5], on: device)
            let b = try Tensor.zeros([2], on: device)
            let config = SGDConfiguration(learningRate: 0.1, momentum: 0.9, weightDecay: 0.1)
            try sgdStep(parameters: p, gradients: g, momentum: b, configuration: config, segments: segments)
            // d = 0.5 + 0.1·1 = 0.6 (decayed) / 0.5; b = d; p = 1 − 0.1·d
            XCTAssertEqual(try p.toArray()[0], 0.94, accuracy: 1e-6)
            XCTAssertEqual(try p.toArray()[1], 0.95, accuracy: 1e-6)
            try sgdStep(parameters: p, gradients: g, momentum: b, configuration: config, segments: segments)
            // d = 0.5 + 0.1·0.94 = 0.594; b = 0.9·0.6 + 0.594 = 1.134; p = 0.94 − 0.1134
            XCTAssertEqual(try p.toArray()[0], 0.8266, accuracy: 1e-6)
            // b = 0.9·0.5 + 0.5 = 0.95; p = 0.95 − 0.095
            XCTAssertEqual(try p.toArray()[1], 0.855, accuracy: 1e-6)
            XCTAssertEqual(try b.toArray()[1], 0.95, accuracy: 1e-6)
        }
    }

    /// AdamW's first step moves every parameter by about lr (bias
    /// correction makes m̂/√v̂ = ±1), after the decoupled decay.
    func testAdamWFirstStepIsBiasCorrected() throws {
        for device in [Device.reference, try TestDevice.get()] {
            let segments = ParameterSegments(count: 3)
            let p = try Tensor(shape: [3], values: [1, -2, 3], on: device)
            let g = try Tensor(shape: [3], values: [0.3, -4, 1e-3], on: device)
            let m = try Tensor.zeros([3], on: device), v = try Tensor.zeros([3], on: device)
            let config = AdamWConfiguration(learningRate: 0.01, epsilon: 0, weightDecay: 0.1)
            try adamWStep(parameters: p, gradients: g, m: m, v: v, step: 1, configuration: config, segments: segments)
            let expected: [Float] = [1 * 0.999 - 0.01, -2 * 0.999 + 0.01, 3 * 0.999 - 0.01]
            for (a, e) in zip(try p.toArray(), expected) { XCTAssertEqual(a, e, accuracy: 1e-5) }
        }
    }

    /// Many tensors, one arena, one launch: every step is a single kernel.
    func testOneLaunchUpdatesEveryTensor() throws {
        let device = try TestDevice.get()
        let context = try XCTUnwrap(device.openCL)
        let sizes = [64, 1, 27, 300, 5]
        let segments = ParameterSegments(sizes: sizes)
        let n = segments.totalCount
        let p = try Tensor.full([n], value: 1, on: device), g = try Tensor.full([n], value: 1, on: device)
        let b = try Tensor.zeros([n], on: device)
        let before = context.launchCounts["optimizer/sgd_update"] ?? 0
        try sgdStep(parameters: p, gradients: g, momentum: b,
                    configuration: SGDConfiguration(learningRate: 0.5, momentum: 0.9), segments: segments)
        XCTAssertEqual((context.launchCounts["optimizer/sgd_update"] ?? 0) - before, 1)
        XCTAssertEqual(Set(try p.toArray()), [0.5])
    }

    func testBadSegmentsAndMissingBufferAreErrors() throws {
        let device = try TestDevice.get()
        let p = try Tensor.zeros([10], on: device), g = try Tensor.zeros([10], on: device)
        XCTAssertThrowsError(try sgdStep(parameters: p, gradients: g, momentum: nil,
                                         configuration: SGDConfiguration(learningRate: 0.1, momentum: 0.9),
                                         segments: ParameterSegments(count: 10))) { error in
            XCTAssertTrue("\(error)".contains("sgd_update"), "\(error)")
        }
        XCTAssertThrowsError(try sgdStep(parameters: p, gradients: g, momentum: nil,
                                         configuration: SGDConfiguration(learningRate: 0.1),
                                         segments: ParameterSegments(sizes: [4, 5]))) { error in
            XCTAssertTrue("\(error)".contains("do not partition 10"), "\(error)")
        }
    }
}
