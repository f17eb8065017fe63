import Clover
import CloverNN

/// One training step of a model planned on a planning device: every launch
/// it would make checked against a launch profile, nothing run.
public struct LaunchCheck: Sendable {
    /// The model's name (a zoo name, or `oscar-<preset>`).
    public let model: String
    /// The input the step was planned at, e.g. `128x3x224x224`.
    public let input: String
    /// Kernel launches and CLBlast calls (one each) the step would make,
    /// after the model is built (its initial fills are not counted).
    public let launches: Int
    /// The peak of planned device memory, in bytes.
    public let peakBytes: Int

    /// The OSCAR encoder every check includes: BERT-base at 128 positions
    /// (48 words, 30 tags, 50 regions), as benchmarked.
    public static let oscarPreset = "base"

    /// Plans one training step (forward, loss, backward, SGD with momentum
    /// and weight decay; AdamW for OSCAR) of `spec` at its standard input
    /// size and `batch` on `device`, which must be a planning device
    /// (``Device/planning(_:profile:pathKind:cacheDirectory:)``).
    ///
    /// - Throws: the first launch that breaks the device's launch profile
    ///   (``RuntimeError/launchOutsideProfile(kernel:global:local:profile:reason:)``),
    ///   or any other error of the step, with the model's name.
    public static func trainingStep(of spec: ModelSpec, batch: Int, on device: Device) throws -> LaunchCheck {
        guard let context = device.openCL, context.isPlanning else {
            throw CloverError.invalidArgument(op: "launch check", reason: "\(device) is not a planning device")
        }
        let liveBefore = context.plannedLiveBytes
        context.resetPlannedPeak()
        var before = 0
        try {
            let model = try spec.make(spec.classes, spec.inputShape[0], Initializer(device: device))
            model.train()
            let optimizer = try SGD(model.namedParameters(),
                                    configuration: SGDConfiguration(learningRate: 0.01, momentum: 0.9, weightDecay: 5e-4))
            // Count the step only, not the parameters' initial fills.
            before = context.launchCounts.values.reduce(0, +)
            let images = try Tensor.zeros([batch] + spec.inputShape, on: device)
            let labels = ClassLabels((0..<batch).map { Int32($0 % spec.classes) })
            _ = try Trainer(model: model, optimizer: optimizer).step(images: images, labels: labels)
        }()
        return LaunchCheck(model: spec.name, input: ([batch] + spec.inputShape).map(String.init).joined(separator: "x"),
                           launches: context.launchCounts.values.reduce(0, +) - before,
                           peakBytes: context.plannedPeakBytes - liveBefore)
    }

    /// Plans one OSCAR pre-training step (masked-token and contrastive
    /// losses, AdamW) of `preset` with `batch` sequences of 48 words, 30
    /// tags and 50 regions on the planning `device`.
    public static func oscarPretrainingStep(preset: String = oscarPreset, batch: Int,
                                            on device: Device) throws -> LaunchCheck {
        guard let context = device.openCL, context.isPlanning else {
            throw CloverError.invalidArgument(op: "launch check", reason: "\(device) is not a planning device")
        }
        let c = try OSCAR.configuration(named: preset)
        let (words, tags, regions) = (48, 30, 50)
        let liveBefore = context.plannedLiveBytes
        context.resetPlannedPeak()
        var before = 0
        try {
            let model = try OSCAR(c, initializer: Initializer(device: device))
            let pretraining = OSCARPretraining(model: model)
            let optimizer = try AdamW(model.namedParameters(), configuration: AdamWConfiguration(learningRate: 1e-4))
            before = context.launchCounts.values.reduce(0, +)
            // Ordinary ids just above the special tokens: only shapes matter here.
            let ordinary = c.specialTokens.all.max()! + 1
            var wordIDs: [Int32] = [], tagIDs: [Int32] = []
            for _ in 0..<batch {
                wordIDs += [c.specialTokens.classification]
                    + [Int32](repeating: ordinary, count: words - 2) + [c.specialTokens.separator]
                tagIDs += [Int32](repeating: ordinary, count: tags - 1) + [c.specialTokens.separator]
            }
            let sample = try OSCARBatch(
                words: wordIDs, wordLength: words, wordCounts: Array(repeating: words, count: batch),
                tags: tagIDs, tagLength: tags, tagCounts: Array(repeating: tags, count: batch),
                regionFeatures: [Float](repeating: 0, count: batch * regions * c.regionFeatureSize),
                regionLength: regions, regionFeatureSize: c.regionFeatureSize,
                regionCounts: Array(repeating: regions, count: batch))
            try Trainer(model: model, optimizer: optimizer).step { try pretraining.loss(sample, seed: 1).total }
        }()
        let length = words + tags + regions
        return LaunchCheck(model: "oscar-\(preset)", input: "\(batch)x\(length)",
                           launches: context.launchCounts.values.reduce(0, +) - before,
                           peakBytes: context.plannedPeakBytes - liveBefore)
    }
}
