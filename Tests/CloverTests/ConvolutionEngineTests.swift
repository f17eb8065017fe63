@testable import Clover
import CloverRuntime
import XCTest

/// The implicit-GEMM engine's row-padded vector form (`Kernels/convgemm.cl`,
/// `VECTOR = 1`): its domain (stride 1), the CPU heuristic that picks it, its
/// fixed launches per pass, and its results against the CPU reference on
/// sizes that leave every vector, row block and sample split partial. The
/// conformance sweep runs every vector set too (`ConformanceTests`).
final class ConvolutionEngineTests: XCTestCase {
    private let vectorSets = ConvGemmParameters.searchSpace.filter { $0.form == .vector }

    private func geometry(_ input: [Int], _ weight: [Int], _ parameters: Convolution2DParameters) throws
        -> Convolution2DGeometry {
        try parameters.geometry(input: input, weight: weight, op: "conv2d", shapes: [input, weight])
    }

    func testSearchSpaceHasVectorSetsThatOnlyCoverStrideOne() throws {
        XCTAssertEqual(vectorSets.count, 3)
        let unit = try geometry([2, 16, 28, 28], [16, 16, 3, 3], Convolution2DParameters(stride: 1, padding: 1))
        let strided = try geometry([2, 16, 28, 28], [32, 16, 3, 3], Convolution2DParameters(stride: 2, padding: 1))
        for set in vectorSets {
            XCTAssertTrue(set.violations.isEmpty, "\(set): \(set.violations)")
            XCTAssertTrue(set.supports(unit))
            XCTAssertFalse(set.supports(strided))
        }
        let candidates = ConvAlgorithmSelection.candidates(strided, .forward, kind: .cpu)
        XCTAssertFalse(candidates.contains { $0.parameters?.form == .vector }, "\(candidates)")
        XCTAssertEqual(ConvAlgorithmSelection.candidates(unit, .forward, kind: .cpu)
            .filter { $0.parameters?.form == .vector }.count, 3)
    }

    /// An unmeasured stride-1 convolution takes the vector kernels on a CPU in
    /// all three passes; a strided one keeps the direct kernels and, for the
    /// weight gradient, im2col + CLBlast; GPUs keep the tiled sets.
    func testHeuristicPicksTheVectorFormForStrideOneOnCPUs() throws {
        let unit = try geometry([64, 16, 28, 28], [16, 16, 3, 3], Convolution2DParameters(stride: 1, padding: 1))
        let strided = try geometry([64, 16, 28, 28], [32, 16, 3, 3], Convolution2DParameters(stride: 2, padding: 1))
        for pass in ConvPass.allCases {
            let choice = ConvAlgorithmSelection.heuristic(unit, pass, kind: .cpu)
            XCTAssertEqual(choice.algorithm, .implicitGEMM, "\(pass)")
            XCTAssertEqual(choice.parameters?.form, .vector, "\(pass)")
            XCTAssertEqual(ConvAlgorithmSelection.heuristic(unit, pass, kind: .gpu).parameters?.form, .tiled, "\(pass)")
        }
        XCTAssertEqual(ConvAlgorithmSelection.heuristic(strided, .forward, kind: .cpu).parameters?.form, .direct)
        XCTAssertEqual(ConvAlgorithmSelection.heuristic(strided, .backwardData, kind: .cpu).parameters?.form, .direct)
        XCTAssertEqual(ConvAlgorithmSelection.heuristic(strided, .backwardWeight, kind: .cpu).algorithm, .im2colGEMM)
    }

    /// Forced onto a strided geometry, the vector form refuses by name
    /// instead of computing something else.
    func testVectorFormRefusesStridedGeometriesByName() throws {
        let device = try TestDevice.get()
        let x = try Tensor(shape: [1, 3, 9, 9], values: [Float](repeating: 1, count: 243), on: device)
        let w = try Tensor(shape: [4, 3, 3, 3], values: [Float](repeating: 1, count: 108), on: device)
        let conv = Convolution2D(Convolution2DParameters(stride: 2, padding: 1),
                                 forcedChoice: ConvChoice(.implicitGEMM, vectorSets[0]))
        XCTAssertThrowsError(try apply(conv, [x, w])) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("conv2d") && text.contains("stride 1") && text.contains("1x3x9x9"), text)
        }
    }

    /// Launches per pass are fixed whatever the batch: forward 2 (pad,
    /// product), data gradient 3 (flip, pad, product), weight gradient 4 (pad
    /// dy, pad x, partials, sum) — and the values match the CPU reference on
    /// a geometry with 3 samples (uneven splits), 2 groups, dilation 2 and a
    /// 5-wide kernel.
    func testVectorPassesMatchTheReferenceWithFixedLaunches() throws {
        let device = try TestDevice.get()
        let context = try XCTUnwrap(device.openCL)
        let parameters = Convolution2DParameters(stride: (1, 1), padding: (2, 3), dilation: (1, 2), groups: 2)
        for batch in [1, 3] {
            let xShape = [batch, 6, 11, 13], wShape = [10, 3, 3, 5]
            var rng = SplitMix64(seed: UInt64(batch))
            let xValues = rng.uniformArray(count: xShape.reduce(1, *), bound: 1)
            let wValues = rng.uniformArray(count: wShape.reduce(1, *), bound: 1)
            let yShape = try parameters.outputShape(input: xShape, weight: wShape)
            let dyValues = rng.uniformArray(count: yShape.reduce(1, *), bound: 1)
            let x = try Tensor(shape: xShape, values: xValues, on: device)
            let w = try Tensor(shape: wShape, values: wValues, on: device)
            let dy = try Tensor(shape: yShape, values: dyValues, on: device)
            let passes: [(ConvPass, any Primitive, [Tensor], [[Float]], [[Int]], Int, Int)] = [
                (.forward, Convolution2D(parameters, forcedChoice: ConvChoice(.implicitGEMM, vectorSets[0])),
                 [x, w], [xValues, wValues], [xShape, wShape], 2, 0),
                (.backwardData, Convolution2DBackwardData(parameters, inputShape: xShape,
                                                         forcedChoice: ConvChoice(.implicitGEMM, vectorSets[2])),
                 [dy, w], [dyValues, wValues], [yShape, wShape], 3, 1),
                (.backwardWeight, Convolution2DBackwardWeight(parameters, weightShape: wShape,
                                                             forcedChoice: ConvChoice(.implicitGEMM, vectorSets[1])),
                 [dy, x], [dyValues, xValues], [yShape, xShape], 4, 2),
            ]
            for (pass, primitive, inputs, values, shapes, launches, _) in passes {
                _ = try apply(primitive, inputs)   // builds the programs
                try device.synchronize()
                let before = context.launchCounts.values.reduce(0, +)
                let result = try apply(primitive, inputs)[0]
                XCTAssertEqual(context.launchCounts.values.reduce(0, +) - before, launches, "\(pass) batch \(batch)")
                let expected = try primitive.evalReference(values, shapes: shapes)[0]
                let got = try result.toArray()
                XCTAssertEqual(got.count, expected.count)
                let scale = Double(expected.map { abs($0) }.max() ?? 1)
                let worst = zip(got, expected).map { abs(Double($0) - Double($1)) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst / scale, 1e-5, "\(pass) batch \(batch)")
            }
        }
    }
}
