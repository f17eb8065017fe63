import Clover
import CloverConformance
import CloverNN
import CloverRuntime
import CloverTestSupport
import XCTest

/// A new device on the OpenCL device under test (see ``TestSupport``).
func openCLDevice() throws -> Device { try TestSupport.newDevice() }

private final class Inner: Module {
    let weight: Parameter
    let runningMean: StateTensor
    init(_ device: Device, _ values: [Float]) throws {
        weight = Parameter(try Tensor(shape: [2, 2], values: values, on: device))
        runningMean = StateTensor(try Tensor.zeros([2], on: device))
    }
}

private final class TinyNet: Module {
    let fc1: Parameter
    let inner: Inner
    let blocks: [Inner]
    let missing: Inner? = nil
    init(_ device: Device) throws {
        fc1 = Parameter(try Tensor(shape: [2], values: [0.5, -0.25], on: device))
        inner = try Inner(device, [1, 2, 3, 4])
        blocks = [try Inner(device, [0.1, 0.2, 0.3, 0.4]), try Inner(device, [-1, 1, -1, 1])]
    }

    /// y = blocks[1]·blocks[0]·inner·x, plus fc1 ⊙ row sums, as a scalar loss.
    func loss(_ x: Tensor) throws -> Tensor {
        var h = try matmul(inner.weight.tensor, x)
        for b in blocks { h = try matmul(b.weight.tensor, h) }
        let s = try mul(h.reshaped([2]), fc1.tensor)
        return try matmul(s.reshaped([1, 2]), s.reshaped([2, 1])).reshaped([])
    }
}

final class ModuleTests: XCTestCase {
    func testParametersAndStatesAreNamedLikeAStateDict() throws {
        let net = try TinyNet(.reference)
        XCTAssertEqual(net.namedParameters().map(\.0), ["fc1", "inner.weight", "blocks.0.weight", "blocks.1.weight"])
        XCTAssertEqual(net.namedStates().map(\.0), ["inner.running_mean", "blocks.0.running_mean", "blocks.1.running_mean"])
        XCTAssertEqual(net.parameterCount, 2 + 4 * 3)
        net.eval()
        XCTAssertFalse(net.blocks[1].isTraining)
        net.train()
        XCTAssertTrue(net.inner.isTraining)
    }

    /// Three optimiser steps on the OpenCL device (flat arena, one launch a
    /// step) give the same parameters as on the CPU reference.
    func testOptimisersAgreeAcrossDevices() throws {
        let gpu = try openCLDevice()
        for useAdam in [false, true] {
            var finals: [[Float]] = []
            for device in [Device.reference, gpu] {
                let net = try TinyNet(device)
                let x = try Tensor(shape: [2, 1], values: [0.3, -0.7], on: device)
                let sgd = useAdam ? nil : try SGD(net.namedParameters(), configuration: SGDConfiguration(
                    learningRate: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-2))
                let adam = useAdam ? try AdamW(net.namedParameters(), configuration: AdamWConfiguration(learningRate: 0.01)) : nil
                for _ in 0..<3 {
                    net.zeroGrad()
                    try net.loss(x).backward()
                    try sgd?.step()
                    try adam?.step()
                }
                finals.append(try net.parameters().flatMap { try $0.tensor.toArray() })
                if let ctx = device.openCL {
                    XCTAssertEqual(ctx.launchCounts[useAdam ? "optimizer/adamw_update" : "optimizer/sgd_update"].map { $0 >= 3 }, true)
                }
            }
            for (a, b) in zip(finals[0], finals[1]) { XCTAssertEqual(a, b, accuracy: 1e-5, "adam \(useAdam)") }
            XCTAssertNotEqual(finals[0], try TinyNet(.reference).parameters().flatMap { try $0.tensor.toArray() })
        }
    }

    func testSchedules() {
        let step = StepSchedule(base: 0.1, milestones: [100, 150])
        XCTAssertEqual(step.learningRate(epoch: 0, progress: 0), 0.1)
        XCTAssertEqual(step.learningRate(epoch: 100, progress: 0), 0.01, accuracy: 1e-9)
        XCTAssertEqual(step.learningRate(epoch: 160, progress: 0.5), 0.001, accuracy: 1e-9)
        let cosine = CosineSchedule(base: 1, epochs: 10, warmupEpochs: 1)
        XCTAssertEqual(cosine.learningRate(epoch: 0, progress: 0.5), 0.5, accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(epoch: 1, progress: 0), 1, accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(epoch: 5, progress: 0.5), 0.5, accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(epoch: 10, progress: 0), 0, accuracy: 1e-6)
        let warm = WarmupSchedule(base: 2, warmupEpochs: 2)
        XCTAssertEqual(warm.learningRate(epoch: 1, progress: 0), 1, accuracy: 1e-6)
        XCTAssertEqual(warm.learningRate(epoch: 3, progress: 0), 2)
    }
}

final class OptimizerStateTests: XCTestCase {
    /// Saving after two steps and resuming into a fresh optimiser gives the
    /// same third step as never stopping.
    func testResumeContinuesExactly() throws {
        let device = try openCLDevice()
        for useAdam in [false, true] {
            func make(_ net: TinyNet) throws -> Optimizer {
                useAdam ? try AdamW(net.namedParameters(), configuration: AdamWConfiguration(learningRate: 0.01))
                    : try SGD(net.namedParameters(), configuration: SGDConfiguration(learningRate: 0.05, momentum: 0.9))
            }
            let x = try Tensor(shape: [2, 1], values: [0.3, -0.7], on: device)
            func step(_ net: TinyNet, _ opt: Optimizer) throws {
                net.zeroGrad()
                try net.loss(x).backward()
                try opt.step()
            }
            let a = try TinyNet(device), optA = try make(a)
            for _ in 0..<3 { try step(a, optA) }
            let b = try TinyNet(device), optB = try make(b)
            for _ in 0..<2 { try step(b, optB) }
            let modelState = try b.stateDict(), optState = try optB.stateDict()
            let c = try TinyNet(device), optC = try make(c)
            try c.loadStateDict(modelState)
            try optC.loadStateDict(SafeTensors.parse(optState.encoded(), path: "memory"))
            try step(c, optC)
            let pa = try a.parameters().flatMap { try $0.tensor.toArray() }
            let pc = try c.parameters().flatMap { try $0.tensor.toArray() }
            for (u, v) in zip(pa, pc) { XCTAssertEqual(u, v, accuracy: 1e-6, "adam \(useAdam)") }
        }
    }
}
