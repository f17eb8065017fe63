import Clover
import CloverNN

// torchvision's initialisation for the classic CNNs (VGG, ResNet, ResNeXt,
// and the CIFAR ResNets and Wide ResNets written in the same style):
// convolutions kaiming-normal with mode fan_out for ReLU, BatchNorm weight 1
// and bias 0 (what `BatchNorm2d` already does), linear layers either
// PyTorch's default (`Linear`'s own) or normal(0, 0.01) with zero bias (VGG).

extension Initializer {
    /// A convolution initialised as torchvision does: weight
    /// `N(0, 2 / fan_out)` with `fan_out = out_channels·kh·kw` (PyTorch's
    /// fan_out ignores groups), bias zero.
    func kaimingConv2d(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                       groups: Int = 1, bias: Bool = false) throws -> Conv2d {
        // Built on the meta device (no draws, no allocation), then given its
        // real tensors: drawing PyTorch's default uniform weights only to
        // overwrite them would waste time and shift the seed's stream.
        let conv = try Conv2d(inChannels, outChannels, kernelSize: kernelSize, stride: stride, padding: padding,
                              groups: groups, bias: bias, initializer: Initializer(device: .meta))
        try kaimingNormalFanOut(conv)
        return conv
    }

    /// Gives `conv` torchvision's initialisation: weight `N(0, 2 / fan_out)`
    /// with `fan_out = out_channels·kh·kw`, bias zero.
    func kaimingNormalFanOut(_ conv: Conv2d) throws {
        let s = conv.weight.shape
        conv.weight.rebind(try normal(s, std: (2 / Float(s[0] * s[2] * s[3])).squareRoot()))
        conv.bias?.rebind(try constant([s[0]], 0))
    }

    /// A linear layer with weight `N(0, std²)` and zero bias (VGG's classifier).
    func normalLinear(_ inFeatures: Int, _ outFeatures: Int, std: Float) throws -> Linear {
        let linear = try Linear(inFeatures, outFeatures, initializer: Initializer(device: .meta))
        linear.weight.rebind(try normal(linear.weight.shape, std: std))
        linear.bias?.rebind(try constant([outFeatures], 0))
        return linear
    }
}

/// Re-initialises every convolution under `module` as torchvision does for
/// EfficientNet and ResNet (Kaiming normal, fan-out mode; zero bias). Batch
/// norms keep (1, 0).
func kaimingNormalFanOut(_ module: Module, initializer: Initializer) throws {
    for case let conv as Conv2d in module.allModules() {
        try initializer.kaimingNormalFanOut(conv)
    }
}
