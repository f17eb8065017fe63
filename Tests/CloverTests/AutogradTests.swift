import Clover
import CloverConformance
import XCTest

/// Autograd over composites of ops: device gradients against the CPU
/// reference's, the reference's against finite differences, accumulation
/// and no-grad mode.
final class AutogradTests: XCTestCase {
    /// A two-layer perceptron with a cross-entropy loss, built from
    /// matmul, add, relu, reshape and softmax cross-entropy.
    private func mlpLoss(_ x: Tensor, _ w1: Tensor, _ b1: Tensor, _ w2: Tensor, labels: ClassLabels) throws -> Tensor {
        let h = try relu(add(matmul(x, w1, transposeB: true), b1))
        let logits = try matmul(h, w2, transposeB: true).reshaped([x.shape[0], w2.shape[0]])
        return try softmaxCrossEntropy(logits, labels: labels)
    }

    private func values(_ count: Int, seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        return (0..<count).map { _ in Float.random(in: -1...1, using: &rng) }
    }

    func testCompositeGradientsMatchAcrossDevicesAndFiniteDifferences() throws {
        let gpu = try TestDevice.get()
        let labels = ClassLabels([2, 0, 1])
        let xv = values(3 * 5, seed: 1), w1v = values(4 * 5, seed: 2), b1v = values(3 * 4, seed: 3), w2v = values(3 * 4, seed: 4)
        var grads: [[[Float]]] = []
        var lossValues: [Float] = []
        for device in [Device.reference, gpu] {
            let x = try Tensor(shape: [3, 5], values: xv, on: device)
            let w1 = try Tensor(shape: [4, 5], values: w1v, on: device)
            let b1 = try Tensor(shape: [3, 4], values: b1v, on: device)
            let w2 = try Tensor(shape: [3, 4], values: w2v, on: device)
            for p in [w1, b1, w2] { p.requiresGrad = true }
            let loss = try mlpLoss(x, w1, b1, w2, labels: labels)
            XCTAssertTrue(loss.hasGradientHistory)
            try loss.backward()
            XCTAssertNil(x.grad, "inputs without requiresGrad get no gradient")
            grads.append(try [w1, b1, w2].map { try XCTUnwrap($0.grad).toArray() })
            lossValues.append(try loss.toArray()[0])
        }
        XCTAssertEqual(lossValues[0], lossValues[1], accuracy: 1e-5)
        for (r, d) in zip(grads[0], grads[1]) {
            for (a, b) in zip(r, d) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        }
        // Finite differences of the reference loss with respect to w1.
        let h = 1e-2
        for j in [0, 7, 19] {
            var plus = w1v, minus = w1v
            plus[j] += Float(h)
            minus[j] -= Float(h)
            let f = { (w: [Float]) throws -> Double in
                try withoutGradients {
                    Double(try self.mlpLoss(Tensor(shape: [3, 5], values: xv), Tensor(shape: [4, 5], values: w),
                                            Tensor(shape: [3, 4], values: b1v), Tensor(shape: [3, 4], values: w2v),
                                            labels: labels).toArray()[0])
                }
            }
            let numeric = (try f(plus) - f(minus)) / (Double(plus[j]) - Double(minus[j]))
            XCTAssertEqual(Double(grads[0][0][j]), numeric, accuracy: 2e-3)
        }
    }

    func testGradientsAccumulateUntilZeroed() throws {
        let device = try TestDevice.get()
        let w = try Tensor(shape: [3], values: [1, 2, 3], on: device)
        w.requiresGrad = true
        let x = try Tensor(shape: [3], values: [4, 5, 6], on: device)
        try mul(w, x).backward()
        try mul(w, x).backward()
        XCTAssertEqual(try w.grad?.toArray(), [8, 10, 12])
        w.zeroGrad()
        // w used twice in one expression: both paths add up (d(w·w)/dw = 2w).
        try mul(w, w).backward()
        XCTAssertEqual(try w.grad?.toArray(), [2, 4, 6])
    }

    func testNoGradRecordsNothing() throws {
        let device = try TestDevice.get()
        let w = try Tensor(shape: [2], values: [1, 2], on: device)
        w.requiresGrad = true
        let y = try withoutGradients { try relu(w) }
        XCTAssertFalse(y.hasGradientHistory)
        XCTAssertTrue(try relu(w).hasGradientHistory)
        XCTAssertTrue(GradientRecording.isEnabled)
    }

    func testMultiOutputNodesGetZeroCotangentsForUnusedOutputs() throws {
        for device in [Device.reference, try TestDevice.get()] {
            let pre = try Tensor.zeros([1, 4, 1, 1], on: device)
            pre.requiresGrad = true
            let c = try Tensor(shape: [1, 1, 1, 1], values: [2], on: device)
            let out = try apply(LSTMCell(), [pre, c])
            try out[1].backward()  // only c' is used: dc'/dp = [g·σ'(i), c·σ'(f), 0, i·(1−g²)]
            let g = try XCTUnwrap(pre.grad).toArray()
            XCTAssertEqual(g[0], 0, accuracy: 1e-7)
            XCTAssertEqual(g[1], 0.5, accuracy: 1e-6)
            XCTAssertEqual(g[2], 0, accuracy: 1e-7)
            XCTAssertEqual(g[3], 0.5, accuracy: 1e-6)
        }
    }
}
