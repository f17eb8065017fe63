@testable import Clover
import CloverConformance
import CloverRuntime
import XCTest

/// Autograd runs only the gradients a step needs, and the pointwise
/// convolution's launches per pass do not grow with the batch.
final class GradientNeedsTests: XCTestCase {
    private func randomTensor(_ shape: [Int], on device: Device, seed: Int) throws -> Tensor {
        let count = shape.reduce(1, *)
        let values = (0..<count).map { i in Float(((i * 7919 + seed * 104_729) % 2001) - 1000) / 1000 }
        return try Tensor(shape: shape, values: values, on: device)
    }

    /// Launches per kernel name (without its family) made by `body`.
    private func launches(on context: OpenCLContext, _ body: () throws -> Void) rethrows -> [String: Int] {
        let before = context.launchCounts
        try body()
        var delta: [String: Int] = [:]
        for (name, count) in context.launchCounts where count != before[name] ?? 0 {
            delta[String(name.split(separator: "/").last ?? "")] = count - (before[name] ?? 0)
        }
        return delta
    }

    /// Launches of a dense convolution's data-gradient kernel, whichever
    /// algorithm the device chose: col2im (im2col + GEMM) or implicit GEMM.
    private func dataGradientLaunches(_ counts: [String: Int]) -> Int {
        counts.filter { $0.key == "col2im" || $0.key.hasPrefix("convgemm_backward_data") }.values.reduce(0, +)
    }

    private func gemmCalls(_ counts: [String: Int]) -> Int {
        (counts["CLBlastSgemm"] ?? 0) + (counts["CLBlastSgemmStridedBatched"] ?? 0)
    }

    /// The first convolution's input is data: its backward runs the weight
    /// and bias gradients only, never the data-gradient kernel (col2im or the
    /// implicit GEMM's) nor the data GEMM (pointwise path); a convolution
    /// whose input needs a gradient does.
    func testFirstConvolutionSkipsItsDataGradient() throws {
        let device = try TestDevice.get()
        let context = try XCTUnwrap(device.openCL)
        let x = try randomTensor([2, 3, 9, 7], on: device, seed: 1)
        let w = try randomTensor([4, 3, 3, 3], on: device, seed: 2)
        let b = try randomTensor([4], on: device, seed: 3)
        w.requiresGrad = true
        b.requiresGrad = true
        let y = try conv2d(x, w, bias: b, padding: 1)
        let skipped = try launches(on: context) { try y.backward() }
        XCTAssertEqual(dataGradientLaunches(skipped), 0, "the data gradient of a convolution on data ran: \(skipped)")
        XCTAssertEqual(skipped["conv_bias_backward"], 1, "\(skipped)")
        XCTAssertNotNil(w.grad)
        XCTAssertNotNil(b.grad)

        // The same convolution on an input that needs a gradient runs col2im.
        let x2 = try randomTensor([2, 3, 9, 7], on: device, seed: 4)
        x2.requiresGrad = true
        let y2 = try conv2d(x2, w, bias: b, padding: 1)
        let full = try launches(on: context) { try y2.backward() }
        XCTAssertEqual(dataGradientLaunches(full), 1, "\(full)")
        XCTAssertNotNil(x2.grad)

        // 1x1: only the weight gradient runs — one GEMM on the pointwise path (GPUs, and CPU
        // planes under 4 pixels), the vector kernel on CPUs — and no data gradient.
        let w1 = try randomTensor([6, 3, 1, 1], on: device, seed: 5)
        w1.requiresGrad = true
        for input in [x, try randomTensor([2, 3, 1, 1], on: device, seed: 6)] {
            let y1 = try conv2d(input, w1)
            let pointwise = try launches(on: context) { try y1.backward() }
            XCTAssertEqual(dataGradientLaunches(pointwise), 0, "\(pointwise)")
            XCTAssertEqual(gemmCalls(pointwise) + (pointwise["convgemm_backward_weight_vector"] ?? 0), 1, "\(pointwise)")
            XCTAssertNotNil(w1.grad)
        }
    }

    /// A linear layer on data and a loss against labels run no dx GEMM.
    func testLinearOnDataSkipsItsInputGradient() throws {
        let device = try TestDevice.get()
        let context = try XCTUnwrap(device.openCL)
        let x = try randomTensor([5, 8], on: device, seed: 6)
        let w = try randomTensor([3, 8], on: device, seed: 7)
        w.requiresGrad = true
        let logits = try apply1(LinearMap(), [x, w])
        let loss = try softmaxCrossEntropy(logits, labels: ClassLabels([0, 1, 2, 1, 0]))
        let counts = try launches(on: context) { try loss.backward() }
        XCTAssertEqual(gemmCalls(counts), 1, "only dW: \(counts)")
        XCTAssertNotNil(w.grad)
    }

    /// Batch norm straight on data runs no dx kernel, and its dgamma and
    /// dbeta equal those of the full gradient.
    func testBatchNormOnDataSkipsItsInputGradient() throws {
        let device = try TestDevice.get()
        let context = try XCTUnwrap(device.openCL)
        let x = try randomTensor([3, 4, 5, 2], on: device, seed: 11)
        let gamma = try randomTensor([4], on: device, seed: 12)
        let beta = try randomTensor([4], on: device, seed: 13)
        gamma.requiresGrad = true
        beta.requiresGrad = true
        let y = try apply(BatchNormTraining(), [x, gamma, beta])[0]
        let counts = try launches(on: context) { try y.backward() }
        XCTAssertNil(counts["bn_backward_dx"], "\(counts)")
        let dy = try Tensor.full(x.shape, value: 1, on: device)
        let stats = try withoutGradients { try apply(BatchNormTraining(), [x, gamma, beta]) }
        let full = try apply(BatchNormBackward(), [dy, x, gamma, stats[1], stats[2]])
        for (got, want) in [(gamma.grad, full[1]), (beta.grad, full[2])] {
            let g = try XCTUnwrap(got).toArray(), w = try want.toArray()
            for (u, v) in zip(g, w) { XCTAssertEqual(u, v, accuracy: 1e-4 * max(1, abs(v))) }
        }
    }

    /// Forward, data and weight gradient of a 1x1 convolution make the same
    /// launches at batch 2 and batch 6, on every pointwise route.
    func testPointwiseLaunchesDoNotDependOnBatch() throws {
        let device = try TestDevice.get()
        let context = try XCTUnwrap(device.openCL)
        // [C, H, W], O, groups: ResNet-like, thick groups, squeeze-and-excitation.
        let shapes: [([Int], Int, Int)] = [([16, 5, 5], 24, 1), ([40, 3, 4], 36, 2), ([32, 1, 1], 8, 1)]
        for route in [nil, true, false] as [Bool?] {
            context.executionOptions.pointwiseSampleBatch = route
            defer { context.executionOptions.pointwiseSampleBatch = nil }
            for (chw, o, groups) in shapes {
                var totals: [Int] = []
                for batch in [2, 6] {
                    let x = try randomTensor([batch] + chw, on: device, seed: batch)
                    let w = try randomTensor([o, chw[0] / groups, 1, 1], on: device, seed: 9)
                    x.requiresGrad = true
                    w.requiresGrad = true
                    let counts = try launches(on: context) {
                        try conv2d(x, w, groups: groups).backward()
                    }
                    totals.append(counts.values.reduce(0, +))
                }
                XCTAssertEqual(totals[0], totals[1], "launches at batch 2 and 6 for \(chw) -> \(o) groups \(groups)")
            }
        }
    }

    /// Both groups-1 routes (one GEMM strided-batched over the samples, and
    /// the wide relayout) match the reference on the sweep's pointwise cases.
    func testPointwiseRoutesMatchTheReference() throws {
        let device = try TestDevice.get()
        let cases = ConformanceSuite.allCases().filter {
            guard $0.op == "conv2d", let conv = $0.primitive as? Convolution2D else { return false }
            return (try? conv.parameters.algorithm(input: $0.inputShapes[0], weight: $0.inputShapes[1])) == .pointwiseGEMM
        }
        XCTAssertGreaterThan(cases.count, 5)
        let runner = ConformanceRunner(device: device)
        let context = try XCTUnwrap(device.openCL)
        for route in [true, false] {
            context.executionOptions.pointwiseSampleBatch = route
            defer { context.executionOptions.pointwiseSampleBatch = nil }
            for c in cases {
                let r = runner.run(c)
                XCTAssertTrue(r.passed, "route \(route ? "batched" : "relayout") \(r.label): \(r.message ?? "")")
            }
        }
    }
}
