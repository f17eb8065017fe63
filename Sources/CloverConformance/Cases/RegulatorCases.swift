import Clover

extension ConformanceSuite {
    /// The RegNet regulator cell, end to end (interleave, grouped 1x1,
    /// depthwise 3x3, gates; ConvGRU's candidate path), as a composite:
    /// forward H′ (and C′) and the gradients with respect to X, H, C and every
    /// weight. State shapes are RegNet-20's stages scaled down.
    static func regulatorCases() -> [ConformanceCase] {
        // Three chained stages of float conv + transcendental against Double.
        let tol = Tolerance(absolute: 2e-5, relative: 1e-4)
        var cases: [ConformanceCase] = []
        for kind in RegulatorKind.allCases {
            for (i, state) in [[1, 3, 5, 4], [2, 16, 6, 6]].enumerated() {
                let n = state[1]
                let weightShapes = RegulatorWeights.shapes(kind, channels: n)
                let stateInputs = kind.hasCellState ? [state, state, state] : [state, state]
                let primitive = Composite(name: "regulator_cell", outputShapes: { _ in
                    kind.hasCellState ? [state, state] : [state]
                }, body: { t in
                    let k = stateInputs.count
                    let ws = Array(t[k...])
                    let weights = RegulatorWeights(
                        pointwise: ws[0], pointwiseBias: ws[1], depthwise: ws[2], depthwiseBias: ws[3],
                        candidatePointwise: ws.count > 4 ? ws[4] : nil, candidatePointwiseBias: ws.count > 4 ? ws[5] : nil,
                        candidateDepthwise: ws.count > 4 ? ws[6] : nil, candidateDepthwiseBias: ws.count > 4 ? ws[7] : nil)
                    let out = try regulatorCell(kind, x: t[0], h: t[1], c: kind.hasCellState ? t[2] : nil, weights: weights)
                    return [out.h] + (out.c.map { [$0] } ?? [])
                })
                cases.append(ConformanceCase(
                    op: "regulator_cell", label: "\(kind) \(formatShape(state))", primitive: primitive,
                    inputShapes: stateInputs + weightShapes, offsetInputs: i == 1,
                    forward: tol, backward: tol, finiteDifference: i == 0, finiteDifferenceStep: 1e-3))
            }
        }
        return cases
    }
}
