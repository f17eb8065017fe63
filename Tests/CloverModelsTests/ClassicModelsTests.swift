import Clover
import CloverModels
import CloverNN
import CloverRuntime
import CloverTestSupport
import XCTest

/// The OpenCL device under test, selected once per process (see ``TestSupport``).
private enum ModelTestDevice {
    static func get() throws -> Device { try TestSupport.sharedDevice() }
}

final class ClassicModelsTests: XCTestCase {
    // MARK: Sizes (meta device: nothing is allocated)

    /// torchvision's published parameter counts, and the usual counts of the
    /// CIFAR models (ResNet-20 of He et al., WRN-28-10 of Zagoruyko & Komodakis).
    func testParameterCounts() throws {
        let expected: [(String, Int)] = [
            ("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032),
            ("resnet101", 44_549_160), ("resnet152", 60_192_808),
            ("resnext50-32x4d", 25_028_904), ("resnext101-32x8d", 88_791_336),
            ("wide-resnet50-2", 68_883_240), ("wide-resnet101-2", 126_886_696),
            ("vgg11", 132_863_336), ("vgg13", 133_047_848), ("vgg16", 138_357_544), ("vgg19", 143_667_240),
            ("vgg11-bn", 132_868_840), ("vgg13-bn", 133_053_736), ("vgg16-bn", 138_365_992), ("vgg19-bn", 143_678_248),
            ("cifar-resnet20", 269_722), ("wrn-28-10", 36_479_194),
        ]
        for (name, count) in expected {
            XCTAssertEqual(try ModelZoo.spec(named: name).census().parameters, count, name)
        }
    }

    /// torchvision lists ResNet-50 at 4.09 GFLOPS, counting multiply-adds
    /// (convolutions and linear layers at 224²); likewise the others here.
    func testMultiplyAddsMatchTorchvision() throws {
        let expected: [(String, Double)] = [
            ("resnet50", 4.09e9), ("resnet18", 1.81e9), ("resnet152", 11.51e9), ("resnext50-32x4d", 4.23e9),
            ("resnext101-32x8d", 16.41e9), ("vgg16", 15.47e9), ("vgg11-bn", 7.61e9),
        ]
        for (name, macs) in expected {
            XCTAssertEqual(Double(try ModelZoo.spec(named: name).census().multiplyAdds), macs, accuracy: 0.02 * macs, name)
        }
    }

    func testEveryZooModelHasACensus() throws {
        let names = ModelZoo.all.map(\.name)
        for name in ["vgg11", "vgg13-bn", "vgg19-bn", "resnet152", "resnext101-32x8d", "cifar-resnet32",
                     "cifar-resnet110", "preact-resnet18", "wrn-28-10", "wrn-40-4"] {
            XCTAssertTrue(names.contains(name), name)
        }
        for spec in VGG.zoo + ResNet.zoo + WideResNet.zoo {
            let census = try spec.census()
            XCTAssertGreaterThan(census.parameters, 0, spec.name)
            XCTAssertGreaterThan(census.multiplyAdds, 0, spec.name)
        }
    }

    // MARK: State-dict names

    func testResNetNamesAreTorchvisions() throws {
        let model = try ResNet(.d50, initializer: Initializer(device: .meta))
        let params = model.namedParameters().map(\.0), states = model.namedStates().map(\.0)
        XCTAssertEqual(Array(params.prefix(4)), ["conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight"])
        XCTAssertEqual(Array(params.suffix(4)), ["layer4.2.bn3.weight", "layer4.2.bn3.bias", "fc.weight", "fc.bias"])
        for name in ["layer1.0.downsample.0.weight", "layer1.0.downsample.1.weight", "layer1.0.downsample.1.bias",
                     "layer2.0.downsample.0.weight", "layer3.5.conv2.weight", "layer4.2.bn3.bias"] {
            XCTAssertTrue(params.contains(name), name)
        }
        XCTAssertFalse(params.contains("layer1.1.downsample.0.weight"))
        for name in ["bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
                     "layer1.0.downsample.1.running_mean", "layer4.2.bn3.num_batches_tracked"] {
            XCTAssertTrue(states.contains(name), name)
        }
        // torchvision's resnet50 state_dict: 161 parameters and 159 buffers (320 keys).
        XCTAssertEqual(params.count, 161)
        XCTAssertEqual(states.count, 159)

        let resNeXt = try ResNet(.d50, groups: 32, widthPerGroup: 4, initializer: Initializer(device: .meta))
        let shapes = Dictionary(uniqueKeysWithValues: resNeXt.namedParameters().map { ($0.0, $0.1.shape) })
        XCTAssertEqual(shapes["layer1.0.conv2.weight"], [128, 4, 3, 3])
        XCTAssertEqual(shapes["layer4.0.conv3.weight"], [2048, 1024, 1, 1])
        XCTAssertEqual(shapes["fc.weight"], [1000, 2048])
    }

    func testVGGNamesAreTorchvisions() throws {
        let plain = try VGG(.vgg16, initializer: Initializer(device: .meta))
        let params = plain.namedParameters().map(\.0)
        XCTAssertEqual(Array(params.prefix(3)), ["features.0.weight", "features.0.bias", "features.2.weight"])
        XCTAssertEqual(Array(params.suffix(6)), ["classifier.0.weight", "classifier.0.bias", "classifier.3.weight",
                                                 "classifier.3.bias", "classifier.6.weight", "classifier.6.bias"])
        XCTAssertTrue(params.contains("features.28.weight"))
        XCTAssertEqual(params.count, 32)

        let bn = try VGG(.vgg16, batchNorm: true, initializer: Initializer(device: .meta))
        let bnParams = bn.namedParameters().map(\.0), bnStates = bn.namedStates().map(\.0)
        XCTAssertEqual(Array(bnParams.prefix(4)), ["features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias"])
        XCTAssertTrue(bnParams.contains("features.40.weight"))
        XCTAssertTrue(bnStates.contains("features.41.running_var"))
        XCTAssertEqual(bnParams.count, 58)
        XCTAssertEqual(bnStates.count, 39)
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: bn.namedParameters().map { ($0.0, $0.1.shape) })["classifier.0.weight"],
                       [4096, 25088])
    }

    func testCIFARModelNames() throws {
        let resNet = try CIFARResNet(.d20, initializer: Initializer(device: .meta))
        let params = resNet.namedParameters().map(\.0)
        XCTAssertEqual(Array(params.prefix(4)), ["conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight"])
        XCTAssertEqual(Array(params.suffix(2)), ["fc.weight", "fc.bias"])
        XCTAssertTrue(params.contains("layer3.2.bn2.bias"))
        XCTAssertFalse(params.contains { $0.contains("downsample") }, "option A shortcuts have no parameters")

        let wide = try WideResNet(.wrn28x10, initializer: Initializer(device: .meta))
        let wideParams = wide.namedParameters().map(\.0)
        XCTAssertEqual(Array(wideParams.prefix(3)), ["conv1.weight", "block1.layer.0.bn1.weight", "block1.layer.0.bn1.bias"])
        XCTAssertEqual(Array(wideParams.suffix(4)), ["bn1.weight", "bn1.bias", "fc.weight", "fc.bias"])
        for name in ["block1.layer.0.conv_shortcut.weight", "block2.layer.0.conv_shortcut.weight",
                     "block3.layer.3.conv2.weight", "block3.layer.3.bn2.weight"] {
            XCTAssertTrue(wideParams.contains(name), name)
        }
        XCTAssertFalse(wideParams.contains("block2.layer.1.conv_shortcut.weight"))
        XCTAssertTrue(wide.namedStates().map(\.0).contains("block2.layer.3.bn1.running_mean"))

        let preAct = try PreActResNet(.d18, initializer: Initializer(device: .meta))
        let preActParams = preAct.namedParameters().map(\.0)
        XCTAssertEqual(preActParams.first, "conv1.weight")
        XCTAssertTrue(preActParams.contains("layer2.0.conv_shortcut.weight"))
        XCTAssertFalse(preActParams.contains("layer1.0.conv_shortcut.weight"))
        XCTAssertEqual(Array(preActParams.suffix(4)), ["bn1.weight", "bn1.bias", "fc.weight", "fc.bias"])
    }

    // MARK: Shapes (meta device)

    func testForwardShapes() throws {
        let cases: [(String, classes: Int, input: [Int])] = [
            ("resnet50", 1000, [2, 3, 224, 224]), ("resnext50-32x4d", 1000, [2, 3, 224, 224]),
            ("vgg16-bn", 1000, [2, 3, 224, 224]), ("vgg11", 100, [2, 3, 32, 32]),
            ("resnet18", 10, [2, 1, 64, 64]), ("cifar-resnet20", 10, [2, 1, 28, 28]),
            ("cifar-resnet110", 100, [2, 3, 32, 32]), ("wrn-28-10", 10, [2, 3, 32, 32]),
            ("preact-resnet18", 10, [2, 3, 32, 32]),
        ]
        for (name, classes, input) in cases {
            let model = try ModelZoo.spec(named: name).make(classes, input[1], Initializer(device: .meta))
            XCTAssertEqual(try model(Tensor.zeros(input, on: .meta)).shape, [input[0], classes], name)
        }
        // VGG's adaptive pool: 112² reaches it at 3x3, which is no multiple of 7.
        let vgg = try VGG(.vgg11, initializer: Initializer(device: .meta))
        XCTAssertThrowsError(try vgg(Tensor.zeros([1, 3, 112, 112], on: .meta)))
    }

    // MARK: The option-A shortcut

    /// Subsampling and zero padding, and the gradient: ones at the sampled
    /// pixels, zeros elsewhere, on the reference and on the OpenCL device.
    func testZeroPadShortcut() throws {
        var devices = [Device.reference]
        if let gpu = try? ModelTestDevice.get() { devices.append(gpu) }
        for device in devices {
            let x = try Tensor(shape: [1, 2, 4, 4], values: (0..<32).map(Float.init), on: device)
            x.requiresGrad = true
            let y = try ZeroPadShortcut(stride: 2, inChannels: 2, outChannels: 4)(x)
            XCTAssertEqual(y.shape, [1, 4, 2, 2])
            XCTAssertEqual(try y.toArray(), [0, 0, 0, 0, 0, 2, 8, 10, 16, 18, 24, 26, 0, 0, 0, 0], "\(device)")
            try y.backward(Tensor(shape: y.shape, values: (1...16).map(Float.init), on: device))
            var expected = [Float](repeating: 0, count: 32)
            for (i, source) in [0, 2, 8, 10, 16, 18, 24, 26].enumerated() { expected[source] = Float(i + 5) }
            XCTAssertEqual(try x.grad?.toArray(), expected, "\(device)")
        }
    }

    /// One forward/backward of a small CIFAR ResNet (one block a stage, so
    /// two option-A shortcuts) built with one seed on the reference and on
    /// the OpenCL device: every gradient agrees.
    func testCIFARResNetGradientsMatchTheReference() throws {
        let gpu = try ModelTestDevice.get()
        var gradients: [[[Float]]] = []
        for device in [Device.reference, gpu] {
            let model = try CIFARResNet(blocksPerStage: 1, classes: 4, channels: 2, width: 4,
                                        initializer: Initializer(device: device, seed: 11))
            var rng = SplitMix64(seed: 3)
            let x = try Tensor(shape: [2, 2, 8, 8], values: rng.uniformArray(count: 256, bound: 1), on: device)
            x.requiresGrad = true
            try softmaxCrossEntropy(model(x), labels: ClassLabels([1, 3])).backward()
            gradients.append(try [x.grad!.toArray()] + model.parameters().map { try $0.grad!.toArray() })
        }
        let names = ["input"] + (try CIFARResNet(blocksPerStage: 1, classes: 4, channels: 2, width: 4,
                                                 initializer: Initializer(device: .meta)).namedParameters().map(\.0))
        for (name, (reference, device)) in zip(names, zip(gradients[0], gradients[1])) {
            let worst = zip(reference, device).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1e-4, name)
        }
    }

    // MARK: Training on the OpenCL device (scaled-down models)

    func testCIFARResNet20Trains() throws {
        try assertTrains(input: [4, 1, 16, 16]) { device in
            try CIFARResNet(.d20, classes: 10, channels: 1, initializer: Initializer(device: device, seed: 1))
        }
    }

    func testTinyVGGTrains() throws {
        // 32² reaches the adaptive pool at 1x1: the repeat path to 7x7.
        try assertTrains(input: [2, 3, 32, 32]) { device in
            try VGG(.vgg11, batchNorm: true, classes: 10, width: 4, hiddenFeatures: 32, dropout: 0,
                    initializer: Initializer(device: device, seed: 2))
        }
    }

    /// The full-width ResNet-18 (11.2M parameters with 10 classes) at 32².
    func testResNet18Trains() throws {
        try assertTrains(input: [2, 3, 32, 32]) { device in
            try ResNet(.d18, classes: 10, initializer: Initializer(device: device, seed: 3))
        }
    }

    func testSmallResNeXtTrains() throws {
        try assertTrains(input: [2, 3, 32, 32], learningRate: 0.02) { device in
            try ResNet(.d50, classes: 10, groups: 4, widthPerGroup: 8, width: 16, initializer: Initializer(device: device, seed: 4))
        }
    }

    func testWRN10x1Trains() throws {
        try assertTrains(input: [4, 3, 16, 16]) { device in
            try WideResNet(depth: 10, widen: 1, dropout: 0.1, classes: 10, initializer: Initializer(device: device, seed: 5))
        }
    }

    func testSmallPreActResNetTrains() throws {
        try assertTrains(input: [2, 3, 16, 16]) { device in
            try PreActResNet(.d18, classes: 10, width: 8, initializer: Initializer(device: device, seed: 6))
        }
    }

    /// A few SGD steps on one fixed batch lower its loss.
    private func assertTrains(input: [Int], steps: Int = 6, learningRate: Float = 0.05,
                              file: StaticString = #filePath, line: UInt = #line,
                              _ make: (Device) throws -> ImageModel) throws {
        let device = try ModelTestDevice.get()
        let model = try make(device)
        var rng = SplitMix64(seed: 42)
        let x = try Tensor(shape: input, values: rng.uniformArray(count: input.reduce(1, *), bound: 1), on: device)
        let labels = ClassLabels((0..<input[0]).map { $0 % 10 })
        let sgd = try SGD(model.namedParameters(), configuration: SGDConfiguration(learningRate: learningRate, momentum: 0.9))
        var losses: [Float] = []
        for _ in 0..<steps {
            model.zeroGrad()
            let loss = try softmaxCrossEntropy(model(x), labels: labels)
            try loss.backward()
            try sgd.step()
            losses.append(try loss.toArray()[0])
        }
        XCTAssertTrue(losses.allSatisfy(\.isFinite), "\(losses)", file: file, line: line)
        XCTAssertLessThan(losses.last!, losses.first!, "\(losses)", file: file, line: line)
    }
}
