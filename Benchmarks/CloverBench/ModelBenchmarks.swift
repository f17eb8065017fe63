import Clover
import CloverModels
import CloverNN
import CloverRuntime

/// A full training step of a zoo model on synthetic data, or of the OSCAR
/// encoder's pre-training (masked-token + contrastive loss, AdamW).
struct ModelBenchmark {
    /// The zoo name (`ModelZoo.spec(named:)`), or `oscar-<preset>` for an
    /// OSCAR configuration (`OSCAR.configuration(named:)`).
    let model: String
    /// The batch size at full size.
    let batch: Int

    var name: String { "model/" + model }

    /// The OSCAR preset this benchmark trains, nil for a zoo model.
    var oscarPreset: String? { model.hasPrefix("oscar-") ? String(model.dropFirst("oscar-".count)) : nil }

    /// OSCAR's sequence at full size: 48 word slots, 30 tag slots and 50
    /// regions (Oscar's pre-training region count), 128 positions in all.
    static let oscarLayout = (words: 48, tags: 30, regions: 50)

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
        ModelBenchmark(model: "oscar-base", batch: 32),
    ]

    /// The record for this model at `sizing`, before any timing: batch,
    /// side, parameters and the counted forward multiply-adds (from a
    /// forward pass on the meta device, which allocates nothing).
    func plan(_ sizing: Sizing) throws -> (record: BenchRecord, spec: ModelSpec?) {
        if let preset = oscarPreset { return (try planOSCAR(preset, sizing), nil) }
        let spec = try ModelZoo.spec(named: model)
        let fullSide = spec.inputShape[1]
        let side = max(min(fullSide, sizing.modelSideFloor), sizing.side(fullSide))
        let batch = sizing.batch(self.batch)
        let meta = try spec.make(spec.classes, spec.inputShape[0], Initializer(device: .meta))
        let macs = try MultiplyAdds.count(on: .meta) {
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
    /// the peak of device memory in use. `spec` is the one ``plan(_:)``
    /// returned (nil for OSCAR). With `distributed`, gradients are averaged
    /// over the ranks in every step and the row gets the job's figures.
    func run(_ record: inout BenchRecord, spec: ModelSpec?, on device: Device, warmup: Int, repetitions: Int,
             distributed: DistributedBench? = nil) throws {
        guard let spec else {
            return try runOSCAR(&record, on: device, warmup: warmup, repetitions: repetitions, distributed: distributed)
        }
        let (batch, side, channels) = (record.params["batch"]!, record.params["side"]!, record.params["channels"]!)
        Self.startMemoryCount(on: device)
        let model = try spec.make(spec.classes, channels, Initializer(device: device, seed: 0))
        let optimizer = try SGD(model.namedParameters(),
                                configuration: SGDConfiguration(learningRate: 0.01, momentum: 0.9, weightDecay: 5e-4))
        let images = try InputValues.tensor([batch, channels, side, side], seed: 7, on: device)
        let labels = ClassLabels((0..<batch).map { Int32($0 % spec.classes) })
        try Self.timeSteps(&record, model: model, optimizer: optimizer, samples: batch, on: device, warmup: warmup,
                           repetitions: repetitions, distributed: distributed) {
            try softmaxCrossEntropy(model(images), labels: labels)
        }
    }

    /// Frees idle pooled buffers and restarts the peak count, before the
    /// model is built so that its parameters count. Idle buffers cached
    /// from earlier benchmarks would count against nothing, but they would
    /// crowd this model out of device memory.
    static func startMemoryCount(on device: Device) {
        device.openCL?.pool.trim()
        device.openCL?.pool.resetPeak()
    }

    /// Times training steps of `model` (zero gradients, `loss`, backward,
    /// `optimizer` step) and records the timing, samples per second, peak
    /// device memory and parameter count; with `distributed`, each step's
    /// gradients are averaged over the ranks (inside `optimizer.step()`, so
    /// the step's time includes the reduction) and the row gets
    /// ``DistributedFigures`` of the timed steps.
    static func timeSteps(_ record: inout BenchRecord, model: Module, optimizer: Optimizer, samples: Int,
                          on device: Device, warmup: Int, repetitions: Int, distributed: DistributedBench? = nil,
                          loss: () throws -> Tensor) throws {
        model.train()
        distributed?.averageGradients(of: optimizer, parameters: model.namedParameters().map(\.1))
        defer { optimizer.gradientHook = nil }
        // Each step's OpenCL calls, CLBlast's included; the queue drain that
        // `measure` adds after each step is the harness's, not the step's.
        var counts: [DeviceCounters] = []
        let trainer = Trainer(model: model, optimizer: optimizer)
        // At least one warm-up step: the first compiles every kernel the model uses.
        let timing = try measure(on: device, warmup: max(1, warmup), repetitions: repetitions) {
            let before = DeviceCounters.current
            try trainer.step(loss)
            counts.append(DeviceCounters.current - before)
        }
        record.record(timing)
        record.stepCounters = StepCounters(counts)
        record.imagesPerSecond = Double(samples) / timing.median
        record.peakBytes = device.openCL?.pool.statistics.peakLiveBytes
        record.parameters = model.parameterCount
        if let distributed {
            record.distributed = try distributed.figures(timedSteps: timing.samples.count, perRankBatch: samples,
                                                         stepSeconds: timing.median)
        }
    }

    // MARK: OSCAR

    /// The OSCAR record at `sizing`: the preset's full width and depth, the
    /// batch and the three blocks of the sequence scaled like every other
    /// batch and sequence length.
    func planOSCAR(_ preset: String, _ sizing: Sizing) throws -> BenchRecord {
        let c = try OSCAR.configuration(named: preset)
        let layout = Self.oscarLayout
        let (batch, words, tags, regions) = (sizing.batch(batch), max(2, sizing.sequence(layout.words)),
                                             sizing.sequence(layout.tags), sizing.sequence(layout.regions))
        let meta = try OSCAR(c, initializer: Initializer(device: .meta))
        let sample = try Self.oscarBatch(batch: 1, words: words, tags: tags, regions: regions, configuration: c)
        let macs = try MultiplyAdds.count(on: .meta) {
            let output = try meta(sample)
            _ = try meta.maskedTokenLogits(output)
            _ = try meta.contrastiveLogits(output)
        }
        let length = words + tags + regions
        return BenchRecord(
            name: name, pass: "train_step", op: "train_step",
            params: ["batch": batch, "words": words, "tags": tags, "regions": regions, "features": c.regionFeatureSize,
                     "hidden": c.hiddenSize, "layers": c.layers, "heads": c.heads,
                     "intermediate": c.intermediateSize, "vocabulary": c.vocabularySize,
                     "positions": c.maxPositions, "types": c.typeVocabularySize],
            model: model,
            shape: "[\(batch), \(length)]: \(words) words + \(tags) tags + \(regions) regions, "
                + "\(c.layers) layers × \(c.hiddenSize)",
            // As for the image models: training ≈ 3 × the forward multiply-adds.
            flops: 6 * Double(macs) * Double(batch), parameters: meta.parameterCount)
    }

    /// Times pre-training steps (corruption drawn once, forward, masked-token
    /// and contrastive losses, backward, AdamW) and records sequences per
    /// second (in `imagesPerSecond`) and peak device memory.
    func runOSCAR(_ record: inout BenchRecord, on device: Device, warmup: Int, repetitions: Int,
                  distributed: DistributedBench? = nil) throws {
        let c = try OSCAR.configuration(named: oscarPreset ?? "")
        let p = record.params
        Self.startMemoryCount(on: device)
        let model = try OSCAR(c, initializer: Initializer(device: device, seed: 0))
        let pretraining = OSCARPretraining(model: model)
        let optimizer = try AdamW(model.namedParameters(), configuration: AdamWConfiguration(learningRate: 1e-4))
        let batch = try Self.oscarBatch(batch: p["batch"]!, words: p["words"]!, tags: p["tags"]!, regions: p["regions"]!,
                                        configuration: c)
        // Corrupt once, outside the timed steps: masking is host work on ids
        // that a data loader would do ahead of the device.
        let corruption = pretraining.corrupt(batch, seed: 11)
        try Self.timeSteps(&record, model: model, optimizer: optimizer, samples: p["batch"]!, on: device,
                           warmup: warmup, repetitions: repetitions, distributed: distributed) {
            try pretraining.loss(corruption).total
        }
    }

    /// A synthetic OSCAR batch with every slot real: `[CLS]`, random word
    /// ids, `[SEP]`; random tag ids ending in `[SEP]`; region features from
    /// ``InputValues``. The peer draws its own ids: only shapes must agree.
    static func oscarBatch(batch: Int, words: Int, tags: Int, regions: Int,
                           configuration c: OSCARConfiguration) throws -> OSCARBatch {
        var rng = SplitMix64(seed: 5)
        let special = c.specialTokens
        let firstOrdinary = Int32(special.all.max()! + 1)
        func ids(_ n: Int) -> [Int32] {
            (0..<n).map { _ in Int32.random(in: firstOrdinary..<Int32(c.vocabularySize), using: &rng) }
        }
        var wordIDs: [Int32] = [], tagIDs: [Int32] = []
        for _ in 0..<batch {
            wordIDs += [special.classification] + ids(words - 2) + [special.separator]
            tagIDs += tags > 0 ? ids(tags - 1) + [special.separator] : []
        }
        return try OSCARBatch(words: wordIDs, wordLength: words, wordCounts: Array(repeating: words, count: batch),
                              tags: tagIDs, tagLength: tags, tagCounts: Array(repeating: tags, count: batch),
                              regionFeatures: InputValues.values(batch * regions * c.regionFeatureSize, seed: 9),
                              regionLength: regions, regionFeatureSize: c.regionFeatureSize,
                              regionCounts: Array(repeating: regions, count: batch))
    }
}
