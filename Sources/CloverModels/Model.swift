import Clover
import CloverNN

/// A model that maps a batch of images `[N, C, H, W]` to class logits `[N, classes]`.
public typealias ImageModel = Module & Layer

/// One entry of the model zoo: a name, the input size it is defined at, and
/// how to build it.
public struct ModelSpec {
    /// The CLI name, e.g. `resnet50`, `cifar-resnet20`, `efficientnet-b0`.
    public let name: String
    /// The standard input `[C, H, W]` (224² ImageNet, 32² CIFAR...).
    public let inputShape: [Int]
    /// The standard number of classes (1000 for ImageNet models, 10 for CIFAR).
    public let classes: Int
    /// Builds the model for `classes` outputs and input channels `channels`.
    public let make: (_ classes: Int, _ channels: Int, _ initializer: Initializer) throws -> ImageModel

    public init(name: String, inputShape: [Int], classes: Int,
                make: @escaping (_ classes: Int, _ channels: Int, _ initializer: Initializer) throws -> ImageModel) {
        self.name = name
        self.inputShape = inputShape
        self.classes = classes
        self.make = make
    }

    /// Parameter count and multiply-adds of one image at the standard size,
    /// computed on the meta device (nothing is allocated).
    public func census() throws -> (parameters: Int, multiplyAdds: Int) {
        let model = try make(classes, inputShape[0], Initializer(device: .meta))
        model.eval()
        let macs = try MultiplyAdds.count(on: .meta) {
            _ = try model(Tensor.zeros([1] + inputShape, on: .meta))
        }
        return (model.parameterCount, macs)
    }
}

/// Every model Clover builds, by family.
public enum ModelZoo {
    public static var all: [ModelSpec] {
        families.flatMap { $0 }
    }

    /// Family lists; each model family file contributes one.
    static var families: [[ModelSpec]] {
        [LeNet5.zoo, VGG.zoo, ResNet.zoo, WideResNet.zoo, EfficientNet.zoo, RegNet.zoo]
    }

    /// The model called `name` (case-insensitive).
    public static func spec(named name: String) throws -> ModelSpec {
        guard let spec = all.first(where: { $0.name.lowercased() == name.lowercased() }) else {
            throw CloverError.invalidArgument(op: "model", reason: "unknown model '\(name)'; known: \(all.map(\.name).joined(separator: ", "))")
        }
        return spec
    }
}
