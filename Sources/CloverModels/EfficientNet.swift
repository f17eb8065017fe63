// EfficientNet-B0…B7 (Tan & Le, "EfficientNet: Rethinking Model Scaling for
// Convolutional Neural Networks", 2019), built exactly as torchvision's
// `efficientnet_b0`…`efficientnet_b7` so that parameter counts and
// `state_dict` keys match:
//
//   features.0      stem: 3x3 conv stride 2 (no bias) + BN + SiLU, 32·w channels
//   features.1…7    seven stages of MBConv blocks (the table in
//                   ``EfficientNet/baselineStages``), widths and depths scaled
//   features.8      head: 1x1 conv to 4·(320·w) channels + BN + SiLU
//   avgpool         global average pooling
//   classifier      0: dropout, 1: linear
//
// MBConv (`features.s.b.block.k`): 1x1 expand conv + BN + SiLU (left out when
// the expand ratio is 1), depthwise k×k conv + BN + SiLU, squeeze-and-
// excitation, 1x1 project conv + BN; stochastic depth and the residual add
// when the stride is 1 and the input and output widths agree.
//
// Batch normalisation: torchvision uses PyTorch's defaults (eps 1e-5,
// momentum 0.1) for B0–B4 and eps 1e-3, momentum 0.01 for B5–B7 (whose
// weights were ported from TensorFlow); we follow it per variant. Neither
// changes a parameter count.
//
// Compound scaling (``CompoundScaling``): depth ×α^φ, width ×β^φ, resolution
// ×γ^φ with α = 1.2, β = 1.1, γ = 1.15; the published B1–B7 coefficients are
// rounded by hand from these and are kept here as a table, as torchvision
// does, while ``CompoundScaling`` scales this or any other family by φ.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Clover
import CloverNN

// MARK: Compound scaling

/// torchvision's `_make_divisible`: `value` rounded to the nearest multiple
/// of `divisor` (at least `divisor`), bumped up one multiple when rounding
/// down lost more than 10 %.
public func makeDivisible(_ value: Double, by divisor: Int = 8) -> Int {
    let rounded = max(divisor, Int(value + Double(divisor) / 2) / divisor * divisor)
    return Double(rounded) < 0.9 * value ? rounded + divisor : rounded
}

/// EfficientNet's compound scaling: one coefficient φ scales depth by α^φ,
/// width by β^φ and resolution by γ^φ, with α·β²·γ² ≈ 2 so that each step of
/// φ roughly doubles the multiply-adds.
///
/// Any family can consume it: ``scaledChannels(_:phi:)`` rounds widths to
/// multiples of 8 as torchvision does, ``scaledDepth(_:phi:)`` rounds block
/// counts up, ``scaledResolution(_:phi:)`` rounds to the nearest pixel.
/// ``EfficientNetConfiguration/scaled(phi:)`` and
/// ``RegNetConfiguration/scaled(phi:scaling:)`` use it.
public struct CompoundScaling: Equatable, Sendable {
    /// Depth base (α), width base (β) and resolution base (γ).
    public var alpha: Double, beta: Double, gamma: Double

    /// The grid-searched constants of the paper: α = 1.2, β = 1.1, γ = 1.15.
    public static let efficientNet = CompoundScaling(alpha: 1.2, beta: 1.1, gamma: 1.15)

    public init(alpha: Double, beta: Double, gamma: Double) {
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma
    }

    /// The depth, width and resolution multipliers α^φ, β^φ, γ^φ.
    public func multipliers(phi: Double) -> (depth: Double, width: Double, resolution: Double) {
        (pow(alpha, phi), pow(beta, phi), pow(gamma, phi))
    }

    /// `channels`·β^φ rounded by ``makeDivisible(_:by:)`` to a multiple of 8.
    public func scaledChannels(_ channels: Int, phi: Double) -> Int {
        phi == 0 ? channels : makeDivisible(Double(channels) * multipliers(phi: phi).width)
    }

    /// ⌈`blocks`·α^φ⌉.
    public func scaledDepth(_ blocks: Int, phi: Double) -> Int {
        Int((Double(blocks) * multipliers(phi: phi).depth).rounded(.up))
    }

    /// `pixels`·γ^φ rounded to the nearest pixel.
    public func scaledResolution(_ pixels: Int, phi: Double) -> Int {
        Int((Double(pixels) * multipliers(phi: phi).resolution).rounded())
    }
}

// MARK: Configuration tables

/// The official EfficientNet variants and their coefficients.
public enum EfficientNetVariant: String, CaseIterable, Sendable {
    case b0, b1, b2, b3, b4, b5, b6, b7

    /// (width multiplier, depth multiplier, input resolution, classifier dropout).
    public var coefficients: (width: Double, depth: Double, resolution: Int, dropout: Float) {
        switch self {
        case .b0: return (1.0, 1.0, 224, 0.2)
        case .b1: return (1.0, 1.1, 240, 0.2)
        case .b2: return (1.1, 1.2, 260, 0.3)
        case .b3: return (1.2, 1.4, 300, 0.3)
        case .b4: return (1.4, 1.8, 380, 0.4)
        case .b5: return (1.6, 2.2, 456, 0.4)
        case .b6: return (1.8, 2.6, 528, 0.5)
        case .b7: return (2.0, 3.1, 600, 0.5)
        }
    }

    /// The variant's configuration, with torchvision's batch-norm settings.
    public var configuration: EfficientNetConfiguration {
        let c = coefficients
        let ported = self == .b5 || self == .b6 || self == .b7
        return EfficientNetConfiguration(width: c.width, depth: c.depth, resolution: c.resolution, dropout: c.dropout,
                                         batchNormEpsilon: ported ? 1e-3 : 1e-5, batchNormMomentum: ported ? 0.01 : 0.1)
    }
}

/// One row of the MBConv table: `layers` blocks turning `inChannels` into
/// `outChannels`, the first with `stride`.
public struct MBConvStage: Equatable, Sendable {
    public var expandRatio: Int
    public var kernel: Int
    public var stride: Int
    public var inChannels: Int
    public var outChannels: Int
    public var layers: Int

    public init(expandRatio: Int, kernel: Int, stride: Int, inChannels: Int, outChannels: Int, layers: Int) {
        self.expandRatio = expandRatio
        self.kernel = kernel
        self.stride = stride
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.layers = layers
    }
}

/// How to build one EfficientNet: multipliers over the B0 baseline, input
/// size and regularisation.
public struct EfficientNetConfiguration: Equatable, Sendable {
    public var width: Double
    public var depth: Double
    public var resolution: Int
    public var dropout: Float
    /// Stochastic-depth probability reached (exclusively) by the last block;
    /// block `i` of `n` drops its branch with probability `p·i/n`, as torchvision.
    public var stochasticDepth: Float
    public var batchNormEpsilon: Float
    public var batchNormMomentum: Float

    public init(width: Double, depth: Double, resolution: Int, dropout: Float, stochasticDepth: Float = 0.2,
                batchNormEpsilon: Float = 1e-5, batchNormMomentum: Float = 0.1) {
        self.width = width
        self.depth = depth
        self.resolution = resolution
        self.dropout = dropout
        self.stochasticDepth = stochasticDepth
        self.batchNormEpsilon = batchNormEpsilon
        self.batchNormMomentum = batchNormMomentum
    }

    /// B0 scaled by the compound coefficient φ (α = 1.2, β = 1.1, γ = 1.15
    /// unless `scaling` says otherwise); φ = 0 is B0 itself.
    public static func scaled(phi: Double, scaling: CompoundScaling = .efficientNet) -> EfficientNetConfiguration {
        let m = scaling.multipliers(phi: phi)
        return EfficientNetConfiguration(width: m.width, depth: m.depth,
                                         resolution: scaling.scaledResolution(224, phi: phi), dropout: 0.2)
    }

    /// The stage table after width and depth scaling (torchvision's
    /// `MBConvConfig.adjust_channels` and `adjust_depth`).
    public var stages: [MBConvStage] {
        EfficientNet.baselineStages.map { s in
            MBConvStage(expandRatio: s.expandRatio, kernel: s.kernel, stride: s.stride,
                        inChannels: channels(s.inChannels), outChannels: channels(s.outChannels),
                        layers: Int((Double(s.layers) * depth).rounded(.up)))
        }
    }

    /// `c`·width rounded to a multiple of 8.
    public func channels(_ c: Int) -> Int { makeDivisible(Double(c) * width) }
}

// MARK: Building blocks

/// Squeeze-and-excitation (torchvision's `SqueezeExcitation`): global
/// average pool → 1x1 conv reduce → activation → 1x1 conv expand → sigmoid,
/// then every channel of the input scaled by its gate.
public final class SqueezeExcitation: Module, Layer {
    public let fc1: Conv2d
    public let fc2: Conv2d
    public let activation: ActivationLayer

    /// `channels` gated through a bottleneck of `squeezeChannels`.
    public init(_ channels: Int, squeezeChannels: Int, activation: ActivationLayer.Kind,
                initializer: Initializer) throws {
        fc1 = try Conv2d(channels, squeezeChannels, kernelSize: 1, initializer: initializer)
        fc2 = try Conv2d(squeezeChannels, channels, kernelSize: 1, initializer: initializer)
        self.activation = ActivationLayer(activation)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let squeezed = try globalAvgPool2d(x)
        let gates = try sigmoid(fc2(activation(fc1(squeezed))))
        return try channelScale(x, by: gates)
    }
}

/// torchvision's `Conv2dNormActivation`: conv (no bias, "same" padding) → BN
/// → optional activation, as a `Sequential` named `0`, `1`, `2`.
func convNormActivation(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, groups: Int = 1,
                        activation: ActivationLayer.Kind?, epsilon: Float, momentum: Float,
                        initializer: Initializer) throws -> Sequential {
    let conv = try Conv2d(inChannels, outChannels, kernelSize: kernel, stride: stride, padding: (kernel - 1) / 2,
                          groups: groups, bias: false, initializer: initializer)
    var layers: [Layer] = [conv, try BatchNorm2d(outChannels, epsilon: epsilon, momentum: momentum, initializer: initializer)]
    if let activation { layers.append(ActivationLayer(activation)) }
    return Sequential(layers)
}

/// The mobile inverted bottleneck block with squeeze-and-excitation.
public final class MBConv: Module, Layer {
    /// expand (when the ratio exceeds 1), depthwise, SE, project: torchvision's `block.0`….
    public let block: Sequential
    public let stochasticDepth: StochasticDepth
    /// Stride 1 and equal widths: the block is a residual one.
    public let isResidual: Bool

    public init(_ inChannels: Int, _ outChannels: Int, expandRatio: Int, kernel: Int, stride: Int,
                stochasticDepth: Float, epsilon: Float, momentum: Float, initializer: Initializer) throws {
        let expanded = makeDivisible(Double(inChannels * expandRatio))
        var layers: [Layer] = []
        if expanded != inChannels {
            layers.append(try convNormActivation(inChannels, expanded, kernel: 1, activation: .silu,
                                                 epsilon: epsilon, momentum: momentum, initializer: initializer))
        }
        layers.append(try convNormActivation(expanded, expanded, kernel: kernel, stride: stride, groups: expanded,
                                             activation: .silu, epsilon: epsilon, momentum: momentum, initializer: initializer))
        // torchvision squeezes to a quarter of the block's *input* width, not the expanded one.
        layers.append(try SqueezeExcitation(expanded, squeezeChannels: max(1, inChannels / 4), activation: .silu,
                                            initializer: initializer))
        layers.append(try convNormActivation(expanded, outChannels, kernel: 1, activation: nil,
                                             epsilon: epsilon, momentum: momentum, initializer: initializer))
        block = Sequential(layers)
        self.stochasticDepth = StochasticDepth(probability: stochasticDepth, initializer: initializer)
        isResidual = stride == 1 && inChannels == outChannels
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let branch = try block(x)
        guard isResidual else { return branch }
        return try add(stochasticDepth(branch), x)
    }
}

// MARK: The network

/// EfficientNet as torchvision builds it; see the file header for the layout.
public final class EfficientNet: Module, Layer {
    /// Stem, seven MBConv stages, head: torchvision's `features.0`…`features.8`.
    public let features: Sequential
    public let avgpool: GlobalAvgPool2d
    /// Dropout then the linear layer (`classifier.1`).
    public let classifier: Sequential

    /// The B0 table: expand ratio, kernel, stride, in, out, layers.
    public static let baselineStages: [MBConvStage] = [
        MBConvStage(expandRatio: 1, kernel: 3, stride: 1, inChannels: 32, outChannels: 16, layers: 1),
        MBConvStage(expandRatio: 6, kernel: 3, stride: 2, inChannels: 16, outChannels: 24, layers: 2),
        MBConvStage(expandRatio: 6, kernel: 5, stride: 2, inChannels: 24, outChannels: 40, layers: 2),
        MBConvStage(expandRatio: 6, kernel: 3, stride: 2, inChannels: 40, outChannels: 80, layers: 3),
        MBConvStage(expandRatio: 6, kernel: 5, stride: 1, inChannels: 80, outChannels: 112, layers: 3),
        MBConvStage(expandRatio: 6, kernel: 5, stride: 2, inChannels: 112, outChannels: 192, layers: 4),
        MBConvStage(expandRatio: 6, kernel: 3, stride: 1, inChannels: 192, outChannels: 320, layers: 1),
    ]

    public convenience init(_ variant: EfficientNetVariant, classes: Int = 1000, channels: Int = 3,
                            initializer: Initializer) throws {
        try self.init(variant.configuration, classes: classes, channels: channels, initializer: initializer)
    }

    public init(_ configuration: EfficientNetConfiguration, classes: Int = 1000, channels: Int = 3,
                initializer: Initializer) throws {
        let c = configuration
        let stages = c.stages
        func cna(_ i: Int, _ o: Int, kernel: Int, stride: Int = 1) throws -> Sequential {
            try convNormActivation(i, o, kernel: kernel, stride: stride, activation: .silu, epsilon: c.batchNormEpsilon,
                                   momentum: c.batchNormMomentum, initializer: initializer)
        }
        var features: [Layer] = [try cna(channels, stages[0].inChannels, kernel: 3, stride: 2)]
        let totalBlocks = stages.reduce(0) { $0 + $1.layers }
        var blockIndex = 0
        for s in stages {
            var blocks: [Layer] = []
            for b in 0..<s.layers {
                blocks.append(try MBConv(b == 0 ? s.inChannels : s.outChannels, s.outChannels, expandRatio: s.expandRatio,
                                         kernel: s.kernel, stride: b == 0 ? s.stride : 1,
                                         stochasticDepth: c.stochasticDepth * Float(blockIndex) / Float(totalBlocks),
                                         epsilon: c.batchNormEpsilon, momentum: c.batchNormMomentum, initializer: initializer))
                blockIndex += 1
            }
            features.append(Sequential(blocks))
        }
        let headChannels = 4 * stages[stages.count - 1].outChannels
        features.append(try cna(stages[stages.count - 1].outChannels, headChannels, kernel: 1))
        self.features = Sequential(features)
        avgpool = GlobalAvgPool2d()
        let linear = try Linear(headChannels, classes, initializer: initializer)
        classifier = Sequential([Dropout(probability: c.dropout, initializer: initializer), linear])
        super.init()
        try kaimingNormalFanOut(self, initializer: initializer)
        // torchvision: linear weights uniform in ±1/√out_features, zero bias.
        let bound = 1 / Float(classes).squareRoot()
        linear.weight.rebind(try initializer.uniform(linear.weight.shape, bound: bound))
        if let bias = linear.bias { bias.rebind(try initializer.constant(bias.shape, 0)) }
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let pooled = try avgpool(features(x))
        return try classifier(pooled.reshaped([pooled.shape[0], pooled.shape[1]]))
    }

    /// `efficientnet-b0` … `efficientnet-b7` at their native resolutions.
    public static var zoo: [ModelSpec] {
        EfficientNetVariant.allCases.map { v in
            let r = v.coefficients.resolution
            return ModelSpec(name: "efficientnet-\(v.rawValue)", inputShape: [3, r, r], classes: 1000) { classes, channels, initializer in
                try EfficientNet(v, classes: classes, channels: channels, initializer: initializer)
            }
        }
    }
}
