import Clover

extension ConformanceSuite {
    /// Sum, mean, max (with argmax) and broadcast: single and multiple axis
    /// groups (adjacent and not), negative axes, reductions to a scalar,
    /// size-1 axes, the shapes the networks reduce (global average pooling of
    /// ResNet-50 and EfficientNet heads, per-channel sums of conv bias
    /// gradients, batch-norm-sized extents such as 8·56·56), and extents long
    /// enough to take the chunked two-launch path.
    static func reductionCases() -> [ConformanceCase] {
        var cases: [ConformanceCase] = []

        // Sums: the device adds in float (each item a short serial run, then a
        // tree), the reference in Double. For k terms of magnitude ≤ 1 that
        // rounding is a few float ulps of the partial sums, which grow like
        // sqrt(k): 2e-7·sqrt(k) absolute (plus a 2e-6 floor and 1e-5 of the
        // sum) covers it (observed: 1.5e-5 for k = 65536, bound 5e-5 + 1.5e-3),
        // while dropping or doubling a single term (an error of order 0.5)
        // fails by orders of magnitude.
        func sumTolerance(_ k: Int) -> Tolerance {
            Tolerance(absolute: 2e-6 + 2e-7 * Double(k).squareRoot(), relative: 1e-5)
        }
        let sums: [(shape: [Int], axes: [Int], offset: Bool)] = [
            ([97], [0], true),
            ([1], [0], false),
            ([13, 33], [1], false),
            ([13, 33], [0], true),
            ([3, 7, 13], [0, 2], false),         // two groups, two launches
            ([3, 7, 13], [-1], true),            // negative axis
            ([2, 64, 7, 7], [0, 2, 3], false),   // conv bias gradient, ResNet-50 stage 1 width
            ([8, 24, 5, 5], [0, 2, 3], true),    // EfficientNet width 24
            ([1, 256, 3, 3], [1], false),        // batch of one, ResNet-50 width 256
            ([5, 1, 7], [1], true),              // only a size-1 axis: a copy
            ([2, 1280], [0], false),             // EfficientNet head bias gradient
            ([4, 64, 16, 16], [0, 1, 2, 3], false), // 65536 terms to a scalar: chunked
            ([20000, 3], [0], true),             // long extent with inner 3: chunked
        ]
        for s in sums {
            let k = s.axes.reduce(1) { $0 * s.shape[($1 + s.shape.count) % s.shape.count] }
            let tol = sumTolerance(k)
            cases.append(ConformanceCase(
                op: "sum", label: "\(formatShape(s.shape)) axes \(s.axes)\(s.offset ? " offset" : "")",
                primitive: Sum(axes: s.axes), inputShapes: [s.shape], offsetInputs: s.offset,
                forward: tol, backward: tol, finiteDifference: s.shape.reduce(1, *) <= 500))
        }

        // Means: the same float sums, scaled by a float reciprocal (one more
        // rounding), so relative 1e-5 of the mean plus a small absolute floor
        // for means near zero (the sum's error divided by k).
        let means: [(shape: [Int], axes: [Int], offset: Bool)] = [
            ([2, 256, 7, 7], [2, 3], false),     // ResNet-50 global average pooling
            ([2, 1280, 7, 7], [2, 3], false),    // EfficientNet-B0 head pooling
            ([3, 40, 14, 14], [2, 3], true),     // EfficientNet squeeze-and-excitation, width 40
            ([2, 160, 8, 8], [-1, -2], false),   // WRN-28-10 width 160
            ([33, 97], [0, 1], false),           // to a scalar
            ([8, 4, 56, 56], [0, 2, 3], false),  // batch-norm-sized extent 8·56·56 per channel
            ([7, 13], [-2], true),
            ([2, 3, 5], [1], true),
            ([1, 1, 1], [0, 1, 2], false),       // count 1: a copy
        ]
        for s in means {
            let tol = Tolerance(absolute: 1e-6, relative: 1e-5)
            cases.append(ConformanceCase(
                op: "mean", label: "\(formatShape(s.shape)) axes \(s.axes)\(s.offset ? " offset" : "")",
                primitive: Mean(axes: s.axes), inputShapes: [s.shape], offsetInputs: s.offset,
                forward: tol, backward: tol, finiteDifference: s.shape.reduce(1, *) <= 500))
        }

        // Max: values are copied, not computed, so they and the argmax must
        // match exactly; the gradient is dy routed to the argmax, also exact.
        // The finite-difference step is 1e-3 so that no probe moves an
        // element past the maximum (the seeded inputs are fixed).
        let exact = Tolerance(absolute: 0, relative: 0)
        let maxima: [(shape: [Int], axis: Int, offset: Bool, tie: Bool)] = [
            ([97], 0, false, false),
            ([13, 33], 1, false, false),
            ([13, 33], 0, true, false),
            ([2, 64, 7, 7], 1, false, false),    // channel maximum, ResNet-50 width 64
            ([3, 5, 7], -1, true, false),
            ([1, 1000], 1, false, false),        // classifier logits
            ([4, 1], 1, false, false),           // extent 1
            ([3, 20000], 1, false, false),       // long extent
            ([3, 7], 1, false, true),            // all equal: ties go to index 0
            ([2, 5, 3], 1, true, true),
        ]
        for s in maxima {
            cases.append(ConformanceCase(
                op: "max", label: "\(formatShape(s.shape)) axis \(s.axis)\(s.tie ? " all tied" : "")\(s.offset ? " offset" : "")",
                primitive: Max(axis: s.axis), inputShapes: [s.shape],
                distributions: [s.tie ? .uniform(0.5, 0.5) : .uniform(-1, 1)], offsetInputs: s.offset,
                forward: exact, backward: exact,
                finiteDifference: !s.tie && s.shape.reduce(1, *) <= 500, finiteDifferenceStep: 1e-3))
        }

        // Broadcast is a copy (exact); its gradient is a sum over the
        // broadcast axes (the sum tolerance for that many terms).
        let broadcasts: [(shape: [Int], axes: [Int], offset: Bool)] = [
            ([2, 64, 7, 7], [0, 2, 3], false),   // per-channel vector to NCHW
            ([13, 33], [0], true),
            ([13, 33], [1], false),
            ([3, 7, 13], [1], false),
            ([2, 3], [0, 1], true),              // a scalar to a matrix
            ([3, 7, 5], [0, 2], true),           // two groups, two launches
            ([2, 1, 5], [1], false),             // a size-1 axis: a copy
            ([8, 24, 5, 5], [-4, -2, -1], false),
        ]
        for s in broadcasts {
            let inputShape = s.shape.enumerated()
                .filter { i, _ in !s.axes.contains { ($0 + s.shape.count) % s.shape.count == i } }.map(\.element)
            let k = s.shape.reduce(1, *) / inputShape.reduce(1, *)
            cases.append(ConformanceCase(
                op: "broadcast", label: "\(formatShape(inputShape)) to \(formatShape(s.shape)) axes \(s.axes)\(s.offset ? " offset" : "")",
                primitive: BroadcastTo(shape: s.shape, axes: s.axes), inputShapes: [inputShape], offsetInputs: s.offset,
                forward: exact, backward: sumTolerance(k), finiteDifference: s.shape.reduce(1, *) <= 500))
        }
        return cases
    }
}
