@testable import Clover
import CloverConformance
import CloverRuntime
import CloverTestSupport
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
                           parameters: Convolution2DParameters(stride: (1, 0)))
        }
        assertConvError("dilation 0") {
            _ = try conv2d(try tensor([1, 3, 5, 5]), try tensor([4, 3, 3, 3]), dilation: 0)
        }
        assertConvError("padding -1") {
            _ = try conv2d(try tensor([1, 3, 5, 5]), try tensor([4, 3, 3, 3]), padding: -1)
        }
        assertConvError("outputShape stride 0") {
            _ = try Convolution2DParameters(stride: 0).outputShape(input: [1, 3, 5, 5], weight: [4, 3, 3, 3])
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
        let params = Convolution2DParameters(stride: 2, padding: 1)
        // Forward output of [2, 3, 7, 7] with [4, 3, 3, 3] is [2, 4, 4, 4].
        XCTAssertEqual(try params.outputShape(input: [2, 3, 7, 7], weight: [4, 3, 3, 3]), [2, 4, 4, 4])
        let data = Convolution2DBackwardData(params, inputShape: [2, 3, 7, 7])
        XCTAssertEqual(try data.outputShapes(for: [[2, 4, 4, 4], [4, 3, 3, 3]]), [[2, 3, 7, 7]])
        XCTAssertThrowsError(try data.outputShapes(for: [[2, 4, 5, 5], [4, 3, 3, 3]])) { error in
            XCTAssertTrue("\(error)".hasPrefix("conv2d_backward_data"), "\(error)")
        }
        let weight = Convolution2DBackwardWeight(params, weightShape: [4, 3, 3, 3])
        XCTAssertEqual(try weight.outputShapes(for: [[2, 4, 4, 4], [2, 3, 7, 7]]), [[4, 3, 3, 3]])
        XCTAssertThrowsError(try weight.outputShapes(for: [[1, 4, 4, 4], [2, 3, 7, 7]])) { error in
            XCTAssertTrue("\(error)".hasPrefix("conv2d_backward_weight"), "\(error)")
        }
        XCTAssertEqual(try Convolution2DBackwardBias().outputShapes(for: [[2, 4, 4, 4]]), [[4]])
        XCTAssertThrowsError(try Convolution2DBackwardBias().outputShapes(for: [[2, 4, 16]]))
    }

    func testOutputShapes() throws {
        func shape(_ x: [Int], _ w: [Int], _ p: Convolution2DParameters) throws -> [Int] {
            try p.outputShape(input: x, weight: w)
        }
        // ResNet stem: 224x224, 7x7 stride 2 padding 3 -> 112x112.
        XCTAssertEqual(try shape([8, 3, 224, 224], [64, 3, 7, 7], Convolution2DParameters(stride: 2, padding: 3)),
                       [8, 64, 112, 112])
        // 3x3 "same" convolution.
        XCTAssertEqual(try shape([1, 64, 56, 56], [64, 64, 3, 3], Convolution2DParameters(stride: 1, padding: 1)),
                       [1, 64, 56, 56])
        // 3x3 stride 2 padding 1 on an odd size rounds up: 7 -> 4.
        XCTAssertEqual(try shape([1, 3, 7, 7], [5, 3, 3, 3], Convolution2DParameters(stride: 2, padding: 1)), [1, 5, 4, 4])
        // 1x1 stride 2 downsample: 56 -> 28.
        XCTAssertEqual(try shape([2, 64, 56, 56], [128, 64, 1, 1], Convolution2DParameters(stride: 2)), [2, 128, 28, 28])
        // Dilation 2 valid: effective 5x5 on 13x13 -> 9x9.
        XCTAssertEqual(try shape([1, 3, 13, 13], [3, 3, 3, 3], Convolution2DParameters(stride: 1, dilation: 2)), [1, 3, 9, 9])
        // Depthwise keeps channels.
        XCTAssertEqual(try shape([2, 32, 14, 14], [32, 1, 3, 3], Convolution2DParameters(stride: 1, padding: 1, groups: 32)),
                       [2, 32, 14, 14])
        // Asymmetric everything: H (7 + 4 - 5) / 1 + 1 = 7, W (5 + 2 - 2) / 2 + 1 = 3.
        XCTAssertEqual(try shape([1, 3, 7, 5], [4, 3, 3, 2],
                                 Convolution2DParameters(stride: (1, 2), padding: (2, 1), dilation: (2, 1))), [1, 4, 7, 3])
        // Through the op on the reference device.
        let y = try conv2d(try tensor([2, 4, 9, 9]), try tensor([6, 2, 3, 3]), bias: try tensor([6]),
                           stride: 2, groups: 2)
        XCTAssertEqual(y.shape, [2, 6, 4, 4])
    }

    /// Pooled buffers may hold anything: fill the pool with NaN-filled
    /// buffers of every size the convolution will ask for, then check that
    /// forward and all gradients still match the reference, on every path.
    func testPooledGarbageDoesNotLeak() throws {
        let device = try TestDevice.get()
        guard let context = device.openCL else { throw TestSupport.unavailable("needs an OpenCL device") }
        let tolerance = Tolerance(absolute: 1e-4, relative: 1e-4)
        // One shape per algorithm; the depthwise and grouped ones have
        // N·OH·OW > 512, so their backward-weight partial sums are split.
        let shapes: [(Convolution2DParameters, [[Int]], ConvAlgorithm)] = [
            (Convolution2DParameters(stride: 2, padding: 0), [[3, 3, 9, 8], [4, 3, 3, 3], [4]], .im2colGEMM),
            (Convolution2DParameters(stride: 1, groups: 2), [[3, 40, 5, 6], [34, 20, 1, 1], [34]], .pointwiseGEMM),
            (Convolution2DParameters(stride: 1, groups: 2), [[3, 4, 5, 6], [6, 2, 1, 1], [6]], .groupedDirect),
            (Convolution2DParameters(stride: 1, padding: 2, groups: 4), [[3, 4, 20, 20], [4, 1, 5, 5], [4]], .depthwise),
            (Convolution2DParameters(stride: 1, padding: 1, groups: 2), [[3, 6, 20, 20], [4, 3, 3, 3], [4]], .groupedDirect),
        ]
        for (parameters, inputShapes, algorithm) in shapes {
            XCTAssertEqual(try parameters.algorithm(input: inputShapes[0], weight: inputShapes[1]), algorithm)
            let testCase = ConformanceCase(op: "conv2d", label: "NaN-poisoned pool \(algorithm)",
                                           primitive: Convolution2D(parameters), inputShapes: inputShapes,
                                           forward: tolerance, backward: tolerance)
            // Every bucket from 256 bytes to 64 KiB, three deep, filled with NaN
            // and returned to the pool (covers y, dx, dw, db, the column
            // buffers and the partial sums).
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
            XCTAssertTrue(result.passed, "\(algorithm): \(result.message ?? "") fwd \(result.forward.maxAbsolute) "
                          + "bwd \(result.backward.maxAbsolute)")
        }
    }

    /// The OpenCL path each representative network shape takes (see
    /// ``Convolution2DParameters/algorithm(input:weight:)``).
    func testDispatchPicksTheIntendedAlgorithm() throws {
        func algorithm(_ x: [Int], _ w: [Int], stride: Int = 1, padding: Int = 0, dilation: Int = 1,
                       groups: Int = 1) throws -> ConvAlgorithm {
            try Convolution2DParameters(stride: stride, padding: padding, dilation: dilation, groups: groups)
                .algorithm(input: x, weight: w)
        }
        // ResNet-50 bottleneck 1x1s: GEMM on the tensors, no im2col.
        XCTAssertEqual(try algorithm([8, 64, 56, 56], [256, 64, 1, 1]), .pointwiseGEMM)
        XCTAssertEqual(try algorithm([8, 2048, 7, 7], [512, 2048, 1, 1]), .pointwiseGEMM)
        // Grouped 1x1 (ShuffleNet), and a 1x1 ignores dilation.
        XCTAssertEqual(try algorithm([8, 240, 28, 28], [240, 80, 1, 1], groups: 3), .pointwiseGEMM)
        XCTAssertEqual(try algorithm([2, 16, 9, 9], [8, 16, 1, 1], dilation: 2), .pointwiseGEMM)
        // The RegNet cell's grouped 1x1 (N groups of 2 channels, one output per gate): thin
        // groups take the direct kernels, dilated or not.
        XCTAssertEqual(try algorithm([8, 32, 32, 32], [64, 2, 1, 1], groups: 16), .groupedDirect)
        XCTAssertEqual(try algorithm([8, 128, 8, 8], [64, 2, 1, 1], dilation: 2, groups: 64), .groupedDirect)
        // 17 output channels per group is past the direct kernels' limit.
        XCTAssertEqual(try algorithm([8, 32, 8, 8], [34, 16, 1, 1], groups: 2), .pointwiseGEMM)
        // ResNet projection shortcut, 1x1 stride 2, and a padded 1x1: the general path.
        XCTAssertEqual(try algorithm([8, 256, 56, 56], [512, 256, 1, 1], stride: 2), .im2colGEMM)
        XCTAssertEqual(try algorithm([8, 16, 9, 9], [8, 16, 1, 1], padding: 1), .im2colGEMM)

        // ResNeXt-50 32x4d grouped 3x3: 4, 8 and 16 channels per group, stride 1 and 2.
        XCTAssertEqual(try algorithm([8, 128, 56, 56], [128, 4, 3, 3], padding: 1, groups: 32), .groupedDirect)
        XCTAssertEqual(try algorithm([8, 256, 56, 56], [256, 8, 3, 3], stride: 2, padding: 1, groups: 32),
                       .groupedDirect)
        XCTAssertEqual(try algorithm([8, 512, 14, 14], [512, 16, 3, 3], padding: 1, groups: 32), .groupedDirect)
        // 32 channels per group (ResNeXt's last stage): per-group GEMMs are thick enough.
        XCTAssertEqual(try algorithm([8, 1024, 7, 7], [1024, 32, 3, 3], padding: 1, groups: 32), .im2colGEMM)
        // A channel multiplier of 2 is grouped, not depthwise.
        XCTAssertEqual(try algorithm([2, 32, 14, 14], [64, 1, 3, 3], padding: 1, groups: 32), .groupedDirect)
        // Grouped 3x3 without padding 1, or dilated: general path.
        XCTAssertEqual(try algorithm([2, 32, 14, 14], [32, 4, 3, 3], groups: 8), .im2colGEMM)
        XCTAssertEqual(try algorithm([2, 32, 14, 14], [32, 4, 3, 3], padding: 2, dilation: 2, groups: 8), .im2colGEMM)

        // EfficientNet-B0 depthwise: 3x3 and 5x5, stride 1 and 2, "same" padding.
        XCTAssertEqual(try algorithm([8, 32, 112, 112], [32, 1, 3, 3], padding: 1, groups: 32), .depthwise)
        XCTAssertEqual(try algorithm([8, 96, 112, 112], [96, 1, 3, 3], stride: 2, padding: 1, groups: 96), .depthwise)
        XCTAssertEqual(try algorithm([8, 144, 56, 56], [144, 1, 5, 5], stride: 2, padding: 2, groups: 144), .depthwise)
        XCTAssertEqual(try algorithm([8, 672, 14, 14], [672, 1, 5, 5], padding: 2, groups: 672), .depthwise)
        // Depthwise 7x7 (ConvNeXt), dilated, or without "same" padding: general path.
        XCTAssertEqual(try algorithm([8, 96, 56, 56], [96, 1, 7, 7], padding: 3, groups: 96), .im2colGEMM)
        XCTAssertEqual(try algorithm([8, 32, 28, 28], [32, 1, 3, 3], padding: 2, dilation: 2, groups: 32), .im2colGEMM)
        XCTAssertEqual(try algorithm([8, 32, 28, 28], [32, 1, 3, 3], groups: 32), .im2colGEMM)

        // Dense convolutions: the ResNet stem and a 3x3.
        XCTAssertEqual(try algorithm([8, 3, 224, 224], [64, 3, 7, 7], stride: 2, padding: 3), .im2colGEMM)
        XCTAssertEqual(try algorithm([8, 64, 56, 56], [64, 64, 3, 3], padding: 1), .im2colGEMM)
        // Non-square stride is never specialised.
        XCTAssertEqual(try Convolution2DParameters(stride: (1, 2), padding: (1, 1), groups: 4)
            .algorithm(input: [1, 4, 9, 9], weight: [4, 1, 3, 3]), .im2colGEMM)
        // Invalid shapes throw the shape rule's error.
        assertConvError("algorithm of a mismatched weight") {
            _ = try algorithm([1, 3, 5, 5], [4, 2, 3, 3])
        }
    }

    /// The conformance sweep reaches every path, several times: the shape
    /// rule's path, or the one a case forces (im2col and every implicit-GEMM
    /// parameter set are forced onto awkward geometries).
    func testSweepCoversEveryAlgorithm() throws {
        var counts: [ConvAlgorithm: Int] = [:]
        for c in ConformanceSuite.allCases() where c.op == "conv2d" {
            let conv = try XCTUnwrap(c.primitive as? Convolution2D)
            let algorithm = try conv.forcedChoice?.algorithm
                ?? conv.parameters.algorithm(input: c.inputShapes[0], weight: c.inputShapes[1])
            counts[algorithm, default: 0] += 1
        }
        for algorithm in ConvAlgorithm.allCases {
            XCTAssertGreaterThanOrEqual(counts[algorithm] ?? 0, 5, "\(algorithm): \(counts)")
        }
    }
}

/// Both forms of im2col/col2im (per row for CPUs, per pixel for GPUs) on
/// the device CI has, so the GPU form is checked without a GPU.
final class Im2colFormTests: XCTestCase {
    func testPerPixelFormMatchesTheReference() throws {
        let device = try TestDevice.get()
        let context = try XCTUnwrap(device.openCL)
        context.executionOptions.im2colRowLoop = false
        defer { context.executionOptions.im2colRowLoop = nil }
        let cases = ConformanceSuite.allCases().filter {
            guard $0.op == "conv2d", let conv = $0.primitive as? Convolution2D else { return false }
            return (try? conv.parameters.algorithm(input: $0.inputShapes[0], weight: $0.inputShapes[1])) == .im2colGEMM
        }
        XCTAssertGreaterThan(cases.count, 10)
        let runner = ConformanceRunner(device: device)
        for c in cases {
            let r = runner.run(c)
            XCTAssertTrue(r.passed, "\(r.label): \(r.message ?? "")")
        }
    }
}

/// Batch norm's kernels in their GPU form (one element per item, `VW = 1`)
/// on the device CI has; the sweep itself runs the CPU form (float16 chunks).
final class BatchNormFormTests: XCTestCase {
    func testOneElementPerItemFormMatchesTheReference() throws {
        let device = try TestDevice.get()
        let context = try XCTUnwrap(device.openCL)
        context.executionOptions.batchNormVectorWidth = 1
        defer { context.executionOptions.batchNormVectorWidth = nil }
        let cases = ConformanceSuite.allCases().filter { $0.op.hasPrefix("batchnorm") }
        XCTAssertGreaterThan(cases.count, 20)
        let runner = ConformanceRunner(device: device)
        for c in cases {
            let r = runner.run(c)
            XCTAssertTrue(r.passed, "\(r.op) \(r.label): \(r.message ?? "")")
        }
    }
}
