import Clover

extension ConformanceSuite {
    /// ConvLSTM / ConvGRU gates at RegNet-20's state shapes scaled down
    /// (N = 16/32/64 channels per stage, CIFAR spatial sizes shrunk), plus
    /// awkward sizes. Transcendentals in float (exp, tanh) against Double:
    /// a few ulps per op, chained through at most three of them.
    static func convRNNCases() -> [ConformanceCase] {
        let tol = Tolerance(absolute: 2e-6, relative: 2e-5)
        var cases: [ConformanceCase] = []
        let states: [[Int]] = [[1, 1, 1, 1], [2, 3, 7, 5], [1, 16, 8, 8], [2, 32, 4, 4], [3, 64, 3, 3], [1, 13, 13, 1]]
        for (i, s) in states.enumerated() {
            let small = s.reduce(1, *) <= 120
            let offset = i % 2 == 1
            let label = formatShape(s) + (offset ? " offset" : "")
            let pre4 = [s[0], 4 * s[1], s[2], s[3]], pre2 = [s[0], 2 * s[1], s[2], s[3]]
            // Pre-activations spread over [-3, 3] reach the saturating tails of σ and tanh.
            cases.append(ConformanceCase(op: "lstm_cell", label: label, primitive: LSTMCell(), inputShapes: [pre4, s],
                                         distributions: [.uniform(-3, 3), .uniform(-2, 2)], offsetInputs: offset,
                                         forward: tol, backward: tol, finiteDifference: small,
                                         finiteDifferenceStep: 1e-3))
            cases.append(ConformanceCase(op: "gru_gates", label: label, primitive: GRUGates(), inputShapes: [pre2, s],
                                         distributions: [.uniform(-3, 3), .uniform(-2, 2)], offsetInputs: offset,
                                         forward: tol, backward: tol, finiteDifference: small,
                                         finiteDifferenceStep: 1e-3))
            cases.append(ConformanceCase(op: "gru_output", label: label, primitive: GRUOutput(), inputShapes: [s, s, s],
                                         distributions: [.uniform(0, 1), .uniform(-3, 3), .uniform(-2, 2)],
                                         offsetInputs: offset, forward: tol, backward: tol, finiteDifference: small,
                                         finiteDifferenceStep: 1e-3))
        }
        return cases
    }
}
