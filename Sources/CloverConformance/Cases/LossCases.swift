import Clover

extension ConformanceSuite {
    /// Softmax cross-entropy: awkward row and class counts, large logits
    /// (the max subtraction must keep them finite), offsets.
    static func lossCases() -> [ConformanceCase] {
        let tol = Tolerance(absolute: 1e-5, relative: 1e-4)
        var cases: [ConformanceCase] = []
        var rng = SeededGenerator(seed: 42)
        for (rows, classes) in [(1, 1), (1, 10), (3, 7), (13, 33), (97, 10), (7, 1000), (300, 3)] {
            let labels = ClassLabels((0..<rows).map { _ in Int32.random(in: 0..<Int32(classes), using: &rng) })
            for offset in [false, true] where !(offset && rows > 50) {
                cases.append(ConformanceCase(
                    op: "softmax_cross_entropy", label: "rows \(rows) classes \(classes)\(offset ? " offset" : "")",
                    primitive: SoftmaxCrossEntropy(labels: labels), inputShapes: [[rows, classes]],
                    distributions: [.uniform(-4, 4)], offsetInputs: offset, forward: tol, backward: tol,
                    finiteDifference: rows * classes <= 400))
            }
        }
        let labels = ClassLabels([2, 0, 4])
        cases.append(ConformanceCase(
            op: "softmax_cross_entropy", label: "rows 3 classes 5 large logits ±80",
            primitive: SoftmaxCrossEntropy(labels: labels), inputShapes: [[3, 5]],
            distributions: [.uniform(-80, 80)], forward: tol, backward: tol))
        return cases
    }
}
