import Clover
import CloverNN

/// LeNet-5 (LeCun et al., 1998) for 28x28 images such as Fashion-MNIST:
/// two 5x5 convolutions with ReLU and 2x2 max pooling (the first padded by
/// 2, as the classic 32x32 input is), then three linear layers. State-dict
/// names follow the usual PyTorch port: `features.0.weight`,
/// `features.3.weight`, `classifier.0.weight` ... `classifier.4.bias`.
///
/// It has no batch normalisation and no dropout, so a training step's
/// result depends only on the batch's samples, not on how they are split:
/// data-parallel training on 2 processes with batch B gives the 1-process
/// result with batch 2B, which is what the distributed tests check.
public final class LeNet5: Module, Layer {
    public let features: Sequential
    public let classifier: Sequential

    /// - Parameters:
    ///   - classes: outputs of the last linear layer.
    ///   - channels: input channels (1 for Fashion-MNIST).
    ///   - inputSize: the side of the square input (28).
    public init(classes: Int = 10, channels: Int = 1, inputSize: Int = 28, initializer: Initializer) throws {
        // 28 → conv(pad 2) 28 → pool 14 → conv 10 → pool 5.
        let side = ((inputSize / 2) - 4) / 2
        guard side >= 1 else {
            throw CloverError.invalidArgument(op: "LeNet5", reason: "input side \(inputSize) is below 12")
        }
        features = Sequential([
            try Conv2d(channels, 6, kernelSize: 5, padding: 2, initializer: initializer),
            ActivationLayer(.relu),
            MaxPool2d(kernel: 2, stride: 2),
            try Conv2d(6, 16, kernelSize: 5, initializer: initializer),
            ActivationLayer(.relu),
            MaxPool2d(kernel: 2, stride: 2),
        ])
        classifier = Sequential([
            try Linear(16 * side * side, 120, initializer: initializer),
            ActivationLayer(.relu),
            try Linear(120, 84, initializer: initializer),
            ActivationLayer(.relu),
            try Linear(84, classes, initializer: initializer),
        ])
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let f = try features(x)
        return try classifier(f.reshaped([f.shape[0], f.count / f.shape[0]]))
    }
}

extension LeNet5 {
    /// `lenet5`, at 1x28x28 with 10 classes.
    public static var zoo: [ModelSpec] {
        [ModelSpec(name: "lenet5", inputShape: [1, 28, 28], classes: 10) { classes, channels, initializer in
            try LeNet5(classes: classes, channels: channels, initializer: initializer)
        }]
    }
}
