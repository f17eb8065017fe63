import Clover

extension ConformanceSuite {
    /// Fused SGD and AdamW over flat arenas with several segments (some
    /// exempt from weight decay), awkward lengths and offsets. No gradient:
    /// an update is not differentiated.
    static func optimizerCases() -> [ConformanceCase] {
        // A handful of float ops per element against Double on the host;
        // AdamW divides by sqrt(v̂)+ε, which amplifies rounding when v̂ is tiny.
        let sgdTol = Tolerance(absolute: 1e-6, relative: 1e-5)
        let adamTol = Tolerance(absolute: 1e-5, relative: 1e-4)
        var cases: [ConformanceCase] = []
        // Segment layouts: one tensor; ResNet-like conv + BN + bias mix (scaled down); many tiny tensors.
        let layouts: [(String, [Int], [Bool])] = [
            ("1 segment", [97], [true]),
            ("conv+bn+fc", [3 * 3 * 3 * 16, 16, 16, 16 * 10, 10], [true, false, false, true, false]),
            ("13 tiny", [Int](repeating: 1, count: 7) + [3, 7, 13, 33, 1, 2], (0..<13).map { $0 % 2 == 0 }),
        ]
        for (label, sizes, decays) in layouts {
            let segments = ParameterSegments(sizes: sizes, decays: decays)
            let n = segments.totalCount
            let configs: [(String, SGDConfiguration)] = [
                ("plain", SGDConfiguration(learningRate: 0.1)),
                ("momentum wd", SGDConfiguration(learningRate: 0.05, momentum: 0.9, weightDecay: 5e-4)),
                ("nesterov wd dampening", SGDConfiguration(learningRate: 0.05, momentum: 0.9, dampening: 0.1,
                                                           nesterov: true, weightDecay: 1e-2)),
            ]
            for (name, config) in configs {
                cases.append(ConformanceCase(
                    op: "sgd_update", label: "\(label) n\(n) \(name)", primitive: SGDUpdate(config, segments: segments),
                    inputShapes: [[n], [n], [n]], offsetInputs: label != "1 segment",
                    forward: sgdTol, backward: sgdTol, checkGradients: false))
            }
            for step in [1, 10] {
                let config = AdamWConfiguration(learningRate: 1e-3, weightDecay: 0.05)
                cases.append(ConformanceCase(
                    op: "adamw_update", label: "\(label) n\(n) step \(step)",
                    primitive: AdamWUpdate(config, step: step, segments: segments),
                    inputShapes: [[n], [n], [n], [n]],
                    // v is a running mean of squares: keep it non-negative.
                    distributions: [.uniform(-1, 1), .uniform(-1, 1), .uniform(-0.1, 0.1), .uniform(0, 0.01)],
                    offsetInputs: step == 10, forward: adamTol, backward: adamTol, checkGradients: false))
            }
        }
        return cases
    }
}
