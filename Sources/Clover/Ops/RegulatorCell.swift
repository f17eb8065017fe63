// The self-regulated network's ConvRNN regulator cell (Xu et al., "RegNet:
// Self-Regulated Network for Image Classification"), composed of ops that
// each have a CPU reference, kernels and a gradient — so the cell needs no
// kernels of its own and its gradient is autograd over these ops.
//
// For a block input X and the previous hidden state H (both [B, N, h, w]):
//   1. pair each input channel with its state channel: [X₀, H₀, X₁, H₁, …]
//      (2N channels; an interleaving concat, so that group n holds (Xₙ, Hₙ));
//   2. grouped 1x1 conv with N groups of 2 channels, G outputs per group
//      (G = number of gates), merging current and previous information;
//   3. depthwise 3x3 conv (padding 1) over the G·N channels, for local context;
//   4. the gates: ConvRNN h′ = tanh(p); ConvLSTM (i, f, o, g) with cell C;
//      ConvGRU (z, r), then the candidate from [X, r·H] through its own
//      grouped 1x1 + depthwise 3x3 pair, and h′ = (1−z)·tanh(p̂) + z·h.
// Gate k of state channel n is channel n·G + k, the order a grouped conv
// with one group per state channel produces (see Kernels/convrnn.cl).

/// Which recurrent regulator a self-regulated block uses.
public enum RegulatorKind: String, CaseIterable, Sendable {
    case convRNN = "rnn", convGRU = "gru", convLSTM = "lstm"

    /// Gate pre-activations per state channel produced by the main convs.
    public var gates: Int {
        switch self {
        case .convRNN: return 1
        case .convGRU: return 2
        case .convLSTM: return 4
        }
    }

    /// Whether a cell state C is carried besides H.
    public var hasCellState: Bool { self == .convLSTM }
}

/// The weights of one regulator cell over N state channels.
///
/// Shapes (G = ``RegulatorKind/gates``): `pointwise` [G·N, 2, 1, 1] and
/// `pointwiseBias` [G·N]; `depthwise` [G·N, 1, 3, 3] and `depthwiseBias`
/// [G·N]; for ConvGRU also the candidate's `candidatePointwise` [N, 2, 1, 1],
/// `candidatePointwiseBias` [N], `candidateDepthwise` [N, 1, 3, 3] and
/// `candidateDepthwiseBias` [N].
public struct RegulatorWeights {
    public var pointwise: Tensor
    public var pointwiseBias: Tensor
    public var depthwise: Tensor
    public var depthwiseBias: Tensor
    public var candidatePointwise: Tensor?
    public var candidatePointwiseBias: Tensor?
    public var candidateDepthwise: Tensor?
    public var candidateDepthwiseBias: Tensor?

    public init(pointwise: Tensor, pointwiseBias: Tensor, depthwise: Tensor, depthwiseBias: Tensor,
                candidatePointwise: Tensor? = nil, candidatePointwiseBias: Tensor? = nil,
                candidateDepthwise: Tensor? = nil, candidateDepthwiseBias: Tensor? = nil) {
        self.pointwise = pointwise
        self.pointwiseBias = pointwiseBias
        self.depthwise = depthwise
        self.depthwiseBias = depthwiseBias
        self.candidatePointwise = candidatePointwise
        self.candidatePointwiseBias = candidatePointwiseBias
        self.candidateDepthwise = candidateDepthwise
        self.candidateDepthwiseBias = candidateDepthwiseBias
    }

    /// The shapes of every weight tensor for `kind` over `channels` states, in
    /// the order of ``tensors``.
    public static func shapes(_ kind: RegulatorKind, channels n: Int) -> [[Int]] {
        let g = kind.gates
        var shapes = [[g * n, 2, 1, 1], [g * n], [g * n, 1, 3, 3], [g * n]]
        if kind == .convGRU { shapes += [[n, 2, 1, 1], [n], [n, 1, 3, 3], [n]] }
        return shapes
    }

    /// The exact parameter count of one cell: (2 + 1 + 9 + 1)·G·N, plus
    /// (2 + 1 + 9 + 1)·N for ConvGRU's candidate.
    public static func parameterCount(_ kind: RegulatorKind, channels n: Int) -> Int {
        shapes(kind, channels: n).reduce(0) { $0 + $1.reduce(1, *) }
    }

    /// The tensors in the order of ``shapes(_:channels:)``.
    public var tensors: [Tensor] {
        [pointwise, pointwiseBias, depthwise, depthwiseBias]
            + [candidatePointwise, candidatePointwiseBias, candidateDepthwise, candidateDepthwiseBias].compactMap { $0 }
    }
}

/// `[X₀, H₀, X₁, H₁, …]`: channel pairs for the grouped 1x1 conv.
public func interleaveChannels(_ x: Tensor, _ h: Tensor) throws -> Tensor {
    guard x.shape == h.shape, x.rank == 4 else {
        throw CloverError.shapeMismatch(op: "regulator_cell", shapes: [x.shape, h.shape],
                                        reason: "X and H must both be [B, N, H, W]")
    }
    let s = x.shape
    let pairs = try concat([x.reshaped([s[0], s[1], 1, s[2], s[3]]), h.reshaped([s[0], s[1], 1, s[2], s[3]])], axis: 2)
    return try pairs.reshaped([s[0], 2 * s[1], s[2], s[3]])
}

/// Grouped 1x1 conv over channel pairs, then depthwise 3x3: the regulator's
/// pre-activations, [B, G·N, h, w].
private func regulatorConvs(_ x: Tensor, _ h: Tensor, pointwise: Tensor, pointwiseBias: Tensor,
                            depthwise: Tensor, depthwiseBias: Tensor) throws -> Tensor {
    let n = x.shape[1]
    let merged = try conv2d(interleaveChannels(x, h), pointwise, bias: pointwiseBias, groups: n)
    return try conv2d(merged, depthwise, bias: depthwiseBias, padding: 1, groups: merged.shape[1])
}

/// One step of the regulator: the new hidden state H′ (and cell state C′
/// for ConvLSTM) from the block input `x`, the previous `h` (and `c`).
///
/// - Throws: ``CloverError`` naming `regulator_cell` when shapes disagree or
///   a weight is missing for `kind`.
public func regulatorCell(_ kind: RegulatorKind, x: Tensor, h: Tensor, c: Tensor? = nil,
                          weights w: RegulatorWeights) throws -> (h: Tensor, c: Tensor?) {
    let n = x.shape.count == 4 ? x.shape[1] : 0
    let expected = RegulatorWeights.shapes(kind, channels: n)
    let given = w.tensors.map(\.shape)
    guard given == expected else {
        throw CloverError.shapeMismatch(op: "regulator_cell", shapes: [x.shape] + given,
                                        reason: "\(kind) weights for \(n) channels must be \(expected.map(formatShape))")
    }
    if kind.hasCellState && c?.shape != x.shape {
        throw CloverError.shapeMismatch(op: "regulator_cell", shapes: [x.shape, c?.shape ?? []],
                                        reason: "ConvLSTM needs a cell state shaped like X")
    }
    let pre = try regulatorConvs(x, h, pointwise: w.pointwise, pointwiseBias: w.pointwiseBias,
                                 depthwise: w.depthwise, depthwiseBias: w.depthwiseBias)
    switch kind {
    case .convRNN:
        return (try tanh(pre), nil)
    case .convLSTM:
        let out = try apply(LSTMCell(), [pre, c!])
        return (out[0], out[1])
    case .convGRU:
        let zr = try apply(GRUGates(), [pre, h])
        let candidate = try regulatorConvs(x, zr[1], pointwise: w.candidatePointwise!, pointwiseBias: w.candidatePointwiseBias!,
                                           depthwise: w.candidateDepthwise!, depthwiseBias: w.candidateDepthwiseBias!)
        return (try apply1(GRUOutput(), [zr[0], candidate, h]), nil)
    }
}
