import Clover

extension ConformanceSuite {
    /// Masked softmax, the head layout and whole multi-head attention at the
    /// shapes of a scaled-down 2-layer BERT/OSCAR encoder (hidden 32 or 48,
    /// 2–4 heads, sequences of 7, 13 and 33, batch 1 and 3), plus awkward
    /// sizes, padded keys, rows with no visible key, causal masks, large
    /// scores and buffer offsets.
    static func attentionCases() -> [ConformanceCase] {
        maskedSoftmaxCases() + headLayoutCases() + scaledDotProductAttentionCases()
    }

    /// A mask whose batch element `b` keeps its first `lengths[b]` keys.
    private static func paddingMask(_ lengths: [Int], keys: Int) -> KeyPaddingMask {
        try! KeyPaddingMask(lengths: lengths, keys: keys)
    }

    /// A left-padded mask: batch element `b` pads its first `pads[b]` keys, so
    /// under a causal mask the first `pads[b]` queries see no key at all.
    private static func leftPaddingMask(_ pads: [Int], keys: Int) -> KeyPaddingMask {
        try! KeyPaddingMask(valid: pads.map { p in (0..<keys).map { $0 >= p } })
    }

    static func maskedSoftmaxCases() -> [ConformanceCase] {
        // Probabilities in [0, 1] from float exp and a float sum of at most a
        // few hundred terms against Double: a few ulp of the largest entry
        // (POCL measures ≤ 1.2e-7; the bound leaves room for other devices'
        // exp and reduction order).
        let forward = Tolerance(absolute: 1e-6, relative: 1e-5)
        // dx = y·(dy − Σ dy·y) adds a float dot product of the row: a few ulp
        // of |dy| ≤ 1 per term (POCL measures ≤ 8e-8).
        let backward = Tolerance(absolute: 1e-6, relative: 1e-5)
        typealias Setup = (label: String, shape: [Int], mask: KeyPaddingMask?, causal: Bool, scale: Float, offset: Bool)
        let setups: [Setup] = [
            ("1x1x1x1", [1, 1, 1, 1], nil, false, 4, false),
            ("1x2x7x7 no mask", [1, 2, 7, 7], nil, false, 4, true),
            ("3x4x13x13 padded 13/6/1", [3, 4, 13, 13], paddingMask([13, 6, 1], keys: 13), false, 4, false),
            ("3x2x33x33 padded 33/20/0 (all-masked batch)", [3, 2, 33, 33], paddingMask([33, 20, 0], keys: 33), false, 4, true),
            ("1x3x33x33 causal", [1, 3, 33, 33], nil, true, 4, false),
            ("3x2x13x13 causal left-padded 0/4/13 (all-masked rows)", [3, 2, 13, 13],
             leftPaddingMask([0, 4, 13], keys: 13), true, 4, true),
            ("3x2x7x13 cross, padded 13/7/2", [3, 2, 7, 13], paddingMask([13, 7, 2], keys: 13), false, 4, false),
            ("1x1x13x7 causal, more queries than keys", [1, 1, 13, 7], nil, true, 4, false),
            ("1x1x3x300 keys past the work-group, padded 250", [1, 1, 3, 300], paddingMask([250], keys: 300), false, 4, true),
            ("3x4x13x13 large scores ±80 padded 13/9/3", [3, 4, 13, 13], paddingMask([13, 9, 3], keys: 13), false, 80, false),
            ("1x2x7x7 large scores ±80 causal", [1, 2, 7, 7], nil, true, 80, true),
            ("2x1x3x5 small padded 5/2", [2, 1, 3, 5], paddingMask([5, 2], keys: 5), false, 2, false),
            ("1x2x4x4 small causal", [1, 2, 4, 4], nil, true, 2, false),
        ]
        return setups.map { s in
            ConformanceCase(op: "masked_softmax", label: s.label,
                            primitive: MaskedSoftmax(mask: s.mask, causal: s.causal), inputShapes: [s.shape],
                            distributions: [.uniform(-s.scale, s.scale)], offsetInputs: s.offset,
                            forward: forward, backward: backward,
                            // Scores of ±80 make the softmax a step: finite differences
                            // would measure rounding, not the derivative.
                            finiteDifference: s.shape.reduce(1, *) <= 400 && s.scale < 10)
        }
    }

    static func headLayoutCases() -> [ConformanceCase] {
        // A pure permutation: the device must reproduce every value exactly.
        let exact = Tolerance(absolute: 0, relative: 0)
        var cases: [ConformanceCase] = []
        for (shape, heads) in [([1, 1, 1], 1), ([3, 13, 32], 4), ([1, 33, 48], 3), ([3, 7, 12], 2)] {
            let dh = shape[2] / heads
            cases.append(ConformanceCase(op: "split_heads", label: "\(formatShape(shape)) heads \(heads)",
                                         primitive: SplitHeads(heads: heads), inputShapes: [shape],
                                         offsetInputs: heads == 3, forward: exact, backward: exact))
            cases.append(ConformanceCase(op: "merge_heads", label: "\(formatShape([shape[0], heads, shape[1], dh]))",
                                         primitive: MergeHeads(), inputShapes: [[shape[0], heads, shape[1], dh]],
                                         offsetInputs: heads == 2, forward: exact, backward: exact))
        }
        return cases
    }

    static func scaledDotProductAttentionCases() -> [ConformanceCase] {
        // Q·Kᵀ and A·V are float GEMMs over Dh ≤ 16 and Lk ≤ 33 terms and the
        // softmax adds a few ulp; outputs are O(1), so errors stay near 1e-6
        // (POCL measures ≤ 8.4e-7, on the peaked-score case).
        let forward = Tolerance(absolute: 1e-5, relative: 1e-4)
        // The gradient chains four GEMMs and the softmax backward, each with
        // the same float-sum error: a few times the forward error (POCL
        // measures ≤ 9.6e-7).
        let backward = Tolerance(absolute: 2e-5, relative: 1e-4)
        typealias Setup = (label: String, q: [Int], kv: [Int], vWidth: Int, heads: Int,
                           mask: KeyPaddingMask?, causal: Bool, scale: Float, offset: Bool, fd: Bool)
        let setups: [Setup] = [
            ("encoder h32 heads2 seq7 batch1", [1, 7, 32], [1, 7, 32], 32, 2, nil, false, 1, false, false),
            ("encoder h32 heads4 seq13 batch3 padded 13/9/4", [3, 13, 32], [3, 13, 32], 32, 4,
             paddingMask([13, 9, 4], keys: 13), false, 1, true, false),
            ("encoder h48 heads4 seq33 batch3 padded 33/17/0 (all-masked batch)", [3, 33, 48], [3, 33, 48], 48, 4,
             paddingMask([33, 17, 0], keys: 33), false, 1, false, false),
            ("encoder h48 heads3 seq33 batch1 causal", [1, 33, 48], [1, 33, 48], 48, 3, nil, true, 1, true, false),
            ("decoder h32 heads2 seq13 batch3 causal left-padded 0/5/12 (all-masked rows)", [3, 13, 32], [3, 13, 32], 32, 2,
             leftPaddingMask([0, 5, 12], keys: 13), true, 1, false, false),
            ("cross h32 heads4 q7 kv13 batch3 padded 13/6/1", [3, 7, 32], [3, 13, 32], 32, 4,
             paddingMask([13, 6, 1], keys: 13), false, 1, false, false),
            ("h48 heads4 seq13 batch1 peaked scores (inputs ±3)", [1, 13, 48], [1, 13, 48], 48, 4, nil, false, 3, false, false),
            ("awkward h3 heads1 seq1 batch1", [1, 1, 3], [1, 1, 3], 3, 1, nil, false, 1, false, true),
            ("small h8 heads2 q3 kv4 v-width 6 batch2 padded 4/2", [2, 3, 8], [2, 4, 8], 6, 2,
             paddingMask([4, 2], keys: 4), false, 1, true, true),
            ("small h6 heads3 seq5 batch1 causal", [1, 5, 6], [1, 5, 6], 6, 3, nil, true, 1, false, true),
        ]
        var cases = setups.map { s in
            ConformanceCase(op: "attention", label: s.label,
                            primitive: ScaledDotProductAttention(heads: s.heads, mask: s.mask, causal: s.causal),
                            inputShapes: [s.q, s.kv, [s.kv[0], s.kv[1], s.vWidth]],
                            distributions: Array(repeating: .uniform(-s.scale, s.scale), count: 3),
                            offsetInputs: s.offset, forward: forward, backward: backward, finiteDifference: s.fd)
        }
        // Both products on the tensor cores (emulated on devices without them), against a reference
        // that rounds q, k, v and the probabilities to TF32 as the products do. The probabilities
        // are rounded from FP32 on the device and from Double here, so now and then one lands on
        // the other side of a TF32 rounding boundary: an error of one TF32 ulp (2^-10 relative) of
        // one p·v term, which the tolerance admits (layout or masking errors are O(1)).
        let tf32 = Tolerance(absolute: 1e-3, relative: 1e-3)
        let sets = ConvGemmParameters.searchSpace.filter { $0.form == .tensorCore }
        for (index, s) in setups.enumerated() where [1, 3, 4, 5, 8].contains(index) {
            let set = sets[index % sets.count]
            cases.append(ConformanceCase(op: "attention", label: "\(s.label) forced \(set)",
                                         primitive: ScaledDotProductAttention(heads: s.heads, mask: s.mask, causal: s.causal,
                                                                              tensorCoreSet: set),
                                         inputShapes: [s.q, s.kv, [s.kv[0], s.kv[1], s.vWidth]],
                                         distributions: Array(repeating: .uniform(-s.scale, s.scale), count: 3),
                                         offsetInputs: s.offset, forward: tf32, backward: tf32))
        }
        return cases
    }
}
