// What OSCAR needs to learn from a corpus on disk (CloverData's OSCARCorpus):
// a configuration sized to the corpus, batches of fixed lengths, image-text
// retrieval scored by the contrastive head, and the small Fashion-MNIST
// corpus the tests and README use.

import Clover
import CloverData
import CloverNN
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: Configuration

extension OSCARConfiguration {
    /// This shape on `corpus`: its vocabulary (size and special tokens, read
    /// from `vocab.txt`) and its region inputs (appearance features + 6).
    ///
    /// - Throws: when the vocabulary lacks `[PAD]`, `[CLS]`, `[SEP]` or `[MASK]`.
    public func adapted(to corpus: OSCARCorpus) throws -> OSCARConfiguration {
        var adapted = self
        let tokenizer = corpus.tokenizer
        func id(_ token: String) throws -> Int32 {
            guard let id = tokenizer.id(of: token) else {
                throw CloverError.invalidArgument(op: "OSCAR", reason: "\(corpus.directory)/vocab.txt has no \(token)")
            }
            return id
        }
        adapted.vocabularySize = tokenizer.vocabulary.count
        adapted.regionFeatureSize = corpus.featureSize + 6
        adapted.specialTokens = OSCARSpecialTokens(padding: try id("[PAD]"), classification: try id("[CLS]"),
                                                   separator: try id("[SEP]"), mask: try id("[MASK]"))
        return adapted
    }
}

// MARK: Batches

/// Turns corpus samples into ``OSCARBatch``es of fixed lengths, so that every
/// step of a run has the same shapes (and reuses the same device buffers).
///
/// Words are `[CLS] caption [SEP]`, tags are the tags' word pieces then
/// `[SEP]`, regions are each region's features followed by its box
/// (``OSCARSample/regionInput(_:featureSize:)``). A longer caption, tag list
/// or region list is cut to the lengths (keeping the final `[SEP]`).
public struct OSCARBatcher: Sendable {
    public let tokenizer: WordPieceTokenizer
    public let specialTokens: OSCARSpecialTokens
    public let featureSize: Int
    /// Word slots per sample, `[CLS]` and `[SEP]` included.
    public let wordLength: Int
    /// Tag slots per sample, the final `[SEP]` included.
    public let tagLength: Int
    /// Region slots per sample.
    public let regionLength: Int

    /// Lengths fitted to the longest sample of `corpus`, cut at the limits;
    /// words and tags together must fit `configuration.maxPositions`.
    ///
    /// - Throws: when a limit is below 3 words, 1 tag or 1 region, or the
    ///   text does not fit the position table.
    public init(corpus: OSCARCorpus, configuration: OSCARConfiguration,
                maxWords: Int = 40, maxTags: Int = 20, maxRegions: Int = 50) throws {
        guard maxWords >= 3, maxTags >= 1, maxRegions >= 1 else {
            throw CloverError.invalidArgument(op: "OSCARBatcher", reason: "limits of \(maxWords) words, \(maxTags) tags, "
                                              + "\(maxRegions) regions: at least 3, 1 and 1")
        }
        let tokenizer = corpus.tokenizer
        self.tokenizer = tokenizer
        specialTokens = configuration.specialTokens
        featureSize = corpus.featureSize
        let samples = corpus.train + corpus.test
        let longestCaption = samples.map { tokenizer.ids(for: $0.caption).count }.max() ?? 0
        let longestTags = samples.map { $0.tags.map { tokenizer.ids(for: $0).count }.reduce(0, +) }.max() ?? 0
        wordLength = min(longestCaption + 2, maxWords)
        tagLength = min(longestTags + 1, maxTags)
        regionLength = min(samples.map(\.regionCount).max() ?? 1, maxRegions)
        guard wordLength + tagLength <= configuration.maxPositions else {
            throw CloverError.invalidArgument(op: "OSCARBatcher", reason: "\(wordLength) word and \(tagLength) tag slots "
                + "exceed the \(configuration.maxPositions) positions of oscar-\(configuration.name); lower the limits")
        }
    }

    /// The word ids of a caption: `[CLS] … [SEP]`, cut to ``wordLength``.
    public func words(_ caption: String) -> [Int32] {
        [specialTokens.classification] + tokenizer.ids(for: caption).prefix(wordLength - 2) + [specialTokens.separator]
    }

    /// The tag ids: every tag's pieces, then `[SEP]`, cut to ``tagLength``.
    public func tags(_ tags: [String]) -> [Int32] {
        Array(tags.flatMap { tokenizer.ids(for: $0) }.prefix(tagLength - 1)) + [specialTokens.separator]
    }

    /// One batch of `samples`.
    public func batch(_ samples: [OSCARSample]) throws -> OSCARBatch {
        try batch(captions: samples, images: samples)
    }

    /// One batch whose sample `i` pairs the caption of `captions[i]` with the
    /// tags and regions of `images[i]` (the pairs retrieval scores).
    public func batch(captions: [OSCARSample], images: [OSCARSample]) throws -> OSCARBatch {
        precondition(captions.count == images.count, "one caption per image")
        let pad = specialTokens.padding, regionSize = featureSize + 6
        var words: [Int32] = [], wordCounts: [Int] = [], tags: [Int32] = [], tagCounts: [Int] = []
        var features: [Float] = [], regionCounts: [Int] = []
        words.reserveCapacity(captions.count * wordLength)
        features.reserveCapacity(images.count * regionLength * regionSize)
        for (caption, image) in zip(captions, images) {
            let w = self.words(caption.caption), t = self.tags(image.tags)
            words += w + [Int32](repeating: pad, count: wordLength - w.count)
            wordCounts.append(w.count)
            tags += t + [Int32](repeating: pad, count: tagLength - t.count)
            tagCounts.append(t.count)
            let regions = min(image.regionCount, regionLength)
            for r in 0..<regions { features += image.regionInput(r, featureSize: featureSize) }
            features += [Float](repeating: 0, count: (regionLength - regions) * regionSize)
            regionCounts.append(regions)
        }
        return try OSCARBatch(words: words, wordLength: wordLength, wordCounts: wordCounts, tags: tags,
                              tagLength: tagLength, tagCounts: tagCounts, regionFeatures: features,
                              regionLength: regionLength, regionFeatureSize: regionSize, regionCounts: regionCounts)
    }
}

// MARK: Retrieval

/// Image-text retrieval recall: the share of queries whose true partner is
/// among the first K ranked candidates.
public struct RetrievalRecall: Equatable, Codable, Sendable {
    /// Queries (and candidates) ranked.
    public var count: Int
    /// Image → text: R@1, R@5, R@10.
    public var imageToText: [Double]
    /// Text → image: R@1, R@5, R@10.
    public var textToImage: [Double]

    /// The K of each recall figure.
    public static let ks = [1, 5, 10]

    /// What ranking at random gives on average: K / count (capped at 1).
    public var chance: [Double] { Self.ks.map { min(1, Double($0) / Double(max(count, 1))) } }

    /// Recall from a square score matrix, `scores[i][j]` the score of image
    /// `i` with caption `j`, the true pairs on the diagonal. A tie ranks the
    /// true partner after every candidate with the same score, so a model
    /// that scores everything alike earns nothing.
    public init(scores: [[Float]]) {
        let n = scores.count
        count = n
        func recall(_ score: (Int, Int) -> Float) -> [Double] {
            var hits = [Int](repeating: 0, count: Self.ks.count)
            for query in 0..<n {
                let truth = score(query, query)
                let rank = (0..<n).filter { $0 != query && score(query, $0) >= truth }.count
                for (k, K) in Self.ks.enumerated() where rank < K { hits[k] += 1 }
            }
            return hits.map { Double($0) / Double(max(n, 1)) }
        }
        imageToText = recall { scores[$0][$1] }
        textToImage = recall { scores[$1][$0] }
    }
}

/// Image-text retrieval with OSCAR's contrastive head: the score of image
/// `i` and caption `j` is the head's "the tags are real" logit for
/// (caption `j`, tags and regions of image `i`), so a caption that does not
/// fit the image's tags and regions scores low, as the pre-training's
/// polluted samples taught it.
public enum OSCARRetrieval {
    /// Scores every image of `samples` against every caption, in evaluation
    /// mode without gradients, `batchSize` pairs per forward pass.
    public static func scores(model: OSCAR, batcher: OSCARBatcher, samples: [OSCARSample],
                              batchSize: Int = 256) throws -> [[Float]] {
        guard batchSize >= 1 else {
            throw CloverError.invalidArgument(op: "OSCARRetrieval", reason: "batch size \(batchSize) is below 1")
        }
        let n = samples.count
        let wasTraining = model.isTraining
        model.eval()
        defer { if wasTraining { model.train() } }
        var flat = [Float]()
        flat.reserveCapacity(n * n)
        let pairs = n * n
        try withoutGradients {
            var start = 0
            while start < pairs {
                // The last batch keeps the full size (repeating the last pair) so
                // that every pass has the same shapes.
                let indices = (start..<(start + batchSize)).map { min($0, pairs - 1) }
                let batch = try batcher.batch(captions: indices.map { samples[$0 % n] },
                                              images: indices.map { samples[$0 / n] })
                let logits = try model.contrastiveLogits(try model(batch)).toArray()
                flat += logits.prefix(min(batchSize, pairs - start))
                start += batchSize
            }
        }
        return (0..<n).map { Array(flat[($0 * n)..<(($0 + 1) * n)]) }
    }

    /// Recall@1/5/10 in both directions over `samples`.
    public static func evaluate(model: OSCAR, batcher: OSCARBatcher, samples: [OSCARSample],
                                batchSize: Int = 256) throws -> RetrievalRecall {
        RetrievalRecall(scores: try scores(model: model, batcher: batcher, samples: samples, batchSize: batchSize))
    }
}

// MARK: The Fashion-MNIST corpus

/// A small vision-language corpus made from Fashion-MNIST, for tests and
/// first runs on a machine without a real one.
///
/// What it is: each image becomes one sample whose **regions** are the cells
/// of a Clover-trained LeNet-5's last feature map (5 × 5 cells of 16
/// channels, each with its box on the image) plus the whole image (the
/// cells' mean, box `[0, 0, 1, 1]`); whose **tags** are the backbone's
/// predicted classes (the top one, and the second when its probability
/// exceeds 0.2), as a detector's labels would be; and whose **caption** is
/// written from the true class's description with the image's brightness
/// and size ("a photo of a large dark pullover with long sleeves").
///
/// What it is not: real photographs, real detector regions or human
/// captions. Captions repeat across images of one class, so retrieval can
/// tell classes and attributes apart but not two images that share both.
public enum FashionMNISTCorpus {
    /// Two descriptions per class, indexed by label. Each names its class's
    /// tag, as a caption names the objects a detector found: tags are the
    /// anchors OSCAR aligns the two modalities by, and a caption that shares
    /// none of its words with the tags leaves the contrastive head a far
    /// harder task (it stays at chance for hundreds of steps, in PyTorch too).
    public static let descriptions: [[String]] = [
        ["t-shirt with short sleeves", "plain t-shirt"],
        ["pair of trousers", "pair of long trousers"],
        ["pullover with long sleeves", "knitted pullover"],
        ["dress", "long dress without sleeves"],
        ["coat with buttons", "warm winter coat"],
        ["sandal with straps", "open summer sandal"],
        ["shirt with a collar", "buttoned shirt"],
        ["sneaker", "low sports sneaker"],
        ["bag", "bag with a handle"],
        ["ankle boot", "ankle boot with a heel"],
    ]

    /// The tag of each class (a detector's label).
    public static let tagNames = ["t-shirt", "trousers", "pullover", "dress", "coat",
                                  "sandal", "shirt", "sneaker", "bag", "ankle boot"]

    /// Words for the three brightness and size bins, darkest and smallest first.
    public static let brightnessWords = ["dark", "grey", "pale"]
    public static let sizeWords = ["small", "medium", "large"]

    /// Features per region: the LeNet-5 feature map's channels.
    public static let featureSize = 16

    /// The vocabulary: the special tokens first (`[PAD]` 0, `[CLS]` 1,
    /// `[SEP]` 2, `[MASK]` 3, `[UNK]` 4), then every word the captions and tags
    /// can use, sorted, as whole-word pieces.
    public static var vocabulary: [String] {
        let text = descriptions.joined() + tagNames + brightnessWords + sizeWords + ["a photo of"]
        let words = Set(text.flatMap { WordPieceTokenizer.basicTokens($0) })
        return ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"] + words.sorted()
    }

    /// The brightness and size of an image in `[0, 1]`: the mean of its
    /// garment pixels (those above 0.1) and their share of the image.
    static func attributes(_ pixels: ArraySlice<Float>) -> (brightness: Float, size: Float) {
        let garment = pixels.filter { $0 > 0.1 }
        guard !garment.isEmpty else { return (0, 0) }
        return (garment.reduce(0, +) / Float(garment.count), Float(garment.count) / Float(pixels.count))
    }

    /// The bin boundaries (tertiles) of brightness and size over `images`.
    public static func bins(of images: Dataset) -> (brightness: [Float], size: [Float]) {
        let values = (0..<images.count).map { attributes(images.image(at: $0)) }
        func tertiles(_ v: [Float]) -> [Float] {
            let sorted = v.sorted()
            return [sorted[sorted.count / 3], sorted[2 * sorted.count / 3]]
        }
        return (tertiles(values.map(\.brightness)), tertiles(values.map(\.size)))
    }

    /// The samples of `images` (pixels in `[0, 1]`, 1 × 28 × 28), their
    /// regions and tags from `backbone`, ids `prefix-000123`; `bins` from
    /// ``bins(of:)`` over the training images, `seed` picks each caption's
    /// description.
    public static func samples(of images: Dataset, backbone: LeNet5, normalization: Normalization,
                               bins: (brightness: [Float], size: [Float]), prefix: String, seed: UInt64,
                               device: Device, batchSize: Int = 256) throws -> [OSCARSample] {
        guard images.sampleShape == [1, 28, 28] else {
            throw CloverError.invalidArgument(op: "FashionMNISTCorpus", reason: "images of shape \(images.sampleShape), "
                                              + "not [1, 28, 28]")
        }
        var rng = SplitMix64(seed: seed)
        var samples: [OSCARSample] = []
        samples.reserveCapacity(images.count)
        let wasTraining = backbone.isTraining
        backbone.eval()
        defer { if wasTraining { backbone.train() } }
        try withoutGradients {
            var start = 0
            while start < images.count {
                let end = min(start + batchSize, images.count)
                let count = end - start
                var pixels = Array(images.images[(start * 784)..<(end * 784)])
                let (mean, std) = (normalization.mean[0], normalization.std[0])
                for i in pixels.indices { pixels[i] = (pixels[i] - mean) / std }
                let x = try Tensor(shape: [count, 1, 28, 28], values: pixels, on: device)
                let map = try backbone.features(x)
                let logits = try backbone(x).toArray()
                let cells = try map.toArray()
                let (channels, side) = (map.shape[1], map.shape[2])
                guard channels == featureSize, map.shape[3] == side else {
                    throw CloverError.invalidArgument(op: "FashionMNISTCorpus", reason: "a backbone feature map of "
                                                      + "shape \(map.shape), not [B, \(featureSize), n, n]")
                }
                for b in 0..<count {
                    let index = start + b
                    var features: [Float] = [], boxes: [[Float]] = []
                    var whole = [Float](repeating: 0, count: channels)
                    for cy in 0..<side {
                        for cx in 0..<side {
                            for c in 0..<channels {
                                let v = cells[((b * channels + c) * side + cy) * side + cx]
                                features.append(v)
                                whole[c] += v / Float(side * side)
                            }
                            boxes.append([Float(cx) / Float(side), Float(cy) / Float(side),
                                          Float(cx + 1) / Float(side), Float(cy + 1) / Float(side)])
                        }
                    }
                    features += whole
                    boxes.append([0, 0, 1, 1])
                    // Softmax on the host: ten values per image, and the
                    // tags only need the ranking and the runner-up's share.
                    let row = logits[(b * 10)..<((b + 1) * 10)]
                    let top = row.max() ?? 0
                    let exps = row.map { exp(Double($0 - top)) }
                    let total = exps.reduce(0, +)
                    let p = exps.map { Float($0 / total) }
                    let ranked = p.indices.sorted { p[$0] > p[$1] }
                    var tags = [tagNames[ranked[0]]]
                    if p[ranked[1]] > 0.2 { tags.append(tagNames[ranked[1]]) }
                    let (brightness, size) = attributes(images.image(at: index))
                    let label = Int(images.labels[index])
                    let description = descriptions[label][Int.random(in: 0..<2, using: &rng)]
                    let caption = "a photo of a \(sizeWords[bin(size, bins.size)]) "
                        + "\(brightnessWords[bin(brightness, bins.brightness)]) \(description)"
                    let digits = String(index)
                    let id = prefix + "-" + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
                    samples.append(OSCARSample(id: id, caption: caption, tags: tags, boxes: boxes, features: features))
                }
                start = end
            }
        }
        return samples
    }

    private static func bin(_ value: Float, _ bounds: [Float]) -> Int {
        value < bounds[0] ? 0 : value < bounds[1] ? 1 : 2
    }
}
