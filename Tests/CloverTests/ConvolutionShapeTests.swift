import Clover
import CloverConformance
import CloverRuntime
import XCTest

/// The conv2d shape rule: bad input throws a ``CloverError`` naming the op,
/// good input gives PyTorch's output sizes. Runs on the CPU reference (no
/// OpenCL device needed), except the pooled-garbage check.
final class ConvolutionShapeTests: XCTestCase {
    /// Asserts that `body` throws a CloverError whose description names conv2d.
    private func assertConvError(_ what: String, file: StaticString = #filePath, line: UInt = #line,
                                 _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("\(what): no error thrown", file: file, line: line)
        } catch let error as CloverError {
            XCTAssertTrue("\(error)".hasPrefix("conv2d"), "\(what): \(error)", file: file, line: line)
        } catch {
            XCTFail("\(what): \(error) is not a CloverError", file: file, line: line)
        }
    }

    private func tensor(_ shape: [Int]) throws -> Tensor { try Tensor.zeros(shape) }

    func testChannelGroupMismatchThrows() throws {
        // Weight expects 2 input channels, input has 3.
        assertConvError("weight channels") { _ = try conv2d(try tensor([1, 3, 5, 5]), try tensor([4, 2, 3, 3])) }
        // 3 channels are not divisible into 2 groups.
        assertConvError("channels % groups") {
            _ = try conv2d(try tensor([1, 3, 5, 5]), try tensor([4, 1, 3, 3]), groups: 2)
        }
        // 3 output channels are not divisible into 2 groups.
        assertConvError("outputs % groups") {
            _ = try conv2d(try tensor([1, 4, 5, 5]), try tensor([3, 2, 3, 3]), groups: 2)
        }
        assertConvError("groups 0") { _ = try conv2d(try tensor([1, 4, 5, 5]), try tensor([4, 4, 3, 3]), groups: 0) }
        // Bias of the wrong length.
        assertConvError("bias length") {
            _ = try conv2d(try tensor([1, 3, 5, 5]), try tensor([4, 3, 3, 3]), bias: try tensor([3]))
        }
    }

    func testWrongRankThrows() throws {
        assertConvError("weight rank 3") { _ = try conv2d(try tensor([1, 3, 5, 5]), try tensor([4, 3, 3])) }
        assertConvError("weight rank 5") { _ = try conv2d(try tensor([1, 3, 5, 5]), try tensor([4, 3, 3, 3, 1])) }
        assertConvError("input rank 3") { _ = try conv2d(try tensor([3, 5, 5]), try tensor([4, 3, 3, 3])) }
    }

    func testKernelLargerThanPaddedInputThrows() throws {
        assertConvError("5x5 on 3x3") { _ = try conv2d(try tensor([1, 1, 3, 3]), try tensor([1, 1, 5, 5])) }
        // Padding 1 makes it 5x5: fits exactly.
        XCTAssertEqual(try conv2d(try tensor([1, 1, 3, 3]), try tensor([1, 1, 5, 5]), padding: 1).shape, [1, 1, 1, 1])
        // Dilation 2 spreads a 3x3 kernel over 5x5.
        assertConvError("dilated 3x3 on 4x4") {
            _ = try conv2d(try tensor([1, 1, 4, 4]), try tensor([1, 1, 3, 3]), dilation: 2)
        }
        // Only one axis too small.
        assertConvError("7 wide on 5 wide") {
            _ = try conv2d(try tensor([1, 1, 9, 5]), try tensor([1, 1, 3, 7]))
        }
    }

    func testInvalidParametersThrow() throws {
        assertConvError("stride 0") { _ = try conv2d(try tensor([1, 3, 5, 5]), try tensor([4, 3, 3, 3]), stride: 0) }
        assertConvError("stride (1, 0)") {
            _ = try conv2d(try tensor([1, 3, 5, 5]), try tensor([4, 3, 3, 3]),
                           parameters: Conv2DParameters(stride: (1, 0)))
        }
        assertConvError("dilation 0") {
            _ = try conv2d(try tensor([1, 3, 5, 5]), try tensor([4, 3, 3, 3]), dilation: 0)
        }
        assertConvError("padding -1") {
            _ = try conv2d(try tensor([1, 3, 5, 5]), try tensor([4, 3, 3, 3]), padding: -1)
        }
        assertConvError("outputShape stride 0") {
            _ = try Conv2DParameters(stride: 0).outputShape(input: [1, 3, 5, 5], weight: [4, 3, 3, 3])
        }
    }

    func testErrorNamesShapes() throws {
        do {
            _ = try conv2d(try tensor([2, 3, 5, 5]), try tensor([4, 2, 3, 3]))
            XCTFail("no error")
        } catch let error as CloverError {
            guard case let .shapeMismatch(op, shapes, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(op, "conv2d")
            XCTAssertEqual(shapes, [[2, 3, 5, 5], [4, 2, 3, 3]])
        }
    }

    func testBackwardPrimitivesRejectWrongDy() throws {
        let params = Conv2DParameters(stride: 2, padding: 1)
        // Forward output of [2, 3, 7, 7] with [4, 3, 3, 3] is [2, 4, 4, 4].
        XCTAssertEqual(try params.outputShape(input: [2, 3, 7, 7], weight: [4, 3, 3, 3]), [2, 4, 4, 4])
        let data = Conv2DBackwardData(params, inputShape: [2, 3, 7, 7])
        XCTAssertEqual(try data.outputShapes(for: [[2, 4, 4, 4], [4, 3, 3, 3]]), [[2, 3, 7, 7]])
        XCTAssertThrowsError(try data.outputShapes(for: [[2, 4, 5, 5], [4, 3, 3, 3]])) { error in
            XCTAssertTrue("\(error)".hasPrefix("conv2d_backward_data"), "\(error)")
        }
        let weight = Conv2DBackwardWeight(params, weightShape: [4, 3, 3, 3])
        XCTAssertEqual(try weight.outputShapes(for: [[2, 4, 4, 4], [2, 3, 7, 7]]), [[4, 3, 3, 3]])
        XCTAssertThrowsError(try weight.outputShapes(for: [[1, 4, 4, 4], [2, 3, 7, 7]])) { error in
            XCTAssertTrue("\(error)".hasPrefix("conv2d_backward_weight"), "\(error)")
        }
        XCTAssertEqual(try Conv2DBackwardBias().outputShapes(for: [[2, 4, 4, 4]]), [[4]])
        XCTAssertThrowsError(try Conv2DBackwardBias().outputShapes(for: [[2, 4, 16]]))
    }

    func testOutputShapes() throws {
        func shape(_ x: [Int], _ w: [Int], _ p: Conv2DParameters) throws -> [Int] {
            try p.outputShape(input: x, weight: w)
        }
        // ResNet stem: 224x224, 7x7 stride 2 padding 3 -> 112x112.
        XCTAssertEqual(try shape([8, 3, 224, 224], [64, 3, 7, 7], Conv2DParameters(stride: 2, padding: 3)),
                       [8, 64, 112, 112])
        // 3x3 "same" convolution.
        XCTAssertEqual(try shape([1, 64, 56, 56], [64, 64, 3, 3], Conv2DParameters(stride: 1, padding: 1)),
                       [1, 64, 56, 56])
        // 3x3 stride 2 padding 1 on an odd size rounds up: 7 -> 4.
        XCTAssertEqual(try shape([1, 3, 7, 7], [5, 3, 3, 3], Conv2DParameters(stride: 2, padding: 1)), [1, 5, 4, 4])
        // 1x1 stride 2 downsample: 56 -> 28.
        XCTAssertEqual(try shape([2, 64, 56, 56], [128, 64, 1, 1], Conv2DParameters(stride: 2)), [2, 128, 28, 28])
        // Dilation 2 valid: effective 5x5 on 13x13 -> 9x9.
        XCTAssertEqual(try shape([1, 3, 13, 13], [3, 3, 3, 3], Conv2DParameters(stride: 1, dilation: 2)), [1, 3, 9, 9])
        // Depthwise keeps channels.
        XCTAssertEqual(try shape([2, 32, 14, 14], [32, 1, 3, 3], Conv2DParameters(stride: 1, padding: 1, groups: 32)),
                       [2, 32, 14, 14])
        // Asymmetric everything: H (7 + 4 - 5) / 1 + 1 = 7, W (5 + 2 - 2) / 2 + 1 = 3.
        XCTAssertEqual(try shape([1, 3, 7, 5], [4, 3, 3, 2],
                                 Conv2DParameters(stride: (1, 2), padding: (2, 1), dilation: (2, 1))), [1, 4, 7, 3])
        // Through the op on the reference device.
        let y = try conv2d(try tensor([2, 4, 9, 9]), try tensor([6, 2, 3, 3]), bias: try tensor([6]),
                           stride: 2, groups: 2)
        XCTAssertEqual(y.shape, [2, 6, 4, 4])
    }

    /// Pooled buffers may hold anything: fill the pool with NaN-filled
    /// buffers of every size the convolution will ask for, then check that
    /// forward and all gradients still match the reference.
    func testPooledGarbageDoesNotLeak() throws {
        let device = try TestDevice.get()
        guard let context = device.openCL else { throw XCTSkip("needs an OpenCL device") }
        let testCase = ConformanceCase(
            op: "conv2d", label: "NaN-poisoned pool",
            primitive: Conv2D(Conv2DParameters(stride: 2, padding: 0, groups: 1)),
            inputShapes: [[3, 3, 9, 8], [4, 3, 3, 3], [4]],
            forward: Tolerance(absolute: 1e-4, relative: 1e-4), backward: Tolerance(absolute: 1e-4, relative: 1e-4))
        // Every bucket from 256 bytes to 64 KiB, three deep, filled with NaN
        // and returned to the pool (covers y, dx, dw, db and the column buffers).
        var poisoned: [BufferView] = []
        var bytes = 256
        while bytes <= 64 << 10 {
            for _ in 0..<3 {
                let view = try context.allocateView(count: BufferPool.bucket(for: bytes) / 4)
                try context.upload([Float](repeating: .nan, count: view.count), to: view)
                poisoned.append(view)
            }
            bytes = BufferPool.bucket(for: bytes + 1)
        }
        poisoned.removeAll()
        let result = ConformanceRunner(device: device).run(testCase)
        XCTAssertTrue(result.passed, "\(result.message ?? "") fwd \(result.forward.maxAbsolute) bwd \(result.backward.maxAbsolute)")
    }
}
