import Clover
import CloverModels
import CloverNN
import CloverRuntime
import CloverTestSupport
import XCTest

/// A new device on the OpenCL device under test (see ``TestSupport``).
private func openCLDevice() throws -> Device { try TestSupport.newDevice() }

final class EfficientNetTests: XCTestCase {
    /// torchvision's `num_params` for efficientnet_b0…b7 (1000 classes).
    func testParameterCountsMatchTorchvision() throws {
        let expected: [EfficientNetVariant: Int] = [
            .b0: 5_288_548, .b1: 7_794_184, .b2: 9_109_994, .b3: 12_233_232,
            .b4: 19_341_616, .b5: 30_389_784, .b6: 43_040_704, .b7: 66_347_960,
        ]
        for v in EfficientNetVariant.allCases {
            let census = try ModelZoo.spec(named: "efficientnet-\(v.rawValue)").census()
            XCTAssertEqual(census.parameters, expected[v], "\(v)")
            XCTAssertGreaterThan(census.multiplyAdds, 0)
        }
        // Multiply-adds at the native resolution, torchvision's `_ops` (GFLOPS as multiply-adds):
        // B0 0.386 at 224², B7 37.746 at 600².
        let b0 = try ModelZoo.spec(named: "efficientnet-b0").census().multiplyAdds
        XCTAssertEqual(Double(b0) / 1e9, 0.386, accuracy: 0.001)
        let b7 = try ModelZoo.spec(named: "efficientnet-b7").census().multiplyAdds
        XCTAssertEqual(Double(b7) / 1e9, 37.746, accuracy: 0.001)
    }

    func testStateDictKeysAreTorchvisions() throws {
        let net = try EfficientNet(.b0, initializer: Initializer(device: .meta))
        let shapes = Dictionary(uniqueKeysWithValues: net.namedParameters().map { ($0.0, $0.1.shape) })
        XCTAssertEqual(shapes["features.0.0.weight"], [32, 3, 3, 3])
        XCTAssertEqual(shapes["features.0.1.weight"], [32])
        // Stage 1 has expand ratio 1: block.0 is the depthwise conv, block.1 the SE, block.2 the projection.
        XCTAssertEqual(shapes["features.1.0.block.0.0.weight"], [32, 1, 3, 3])
        XCTAssertEqual(shapes["features.1.0.block.1.fc1.weight"], [8, 32, 1, 1])
        XCTAssertEqual(shapes["features.1.0.block.2.0.weight"], [16, 32, 1, 1])
        // Stage 2: expand 16 → 96, depthwise, SE squeezing to 16/4 = 4, project to 24.
        XCTAssertEqual(shapes["features.2.0.block.0.0.weight"], [96, 16, 1, 1])
        XCTAssertEqual(shapes["features.2.0.block.1.0.weight"], [96, 1, 3, 3])
        XCTAssertEqual(shapes["features.2.0.block.2.fc1.weight"], [4, 96, 1, 1])
        XCTAssertEqual(shapes["features.2.0.block.2.fc2.bias"], [96])
        XCTAssertEqual(shapes["features.2.1.block.3.1.bias"], [24])
        XCTAssertEqual(shapes["features.8.0.weight"], [1280, 320, 1, 1])
        XCTAssertEqual(shapes["classifier.1.weight"], [1000, 1280])
        XCTAssertNil(shapes["features.9.0.weight"])
        let states = net.namedStates().map(\.0)
        XCTAssertTrue(states.contains("features.1.0.block.0.1.running_var"))
        XCTAssertTrue(states.contains("features.8.1.num_batches_tracked"))
    }

    func testVariantDetails() throws {
        let b7 = EfficientNetVariant.b7.configuration
        XCTAssertEqual(b7.stages.map(\.layers), [4, 7, 7, 10, 10, 13, 4])
        XCTAssertEqual(b7.stages.last?.outChannels, 640)
        XCTAssertEqual(b7.batchNormEpsilon, 1e-3)
        XCTAssertEqual(EfficientNetVariant.b0.configuration.batchNormEpsilon, 1e-5)
        XCTAssertEqual(EfficientNetVariant.b3.configuration.channels(32), 40)       // 38.4 → 40
        // Residual blocks and the stochastic-depth ramp 0.2·i/16 over B0's 16 blocks.
        let net = try EfficientNet(.b0, classes: 10, channels: 1, initializer: Initializer(device: .meta))
        let blocks = net.allModules().compactMap { $0 as? MBConv }
        XCTAssertEqual(blocks.count, 16)
        XCTAssertEqual(blocks.map(\.isResidual).filter { $0 }.count, 9)
        XCTAssertEqual(blocks[0].stochasticDepth.probability, 0)
        XCTAssertEqual(blocks[15].stochasticDepth.probability, 0.2 * 15 / 16, accuracy: 1e-7)
        XCTAssertEqual(try net(Tensor.zeros([2, 1, 64, 64], on: .meta)).shape, [2, 10])
    }

    func testCompoundScaling() throws {
        let scaling = CompoundScaling.efficientNet
        let zero = EfficientNetConfiguration.scaled(phi: 0)
        XCTAssertEqual(zero.stages, EfficientNetVariant.b0.configuration.stages, "φ = 0 is B0")
        XCTAssertEqual(zero.resolution, 224)
        XCTAssertEqual(try EfficientNet(zero, initializer: Initializer(device: .meta)).parameterCount, 5_288_548)
        XCTAssertEqual(scaling.scaledChannels(13, phi: 0), 13)
        XCTAssertEqual(scaling.scaledDepth(3, phi: 0), 3)

        let m = scaling.multipliers(phi: 1)
        XCTAssertEqual(m.depth, 1.2, accuracy: 1e-12)
        XCTAssertEqual(m.width, 1.1, accuracy: 1e-12)
        XCTAssertEqual(m.resolution, 1.15, accuracy: 1e-12)
        let one = EfficientNetConfiguration.scaled(phi: 1)
        XCTAssertEqual(one.resolution, 258)                                          // 224·1.15 = 257.6
        for (s, b) in zip(one.stages, EfficientNet.baselineStages) {
            XCTAssertEqual(s.outChannels, makeDivisible(Double(b.outChannels) * 1.1))
            XCTAssertEqual(s.outChannels % 8, 0)
            XCTAssertEqual(s.layers, Int((Double(b.layers) * 1.2).rounded(.up)))
        }
        XCTAssertEqual(one.stages.map(\.layers), [2, 3, 3, 4, 4, 5, 2])
        XCTAssertEqual(one.stages.map(\.outChannels), [16, 24, 48, 88, 120, 208, 352])
        let two = scaling.multipliers(phi: 2)
        XCTAssertEqual(two.depth, 1.44, accuracy: 1e-12)
        XCTAssertEqual(scaling.scaledResolution(224, phi: 2), 296)                   // 224·1.3225 = 296.2
        // torchvision's rounding: at least 8, never more than 10 % below the value.
        XCTAssertEqual(makeDivisible(3), 8)
        XCTAssertEqual(makeDivisible(19.36), 24)
        XCTAssertEqual(makeDivisible(70.4), 72)
    }

    /// A tiny EfficientNet (width 0.25, one block per stage, 64x64) gives the
    /// same loss and gradients on the OpenCL device as on the CPU reference:
    /// depthwise convs, SE, SiLU and the residual all run through autograd.
    func testTinyNetworkGradientsMatchTheReference() throws {
        let gpu = try openCLDevice()
        let config = EfficientNetConfiguration(width: 0.25, depth: 0.3, resolution: 32, dropout: 0, stochasticDepth: 0)
        var results: [[Float]] = []
        for device in [Device.reference, gpu] {
            let net = try EfficientNet(config, classes: 5, initializer: Initializer(device: device, seed: 2))
            var rng = SplitMix64(seed: 4)
            let x = try Tensor(shape: [2, 3, 64, 64], values: rng.uniformArray(count: 2 * 3 * 4096, bound: 1), on: device)
            let loss = try softmaxCrossEntropy(net(x), labels: ClassLabels([1, 4]))
            try loss.backward()
            results.append(try [loss.toArray()[0]] + net.parameters().flatMap { try XCTUnwrap($0.grad).toArray() })
        }
        XCTAssertEqual(results[0].count, results[1].count)
        // Float32 sums on the device against Double sums in the reference, compounded through
        // 24 training-mode batch norms: the worst gradient (a depthwise weight) differs by ~1.4e-4.
        let worst = zip(results[0], results[1]).map { abs($0 - $1) / max(1, abs($0)) }.max() ?? 0
        XCTAssertLessThan(worst, 1e-3)
    }
}
