@testable import Clover
@testable import CloverNN
import CloverRuntime
import XCTest

/// A net whose parameters reach the gradient arena every way they can:
/// written in place by their producing op (batch norm, linear, embedding),
/// copied in (a weight used twice, through matmul), or not at all (unused).
private final class ArenaNet: Module {
    let gamma: Parameter
    let beta: Parameter
    let unusedA: Parameter
    let unusedB: Parameter
    let weight: Parameter
    let bias: Parameter
    let shared: Parameter
    let table: Parameter

    init(_ device: Device) throws {
        func p(_ shape: [Int], _ seed: Float) throws -> Parameter {
            let count = shape.reduce(1, *)
            return Parameter(try Tensor(shape: shape, values: (0..<count).map { Float(($0 * 7 + 3) % 11) / 11 - 0.4 + seed },
                                        on: device))
        }
        gamma = try p([3], 1)
        beta = try p([3], 0.1)
        unusedA = try p([5], 0.2)
        unusedB = try p([2], -0.3)
        weight = try p([4, 12], 0)
        bias = try p([4], 0.05)
        shared = try p([4, 4], -0.1)
        table = try p([6, 4], 0.15)
    }

    func loss(_ x: Tensor, ids: TokenIDs) throws -> Tensor {
        let y = try batchNorm(x, gamma: gamma.tensor, beta: beta.tensor).y
        var z = try linear(y.reshaped([2, 12]), weight: weight.tensor, bias: bias.tensor)
        z = try add(z, embedding(table.tensor, ids: ids))
        z = try matmul(matmul(z, shared.tensor), shared.tensor)
        return try sum(mul(z, z), axes: [0, 1])
    }
}

final class GradientArenaTests: XCTestCase {
    /// Backward writes every gradient into the optimiser's arena: after each
    /// pass the gradients, and after each step the parameters, match the
    /// CPU reference (which has no arena), including a second backward
    /// without zeroGrad (accumulation) and parameters that get no gradient.
    func testGradientsAccumulateInTheArenaAndMatchTheReference() throws {
        let gpu = try openCLDevice()
        var grads: [[[Float]]] = []
        var finals: [[Float]] = []
        for device in [Device.reference, gpu] {
            let net = try ArenaNet(device)
            let x = try Tensor(shape: [2, 3, 2, 2], values: (0..<24).map { Float(($0 * 5) % 13) / 6 - 1 }, on: device)
            let ids = try TokenIDs([1, 4], shape: [2])
            let sgd = try SGD(net.namedParameters(), configuration: SGDConfiguration(
                learningRate: 0.01, momentum: 0.9, weightDecay: 0.1), decay: decayEverything)
            var seen: [[Float]] = []
            for step in 0..<3 {
                net.zeroGrad()
                try net.loss(x, ids: ids).backward()
                if step == 1 { try net.loss(x, ids: ids).backward() }
                if device.openCL != nil {
                    let arena = try XCTUnwrap(sgd.arena.gradientArena)
                    for p in net.parameters() {
                        guard let g = p.grad else { continue }
                        XCTAssertTrue(g.deviceView!.buffer === arena.gradients.deviceView!.buffer,
                                      "a gradient outside the arena")
                    }
                }
                XCTAssertNil(net.unusedA.grad)
                seen.append(try net.parameters().flatMap { try $0.grad?.toArray() ?? [] })
                try sgd.step()
                if device.openCL != nil {
                    // The arena holds exactly the gradients, zeros for the unused parameters.
                    let expected = try net.parameters().flatMap { try $0.grad?.toArray() ?? [Float](repeating: 0, count: $0.tensor.count) }
                    XCTAssertEqual(try sgd.arena.gradients!.toArray(), expected)
                }
            }
            grads.append(seen)
            finals.append(try net.parameters().flatMap { try $0.tensor.toArray() })
        }
        for (a, b) in zip(grads[0], grads[1]) {
            XCTAssertEqual(a.count, b.count)
            for (u, v) in zip(a, b) { XCTAssertEqual(u, v, accuracy: 1e-3 * max(1, abs(u))) }
        }
        for (a, b) in zip(finals[0], finals[1]) { XCTAssertEqual(a, b, accuracy: 1e-4 * max(1, abs(a))) }
    }

    /// In steady state a step zero-fills only the unused parameters' slices
    /// (one fill for the adjacent pair); missing cotangents (batch norm's
    /// statistics) cost no fill at all.
    func testSteadyStateStepFillsOnlyUnusedSlices() throws {
        let gpu = try openCLDevice()
        let context = try XCTUnwrap(gpu.openCL)
        let net = try ArenaNet(gpu)
        let x = try Tensor(shape: [2, 3, 2, 2], values: (0..<24).map { Float($0) / 10 }, on: gpu)
        let ids = try TokenIDs([0, 5], shape: [2])
        let adam = try AdamW(net.namedParameters(), configuration: AdamWConfiguration(learningRate: 0.01))
        func step() throws {
            net.zeroGrad()
            try net.loss(x, ids: ids).backward()
            try adam.step()
        }
        try step()
        let before = context.launchCounts
        try step()
        let after = context.launchCounts
        func delta(_ name: String) -> Int { (after[name] ?? 0) - (before[name] ?? 0) }
        // The loss's seed of ones, and one fill for the adjacent unused pair.
        XCTAssertEqual(delta("elementwise/fill_value"), 2)
        XCTAssertEqual(delta("optimizer/adamw_update"), 1)
    }

    /// A parameter passed twice to one op whose gradients are written into
    /// offered destinations (batch norm with gamma = beta) gets the sum of
    /// both gradients: autograd offers its slice to the first occurrence
    /// only, so one kernel does not write both gradients over each other,
    /// and a backward with no copy in steady state still holds.
    func testLeafPassedTwiceToOneOpGetsBothGradients() throws {
        let gpu = try openCLDevice()
        var results: [[Float]] = []
        for device in [Device.reference, gpu] {
            let shared = Parameter(try Tensor(shape: [3], values: [0.7, -0.4, 1.3], on: device))
            let x = try Tensor(shape: [2, 3, 2, 2], values: (0..<24).map { Float(($0 * 5) % 13) / 6 - 1 }, on: device)
            let weights = try Tensor(shape: [2, 3, 2, 2], values: (0..<24).map { Float(($0 * 3) % 7) / 4 - 0.5 }, on: device)
            let sgd = try SGD([("shared", shared)], configuration: SGDConfiguration(learningRate: 0.01))
            func loss() throws -> Tensor {
                let y = try batchNorm(x, gamma: shared.tensor, beta: shared.tensor).y
                return try sum(mul(y, weights), axes: [0, 1, 2, 3])
            }
            shared.tensor.zeroGrad()
            try loss().backward()
            let g = try XCTUnwrap(shared.grad)
            if let arena = sgd.arena.gradientArena {
                XCTAssertTrue(g.deviceView!.buffer === arena.gradients.deviceView!.buffer, "a gradient outside the arena")
            }
            results.append(try g.toArray())
            try sgd.step()
        }
        for (u, v) in zip(results[0], results[1]) { XCTAssertEqual(u, v, accuracy: 1e-4 * max(1, abs(u))) }
        // dbeta is the weights' per-channel sum; the shared gradient must include it.
        XCTAssertNotEqual(results[0][0], 0)
    }
}
