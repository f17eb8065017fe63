// OSCAR (Li et al., "Oscar: Object-Semantics Aligned Pre-training for
// Vision-Language Tasks", ECCV 2020): a BERT encoder over the triple
// (words w, object tags q, image regions v) of an image-text pair, built as
// Microsoft's `BertImgModel` / `BertImgForPreTraining` so that parameter
// names and counts match theirs (with the `bert.` prefix dropped):
//
//   embeddings.word_embeddings          [vocab, hidden], shared by words and tags
//   embeddings.position_embeddings      [max positions, hidden]
//   embeddings.token_type_embeddings    [type vocab, hidden]
//   embeddings.LayerNorm                ε 1e-12, then dropout
//   img_embedding                       2054 → hidden (2048-d appearance + 6-d box)
//   LayerNorm                           the image embedding's layer norm (Oscar's
//                                       `use_img_layernorm`), then dropout
//   encoder.layer.N.…                   BERT post-LN layers (CloverNN's Transformer.swift)
//   pooler.dense                        hidden → hidden + tanh on the first ([CLS]) position
//   cls.predictions.transform.dense     hidden → hidden + GELU
//   cls.predictions.transform.LayerNorm
//   cls.predictions.bias                [vocab]; the decoder weight is tied to the
//                                       word embeddings (BERT's and Oscar's default),
//                                       or `cls.predictions.decoder.weight` untied
//   cls.seq_relationship                hidden → 1: the contrastive (polluted?) logit
//
// Choices where the paper or code leaves room, and why:
//
// * Sequence layout per sample: [words | tags | regions], each block right-
//   padded to the batch's common length. Words and tags form the "text" part
//   that goes through the word embeddings (the dictionary view h = [w, q]
//   shares one vocabulary); regions are projected features.
// * Positions: a sample's real words then real tags get 0, 1, 2, … with no
//   gap, as Oscar packs `[CLS] w [SEP] q [SEP]` into one text sequence; the
//   padding slots take the following numbers (they are masked anyway).
// * Token types: 0 for words, 1 for tags, as Oscar's pre-training data
//   (`segment_ids` 0 for text_a, 1 for the tags as text_b). Regions get
//   neither a position nor a token type, exactly as `BertImgModel`
//   concatenates the bare image embedding after the text embeddings.
// * The words are given as the caller tokenised them, normally starting
//   with [CLS] and ending with [SEP]; the pooled output reads position 0.
// * Contrastive loss: one logit and binary cross-entropy with target 1 for a
//   real tag sequence and 0 for a polluted one (the paper's y). Oscar's code
//   uses a 2-way softmax (`seq_relationship` [2, hidden]); that is the same
//   model with logit z₁ − z₀, so a checkpoint converts by subtracting rows.

import Clover
import CloverNN

// MARK: Configuration

/// The token ids OSCAR's pre-training treats specially.
public struct OSCARSpecialTokens: Equatable, Sendable {
    /// `[PAD]`: fills padded slots.
    public var padding: Int32
    /// `[CLS]`: the first word, whose output the pooler reads.
    public var classification: Int32
    /// `[SEP]`: ends the words and the tags.
    public var separator: Int32
    /// `[MASK]`: what 80 % of the selected tokens become.
    public var mask: Int32

    public init(padding: Int32, classification: Int32, separator: Int32, mask: Int32) {
        self.padding = padding
        self.classification = classification
        self.separator = separator
        self.mask = mask
    }

    /// BERT's uncased WordPiece vocabulary (30,522 entries): `[PAD]` 0,
    /// `[CLS]` 101, `[SEP]` 102, `[MASK]` 103.
    public static let bertUncased = OSCARSpecialTokens(padding: 0, classification: 101, separator: 102, mask: 103)

    /// Small synthetic vocabularies: the first four ids.
    public static let leading = OSCARSpecialTokens(padding: 0, classification: 1, separator: 2, mask: 3)

    /// Tokens that are never selected for masking.
    public var all: Set<Int32> { [padding, classification, separator, mask] }
}

/// The shape of an OSCAR encoder and its pre-training heads.
public struct OSCARConfiguration: Equatable, Sendable {
    /// A short name (`toy`, `base`, …).
    public var name: String
    /// Word-piece vocabulary, shared by words and object tags.
    public var vocabularySize: Int
    /// The model width.
    public var hiddenSize: Int
    /// Encoder layers.
    public var layers: Int
    /// Attention heads per layer; `hiddenSize` must be a multiple.
    public var heads: Int
    /// The feed-forward width.
    public var intermediateSize: Int
    /// Longest text (words + tags) the position table covers.
    public var maxPositions: Int
    /// Token types (segments); words use 0 and tags 1.
    public var typeVocabularySize: Int
    /// Per-region input features: 2048-d appearance + 6-d position
    /// (x1, y1, x2, y2, w, h) = 2054.
    public var regionFeatureSize: Int
    /// Dropout after embeddings, attention and feed-forward blocks.
    public var hiddenDropout: Float
    /// Dropout on attention probabilities.
    public var attentionDropout: Float
    /// ε of every layer norm (BERT's 1e-12).
    public var layerNormEpsilon: Float
    /// Whether the projected region features go through a layer norm
    /// (Oscar's `use_img_layernorm`).
    public var imageLayerNorm: Bool
    /// Whether the masked-token decoder reuses the word embeddings as its
    /// weight (BERT's weight tying) instead of owning a `[vocab, hidden]` one.
    public var tieWordEmbeddings: Bool
    /// How weights are drawn (BERT's N(0, 0.02²) by default).
    public var initialization: TransformerInitialization
    /// `[PAD]`, `[CLS]`, `[SEP]`, `[MASK]`.
    public var specialTokens: OSCARSpecialTokens

    public init(name: String, vocabularySize: Int, hiddenSize: Int, layers: Int, heads: Int, intermediateSize: Int,
                maxPositions: Int = 512, typeVocabularySize: Int = 2, regionFeatureSize: Int = 2054,
                hiddenDropout: Float = 0.1, attentionDropout: Float = 0.1, layerNormEpsilon: Float = 1e-12,
                imageLayerNorm: Bool = true, tieWordEmbeddings: Bool = true,
                initialization: TransformerInitialization = .bert, specialTokens: OSCARSpecialTokens = .bertUncased) {
        self.name = name
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.layers = layers
        self.heads = heads
        self.intermediateSize = intermediateSize
        self.maxPositions = maxPositions
        self.typeVocabularySize = typeVocabularySize
        self.regionFeatureSize = regionFeatureSize
        self.hiddenDropout = hiddenDropout
        self.attentionDropout = attentionDropout
        self.layerNormEpsilon = layerNormEpsilon
        self.imageLayerNorm = imageLayerNorm
        self.tieWordEmbeddings = tieWordEmbeddings
        self.initialization = initialization
        self.specialTokens = specialTokens
    }

    /// A 2-layer toy for tests: hidden 32, 2 heads, feed-forward 64,
    /// vocabulary 100, 64 positions.
    public static let toy = OSCARConfiguration(name: "toy", vocabularySize: 100, hiddenSize: 32, layers: 2, heads: 2,
                                               intermediateSize: 64, maxPositions: 64, specialTokens: .leading)

    /// BERT-tiny's shape (2 layers, 128 wide, 2 heads, feed-forward 512) on
    /// BERT's vocabulary: the smallest preset whose contrastive head leaves
    /// the chance plateau within a few hundred steps (the 32-wide toy stays
    /// at ln 2 far longer, in PyTorch as here).
    public static let tiny = OSCARConfiguration(name: "tiny", vocabularySize: 30522, hiddenSize: 128, layers: 2,
                                                heads: 2, intermediateSize: 512)

    /// BERT-mini's shape (4 layers, 256 wide, 4 heads) on BERT's vocabulary.
    public static let mini = OSCARConfiguration(name: "mini", vocabularySize: 30522, hiddenSize: 256, layers: 4,
                                                heads: 4, intermediateSize: 1024)

    /// BERT-small's shape (4 layers, 512 wide, 8 heads) on BERT's vocabulary.
    public static let small = OSCARConfiguration(name: "small", vocabularySize: 30522, hiddenSize: 512, layers: 4,
                                                 heads: 8, intermediateSize: 2048)

    /// Oscar-B: BERT-base (12 layers, 768 wide, 12 heads, feed-forward 3072,
    /// vocabulary 30,522, 512 positions, 2 token types).
    public static let base = OSCARConfiguration(name: "base", vocabularySize: 30522, hiddenSize: 768, layers: 12,
                                                heads: 12, intermediateSize: 3072)

    /// Oscar-L: BERT-large (24 layers, 1024 wide, 16 heads, feed-forward 4096).
    public static let large = OSCARConfiguration(name: "large", vocabularySize: 30522, hiddenSize: 1024, layers: 24,
                                                 heads: 16, intermediateSize: 4096)
}

// MARK: Input

/// One batch of OSCAR input: per sample, word ids, object-tag ids (same
/// vocabulary) and region features, each block right-padded to a common
/// length. Counts say how many entries of each block are real.
public struct OSCARBatch: Sendable {
    /// Samples `B`.
    public let batchSize: Int
    /// Word ids `[B, wordLength]`, row-major (usually `[CLS] … [SEP]`, then padding).
    public var words: [Int32]
    public let wordLength: Int
    /// Real words per sample.
    public var wordCounts: [Int]
    /// Tag ids `[B, tagLength]`, row-major (usually `… [SEP]`, then padding).
    public var tags: [Int32]
    public let tagLength: Int
    /// Real tags per sample.
    public var tagCounts: [Int]
    /// Region features `[B, regionLength, regionFeatureSize]`, row-major.
    public var regionFeatures: [Float]
    public let regionLength: Int
    public let regionFeatureSize: Int
    /// Real regions per sample.
    public var regionCounts: [Int]

    /// A batch from padded row-major arrays.
    ///
    /// - Throws: when an array's size does not match its lengths or a count
    ///   lies outside `0...length`.
    public init(words: [Int32], wordLength: Int, wordCounts: [Int], tags: [Int32], tagLength: Int, tagCounts: [Int],
                regionFeatures: [Float], regionLength: Int, regionFeatureSize: Int = 2054, regionCounts: [Int]) throws {
        let batch = wordCounts.count
        func check(_ ok: Bool, _ reason: @autoclosure () -> String) throws {
            if !ok { throw CloverError.invalidArgument(op: "OSCARBatch", reason: reason()) }
        }
        try check(batch > 0 && tagCounts.count == batch && regionCounts.count == batch,
                  "\(batch) word, \(tagCounts.count) tag and \(regionCounts.count) region counts: need one of each per sample")
        try check(wordLength > 0 && tagLength >= 0 && regionLength >= 0 && regionFeatureSize > 0,
                  "lengths \(wordLength)/\(tagLength)/\(regionLength) and feature size \(regionFeatureSize)")
        try check(words.count == batch * wordLength, "\(words.count) word ids for \(batch)x\(wordLength)")
        try check(tags.count == batch * tagLength, "\(tags.count) tag ids for \(batch)x\(tagLength)")
        try check(regionFeatures.count == batch * regionLength * regionFeatureSize,
                  "\(regionFeatures.count) region features for \(batch)x\(regionLength)x\(regionFeatureSize)")
        for (counts, length, what) in [(wordCounts, wordLength, "word"), (tagCounts, tagLength, "tag"),
                                       (regionCounts, regionLength, "region")] {
            if let bad = counts.first(where: { $0 < 0 || $0 > length }) {
                throw CloverError.invalidArgument(op: "OSCARBatch", reason: "\(what) count \(bad) is outside 0...\(length)")
            }
        }
        batchSize = batch
        self.words = words
        self.wordLength = wordLength
        self.wordCounts = wordCounts
        self.tags = tags
        self.tagLength = tagLength
        self.tagCounts = tagCounts
        self.regionFeatures = regionFeatures
        self.regionLength = regionLength
        self.regionFeatureSize = regionFeatureSize
        self.regionCounts = regionCounts
    }

    /// A batch from ragged per-sample lists, padded with `padding` ids and
    /// zero features to the longest of each.
    ///
    /// - Parameter regions: per sample, a list of feature vectors of
    ///   `regionFeatureSize` values each.
    public init(words: [[Int32]], tags: [[Int32]], regions: [[[Float]]], regionFeatureSize: Int = 2054,
                padding: Int32 = 0) throws {
        guard words.count == tags.count, words.count == regions.count else {
            throw CloverError.invalidArgument(op: "OSCARBatch", reason: "\(words.count) word, \(tags.count) tag and \(regions.count) region lists")
        }
        if let bad = regions.joined().first(where: { $0.count != regionFeatureSize }) {
            throw CloverError.invalidArgument(op: "OSCARBatch", reason: "a region has \(bad.count) features, not \(regionFeatureSize)")
        }
        func padded(_ rows: [[Int32]], to length: Int) -> [Int32] {
            rows.flatMap { $0 + [Int32](repeating: padding, count: length - $0.count) }
        }
        let wordLength = words.map(\.count).max() ?? 0, tagLength = tags.map(\.count).max() ?? 0
        let regionLength = regions.map(\.count).max() ?? 0
        var features: [Float] = []
        features.reserveCapacity(regions.count * regionLength * regionFeatureSize)
        for sample in regions {
            for region in sample { features += region }
            features += [Float](repeating: 0, count: (regionLength - sample.count) * regionFeatureSize)
        }
        try self.init(words: padded(words, to: wordLength), wordLength: wordLength, wordCounts: words.map(\.count),
                      tags: padded(tags, to: tagLength), tagLength: tagLength, tagCounts: tags.map(\.count),
                      regionFeatures: features, regionLength: regionLength, regionFeatureSize: regionFeatureSize,
                      regionCounts: regions.map(\.count))
    }

    /// Text slots per sample: words then tags.
    public var textLength: Int { wordLength + tagLength }

    /// The text ids `[B, textLength]`: each sample's word row then its tag row.
    public var textIDs: [Int32] {
        var ids: [Int32] = []
        ids.reserveCapacity(batchSize * textLength)
        for b in 0..<batchSize {
            ids += words[(b * wordLength)..<((b + 1) * wordLength)]
            ids += tags[(b * tagLength)..<((b + 1) * tagLength)]
        }
        return ids
    }

    /// Whether text slot `t` (`0..<textLength`) of sample `b` holds a real token.
    public func isRealText(sample b: Int, slot t: Int) -> Bool {
        t < wordLength ? t < wordCounts[b] : t - wordLength < tagCounts[b]
    }
}

// MARK: Model pieces

/// Word + position + token-type embeddings, layer norm and dropout
/// (HuggingFace's `BertEmbeddings`).
public final class OSCARTextEmbeddings: Module {
    public let wordEmbeddings: Embedding
    public let positionEmbeddings: Embedding
    public let tokenTypeEmbeddings: Embedding
    public let layerNorm: LayerNorm
    public let dropout: Dropout

    init(_ c: OSCARConfiguration, initializer: Initializer) throws {
        wordEmbeddings = try Embedding(c.vocabularySize, c.hiddenSize, initialization: c.initialization, initializer: initializer)
        positionEmbeddings = try Embedding(c.maxPositions, c.hiddenSize, initialization: c.initialization, initializer: initializer)
        tokenTypeEmbeddings = try Embedding(c.typeVocabularySize, c.hiddenSize, initialization: c.initialization,
                                            initializer: initializer)
        layerNorm = try LayerNorm(c.hiddenSize, epsilon: c.layerNormEpsilon, initializer: initializer)
        dropout = Dropout(probability: c.hiddenDropout, initializer: initializer)
    }

    public override func namedChildren() -> [(String, Module)] {
        [("word_embeddings", wordEmbeddings), ("position_embeddings", positionEmbeddings),
         ("token_type_embeddings", tokenTypeEmbeddings), ("LayerNorm", layerNorm), ("dropout", dropout)]
    }

    /// `[B, L, hidden]` for ids, positions and token types, all `[B, L]`.
    public func callAsFunction(ids: TokenIDs, positions: TokenIDs, tokenTypes: TokenIDs) throws -> Tensor {
        let sum = try add(add(try wordEmbeddings(ids), try positionEmbeddings(positions)), try tokenTypeEmbeddings(tokenTypes))
        return try dropout(try layerNorm(sum))
    }
}

/// `tanh(dense(h₀))` of the first position's output (BERT's pooler).
public final class OSCARPooler: Module {
    public let dense: Linear

    init(_ c: OSCARConfiguration, initializer: Initializer) throws {
        dense = try Linear(c.hiddenSize, c.hiddenSize, initialization: c.initialization, initializer: initializer)
    }

    /// `[B, hidden]` from the first position of `sequence` `[B, L, hidden]`.
    public func callAsFunction(_ sequence: Tensor) throws -> Tensor {
        let (batch, length, hidden) = (sequence.shape[0], sequence.shape[1], sequence.shape[2])
        let first = try stridedCopy(sequence, shape: [batch, hidden], strides: [length * hidden, 1])
        return try Clover.tanh(try dense(first))
    }
}

/// BERT's prediction-head transform: dense, GELU, layer norm.
public final class OSCARHeadTransform: Module {
    public let dense: Linear
    public let layerNorm: LayerNorm

    init(_ c: OSCARConfiguration, initializer: Initializer) throws {
        dense = try Linear(c.hiddenSize, c.hiddenSize, initialization: c.initialization, initializer: initializer)
        layerNorm = try LayerNorm(c.hiddenSize, epsilon: c.layerNormEpsilon, initializer: initializer)
    }

    public override func namedChildren() -> [(String, Module)] { [("dense", dense), ("LayerNorm", layerNorm)] }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try layerNorm(try gelu(try dense(x))) }
}

/// The masked-token head (`cls.predictions`): the transform, then a decoder
/// to vocabulary logits whose weight is the word-embedding table when tied.
public final class OSCARMaskedTokenHead: Module {
    /// The output bias `[vocab]` (a parameter of its own in BERT too, so that
    /// it exists when the decoder weight is tied).
    public let bias: Parameter
    public let transform: OSCARHeadTransform
    /// The untied decoder weight `[vocab, hidden]`, or nil when tied.
    public let decoder: Linear?

    init(_ c: OSCARConfiguration, initializer: Initializer) throws {
        transform = try OSCARHeadTransform(c, initializer: initializer)
        decoder = c.tieWordEmbeddings ? nil
            : try Linear(c.hiddenSize, c.vocabularySize, bias: false, initialization: c.initialization, initializer: initializer)
        bias = Parameter(try initializer.constant([c.vocabularySize], 0))
    }

    /// Logits `[..., vocab]` for hidden states `[..., hidden]`; `tiedWeight`
    /// is the word-embedding table, used when there is no decoder of its own.
    public func callAsFunction(_ x: Tensor, tiedWeight: Tensor) throws -> Tensor {
        try linear(try transform(x), weight: decoder?.weight.tensor ?? tiedWeight, bias: bias.tensor)
    }
}

/// The pre-training heads (`cls`): masked-token predictions and the
/// contrastive classifier on the pooled output.
public final class OSCARPretrainingHeads: Module {
    public let predictions: OSCARMaskedTokenHead
    /// `hidden → 1`: the logit that the tags are real (not polluted).
    public let seqRelationship: Linear

    init(_ c: OSCARConfiguration, initializer: Initializer) throws {
        predictions = try OSCARMaskedTokenHead(c, initializer: initializer)
        seqRelationship = try Linear(c.hiddenSize, 1, initialization: c.initialization, initializer: initializer)
    }
}

/// The encoder's outputs for a batch.
public struct OSCAROutput {
    /// Hidden states `[B, textLength + regionLength, hidden]`.
    public let sequence: Tensor
    /// The pooled first position `[B, hidden]`.
    public let pooled: Tensor
    /// Text slots (words + tags) at the start of each sample's sequence.
    public let textLength: Int
}

// MARK: The model

/// An OSCAR encoder with its pre-training heads; see the top of this file
/// for the layout and names.
public final class OSCAR: Module {
    public let configuration: OSCARConfiguration
    public let embeddings: OSCARTextEmbeddings
    /// Region features → hidden (`img_embedding`).
    public let imgEmbedding: Linear
    /// The image embedding's layer norm (Oscar's top-level `LayerNormalization`).
    public let imgLayerNorm: LayerNorm?
    public let imgDropout: Dropout
    public let encoder: TransformerEncoder
    public let pooler: OSCARPooler
    public let cls: OSCARPretrainingHeads

    /// The presets, smallest first, for listings.
    public static let configurations: [OSCARConfiguration] = [.toy, .tiny, .mini, .small, .base, .large]

    /// The preset called `name` (case-insensitive).
    public static func configuration(named name: String) throws -> OSCARConfiguration {
        guard let c = configurations.first(where: { $0.name.lowercased() == name.lowercased() }) else {
            throw CloverError.invalidArgument(op: "oscar", reason: "unknown configuration '\(name)'; known: \(configurations.map(\.name).joined(separator: ", "))")
        }
        return c
    }

    public init(_ configuration: OSCARConfiguration, initializer: Initializer) throws {
        let c = configuration
        guard c.heads > 0, c.hiddenSize % c.heads == 0 else {
            throw CloverError.invalidArgument(op: "oscar", reason: "hidden size \(c.hiddenSize) is not divisible by \(c.heads) heads")
        }
        guard c.typeVocabularySize >= 2 else {
            throw CloverError.invalidArgument(op: "oscar", reason: "token types \(c.typeVocabularySize): words and tags need 2")
        }
        self.configuration = c
        embeddings = try OSCARTextEmbeddings(c, initializer: initializer)
        imgEmbedding = try Linear(c.regionFeatureSize, c.hiddenSize, initialization: c.initialization, initializer: initializer)
        imgLayerNorm = c.imageLayerNorm ? try LayerNorm(c.hiddenSize, epsilon: c.layerNormEpsilon, initializer: initializer) : nil
        imgDropout = Dropout(probability: c.hiddenDropout, initializer: initializer)
        encoder = try TransformerEncoder(layers: c.layers, hidden: c.hiddenSize, heads: c.heads, intermediate: c.intermediateSize,
                                         dropout: c.hiddenDropout, attentionDropout: c.attentionDropout,
                                         layerNormEpsilon: c.layerNormEpsilon, initialization: c.initialization,
                                         initializer: initializer)
        pooler = try OSCARPooler(c, initializer: initializer)
        cls = try OSCARPretrainingHeads(c, initializer: initializer)
    }

    public override func namedChildren() -> [(String, Module)] {
        var children: [(String, Module)] = [("embeddings", embeddings), ("img_embedding", imgEmbedding)]
        if let imgLayerNorm { children.append(("LayerNorm", imgLayerNorm)) }
        children += [("dropout", imgDropout), ("encoder", encoder), ("pooler", pooler), ("cls", cls)]
        return children
    }

    /// The device the parameters live on.
    public var device: Device { embeddings.wordEmbeddings.weight.tensor.device }

    /// The ids, positions, token types and key-padding mask of a batch's
    /// sequence layout (see the top of this file).
    func layout(_ batch: OSCARBatch) throws -> (ids: TokenIDs, positions: TokenIDs, tokenTypes: TokenIDs, mask: KeyPaddingMask) {
        let textLength = batch.textLength
        guard textLength <= configuration.maxPositions else {
            throw CloverError.invalidArgument(op: "oscar", reason: "\(batch.wordLength) words + \(batch.tagLength) tags exceed \(configuration.maxPositions) positions")
        }
        var positions: [Int32] = [], tokenTypes: [Int32] = [], valid: [[Bool]] = []
        for b in 0..<batch.batchSize {
            let real = batch.wordCounts[b] + batch.tagCounts[b]
            var nextReal = 0, nextPadding = real
            for t in 0..<textLength {
                if batch.isRealText(sample: b, slot: t) {
                    positions.append(Int32(nextReal))
                    nextReal += 1
                } else {
                    positions.append(Int32(nextPadding))
                    nextPadding += 1
                }
                tokenTypes.append(t < batch.wordLength ? 0 : 1)
            }
            valid.append((0..<textLength).map { batch.isRealText(sample: b, slot: $0) }
                         + (0..<batch.regionLength).map { $0 < batch.regionCounts[b] })
        }
        let shape = [batch.batchSize, textLength]
        return (try TokenIDs(batch.textIDs, shape: shape), try TokenIDs(positions, shape: shape),
                try TokenIDs(tokenTypes, shape: shape), try KeyPaddingMask(valid: valid))
    }

    /// Encodes a batch: text and region embeddings, concatenated, through
    /// the encoder, plus the pooled first position.
    public func callAsFunction(_ batch: OSCARBatch) throws -> OSCAROutput {
        guard batch.regionFeatureSize == configuration.regionFeatureSize else {
            throw CloverError.invalidArgument(op: "oscar", reason: "regions have \(batch.regionFeatureSize) features, the model takes \(configuration.regionFeatureSize)")
        }
        let l = try layout(batch)
        var x = try embeddings(ids: l.ids, positions: l.positions, tokenTypes: l.tokenTypes)
        if batch.regionLength > 0 {
            let features = try Tensor(shape: [batch.batchSize, batch.regionLength, batch.regionFeatureSize],
                                      values: batch.regionFeatures, on: device)
            var regions = try imgEmbedding(features)
            if let imgLayerNorm { regions = try imgLayerNorm(regions) }
            x = try concat([x, try imgDropout(regions)], axis: 1)
        }
        let sequence = try encoder(x, mask: l.mask)
        return OSCAROutput(sequence: sequence, pooled: try pooler(sequence), textLength: batch.textLength)
    }

    /// Masked-token logits `[B·textLength, vocab]` for every text slot (rows
    /// in the order of ``OSCARBatch/textIDs``).
    public func maskedTokenLogits(_ output: OSCAROutput) throws -> Tensor {
        let s = output.sequence.shape
        let text = s[1] == output.textLength ? output.sequence
            : try stridedCopy(output.sequence, shape: [s[0], output.textLength, s[2]], strides: [s[1] * s[2], s[2], 1])
        let logits = try cls.predictions(text, tiedWeight: embeddings.wordEmbeddings.weight.tensor)
        return try logits.reshaped([s[0] * output.textLength, configuration.vocabularySize])
    }

    /// Contrastive logits `[B, 1]`: positive when the tags look real.
    public func contrastiveLogits(_ output: OSCAROutput) throws -> Tensor {
        try cls.seqRelationship(output.pooled)
    }
}

// MARK: Pre-training

/// What happened to one text slot under masking.
public enum OSCARMaskAction: Hashable, Sendable {
    /// Not selected (label −100).
    case none
    /// Selected and replaced by `[MASK]`.
    case masked
    /// Selected and replaced by a random vocabulary id.
    case randomized
    /// Selected and left as it was.
    case kept
}

/// What a polluted sample gets from another sample of the batch.
public enum OSCARPollution: String, CaseIterable, Sendable {
    /// Its tags (the Oscar paper's contrastive loss): the head learns whether
    /// the tags belong to the caption and the regions.
    case tags
    /// Its caption: the head learns whether the caption belongs to the image
    /// (tags and regions), the judgement image-text retrieval asks for.
    case captions
    /// Either, with equal chance (as Oscar+'s contrastive loss, VinVL, polluting
    /// the caption or the tags, here with one binary "polluted" target).
    case either
}

/// A batch after OSCAR's corruption, with the targets of both losses.
public struct OSCARCorruption: Sendable {
    /// The input the model sees: polluted tags and masked text.
    public var batch: OSCARBatch
    /// Masked-token labels `[B·textLength]`: the original id where a slot was
    /// selected, −100 elsewhere.
    public var labels: [Int32]
    /// Per text slot, what masking did.
    public var actions: [OSCARMaskAction]
    /// Per sample, whether its tags or caption were replaced by another sample's.
    public var polluted: [Bool]
}

/// The pre-training losses of one step.
public struct OSCARPretrainingLoss {
    /// Masked-token loss + weighted contrastive loss (the paper's L_MTL + L_C
    /// at ``OSCARPretraining/contrastiveWeight`` 1).
    public let total: Tensor
    /// Mean cross-entropy over the selected text slots.
    public let maskedToken: Tensor
    /// Mean binary cross-entropy of the polluted-or-real logit.
    public let contrastive: Tensor
    /// The contrastive logits `[B, 1]` the loss was taken of: positive
    /// where the model judges the tags real (for accuracy in progress lines).
    public let contrastiveLogits: Tensor
}

/// OSCAR's pre-training objective: the masked-token loss on words and tags
/// and the contrastive loss on polluted tags, with the corruption drawn
/// deterministically from a seed.
///
/// Corruption, in this order (as Oscar's data loader does):
/// 1. **Pollution**: each sample, with probability ``pollutionProbability``,
///    gets the tags (and tag count) of another sample of the batch drawn
///    uniformly — the batch stands in for the data set Oscar samples from —
///    or, as ``pollution`` says, its caption, or either with equal chance.
///    A batch of one sample is never polluted.
/// 2. **Masking** (BERT's rule) over the real word and tag slots except
///    `[PAD]`, `[CLS]`, `[SEP]` and `[MASK]`: each is selected with
///    probability ``maskingProbability``; a selected slot becomes `[MASK]`
///    with probability 0.8, a uniformly random vocabulary id with 0.1, and
///    stays with 0.1. Its label is the id before masking; every other
///    label is −100.
///
/// The contrastive target is 1 for real tags and 0 for polluted ones.
public final class OSCARPretraining {
    public let model: OSCAR
    /// Chance that a text token is selected (BERT's 0.15).
    public var maskingProbability = 0.15
    /// Of the selected, the share replaced by `[MASK]` (0.8).
    public var maskTokenShare = 0.8
    /// Of the selected, the share replaced by a random id (0.1); the rest stay.
    public var randomTokenShare = 0.1
    /// Chance that a sample is polluted (0.5).
    public var pollutionProbability = 0.5
    /// What pollution replaces (the paper: ``OSCARPollution/tags``).
    public var pollution = OSCARPollution.tags
    /// The contrastive loss's weight in the total (the paper's 1). On the
    /// Fashion-MNIST corpus from scratch a weight of 4 did not lift the head
    /// off chance; contrastive-only epochs first did (README).
    public var contrastiveWeight: Float = 1

    public init(model: OSCAR) {
        self.model = model
    }

    /// Pollutes and masks `batch` as described above; the same seed gives
    /// the same corruption.
    public func corrupt(_ batch: OSCARBatch, seed: UInt64) -> OSCARCorruption {
        var rng = SplitMix64(seed: seed)
        var out = batch
        var polluted = [Bool](repeating: false, count: batch.batchSize)
        let n = batch.batchSize, tl = batch.tagLength
        for b in 0..<n {
            guard Double.random(in: 0..<1, using: &rng) < pollutionProbability, n > 1 else { continue }
            // Another sample: draw from the n − 1 others and skip over b.
            var other = Int.random(in: 0..<(n - 1), using: &rng)
            if other >= b { other += 1 }
            // The paper's mode draws nothing more, so its corruptions stay as they were.
            let caption = pollution == .captions || (pollution == .either && Bool.random(using: &rng))
            if caption {
                let wl = batch.wordLength
                out.words.replaceSubrange((b * wl)..<((b + 1) * wl), with: batch.words[(other * wl)..<((other + 1) * wl)])
                out.wordCounts[b] = batch.wordCounts[other]
            } else {
                out.tags.replaceSubrange((b * tl)..<((b + 1) * tl), with: batch.tags[(other * tl)..<((other + 1) * tl)])
                out.tagCounts[b] = batch.tagCounts[other]
            }
            polluted[b] = true
        }

        let special = model.configuration.specialTokens
        let vocabulary = Int32(model.configuration.vocabularySize)
        let textLength = batch.textLength
        var labels = [Int32](repeating: -100, count: n * textLength)
        var actions = [OSCARMaskAction](repeating: .none, count: n * textLength)
        for b in 0..<n {
            for t in 0..<textLength where out.isRealText(sample: b, slot: t) {
                let isWord = t < out.wordLength
                let index = isWord ? b * out.wordLength + t : b * tl + (t - out.wordLength)
                let id = isWord ? out.words[index] : out.tags[index]
                guard !special.all.contains(id), Double.random(in: 0..<1, using: &rng) < maskingProbability else { continue }
                labels[b * textLength + t] = id
                let u = Double.random(in: 0..<1, using: &rng)
                let replacement: Int32
                if u < maskTokenShare {
                    replacement = special.mask
                    actions[b * textLength + t] = .masked
                } else if u < maskTokenShare + randomTokenShare {
                    replacement = Int32.random(in: 0..<vocabulary, using: &rng)
                    actions[b * textLength + t] = .randomized
                } else {
                    replacement = id
                    actions[b * textLength + t] = .kept
                }
                if isWord { out.words[index] = replacement } else { out.tags[index] = replacement }
            }
        }
        return OSCARCorruption(batch: out, labels: labels, actions: actions, polluted: polluted)
    }

    /// The losses for an already corrupted batch.
    public func loss(_ corruption: OSCARCorruption) throws -> OSCARPretrainingLoss {
        let output = try model(corruption.batch)
        let maskedToken = try maskedTokenCrossEntropy(try model.maskedTokenLogits(output), labels: ClassLabels(corruption.labels))
        let targets = try Tensor(shape: [corruption.batch.batchSize, 1], values: corruption.polluted.map { $0 ? 0 : 1 },
                                 on: model.device)
        let logits = try model.contrastiveLogits(output)
        let contrastive = try binaryCrossEntropyWithLogits(logits, targets: targets)
        let weighted = contrastiveWeight == 1 ? contrastive : try scale(contrastive, by: contrastiveWeight)
        return OSCARPretrainingLoss(total: try add(maskedToken, weighted), maskedToken: maskedToken,
                                    contrastive: contrastive, contrastiveLogits: logits)
    }

    /// Corrupts `batch` with `seed`, runs the model and returns the losses;
    /// call `backward()` on ``OSCARPretrainingLoss/total`` to train.
    public func loss(_ batch: OSCARBatch, seed: UInt64) throws -> OSCARPretrainingLoss {
        try loss(corrupt(batch, seed: seed))
    }
}
