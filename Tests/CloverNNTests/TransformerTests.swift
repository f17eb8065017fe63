import Clover
@testable import CloverNN
import XCTest

/// The transformer layers: the attention composed for probability dropout
/// against the fused op, post-LN behaviour of the encoder layer, embedding
/// initialisation and BERT's state names.
final class TransformerTests: XCTestCase {
    private func devices() -> [Device] {
        [.reference] + ((try? openCLDevice()).map { [$0] } ?? [])
    }

    func testComposedAttentionEqualsTheFusedOp() throws {
        var rng = SplitMix64(seed: 4)
        let shape = [2, 5, 8]
        let values = (0..<3).map { _ in rng.uniformArray(count: 80, bound: 1) }
        let weights = rng.uniformArray(count: 80, bound: 1)
        let mask = try KeyPaddingMask(lengths: [5, 3], keys: 5)
        for device in devices() {
            // Dropout 0: the composed path's dropout is the identity, so both compute the same function.
            let mha = try MultiheadAttention(hidden: 8, heads: 2, dropout: 0, initializer: Initializer(device: device))
            var results: [[[Float]]] = []
            for composed in [false, true] {
                let qkv = try values.map { try Tensor(shape: shape, values: $0, on: device) }
                qkv.forEach { $0.requiresGrad = true }
                let y = try mha.attend(qkv[0], qkv[1], qkv[2], mask: mask, composed: composed)
                try y.backward(try Tensor(shape: shape, values: weights, on: device))
                results.append([try y.toArray()] + (try qkv.map { try XCTUnwrap($0.grad).toArray() }))
            }
            for (i, (fused, composed)) in zip(results[0], results[1]).enumerated() {
                for (a, b) in zip(fused, composed) { XCTAssertEqual(a, b, accuracy: 1e-5, "\(device) output/grad \(i)") }
            }
        }
    }

    func testEncoderLayerIsPostLayerNormWithDropoutOnlyInTraining() throws {
        let device = Device.reference
        let layer = try TransformerEncoderLayer(hidden: 8, heads: 2, intermediate: 16, dropout: 0.5, attentionDropout: 0.5,
                                                initializer: Initializer(device: device, seed: 2))
        var rng = SplitMix64(seed: 8)
        let x = try Tensor(shape: [2, 4, 8], values: rng.uniformArray(count: 64, bound: 1), on: device)
        let mask = try KeyPaddingMask(lengths: [4, 2], keys: 4)
        layer.eval()
        let a = try layer(x, mask: mask).toArray(), b = try layer(x, mask: mask).toArray()
        XCTAssertEqual(a, b, "evaluation is deterministic")
        // The last op is a LayerNormalization with weight 1, bias 0: every row has mean 0 and variance ≈ 1.
        for r in 0..<8 {
            let row = a[(r * 8)..<(r * 8 + 8)].map(Double.init)
            let mean = row.reduce(0, +) / 8
            XCTAssertEqual(mean, 0, accuracy: 1e-5)
            XCTAssertEqual(row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 8, 1, accuracy: 1e-3)
        }
        layer.train()
        XCTAssertTrue(layer.attention.probabilityDropout.isTraining && layer.outputDropout.isTraining)
        XCTAssertNotEqual(try layer(x, mask: mask).toArray(), a, "dropout acts in training")
    }

    func testEmbeddingInitialisationsAndLookup() throws {
        func std(_ e: Embedding) throws -> Double {
            let v = try e.weight.tensor.toArray().map(Double.init)
            return (v.map { $0 * $0 }.reduce(0, +) / Double(v.count)).squareRoot()
        }
        let pytorch = try Embedding(1000, 16, initializer: Initializer(device: .reference, seed: 1))
        let bert = try Embedding(1000, 16, initialization: .bert, initializer: Initializer(device: .reference, seed: 1))
        XCTAssertEqual(try std(pytorch), 1, accuracy: 0.03)
        XCTAssertEqual(try std(bert), 0.02, accuracy: 0.0006)
        let table = try bert.weight.tensor.toArray()
        let rows = try bert(TokenIDs([7, 0, 999], shape: [1, 3])).toArray()
        XCTAssertEqual(rows, Array(table[(7 * 16)..<(8 * 16)] + table[0..<16] + table[(999 * 16)...]))
        let linear = try Linear(16, 4, initialization: .bert, initializer: Initializer(device: .reference))
        XCTAssertEqual(try linear.bias?.tensor.toArray(), [0, 0, 0, 0])
    }

    func testEncoderNamesAreBERTs() throws {
        let encoder = try TransformerEncoder(layers: 2, hidden: 8, heads: 2, intermediate: 16,
                                             initializer: Initializer(device: .meta))
        let names = encoder.namedParameters().map(\.0)
        XCTAssertEqual(names.count, 32)
        XCTAssertEqual(Array(names.prefix(4)), ["layer.0.attention.self.query.weight", "layer.0.attention.self.query.bias",
                                                "layer.0.attention.self.key.weight", "layer.0.attention.self.key.bias"])
        XCTAssertTrue(names.contains("layer.1.attention.output.LayerNorm.weight"))
        XCTAssertTrue(names.contains("layer.1.intermediate.dense.bias"))
        XCTAssertEqual(names.last, "layer.1.output.LayerNorm.bias")
        // Every dropout is reached by train()/eval() through the renamed children.
        encoder.eval()
        XCTAssertTrue(encoder.allModules().allSatisfy { !$0.isTraining })
        XCTAssertEqual(encoder.allModules().filter { $0 is Dropout }.count, 6)
    }
}
