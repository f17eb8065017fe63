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
        let fanOut = outChannels * kernelSize * kernelSize
        conv.weight.rebind(try normal(conv.weight.shape, std: (2 / Float(fanOut)).squareRoot()))
        conv.bias?.rebind(try constant([outChannels], 0))
        return conv
    }

    /// A linear layer with weight `N(0, std²)` and zero bias (VGG's classifier).
    func normalLinear(_ inFeatures: Int, _ outFeatures: Int, std: Float) throws -> Linear {
        let linear = try Linear(inFeatures, outFeatures, initializer: Initializer(device: .meta))
        linear.weight.rebind(try normal(linear.weight.shape, std: std))
        linear.bias?.rebind(try constant([outFeatures], 0))
        return linear
    }
}
