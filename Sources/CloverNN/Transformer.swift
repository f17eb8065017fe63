import Clover

// Transformer building blocks: token embeddings, multi-head self-attention and
// the BERT encoder layer (Devlin et al., "BERT: Pre-training of Deep
// Bidirectional Transformers for Language Understanding", 2019).
//
// State-dict names follow HuggingFace's `BertModel` rather than PyTorch's
// `nn.TransformerEncoderLayer` (`self_attn.in_proj_weight`, `linear1`, …):
// the models built from these layers (OSCAR, …) are BERT-based and their
// published checkpoints use BERT's names. One encoder layer holds
//
//   attention.self.query / key / value     the Q, K, V projections
//   attention.output.dense                 the output projection
//   attention.output.LayerNorm             post-attention layer norm
//   intermediate.dense                     feed-forward expansion (+ GELU)
//   output.dense                           feed-forward projection back
//   output.LayerNorm                       post-feed-forward layer norm
//
// so `encoder.layer.0.attention.self.query.weight` is the same key in both.
// The Swift properties keep idiomatic names; `namedChildren()` maps them to
// BERT's (`self` is a Swift keyword and `LayerNormalization` is not snake case, so
// reflection alone cannot produce these names).

/// How transformer layers draw their weights.
public enum TransformerInitialization: Equatable, Sendable {
    /// PyTorch's layer defaults: linear weights and biases uniform in
    /// ±1/√fan_in (`nn.Linear`), embeddings N(0, 1) (`nn.Embedding`).
    case pytorch
    /// Every linear and embedding weight N(0, std²), linear biases zero,
    /// layer norms weight 1 and bias 0 (BERT's `_init_weights`).
    case normal(std: Float)

    /// BERT's initialisation: N(0, 0.02²) (`initializer_range` 0.02).
    public static let bert = TransformerInitialization.normal(std: 0.02)
}

extension Linear {
    /// A linear layer drawn as `initialization` says.
    public convenience init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true,
                            initialization: TransformerInitialization, initializer: Initializer) throws {
        switch initialization {
        case .pytorch:
            try self.init(inFeatures, outFeatures, bias: bias, initializer: initializer)
        case let .normal(std):
            // Built on the meta device, then given real tensors: drawing the
            // uniform defaults only to overwrite them would shift the seed's stream.
            try self.init(inFeatures, outFeatures, bias: bias, initializer: Initializer(device: .meta))
            weight.rebind(try initializer.normal([outFeatures, inFeatures], std: std))
            self.bias?.rebind(try initializer.constant([outFeatures], 0))
        }
    }
}

/// A token-embedding table (`nn.Embedding`): `weight` `[count, dimension]`,
/// looked up by integer ids. There is no `padding_idx`: every row is trained
/// (padded positions are excluded by attention masks and ignored labels instead).
public final class Embedding: Module {
    public let weight: Parameter

    /// A table of `count` rows of `dimension` values, N(0, 1) as PyTorch
    /// draws it or N(0, std²) with ``TransformerInitialization/normal(std:)``.
    public init(_ count: Int, _ dimension: Int, initialization: TransformerInitialization = .pytorch,
                initializer: Initializer) throws {
        guard count > 0, dimension > 0 else {
            throw CloverError.invalidArgument(op: "Embedding", reason: "table \(count)x\(dimension) must be non-empty")
        }
        let std: Float
        switch initialization {
        case .pytorch: std = 1
        case let .normal(s): std = s
        }
        weight = Parameter(try initializer.normal([count, dimension], std: std))
    }

    /// Rows in the table (the vocabulary).
    public var count: Int { weight.shape[0] }
    /// Values per row.
    public var dimension: Int { weight.shape[1] }

    /// The rows for `ids` (shape `S`): a tensor of shape `S + [dimension]`.
    public func callAsFunction(_ ids: TokenIDs) throws -> Tensor {
        try embedding(weight.tensor, ids: ids)
    }
}

/// Multi-head self-attention with BERT's layout: `query`, `key` and `value`
/// projections `hidden → hidden`, scaled dot-product attention over `heads`
/// heads, dropout on the attention probabilities, then the `output`
/// projection. Residual and layer norm belong to ``TransformerEncoderLayer``.
///
/// State names: `self.query`, `self.key`, `self.value`, `output.dense`
/// (HuggingFace's `BertSelfAttention` and `BertSelfOutput`).
public final class MultiheadAttention: Module {
    public let query: Linear
    public let key: Linear
    public let value: Linear
    /// The output projection (`attention.output.dense`).
    public let output: Linear
    /// Dropout on the attention probabilities (`attention_probs_dropout_prob`).
    public let probabilityDropout: Dropout
    public let heads: Int

    public init(hidden: Int, heads: Int, dropout: Float = 0.1, initialization: TransformerInitialization = .bert,
                initializer: Initializer) throws {
        guard heads > 0, hidden % heads == 0 else {
            throw CloverError.invalidArgument(op: "MultiheadAttention", reason: "hidden size \(hidden) is not divisible by \(heads) heads")
        }
        self.heads = heads
        query = try Linear(hidden, hidden, initialization: initialization, initializer: initializer)
        key = try Linear(hidden, hidden, initialization: initialization, initializer: initializer)
        value = try Linear(hidden, hidden, initialization: initialization, initializer: initializer)
        output = try Linear(hidden, hidden, initialization: initialization, initializer: initializer)
        probabilityDropout = Dropout(probability: dropout, initializer: initializer)
    }

    public override func namedChildren() -> [(String, Module)] {
        [("self.query", query), ("self.key", key), ("self.value", value), ("self.dropout", probabilityDropout),
         ("output.dense", output)]
    }

    /// Self-attention over `x` `[B, L, hidden]`; keys marked as padding in
    /// `mask` (`[B, L]`) get no attention. The output is `[B, L, hidden]`.
    public func callAsFunction(_ x: Tensor, mask: KeyPaddingMask? = nil) throws -> Tensor {
        // Only dropout on the probabilities needs them materialised; otherwise
        // the fused op, which recomputes them in its backward pass instead.
        let composed = isTraining && probabilityDropout.probability > 0
        return try output(try attend(try query(x), try key(x), try value(x), mask: mask, composed: composed))
    }

    /// The context `[B, L, hidden]` from projected `q`, `k`, `v`: the fused
    /// ``ScaledDotProductAttention``, or (`composed`) the same computation
    /// spelled out in its primitives so that dropout can act on the
    /// probabilities between the softmax and the product with V, as BERT does.
    func attend(_ q: Tensor, _ k: Tensor, _ v: Tensor, mask: KeyPaddingMask?, composed: Bool) throws -> Tensor {
        guard composed else { return try attention(q, k, v, heads: heads, mask: mask) }
        let (batch, length, width) = (q.shape[0], q.shape[1], q.shape[2])
        let headWidth = width / heads
        func perHead(_ t: Tensor) throws -> Tensor {
            try apply1(SplitHeads(heads: heads), [t]).reshaped([batch * heads, length, headWidth])
        }
        let scores = try matmul(try perHead(q), try perHead(k), transposeB: true,
                                alpha: 1 / Float(headWidth).squareRoot())
        let probabilities = try maskedSoftmax(try scores.reshaped([batch, heads, length, length]), mask: mask)
        let dropped = try probabilityDropout(probabilities).reshaped([batch * heads, length, length])
        let context = try matmul(dropped, try perHead(v)).reshaped([batch, heads, length, headWidth])
        return try apply1(MergeHeads(), [context])
    }
}

/// One BERT encoder layer (post-layer-norm):
///
///     h = LayerNormalization(x + Dropout(SelfAttention(x)))
///     y = LayerNormalization(h + Dropout(Dense(GELU(Dense(h)))))
///
/// with layer-norm ε 1e-12 by default (BERT's `layer_norm_eps`). Names as
/// HuggingFace's `BertLayer`; see the top of this file.
public final class TransformerEncoderLayer: Module {
    public let attention: MultiheadAttention
    /// Dropout on the attention block's output (`attention.output.dropout`).
    public let attentionDropout: Dropout
    /// `attention.output.LayerNormalization`.
    public let attentionLayerNorm: LayerNorm
    /// The feed-forward expansion `hidden → intermediate` (`intermediate.dense`).
    public let intermediate: Linear
    /// The feed-forward nonlinearity (GELU for BERT).
    public let activation: ActivationLayer
    /// The feed-forward projection `intermediate → hidden` (`output.dense`).
    public let output: Linear
    /// `output.dropout`.
    public let outputDropout: Dropout
    /// `output.LayerNormalization`.
    public let outputLayerNorm: LayerNorm

    /// - Parameters:
    ///   - hidden: the model width.
    ///   - heads: attention heads; `hidden` must be a multiple.
    ///   - intermediate: the feed-forward width (4·hidden in BERT).
    ///   - dropout: dropout after the attention and feed-forward blocks (`hidden_dropout_prob`).
    ///   - attentionDropout: dropout on attention probabilities (`attention_probs_dropout_prob`).
    ///   - layerNormEpsilon: ε of both layer norms.
    public init(hidden: Int, heads: Int, intermediate: Int, dropout: Float = 0.1, attentionDropout: Float = 0.1,
                layerNormEpsilon: Float = 1e-12, activation: ActivationLayer.Kind = .gelu,
                initialization: TransformerInitialization = .bert, initializer: Initializer) throws {
        attention = try MultiheadAttention(hidden: hidden, heads: heads, dropout: attentionDropout,
                                           initialization: initialization, initializer: initializer)
        self.attentionDropout = Dropout(probability: dropout, initializer: initializer)
        attentionLayerNorm = try LayerNorm(hidden, epsilon: layerNormEpsilon, initializer: initializer)
        self.intermediate = try Linear(hidden, intermediate, initialization: initialization, initializer: initializer)
        self.activation = ActivationLayer(activation)
        output = try Linear(intermediate, hidden, initialization: initialization, initializer: initializer)
        outputDropout = Dropout(probability: dropout, initializer: initializer)
        outputLayerNorm = try LayerNorm(hidden, epsilon: layerNormEpsilon, initializer: initializer)
    }

    public override func namedChildren() -> [(String, Module)] {
        [("attention", attention), ("attention.output.dropout", attentionDropout),
         ("attention.output.LayerNorm", attentionLayerNorm), ("intermediate.dense", intermediate),
         ("intermediate.activation", activation), ("output.dense", output), ("output.dropout", outputDropout),
         ("output.LayerNorm", outputLayerNorm)]
    }

    /// The layer applied to hidden states `x` `[B, L, hidden]`, with padded
    /// keys (`mask`, `[B, L]`) hidden from attention. Padded positions still
    /// get outputs (as in BERT); callers ignore them.
    public func callAsFunction(_ x: Tensor, mask: KeyPaddingMask? = nil) throws -> Tensor {
        let attended = try attention(x, mask: mask)
        let h = try attentionLayerNorm(try add(x, try attentionDropout(attended)))
        let expanded = try activation(try intermediate(h))
        return try outputLayerNorm(try add(h, try outputDropout(try output(expanded))))
    }
}

/// A stack of ``TransformerEncoderLayer``s named `layer.0`, `layer.1`, …
/// (HuggingFace's `BertEncoder`).
public final class TransformerEncoder: Module {
    public let layer: [TransformerEncoderLayer]

    public init(_ layers: [TransformerEncoderLayer]) {
        layer = layers
    }

    /// `count` identical-shaped layers; see ``TransformerEncoderLayer/init(hidden:heads:intermediate:dropout:attentionDropout:layerNormEpsilon:activation:initialization:initializer:)``.
    public convenience init(layers count: Int, hidden: Int, heads: Int, intermediate: Int, dropout: Float = 0.1,
                            attentionDropout: Float = 0.1, layerNormEpsilon: Float = 1e-12,
                            activation: ActivationLayer.Kind = .gelu, initialization: TransformerInitialization = .bert,
                            initializer: Initializer) throws {
        self.init(try (0..<count).map { _ in
            try TransformerEncoderLayer(hidden: hidden, heads: heads, intermediate: intermediate, dropout: dropout,
                                        attentionDropout: attentionDropout, layerNormEpsilon: layerNormEpsilon,
                                        activation: activation, initialization: initialization, initializer: initializer)
        })
    }

    /// Every layer in turn over `x` `[B, L, hidden]` with the same padding mask.
    public func callAsFunction(_ x: Tensor, mask: KeyPaddingMask? = nil) throws -> Tensor {
        try layer.reduce(x) { try $1($0, mask: mask) }
    }
}
