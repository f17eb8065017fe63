import Clover
import CloverConformance
import CloverRuntime
import XCTest

/// Activations, pooling, SE scale, dropout and layout ops: their conformance
/// sweeps, plus properties the sweep cannot see (Philox known answers, keep
/// statistics, tie routing, saturation, argument errors).
final class ActivationPoolingTests: XCTestCase {
    private func cases(_ ops: Set<String>) -> [ConformanceCase] {
        ConformanceSuite.allCases().filter { ops.contains($0.op) }
    }

    // MARK: Sweeps

    func testActivationSweep() throws {
        try assertConformance(cases(["silu", "sigmoid", "tanh", "gelu"]))
    }

    func testPoolingSweep() throws {
        try assertConformance(cases(["maxpool2d", "avgpool2d", "global_avgpool", "channel_scale"]))
    }

    func testDropoutSweep() throws {
        try assertConformance(cases(["dropout", "stochastic_depth"]))
    }

    func testLayoutSweep() throws {
        try assertConformance(cases(["concat", "split", "strided_copy"]))
    }

    // MARK: Activations

    /// Values against PyTorch (float64 evaluations of the same definitions).
    func testActivationKnownValues() throws {
        for device in [Device.reference, try TestDevice.get()] {
            let x = try Tensor(shape: [3], values: [-1, 0.5, 2], on: device)
            let expected: [(Tensor, [Double])] = [
                (try silu(x), [-0.2689414213699951, 0.3112296656009273, 1.7615941559557649]),
                (try sigmoid(x), [0.2689414213699951, 0.6224593312018546, 0.8807970779778823]),
                (try Clover.tanh(x), [-0.7615941559557649, 0.46211715726000974, 0.9640275800758169]),
                (try gelu(x), [-0.15865525393145707, 0.34573123063700656, 1.9544997361036416]),
            ]
            for (y, values) in expected {
                for (a, e) in zip(try y.toArray(), values) { XCTAssertEqual(Double(a), e, accuracy: 2e-6, "\(device)") }
            }
        }
    }

    /// ±100 and beyond saturate to exact limits with finite gradients.
    func testActivationsSaturateWithoutOverflow() throws {
        let device = try TestDevice.get()
        let values: [Float] = [-1000, -100, -88.8, 88.8, 100, 1000]
        let x = try Tensor(shape: [6], values: values, on: device)
        let s = try sigmoid(x).toArray()
        // sigmoid(-100) = 3.7e-44 is a float subnormal: kept, or flushed to 0 by devices without
        // subnormals; never NaN.
        XCTAssertTrue(s[1] >= 0 && s[1] < 1e-37, "sigmoid(-100) = \(s[1])")
        XCTAssertEqual(s[4], 1)
        XCTAssertEqual(s[0], 0)
        XCTAssertEqual(s[5], 1)
        let dy = try Tensor.full([6], value: 1, on: device)
        for kind in ActivationKind.allCases {
            let y = try apply1(Activation(kind), [x]).toArray()
            let dx = try apply1(ActivationBackward(kind), [dy, x]).toArray()
            XCTAssertTrue((y + dx).allSatisfy(\.isFinite), "\(kind): \(y) \(dx)")
            XCTAssertEqual(dx[1], 0, accuracy: 1e-30, "\(kind)' at -100")
            XCTAssertEqual(dx[4], kind == .silu || kind == .gelu ? 1 : 0, accuracy: 1e-30, "\(kind)' at 100")
        }
    }

    // MARK: Pooling

    /// Equal values in a window: the first in scan order takes the max and
    /// the whole gradient, on both devices.
    func testMaxPoolTiesGoToTheFirstMaximum() throws {
        for device in [Device.reference, try TestDevice.get()] {
            // 2x2 s2 over a constant 4x4: each window's top-left element wins.
            let x = try Tensor.full([1, 1, 4, 4], value: 3, on: device)
            let dy = try Tensor(shape: [1, 1, 2, 2], values: [1, 2, 3, 4], on: device)
            let dx = try apply1(MaxPooling2DBackward(PoolWindow(kernel: 2)), [dy, x]).toArray()
            XCTAssertEqual(dx, [1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 0, 0], "\(device)")
            // 3x3 s2 pad 1 over a constant 3x3: windows start in the padding, so the first real element
            // of each window wins: (0,0) for the top-left window, (0,1) and (1,0) for its neighbours.
            let x3 = try Tensor.full([1, 1, 3, 3], value: -2, on: device)
            let dy3 = try Tensor(shape: [1, 1, 2, 2], values: [1, 10, 100, 1000], on: device)
            let dx3 = try apply1(MaxPooling2DBackward(PoolWindow(kernel: 3, stride: 2, padding: 1)), [dy3, x3]).toArray()
            XCTAssertEqual(dx3, [1, 10, 0, 100, 1000, 0, 0, 0, 0], "\(device)")
            XCTAssertEqual(try maxPool2d(x3, kernel: 3, stride: 2, padding: 1).toArray(), [-2, -2, -2, -2])
        }
    }

    /// Finite differences of max pooling on inputs that are well separated by
    /// construction (a permutation of integers), so no step can move an argmax.
    func testMaxPoolGradientOnSeparatedValues() throws {
        let device = try TestDevice.get()
        let shape = [2, 3, 7, 5]
        let n = shape.reduce(1, *)
        var rng = SeededGenerator(seed: 7)
        let values = (0..<n).map { Float($0) }.shuffled(using: &rng)
        let window = PoolWindow(kernel: 3, stride: 2, padding: 1)
        let ref = try Tensor(shape: shape, values: values, on: .reference)
        let y = try maxPool2d(ref, kernel: 3, stride: 2, padding: 1)
        let cot = (0..<y.count).map { _ in Float.random(in: -1...1, using: &rng) }
        let dx = try apply1(MaxPooling2DBackward(window), [try Tensor(shape: y.shape, values: cot), ref]).toArray()
        let primitive = MaxPooling2D(window)
        func objective(_ v: [Float]) throws -> Double {
            let out = try primitive.evalReference([v], shapes: [shape])[0]
            return zip(out, cot).map { Double($0) * Double($1) }.reduce(0, +)
        }
        for j in 0..<n {
            var plus = values, minus = values
            plus[j] += 0.25
            minus[j] -= 0.25
            XCTAssertEqual((try objective(plus) - objective(minus)) / 0.5, Double(dx[j]), accuracy: 1e-6, "element \(j)")
        }
        let devDx = try apply1(MaxPooling2DBackward(window),
                               [try Tensor(shape: y.shape, values: cot, on: device), try ref.to(device)]).toArray()
        XCTAssertEqual(devDx, dx)
    }

    func testSqueezeExcitationBlock() throws {
        // x · sigmoid(global_avgpool(x)) per channel, on both devices.
        let values: [Float] = (0..<(2 * 3 * 4 * 5)).map { Float($0 % 11) / 5 - 1 }
        var results: [[Float]] = []
        for device in [Device.reference, try TestDevice.get()] {
            let x = try Tensor(shape: [2, 3, 4, 5], values: values, on: device)
            results.append(try channelScale(x, by: try sigmoid(try globalAvgPool2d(x))).toArray())
        }
        for (a, b) in zip(results[0], results[1]) { XCTAssertEqual(a, b, accuracy: 1e-6) }
    }

    // MARK: Dropout

    /// Random123's published known-answer vectors for Philox4x32-10.
    func testPhiloxKnownAnswers() {
        XCTAssertEqual(Philox.philox4x32_10(SIMD4(0, 0, 0, 0), key: SIMD2(0, 0)),
                       SIMD4(0x6627_E8D5, 0xE169_C58D, 0xBC57_AC4C, 0x9B00_DBD8))
        XCTAssertEqual(Philox.philox4x32_10(SIMD4(repeating: 0xFFFF_FFFF), key: SIMD2(repeating: 0xFFFF_FFFF)),
                       SIMD4(0x408F_276D, 0x41C8_3B0E, 0xA20B_C7C6, 0x6D54_51FD))
        XCTAssertEqual(Philox.philox4x32_10(SIMD4(0x243F_6A88, 0x85A3_08D3, 0x1319_8A2E, 0x0370_7344),
                                            key: SIMD2(0xA409_3822, 0x299F_31D0)),
                       SIMD4(0xD16C_FE09, 0x94FD_CCEB, 0x5001_E420, 0x2412_6EA1))
    }

    /// On a large tensor the kept fraction is 1 − p within 5 standard
    /// deviations, kept values are x / (1 − p), and the mask equals the host's.
    func testDropoutKeepFraction() throws {
        let device = try TestDevice.get()
        let n = 1 << 20
        for p in [0.1, 0.5, 0.85] as [Float] {
            let x = try Tensor.full([n], value: 1, on: device)
            let y = try dropout(x, probability: p, seed: 2024, training: true).toArray()
            let kept = y.filter { $0 != 0 }
            let q = 1 - Double(p)
            let sigma = (Double(n) * q * (1 - q)).squareRoot()
            XCTAssertLessThan(abs(Double(kept.count) - Double(n) * q), 5 * sigma, "p \(p): kept \(kept.count) of \(n)")
            let scale = Float(1 / q)
            XCTAssertTrue(kept.allSatisfy { $0 == scale }, "p \(p)")
            // The device mask is the host Philox mask.
            for i in stride(from: 0, to: n, by: 4099) {
                let keep = Philox.draw(seed: 2024, stream: Philox.dropoutStream, index: UInt64(i))
                    >= UInt32((Double(p) * 4_294_967_296).rounded())
                XCTAssertEqual(y[i] != 0, keep, "element \(i)")
            }
        }
    }

    func testStochasticDepthKeepFraction() throws {
        let device = try TestDevice.get()
        let samples = 20_000, p: Float = 0.2
        let x = try Tensor.full([samples, 3], value: 2, on: device)
        let y = try stochasticDepth(x, probability: p, seed: 99, training: true).toArray()
        var kept = 0
        for s in 0..<samples {
            let row = Array(y[(3 * s)..<(3 * s + 3)])
            XCTAssertTrue(row == [0, 0, 0] || row == [2.5, 2.5, 2.5], "sample \(s): \(row)")
            if row[0] != 0 { kept += 1 }
        }
        let q = 1 - Double(p)
        XCTAssertLessThan(abs(Double(kept) - Double(samples) * q), 5 * (Double(samples) * q * (1 - q)).squareRoot())
    }

    func testDropoutModesAndSeeds() throws {
        let device = try TestDevice.get()
        let x = try Tensor.full([4096], value: 1, on: device)
        XCTAssertTrue(try dropout(x, probability: 0.5, seed: 1, training: false) === x)
        XCTAssertTrue(try dropout(x, probability: 0, seed: 1, training: true) === x)
        XCTAssertTrue(try stochasticDepth(x, probability: 0.5, seed: 1, training: false) === x)
        let a = try dropout(x, probability: 0.5, seed: 1, training: true).toArray()
        let b = try dropout(x, probability: 0.5, seed: 1, training: true).toArray()
        let c = try dropout(x, probability: 0.5, seed: 2, training: true).toArray()
        XCTAssertEqual(a, b, "a seed reproduces its mask")
        XCTAssertNotEqual(a, c, "another seed gives another mask")
        // The gradient regenerates the forward mask.
        let primitive = InvertedDropout(probability: 0.5, seed: 1)
        let g = try primitive.vjp(inputs: [x], outputs: [], cotangents: [x])[0]!.toArray()
        XCTAssertEqual(g, a)
    }

    // MARK: Layout

    func testPermuteAndConcatValues() throws {
        for device in [Device.reference, try TestDevice.get()] {
            // [1, 2, 2, 3] NCHW → NHWC.
            let x = try Tensor(shape: [1, 2, 2, 3], values: (0..<12).map(Float.init), on: device)
            let nhwc = try permute(x, [0, 2, 3, 1])
            XCTAssertEqual(nhwc.shape, [1, 2, 3, 2])
            XCTAssertEqual(try nhwc.toArray(), [0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11])
            let h = try Tensor.full([1, 1, 2, 3], value: -1, on: device)
            let xh = try concat([x, h])
            XCTAssertEqual(xh.shape, [1, 3, 2, 3])
            XCTAssertEqual(try xh.toArray(), (0..<12).map(Float.init) + [-1, -1, -1, -1, -1, -1])
            let parts = try split(xh, sizes: [2, 1])
            XCTAssertEqual(try parts[0].toArray(), try x.toArray())
            XCTAssertEqual(try parts[1].toArray(), try h.toArray())
        }
    }

    // MARK: Errors

    func testBadArgumentsNameTheOp() throws {
        for device in [Device.reference, try TestDevice.get()] {
            let x = try Tensor.zeros([1, 2, 5, 5], on: device)
            assertError(try maxPool2d(x, kernel: 3, padding: 2), ["maxpool2d", "padding"])
            assertError(try avgPool2d(x, kernel: 7), ["avgpool2d", "1x2x5x5", "smaller"])
            assertError(try maxPool2d(try Tensor.zeros([5, 5], on: device), kernel: 2), ["maxpool2d", "5x5", "rank 4"])
            assertError(try avgPool2d(x, kernel: 2, stride: 0), ["avgpool2d", "stride"])
            assertError(try channelScale(x, by: try Tensor.zeros([1, 2], on: device)), ["channel_scale", "1x2x5x5", "1x2"])
            assertError(try dropout(x, probability: 1, seed: 0, training: true), ["dropout", "probability 1.0"])
            assertError(try dropout(x, probability: -0.1, seed: 0, training: false), ["dropout", "[0, 1)"])
            assertError(try stochasticDepth(x, probability: 1.5, seed: 0, training: true), ["stochastic_depth"])
            assertError(try concat([x, try Tensor.zeros([1, 2, 5, 4], on: device)]), ["concat", "1x2x5x5", "1x2x5x4"])
            assertError(try concat([x, x], axis: 4), ["concat", "axis 4"])
            assertError(try split(x, sizes: [1, 2]), ["split", "add up to 2"])
            assertError(try stridedCopy(x, shape: [2, 30], strides: [30, 1]), ["strided_copy", "reaches element 59"])
            assertError(try permute(x, [0, 1, 1, 3]), ["permute", "not a permutation"])
            let flat = try Tensor.zeros([13], on: device)
            let windows = StridedView(shape: [11, 3], strides: [1, 1])
            let y = try apply1(StridedCopy(windows), [flat])
            assertError(try StridedCopy(windows).vjp(inputs: [flat], outputs: [y], cotangents: [y]),
                        ["strided_copy_backward", "repeats input elements"])
            assertError(try apply1(MaxPooling2DBackward(PoolWindow(kernel: 2)), [x, x]), ["maxpool2d_backward", "dy must be 1x2x2x2"])
        }
    }

    private func assertError(_ body: @autoclosure () throws -> Any, _ fragments: [String],
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            for fragment in fragments {
                XCTAssertTrue("\(error)".contains(fragment), "'\(error)' lacks '\(fragment)'", file: file, line: line)
            }
        }
    }
}
