import Clover

extension ConformanceSuite {
    /// SiLU, sigmoid, tanh and GELU, forward and backward: awkward flat sizes,
    /// EfficientNet-like activation maps, offsets, and saturating inputs of
    /// ±100 (nothing may overflow to inf or NaN).
    static func activationCases() -> [ConformanceCase] {
        // Float libm on the device (OpenCL's exp ≤ 3 ulp, tanh ≤ 5 ulp, erfc ≤ 16 ulp) against Double:
        // a relative 1e-5 covers 16 ulp with margin; the absolute 1e-6 covers values and derivatives
        // that pass through zero (silu' at x ≈ −1.28, gelu' at x ≈ −0.75), where a few ulp of the
        // O(1) terms that cancel are all that is left.
        let tol = Tolerance(absolute: 1e-6, relative: 1e-5)
        var shapes: [[Int]] = awkwardSizes.map { [$0] }
        shapes += [[2, 16, 7, 7], [1, 96, 5, 3], [3, 13, 3, 3]]
        var cases: [ConformanceCase] = []
        for kind in ActivationKind.allCases {
            for (i, shape) in shapes.enumerated() {
                let offset = i % 2 == 1
                cases.append(ConformanceCase(
                    op: kind.rawValue, label: formatShape(shape) + (offset ? " offset" : ""),
                    primitive: Activation(kind), inputShapes: [shape], distributions: [.uniform(-6, 6)],
                    offsetInputs: offset, forward: tol, backward: tol,
                    finiteDifference: shape.reduce(1, *) <= 200))
            }
            // Saturation: exp(±100) overflows float, so any formula that forms it would give inf/inf.
            cases.append(ConformanceCase(
                op: kind.rawValue, label: "4x97 uniform ±100 offset", primitive: Activation(kind),
                inputShapes: [[4, 97]], distributions: [.uniform(-100, 100)], offsetInputs: true,
                forward: tol, backward: tol))
        }
        return cases
    }
}
