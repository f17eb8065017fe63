import Clover
import CloverNN

// ResNets (He et al., 2015) and ResNeXts (Xie et al., 2016) as torchvision
// builds them for ImageNet, and the CIFAR ResNets of the original paper
// (section 4.2) with their parameter-free "option A" shortcuts.

/// The ImageNet ResNet depths: the block kind and the blocks per stage.
public enum ResNetDepth: Int, CaseIterable, Sendable {
    case d18 = 18, d34 = 34, d50 = 50, d101 = 101, d152 = 152

    /// Blocks in each of the four stages.
    public var blocksPerStage: [Int] {
        switch self {
        case .d18: [2, 2, 2, 2]
        case .d34, .d50: [3, 4, 6, 3]
        case .d101: [3, 4, 23, 3]
        case .d152: [3, 8, 36, 3]
        }
    }

    /// Bottleneck blocks (1x1-3x3-1x1, expansion 4) from ResNet-50 on;
    /// basic blocks (two 3x3) below.
    public var usesBottleneck: Bool { rawValue >= 50 }
}

/// Two 3x3 convolutions with a residual connection (torchvision's
/// `BasicBlock`): `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`.
public final class BasicBlock: Module, Layer {
    /// Output channels per plane.
    public static let expansion = 1
    public let conv1: Conv2d
    public let bn1: BatchNorm2d
    public let conv2: Conv2d
    public let bn2: BatchNorm2d
    /// The shortcut when the shape changes (a projection, or the CIFAR
    /// ResNets' parameter-free ``ZeroPadShortcut``); identity when nil.
    public let downsample: ImageModel?

    /// `inPlanes` → `planes` channels; `stride` is taken by `conv1` (and
    /// must be matched by `downsample`).
    public init(_ inPlanes: Int, _ planes: Int, stride: Int = 1, downsample: ImageModel?,
                initializer: Initializer) throws {
        conv1 = try initializer.kaimingConv2d(inPlanes, planes, kernelSize: 3, stride: stride, padding: 1)
        bn1 = try BatchNorm2d(planes, initializer: initializer)
        conv2 = try initializer.kaimingConv2d(planes, planes, kernelSize: 3, padding: 1)
        bn2 = try BatchNorm2d(planes, initializer: initializer)
        self.downsample = downsample
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let out = try conv2(conv1(x, normalizedBy: bn1, activation: .relu), normalizedBy: bn2)
        let identity = try downsample.map { try $0(x) } ?? x
        return try addReLU(out, identity)
    }
}

/// 1x1 reduce, 3x3 (grouped for ResNeXt, carrying the stride as in
/// torchvision, "ResNet v1.5"), 1x1 expand ×4, with a residual connection
/// (torchvision's `Bottleneck`).
public final class Bottleneck: Module, Layer {
    /// Output channels per plane.
    public static let expansion = 4
    public let conv1: Conv2d
    public let bn1: BatchNorm2d
    public let conv2: Conv2d
    public let bn2: BatchNorm2d
    public let conv3: Conv2d
    public let bn3: BatchNorm2d
    /// The projection shortcut when the shape changes; identity when nil.
    public let downsample: ImageModel?

    /// `inPlanes` → `planes·4` channels; `stride` is taken by `conv2`.
    ///
    /// - Parameters:
    ///   - groups, widthPerGroup: the 3x3 convolution has
    ///     `planes·widthPerGroup/64·groups` channels in `groups` groups
    ///     (1 and 64 for ResNet; 32 and 4 for ResNeXt-50 32x4d).
    public init(_ inPlanes: Int, _ planes: Int, stride: Int = 1, groups: Int = 1, widthPerGroup: Int = 64,
                downsample: ImageModel?, initializer: Initializer) throws {
        let width = planes * widthPerGroup / 64 * groups
        guard width > 0 else {
            throw CloverError.invalidArgument(op: "Bottleneck", reason: "\(planes) planes at \(widthPerGroup) per group (of 64) leave no channels")
        }
        conv1 = try initializer.kaimingConv2d(inPlanes, width, kernelSize: 1)
        bn1 = try BatchNorm2d(width, initializer: initializer)
        conv2 = try initializer.kaimingConv2d(width, width, kernelSize: 3, stride: stride, padding: 1, groups: groups)
        bn2 = try BatchNorm2d(width, initializer: initializer)
        conv3 = try initializer.kaimingConv2d(width, planes * Self.expansion, kernelSize: 1)
        bn3 = try BatchNorm2d(planes * Self.expansion, initializer: initializer)
        self.downsample = downsample
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var out = try conv1(x, normalizedBy: bn1, activation: .relu)
        out = try conv2(out, normalizedBy: bn2, activation: .relu)
        out = try conv3(out, normalizedBy: bn3)
        let identity = try downsample.map { try $0(x) } ?? x
        return try addReLU(out, identity)
    }
}

/// The ImageNet ResNet and ResNeXt (torchvision's `ResNet`): a 7x7 stride-2
/// stem and 3x3 stride-2 max pool, four stages of blocks (`layer1` …
/// `layer4`, the last three starting with stride 2), global average pooling
/// and `fc`. Names match torchvision's state dict (`conv1.weight`,
/// `bn1.running_mean`, `layer1.0.conv1.weight`,
/// `layer1.0.downsample.0.weight`, `fc.bias`).
public final class ResNet: Module, Layer {
    public let conv1: Conv2d
    public let bn1: BatchNorm2d
    public let maxpool: MaxPool2d
    public let layer1: Sequential
    public let layer2: Sequential
    public let layer3: Sequential
    public let layer4: Sequential
    public let avgpool: GlobalAvgPool2d
    public let fc: Linear

    /// - Parameters:
    ///   - depth: the blocks per stage and block kind.
    ///   - classes: outputs of `fc`.
    ///   - channels: input channels of the stem.
    ///   - groups, widthPerGroup: ResNeXt's cardinality and per-group width
    ///     (bottleneck depths only; 1 and 64 give ResNet).
    ///   - width: planes of the first stage (64); the stages have
    ///     `width·[1, 2, 4, 8]` planes. Smaller widths make test-sized models.
    public init(_ depth: ResNetDepth, classes: Int = 1000, channels: Int = 3, groups: Int = 1, widthPerGroup: Int = 64,
                width: Int = 64, initializer: Initializer) throws {
        guard depth.usesBottleneck || (groups == 1 && widthPerGroup == 64) else {
            throw CloverError.invalidArgument(op: "ResNet", reason: "groups and widthPerGroup need bottleneck blocks (depth ≥ 50)")
        }
        conv1 = try initializer.kaimingConv2d(channels, width, kernelSize: 7, stride: 2, padding: 3)
        bn1 = try BatchNorm2d(width, initializer: initializer)
        maxpool = MaxPool2d(kernel: 3, stride: 2, padding: 1)

        // torchvision's `_make_layer`: the first block of a stage takes the
        // stride and, when the shape changes, a 1x1 conv + BN projection.
        var inPlanes = width
        func stage(_ planes: Int, blocks: Int, stride: Int) throws -> Sequential {
            let expansion = depth.usesBottleneck ? Bottleneck.expansion : BasicBlock.expansion
            var layers: [Layer] = []
            for index in 0..<blocks {
                let blockStride = index == 0 ? stride : 1
                var downsample: ImageModel?
                if blockStride != 1 || inPlanes != planes * expansion {
                    downsample = Sequential([
                        try initializer.kaimingConv2d(inPlanes, planes * expansion, kernelSize: 1, stride: blockStride),
                        try BatchNorm2d(planes * expansion, initializer: initializer),
                    ])
                }
                if depth.usesBottleneck {
                    layers.append(try Bottleneck(inPlanes, planes, stride: blockStride, groups: groups,
                                                 widthPerGroup: widthPerGroup, downsample: downsample, initializer: initializer))
                } else {
                    layers.append(try BasicBlock(inPlanes, planes, stride: blockStride, downsample: downsample,
                                                 initializer: initializer))
                }
                inPlanes = planes * expansion
            }
            return Sequential(layers)
        }
        let blocks = depth.blocksPerStage
        layer1 = try stage(width, blocks: blocks[0], stride: 1)
        layer2 = try stage(width * 2, blocks: blocks[1], stride: 2)
        layer3 = try stage(width * 4, blocks: blocks[2], stride: 2)
        layer4 = try stage(width * 8, blocks: blocks[3], stride: 2)
        avgpool = GlobalAvgPool2d()
        fc = try Linear(inPlanes, classes, initializer: initializer)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var x = try maxpool(conv1(x, normalizedBy: bn1, activation: .relu))
        x = try layer4(layer3(layer2(layer1(x))))
        x = try avgpool(x)
        return try fc(x.reshaped([x.shape[0], x.shape[1]]))
    }
}

/// The CIFAR ResNet depths `6n+2` of He et al. (section 4.2).
public enum CIFARResNetDepth: Int, CaseIterable, Sendable {
    case d20 = 20, d32 = 32, d44 = 44, d56 = 56, d110 = 110

    /// `n`: basic blocks in each of the three stages.
    public var blocksPerStage: Int { (rawValue - 2) / 6 }
}

/// The CIFAR ResNet of He et al. (section 4.2): a 3x3 stem to 16 channels,
/// three stages of `n` basic blocks with 16, 32 and 64 channels (the last
/// two starting with stride 2), global average pooling and `fc`; depth
/// `6n+2`. Shortcuts are the paper's option A (parameter-free: subsample
/// and zero-pad channels, ``ZeroPadShortcut``), so ResNet-20 has 269,722
/// parameters for 10 classes.
///
/// There is no torchvision model; names follow torchvision's ResNet
/// (`conv1`, `bn1`, `layer1.0.conv1.weight` … `layer3.2.bn2.running_var`,
/// `fc.weight`). The widely used akamaster/pytorch_resnet_cifar10 names the
/// same tensors alike except `linear` for `fc`. Convolutions use
/// torchvision's kaiming fan_out initialisation, `fc` PyTorch's default.
public final class CIFARResNet: Module, Layer {
    public let conv1: Conv2d
    public let bn1: BatchNorm2d
    public let layer1: Sequential
    public let layer2: Sequential
    public let layer3: Sequential
    public let avgpool: GlobalAvgPool2d
    public let fc: Linear

    /// A standard depth (ResNet-20 … ResNet-110).
    public convenience init(_ depth: CIFARResNetDepth, classes: Int = 10, channels: Int = 3,
                            initializer: Initializer) throws {
        try self.init(blocksPerStage: depth.blocksPerStage, classes: classes, channels: channels, initializer: initializer)
    }

    /// Any depth `6n+2` (`n = blocksPerStage`); `width` is the first
    /// stage's channels (16), doubled at each later stage.
    public init(blocksPerStage n: Int, classes: Int = 10, channels: Int = 3, width: Int = 16,
                initializer: Initializer) throws {
        conv1 = try initializer.kaimingConv2d(channels, width, kernelSize: 3, padding: 1)
        bn1 = try BatchNorm2d(width, initializer: initializer)
        var inPlanes = width
        func stage(_ planes: Int, stride: Int) throws -> Sequential {
            var blocks: [Layer] = []
            for index in 0..<n {
                let blockStride = index == 0 ? stride : 1
                let shortcut = blockStride != 1 || inPlanes != planes
                    ? ZeroPadShortcut(stride: blockStride, inChannels: inPlanes, outChannels: planes) : nil
                blocks.append(try BasicBlock(inPlanes, planes, stride: blockStride, downsample: shortcut,
                                             initializer: initializer))
                inPlanes = planes
            }
            return Sequential(blocks)
        }
        layer1 = try stage(width, stride: 1)
        layer2 = try stage(width * 2, stride: 2)
        layer3 = try stage(width * 4, stride: 2)
        avgpool = GlobalAvgPool2d()
        fc = try Linear(inPlanes, classes, initializer: initializer)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var x = try conv1(x, normalizedBy: bn1, activation: .relu)
        x = try layer3(layer2(layer1(x)))
        x = try avgpool(x)
        return try fc(x.reshaped([x.shape[0], x.shape[1]]))
    }
}

/// The parameter-free "option A" shortcut of He et al.: the input
/// subsampled with the block's stride (`x[:, :, ::s, ::s]`) and zero-padded
/// with `(out − in) / 2` channels before and the rest after, as the common
/// PyTorch CIFAR ResNets do (`F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))`).
///
/// The subsampling is a ``stridedCopy`` (its gradient scatters back to the
/// sampled pixels, zeros elsewhere) and the padding a ``concat`` with zero
/// tensors that need no gradient, so the gradient is exact.
public final class ZeroPadShortcut: Module, Layer {
    public let stride: Int
    public let padBefore: Int
    public let padAfter: Int

    /// A shortcut from `inChannels` to `outChannels` (≥ `inChannels`) with
    /// the block's stride.
    public init(stride: Int, inChannels: Int, outChannels: Int) {
        self.stride = stride
        padBefore = (outChannels - inChannels) / 2
        padAfter = outChannels - inChannels - padBefore
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        // ceil(h / s): the rows a 3x3 stride-s convolution with padding 1 keeps.
        let (outH, outW) = ((h + stride - 1) / stride, (w + stride - 1) / stride)
        let sampled = stride == 1 ? x
            : try stridedCopy(x, shape: [n, c, outH, outW], strides: [c * h * w, h * w, stride * w, stride])
        var parts: [Tensor] = []
        if padBefore > 0 { parts.append(try Tensor.zeros([n, padBefore, outH, outW], on: x.device)) }
        parts.append(sampled)
        if padAfter > 0 { parts.append(try Tensor.zeros([n, padAfter, outH, outW], on: x.device)) }
        return parts.count == 1 ? sampled : try concat(parts, axis: 1)
    }
}

extension ResNet {
    /// `resnet18` … `resnet152`, `resnext50-32x4d`, `resnext101-32x8d`,
    /// `wide-resnet50-2` and `wide-resnet101-2` (torchvision's ImageNet
    /// Wide ResNets: bottlenecks twice as wide) at 224² with 1000 classes,
    /// and `cifar-resnet20` … `cifar-resnet110` at 32² with 10 classes.
    public static var zoo: [ModelSpec] {
        let imageNet = ResNetDepth.allCases.map { depth in
            ModelSpec(name: "resnet\(depth.rawValue)", inputShape: [3, 224, 224], classes: 1000) { classes, channels, initializer in
                try ResNet(depth, classes: classes, channels: channels, initializer: initializer)
            }
        }
        let resNeXt = [(ResNetDepth.d50, 32, 4), (.d101, 32, 8)].map { depth, groups, widthPerGroup in
            ModelSpec(name: "resnext\(depth.rawValue)-\(groups)x\(widthPerGroup)d", inputShape: [3, 224, 224], classes: 1000) {
                classes, channels, initializer in
                try ResNet(depth, classes: classes, channels: channels, groups: groups, widthPerGroup: widthPerGroup,
                           initializer: initializer)
            }
        }
        let wide = [ResNetDepth.d50, .d101].map { depth in
            ModelSpec(name: "wide-resnet\(depth.rawValue)-2", inputShape: [3, 224, 224], classes: 1000) {
                classes, channels, initializer in
                try ResNet(depth, classes: classes, channels: channels, widthPerGroup: 128, initializer: initializer)
            }
        }
        let cifar = CIFARResNetDepth.allCases.map { depth in
            ModelSpec(name: "cifar-resnet\(depth.rawValue)", inputShape: [3, 32, 32], classes: 10) { classes, channels, initializer in
                try CIFARResNet(depth, classes: classes, channels: channels, initializer: initializer)
            }
        }
        return imageNet + resNeXt + wide + cifar
    }
}
