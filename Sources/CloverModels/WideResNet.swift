import Clover
import CloverNN

// Pre-activation ResNets (He et al., "Identity Mappings in Deep Residual
// Networks", 2016) and Wide ResNets (Zagoruyko & Komodakis, 2016) for
// CIFAR-sized inputs: BN-ReLU comes before each convolution, and the
// residual sum is not followed by an activation.

/// A pre-activation basic block: `bn1`-ReLU-`conv1`(3x3, stride)-`bn2`-ReLU-
/// dropout-`conv2`(3x3), plus the shortcut. When the shape changes the
/// shortcut is `conv_shortcut` (1x1, stride, no bias) applied to the
/// pre-activated input, as in the common PyTorch Wide ResNet
/// (xternalz/WideResNet-pytorch, whose `convShortcut` is `conv_shortcut`
/// here) and kuangliu's pre-activation ResNet; otherwise the identity.
public final class PreActBlock: Module, Layer {
    public let bn1: BatchNorm2d
    public let conv1: Conv2d
    public let bn2: BatchNorm2d
    public let dropout: Dropout
    public let conv2: Conv2d
    public let convShortcut: Conv2d?

    /// `inPlanes` → `planes` channels; `stride` is taken by `conv1` and the
    /// shortcut; `dropout` is the probability between the convolutions.
    public init(_ inPlanes: Int, _ planes: Int, stride: Int = 1, dropout: Float = 0, initializer: Initializer) throws {
        bn1 = try BatchNorm2d(inPlanes, initializer: initializer)
        conv1 = try initializer.kaimingConv2d(inPlanes, planes, kernelSize: 3, stride: stride, padding: 1)
        bn2 = try BatchNorm2d(planes, initializer: initializer)
        self.dropout = Dropout(probability: dropout, initializer: initializer)
        conv2 = try initializer.kaimingConv2d(planes, planes, kernelSize: 3, padding: 1)
        convShortcut = stride != 1 || inPlanes != planes
            ? try initializer.kaimingConv2d(inPlanes, planes, kernelSize: 1, stride: stride) : nil
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let preActivated = try bn1(x, activation: .relu)
        var out = try conv1(preActivated, normalizedBy: bn2, activation: .relu)
        out = try conv2(dropout(out))
        let shortcut = try convShortcut.map { try $0(preActivated) } ?? x
        return try add(out, shortcut)
    }
}

/// A stage of pre-activation blocks, the first carrying the stride
/// (xternalz's `NetworkBlock`, whose blocks are named `layer.0`, `layer.1` …).
public final class WideResNetStage: Module, Layer {
    public let layer: Sequential

    /// `blocks` blocks from `inPlanes` to `planes` channels.
    public init(_ inPlanes: Int, _ planes: Int, blocks: Int, stride: Int, dropout: Float,
                initializer: Initializer) throws {
        layer = Sequential(try (0..<blocks).map { index in
            try PreActBlock(index == 0 ? inPlanes : planes, planes, stride: index == 0 ? stride : 1, dropout: dropout,
                            initializer: initializer)
        })
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try layer(x) }
}

/// The Wide ResNets of the paper's tables.
public enum WideResNetConfig: CaseIterable, Sendable {
    case wrn16x8, wrn28x10, wrn40x4

    /// Convolution and linear layers, `6n + 4`.
    public var depth: Int {
        switch self {
        case .wrn16x8: 16
        case .wrn28x10: 28
        case .wrn40x4: 40
        }
    }

    /// The widening factor `k`.
    public var widen: Int {
        switch self {
        case .wrn16x8: 8
        case .wrn28x10: 10
        case .wrn40x4: 4
        }
    }

    /// The CLI name, e.g. `wrn-28-10`.
    public var name: String { "wrn-\(depth)-\(widen)" }
}

/// WRN-d-k: a 3x3 stem to 16 channels, three stages of `(d − 4) / 6`
/// pre-activation blocks with `16k`, `32k` and `64k` channels (the last two
/// starting with stride 2), a final BN-ReLU, global average pooling and
/// `fc`. WRN-28-10 has 36,479,194 parameters for 10 classes.
///
/// Names follow xternalz/WideResNet-pytorch: `conv1.weight`,
/// `block1.layer.0.bn1.weight`, `block1.layer.0.conv_shortcut.weight`,
/// `block3.layer.3.conv2.weight`, `bn1.running_var`, `fc.bias` (only
/// `convShortcut` is snake-cased). Initialisation as there: convolutions
/// kaiming fan_out, BN 1/0, `fc` PyTorch's default weight and a zero bias.
public final class WideResNet: Module, Layer {
    public let conv1: Conv2d
    public let block1: WideResNetStage
    public let block2: WideResNetStage
    public let block3: WideResNetStage
    public let bn1: BatchNorm2d
    public let avgpool: GlobalAvgPool2d
    public let fc: Linear

    /// - Parameters:
    ///   - depth: `6n + 4` (10, 16, 22, 28, 40 …).
    ///   - widen: the widening factor `k`.
    ///   - dropout: the probability between the two convolutions of each
    ///     block (the paper uses 0.3 on CIFAR).
    public init(depth: Int, widen: Int, dropout: Float = 0, classes: Int = 10, channels: Int = 3,
                initializer: Initializer) throws {
        guard depth >= 10, (depth - 4) % 6 == 0, widen >= 1 else {
            throw CloverError.invalidArgument(op: "WideResNet", reason: "depth must be 6n+4 (got \(depth)) and widen ≥ 1 (got \(widen))")
        }
        let n = (depth - 4) / 6
        let widths = [16, 16 * widen, 32 * widen, 64 * widen]
        conv1 = try initializer.kaimingConv2d(channels, widths[0], kernelSize: 3, padding: 1)
        block1 = try WideResNetStage(widths[0], widths[1], blocks: n, stride: 1, dropout: dropout, initializer: initializer)
        block2 = try WideResNetStage(widths[1], widths[2], blocks: n, stride: 2, dropout: dropout, initializer: initializer)
        block3 = try WideResNetStage(widths[2], widths[3], blocks: n, stride: 2, dropout: dropout, initializer: initializer)
        bn1 = try BatchNorm2d(widths[3], initializer: initializer)
        avgpool = GlobalAvgPool2d()
        fc = try Linear(widths[3], classes, initializer: initializer)
        fc.bias?.rebind(try initializer.constant([classes], 0))
    }

    /// A configuration from the paper's tables.
    public convenience init(_ config: WideResNetConfig, dropout: Float = 0, classes: Int = 10, channels: Int = 3,
                            initializer: Initializer) throws {
        try self.init(depth: config.depth, widen: config.widen, dropout: dropout, classes: classes, channels: channels,
                      initializer: initializer)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var x = try block3(block2(block1(conv1(x))))
        x = try avgpool(bn1(x, activation: .relu))
        return try fc(x.reshaped([x.shape[0], x.shape[1]]))
    }
}

/// The pre-activation ResNet depths for CIFAR: basic blocks per stage.
public enum PreActResNetDepth: Int, CaseIterable, Sendable {
    case d18 = 18, d34 = 34

    /// Basic blocks in each of the four stages.
    public var blocksPerStage: [Int] {
        switch self {
        case .d18: [2, 2, 2, 2]
        case .d34: [3, 4, 6, 3]
        }
    }
}

/// The pre-activation ResNet-18/34 for 32² inputs (kuangliu/pytorch-cifar's
/// `PreActResNet`): a 3x3 stride-1 stem to 64 channels, four stages
/// (`layer1` … `layer4`) of ``PreActBlock``s with 64, 128, 256 and 512
/// channels (the last three starting with stride 2), then — as in He et
/// al.'s pre-activation design, which kuangliu's version leaves out — a
/// final BN-ReLU (`bn1`), global average pooling and `fc`.
///
/// Names: `conv1.weight`, `layer1.0.bn1.weight`, `layer2.0.conv_shortcut.weight`,
/// `bn1.running_mean`, `fc.weight` (torchvision's ResNet style).
public final class PreActResNet: Module, Layer {
    public let conv1: Conv2d
    public let layer1: Sequential
    public let layer2: Sequential
    public let layer3: Sequential
    public let layer4: Sequential
    public let bn1: BatchNorm2d
    public let avgpool: GlobalAvgPool2d
    public let fc: Linear

    /// - Parameter width: channels of the first stage (64), doubled at each
    ///   later stage; smaller widths make test-sized models.
    public init(_ depth: PreActResNetDepth, classes: Int = 10, channels: Int = 3, width: Int = 64,
                initializer: Initializer) throws {
        conv1 = try initializer.kaimingConv2d(channels, width, kernelSize: 3, padding: 1)
        var inPlanes = width
        func stage(_ planes: Int, blocks: Int, stride: Int) throws -> Sequential {
            Sequential(try (0..<blocks).map { index in
                defer { inPlanes = planes }
                return try PreActBlock(inPlanes, planes, stride: index == 0 ? stride : 1, initializer: initializer)
            })
        }
        let blocks = depth.blocksPerStage
        layer1 = try stage(width, blocks: blocks[0], stride: 1)
        layer2 = try stage(width * 2, blocks: blocks[1], stride: 2)
        layer3 = try stage(width * 4, blocks: blocks[2], stride: 2)
        layer4 = try stage(width * 8, blocks: blocks[3], stride: 2)
        bn1 = try BatchNorm2d(inPlanes, initializer: initializer)
        avgpool = GlobalAvgPool2d()
        fc = try Linear(inPlanes, classes, initializer: initializer)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var x = try layer4(layer3(layer2(layer1(conv1(x)))))
        x = try avgpool(bn1(x, activation: .relu))
        return try fc(x.reshaped([x.shape[0], x.shape[1]]))
    }
}

extension WideResNet {
    /// `preact-resnet18`, `preact-resnet34` and `wrn-16-8`, `wrn-28-10`,
    /// `wrn-40-4` (dropout 0.3, the paper's CIFAR setting), at 32² with 10
    /// classes.
    public static var zoo: [ModelSpec] {
        let preAct = PreActResNetDepth.allCases.map { depth in
            ModelSpec(name: "preact-resnet\(depth.rawValue)", inputShape: [3, 32, 32], classes: 10) { classes, channels, initializer in
                try PreActResNet(depth, classes: classes, channels: channels, initializer: initializer)
            }
        }
        let wide = WideResNetConfig.allCases.map { config in
            ModelSpec(name: config.name, inputShape: [3, 32, 32], classes: 10) { classes, channels, initializer in
                try WideResNet(config, dropout: 0.3, classes: classes, channels: channels, initializer: initializer)
            }
        }
        return preAct + wide
    }
}
