import Clover

extension ConformanceSuite {
    /// Concat, split and strided copies: pure data movement, so every result
    /// must match the reference exactly. Shapes follow the ConvRNN cell's
    /// `[X, H]` concat (N channels each) plus awkward parts and other axes.
    static func layoutCases() -> [ConformanceCase] {
        let exact = Tolerance(absolute: 0, relative: 0)
        var cases: [ConformanceCase] = []
        let concats: [(Int, [[Int]])] = [
            (1, [[2, 16, 7, 7], [2, 16, 7, 7]]),
            (1, [[1, 3, 5, 5], [1, 13, 5, 5], [1, 1, 5, 5]]),
            (1, [[3, 7, 13, 13], [3, 33, 13, 13]]),
            (1, [[1, 1, 1, 1], [1, 1, 1, 1]]),
            (0, [[2, 3], [5, 3]]),
            (3, [[2, 3, 4, 5], [2, 3, 4, 1]]),
        ]
        for (i, (axis, shapes)) in concats.enumerated() {
            cases.append(ConformanceCase(
                op: "concat", label: "axis \(axis) " + shapes.map(formatShape).joined(separator: " + ")
                    + (i % 2 == 1 ? " offset" : ""),
                primitive: Concat(axis: axis), inputShapes: shapes, offsetInputs: i % 2 == 1,
                forward: exact, backward: exact, finiteDifference: shapes.map { $0.reduce(1, *) }.reduce(0, +) <= 200))
        }
        let splits: [(Int, [Int], [Int])] = [
            (1, [2, 32, 7, 7], [16, 16]),
            (1, [1, 17, 5, 3], [1, 3, 13]),
            (2, [2, 3, 9, 4], [4, 5]),
            (0, [5, 7], [2, 3]),
        ]
        for (i, (axis, shape, sizes)) in splits.enumerated() {
            cases.append(ConformanceCase(
                op: "split", label: "axis \(axis) \(formatShape(shape)) into \(sizes)" + (i % 2 == 0 ? " offset" : ""),
                primitive: Split(axis: axis, sizes: sizes), inputShapes: [shape], offsetInputs: i % 2 == 0,
                forward: exact, backward: exact, finiteDifference: shape.reduce(1, *) <= 200))
        }
        // (label, input shape, view, differentiable)
        let views: [(String, [Int], StridedView, Bool)] = [
            ("transpose 13x33", [13, 33], StridedView(shape: [33, 13], strides: [1, 33]), true),
            ("NCHW to NHWC 2x16x7x5", [2, 16, 7, 5], StridedView(shape: [2, 7, 5, 16], strides: [560, 5, 1, 35]), true),
            ("slice rows 1..3 every 2nd column of 5x20", [5, 20], StridedView(shape: [3, 7], strides: [20, 2], offset: 23), true),
            ("rank-5 permute 2x3x1x4x5", [2, 3, 1, 4, 5],
             StridedView(shape: [5, 1, 2, 4, 3], strides: [1, 20, 60, 5, 20]), true),
            ("single element at offset 7", [3, 4], StridedView(shape: [1, 1], strides: [0, 0], offset: 7), true),
            ("flat 97 identity view", [97], StridedView(shape: [97], strides: [1]), true),
            // Broadcast and overlapping windows read elements more than once: no gradient.
            ("broadcast 7 to 3x7", [7], StridedView(shape: [3, 7], strides: [0, 1]), false),
            ("overlapping 3-windows of 13", [13], StridedView(shape: [11, 3], strides: [1, 1]), false),
        ]
        for (i, (label, input, view, differentiable)) in views.enumerated() {
            cases.append(ConformanceCase(
                op: "strided_copy", label: label + (i % 2 == 1 ? " offset" : ""), primitive: StridedCopy(view),
                inputShapes: [input], offsetInputs: i % 2 == 1, forward: exact, backward: exact,
                checkGradients: differentiable, finiteDifference: differentiable && input.reduce(1, *) <= 200))
        }
        return cases
    }
}
