import Clover

extension ConformanceSuite {
    /// Linear layers at encoder shapes (projections 32→32·3, 48→128→48 feed
    /// forward, 32→vocabulary), awkward sizes, rank 1 and rank 3 inputs, with
    /// and without bias, plus the bias add on its own.
    static func linearCases() -> [ConformanceCase] {
        // x·Wᵀ is a float GEMM (as in the matmul cases): error grows like
        // sqrt(in)·eps·|x||W|; the bias adds one rounding. Gradients are GEMMs
        // too, and db is a float column sum of ≤ 99 rows.
        let tol = Tolerance(absolute: 1e-4, relative: 1e-4)
        typealias Setup = (label: String, x: [Int], out: Int, bias: Bool, offset: Bool, fd: Bool)
        let setups: [Setup] = [
            ("qkv x 3x13x32 → 96", [3, 13, 32], 96, true, false, false),
            ("ffn up x 1x33x48 → 128", [1, 33, 48], 128, true, true, false),
            ("ffn down x 3x7x128 → 48", [3, 7, 128], 48, true, false, false),
            ("vocab head x 3x13x32 → 97 no bias", [3, 13, 32], 97, false, true, false),
            ("x 1 → 1", [1], 1, true, true, true),
            ("x 7 (rank 1) → 3", [7], 3, true, false, true),
            ("x 3x5 → 4 no bias", [3, 5], 4, false, false, true),
            ("x 2x3x4 → 5", [2, 3, 4], 5, true, true, true),
            ("x 97x13 → 1", [97, 13], 1, true, false, false),
        ]
        var cases = setups.map { s in
            ConformanceCase(op: "linear", label: s.label, primitive: LinearMap(),
                            inputShapes: [s.x, [s.out, s.x.last!]] + (s.bias ? [[s.out]] : []),
                            offsetInputs: s.offset, forward: tol, backward: tol, finiteDifference: s.fd)
        }
        // The tensor-core route of linear layers (emulated on devices without them), against a
        // reference that rounds x and W (and, in the gradients, dy) to TF32: every set, the awkward
        // shapes, with and without bias.
        let tf32Tol = Tolerance(absolute: 2e-5, relative: 1e-5)
        let tensorCoreSets = ConvGemmParameters.searchSpace.filter { $0.form == .tensorCore }
        for (index, s) in setups.enumerated() where [0, 1, 3, 5, 7, 8].contains(index) {
            let set = tensorCoreSets[index % tensorCoreSets.count]
            cases.append(ConformanceCase(op: "linear", label: "\(s.label) forced \(set)", primitive: LinearMap(tensorCoreSet: set),
                                         inputShapes: [s.x, [s.out, s.x.last!]] + (s.bias ? [[s.out]] : []),
                                         offsetInputs: s.offset, forward: tf32Tol, backward: tf32Tol))
        }
        // The add is exact up to one rounding; its bias gradient sums ≤ 99 rows.
        let biasTol = Tolerance(absolute: 1e-6, relative: 1e-5)
        for (shape, offset) in [([1], false), ([3, 13, 32], true), ([97, 7], false), ([2, 3, 5], true)] {
            cases.append(ConformanceCase(op: "bias_add", label: formatShape(shape) + (offset ? " offset" : ""),
                                         primitive: BiasAdd(), inputShapes: [shape, [shape.last!]],
                                         offsetInputs: offset, forward: biasTol, backward: biasTol,
                                         finiteDifference: shape.reduce(1, *) <= 100))
        }
        return cases
    }
}
