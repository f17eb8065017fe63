import Clover
import CloverNN

/// The VGG layer tables (Simonyan & Zisserman, 2014), as torchvision's `cfgs`
/// "A", "B", "D" and "E".
public enum VGGConfig: CaseIterable, Sendable {
    case vgg11, vgg13, vgg16, vgg19

    /// One entry of the feature extractor: a 3x3 convolution (padding 1) to
    /// this many channels, or a 2x2 max pool.
    public enum Item: Equatable, Sendable {
        case conv(Int)
        case pool
    }

    /// The feature extractor, in order.
    public var layers: [Item] {
        let table: [Int]
        // 0 marks a max pool, as "M" does in torchvision's tables.
        switch self {
        case .vgg11: table = [64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0]
        case .vgg13: table = [64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0]
        case .vgg16: table = [64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0]
        case .vgg19: table = [64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0]
        }
        return table.map { $0 == 0 ? .pool : .conv($0) }
    }

    /// The number of weight layers (convolutions plus the three linear layers).
    public var depth: Int {
        layers.filter { $0 != .pool }.count + 3
    }
}

/// VGG as torchvision builds it: `features` (conv-[BN]-ReLU blocks and max
/// pools), `avgpool` (adaptive average pooling to 7x7), and `classifier`
/// (Linear-ReLU-Dropout twice, then the output Linear). State-dict names are
/// torchvision's: `features.0.weight`, `features.1.running_mean` (with BN),
/// `classifier.0.weight` … `classifier.6.bias`.
public final class VGG: Module, Layer {
    public let features: Sequential
    public let avgpool: AdaptiveAvgPool2d
    public let classifier: Sequential

    /// - Parameters:
    ///   - config: the layer table.
    ///   - batchNorm: a BatchNorm after every convolution (`vgg16_bn`).
    ///   - classes: outputs of the last linear layer.
    ///   - channels: input channels (1 for Fashion-MNIST).
    ///   - width: channels of the first stage; the table's channels are
    ///     scaled by `width / 64` (64 is VGG; smaller widths make test-sized
    ///     models).
    ///   - hiddenFeatures: width of the two hidden linear layers (4096).
    ///   - poolSize: the side of the adaptive pooling output (7).
    ///   - dropout: dropout probability in the classifier (0.5).
    public init(_ config: VGGConfig, batchNorm: Bool = false, classes: Int = 1000, channels: Int = 3,
                width: Int = 64, hiddenFeatures: Int = 4096, poolSize: Int = 7, dropout: Float = 0.5,
                initializer: Initializer) throws {
        var layers: [Layer] = []
        var inChannels = channels
        for item in config.layers {
            switch item {
            case .pool:
                layers.append(MaxPool2d(kernel: 2, stride: 2))
            case let .conv(tableChannels):
                let outChannels = max(1, tableChannels * width / 64)
                layers.append(try initializer.kaimingConv2d(inChannels, outChannels, kernelSize: 3, padding: 1, bias: true))
                if batchNorm { layers.append(try BatchNorm2d(outChannels, initializer: initializer)) }
                layers.append(ActivationLayer(.relu))
                inChannels = outChannels
            }
        }
        features = Sequential(layers)
        avgpool = AdaptiveAvgPool2d(outputSize: poolSize)
        classifier = Sequential([
            try initializer.normalLinear(inChannels * poolSize * poolSize, hiddenFeatures, std: 0.01),
            ActivationLayer(.relu),
            Dropout(probability: dropout, initializer: initializer),
            try initializer.normalLinear(hiddenFeatures, hiddenFeatures, std: 0.01),
            ActivationLayer(.relu),
            Dropout(probability: dropout, initializer: initializer),
            try initializer.normalLinear(hiddenFeatures, classes, std: 0.01),
        ])
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let pooled = try avgpool(features(x))
        return try classifier(pooled.reshaped([pooled.shape[0], pooled.count / pooled.shape[0]]))
    }
}

extension VGG {
    /// `vgg11` … `vgg19` and their `-bn` variants, at 224² with 1000 classes.
    public static var zoo: [ModelSpec] {
        VGGConfig.allCases.flatMap { config in
            [false, true].map { batchNorm in
                ModelSpec(name: "vgg\(config.depth)" + (batchNorm ? "-bn" : ""), inputShape: [3, 224, 224], classes: 1000) {
                    classes, channels, initializer in
                    try VGG(config, batchNorm: batchNorm, classes: classes, channels: channels, initializer: initializer)
                }
            }
        }
    }
}

/// Adaptive average pooling to `outputSize`² (`nn.AdaptiveAvgPool2d`) for the
/// sizes where it is a plain op: an input side that is a multiple of the
/// output side is average-pooled; an output side that is a multiple of the
/// input side repeats each pixel (what adaptive pooling does there, e.g. a
/// 32² image reaching VGG's pool at 1x1 is spread over 7x7, as in
/// torchvision). Other ratios throw.
public final class AdaptiveAvgPool2d: Module, Layer {
    public let outputSize: Int

    /// Pools to `outputSize`x`outputSize`.
    public init(outputSize: Int) {
        self.outputSize = outputSize
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let (height, width) = (x.shape[2], x.shape[3])
        guard height == width else {
            throw CloverError.unsupported(op: "adaptive_avg_pool", shapes: [x.shape], device: "any device",
                                          reason: "only square inputs are supported")
        }
        if height == outputSize { return x }
        if height % outputSize == 0 { return try avgPool2d(x, kernel: height / outputSize) }
        if outputSize % height == 0 { return try repeatPixels(x, factor: outputSize / height) }
        throw CloverError.unsupported(op: "adaptive_avg_pool", shapes: [x.shape], device: "any device",
                                      reason: "input side \(height) and output side \(outputSize) are not multiples of one another")
    }

    /// Nearest-neighbour upsampling by an integer factor: each pixel copied
    /// `factor` times along W then H. Built from concatenations of the same
    /// tensor, so the gradient sums the copies.
    private func repeatPixels(_ x: Tensor, factor: Int) throws -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let wide = try concat(Array(repeating: x.reshaped([n, c, h, w, 1]), count: factor), axis: 4)
            .reshaped([n, c, h, 1, w * factor])
        return try concat(Array(repeating: wide, count: factor), axis: 3).reshaped([n, c, h * factor, w * factor])
    }
}
