import Clover
import CloverModels
import CloverNN
import CloverRuntime
import CloverTestSupport
import XCTest

/// The launch budget of a training step, counted where calls enter OpenCL
/// (CLBlast's own kernels and buffers included): what a GPU pays per step
/// whatever its speed.
///
/// Full training steps as `clover train` runs them (upload the batch, zero
/// the gradients, forward, softmax cross-entropy, backward, SGD with
/// momentum and weight decay, read the loss) on the default OpenCL device,
/// at a tiny input size and two batch sizes. After the first step, which
/// builds programs, fills the buffer pool and creates the optimiser state:
/// - the kernel launches do not depend on the batch size (no per-sample loops);
/// - no device buffer is created (Clover's pool and CLBlast's temporary
///   buffers are reused), and no kernel object (CLBlast's per-call kernels
///   come back from the counters' pool);
/// - backward and the optimiser step copy no buffer (gradients accumulate in
///   the optimiser's arena, with no copy per parameter);
/// - the host waits for the device only once, to read the loss.
final class StepBudgetTests: XCTestCase {
    /// Steps per run: the first, then two in steady state.
    private let steps = 3

    func testCIFARResNet20StepBudget() throws {
        try checkBudget(model: "cifar-resnet20", side: 16, batches: (2, 4), launchBudget: 400)
    }

    func testEfficientNetB0StepBudget() throws {
        try checkBudget(model: "efficientnet-b0", side: 32, batches: (2, 4), launchBudget: 1_000)
    }

    /// One model of each family (and each op mix: plain and bottleneck
    /// residuals, grouped and depthwise convolutions, squeeze-and-excitation,
    /// the RegNet cells, batch norm and dropout, linear heads) at a small
    /// input: after the first step no step creates a kernel object. CLBlast's
    /// per-call requests are answered from the interposer's pool; Clover
    /// creates each kernel once with its program.
    func testNoModelCreatesKernelsAfterItsFirstStep() throws {
        let device = try openCLDevice()
        let models: [(String, Int)] = [
            ("lenet5", 28), ("vgg11-bn", 32), ("resnet18", 32), ("resnet50", 32), ("resnext50-32x4d", 32),
            ("wrn-16-8", 16), ("preact-resnet18", 16), ("efficientnet-b1", 32), ("regnet20-gru", 16),
            ("se-regnet20-lstm", 16), ("regnet20-rnn-paper", 16), ("regnet50-lstm", 32),
        ]
        for (name, side) in models {
            let spec = try ModelZoo.spec(named: name)
            let channels = spec.inputShape.first ?? 3
            let run = try stepCounts(model: name, side: side, batch: 2, channels: channels, device: device)
            for (i, step) in run.steps.enumerated().dropFirst() {
                XCTAssertEqual(step.total.kernelCreations, 0,
                               "\(name) \(side)² step \(i + 1): kernel objects created (clCreateKernel), "
                                   + "\(step.total.kernelReuses) reused")
            }
        }
    }

    // MARK: Helpers

    private func openCLDevice() throws -> Device { try TestSupport.newDevice() }

    /// The counts of each of `steps` training steps of `model` at `batch`.
    private func stepCounts(model name: String, side: Int, batch: Int, channels: Int = 3,
                            device: Device) throws -> (steps: [Step], parameterTensors: Int) {
        let spec = try ModelZoo.spec(named: name)
        let classes = 10
        let model = try spec.make(classes, channels, Initializer(device: device, seed: 1))
        model.train()
        let optimizer = try SGD(model.namedParameters(),
                                configuration: SGDConfiguration(learningRate: 0.01, momentum: 0.9, weightDecay: 5e-4))
        let labelValues = (0..<batch).map { Int32($0 % classes) }
        var rng = SplitMix64(seed: 3)
        let images = rng.uniformArray(count: batch * channels * side * side, bound: 1)
        try device.synchronize()
        var counts: [Step] = []
        for _ in 0..<steps {
            let start = DeviceCounters.current
            let x = try Tensor(shape: [batch, channels, side, side], values: images, on: device)
            // A new batch's labels every step, as a data loader hands them over.
            let labels = ClassLabels(labelValues)
            model.zeroGrad()
            let loss = try softmaxCrossEntropy(model(x), labels: labels)
            let forwardDone = DeviceCounters.current
            try loss.backward()
            try optimizer.step()
            let updateDone = DeviceCounters.current
            let value = try loss.toArray()[0]
            let end = DeviceCounters.current
            counts.append(Step(total: end - start, forward: forwardDone - start,
                               backwardAndUpdate: updateDone - forwardDone))
            XCTAssertTrue(value.isFinite, "\(name) batch \(batch): loss \(value)")
        }
        try device.synchronize()
        return (counts, model.parameters().count)
    }

    /// One training step's counts, and those of its phases.
    private struct Step {
        /// Upload, forward, loss, backward, optimiser step and the loss read.
        var total: DeviceCounters
        /// Upload, forward and loss.
        var forward: DeviceCounters
        /// Backward and optimiser step: where gradients reach the optimiser.
        var backwardAndUpdate: DeviceCounters
    }

    /// Checks the rules above, and that a steady-state step runs at most
    /// `launchBudget` kernels (CLBlast's own included).
    private func checkBudget(model name: String, side: Int, batches: (Int, Int), launchBudget: Int,
                             file: StaticString = #filePath, line: UInt = #line) throws {
        let device = try openCLDevice()
        XCTAssertTrue(DeviceCounters.seesLibraryCalls, "CLBlast's calls would not be counted", file: file, line: line)
        let small = try stepCounts(model: name, side: side, batch: batches.0, device: device)
        let large = try stepCounts(model: name, side: side, batch: batches.1, device: device)
        for (batch, run) in [(batches.0, small), (batches.1, large)] {
            print("\(name) \(side)² batch \(batch), \(run.parameterTensors) parameter tensors:")
            for (i, c) in run.steps.enumerated() {
                print("  step \(i + 1): " + c.total.labeledValues.map { "\($0.label) \($0.value)" }.joined(separator: ", "))
                print("    forward: launches \(c.forward.kernelLaunches), copies \(c.forward.bufferCopies); "
                      + "backward and update: launches \(c.backwardAndUpdate.kernelLaunches), "
                      + "copies \(c.backwardAndUpdate.bufferCopies)")
            }
        }
        let steady = (small: small.steps.dropFirst().map(\.total), large: large.steps.dropFirst().map(\.total))

        // The same work at every batch size: no loop over samples issues launches or GEMMs.
        for (s, l) in zip(steady.small, steady.large) {
            XCTAssertEqual(s.kernelLaunches, l.kernelLaunches,
                           "\(name): kernel launches per step at batch \(batches.0) and \(batches.1)", file: file, line: line)
            XCTAssertEqual(s.libraryCalls, l.libraryCalls,
                           "\(name): CLBlast calls per step at batch \(batches.0) and \(batches.1)", file: file, line: line)
        }
        for (batch, run) in [(batches.0, small), (batches.1, large)] {
            for (i, step) in run.steps.enumerated().dropFirst() {
                let c = step.total
                let where_ = "\(name) batch \(batch) step \(i + 1)"
                XCTAssertLessThanOrEqual(c.kernelLaunches, launchBudget, "\(where_): kernel launches over the budget",
                                         file: file, line: line)
                XCTAssertEqual(c.bufferCreations, 0, "\(where_): device buffers created (\(c.bytesAllocated) bytes)",
                               file: file, line: line)
                // Kernel objects are created with their programs, in the first
                // step; CLBlast's per-call requests are answered from its pool.
                XCTAssertEqual(c.kernelCreations, 0, "\(where_): kernel objects created (clCreateKernel)",
                               file: file, line: line)
                // Gradients accumulate where the optimiser reads them: backward
                // and the update copy nothing (a copy per parameter tensor, or
                // per gradient that missed its arena slice, shows here).
                XCTAssertEqual(step.backwardAndUpdate.bufferCopies, 0,
                               "\(where_): buffer copies in backward and update (\(run.parameterTensors) parameter tensors)",
                               file: file, line: line)
                // The loss read is the step's only wait for the device.
                XCTAssertEqual(c.blockingReads, 1, "\(where_): blocking reads", file: file, line: line)
                XCTAssertEqual(c.hostBlockingCalls, 1,
                               "\(where_): host-blocking calls (finishes \(c.finishes), event waits \(c.eventWaits), "
                                   + "blocking writes \(c.blockingWrites))", file: file, line: line)
            }
        }
    }
}
