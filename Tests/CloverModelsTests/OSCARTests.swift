import Clover
import CloverModels
import CloverNN
import CloverRuntime
import CloverTestSupport
import XCTest

/// A new device on the OpenCL device under test (see ``TestSupport``).
private func openCLDevice() throws -> Device { try TestSupport.newDevice() }

/// A fixed toy batch: 4 samples of up to 6 words ([CLS] … [SEP]), 4 tags
/// (… [SEP]) and 5 regions of 2054 features, with padding in every block.
private func toyBatch() throws -> OSCARBatch {
    var rng = SplitMix64(seed: 7)
    let special = OSCARSpecialTokens.leading
    func tokens(_ n: Int) -> [Int32] { (0..<n).map { _ in Int32.random(in: 4..<100, using: &rng) } }
    let wordCounts = [6, 5, 6, 4], tagCounts = [4, 3, 4, 2], regionCounts = [5, 5, 3, 4]
    let words = wordCounts.map { [special.classification] + tokens($0 - 2) + [special.separator] }
    let tags = tagCounts.map { tokens($0 - 1) + [special.separator] }
    let regions = regionCounts.map { n in (0..<n).map { _ in (0..<2054).map { _ in Float.random(in: 0..<1, using: &rng) } } }
    return try OSCARBatch(words: words, tags: tags, regions: regions)
}

final class OSCARTests: XCTestCase {
    // MARK: Parameter counts and names

    func testBaseParameterCountIsTheHandArithmetic() throws {
        let (v, d, p, t, f, ffn, layers) = (30522, 768, 512, 2, 2054, 3072, 12)
        let embeddings = v * d + p * d + t * d + 2 * d                      // word, position, type, LayerNormalization
        let image = f * d + d + 2 * d                                        // img_embedding + its LayerNormalization
        // Q, K, V and output projections, two LayerNorms, the feed-forward pair.
        let perLayer = 4 * (d * d + d) + 2 * (2 * d) + (d * ffn + ffn) + (ffn * d + d)
        let pooler = d * d + d
        let maskedTokenHead = (d * d + d) + 2 * d + v                        // transform dense + LayerNormalization + bias (decoder tied)
        let contrastiveHead = d + 1
        XCTAssertEqual(perLayer, 7_087_872)
        XCTAssertEqual(embeddings + layers * perLayer + pooler, 109_482_240)  // BERT-base as HuggingFace counts it
        let total = embeddings + image + layers * perLayer + pooler + maskedTokenHead + contrastiveHead
        XCTAssertEqual(total, 111_685_435)

        let meta = Initializer(device: .meta)
        XCTAssertEqual(try OSCAR(.base, initializer: meta).parameterCount, total)
        var untied = OSCARConfiguration.base
        untied.tieWordEmbeddings = false
        XCTAssertEqual(try OSCAR(untied, initializer: meta).parameterCount, total + v * d)
        var noImageNorm = OSCARConfiguration.base
        noImageNorm.imageLayerNorm = false
        XCTAssertEqual(try OSCAR(noImageNorm, initializer: meta).parameterCount, total - 2 * d)

        // The toy: vocabulary 100, hidden 32, 64 positions, feed-forward 64, 2 layers.
        let toyLayer = 4 * (32 * 32 + 32) + 4 * 32 + (32 * 64 + 64) + (64 * 32 + 32)
        let toy = (100 + 64 + 2) * 32 + 64 + (2054 * 32 + 32 + 64) + 2 * toyLayer + (32 * 32 + 32)
            + (32 * 32 + 32 + 64 + 100) + 33
        XCTAssertEqual(toy, 90_597)
        XCTAssertEqual(try OSCAR(.toy, initializer: meta).parameterCount, toy)
        XCTAssertEqual(OSCAR.configurations.map(\.name), ["toy", "tiny", "mini", "small", "base", "large"])
        XCTAssertEqual(try OSCAR.configuration(named: "BASE"), .base)
    }

    func testStateDictNamesFollowBERT() throws {
        let model = try OSCAR(.base, initializer: Initializer(device: .meta))
        let named = model.namedParameters()
        let names = named.map(\.0)
        XCTAssertEqual(Set(names).count, names.count, "no duplicate names (the tied decoder owns no weight)")
        XCTAssertEqual(names.count, 5 + 4 + 16 * 12 + 2 + 7)
        let shapes = Dictionary(uniqueKeysWithValues: named.map { ($0.0, $0.1.shape) })
        XCTAssertEqual(shapes["embeddings.word_embeddings.weight"], [30522, 768])
        XCTAssertEqual(shapes["embeddings.position_embeddings.weight"], [512, 768])
        XCTAssertEqual(shapes["embeddings.token_type_embeddings.weight"], [2, 768])
        XCTAssertEqual(shapes["embeddings.LayerNorm.weight"], [768])
        XCTAssertEqual(shapes["img_embedding.weight"], [768, 2054])
        XCTAssertEqual(shapes["LayerNorm.bias"], [768])
        XCTAssertEqual(shapes["encoder.layer.11.output.LayerNorm.bias"], [768])
        XCTAssertEqual(shapes["pooler.dense.weight"], [768, 768])
        XCTAssertEqual(shapes["cls.predictions.bias"], [30522])
        XCTAssertEqual(shapes["cls.predictions.transform.dense.weight"], [768, 768])
        XCTAssertEqual(shapes["cls.predictions.transform.LayerNorm.weight"], [768])
        XCTAssertEqual(shapes["cls.seq_relationship.weight"], [1, 768])
        XCTAssertNil(shapes["cls.predictions.decoder.weight"])
        // One layer, in HuggingFace's BertLayer order.
        let layer0 = names.filter { $0.hasPrefix("encoder.layer.0.") }
        let expected = ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                        "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"]
            .flatMap { ["encoder.layer.0.\($0).weight", "encoder.layer.0.\($0).bias"] }
        XCTAssertEqual(layer0, expected)
        XCTAssertEqual(shapes["encoder.layer.0.intermediate.dense.weight"], [3072, 768])

        var untied = OSCARConfiguration.toy
        untied.tieWordEmbeddings = false
        let untiedNames = try OSCAR(untied, initializer: Initializer(device: .meta)).namedParameters().map(\.0)
        XCTAssertTrue(untiedNames.contains("cls.predictions.decoder.weight"))
    }

    func testStateDictRoundTripsThroughSafeTensors() throws {
        let source = try OSCAR(.toy, initializer: Initializer(device: .reference, seed: 1))
        let target = try OSCAR(.toy, initializer: Initializer(device: .reference, seed: 2))
        let file = try SafeTensors.parse(source.stateDict().encoded(), path: "oscar-toy")
        try target.loadStateDict(file)
        source.eval()
        target.eval()
        let batch = try toyBatch()
        let a = try OSCARPretraining(model: source).loss(batch, seed: 3).total.toArray()
        let b = try OSCARPretraining(model: target).loss(batch, seed: 3).total.toArray()
        XCTAssertEqual(a, b)
    }

    // MARK: Corruption rules

    /// A large synthetic batch: `[CLS]` + 22 words + `[SEP]` (some rows
    /// shorter), 7 tags + `[SEP]`, no regions.
    private func largeBatch(samples: Int) throws -> OSCARBatch {
        var rng = SplitMix64(seed: 99)
        let special = OSCARSpecialTokens.leading
        var words: [[Int32]] = [], tags: [[Int32]] = []
        for b in 0..<samples {
            let n = 24 - b % 5
            words.append([special.classification] + (0..<(n - 2)).map { _ in Int32.random(in: 4..<100, using: &rng) }
                         + [special.separator])
            // Each sample's tags start with a tag unique to it, so a polluted row can be traced.
            tags.append([Int32(4 + b % 96)] + (0..<6).map { _ in Int32.random(in: 4..<100, using: &rng) } + [special.separator])
        }
        return try OSCARBatch(words: words, tags: tags, regions: Array(repeating: [], count: samples))
    }

    func testMaskingFollowsBERTsRuleDeterministically() throws {
        let pretraining = OSCARPretraining(model: try OSCAR(.toy, initializer: Initializer(device: .meta)))
        pretraining.pollutionProbability = 0     // isolate masking
        let batch = try largeBatch(samples: 2000)
        let c = pretraining.corrupt(batch, seed: 42)
        let special = OSCARSpecialTokens.leading
        let original = batch.textIDs, corrupted = c.batch.textIDs
        var eligible = 0, counts: [OSCARMaskAction: Int] = [:]
        for b in 0..<batch.batchSize {
            for t in 0..<batch.textLength {
                let i = b * batch.textLength + t
                let action = c.actions[i]
                counts[action, default: 0] += 1
                let real = batch.isRealText(sample: b, slot: t)
                if real && !special.all.contains(original[i]) { eligible += 1 }
                switch action {
                case .none:
                    XCTAssertEqual(c.labels[i], -100)
                    XCTAssertEqual(corrupted[i], original[i])
                case .masked:
                    XCTAssertEqual(c.labels[i], original[i])
                    XCTAssertEqual(corrupted[i], special.mask)
                case .randomized:
                    XCTAssertEqual(c.labels[i], original[i])
                    XCTAssertTrue((0..<100).contains(corrupted[i]))
                case .kept:
                    XCTAssertEqual(c.labels[i], original[i])
                    XCTAssertEqual(corrupted[i], original[i])
                }
                if action != .none {
                    XCTAssertTrue(real, "padding is never selected")
                    XCTAssertFalse(special.all.contains(original[i]), "[CLS]/[SEP] are never selected")
                }
            }
        }
        let selected = (counts[.masked] ?? 0) + (counts[.randomized] ?? 0) + (counts[.kept] ?? 0)
        XCTAssertGreaterThan(eligible, 50_000)
        XCTAssertEqual(Double(selected) / Double(eligible), 0.15, accuracy: 0.01)
        XCTAssertEqual(Double(counts[.masked] ?? 0) / Double(selected), 0.8, accuracy: 0.03)
        XCTAssertEqual(Double(counts[.randomized] ?? 0) / Double(selected), 0.1, accuracy: 0.03)
        XCTAssertEqual(Double(counts[.kept] ?? 0) / Double(selected), 0.1, accuracy: 0.03)
        // Tags are masked too, not only words.
        let tagSelected = (0..<batch.batchSize).reduce(0) { n, b in
            n + (batch.wordLength..<batch.textLength).filter { c.actions[b * batch.textLength + $0] != .none }.count
        }
        XCTAssertGreaterThan(tagSelected, 1000)

        let again = pretraining.corrupt(batch, seed: 42)
        XCTAssertEqual(again.labels, c.labels)
        XCTAssertEqual(again.batch.textIDs, corrupted)
        XCTAssertNotEqual(pretraining.corrupt(batch, seed: 43).labels, c.labels)
    }

    func testPollutionSwapsInAnotherSamplesTagsHalfTheTime() throws {
        let pretraining = OSCARPretraining(model: try OSCAR(.toy, initializer: Initializer(device: .meta)))
        pretraining.maskingProbability = 0       // isolate pollution
        let batch = try largeBatch(samples: 2000)
        let c = pretraining.corrupt(batch, seed: 5)
        let ratio = Double(c.polluted.filter { $0 }.count) / Double(batch.batchSize)
        XCTAssertEqual(ratio, 0.5, accuracy: 0.03)
        let tl = batch.tagLength
        func row(_ tags: [Int32], _ b: Int) -> [Int32] { Array(tags[(b * tl)..<((b + 1) * tl)]) }
        let rows = (0..<batch.batchSize).map { row(batch.tags, $0) }
        for b in 0..<batch.batchSize {
            let now = row(c.batch.tags, b)
            if c.polluted[b] {
                guard let source = rows.firstIndex(of: now) else { return XCTFail("sample \(b): tags from nowhere") }
                XCTAssertNotEqual(source, b, "sample \(b) polluted with its own tags")
                XCTAssertEqual(c.batch.tagCounts[b], batch.tagCounts[source])
            } else {
                XCTAssertEqual(now, rows[b])
            }
        }
        XCTAssertEqual(c.batch.words, batch.words)
        XCTAssertEqual(pretraining.corrupt(batch, seed: 5).polluted, c.polluted)
    }

    func testCaptionPollutionSwapsWordsAndEitherMixesBoth() throws {
        let pretraining = OSCARPretraining(model: try OSCAR(.toy, initializer: Initializer(device: .meta)))
        pretraining.maskingProbability = 0
        let batch = try largeBatch(samples: 2000)
        let (wl, tl) = (batch.wordLength, batch.tagLength)
        func rows(_ ids: [Int32], _ length: Int) -> [[Int32]] {
            (0..<batch.batchSize).map { Array(ids[($0 * length)..<(($0 + 1) * length)]) }
        }
        let words = rows(batch.words, wl), tags = rows(batch.tags, tl)

        pretraining.pollution = .captions
        let c = pretraining.corrupt(batch, seed: 5)
        XCTAssertEqual(c.batch.tags, batch.tags, "caption pollution leaves the tags")
        XCTAssertEqual(Double(c.polluted.filter { $0 }.count) / Double(batch.batchSize), 0.5, accuracy: 0.03)
        for (b, now) in rows(c.batch.words, wl).enumerated() {
            if c.polluted[b] {
                guard let source = words.firstIndex(of: now) else { return XCTFail("sample \(b): a caption from nowhere") }
                XCTAssertNotEqual(source, b)
                XCTAssertEqual(c.batch.wordCounts[b], batch.wordCounts[source])
            } else {
                XCTAssertEqual(now, words[b])
            }
        }

        pretraining.pollution = .either
        let e = pretraining.corrupt(batch, seed: 5)
        let newWords = rows(e.batch.words, wl), newTags = rows(e.batch.tags, tl)
        var captionSwaps = 0, tagSwaps = 0
        for b in 0..<batch.batchSize {
            let wordsChanged = newWords[b] != words[b], tagsChanged = newTags[b] != tags[b]
            XCTAssertFalse(wordsChanged && tagsChanged, "sample \(b): one of the two is replaced, not both")
            if !e.polluted[b] { XCTAssertFalse(wordsChanged || tagsChanged, "sample \(b) is clean") }
            captionSwaps += wordsChanged ? 1 : 0
            tagSwaps += tagsChanged ? 1 : 0
        }
        let pollutedCount = Double(e.polluted.filter { $0 }.count)
        // A swap with an identical row changes nothing; random rows rarely coincide.
        XCTAssertEqual(Double(captionSwaps) / pollutedCount, 0.5, accuracy: 0.05)
        XCTAssertEqual(Double(tagSwaps) / pollutedCount, 0.5, accuracy: 0.05)
    }

    // MARK: Training on the device

    func testToyLossFallsUnderAdamW() throws {
        let device = try openCLDevice()
        let model = try OSCAR(.toy, initializer: Initializer(device: device, seed: 1))
        let pretraining = OSCARPretraining(model: model)
        let optimizer = try AdamW(model.namedParameters(), configuration: AdamWConfiguration(learningRate: 3e-3))
        let batch = try toyBatch()
        var losses: [Float] = []
        for _ in 0..<8 {
            model.zeroGrad()
            // One corruption seed throughout: the same targets every step, so the losses compare.
            let loss = try pretraining.loss(batch, seed: 11)
            try loss.total.backward()
            try optimizer.step()
            losses.append(try loss.total.toArray()[0])
        }
        XCTAssertTrue(losses.allSatisfy(\.isFinite), "\(losses)")
        print("OSCAR toy on \(device): losses \(losses)")
        XCTAssertLessThan(losses.last!, 0.8 * losses.first!, "losses \(losses)")
    }

    func testToyLossAndGradientsMatchTheReference() throws {
        let device = try openCLDevice()
        let batch = try toyBatch()
        func run(on device: Device) throws -> (loss: Float, parts: [Float], grads: [(String, [Float])]) {
            let model = try OSCAR(.toy, initializer: Initializer(device: device, seed: 3))
            let pretraining = OSCARPretraining(model: model)
            let corruption = pretraining.corrupt(batch, seed: 21)
            XCTAssertTrue(corruption.polluted.contains(true) && corruption.polluted.contains(false),
                          "the seed gives both real and polluted samples")
            XCTAssertTrue(corruption.labels.contains { $0 != -100 }, "the seed selects tokens to predict")
            let loss = try pretraining.loss(corruption)
            try loss.total.backward()
            let grads = try model.namedParameters().map { name, p in (name, try XCTUnwrap(p.grad, name).toArray()) }
            return (try loss.total.toArray()[0], [try loss.maskedToken.toArray()[0], try loss.contrastive.toArray()[0]], grads)
        }
        let reference = try run(on: .reference)
        let onDevice = try run(on: device)
        XCTAssertEqual(onDevice.loss, reference.loss, accuracy: 1e-4 * abs(reference.loss))
        XCTAssertEqual(onDevice.loss, onDevice.parts[0] + onDevice.parts[1], accuracy: 1e-5)
        XCTAssertEqual(onDevice.grads.count, reference.grads.count)
        let largest = reference.grads.flatMap(\.1).map { abs($0) }.max() ?? 0
        for ((name, d), (_, r)) in zip(onDevice.grads, reference.grads) {
            let scale = r.map { abs($0) }.max() ?? 0
            let err = zip(d, r).map { abs($0 - $1) }.max() ?? 0
            if name.hasSuffix("attention.self.key.bias") {
                // A key bias adds q·b to every score of a query, which the
                // softmax cancels: its gradient is zero up to rounding on both sides.
                XCTAssertLessThanOrEqual(max(scale, d.map { abs($0) }.max() ?? 0), 1e-6 * largest, name)
                continue
            }
            // Normwise relative: float GEMM and softmax roundings against the
            // largest gradient of the parameter.
            XCTAssertGreaterThan(scale, 0, "\(name) gets a gradient")
            XCTAssertLessThanOrEqual(err, 1e-4 * scale, "\(name): max error \(err), max |grad| \(scale)")
        }
    }
}

final class OSCARFiniteDifferenceTests: XCTestCase {
    /// The contrastive loss's gradient through the whole model (pooler,
    /// encoder, embeddings) against central differences on the reference
    /// device, for each parameter's largest gradient entry: the reference
    /// test above only shows the device agrees with the reference.
    func testContrastiveGradientMatchesFiniteDifferences() throws {
        let device = Device.reference
        let model = try OSCAR(.toy, initializer: Initializer(device: device, seed: 2))
        model.eval()    // no dropout: the loss must be a function of the parameters alone
        let pretraining = OSCARPretraining(model: model)
        pretraining.maskingProbability = 0
        let special = OSCARSpecialTokens.leading
        let words: [Int32] = [11, 12, 13, 14, 15, 16]
        let batch = try OSCARBatch(words: words.map { [special.classification, $0, special.separator] },
                                   tags: words.map { [$0 + 40, special.separator] },
                                   regions: words.map { w in [(0..<2054).map { Float(($0 + Int(w)) % 7) / 7 }] })
        let corruption = pretraining.corrupt(batch, seed: 3)
        XCTAssertTrue(corruption.polluted.contains(true) && corruption.polluted.contains(false))
        model.zeroGrad()
        try pretraining.loss(corruption).contrastive.backward()
        var checked = 0
        for (name, p) in model.namedParameters() where !name.contains("attention.self.key") {
            // Key weights and biases: their gradient is ~1e-6 at BERT's
            // initialisation, below what float differences resolve.
            guard let grad = p.grad else { continue }  // the masked-token head is off the path
            let g = try grad.toArray()
            guard let i = g.indices.max(by: { abs(g[$0]) < abs(g[$1]) }), abs(g[i]) > 1e-4 else { continue }
            var values = try p.tensor.toArray()
            let original = values[i], h = 1e-2 * max(abs(original), 0.05)
            func loss(at value: Float) throws -> Double {
                values[i] = value
                try p.assign(try Tensor(shape: p.shape, values: values, on: device))
                return Double(try pretraining.loss(corruption).contrastive.toArray()[0])
            }
            let difference = (try loss(at: original + h) - loss(at: original - h)) / (2 * Double(h))
            _ = try loss(at: original)
            XCTAssertEqual(difference, Double(g[i]), accuracy: 0.03 * Double(abs(g[i])) + 2e-5, "\(name)[\(i)]")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 20, "most parameters have a gradient large enough to check")
    }
}
