import Clover

/// Where new parameters go and how they are drawn: the device and a seeded
/// generator, so a model built twice with one seed is identical.
public final class Initializer {
    public let device: Device
    public var rng: SplitMix64

    public init(device: Device, seed: UInt64 = 0) {
        self.device = device
        rng = SplitMix64(seed: seed)
    }

    /// Uniform in `[-bound, bound)`.
    public func uniform(_ shape: [Int], bound: Float) throws -> Tensor {
        // Shape-only and planning devices hold no values: skip drawing them.
        if device.isMeta || device.isPlanning { return try Tensor.zeros(shape, on: device) }
        return try Tensor(shape: shape, values: rng.uniformArray(count: shape.reduce(1, *), bound: bound), on: device)
    }

    /// Normal with standard deviation `std`.
    public func normal(_ shape: [Int], std: Float) throws -> Tensor {
        // Shape-only and planning devices hold no values: skip drawing them.
        if device.isMeta || device.isPlanning { return try Tensor.zeros(shape, on: device) }
        return try Tensor(shape: shape, values: rng.normalArray(count: shape.reduce(1, *), std: std), on: device)
    }

    public func constant(_ shape: [Int], _ value: Float) throws -> Tensor {
        try Tensor.full(shape, value: value, on: device)
    }

    /// A fresh seed for a stochastic layer (dropout).
    public func nextSeed() -> UInt64 { rng.next() }
}

/// 2-D convolution (`nn.Conv2d`): dense, grouped, depthwise and 1x1 alike —
/// the op (`Convolution2D`) chooses each pass's algorithm per geometry,
/// measured or by heuristic. PyTorch's default initialisation:
/// weight and bias uniform in ±1/√fan_in.
public final class Conv2d: Module, Layer {
    public let weight: Parameter
    public let bias: Parameter?
    public let parameters: Convolution2DParameters

    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                dilation: Int = 1, groups: Int = 1, bias: Bool = true, initializer: Initializer) throws {
        guard inChannels % groups == 0, outChannels % groups == 0 else {
            throw CloverError.invalidArgument(op: "Conv2d", reason: "channels \(inChannels)→\(outChannels) not divisible by groups \(groups)")
        }
        let fanIn = inChannels / groups * kernelSize * kernelSize
        let bound = 1 / Float(fanIn).squareRoot()
        weight = Parameter(try initializer.uniform([outChannels, inChannels / groups, kernelSize, kernelSize], bound: bound))
        self.bias = bias ? Parameter(try initializer.uniform([outChannels], bound: bound)) : nil
        parameters = Convolution2DParameters(stride: stride, padding: padding, dilation: dilation, groups: groups)
    }

    public var outChannels: Int { weight.shape[0] }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try conv2d(x, weight.tensor, bias: bias?.tensor, parameters: parameters)
    }

    /// The convolution with `activation` applied in the same pass.
    public func callAsFunction(_ x: Tensor, activation: ConvActivation) throws -> Tensor {
        try conv2d(x, weight.tensor, bias: bias?.tensor, parameters: parameters, activation: activation)
    }

    /// `norm(self(x), activation:)`, declared as one conv → batch-norm
    /// fusion (``ChannelStatisticsLink``): in training, the convolution's
    /// kernels write the batch norm's statistics as they store the output
    /// (where they can), so the batch norm does not read it once more for them.
    public func callAsFunction(_ x: Tensor, normalizedBy norm: BatchNorm2d,
                               activation: BatchNormActivation = .none) throws -> Tensor {
        guard norm.isTraining else { return try norm(self(x), activation: activation) }
        let link = ChannelStatisticsLink()
        let y = try conv2d(x, weight.tensor, bias: bias?.tensor, parameters: parameters, statisticsLink: link)
        return try norm(y, activation: activation, statisticsLink: link)
    }
}

/// Batch normalisation over N·H·W per channel (`nn.BatchNorm2d`): batch
/// statistics and a running-average update in training, running statistics
/// in evaluation. State names match PyTorch (`running_mean`, `running_var`,
/// `num_batches_tracked`).
public final class BatchNorm2d: Module, Layer {
    public let weight: Parameter
    public let bias: Parameter
    public let runningMean: StateTensor
    public let runningVar: StateTensor
    public let numBatchesTracked: StateTensor
    public let epsilon: Float
    public let momentum: Float

    public init(_ channels: Int, epsilon: Float = 1e-5, momentum: Float = 0.1, initializer: Initializer) throws {
        weight = Parameter(try initializer.constant([channels], 1))
        bias = Parameter(try initializer.constant([channels], 0))
        runningMean = StateTensor(try initializer.constant([channels], 0))
        runningVar = StateTensor(try initializer.constant([channels], 1))
        numBatchesTracked = StateTensor(try initializer.constant([], 0))
        self.epsilon = epsilon
        self.momentum = momentum
    }

    /// Training steps taken, counted on the host; written into
    /// `num_batches_tracked` when the state is saved.
    public internal(set) var batchesTracked = 0

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try callAsFunction(x, activation: .none)
    }

    /// Batch norm followed by `activation` (`relu(bn(x))`, `silu(bn(x))`),
    /// fused into batch norm's own kernels when training: one pass over the
    /// activations forwards and one backwards instead of two each.
    public func callAsFunction(_ x: Tensor, activation: BatchNormActivation) throws -> Tensor {
        try callAsFunction(x, activation: activation, statisticsLink: nil)
    }

    /// Batch norm taking part in a declared conv → batch-norm fusion
    /// (`Conv2d`'s `callAsFunction(_:normalizedBy:activation:)`).
    func callAsFunction(_ x: Tensor, activation: BatchNormActivation,
                        statisticsLink: ChannelStatisticsLink?) throws -> Tensor {
        guard isTraining else {
            let y = try batchNormInference(x, gamma: weight.tensor, beta: bias.tensor, runningMean: runningMean.tensor,
                                           runningVariance: runningVar.tensor, epsilon: epsilon)
            switch activation {
            case .none: return y
            case .relu: return try relu(y)
            case .silu: return try silu(y)
            }
        }
        let out = try batchNorm(x, gamma: weight.tensor, beta: bias.tensor, epsilon: epsilon, activation: activation,
                                statisticsLink: statisticsLink)
        try withoutGradients {
            let count = x.count / x.shape[1]
            let updated = try updateRunningStatistics(runningMean: runningMean.tensor, runningVariance: runningVar.tensor,
                                                      batchMean: out.mean, batchInvstd: out.invstd, count: count,
                                                      momentum: momentum, epsilon: epsilon)
            runningMean.tensor = updated.mean
            runningVar.tensor = updated.variance
        }
        batchesTracked += 1
        return out.y
    }

    public override func prepareStatesForSaving() throws {
        numBatchesTracked.tensor = try Tensor.full([], value: Float(batchesTracked), on: numBatchesTracked.tensor.device)
    }

    public override func statesDidLoad() throws {
        batchesTracked = Int(try numBatchesTracked.tensor.toArray()[0])
    }
}

/// Layer normalisation over the last axis (`nn.LayerNorm`).
public final class LayerNorm: Module, Layer {
    public let weight: Parameter
    public let bias: Parameter
    public let epsilon: Float

    public init(_ features: Int, epsilon: Float = 1e-5, initializer: Initializer) throws {
        weight = Parameter(try initializer.constant([features], 1))
        bias = Parameter(try initializer.constant([features], 0))
        self.epsilon = epsilon
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try layerNorm(x, gamma: weight.tensor, beta: bias.tensor, epsilon: epsilon).y
    }
}

/// A parameter-free activation as a layer.
public final class ActivationLayer: Module, Layer {
    public enum Kind: Sendable {
        case relu, silu, sigmoid, tanh, gelu

        /// The activation batch norm's kernels can fuse, if this is one.
        var batchNormActivation: BatchNormActivation? {
            switch self {
            case .relu: return .relu
            case .silu: return .silu
            default: return nil
            }
        }

        /// The activation a convolution's epilogue can fuse, if this is one.
        var convActivation: ConvActivation? {
            switch self {
            case .relu: return .relu
            case .silu: return .silu
            default: return nil
            }
        }
    }
    public let kind: Kind
    public init(_ kind: Kind) { self.kind = kind }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        switch kind {
        case .relu: return try relu(x)
        case .silu: return try silu(x)
        case .sigmoid: return try sigmoid(x)
        case .tanh: return try Clover.tanh(x)
        case .gelu: return try gelu(x)
        }
    }
}

/// Max pooling (`nn.MaxPool2d`).
public final class MaxPool2d: Module, Layer {
    public let kernel: Int, stride: Int, padding: Int
    public init(kernel: Int, stride: Int? = nil, padding: Int = 0) {
        self.kernel = kernel
        self.stride = stride ?? kernel
        self.padding = padding
    }
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try maxPool2d(x, kernel: kernel, stride: stride, padding: padding)
    }
}

/// Average pooling (`nn.AvgPool2d`, padding counted).
public final class AvgPool2d: Module, Layer {
    public let kernel: Int, stride: Int, padding: Int
    public init(kernel: Int, stride: Int? = nil, padding: Int = 0) {
        self.kernel = kernel
        self.stride = stride ?? kernel
        self.padding = padding
    }
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try avgPool2d(x, kernel: kernel, stride: stride, padding: padding)
    }
}

/// Global average pooling to `[N, C, 1, 1]` (`nn.AdaptiveAvgPool2d(1)`).
public final class GlobalAvgPool2d: Module, Layer {
    public override init() {}
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try globalAvgPool2d(x) }
}

/// Flattens all but the first axis (`nn.Flatten`).
public final class Flatten: Module, Layer {
    public override init() {}
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try x.reshaped([x.shape[0], x.count / x.shape[0]])
    }
}

/// Dropout (`nn.Dropout`): a fresh Philox seed per call in training,
/// identity in evaluation.
public final class Dropout: Module, Layer {
    public let probability: Float
    private var seed: UInt64
    public init(probability: Float, initializer: Initializer) {
        self.probability = probability
        seed = initializer.nextSeed()
    }
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard isTraining, probability > 0 else { return x }
        seed &+= 0x9E37_79B9_7F4A_7C15
        return try dropout(x, probability: probability, seed: seed, training: true)
    }
}

/// Stochastic depth on a residual branch (per-sample drop), as
/// torchvision's `StochasticDepth(p, "row")`.
public final class StochasticDepth: Module, Layer {
    public let probability: Float
    private var seed: UInt64
    public init(probability: Float, initializer: Initializer) {
        self.probability = probability
        seed = initializer.nextSeed()
    }
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard isTraining, probability > 0 else { return x }
        seed &+= 0x9E37_79B9_7F4A_7C15
        return try stochasticDepth(x, probability: probability, seed: seed, training: true)
    }
}

/// The identity (`nn.Identity`).
public final class Identity: Module, Layer {
    public override init() {}
    public func callAsFunction(_ x: Tensor) throws -> Tensor { x }
}

/// A fully connected layer (`nn.Linear`): `x·Wᵀ + b` for `x` of shape
/// `[N, in]`, weight `[out, in]`. PyTorch's default initialisation.
public final class Linear: Module, Layer {
    public let weight: Parameter
    public let bias: Parameter?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, initializer: Initializer) throws {
        let bound = 1 / Float(inFeatures).squareRoot()
        weight = Parameter(try initializer.uniform([outFeatures, inFeatures], bound: bound))
        self.bias = bias ? Parameter(try initializer.uniform([outFeatures], bound: bound)) : nil
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try linear(x, weight: weight.tensor, bias: bias?.tensor)
    }
}

