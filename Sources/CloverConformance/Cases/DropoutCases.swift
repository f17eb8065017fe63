import Clover

extension ConformanceSuite {
    /// Dropout and stochastic depth: the device mask must equal the host
    /// Philox mask bit for bit. Inputs stay at least 0.1 away from zero, so
    /// one element kept on one side and dropped on the other is an error of
    /// at least 0.1 and cannot hide inside the tolerance.
    static func dropoutCases() -> [ConformanceCase] {
        // Kept elements are x · fl(1/(1 − p)) rounded once on the device against x / (1 − p) in
        // Double rounded once: two roundings, under 2^-22 relative. Dropped elements are exactly 0.
        let tol = Tolerance(absolute: 0, relative: 2.5e-7)
        let nonzero: [InputDistribution] = [.awayFromZero(scale: 1, margin: 0.1)]
        var cases: [ConformanceCase] = []
        var shapes: [[Int]] = awkwardSizes.map { [$0] }
        shapes += [[2, 16, 7, 7], [3, 1000]]
        for (i, shape) in shapes.enumerated() {
            let p: Float = [0.1, 0.5, 0.9][i % 3]
            let seed = UInt64(0xD0_0000 + i)
            cases.append(ConformanceCase(
                op: "dropout", label: "\(formatShape(shape)) p\(p) seed \(seed)\(i % 2 == 1 ? " offset" : "")",
                primitive: InvertedDropout(probability: p, seed: seed), inputShapes: [shape], distributions: nonzero,
                offsetInputs: i % 2 == 1, forward: tol, backward: tol, finiteDifference: shape.reduce(1, *) <= 100))
        }
        cases.append(ConformanceCase(
            op: "dropout", label: "2x3x5 p0 is the identity", primitive: InvertedDropout(probability: 0, seed: 1),
            inputShapes: [[2, 3, 5]], distributions: nonzero, forward: tol, backward: tol))
        // A seed above 2^32 exercises the key's high word.
        cases.append(ConformanceCase(
            op: "dropout", label: "97x13 p0.3 seed 2^40+5 offset",
            primitive: InvertedDropout(probability: 0.3, seed: (1 << 40) + 5), inputShapes: [[97, 13]],
            distributions: nonzero, offsetInputs: true, forward: tol, backward: tol))

        for (i, shape) in [[1, 3, 4, 4], [7, 5], [13, 2, 3, 3], [97, 1], [33, 16, 2, 2], [6, 24, 3, 1]].enumerated() {
            let p: Float = [0.2, 0.5, 0.8][i % 3]
            let seed = UInt64(0x5D_0000 + i)
            cases.append(ConformanceCase(
                op: "stochastic_depth", label: "\(formatShape(shape)) p\(p) seed \(seed)\(i % 2 == 0 ? " offset" : "")",
                primitive: DropPath(probability: p, seed: seed), inputShapes: [shape], distributions: nonzero,
                offsetInputs: i % 2 == 0, forward: tol, backward: tol, finiteDifference: shape.reduce(1, *) <= 100))
        }
        return cases
    }
}
