import CloverData
import CloverModels
import Foundation
import XCTest

/// The pieces between a corpus on disk and OSCAR: the batcher's lengths and
/// layout, retrieval recall on score matrices whose answers are known by
/// hand, and the Fashion-MNIST corpus's vocabulary.
final class OSCARCorpusTrainingTests: XCTestCase {
    private let vocabulary = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]", "a", "red", "shoe", "bag", "big", "##s"]

    /// A corpus of three samples: captions of 2, 4 and 1 pieces, tags of 1,
    /// 3 and 2 pieces, 2, 3 and 1 regions of 2 features.
    private func corpus() throws -> OSCARCorpus {
        func sample(_ id: String, _ caption: String, _ tags: [String], regions: Int) -> OSCARSample {
            OSCARSample(id: id, caption: caption, tags: tags,
                        boxes: (0..<regions).map { r in [0, 0, Float(r + 1) / 4, 1] },
                        features: (0..<(2 * regions)).map { Float($0) + (id == "b" ? 100 : 0) })
        }
        let path = NSTemporaryDirectory() + "clover-oscar-batcher-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        try OSCARCorpus.write(directory: path, vocabulary: vocabulary,
                              train: [sample("a", "red shoe", ["shoe"], regions: 2),
                                      sample("b", "a big red bags", ["red bag", "shoe"], regions: 3)],
                              test: [sample("c", "bag", ["bag", "bag"], regions: 1)], featureSize: 2)
        return try OSCARCorpus(directory: path)
    }

    private func configuration(_ corpus: OSCARCorpus) throws -> OSCARConfiguration {
        try OSCARConfiguration.toy.adapted(to: corpus)
    }

    func testConfigurationFollowsTheCorpus() throws {
        let c = try configuration(try corpus())
        XCTAssertEqual(c.vocabularySize, vocabulary.count)
        XCTAssertEqual(c.regionFeatureSize, 2 + 6)
        XCTAssertEqual(c.specialTokens, OSCARSpecialTokens(padding: 0, classification: 1, separator: 2, mask: 3))
    }

    func testBatcherFitsTheLongestSampleAndPads() throws {
        let corpus = try corpus()
        let batcher = try OSCARBatcher(corpus: corpus, configuration: try configuration(corpus))
        // "a big red bags" is 5 pieces (bag ##s): [CLS] + 5 + [SEP]; tags "red bag shoe" + [SEP].
        XCTAssertEqual([batcher.wordLength, batcher.tagLength, batcher.regionLength], [7, 4, 3])
        let batch = try batcher.batch([corpus.train[0], corpus.test[0]])
        XCTAssertEqual(batch.words, [1, 6, 7, 2, 0, 0, 0, /**/ 1, 8, 2, 0, 0, 0, 0])
        XCTAssertEqual(batch.wordCounts, [4, 3])
        XCTAssertEqual(batch.tags, [7, 2, 0, 0, /**/ 8, 8, 2, 0])
        XCTAssertEqual(batch.tagCounts, [2, 3])
        XCTAssertEqual(batch.regionCounts, [2, 1])
        XCTAssertEqual(batch.regionFeatureSize, 8)
        // Sample 0's second region: features 2, 3 then box (0, 0, 0.5, 1) and its size (0.5, 1);
        // its third slot is padding.
        XCTAssertEqual(Array(batch.regionFeatures[8..<16]), [2, 3, 0, 0, 0.5, 1, 0.5, 1])
        XCTAssertEqual(Array(batch.regionFeatures[16..<24]), [Float](repeating: 0, count: 8))
    }

    func testBatcherCutsAtItsLimitsKeepingTheSeparator() throws {
        let corpus = try corpus()
        let batcher = try OSCARBatcher(corpus: corpus, configuration: try configuration(corpus),
                                       maxWords: 4, maxTags: 2, maxRegions: 2)
        XCTAssertEqual([batcher.wordLength, batcher.tagLength, batcher.regionLength], [4, 2, 2])
        let batch = try batcher.batch([corpus.train[1]])
        XCTAssertEqual(batch.words, [1, 5, 9, 2])
        XCTAssertEqual(batch.tags, [6, 2])
        XCTAssertEqual(batch.regionCounts, [2])
        XCTAssertEqual(Array(batch.regionFeatures[0..<2]), [100, 101])
    }

    func testBatcherPairsCaptionsWithOtherImages() throws {
        let corpus = try corpus()
        let batcher = try OSCARBatcher(corpus: corpus, configuration: try configuration(corpus))
        let a = corpus.train[0], b = corpus.train[1]
        let mixed = try batcher.batch(captions: [a, b], images: [b, a])
        let straight = try batcher.batch([a, b]), swapped = try batcher.batch([b, a])
        XCTAssertEqual(mixed.words, straight.words)
        XCTAssertEqual(mixed.tags, swapped.tags)
        XCTAssertEqual(mixed.regionFeatures, swapped.regionFeatures)
        XCTAssertEqual(mixed.regionCounts, [3, 2])
    }

    func testBatcherRejectsLimitsItCannotHonour() throws {
        let corpus = try corpus()
        let c = try configuration(corpus)
        for (words, tags, regions) in [(2, 1, 1), (3, 0, 1), (3, 1, 0)] {
            XCTAssertThrowsError(try OSCARBatcher(corpus: corpus, configuration: c, maxWords: words, maxTags: tags,
                                                  maxRegions: regions)) { error in
                XCTAssertTrue("\(error)".contains("at least 3, 1 and 1"), "\(error)")
            }
        }
        var short = c
        short.maxPositions = 8
        XCTAssertThrowsError(try OSCARBatcher(corpus: corpus, configuration: short)) { error in
            XCTAssertTrue("\(error)".contains("exceed the 8 positions of oscar-toy"), "\(error)")
        }
    }

    // MARK: Recall

    func testRecallOfAPerfectAndAReversedRanking() {
        let n = 12
        let perfect = RetrievalRecall(scores: (0..<n).map { i in (0..<n).map { j in i == j ? 1 : 0 } })
        XCTAssertEqual(perfect.imageToText, [1, 1, 1])
        XCTAssertEqual(perfect.textToImage, [1, 1, 1])
        XCTAssertEqual(perfect.chance, [1.0 / 12, 5.0 / 12, 10.0 / 12])
        // The truth scores lowest everywhere: rank 11, inside no K.
        let worst = RetrievalRecall(scores: (0..<n).map { i in (0..<n).map { j in i == j ? -1 : Float(j) } })
        XCTAssertEqual(worst.imageToText, [0, 0, 0])
        XCTAssertEqual(worst.textToImage, [0, 0, 0])
    }

    func testTiesRankTheTruthLast() {
        let flat = RetrievalRecall(scores: [[Float]](repeating: [Float](repeating: 0.5, count: 6), count: 6))
        // The truth ranks 6th of 6: outside K = 1 and 5, inside K = 10.
        XCTAssertEqual(flat.imageToText, [0, 0, 1])
        XCTAssertEqual(flat.textToImage, [0, 0, 1])
    }

    func testRecallCountsRanksPerDirection() {
        // scores[i][j] = image i with caption j. Image 0's caption ranks 2nd of
        // its row (R@5 but not R@1); image 1's ranks 1st; image 2's ranks last (3rd).
        let scores: [[Float]] = [[0.5, 0.9, 0.1],
                                 [0.2, 0.8, 0.3],
                                 [0.6, 0.4, 0.0]]
        let r = RetrievalRecall(scores: scores)
        XCTAssertEqual(r.imageToText, [1.0 / 3, 1, 1])
        // Columns: caption 0 ranks image 0 (0.5) after image 2 (0.6); caption 1
        // ranks image 1 (0.8) after image 0 (0.9); caption 2 ranks image 2 (0.0) last.
        XCTAssertEqual(r.textToImage, [0, 1, 1])
        XCTAssertEqual(r.count, 3)
    }

    // MARK: The Fashion-MNIST corpus

    func testFashionVocabularyCoversEveryCaptionAndTag() throws {
        let vocabulary = FashionMNISTCorpus.vocabulary
        XCTAssertEqual(Set(vocabulary).count, vocabulary.count, "no duplicates")
        XCTAssertEqual(Array(vocabulary.prefix(5)), ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"])
        let tokenizer = try WordPieceTokenizer(vocabulary: vocabulary, source: "test")
        var texts = FashionMNISTCorpus.tagNames
        for description in FashionMNISTCorpus.descriptions.joined() {
            for size in FashionMNISTCorpus.sizeWords {
                for brightness in FashionMNISTCorpus.brightnessWords {
                    texts.append("a photo of a \(size) \(brightness) \(description)")
                }
            }
        }
        for text in texts {
            XCTAssertFalse(tokenizer.tokenize(text).contains("[UNK]"), text)
        }
        // Every description names its class's tag (the anchor the contrastive head matches).
        for (label, tag) in FashionMNISTCorpus.tagNames.enumerated() {
            for description in FashionMNISTCorpus.descriptions[label] {
                XCTAssertTrue(description.contains(tag), "'\(description)' does not name '\(tag)'")
            }
        }
    }
}
