@testable import Clover
import CloverRuntime
import XCTest

/// The implicit-GEMM engine's row-padded vector form (`Kernels/convgemm.cl`,
/// `VECTOR = 1`): the CPU heuristic that picks it, the data gradient's grid,
/// its fixed launches per pass, and its results against the CPU reference on
/// strided, dilated, grouped sizes that leave every vector, row block and
/// sample split partial. The conformance sweep runs every vector set too
/// (`ConformanceTests`).
final class ConvolutionEngineTests: XCTestCase {
    private let vectorSets = ConvGemmParameters.searchSpace.filter { $0.form == .vector }

    private func geometry(_ input: [Int], _ weight: [Int], _ parameters: Convolution2DParameters) throws
        -> Convolution2DGeometry {
        try parameters.geometry(input: input, weight: weight, op: "conv2d", shapes: [input, weight])
    }

    func testSearchSpaceHasValidVectorSetsThatAreCandidatesEverywhere() throws {
        XCTAssertEqual(vectorSets.count, 7)
        for set in vectorSets { XCTAssertTrue(set.violations.isEmpty, "\(set): \(set.violations)") }
        let strided = try geometry([2, 16, 28, 28], [32, 16, 3, 3], Convolution2DParameters(stride: 2, padding: 1))
        for pass in ConvPass.allCases {
            XCTAssertEqual(ConvAlgorithmSelection.candidates(strided, pass, kind: .cpu)
                .filter { $0.parameters?.form == .vector }.count, 7, "\(pass)")
        }
        XCTAssertFalse(ConvGemmParameters(vectorItems: 4, workM: 8, workN: 6).violations.isEmpty,
                       "48 float16 accumulators would spill")
    }

    /// The engine registry: every geometry's shape class is an engine that
    /// computes it, the general engines compute everything, and a forced
    /// choice whose engine does not compute the geometry is an error naming
    /// the op, the shapes and the engine (never a run on the wrong kernels).
    func testEnginesSayWhichGeometriesTheyCompute() throws {
        let depthwise = try geometry([2, 8, 9, 9], [8, 1, 5, 5], Convolution2DParameters(stride: 2, padding: 2, groups: 8))
        let thinGrouped = try geometry([2, 8, 9, 9], [8, 2, 3, 3], Convolution2DParameters(stride: 1, padding: 1, groups: 4))
        let thinPointwise = try geometry([2, 8, 9, 9], [8, 2, 1, 1], Convolution2DParameters(groups: 4))
        let pointwise = try geometry([2, 8, 9, 9], [12, 8, 1, 1], Convolution2DParameters())
        let dilated = try geometry([2, 8, 9, 9], [8, 1, 3, 3], Convolution2DParameters(stride: 1, padding: 2, dilation: 2, groups: 8))
        let general = try geometry([2, 8, 9, 9], [12, 8, 3, 3], Convolution2DParameters(stride: 2, padding: 1))
        let cases: [(Convolution2DGeometry, Set<ConvAlgorithm>)] = [
            (depthwise, [.depthwise, .im2colGEMM, .implicitGEMM]),
            (thinGrouped, [.groupedDirect, .im2colGEMM, .implicitGEMM]),
            (thinPointwise, [.groupedDirect, .pointwiseGEMM, .im2colGEMM, .implicitGEMM]),
            (pointwise, [.pointwiseGEMM, .im2colGEMM, .implicitGEMM]),
            (dilated, [.im2colGEMM, .implicitGEMM]),
            (general, [.im2colGEMM, .implicitGEMM]),
        ]
        for (g, expected) in cases {
            XCTAssertTrue(g.algorithm.engine.supports(g), "\(g.parameters)")
            XCTAssertEqual(Set(ConvAlgorithm.allCases.filter { $0.engine.supports(g) }), expected, "\(g.parameters)")
            for pass in ConvPass.allCases {
                for choice in ConvAlgorithmSelection.candidates(g, pass, kind: .cpu)
                    + ConvAlgorithmSelection.candidates(g, pass, kind: .gpu) {
                    XCTAssertTrue(choice.algorithm.engine.supports(g), "\(choice) \(pass) \(g.parameters)")
                }
            }
        }

        let device = try TestDevice.get()
        let x = try Tensor(shape: [2, 8, 9, 9], values: [Float](repeating: 1, count: 2 * 8 * 81), on: device)
        let w = try Tensor(shape: [12, 8, 3, 3], values: [Float](repeating: 1, count: 12 * 8 * 9), on: device)
        let dy = try Tensor(shape: [2, 12, 5, 5], values: [Float](repeating: 1, count: 2 * 12 * 25), on: device)
        let parameters = Convolution2DParameters(stride: 2, padding: 1)
        let misfits: [(any Primitive, [Tensor], String)] = [
            (Convolution2D(parameters, forcedChoice: ConvChoice(.depthwise)), [x, w], "conv2d"),
            (Convolution2DBackwardData(parameters, inputShape: [2, 8, 9, 9], forcedChoice: ConvChoice(.pointwiseGEMM)),
             [dy, w], "conv2d_backward_data"),
            (Convolution2DBackwardWeight(parameters, weightShape: [12, 8, 3, 3], forcedChoice: ConvChoice(.groupedDirect)),
             [dy, x], "conv2d_backward_weight"),
        ]
        for (primitive, inputs, op) in misfits {
            XCTAssertThrowsError(try apply(primitive, inputs)) { error in
                guard case CloverError.unsupported(let name, let shapes, _, let reason) = error else {
                    return XCTFail("\(op): expected unsupported, got \(error)")
                }
                XCTAssertEqual(name, op)
                XCTAssertTrue(shapes.contains(inputs[0].shape), "\(op): \(shapes)")
                XCTAssertTrue(reason.contains("kernels do not compute"), reason)
            }
        }
    }

    /// An unmeasured convolution of the general class takes the vector
    /// kernels on a CPU in all three passes, at any stride; GPUs keep the
    /// tiled sets.
    func testHeuristicPicksTheVectorFormOnCPUs() throws {
        let unit = try geometry([64, 16, 28, 28], [16, 16, 3, 3], Convolution2DParameters(stride: 1, padding: 1))
        let strided = try geometry([64, 16, 28, 28], [32, 16, 3, 3], Convolution2DParameters(stride: 2, padding: 1))
        for g in [unit, strided] {
            for pass in ConvPass.allCases {
                let choice = ConvAlgorithmSelection.heuristic(g, pass, kind: .cpu)
                XCTAssertEqual(choice.algorithm, .implicitGEMM, "\(pass)")
                XCTAssertEqual(choice.parameters?.form, .vector, "\(pass)")
                XCTAssertEqual(ConvAlgorithmSelection.heuristic(g, pass, kind: .gpu).parameters?.form, .tiled, "\(pass)")
            }
        }
    }

    /// The vector sets follow the CPU's register file: on 16 registers of 8
    /// floats (AVX2) a float16 is two registers, and the forward and data
    /// gradient sets keep their accumulators within half of them; at 16
    /// floats (AVX-512, 32 registers) the wide sets. The heuristic, the
    /// candidates' first entry and the depthwise set all follow the width.
    func testVectorSetsFollowTheRegisterFile() throws {
        let g = try geometry([64, 16, 28, 28], [32, 16, 3, 3], Convolution2DParameters(stride: 1, padding: 1))
        let depthwise = try geometry([8, 32, 56, 56], [32, 1, 3, 3], Convolution2DParameters(stride: 1, padding: 1, groups: 32))
        let wide = ConvGemmParameters.vectorRoles(vectorWidth: 16), narrow = ConvGemmParameters.vectorRoles(vectorWidth: 8)
        XCTAssertEqual(ConvGemmParameters.vectorRoles(vectorWidth: 32).forward, wide.forward)
        XCTAssertEqual(ConvGemmParameters.vectorRoles(vectorWidth: 4).forward, narrow.forward)
        for set in [narrow.forward, narrow.backwardData] {
            XCTAssertEqual(set.form, .vector)
            XCTAssertLessThanOrEqual(2 * set.workM * set.workN, 8, "\(set): accumulators in at most 8 of 16 registers")
        }
        XCTAssertGreaterThan(2 * wide.forward.workM * wide.forward.workN, 16, "the wide sets would spill on AVX2")
        for (width, roles) in [(16, wide), (8, narrow)] {
            for pass in ConvPass.allCases {
                let expected = roles.product(for: pass)
                XCTAssertEqual(ConvAlgorithmSelection.heuristic(g, pass, kind: .cpu, vectorWidth: width).parameters,
                               expected, "\(pass) width \(width)")
                XCTAssertEqual(ConvAlgorithmSelection.candidates(g, pass, kind: .cpu, vectorWidth: width).first?.parameters,
                               expected, "\(pass) width \(width)")
                XCTAssertEqual(ConvAlgorithmSelection.heuristic(depthwise, pass, kind: .cpu, vectorWidth: width).parameters,
                               roles.depthwise, "depthwise \(pass) width \(width)")
                XCTAssertEqual(ConvAlgorithmSelection.heuristic(g, pass, kind: .gpu, vectorWidth: width).parameters?.form,
                               .tiled, "GPUs ignore the width")
            }
        }
        // The device's own width reaches the selection of an unmeasured geometry on a CPU device.
        let context = try XCTUnwrap(try TestDevice.get().openCL)
        if context.pathKind == .cpu {
            let roles = ConvGemmParameters.vectorRoles(vectorWidth: context.device.nativeFloatVectorWidth)
            XCTAssertEqual(try ConvAlgorithmSelection.choice(context, g, .backwardWeight).parameters, roles.backwardWeight)
        }
    }

    /// Depthwise convolutions take the one-row vector set on CPUs (measured
    /// 1.5–5× the depthwise kernel there) and keep the depthwise kernel on GPUs.
    func testDepthwiseTakesTheOneRowVectorSetOnCPUs() throws {
        let g = try geometry([8, 32, 56, 56], [32, 1, 3, 3], Convolution2DParameters(stride: 1, padding: 1, groups: 32))
        XCTAssertEqual(g.algorithm, .depthwise)
        XCTAssertEqual(ConvGemmParameters.vectorRoles(vectorWidth: 16).depthwise.workM, 1)
        for pass in ConvPass.allCases {
            XCTAssertEqual(ConvAlgorithmSelection.heuristic(g, pass, kind: .cpu),
                           ConvChoice(.implicitGEMM, ConvGemmParameters.vectorRoles(vectorWidth: 16).depthwise), "\(pass)")
            XCTAssertEqual(ConvAlgorithmSelection.heuristic(g, pass, kind: .gpu), ConvChoice(.depthwise), "\(pass)")
        }
    }

    /// The GPU depthwise kernels' tiling: 256-item work-groups with several
    /// outputs per item along wide rows, smaller groups on planes smaller than
    /// the tile, and a patch within the portable 48 KiB of local memory.
    func testDepthwiseTilingUsesFullWorkGroupsOnWidePlanes() throws {
        let wide = DirectConv.depthwiseTiling(width: 112, height: 112)
        XCTAssertEqual(wide.tw * wide.th, 256)
        XCTAssertEqual(wide.opx, 4)
        XCTAssertEqual(DirectConv.depthwiseTiling(width: 56, height: 56).opx, 2)
        let small = DirectConv.depthwiseTiling(width: 7, height: 7)
        XCTAssertEqual(small.opx, 1)
        XCTAssertEqual(small.tw * small.th, 64)
        for side in [1, 2, 7, 14, 28, 31, 56, 112, 300] {
            let t = DirectConv.depthwiseTiling(width: side, height: side)
            XCTAssertLessThanOrEqual(t.tw * t.th, 256)
            let patchBytes = 4 * ((t.th - 1) * 2 + 5) * ((t.tw * t.opx - 1) * 2 + 5)   // stride 2, 5x5
            XCTAssertLessThanOrEqual(patchBytes, 48 * 1024, "side \(side)")
        }
    }

    /// Thin grouped convolutions (the RegNet cell's pairs, ResNeXt's groups)
    /// take vector sets on CPUs — one row per item for at most 2 rows per
    /// group — and keep the grouped kernels on GPUs.
    func testThinGroupedTakesVectorSetsOnCPUs() throws {
        let pairs = try geometry([8, 32, 14, 14], [16, 2, 1, 1], Convolution2DParameters(stride: 1, padding: 0, groups: 16))
        let resnext = try geometry([8, 128, 14, 14], [128, 4, 3, 3], Convolution2DParameters(stride: 1, padding: 1, groups: 32))
        for g in [pairs, resnext] {
            XCTAssertEqual(g.algorithm, .groupedDirect)
            for pass in ConvPass.allCases {
                XCTAssertEqual(ConvAlgorithmSelection.heuristic(g, pass, kind: .gpu), ConvChoice(.groupedDirect))
            }
        }
        XCTAssertEqual(ConvAlgorithmSelection.heuristic(pairs, .forward, kind: .cpu).parameters,
                       ConvGemmParameters.vectorRoles(vectorWidth: 16).depthwise)
        XCTAssertEqual(ConvAlgorithmSelection.heuristic(resnext, .forward, kind: .cpu).parameters?.workM, 8)
    }

    /// 1x1 convolutions take the vector sets on CPUs where an output plane
    /// has at least 4 pixels, and keep the pointwise GEMM for smaller planes
    /// (squeeze-and-excitation's 1x1 spatial) and on GPUs.
    func testPointwiseTakesVectorSetsOnCPUsWherePlanesFillAVector() throws {
        let wide = try geometry([8, 64, 28, 28], [256, 64, 1, 1], Convolution2DParameters())
        let squeeze = try geometry([8, 64, 1, 1], [16, 64, 1, 1], Convolution2DParameters())
        for g in [wide, squeeze] {
            XCTAssertEqual(g.algorithm, .pointwiseGEMM)
            XCTAssertEqual(ConvAlgorithmSelection.heuristic(g, .forward, kind: .gpu), ConvChoice(.pointwiseGEMM))
        }
        for pass in ConvPass.allCases {
            XCTAssertEqual(ConvAlgorithmSelection.heuristic(wide, pass, kind: .cpu).parameters?.form, .vector, "\(pass)")
            XCTAssertEqual(ConvAlgorithmSelection.heuristic(squeeze, pass, kind: .cpu), ConvChoice(.pointwiseGEMM))
        }
    }

    /// The data gradient's grid holds every tap's dy pixel for every stride
    /// phase: for 3x3, stride 2, padding 1 on 28 rows, phase 0 reads dy rows
    /// i (tap 1) and phase 1 rows i and i + 1 (taps 2 and 0), so dy needs no
    /// row before it and one after its 14 (the zero row the last phase-1 row
    /// reads through tap 0).
    func testDataGradientGridCoversEveryPhase() throws {
        let g = try geometry([1, 1, 28, 28], [1, 1, 3, 3], Convolution2DParameters(stride: 2, padding: 1))
        let grid = vectorDataGradientGrid(g)
        XCTAssertEqual(grid.top, 0)
        XCTAssertEqual(grid.rows, 15)
        let unit = try geometry([1, 1, 9, 9], [1, 1, 3, 3], Convolution2DParameters(stride: 1, padding: 1))
        let unitGrid = vectorDataGradientGrid(unit)
        XCTAssertEqual(unitGrid.top, 1)
        XCTAssertEqual(unitGrid.rows, 11)   // the stride-1 transpose: dy padded by K − 1 − P each side
    }

    /// Launches per pass are fixed whatever the batch: forward 2 (pad,
    /// product), data gradient 2 (pad dy, the stride phases' products),
    /// weight gradient 3 (pad dy and x, partials, sum; 2 with one split) — and the values
    /// match the CPU reference on geometries with 3 samples (uneven splits),
    /// 2 groups, dilation, a 5-wide kernel, and strides 2x1 and 2x3 (phases
    /// with no taps at all included).
    func testVectorPassesMatchTheReferenceWithFixedLaunches() throws {
        let device = try TestDevice.get()
        let context = try XCTUnwrap(device.openCL)
        // (parameters, in channels, out channels); the last has so few weight columns that its
        // weight gradient splits over the samples.
        let geometries = [
            (Convolution2DParameters(stride: (1, 1), padding: (2, 3), dilation: (1, 2), groups: 2), 6, 10),
            (Convolution2DParameters(stride: (2, 1), padding: (1, 2), dilation: (1, 1), groups: 2), 6, 10),
            (Convolution2DParameters(stride: (2, 3), padding: (0, 1), dilation: (2, 1), groups: 1), 6, 10),
            (Convolution2DParameters(stride: (1, 2), padding: (1, 1)), 2, 4),
        ]
        var sawSplits = false
        for (parameters, cin, cout) in geometries {
        for batch in [1, 3] {
            let xShape = [batch, cin, 11, 13], wShape = [cout, cin / parameters.groups, 3, 5]
            var rng = SplitMix64(seed: UInt64(batch))
            let xValues = rng.uniformArray(count: xShape.reduce(1, *), bound: 1)
            let wValues = rng.uniformArray(count: wShape.reduce(1, *), bound: 1)
            let yShape = try parameters.outputShape(input: xShape, weight: wShape)
            let dyValues = rng.uniformArray(count: yShape.reduce(1, *), bound: 1)
            let x = try Tensor(shape: xShape, values: xValues, on: device)
            let w = try Tensor(shape: wShape, values: wValues, on: device)
            let dy = try Tensor(shape: yShape, values: dyValues, on: device)
            // The weight gradient sums its sample splits in a fourth launch, unless one split
            // suffices (batch 1 here), which writes dw directly.
            let g = try parameters.geometry(input: xShape, weight: wShape, op: "conv2d", shapes: [xShape, wShape])
            let splits = vectorWeightSplits(g, vectorSets[1], computeUnits: context.device.computeUnits)
            if splits > 1 { sawSplits = true }
            let passes: [(ConvPass, any Primitive, [Tensor], [[Float]], [[Int]], Int, Int)] = [
                (.forward, Convolution2D(parameters, forcedChoice: ConvChoice(.implicitGEMM, vectorSets[0])),
                 [x, w], [xValues, wValues], [xShape, wShape], 2, 0),
                (.backwardData, Convolution2DBackwardData(parameters, inputShape: xShape,
                                                         forcedChoice: ConvChoice(.implicitGEMM, vectorSets[2])),
                 [dy, w], [dyValues, wValues], [yShape, wShape], 2, 1),
                (.backwardWeight, Convolution2DBackwardWeight(parameters, weightShape: wShape,
                                                             forcedChoice: ConvChoice(.implicitGEMM, vectorSets[1])),
                 [dy, x], [dyValues, xValues], [yShape, xShape], splits == 1 ? 2 : 3, 2),
            ]
            for (pass, primitive, inputs, values, shapes, launches, _) in passes {
                _ = try apply(primitive, inputs)   // builds the programs
                try device.synchronize()
                let before = context.launchCounts.values.reduce(0, +)
                let result = try apply(primitive, inputs)[0]
                XCTAssertEqual(context.launchCounts.values.reduce(0, +) - before, launches,
                               "\(pass) batch \(batch) \(parameters)")
                let expected = try primitive.evalReference(values, shapes: shapes)[0]
                let got = try result.toArray()
                XCTAssertEqual(got.count, expected.count)
                let scale = Double(expected.map { abs($0) }.max() ?? 1)
                let worst = zip(got, expected).map { abs(Double($0) - Double($1)) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst / scale, 1e-5, "\(pass) batch \(batch) \(parameters)")
            }
        }
        }
        XCTAssertTrue(sawSplits, "no case split the weight gradient over samples")
    }

    /// The vector kernels' products are fused multiply-adds (one rounding):
    /// POCL lowers OpenCL's `mad` to a multiply and an add, which halves the
    /// arithmetic the CPU issues per cycle. With `a = 1 + 2⁻¹²`,
    /// `a·a = 1 + 2⁻¹¹ + 2⁻²⁴` rounds to `1 + 2⁻¹¹` on its own, so a sum
    /// `−(1 + 2⁻¹¹)·1 + a·a` is exactly 2⁻²⁴ when fused and 0 when not.
    func testVectorProductsAreFused() throws {
        let device = try TestDevice.get()
        let a = Float(1) + Float(sign: .plus, exponent: -12, significand: 1)
        let first = -(Float(1) + Float(sign: .plus, exponent: -11, significand: 1))
        let expected = Float(sign: .plus, exponent: -24, significand: 1)
        let parameters = Convolution2DParameters(stride: (1, 1), padding: (0, 0))
        let plane = 6 * 7, batch = 2
        // Forward: channel 0 of x is 1 against weight `first`, channel 1 is a against a
        // (channel 0's product is accumulated first).
        let xValues = (0..<batch).flatMap { _ in [Float](repeating: 1, count: plane) + [Float](repeating: a, count: plane) }
        let x = try Tensor(shape: [batch, 2, 6, 7], values: xValues, on: device)
        let outputs = 3
        let w = try Tensor(shape: [outputs, 2, 1, 1], values: (0..<outputs).flatMap { _ in [first, a] }, on: device)
        // Data gradient: output channel 0 of dy is 1 against `first`, channel 1 is a against a.
        let dy = try Tensor(shape: [batch, 2, 6, 7], values: xValues, on: device)
        let wData = try Tensor(shape: [2, outputs, 1, 1],
                               values: [Float](repeating: first, count: outputs) + [Float](repeating: a, count: outputs),
                               on: device)
        for set in vectorSets {
            let y = try apply(Convolution2D(parameters, forcedChoice: ConvChoice(.implicitGEMM, set)), [x, w])[0]
            XCTAssertEqual(Set(try y.toArray()), [expected], "forward, \(set)")
            let dx = try apply(Convolution2DBackwardData(parameters, inputShape: [batch, outputs, 6, 7],
                                                        forcedChoice: ConvChoice(.implicitGEMM, set)), [dy, wData])[0]
            XCTAssertEqual(Set(try dx.toArray()), [expected], "data gradient, \(set)")
        }
    }

    /// A batch norm after a vector convolution merges the partial statistics
    /// the convolution's epilogue wrote (no `bn_stats_partial` pass over its
    /// output) and gets the reference's statistics and output, as it does
    /// with the fusion off; a convolution with a fused activation writes none.
    func testBatchNormTakesTheConvolutionsStatistics() throws {
        let device = try TestDevice.get()
        var rng = SplitMix64(seed: 5)
        let parameters = Convolution2DParameters(stride: (1, 2), padding: (1, 1))
        let xShape = [3, 4, 9, 11], wShape = [6, 4, 3, 3]
        let values = [rng.uniformArray(count: 3 * 4 * 9 * 11, bound: 1), rng.uniformArray(count: 6 * 36, bound: 1),
                      rng.uniformArray(count: 6, bound: 1)]
        let gamma = rng.uniformArray(count: 6, bound: 1), beta = rng.uniformArray(count: 6, bound: 1)
        let vector = ConvChoice(.implicitGEMM, vectorSets[0])
        /// The conv and the batch norm, declared as one fusion (`linked`) or
        /// not; `other` normalises another tensor through the same link.
        func run(on device: Device, linked: Bool, other: Bool = false) throws -> (outputs: [[Float]], statsPasses: Int) {
            let link = linked ? ChannelStatisticsLink() : nil
            let conv = Convolution2D(parameters, forcedChoice: vector, statisticsLink: link)
            let bn = BatchNormTraining(outputsStatistics: true, statisticsLink: link)
            let inputs = try zip([xShape, wShape, [6]], values).map { try Tensor(shape: $0, values: $1, on: device) }
            let before = device.openCL?.launchCounts["normalization/bn_stats_partial"] ?? 0
            let y = try apply(conv, inputs)[0]
            let normalised = other ? try Tensor(shape: y.shape, values: try y.toArray(), on: device) : y
            let out = try apply(bn, [normalised, try Tensor(shape: [6], values: gamma, on: device),
                                     try Tensor(shape: [6], values: beta, on: device)])
            let passes = (device.openCL?.launchCounts["normalization/bn_stats_partial"] ?? 0) - before
            return (try out.map { try $0.toArray() }, passes)
        }
        let reference = try run(on: .reference, linked: false).outputs
        XCTAssertEqual(try run(on: .reference, linked: true).outputs, reference, "the link changes nothing on the reference")
        let fused = try run(on: device, linked: true)
        XCTAssertEqual(fused.statsPasses, 0, "the batch norm read the convolution's output again")
        let undeclared = try run(on: device, linked: false)
        XCTAssertEqual(undeclared.statsPasses, 1, "without a declared fusion the batch norm takes its own pass")
        // The link's partials describe the convolution's output: a batch norm of another tensor
        // (here a copy of it) takes its own pass.
        let mismatched = try run(on: device, linked: true, other: true)
        XCTAssertEqual(mismatched.statsPasses, 1)
        let context = try XCTUnwrap(device.openCL)
        context.executionOptions.fusesBatchNormStatistics = false
        defer { context.executionOptions.fusesBatchNormStatistics = true }
        let unfused = try run(on: device, linked: true)
        XCTAssertEqual(unfused.statsPasses, 1)
        for (name, result) in [("fused", fused.outputs), ("undeclared", undeclared.outputs),
                               ("mismatched", mismatched.outputs), ("unfused", unfused.outputs)] {
            for (k, (got, want)) in zip(result, reference).enumerated() {
                let scale = Double(want.map { abs($0) }.max() ?? 1)
                let worst = zip(got, want).map { abs(Double($0) - Double($1)) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst / scale, 1e-5, "\(name) output \(k)")
            }
        }
    }
}
