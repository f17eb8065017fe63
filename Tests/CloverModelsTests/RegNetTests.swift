import Clover
import CloverModels
import CloverNN
import CloverRuntime
import XCTest

/// The OpenCL device under test; skips only when no OpenCL platform exists.
private func openCLDevice() throws -> Device {
    let device: Device
    do {
        device = try Device.select()
    } catch RuntimeError.noPlatform {
        throw XCTSkip("no OpenCL platform is installed")
    }
    if device.isReference { throw XCTSkip("CLOVER_DEVICE selects the CPU reference") }
    return device
}

/// A RegNet small enough for the CPU reference: a 4-channel stem and two
/// stages (4 and 8 channels) of two blocks each, so the cell runs over two
/// blocks in each stage and H crosses one stage transition.
private func tinyConfiguration(_ kind: RegulatorKind?, depths: [Int] = [2, 2]) -> RegNetConfiguration {
    RegNetConfiguration(block: .basic, stem: .cifar, stemChannels: 4, widths: [4, 8], depths: depths, regulator: kind,
                        resolution: 8)
}

final class RegNetTests: XCTestCase {
    // MARK: Parameter counts by hand

    /// conv 3x3 in→n and BN, conv 3x3 (2n if regulated)→n and BN, plus a 1x1
    /// projection + BN when the shape changes.
    private func basicBlock(_ input: Int, _ n: Int, regulated: Bool) -> Int {
        let conv1 = input * n * 9 + 2 * n
        let conv2 = (regulated ? 2 * n : n) * n * 9 + 2 * n
        let projection = input != n ? input * n + 2 * n : 0
        return conv1 + conv2 + projection
    }

    /// CIFAR RegNet-20 (three stages of three basic blocks, 16/32/64) with the
    /// regulator on every stage; `cell(n)` is one stage's cell, `states` the
    /// number of carried states (H, and C for ConvLSTM), each entering stages
    /// 2 and 3 through 1x1 conv (n/2·n) + BN (2n).
    private func regNet20(cell: (Int) -> Int, states: Int, regulated: Bool = true) -> Int {
        var total = 3 * 16 * 9 + 2 * 16                                  // stem conv + BN
        var input = 16
        for (k, n) in [16, 32, 64].enumerated() {
            total += basicBlock(input, n, regulated: regulated) + 2 * basicBlock(n, n, regulated: regulated)
            if regulated {
                total += cell(n)
                if k > 0 { total += states * (n / 2 * n + 2 * n) }
            }
            input = n
        }
        return total + 64 * 10 + 10                                     // fc
    }

    func testParameterCountsAreTheHandComputedOnes() throws {
        // The cell: grouped 1x1 (2 weights + 1 bias per gate channel) and depthwise
        // 3x3 (9 + 1): 13 per gate channel; LSTM has 4 gates, GRU 2 plus the
        // candidate's 13 per channel, RNN 1.
        let lstm = regNet20(cell: { 13 * 4 * $0 }, states: 2)
        let gru = regNet20(cell: { 13 * 2 * $0 + 13 * $0 }, states: 1)
        let rnn = regNet20(cell: { 13 * $0 }, states: 1)
        let plain = regNet20(cell: { _ in 0 }, states: 0, regulated: false)
        XCTAssertEqual(plain, 272_474)          // the paper's ResNet-20 "0.273M" (projection shortcuts)
        XCTAssertEqual(lstm, 428_954)
        XCTAssertEqual(gru, 424_746)
        XCTAssertEqual(try ModelZoo.spec(named: "regnet20-lstm").census().parameters, lstm)
        XCTAssertEqual(try ModelZoo.spec(named: "regnet20-gru").census().parameters, gru)
        XCTAssertEqual(try ModelZoo.spec(named: "regnet20-rnn").census().parameters, rnn)
        let meta = Initializer(device: .meta)
        XCTAssertEqual(try RegNet(.cifar(depth: 20, regulator: nil), classes: 10, initializer: meta).parameterCount, plain)
        // Option A shortcuts drop the two projections: 272,474 − (16·32 + 64) − (32·64 + 128).
        XCTAssertEqual(try RegNet(.cifar(depth: 20, regulator: nil, shortcut: .zeroPadding), classes: 10,
                                  initializer: meta).parameterCount, 269_722)
        // RegNet(2) (GRU): only stage 2 regulated, H starts at zero there (no transition).
        let stage2 = try RegNet(.cifar(depth: 20, regulator: .convGRU, regulatedStages: [1]), classes: 10, initializer: meta)
        XCTAssertEqual(stage2.parameterCount, plain + 3 * 32 * 32 * 9 + 39 * 32)
        // SE-RegNet-20 (LSTM): per block an SE of n → max(1, n/16) → n, 1x1 convs with bias.
        let se = [16, 32, 64].reduce(0) { t, n in t + 3 * (n * max(1, n / 16) + max(1, n / 16) + max(1, n / 16) * n + n) }
        XCTAssertEqual(try ModelZoo.spec(named: "se-regnet20-lstm").census().parameters, lstm + se)
    }

    func testEveryZooEntryBuildsAndCounts() throws {
        let specs = RegNet.zoo
        XCTAssertEqual(specs.count, 20)
        for spec in specs {
            let census = try spec.census()
            XCTAssertGreaterThan(census.parameters, 0, spec.name)
            XCTAssertGreaterThan(census.multiplyAdds, 0, spec.name)
        }
    }

    func testStateNamesAndSharedCell() throws {
        let net = try RegNet(.cifar(depth: 20, regulator: .convLSTM), classes: 10, initializer: Initializer(device: .meta))
        let names = net.namedParameters().map(\.0)
        XCTAssertEqual(names.count, Set(names).count, "the shared cell is registered once")
        for name in ["conv1.weight", "stages.0.blocks.0.conv1.weight", "stages.0.regulator.pointwise",
                     "stages.0.regulator.depthwise_bias", "stages.1.h_transition.0.weight", "stages.1.c_transition.1.weight",
                     "stages.1.blocks.0.downsample.0.weight", "stages.2.blocks.2.conv2.weight", "fc.weight"] {
            XCTAssertTrue(names.contains(name), name)
        }
        XCTAssertFalse(names.contains("stages.0.h_transition.0.weight"), "H starts at zero in the first regulated stage")
        XCTAssertEqual(net.stages[0].blocks[0].namedParameters().first { $0.0 == "conv2.weight" }?.1.shape, [16, 32, 3, 3])
    }

    func testForwardShapesOnMeta() throws {
        for name in ["regnet20-rnn", "regnet32-gru", "regnet56-lstm", "se-regnet20-gru", "regnet50-lstm"] {
            let spec = try ModelZoo.spec(named: name)
            let model = try spec.make(spec.classes, 3, Initializer(device: .meta))
            let y = try model(Tensor.zeros([2] + spec.inputShape, on: .meta))
            XCTAssertEqual(y.shape, [2, spec.classes], name)
        }
        // Regulator on stages 1 and 3 only: H skips stage 2 through a stride-4, 16 → 64 transition.
        let skip = try RegNet(.cifar(depth: 20, regulator: .convGRU, regulatedStages: [0, 2]), classes: 100, channels: 1,
                              initializer: Initializer(device: .meta))
        XCTAssertEqual(skip.stages[2].hTransition?.namedParameters().first?.1.shape, [64, 16, 1, 1])
        XCTAssertEqual(try skip(Tensor.zeros([3, 1, 32, 32], on: .meta)).shape, [3, 100])
    }

    // MARK: Gradients and training on the OpenCL device

    /// Same model and seed on the CPU reference and the OpenCL device, one
    /// forward and backward: every parameter gradient agrees. Two blocks per
    /// stage share the cell, so the gradient runs back through H (and C) over
    /// both time steps and across the stage transition.
    func testGradientsMatchTheReferenceOverTwoBlocks() throws {
        let gpu = try openCLDevice()
        for kind in RegulatorKind.allCases {
            var grads: [[(String, [Float])]] = []
            var losses: [Float] = []
            for device in [Device.reference, gpu] {
                let net = try RegNet(tinyConfiguration(kind), classes: 3, initializer: Initializer(device: device, seed: 7))
                var rng = SplitMix64(seed: 11)
                let x = try Tensor(shape: [2, 3, 8, 8], values: rng.uniformArray(count: 2 * 3 * 64, bound: 1), on: device)
                let loss = try softmaxCrossEntropy(net(x), labels: ClassLabels([0, 2]))
                try loss.backward()
                losses.append(try loss.toArray()[0])
                grads.append(try net.namedParameters().map { ($0.0, try XCTUnwrap($0.1.grad).toArray()) })
            }
            XCTAssertEqual(losses[0], losses[1], accuracy: 1e-5, "\(kind)")
            for ((name, a), (_, b)) in zip(grads[0], grads[1]) {
                XCTAssertEqual(a.count, b.count)
                let worst = zip(a, b).map { abs($0 - $1) / max(1, abs($0)) }.max() ?? 0
                XCTAssertLessThan(worst, 1e-4, "\(kind) \(name)")
            }
            let cellGrad = grads[0].first { $0.0 == "stages.0.regulator.pointwise" }?.1 ?? []
            XCTAssertGreaterThan(cellGrad.map(abs).max() ?? 0, 0, "\(kind): the cell is trained")
        }
    }

    /// A few SGD steps on a fixed batch lower the loss of a scaled-down RegNet.
    func testSGDLowersTheLoss() throws {
        let gpu = try openCLDevice()
        let net = try RegNet(tinyConfiguration(.convLSTM, depths: [1, 2]), classes: 4,
                             initializer: Initializer(device: gpu, seed: 3))
        var rng = SplitMix64(seed: 5)
        let x = try Tensor(shape: [4, 3, 16, 16], values: rng.uniformArray(count: 4 * 3 * 256, bound: 1), on: gpu)
        let labels = ClassLabels([0, 1, 2, 3])
        let sgd = try SGD(net.namedParameters(), configuration: SGDConfiguration(learningRate: 0.05, momentum: 0.9))
        var losses: [Float] = []
        for _ in 0..<6 {
            net.zeroGrad()
            let loss = try softmaxCrossEntropy(net(x), labels: labels)
            try loss.backward()
            try sgd.step()
            losses.append(try loss.toArray()[0])
        }
        XCTAssertLessThan(losses.last!, losses.first!, "\(losses)")
        XCTAssertTrue(losses.allSatisfy(\.isFinite))
    }

    // MARK: Scaling

    func testCompoundScalingOfTheResNetLikeFamily() throws {
        let base = try RegNetConfiguration.cifar(depth: 20, regulator: nil)
        XCTAssertEqual(base.scaled(phi: 0), base, "φ = 0 is the identity")
        let one = base.scaled(phi: 1)
        // widths ×1.1 to multiples of 8: 17.6 → 16, 35.2 → 32, 70.4 → 72; depths ⌈3·1.2⌉ = 4; 32·1.15 = 36.8 → 37.
        XCTAssertEqual(one.widths, [16, 32, 72])
        XCTAssertEqual(one.stemChannels, 16)
        XCTAssertEqual(one.depths, [4, 4, 4])
        XCTAssertEqual(one.resolution, 37)
        let meta = Initializer(device: .meta)
        let scaled = try RegNet(one, classes: 10, initializer: meta)
        XCTAssertEqual(scaled.stages.map(\.blocks.count), [4, 4, 4])
        XCTAssertEqual(try scaled(Tensor.zeros([1, 3, 37, 37], on: .meta)).shape, [1, 10])
        XCTAssertGreaterThan(scaled.parameterCount, try RegNet(base, classes: 10, initializer: meta).parameterCount)
    }
}
