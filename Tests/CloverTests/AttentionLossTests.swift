import Clover
import CloverConformance
import CloverRuntime
import XCTest

/// Attention, embedding, linear and loss ops: their conformance sweeps, the
/// edge cases they promise (all-masked rows, repeated ids, ties, all-ignored
/// tokens), bad input, and a 2-layer encoder whose loss and gradients must
/// match the CPU reference end to end.
final class AttentionLossTests: XCTestCase {
    private func sweep(_ ops: Set<String>) throws {
        try assertConformance(ConformanceSuite.allCases().filter { ops.contains($0.op) })
    }

    func testMaskedSoftmaxConformance() throws { try sweep(["masked_softmax"]) }
    func testHeadLayoutConformance() throws { try sweep(["split_heads", "merge_heads"]) }
    func testAttentionConformance() throws { try sweep(["attention"]) }
    func testLinearConformance() throws { try sweep(["linear", "bias_add"]) }
    func testEmbeddingConformance() throws { try sweep(["embedding"]) }
    func testLossConformance() throws { try sweep(["masked_token_xent", "bce_with_logits", "argmax"]) }

    private func devices() throws -> [Device] { [.reference, try TestDevice.get()] }

    private func assertClose(_ actual: [Float], _ expected: [Float], accuracy: Float, _ message: String = "",
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, message, file: file, line: line)
        for (i, (a, e)) in zip(actual, expected).enumerated() {
            XCTAssertEqual(a, e, accuracy: accuracy, "\(message) element \(i)", file: file, line: line)
        }
    }

    // MARK: Masked softmax and attention

    func testAllMaskedRowsAreZeroWithZeroGradient() throws {
        for device in try devices() {
            // Batch 0 keeps 2 of 4 keys, batch 1 none; causal on top leaves
            // query 0 of batch 0 with key 0 only.
            let mask = try KeyPaddingMask(lengths: [2, 0], keys: 4)
            let scores = try Tensor(shape: [2, 1, 3, 4], values: (0..<24).map { Float($0 % 5) - 2 }, on: device)
            let op = MaskedSoftmax(mask: mask, causal: true)
            let y = try apply1(op, [scores])
            let values = try y.toArray()
            XCTAssertFalse(values.contains { $0.isNaN }, "\(device)")
            XCTAssertEqual(Array(values[12..<24]), [Float](repeating: 0, count: 12), "all-masked batch on \(device)")
            XCTAssertEqual(Array(values[0..<4]), [1, 0, 0, 0], "query 0 sees key 0 only on \(device)")
            for row in 0..<3 {
                XCTAssertEqual(values[row * 4 + 2], 0)
                XCTAssertEqual(values[row * 4 + 3], 0)
                XCTAssertEqual(Double(values[row * 4] + values[row * 4 + 1]), 1, accuracy: 1e-6)
            }
            let dy = try Tensor(shape: [2, 1, 3, 4], values: (0..<24).map { Float($0) / 7 }, on: device)
            let dx = try op.vjp(inputs: [scores], outputs: [y], cotangents: [dy])[0]!.toArray()
            XCTAssertEqual(Array(dx[12..<24]), [Float](repeating: 0, count: 12), "zero gradient on \(device)")
            XCTAssertEqual(dx[2], 0)
            XCTAssertEqual(dx[3], 0)

            // Whole attention: the padded batch's outputs and input gradients are 0.
            let q = try Tensor(shape: [2, 3, 4], values: (0..<24).map { Float($0 % 7) / 7 }, on: device)
            let kv = try Tensor(shape: [2, 4, 4], values: (0..<32).map { Float($0 % 5) / 5 - 0.3 }, on: device)
            let sdpa = ScaledDotProductAttention(heads: 2, mask: mask)
            let out = try apply1(sdpa, [q, kv, kv])
            let outValues = try out.toArray()
            XCTAssertFalse(outValues.contains { $0.isNaN })
            XCTAssertEqual(Array(outValues[12..<24]), [Float](repeating: 0, count: 12))
            let g = try Tensor.full([2, 3, 4], value: 1, on: device)
            let grads = try sdpa.vjp(inputs: [q, kv, kv], outputs: [out], cotangents: [g])
            for grad in grads {
                let v = try grad!.toArray()
                XCTAssertFalse(v.contains { $0.isNaN })
                XCTAssertEqual(Array(v[(v.count / 2)...]), [Float](repeating: 0, count: v.count / 2))
            }
        }
    }

    func testAttentionMatchesAHandComputedExample() throws {
        // One head, Dh = 1: scores = q·k, so softmax([1·1, 1·2]) = [1, e]/(1 + e).
        let e = Float(2.718281828459045)
        for device in try devices() {
            let q = try Tensor(shape: [1, 1, 1], values: [1], on: device)
            let k = try Tensor(shape: [1, 2, 1], values: [1, 2], on: device)
            let v = try Tensor(shape: [1, 2, 2], values: [10, 0, 0, 10], on: device)
            let out = try attention(q, k, v, heads: 1).toArray()
            assertClose(out, [10 / (1 + e), 10 * e / (1 + e)], accuracy: 1e-5, "\(device)")
            // Padding the second key leaves the first one alone.
            let masked = try attention(q, k, v, heads: 1, mask: try KeyPaddingMask(lengths: [1], keys: 2)).toArray()
            assertClose(masked, [10, 0], accuracy: 1e-6, "\(device)")
        }
    }

    // MARK: Embedding

    func testEmbeddingRepeatedIdsAccumulateDeterministically() throws {
        let ids = try TokenIDs([1, 1, 3, 1, 0, 1], shape: [2, 3])
        let tableValues: [Float] = [0, 1, 10, 11, 20, 21, 30, 31]
        let dyValues: [Float] = (0..<12).map { Float($0 + 1) }
        // Row 1 gets tokens 0, 1, 3 and 5; row 2 none.
        let expected: [Float] = [9, 10, 1 + 3 + 7 + 11, 2 + 4 + 8 + 12, 0, 0, 5, 6]
        for device in try devices() {
            let table = try Tensor(shape: [4, 2], values: tableValues, on: device)
            let y = try embedding(table, ids: ids)
            XCTAssertEqual(y.shape, [2, 3, 2])
            XCTAssertEqual(try y.toArray(), [10, 11, 10, 11, 30, 31, 10, 11, 0, 1, 10, 11])
            let dy = try Tensor(shape: [2, 3, 2], values: dyValues, on: device)
            let first = try EmbeddingLookup(ids: ids).vjp(inputs: [table], outputs: [y], cotangents: [dy])[0]!.toArray()
            XCTAssertEqual(first, expected, "\(device)")
            let again = try EmbeddingLookup(ids: ids).vjp(inputs: [table], outputs: [y], cotangents: [dy])[0]!.toArray()
            XCTAssertEqual(first.map(\.bitPattern), again.map(\.bitPattern), "bitwise repeatable on \(device)")
        }
    }

    // MARK: Losses, argmax, accuracy

    func testArgmaxTakesTheFirstOfTiesAndAccuracyIsAFraction() throws {
        for device in try devices() {
            let logits = try Tensor(shape: [4, 3], values: [1, 3, 3, 2, 2, 1, 0, 0, 0, -1, 5, 5], on: device)
            XCTAssertEqual(try argmax(logits).toArray(), [1, 0, 0, 1])
            XCTAssertEqual(try argmax(try Tensor(shape: [3], values: [2, 7, 7], on: device)).shape, [])
            XCTAssertEqual(try accuracy(logits, labels: ClassLabels([1, 1, 0, 2])), 0.5)
            XCTAssertEqual(try accuracy(logits, labels: ClassLabels([1, -100, 0, -100]), ignoreIndex: -100), 1)
            XCTAssertEqual(try accuracy(logits, labels: ClassLabels([-100, -100, -100, -100]), ignoreIndex: -100), 0)
        }
    }

    func testLabelSmoothingFollowsPyTorch() throws {
        // target = (1 − ε)·onehot + ε/C; loss = −Σ target·log softmax.
        let x: [Double] = [1, 2, 3, -1, 0.5, 0.25], labels = [0, 2], epsilon = 0.1
        var expected = 0.0
        for r in 0..<2 {
            let row = Array(x[(r * 3)..<(r * 3 + 3)])
            let lse = log(row.map { exp($0) }.reduce(0, +))
            for c in 0..<3 {
                let t = (c == labels[r] ? 1 - epsilon : 0) + epsilon / 3
                expected -= t * (row[c] - lse)
            }
        }
        expected /= 2
        for device in try devices() {
            let logits = try Tensor(shape: [2, 3], values: x.map { Float($0) }, on: device)
            let loss = try softmaxCrossEntropy(logits, labels: ClassLabels(labels), labelSmoothing: Float(epsilon))
            XCTAssertEqual(Double(try loss.toArray()[0]), expected, accuracy: 1e-6, "\(device)")
            // The same through the ignore-index loss with nothing ignored.
            let masked = try maskedTokenCrossEntropy(logits, labels: ClassLabels(labels), labelSmoothing: Float(epsilon))
            XCTAssertEqual(Double(try masked.toArray()[0]), expected, accuracy: 1e-6, "\(device)")
        }
    }

    func testBinaryCrossEntropyIsFiniteForLargeLogits() throws {
        for device in try devices() {
            let x = try Tensor(shape: [4], values: [80, -80, 0, -80], on: device)
            let t = try Tensor(shape: [4], values: [1, 0, 0.5, 1], on: device)
            let loss = try binaryCrossEntropyWithLogits(x, targets: t)
            // Terms: ≈0, ≈0, log 2, 80.
            XCTAssertEqual(Double(try loss.toArray()[0]), (0.6931471805599453 + 80) / 4, accuracy: 1e-5, "\(device)")
            let grads = try BinaryCrossEntropyWithLogits().vjp(inputs: [x, t], outputs: [loss],
                                                               cotangents: [try Tensor.full([], value: 1, on: device)])
            XCTAssertNil(grads[1], "targets get no gradient")
            assertClose(try grads[0]!.toArray(), [0, 0, 0, -0.25], accuracy: 1e-6, "\(device)")
        }
    }

    func testMaskedTokenLossIgnoresPositionsAndAllIgnoredIsZero() throws {
        for device in try devices() {
            let logits = try Tensor(shape: [3, 4], values: (0..<12).map { Float($0 % 5) }, on: device)
            // Only row 1 counts: equal to the plain loss of that row alone.
            let one = try maskedTokenCrossEntropy(logits, labels: ClassLabels([-100, 2, -100])).toArray()[0]
            let row = try Tensor(shape: [1, 4], values: [4, 0, 1, 2], on: device)
            XCTAssertEqual(one, try softmaxCrossEntropy(row, labels: ClassLabels([2])).toArray()[0], accuracy: 1e-6)

            let op = MaskedTokenCrossEntropy(labels: ClassLabels([-100, -100, -100]))
            let loss = try apply1(op, [logits])
            XCTAssertEqual(try loss.toArray(), [0], "\(device)")
            let grad = try op.vjp(inputs: [logits], outputs: [loss], cotangents: [try Tensor.full([], value: 1, on: device)])
            XCTAssertEqual(try grad[0]!.toArray(), [Float](repeating: 0, count: 12), "\(device)")
        }
    }

    // MARK: Bad input

    func testBadInputNamesTheOpAndShapes() throws {
        func assertError(_ body: @autoclosure () throws -> Any, contains fragments: [String],
                         file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try body(), file: file, line: line) { error in
                for fragment in fragments {
                    XCTAssertTrue("\(error)".contains(fragment), "'\(error)' lacks '\(fragment)'", file: file, line: line)
                }
            }
        }
        for device in try devices() {
            let scores = try Tensor.zeros([2, 1, 3, 4], on: device)
            assertError(try maskedSoftmax(scores, mask: try KeyPaddingMask(lengths: [1, 2, 3], keys: 4)),
                        contains: ["masked_softmax", "2x1x3x4", "3x4"])
            assertError(try maskedSoftmax(try Tensor.zeros([3, 4], on: device)), contains: ["masked_softmax", "3x4"])
            assertError(try KeyPaddingMask(lengths: [5], keys: 4), contains: ["length 5"])
            let q = try Tensor.zeros([2, 3, 6], on: device)
            assertError(try attention(q, q, q, heads: 4), contains: ["attention", "2x3x6", "4 heads"])
            assertError(try attention(q, try Tensor.zeros([2, 3, 8], on: device), q, heads: 2), contains: ["attention", "2x3x8"])
            let table = try Tensor.zeros([5, 3], on: device)
            assertError(try embedding(table, ids: try TokenIDs([0, 5], shape: [1, 2])),
                        contains: ["embedding", "token id 5", "position 1", "0..<5"])
            assertError(try TokenIDs([0, 1, 2], shape: [2, 2]), contains: ["3 ids", "4 positions"])
            assertError(try linear(q, weight: try Tensor.zeros([4, 5], on: device)), contains: ["linear", "2x3x6", "4x5"])
            assertError(try linear(q, weight: try Tensor.zeros([4, 6], on: device), bias: try Tensor.zeros([3], on: device)),
                        contains: ["linear", "bias must be [out] = [4]"])
            let logits = try Tensor.zeros([3, 4], on: device)
            assertError(try maskedTokenCrossEntropy(logits, labels: ClassLabels([0, -1, -100])),
                        contains: ["masked_token_xent", "label -1", "row 1"])
            assertError(try softmaxCrossEntropy(logits, labels: ClassLabels([0, 1, 2]), labelSmoothing: 1.5),
                        contains: ["softmax_cross_entropy", "label smoothing 1.5"])
            assertError(try binaryCrossEntropyWithLogits(logits, targets: try Tensor.zeros([4, 3], on: device)),
                        contains: ["bce_with_logits", "3x4", "4x3"])
            assertError(try apply1(Argmax(axis: 0), [logits]), contains: ["argmax", "3x4", "last axis"])
        }
    }

    // MARK: End to end

    /// A 2-layer post-residual encoder (hidden 32, 4 heads, feed-forward 64,
    /// vocabulary 50, batch 3 × 7 tokens with padding) under a masked-token
    /// loss: the loss and every parameter's gradient, obtained by chaining
    /// vjps, must match between the CPU reference and the device.
    func testTwoLayerEncoderMatchesTheReference() throws {
        let device = try TestDevice.get()
        let (batch, length, hidden, heads, ffn, vocabulary) = (3, 7, 32, 4, 64, 50)
        var rng = SeededGenerator(seed: 2024)
        func values(_ shape: [Int], scale: Float) -> [Float] {
            (0..<shape.reduce(1, *)).map { _ in Float.random(in: -scale...scale, using: &rng) }
        }
        var shapes: [[Int]] = [[vocabulary, hidden]]
        for _ in 0..<2 {
            for (out, fanIn) in [(hidden, hidden), (hidden, hidden), (hidden, hidden), (hidden, hidden), (ffn, hidden), (hidden, ffn)] {
                shapes += [[out, fanIn], [out]]
            }
        }
        shapes.append([vocabulary, hidden])
        let parameterValues = shapes.map { values($0, scale: 0.3) }
        let ids = try TokenIDs((0..<(batch * length)).map { _ in Int32.random(in: 0..<Int32(vocabulary), using: &rng) },
                               shape: [batch, length])
        let mask = try KeyPaddingMask(lengths: [7, 5, 2], keys: length)
        var labelValues = ids.values
        for i in labelValues.indices where i % 3 != 1 { labelValues[i] = -100 }
        let labels = ClassLabels(labelValues)

        func run(on device: Device) throws -> (loss: Float, grads: [[Float]]) {
            let tape = Tape()
            let params = try zip(shapes, parameterValues).map { try Tensor(shape: $0, values: $1, on: device) }
            var next = 0
            func param() -> Tensor { defer { next += 1 }; return params[next] }
            func dense(_ x: Tensor) throws -> Tensor {
                let w = param(), b = param()
                return try tape.apply(LinearMap(), [x, w, b])
            }
            var x = try tape.apply(EmbeddingLookup(ids: ids), [param()])
            for _ in 0..<2 {
                let q = try dense(x), k = try dense(x), v = try dense(x)
                let a = try tape.apply(ScaledDotProductAttention(heads: heads, mask: mask), [q, k, v])
                x = try tape.apply(BinaryElementwise(.add), [x, try dense(a)])
                let h = try tape.apply(ReLU(), [try dense(x)])
                x = try tape.apply(BinaryElementwise(.add), [x, try dense(h)])
            }
            let logits = try tape.reshape(try tape.apply(LinearMap(), [x, param()]), [batch * length, vocabulary])
            let loss = try tape.apply(MaskedTokenCrossEntropy(labels: labels), [logits])
            let grads = try tape.gradients(of: loss, with: params)
            return (try loss.toArray()[0], try grads.map { try XCTUnwrap($0).toArray() })
        }
        let reference = try run(on: .reference)
        let onDevice = try run(on: device)
        XCTAssertEqual(onDevice.loss, reference.loss, accuracy: 1e-5 * max(1, abs(reference.loss)))
        XCTAssertEqual(onDevice.grads.count, shapes.count)
        for (i, (d, r)) in zip(onDevice.grads, reference.grads).enumerated() {
            // Normwise: a few float GEMM and softmax roundings per layer on
            // gradients of size max|r|.
            let scale = r.map { abs($0) }.max() ?? 0
            let err = zip(d, r).map { abs($0 - $1) }.max() ?? 0
            XCTAssertGreaterThan(scale, 0, "parameter \(i) \(shapes[i]) gets a gradient")
            XCTAssertLessThanOrEqual(err, 1e-4 * scale + 1e-7, "parameter \(i) \(shapes[i]): max error \(err), max |grad| \(scale)")
        }
    }
}

/// A minimal reverse-mode tape for tests: records each primitive application
/// and chains the vjps backwards, summing gradients of reused tensors.
private final class Tape {
    private var steps: [(inputs: [Tensor], output: Tensor, backward: (Tensor) throws -> [Tensor?])] = []

    func apply(_ primitive: Primitive, _ inputs: [Tensor]) throws -> Tensor {
        let outputs = try Clover.apply(primitive, inputs)
        steps.append((inputs, outputs[0], { g in try primitive.vjp(inputs: inputs, outputs: outputs, cotangents: [g]) }))
        return outputs[0]
    }

    func reshape(_ x: Tensor, _ shape: [Int]) throws -> Tensor {
        let y = try x.reshaped(shape)
        steps.append(([x], y, { g in [try g.reshaped(x.shape)] }))
        return y
    }

    func gradients(of loss: Tensor, with respectTo: [Tensor]) throws -> [Tensor?] {
        var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(loss): try Tensor.full(loss.shape, value: 1, on: loss.device)]
        for step in steps.reversed() {
            guard let g = grads[ObjectIdentifier(step.output)] else { continue }
            for (x, gx) in zip(step.inputs, try step.backward(g)) {
                guard let gx else { continue }
                let key = ObjectIdentifier(x)
                grads[key] = try grads[key].map { try add($0, gx) } ?? gx
            }
        }
        return respectTo.map { grads[ObjectIdentifier($0)] }
    }
}
