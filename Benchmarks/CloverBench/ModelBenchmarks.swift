import Clover
import CloverModels
import CloverNN
import CloverRuntime

/// A full training step of a zoo model on synthetic data.
struct ModelBenchmark {
    /// The zoo name (`ModelZoo.spec(named:)`).
    let model: String
    /// The batch size at full size.
    let batch: Int

    var name: String { "model/" + model }

    /// The models and batch sizes, at each model's native resolution
    /// (224² for the ImageNet models, 32² for the CIFAR ones).
    static let all = [
        ModelBenchmark(model: "resnet50", batch: 128),
        ModelBenchmark(model: "resnext50-32x4d", batch: 128),
        ModelBenchmark(model: "efficientnet-b0", batch: 128),
        ModelBenchmark(model: "vgg16", batch: 64),
        ModelBenchmark(model: "wrn-28-10", batch: 128),
        ModelBenchmark(model: "cifar-resnet20", batch: 128),
        ModelBenchmark(model: "regnet20-lstm", batch: 128),
    ]

    /// The record for this model at `sizing`, before any timing: batch,
    /// side, parameters and the counted forward multiply-adds (from a
    /// forward pass on the meta device, which allocates nothing).
    func plan(_ sizing: Sizing) throws -> (record: BenchRecord, spec: ModelSpec) {
        let spec = try ModelZoo.spec(named: model)
        let fullSide = spec.inputShape[1]
        let side = max(min(fullSide, sizing.modelSideFloor), sizing.side(fullSide))
        let batch = sizing.batch(self.batch)
        let meta = try spec.make(spec.classes, spec.inputShape[0], Initializer(device: .meta))
        let macs = try MultiplyAdds.count {
            _ = try meta(Tensor.zeros([1, spec.inputShape[0], side, side], on: .meta))
        }
        let record = BenchRecord(
            name: name, pass: "train_step", op: "train_step",
            params: ["batch": batch, "side": side, "channels": spec.inputShape[0], "classes": spec.classes],
            model: model, shape: "[\(batch), \(spec.inputShape[0]), \(side), \(side)] → \(spec.classes) classes",
            // Training ≈ 3 × the forward pass (backward: data and weight
            // gradients), 2 FLOPs per multiply-add of the conv/linear/matmul ops.
            flops: 6 * Double(macs) * Double(batch), parameters: meta.parameterCount)
        return (record, spec)
    }

    /// Times training steps (forward, softmax cross-entropy, backward, SGD
    /// with momentum and weight decay) and records images per second and
    /// the peak of device memory in use.
    func run(_ record: inout BenchRecord, spec: ModelSpec, on device: Device, warmup: Int, repetitions: Int) throws {
        let (batch, side, channels) = (record.params["batch"]!, record.params["side"]!, record.params["channels"]!)
        let pool = device.openCL?.pool
        // Idle buffers cached from earlier benchmarks would count against
        // nothing, but they would crowd this model out of device memory.
        pool?.trim()
        pool?.resetPeak()
        let model = try spec.make(spec.classes, channels, Initializer(device: device, seed: 0))
        model.train()
        let optimizer = try SGD(model.namedParameters(),
                                configuration: SGDConfiguration(learningRate: 0.01, momentum: 0.9, weightDecay: 5e-4))
        let images = try InputValues.tensor([batch, channels, side, side], seed: 7, on: device)
        let labels = ClassLabels((0..<batch).map { Int32($0 % spec.classes) })
        // At least one warm-up step: the first compiles every kernel the model uses.
        let timing = try measure(on: device, warmup: max(1, warmup), repetitions: repetitions) {
            model.zeroGrad()
            let loss = try softmaxCrossEntropy(model(images), labels: labels)
            try loss.backward()
            try optimizer.step()
        }
        record.record(timing)
        record.imagesPerSecond = Double(batch) / timing.median
        record.peakBytes = pool?.statistics.peakLiveBytes
        record.parameters = model.parameterCount
    }
}
