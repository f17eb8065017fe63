import Clover

extension ConformanceSuite {
    /// Add, mul, scale and ReLU over awkward flat sizes and image-shaped tensors,
    /// with and without buffer offsets. Exact ops: the device must match the
    /// reference to rounding.
    static func elementwiseCases() -> [ConformanceCase] {
        let exact = Tolerance(absolute: 1e-6, relative: 1e-6)
        var shapes: [[Int]] = awkwardSizes.map { [$0] }
        shapes += [[2, 3, 7, 7], [1, 16, 13, 13], [4, 33, 5, 3]]
        var cases: [ConformanceCase] = []
        for shape in shapes {
            for offset in [false, true] {
                let label = formatShape(shape) + (offset ? " offset" : "")
                let small = shape.reduce(1, *) <= 200
                cases.append(ConformanceCase(op: "add", label: label, primitive: BinaryElementwise(.add),
                                             inputShapes: [shape, shape], offsetInputs: offset,
                                             forward: exact, backward: exact, finiteDifference: small))
                cases.append(ConformanceCase(op: "mul", label: label, primitive: BinaryElementwise(.mul),
                                             inputShapes: [shape, shape], offsetInputs: offset,
                                             forward: exact, backward: exact, finiteDifference: small))
                // Residual sum and ReLU in one pass; inputs in [-1, 1] put about half the sums
                // below 0. Finite differences would straddle the kink, so only the exact check.
                cases.append(ConformanceCase(op: "add_relu", label: label, primitive: BinaryElementwise(.addReLU),
                                             inputShapes: [shape, shape], offsetInputs: offset,
                                             forward: exact, backward: exact))
                cases.append(ConformanceCase(op: "scale", label: label, primitive: Scale(-0.75),
                                             inputShapes: [shape], offsetInputs: offset,
                                             forward: exact, backward: exact, finiteDifference: small))
                cases.append(ConformanceCase(op: "full_like", label: label, primitive: FullLike(2.5),
                                             inputShapes: [shape], offsetInputs: offset,
                                             forward: exact, backward: exact, checkGradients: false))
                cases.append(ConformanceCase(op: "relu", label: label, primitive: ReLU(),
                                             inputShapes: [shape],
                                             distributions: [.awayFromZero(scale: 1, margin: 0.05)],
                                             offsetInputs: offset, forward: exact, backward: exact,
                                             finiteDifference: small))
            }
        }
        return cases
    }
}
