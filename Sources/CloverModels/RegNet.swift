// The self-regulated network (Xu et al., "RegNet: Self-Regulated Network for
// Image Classification") — not Facebook's RegNetX/RegNetY. A ResNet whose
// blocks share a convolutional recurrent cell (ConvRNN, ConvGRU or ConvLSTM,
// ``regulatorCell(_:x:h:c:weights:)``) that carries complementary features
// from block to block; the blocks of a stage play the role of time steps.
//
// The design as implemented here:
//
// (a) Block t of a regulated stage with input X_t (basic block, N channels):
//         I_t        = ReLU(BN1(conv1(X_t)))                 3x3, stride s, → N
//         (H_t, C_t) = regulatorCell(kind, x: I_t, h: H_{t−1}, c: C_{t−1}, stage weights)
//     The cell pairs each channel of I with its channel of H, merges each pair
//     with a grouped 1x1 conv (N groups of 2 channels), adds local context
//     with a depthwise 3x3 conv, then applies the RNN/GRU/LSTM gates.
// (b) H is fused back in one of two ways (``RegNetConfiguration/Fusion``):
//     `.conv3x3` (Clover's first reading, the default): the block's second
//     conv takes concat[I_t, H_t] (2N channels), 3x3 2N → N, then BN2, the
//     residual add and ReLU:
//         out_t = ReLU(BN2(conv2(concat[I_t, H_t])) + shortcut(X_t))
//     `.paper` (the paper's equations, X3 = ReLU(BN(W23 * Concat[X2, H])),
//     X4 = BN(W34 * X3 + b34)): a 1x1 conv reduces concat[I_t, H_t] 2N → N,
//     then its own BN and ReLU, before the block's unchanged second 3x3 conv:
//         F_t   = ReLU(BN_f(fuse(concat[I_t, H_t])))              1x1, 2N → N
//         out_t = ReLU(BN2(conv2(F_t)) + shortcut(X_t))
//     2N² + 2N parameters per block instead of 9N²: this is what reproduces
//     the paper's parameter budget (Table IV; the README has the arithmetic).
// (c) The cell's weights belong to the stage (`stages.k.regulator.*`) and are
//     shared by all its blocks: the cell is recurrent over the blocks.
// (d) H and C start at zero in the first regulated stage. Each following
//     regulated stage receives them through its own learned 1x1 conv (no
//     bias) + BN, like a projection shortcut: N/2 → N with stride 2 between
//     adjacent stages (`h_transition`, and `c_transition` for ConvLSTM). When
//     unregulated stages lie in between, the stride and channel ratio span
//     them (e.g. stride 4, N/4 → N), so H always comes from the most recent
//     regulated stage.
// (e) Bottleneck blocks: conv1 1x1 → width, conv2 3x3 (stride s) → width gives
//     I (after BN2 and ReLU); the cell runs on I; with `.conv3x3` the fusion is
//     the final 1x1 conv3 over concat[I, H] (2·width → 4·width), then BN3, the
//     add and ReLU; with `.paper` a 1x1 conv 2·width → width + BN + ReLU comes
//     first (the paper's W34) and conv3 stays width → 4·width (its W45). The
//     paper runs the cell on the first 1x1's output, which a strided 3x3 then
//     leaves at another resolution than the features it is fused with; the cell
//     runs on the 3x3's output here so that both agree.
// (f) SE-RegNet: a squeeze-and-excitation module (reduction 16, ReLU, at
//     least one squeeze channel) on the residual branch, after the last BN and
//     before the add.
// (g) The regulator runs on a chosen subset of stages (the paper's
//     RegNet(1)/(2)/(3) regulate one stage only); unregulated stages are plain
//     ResNet blocks, identical to a ResNet's.
//
// Shortcuts: when a block changes resolution or width, either a 1x1 conv +
// BN projection (`downsample.0/1`, the default: with it the unregulated
// CIFAR ResNet-20 has the paper's 0.273 M parameters) or CIFAR ResNet's
// option A (stride-2 subsampling and zero channels on both sides, no
// parameters: 0.270 M).
//
// Initialisation as torchvision's ResNet: convolutions Kaiming-normal in
// fan-out mode, BN (1, 0), the linear layer PyTorch's default; the regulator
// cell PyTorch's conv default (uniform in ±1/√fan_in, biases too).

import Clover
import CloverNN

// MARK: Configuration

/// How to build a self-regulated network.
public struct RegNetConfiguration: Equatable, Sendable {
    /// The residual block.
    public enum Block: Sendable { case basic, bottleneck }
    /// CIFAR stem (3x3 conv, stride 1) or ImageNet stem (7x7 conv stride 2, 3x3 max pool stride 2).
    public enum Stem: Sendable { case cifar, imagenet }
    /// How a block that changes shape maps its input for the residual add.
    public enum Shortcut: Sendable {
        /// 1x1 conv (stride s, no bias) + BN.
        case projection
        /// CIFAR ResNet's option A: subsample by s, pad channels with zeros on both sides.
        case zeroPadding
    }
    /// How a regulated block fuses the cell's hidden state H with its own
    /// features I (the first conv's activated output).
    public enum Fusion: Sendable {
        /// The block's second 3x3 conv reads concat[I, H], 2N → N (9N² more
        /// weights per block than ResNet's: RegNet-20 +0.15M).
        case conv3x3
        /// The paper's equations: a 1x1 conv reduces concat[I, H] 2N → N, then
        /// BN and ReLU, before the block's unchanged second conv (2N² + 2N more
        /// per block: RegNet-20 +0.04M, as the paper's Table IV).
        case paper
    }

    public var block: Block
    public var stem: Stem
    /// Output channels of the stem convolution.
    public var stemChannels: Int
    /// Per stage: the block's inner width N (a basic block outputs N, a bottleneck 4·N).
    public var widths: [Int]
    /// Per stage: the number of blocks.
    public var depths: [Int]
    /// The recurrent cell, or nil for a plain (SE-)ResNet.
    public var regulator: RegulatorKind?
    /// Which stages (0-based) the regulator runs on.
    public var regulatedStages: Set<Int>
    /// SE-RegNet: squeeze-and-excitation on every residual branch.
    public var squeezeExcitation: Bool
    public var shortcut: Shortcut
    /// How a regulated block takes H back into its residual branch.
    public var fusion: Fusion
    /// The input resolution the network is defined at (32 for CIFAR, 224 for ImageNet).
    public var resolution: Int

    public init(block: Block, stem: Stem, stemChannels: Int, widths: [Int], depths: [Int], regulator: RegulatorKind?,
                regulatedStages: Set<Int>? = nil, squeezeExcitation: Bool = false, shortcut: Shortcut = .projection,
                fusion: Fusion = .conv3x3, resolution: Int) {
        self.block = block
        self.stem = stem
        self.stemChannels = stemChannels
        self.widths = widths
        self.depths = depths
        self.regulator = regulator
        self.regulatedStages = regulatedStages ?? Set(widths.indices)
        self.squeezeExcitation = squeezeExcitation
        self.shortcut = shortcut
        self.fusion = fusion
        self.resolution = resolution
    }

    /// CIFAR RegNet-`depth` (depth = 6n + 2): three stages of n basic blocks,
    /// 16/32/64 channels, at 32x32.
    public static func cifar(depth: Int, regulator: RegulatorKind?, regulatedStages: Set<Int>? = nil,
                             squeezeExcitation: Bool = false, shortcut: Shortcut = .projection,
                             fusion: Fusion = .conv3x3) throws -> RegNetConfiguration {
        guard depth >= 8, (depth - 2) % 6 == 0 else {
            throw CloverError.invalidArgument(op: "RegNet", reason: "CIFAR depth \(depth) is not 6n + 2")
        }
        let n = (depth - 2) / 6
        return RegNetConfiguration(block: .basic, stem: .cifar, stemChannels: 16, widths: [16, 32, 64], depths: [n, n, n],
                                   regulator: regulator, regulatedStages: regulatedStages,
                                   squeezeExcitation: squeezeExcitation, shortcut: shortcut, fusion: fusion,
                                   resolution: 32)
    }

    /// ImageNet RegNet-50: ResNet-50's bottleneck layout (3, 4, 6, 3 blocks of
    /// width 64…512) at 224x224.
    public static func imagenet50(regulator: RegulatorKind?, regulatedStages: Set<Int>? = nil,
                                  squeezeExcitation: Bool = false, fusion: Fusion = .conv3x3) -> RegNetConfiguration {
        RegNetConfiguration(block: .bottleneck, stem: .imagenet, stemChannels: 64, widths: [64, 128, 256, 512],
                            depths: [3, 4, 6, 3], regulator: regulator, regulatedStages: regulatedStages,
                            squeezeExcitation: squeezeExcitation, fusion: fusion, resolution: 224)
    }

    /// Compound scaling by φ (see ``CompoundScaling``): every width (and the
    /// stem) ×β^φ rounded to a multiple of 8, every depth ⌈×α^φ⌉, the
    /// resolution ×γ^φ. With `regulator` nil this scales a plain ResNet.
    public func scaled(phi: Double, scaling: CompoundScaling = .efficientNet) -> RegNetConfiguration {
        var c = self
        c.stemChannels = scaling.scaledChannels(stemChannels, phi: phi)
        c.widths = widths.map { scaling.scaledChannels($0, phi: phi) }
        c.depths = depths.map { scaling.scaledDepth($0, phi: phi) }
        c.resolution = scaling.scaledResolution(resolution, phi: phi)
        return c
    }

    /// Channels a block of stage `k` outputs.
    func outChannels(_ k: Int) -> Int { block == .basic ? widths[k] : 4 * widths[k] }

    /// The first block of every stage but the first halves the resolution.
    func stride(_ k: Int) -> Int { k == 0 ? 1 : 2 }
}

// MARK: The regulator cell and its state

/// The recurrent state a regulated stage carries from block to block.
public struct RegulatorState {
    public var h: Tensor
    /// The ConvLSTM cell state; nil for ConvRNN and ConvGRU.
    public var c: Tensor?

    public init(h: Tensor, c: Tensor? = nil) {
        self.h = h
        self.c = c
    }
}

/// The weights of one stage's regulator cell as a module, named
/// `pointwise`, `pointwise_bias`, `depthwise`, `depthwise_bias` (and the
/// ConvGRU candidate's `candidate_*`); see ``RegulatorWeights`` for shapes.
public final class Regulator: Module {
    public let kind: RegulatorKind
    public let pointwise: Parameter
    public let pointwiseBias: Parameter
    public let depthwise: Parameter
    public let depthwiseBias: Parameter
    public let candidatePointwise: Parameter?
    public let candidatePointwiseBias: Parameter?
    public let candidateDepthwise: Parameter?
    public let candidateDepthwiseBias: Parameter?

    /// A cell over `channels` state channels with PyTorch's conv default
    /// initialisation (fan-in 2 for the paired 1x1 convs, 9 for the depthwise 3x3).
    public init(_ kind: RegulatorKind, channels: Int, initializer: Initializer) throws {
        self.kind = kind
        let shapes = RegulatorWeights.shapes(kind, channels: channels)
        let bounds: [Float] = [2, 2, 9, 9].map { 1 / Float($0).squareRoot() }
        let p = try shapes.enumerated().map { i, s in Parameter(try initializer.uniform(s, bound: bounds[i % 4])) }
        (pointwise, pointwiseBias, depthwise, depthwiseBias) = (p[0], p[1], p[2], p[3])
        let gru = kind == .convGRU
        candidatePointwise = gru ? p[4] : nil
        candidatePointwiseBias = gru ? p[5] : nil
        candidateDepthwise = gru ? p[6] : nil
        candidateDepthwiseBias = gru ? p[7] : nil
    }

    var weights: RegulatorWeights {
        RegulatorWeights(pointwise: pointwise.tensor, pointwiseBias: pointwiseBias.tensor,
                         depthwise: depthwise.tensor, depthwiseBias: depthwiseBias.tensor,
                         candidatePointwise: candidatePointwise?.tensor, candidatePointwiseBias: candidatePointwiseBias?.tensor,
                         candidateDepthwise: candidateDepthwise?.tensor, candidateDepthwiseBias: candidateDepthwiseBias?.tensor)
    }

    /// One time step: the new state from the block's `input` I and the
    /// previous state (zeros when there is none yet).
    public func callAsFunction(_ input: Tensor, state: RegulatorState?) throws -> RegulatorState {
        let zeros = { try Tensor.zeros(input.shape, on: input.device) }
        let h = try state?.h ?? zeros()
        var c: Tensor?
        if kind.hasCellState { c = try state?.c ?? zeros() }
        let next = try regulatorCell(kind, x: input, h: h, c: c, weights: weights)
        return RegulatorState(h: next.h, c: next.c)
    }
}

// MARK: Blocks

/// A residual block that may be regulated: with a regulator it reads and
/// returns the recurrent state, without one it is a plain ResNet block.
public protocol RegulatedBlock: Module {
    func callAsFunction(_ x: Tensor, regulator: Regulator?, state: RegulatorState?) throws -> (Tensor, RegulatorState?)
}

/// The shortcut of a block: identity, a 1x1 projection, or option A.
private func shortcut(_ x: Tensor, downsample: Sequential?, zeroPadTo channels: Int, stride: Int) throws -> Tensor {
    if let downsample { return try downsample(x) }
    guard stride != 1 || x.shape[1] != channels else { return x }
    // Option A: every stride-th pixel, then zero channels split evenly on both sides.
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (oh, ow) = ((h - 1) / stride + 1, (w - 1) / stride + 1)
    let sub = try stridedCopy(x, shape: [n, c, oh, ow], strides: [c * h * w, h * w, stride * w, stride])
    let pad = (channels - c) / 2
    guard pad > 0 else { return sub }
    let zeros = try Tensor.zeros([n, pad, oh, ow], on: x.device)
    let rest = channels - c - pad
    return try concat(rest == pad ? [zeros, sub, zeros] : [zeros, sub, Tensor.zeros([n, rest, oh, ow], on: x.device)])
}

/// 1x1 conv (stride s, no bias) + BN: the projection shortcut, also used to
/// carry H and C into the next regulated stage.
private func projection(_ inChannels: Int, _ outChannels: Int, stride: Int, initializer: Initializer) throws -> Sequential {
    Sequential([try Conv2d(inChannels, outChannels, kernelSize: 1, stride: stride, bias: false, initializer: initializer),
                try BatchNorm2d(outChannels, initializer: initializer)])
}

/// Whether a block needs a shortcut other than the identity.
private func needsShortcut(_ inChannels: Int, _ outChannels: Int, stride: Int) -> Bool {
    stride != 1 || inChannels != outChannels
}

/// Two 3x3 convs; when regulated, H is fused either by the second conv over
/// concat[I, H] (2N → N, `.conv3x3`) or by a 1x1 conv + BN + ReLU over
/// concat[I, H] (2N → N, `.paper`) in front of it.
public final class RegBasicBlock: Module, RegulatedBlock {
    public let conv1: Conv2d
    public let bn1: BatchNorm2d
    /// The paper fusion's 1x1 conv over concat[I, H], 2N → N (nil otherwise).
    public let convFuse: Conv2d?
    /// The BN after ``convFuse``.
    public let bnFuse: BatchNorm2d?
    public let conv2: Conv2d
    public let bn2: BatchNorm2d
    public let se: SqueezeExcitation?
    public let downsample: Sequential?
    let stride: Int

    public init(_ inChannels: Int, _ channels: Int, stride: Int, regulated: Bool, fusion: RegNetConfiguration.Fusion = .conv3x3,
                squeezeExcitation: Bool, shortcut: RegNetConfiguration.Shortcut, initializer: Initializer) throws {
        conv1 = try Conv2d(inChannels, channels, kernelSize: 3, stride: stride, padding: 1, bias: false, initializer: initializer)
        bn1 = try BatchNorm2d(channels, initializer: initializer)
        let pointwise = regulated && fusion == .paper
        convFuse = pointwise ? try Conv2d(2 * channels, channels, kernelSize: 1, bias: false, initializer: initializer) : nil
        bnFuse = pointwise ? try BatchNorm2d(channels, initializer: initializer) : nil
        conv2 = try Conv2d(regulated && !pointwise ? 2 * channels : channels, channels, kernelSize: 3, padding: 1, bias: false,
                           initializer: initializer)
        bn2 = try BatchNorm2d(channels, initializer: initializer)
        se = squeezeExcitation ? try SqueezeExcitation(channels, squeezeChannels: max(1, channels / 16), activation: .relu,
                                                       initializer: initializer) : nil
        downsample = shortcut == .projection && needsShortcut(inChannels, channels, stride: stride)
            ? try projection(inChannels, channels, stride: stride, initializer: initializer) : nil
        self.stride = stride
    }

    public func callAsFunction(_ x: Tensor, regulator: Regulator?, state: RegulatorState?) throws -> (Tensor, RegulatorState?) {
        let i = try relu(conv1(x, normalizedBy: bn1))
        var fused = i
        var next: RegulatorState?
        if let regulator {
            next = try regulator(i, state: state)
            fused = try concat([i, next!.h])
            if let convFuse, let bnFuse { fused = try relu(convFuse(fused, normalizedBy: bnFuse)) }
        }
        var branch = try conv2(fused, normalizedBy: bn2)
        if let se { branch = try se(branch) }
        let identity = try shortcut(x, downsample: downsample, zeroPadTo: conv2.outChannels, stride: stride)
        return (try relu(add(branch, identity)), next)
    }
}

/// 1x1 → 3x3 → 1x1 (×4); when regulated, H is fused either by the last 1x1
/// over concat[I, H] (2·width → 4·width, `.conv3x3`) or by a 1x1 conv + BN +
/// ReLU over concat[I, H] (2·width → width, `.paper`) in front of it, I being
/// the 3x3 conv's activated output.
public final class RegBottleneck: Module, RegulatedBlock {
    public let conv1: Conv2d
    public let bn1: BatchNorm2d
    public let conv2: Conv2d
    public let bn2: BatchNorm2d
    /// The paper fusion's 1x1 conv over concat[I, H], 2·width → width (nil otherwise).
    public let convFuse: Conv2d?
    /// The BN after ``convFuse``.
    public let bnFuse: BatchNorm2d?
    public let conv3: Conv2d
    public let bn3: BatchNorm2d
    public let se: SqueezeExcitation?
    public let downsample: Sequential?
    let stride: Int

    public init(_ inChannels: Int, width: Int, stride: Int, regulated: Bool, fusion: RegNetConfiguration.Fusion = .conv3x3,
                squeezeExcitation: Bool, shortcut: RegNetConfiguration.Shortcut, initializer: Initializer) throws {
        let out = 4 * width
        conv1 = try Conv2d(inChannels, width, kernelSize: 1, bias: false, initializer: initializer)
        bn1 = try BatchNorm2d(width, initializer: initializer)
        conv2 = try Conv2d(width, width, kernelSize: 3, stride: stride, padding: 1, bias: false, initializer: initializer)
        bn2 = try BatchNorm2d(width, initializer: initializer)
        let pointwise = regulated && fusion == .paper
        convFuse = pointwise ? try Conv2d(2 * width, width, kernelSize: 1, bias: false, initializer: initializer) : nil
        bnFuse = pointwise ? try BatchNorm2d(width, initializer: initializer) : nil
        conv3 = try Conv2d(regulated && !pointwise ? 2 * width : width, out, kernelSize: 1, bias: false,
                           initializer: initializer)
        bn3 = try BatchNorm2d(out, initializer: initializer)
        se = squeezeExcitation ? try SqueezeExcitation(out, squeezeChannels: max(1, out / 16), activation: .relu,
                                                       initializer: initializer) : nil
        downsample = shortcut == .projection && needsShortcut(inChannels, out, stride: stride)
            ? try projection(inChannels, out, stride: stride, initializer: initializer) : nil
        self.stride = stride
    }

    public func callAsFunction(_ x: Tensor, regulator: Regulator?, state: RegulatorState?) throws -> (Tensor, RegulatorState?) {
        let o = try relu(conv1(x, normalizedBy: bn1))
        let i = try relu(conv2(o, normalizedBy: bn2))
        var fused = i
        var next: RegulatorState?
        if let regulator {
            next = try regulator(i, state: state)
            fused = try concat([i, next!.h])
            if let convFuse, let bnFuse { fused = try relu(convFuse(fused, normalizedBy: bnFuse)) }
        }
        var branch = try conv3(fused, normalizedBy: bn3)
        if let se { branch = try se(branch) }
        let identity = try shortcut(x, downsample: downsample, zeroPadTo: conv3.outChannels, stride: stride)
        return (try relu(add(branch, identity)), next)
    }
}

// MARK: Stages and the network

/// One stage: its blocks, and when regulated the shared cell and the
/// transitions that bring H (and C) in from the previous regulated stage.
public final class RegNetStage: Module {
    public let blocks: [RegulatedBlock]
    public let regulator: Regulator?
    public let hTransition: Sequential?
    public let cTransition: Sequential?

    /// Blocks of stage `k` of `configuration`; `incoming` is the state width
    /// and the resolution ratio from the previous regulated stage, if any.
    init(_ configuration: RegNetConfiguration, stage k: Int, inChannels: Int, incoming: (channels: Int, stride: Int)?,
         initializer: Initializer) throws {
        let c = configuration
        let regulated = c.regulator != nil && c.regulatedStages.contains(k)
        let width = c.widths[k]
        var blocks: [RegulatedBlock] = []
        for b in 0..<c.depths[k] {
            let input = b == 0 ? inChannels : c.outChannels(k)
            let stride = b == 0 ? c.stride(k) : 1
            switch c.block {
            case .basic:
                blocks.append(try RegBasicBlock(input, width, stride: stride, regulated: regulated, fusion: c.fusion,
                                                squeezeExcitation: c.squeezeExcitation, shortcut: c.shortcut,
                                                initializer: initializer))
            case .bottleneck:
                blocks.append(try RegBottleneck(input, width: width, stride: stride, regulated: regulated, fusion: c.fusion,
                                                squeezeExcitation: c.squeezeExcitation, shortcut: c.shortcut,
                                                initializer: initializer))
            }
        }
        self.blocks = blocks
        if regulated, let kind = c.regulator {
            regulator = try Regulator(kind, channels: width, initializer: initializer)
            if let incoming {
                hTransition = try projection(incoming.channels, width, stride: incoming.stride, initializer: initializer)
                cTransition = kind.hasCellState
                    ? try projection(incoming.channels, width, stride: incoming.stride, initializer: initializer) : nil
            } else {
                (hTransition, cTransition) = (nil, nil)
            }
        } else {
            (regulator, hTransition, cTransition) = (nil, nil, nil)
        }
    }

    /// Runs the blocks as time steps of the regulator. An unregulated stage
    /// passes the incoming state through untouched for a later regulated one.
    public func callAsFunction(_ x: Tensor, carrying incoming: RegulatorState?) throws -> (Tensor, RegulatorState?) {
        guard let regulator else {
            return (try blocks.reduce(x) { try $1($0, regulator: nil, state: nil).0 }, incoming)
        }
        var state: RegulatorState?
        if let incoming, let hTransition {
            let c = try cTransition.flatMap { t in try incoming.c.map { try t($0) } }
            state = RegulatorState(h: try hTransition(incoming.h), c: c)
        }
        var y = x
        for block in blocks {
            (y, state) = try block(y, regulator: regulator, state: state)
        }
        return (y, state)
    }
}

/// The self-regulated network; see the file header for the exact design.
public final class RegNet: Module, Layer {
    public let conv1: Conv2d
    public let bn1: BatchNorm2d
    public let maxpool: MaxPool2d?
    public let stages: [RegNetStage]
    public let fc: Linear
    public let configuration: RegNetConfiguration

    public init(_ configuration: RegNetConfiguration, classes: Int, channels: Int = 3, initializer: Initializer) throws {
        let c = configuration
        guard c.widths.count == c.depths.count, !c.widths.isEmpty, c.depths.allSatisfy({ $0 > 0 }) else {
            throw CloverError.invalidArgument(op: "RegNet", reason: "need one positive depth per stage width")
        }
        self.configuration = c
        switch c.stem {
        case .cifar:
            conv1 = try Conv2d(channels, c.stemChannels, kernelSize: 3, padding: 1, bias: false, initializer: initializer)
            maxpool = nil
        case .imagenet:
            conv1 = try Conv2d(channels, c.stemChannels, kernelSize: 7, stride: 2, padding: 3, bias: false,
                               initializer: initializer)
            maxpool = MaxPool2d(kernel: 3, stride: 2, padding: 1)
        }
        bn1 = try BatchNorm2d(c.stemChannels, initializer: initializer)
        var stages: [RegNetStage] = []
        var inChannels = c.stemChannels
        // The width and accumulated stride since the last regulated stage, for H's transition.
        var carried: (channels: Int, stride: Int)?
        for k in c.widths.indices {
            carried = carried.map { ($0.channels, $0.stride * c.stride(k)) }
            stages.append(try RegNetStage(c, stage: k, inChannels: inChannels, incoming: carried, initializer: initializer))
            if stages[k].regulator != nil { carried = (c.widths[k], 1) }
            inChannels = c.outChannels(k)
        }
        self.stages = stages
        fc = try Linear(inChannels, classes, initializer: initializer)
        super.init()
        // The regulator holds bare parameters, not Conv2d modules, and keeps its own initialisation.
        try kaimingNormalFanOut(self, initializer: initializer)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var y = try relu(conv1(x, normalizedBy: bn1))
        if let maxpool { y = try maxpool(y) }
        var state: RegulatorState?
        for stage in stages {
            (y, state) = try stage(y, carrying: state)
        }
        let pooled = try globalAvgPool2d(y)
        return try fc(pooled.reshaped([pooled.shape[0], pooled.shape[1]]))
    }

    /// CIFAR RegNet-20/32/56 and SE-RegNet with each regulator and both
    /// fusions (`regnet20-gru` fuses by the 3x3 conv, `regnet20-gru-paper` by
    /// the paper's 1x1), the paper's single-stage RegNet(i) placements with the
    /// paper fusion (`regnet20-gru-stage1`…`stage3`, Table V), the unregulated
    /// baselines of the same family (`regnet20-plain`, `se-regnet20-plain`:
    /// ResNet-20 and SE-ResNet-20 with projection shortcuts, the paper's
    /// 0.273M), and the bottleneck ImageNet RegNet-50 with ConvGRU and ConvLSTM.
    public static var zoo: [ModelSpec] {
        var specs: [ModelSpec] = []
        func cifar(_ name: String, depth: Int, _ kind: RegulatorKind?, stages: Set<Int>? = nil, se: Bool = false,
                   fusion: RegNetConfiguration.Fusion = .conv3x3) {
            specs.append(ModelSpec(name: name, inputShape: [3, 32, 32], classes: 10) { classes, channels, initializer in
                try RegNet(.cifar(depth: depth, regulator: kind, regulatedStages: stages, squeezeExcitation: se,
                                  fusion: fusion),
                           classes: classes, channels: channels, initializer: initializer)
            })
        }
        for se in [false, true] {
            for depth in [20, 32, 56] {
                for kind in RegulatorKind.allCases {
                    cifar("\(se ? "se-" : "")regnet\(depth)-\(kind.rawValue)", depth: depth, kind, se: se)
                }
            }
        }
        for se in [false, true] {
            for depth in [20, 32, 56] {
                for kind in RegulatorKind.allCases {
                    cifar("\(se ? "se-" : "")regnet\(depth)-\(kind.rawValue)-paper", depth: depth, kind, se: se, fusion: .paper)
                }
            }
        }
        for kind in [RegulatorKind.convGRU, .convLSTM] {
            for stage in 1...3 {
                cifar("regnet20-\(kind.rawValue)-stage\(stage)", depth: 20, kind, stages: [stage - 1], fusion: .paper)
            }
        }
        for se in [false, true] {
            cifar("\(se ? "se-" : "")regnet20-plain", depth: 20, nil, se: se)
        }
        for kind in [RegulatorKind.convGRU, .convLSTM] {
            specs.append(ModelSpec(name: "regnet50-\(kind.rawValue)", inputShape: [3, 224, 224], classes: 1000) { classes, channels, initializer in
                try RegNet(.imagenet50(regulator: kind), classes: classes, channels: channels, initializer: initializer)
            })
        }
        return specs
    }
}
