import Clover

extension ConformanceSuite {
    /// Softmax cross-entropy (with and without label smoothing), masked-token
    /// cross-entropy, binary cross-entropy with logits and argmax: awkward row
    /// and class counts, large logits (the max subtraction must keep them
    /// finite), offsets.
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
        // Label smoothing (PyTorch semantics): the target gains ε/C on every
        // class, so every logit contributes to the loss and its gradient.
        for (rows, classes, epsilon, offset) in [(3, 7, 0.1, false), (13, 33, 0.1, true), (7, 1000, 0.2, false),
                                                 (5, 4, 1.0, false), (1, 1, 0.1, false)] as [(Int, Int, Float, Bool)] {
            let labels = ClassLabels((0..<rows).map { _ in Int32.random(in: 0..<Int32(classes), using: &rng) })
            cases.append(ConformanceCase(
                op: "softmax_cross_entropy", label: "rows \(rows) classes \(classes) smoothing \(epsilon)\(offset ? " offset" : "")",
                primitive: SoftmaxCrossEntropy(labels: labels, labelSmoothing: epsilon), inputShapes: [[rows, classes]],
                distributions: [.uniform(-4, 4)], offsetInputs: offset, forward: tol, backward: tol,
                finiteDifference: rows * classes <= 400))
        }
        // ±80 logits with smoothing: the ε/C·Σ(x − m) term is ~80 per class, so
        // the forward keeps the same relative tolerance on a larger loss.
        cases.append(ConformanceCase(
            op: "softmax_cross_entropy", label: "rows 3 classes 5 large logits ±80 smoothing 0.1",
            primitive: SoftmaxCrossEntropy(labels: labels, labelSmoothing: 0.1), inputShapes: [[3, 5]],
            distributions: [.uniform(-80, 80)], forward: tol, backward: tol))
        return cases + maskedTokenCases(&rng) + binaryCrossEntropyCases() + argmaxCases()
    }

    /// Token cross-entropy with PyTorch's ignore index −100: BERT-style
    /// masked-LM labels (most positions ignored), none ignored, all ignored
    /// (loss 0, zero gradient), smoothing, large logits, offsets.
    static func maskedTokenCases(_ rng: inout SeededGenerator) -> [ConformanceCase] {
        // Same per-row float logsumexp as softmax_cross_entropy.
        let tol = Tolerance(absolute: 1e-5, relative: 1e-4)
        var cases: [ConformanceCase] = []
        typealias Setup = (tokens: Int, vocabulary: Int, ignoredFraction: Double, smoothing: Float, scale: Float, offset: Bool)
        let setups: [Setup] = [
            (39, 97, 0.85, 0, 4, false),     // batch 3 × seq 13, 15% of tokens predicted
            (99, 1000, 0.5, 0, 4, true),     // batch 3 × seq 33
            (7, 13, 0, 0, 4, false),         // nothing ignored: equals softmax_cross_entropy
            (7, 13, 1, 0, 4, true),          // everything ignored: loss 0, gradient 0
            (5, 11, 0.4, 0, 4, false),
            (13, 33, 0.5, 0.1, 4, false),
            (13, 9, 0.3, 0, 80, false),      // large logits ±80
        ]
        for s in setups {
            var values = (0..<s.tokens).map { _ in Int32.random(in: 0..<Int32(s.vocabulary), using: &rng) }
            for i in values.indices where Double.random(in: 0..<1, using: &rng) < s.ignoredFraction { values[i] = -100 }
            if s.ignoredFraction == 1 { values = values.map { _ in -100 } }
            let ignored = values.filter { $0 == -100 }.count
            cases.append(ConformanceCase(
                op: "masked_token_xent",
                label: "tokens \(s.tokens) vocab \(s.vocabulary) ignored \(ignored)"
                    + (s.smoothing > 0 ? " smoothing \(s.smoothing)" : "") + (s.scale > 10 ? " large logits ±80" : "")
                    + (s.offset ? " offset" : ""),
                primitive: MaskedTokenCrossEntropy(labels: ClassLabels(values), labelSmoothing: s.smoothing),
                inputShapes: [[s.tokens, s.vocabulary]], distributions: [.uniform(-s.scale, s.scale)],
                offsetInputs: s.offset, forward: tol, backward: tol,
                finiteDifference: s.tokens * s.vocabulary <= 200 && s.scale < 10))
        }
        return cases
    }

    /// Binary cross-entropy with logits: awkward sizes, soft targets in
    /// [0, 1], large logits (±80, where the naive form overflows), offsets.
    static func binaryCrossEntropyCases() -> [ConformanceCase] {
        // A float mean of per-element terms with log1p/exp: a few ulp per term.
        let tol = Tolerance(absolute: 1e-5, relative: 1e-4)
        var cases: [ConformanceCase] = []
        for (shape, scale, offset) in [([1], Float(4), false), ([3, 7], 4, true), ([13, 33], 4, false),
                                       ([97, 10], 4, true), ([3, 13, 32], 4, false), ([7, 5], 80, false),
                                       ([2, 3], 2, false)] as [([Int], Float, Bool)] {
            cases.append(ConformanceCase(
                op: "bce_with_logits", label: formatShape(shape) + (scale > 10 ? " large logits ±80" : "") + (offset ? " offset" : ""),
                primitive: BinaryCrossEntropyWithLogits(), inputShapes: [shape, shape],
                distributions: [.uniform(-scale, scale), .uniform(0, 1)], offsetInputs: offset,
                forward: tol, backward: tol, finiteDifference: shape.reduce(1, *) <= 40 && scale < 10))
        }
        return cases
    }

    /// Argmax over the last axis: exact indices, ties resolved to the first.
    static func argmaxCases() -> [ConformanceCase] {
        let exact = Tolerance(absolute: 0, relative: 0)
        var cases: [ConformanceCase] = []
        for (shape, dist, label, offset) in [
            ([1], InputDistribution.uniform(-1, 1), "1", false),
            ([3, 7], .uniform(-1, 1), "3x7", true),
            ([39, 97], .uniform(-80, 80), "39x97 large logits ±80", false),
            ([3, 13, 33], .uniform(-1, 1), "3x13x33", true),
            ([7, 1000], .uniform(-4, 4), "7x1000", false),
            ([5, 13], .uniform(0, 0), "5x13 all tied (index 0)", false),
        ] as [([Int], InputDistribution, String, Bool)] {
            cases.append(ConformanceCase(op: "argmax", label: label, primitive: Argmax(), inputShapes: [shape],
                                         distributions: [dist], offsetInputs: offset, forward: exact, backward: exact,
                                         checkGradients: false))
        }
        return cases
    }
}
