import ArgumentParser
import Clover
import CloverData
import CloverModels
import CloverNN
#if canImport(FoundationEssentials)
import FoundationEssentials
#endif

// OSCAR end to end: `clover oscar-corpus` builds the Fashion-MNIST corpus,
// `clover pretrain` pre-trains on any corpus in OSCARCorpus's format, and
// `clover eval-retrieval` scores image-text retrieval on its test split.

/// The OSCAR preset a `--model` names: `oscar-toy`, `oscar-mini`, … (the
/// `oscar-` prefix may be left out).
func oscarConfiguration(named model: String) throws -> OSCARConfiguration {
    let lowered = model.lowercased()
    let name = lowered.hasPrefix("oscar-") ? String(lowered.dropFirst("oscar-".count)) : lowered
    guard let configuration = OSCAR.configurations.first(where: { $0.name.lowercased() == name }) else {
        throw ValidationError("unknown OSCAR model '\(model)'; known: "
                              + OSCAR.configurations.map { "oscar-" + $0.name }.joined(separator: ", "))
    }
    return configuration
}

/// Options shared by `clover pretrain` and `clover eval-retrieval`.
struct CorpusOptions: ParsableArguments {
    @Option(name: .long, help: "The OSCAR preset: oscar-toy, oscar-tiny, oscar-mini, oscar-small, oscar-base or oscar-large (its vocabulary and region size follow the corpus).")
    var model: String = "oscar-toy"

    @Option(name: .long, help: "The corpus directory (vocab.txt, train.jsonl, test.jsonl, features.safetensors; see `clover oscar-corpus`).")
    var data: String

    @Option(name: .long, help: "OpenCL device (index or name substring) or cpu-reference; default CLOVER_DEVICE, else the first GPU, else the first CPU.")
    var device: String?

    @Option(name: .long, help: ArgumentHelp(
        "GEMM arithmetic: tf32 (tensor cores where the device has them and their probe passes) or fp32 (strict).",
        valueName: "fp32|tf32"))
    var precision: MatmulPrecision = .tf32

    @Option(name: .long, help: "Seed for initialisation, shuffling and corruption.")
    var seed: UInt64 = 0

    func validate() throws {
        _ = try oscarConfiguration(named: model)
        guard !data.isEmpty else { throw ValidationError("--data must name a corpus directory") }
    }

    /// The corpus, the model's configuration fitted to it and its batcher.
    func load() throws -> (corpus: OSCARCorpus, configuration: OSCARConfiguration, batcher: OSCARBatcher) {
        let corpus = try OSCARCorpus(directory: data)
        let configuration = try oscarConfiguration(named: model).adapted(to: corpus)
        let batcher = try OSCARBatcher(corpus: corpus, configuration: configuration)
        return (corpus, configuration, batcher)
    }
}

/// `clover oscar-corpus`: the Fashion-MNIST vision-language corpus.
struct OSCARCorpusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "oscar-corpus",
        abstract: "Build the small Fashion-MNIST corpus for OSCAR pre-training.",
        discussion: """
            Each Fashion-MNIST image becomes a sample: its regions are the 5x5 cells of \
            a Clover-trained LeNet-5's last feature map (16 features and a box each) plus \
            the whole image; its tags are the backbone's predicted classes; its caption \
            is written from the true class's description and the image's brightness and \
            size. Train a backbone first: clover train --model lenet5 --out runs/lenet5. \
            It is a stand-in for a real corpus (photographs, detector regions, human \
            captions), small enough to pre-train on a CPU.
            """
    )

    @Option(name: .long, help: "A LeNet-5 checkpoint (model.safetensors or the run directory of `clover train --model lenet5`).")
    var backbone: String

    @Option(name: .long, help: "The corpus directory to write.")
    var out: String

    @Option(name: .long, help: "Fashion-MNIST's directory (default: the Debian package's).")
    var dataDir: String?

    @Option(name: .long, help: "Training samples: the first N training images.")
    var trainCount: Int = 10_000

    @Option(name: .long, help: "Test samples: the first N test images.")
    var testCount: Int = 500

    @Option(name: .long, help: "OpenCL device (index or name substring) or cpu-reference.")
    var device: String?

    @Option(name: .long, help: "Seed for the captions' choice of description.")
    var seed: UInt64 = 0

    func validate() throws {
        guard trainCount >= 1 else { throw ValidationError("--train-count must be at least 1 (got \(trainCount))") }
        guard testCount >= 1 else { throw ValidationError("--test-count must be at least 1 (got \(testCount))") }
        guard !out.isEmpty else { throw ValidationError("--out must name a directory") }
    }

    func run() throws {
        try Console.reportingFailures {
            let directory = dataDir ?? FashionMNIST.defaultDirectory
            let (train, test) = (try FashionMNIST.load(.train, directory: directory),
                                 try FashionMNIST.load(.test, directory: directory))
            guard trainCount <= train.count else {
                throw ValidationError("--train-count \(trainCount) is larger than the \(train.count) training images")
            }
            guard testCount <= test.count else {
                throw ValidationError("--test-count \(testCount) is larger than the \(test.count) test images")
            }
            let device = try Device.select(self.device)
            let backbone = try LeNet5(initializer: Initializer(device: device, seed: 0))
            let weights = try SafeTensors.read(path: RunDirectory.modelFile(self.backbone))
            do { try backbone.loadStateDict(weights) } catch {
                throw ValidationError("--backbone \(self.backbone) is not a LeNet-5 checkpoint: \(error)")
            }
            let trainImages = train.prefix(trainCount), testImages = test.prefix(testCount)
            let bins = FashionMNISTCorpus.bins(of: trainImages)
            func samples(_ images: Dataset, _ prefix: String, _ seed: UInt64) throws -> [OSCARSample] {
                try FashionMNISTCorpus.samples(of: images, backbone: backbone, normalization: FashionMNIST.normalization,
                                               bins: bins, prefix: prefix, seed: seed, device: device)
            }
            let trainSamples = try samples(trainImages, "train", seed)
            let testSamples = try samples(testImages, "test", seed &+ 1)
            try OSCARCorpus.write(directory: out, vocabulary: FashionMNISTCorpus.vocabulary, train: trainSamples,
                                  test: testSamples, featureSize: FashionMNISTCorpus.featureSize)
            let tagged = testSamples.enumerated().filter { i, sample in
                sample.tags[0] == FashionMNISTCorpus.tagNames[Int(testImages.labels[i])]
            }.count
            print("wrote \(out): \(trainSamples.count) training and \(testSamples.count) test samples, "
                  + "\(trainSamples[0].regionCount) regions of \(FashionMNISTCorpus.featureSize) features each, "
                  + "\(FashionMNISTCorpus.vocabulary.count) vocabulary entries; the backbone's first tag is the "
                  + "true class on \(Format.fixed(100 * Double(tagged) / Double(testSamples.count), decimals: 1))% of "
                  + "the test samples")
            print("example: \"\(testSamples[0].caption)\", tags \(testSamples[0].tags)")
        }
    }
}

/// `clover pretrain`: OSCAR pre-training (masked-token + contrastive loss)
/// on a corpus, with `clover train`'s run directory, resume, progress line,
/// NaN guard and metrics.
struct PretrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pretrain",
        abstract: "Pre-train OSCAR on a corpus; checkpoints and metrics go to --out.",
        discussion: """
            Each step corrupts a batch as OSCAR's recipe does (tags replaced by another \
            sample's with probability 0.5, BERT's masking over words and tags) and \
            minimises the masked-token plus the contrastive loss with AdamW. Metrics per \
            epoch: trainLoss and testLoss are that total; trainAccuracy and testAccuracy \
            are the contrastive head's accuracy (real or polluted tags); the test split \
            is corrupted with the same seeds every epoch, so its figures compare. \
            Checkpoints, --resume and the NaN guard behave as in `clover train`.
            """
    )

    @OptionGroup var corpus: CorpusOptions

    @Option(name: .long, help: "Epochs to train (in total, counting resumed ones).")
    var epochs: Int = 1

    @Option(name: .long, help: "Samples per step.")
    var batchSize: Int = 64

    @Option(name: .long, help: "Peak learning rate (AdamW).")
    var lr: Float = 1e-3

    @Option(name: .long, help: "AdamW's decoupled weight decay.")
    var weightDecay: Float = 0.01

    @Option(name: .long, help: "Linear warm-up, in epochs (may be fractional), before the cosine decay.")
    var warmup: Double = 0

    @Option(name: .long, help: "Chance that a word or tag token is selected for the masked-token loss (BERT's 0.15).")
    var maskingProbability: Double = 0.15

    @Option(name: .long, help: "Chance that a sample is polluted, its tags or caption replaced by another sample's (--pollute; OSCAR's 0.5).")
    var pollutionProbability: Double = 0.5

    @Option(name: .long, help: ArgumentHelp(
        "What a polluted sample gets from another: its tags (the paper), its caption (what retrieval judges) or either.",
        valueName: "tags|captions|either"))
    var pollute: OSCARPollution = .tags

    @Option(name: .long, help: "Epochs at the start that train the contrastive loss alone (no masking); the masked-token loss joins after them. A model trained from scratch needs them to align tags with captions (README, \"Pre-training OSCAR\").")
    var contrastiveOnlyEpochs: Int = 0

    @Option(name: .long, help: "Weight of the contrastive loss in the total (the paper's 1).")
    var contrastiveWeight: Double = 1

    @Option(name: .long, help: "Use only the first N training samples.")
    var trainSubset: Int?

    @Option(name: .long, help: "Output directory for checkpoints and metrics.")
    var out: String = "runs/oscar"

    @Flag(name: .long, help: "Continue from the checkpoint in --out.")
    var resume = false

    @Option(name: .long, help: "Print the progress line every N steps (each print waits for the device).")
    var logEvery: Int = 10

    @Flag(name: .long, help: "Record an OpenCL event per kernel and print device time per kernel after each epoch.")
    var profile = false

    func validate() throws {
        guard (1...TrainCommand.maxEpochs).contains(epochs) else {
            throw ValidationError("--epochs must be between 1 and \(TrainCommand.maxEpochs) (got \(epochs))")
        }
        guard (1...DataOptions.maxBatchSize).contains(batchSize) else {
            throw ValidationError("--batch-size must be between 1 and \(DataOptions.maxBatchSize) (got \(batchSize))")
        }
        guard lr.isFinite && lr > 0 else { throw ValidationError("--lr must be a finite number above 0 (got \(lr))") }
        guard weightDecay.isFinite && weightDecay >= 0 else {
            throw ValidationError("--weight-decay must be a finite number of at least 0 (got \(weightDecay))")
        }
        guard warmup.isFinite && warmup >= 0 && warmup <= Double(epochs) else {
            throw ValidationError("--warmup must be between 0 and --epochs (\(epochs)) epochs (got \(warmup))")
        }
        if let trainSubset, trainSubset < 1 {
            throw ValidationError("--train-subset must be at least 1 (got \(trainSubset))")
        }
        for (name, value) in [("--masking-probability", maskingProbability), ("--pollution-probability", pollutionProbability)]
        where !(value.isFinite && value >= 0 && value <= 1) {
            throw ValidationError("\(name) must be between 0 and 1 (got \(value))")
        }
        guard (0...epochs).contains(contrastiveOnlyEpochs) else {
            throw ValidationError("--contrastive-only-epochs must be between 0 and --epochs (\(epochs)) (got \(contrastiveOnlyEpochs))")
        }
        guard contrastiveWeight.isFinite && contrastiveWeight >= 0 else {
            throw ValidationError("--contrastive-weight must be a finite number of at least 0 (got \(contrastiveWeight))")
        }
        guard logEvery >= 1 else { throw ValidationError("--log-every must be at least 1 (got \(logEvery))") }
        guard !out.isEmpty else { throw ValidationError("--out must name a directory") }
    }

    func run() throws {
        try Console.reportingFailures(pretrain)
    }

    /// The run itself; errors surface unformatted (``run()`` prints them).
    func pretrain() throws {
        let run = try RunDirectory(path: out, label: "--out")
        let (data, configuration, batcher) = try corpus.load()
        var trainSamples = data.train
        if let n = trainSubset {
            guard n <= trainSamples.count else {
                throw ValidationError("--train-subset \(n) is larger than the \(trainSamples.count) training samples "
                                      + "of \(data.directory)")
            }
            trainSamples = Array(trainSamples.prefix(n))
        }
        guard trainSamples.count >= batchSize else {
            throw ValidationError("--batch-size \(batchSize) is larger than the \(trainSamples.count) training samples; "
                                  + "use at most \(trainSamples.count)")
        }
        let device = try Device.select(corpus.device)
        let precisionLine = device.apply(corpus.precision)
        device.isProfiling = profile
        BuildProgress.attach(to: device).activity = "first steps of oscar-\(configuration.name)"
        let model = try OSCAR(configuration, initializer: Initializer(device: device, seed: corpus.seed))
        let pretraining = OSCARPretraining(model: model)
        pretraining.maskingProbability = maskingProbability
        pretraining.pollutionProbability = pollutionProbability
        pretraining.contrastiveWeight = Float(contrastiveWeight)
        pretraining.pollution = pollute
        let optimizer = try AdamW(model.namedParameters(),
                                  configuration: AdamWConfiguration(learningRate: lr, weightDecay: weightDecay))
        let rate = CosineSchedule(base: lr, epochs: epochs, warmupEpochs: warmup)
        var firstEpoch = 0
        var history: [EpochMetrics] = []
        if resume {
            let progress = try run.loadCheckpoint(model: model, optimizer: optimizer, epochLimit: epochs)
            firstEpoch = progress.epochsDone
            history = progress.history
            print("resumed from \(out): \(firstEpoch) epoch(s) done")
        }
        let stepsPerEpoch = trainSamples.count / batchSize
        print("pre-training oscar-\(configuration.name) (\(model.parameterCount) parameters) on \(data.directory) "
              + "(\(trainSamples.count) samples, testing on \(data.test.count)), device \(device), batch \(batchSize), "
              + "AdamW lr \(lr) cosine; words \(batcher.wordLength), tags \(batcher.tagLength), regions "
              + "\(batcher.regionLength) of \(configuration.regionFeatureSize)")
        print(precisionLine)
        Console.flush()
        let trainer = Trainer(model: model, optimizer: optimizer)
        try trainer.watchLoss(on: device)
        for epoch in firstEpoch..<epochs {
            model.train()
            trainer.lossGuard?.startEpoch()
            // Derived from the epoch alone, so a resumed run masks as an uninterrupted one.
            pretraining.maskingProbability = epoch < contrastiveOnlyEpochs ? 0 : maskingProbability
            // A fresh order per epoch from the seed, so a resumed run sees
            // the order an uninterrupted one would have.
            var rng = SplitMix64(seed: corpus.seed &+ 0x9E37_79B9 &* UInt64(epoch + 1))
            let order = trainSamples.indices.shuffled(using: &rng)
            let clock = ContinuousClock()
            let start = clock.now
            var seen = 0, correct = 0, judged = 0, lossSum = 0.0, lossCount = 0
            for step in 0..<stepsPerEpoch {
                optimizer.learningRate = rate.learningRate(epoch: epoch, progress: Double(step) / Double(stepsPerEpoch))
                let batch = try batcher.batch(order[(step * batchSize)..<((step + 1) * batchSize)].map { trainSamples[$0] })
                let corruption = pretraining.corrupt(batch, seed: corpus.seed &* 1_000_003 &+ UInt64(epoch * stepsPerEpoch + step))
                var loss: OSCARPretrainingLoss!
                try trainer.step {
                    loss = try pretraining.loss(corruption)
                    return loss.total
                }
                seen += batchSize
                if (step + 1) % logEvery == 0 || step + 1 == stepsPerEpoch {
                    let from = trainer.lossGuard!.firstUnchecked
                    let shown = try trainer.lossGuard!.progress(loss: loss.total, reading: loss.contrastiveLogits,
                                                                throughStep: step + 1)
                    guard shown.allFinite else {
                        let steps = from == step + 1 ? "at step \(step + 1)" : "between steps \(from) and \(step + 1)"
                        Console.error("\nerror: the loss became NaN or infinite in epoch \(epoch + 1) \(steps); "
                                      + "stopping. The last good checkpoint in \(out) is kept.")
                        throw ExitCode.failure
                    }
                    lossSum += Double(shown.loss)
                    lossCount += 1
                    correct += Self.contrastiveHits(shown.values, polluted: corruption.polluted)
                    judged += batchSize
                    let elapsed = max(seconds(clock.now - start), 1e-9)
                    let remaining = Double(stepsPerEpoch - step - 1) * elapsed / Double(step + 1)
                    print("\repoch \(epoch + 1)/\(epochs) step \(step + 1)/\(stepsPerEpoch) loss "
                          + "\(Format.fixed(Double(shown.loss), decimals: 4)) contrastive-acc "
                          + "\(Format.fixed(100 * Double(correct) / Double(max(judged, 1)), decimals: 1))% "
                          + "\(Format.fixed(Double(seen) / elapsed, decimals: 1)) samples/s ETA "
                          + "\(Format.fixed(remaining, decimals: 0)) s   ", terminator: "")
                    Console.flush()
                }
            }
            let trainSeconds = seconds(clock.now - start)
            if profile, device.openCLDevice != nil {
                try Console.printKernelProfile(of: device, title: "training epoch \(epoch + 1)")
            }
            // The test split is always scored on the full objective, so that epochs compare.
            pretraining.maskingProbability = maskingProbability
            let test = try Self.evaluate(pretraining, batcher: batcher, samples: data.test, batchSize: batchSize,
                                         seed: corpus.seed)
            let metrics = EpochMetrics(epoch: epoch + 1, trainLoss: lossSum / Double(max(lossCount, 1)),
                                       trainAccuracy: Double(correct) / Double(max(judged, 1)),
                                       testLoss: test.loss, testAccuracy: test.accuracy, seconds: trainSeconds,
                                       imagesPerSecond: Double(seen) / max(trainSeconds, 1e-9),
                                       learningRate: Double(optimizer.learningRate))
            history.append(metrics)
            print("\nepoch \(epoch + 1): test loss \(Format.fixed(test.loss, decimals: 4)) (masked-token "
                  + "\(Format.fixed(test.maskedToken, decimals: 4)), contrastive \(Format.fixed(test.contrastive, decimals: 4))) "
                  + "contrastive accuracy \(Format.fixed(100 * test.accuracy, decimals: 2))% "
                  + "(\(Format.fixed(trainSeconds, decimals: 1)) s, \(Format.fixed(metrics.imagesPerSecond, decimals: 1)) samples/s)")
            try run.saveCheckpoint(model: model, optimizer: optimizer, progress: RunProgress(
                model: "oscar-" + configuration.name, dataset: data.directory, epochsDone: epoch + 1, history: history))
            Console.flush()
        }
        if let last = history.last {
            print("final test loss \(Format.fixed(last.testLoss, decimals: 4)), contrastive accuracy "
                  + "\(Format.fixed(100 * last.testAccuracy, decimals: 2))% after \(last.epoch) epoch(s); "
                  + "metrics in \(out)/metrics.csv and \(out)/metrics.json")
        }
    }

    /// Samples whose contrastive logit has the right sign: positive for real
    /// tags, otherwise for polluted ones.
    static func contrastiveHits(_ logits: [Float], polluted: [Bool]) -> Int {
        zip(logits, polluted).filter { logit, polluted in (logit > 0) != polluted }.count
    }

    /// The losses and the contrastive accuracy over `samples`, in evaluation
    /// mode without gradients, each batch corrupted with a seed fixed by its
    /// position, so that epochs compare.
    static func evaluate(_ pretraining: OSCARPretraining, batcher: OSCARBatcher, samples: [OSCARSample],
                         batchSize: Int, seed: UInt64) throws
        -> (loss: Double, maskedToken: Double, contrastive: Double, accuracy: Double) {
        let model = pretraining.model
        model.eval()
        defer { model.train() }
        var total = 0.0, masked = 0.0, contrastive = 0.0, correct = 0
        try withoutGradients {
            var start = 0
            while start < samples.count {
                let part = Array(samples[start..<min(start + batchSize, samples.count)])
                let corruption = pretraining.corrupt(try batcher.batch(part), seed: seed &+ 0x7E57 &+ UInt64(start))
                let loss = try pretraining.loss(corruption)
                let weight = Double(part.count)
                total += Double(try loss.total.toArray()[0]) * weight
                masked += Double(try loss.maskedToken.toArray()[0]) * weight
                contrastive += Double(try loss.contrastive.toArray()[0]) * weight
                correct += contrastiveHits(try loss.contrastiveLogits.toArray(), polluted: corruption.polluted)
                start += batchSize
            }
        }
        let n = Double(max(samples.count, 1))
        return (total / n, masked / n, contrastive / n, Double(correct) / n)
    }
}

/// `clover eval-retrieval`: image-text retrieval recall of a pre-trained
/// OSCAR on its corpus's test split.
struct EvalRetrievalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval-retrieval",
        abstract: "Image→text and text→image R@1/5/10 of an OSCAR checkpoint on the corpus's test split.",
        discussion: """
            Every test image is scored against every test caption by the contrastive \
            head (its "these tags are real" logit for the caption with the image's tags \
            and regions); a query's true partner ranks after every candidate that scores \
            as high, so identical scores earn nothing. Chance is K / N.
            """
    )

    @OptionGroup var corpus: CorpusOptions

    @Option(name: .long, help: "The model.safetensors of `clover pretrain` (or its run directory).")
    var checkpoint: String

    @Option(name: .long, help: "Score only the first N test samples (N² pairs are scored).")
    var subset: Int?

    @Option(name: .long, help: "Pairs per forward pass.")
    var batchSize: Int = 256

    @Flag(name: .long, help: "Print the result as one JSON object instead of text.")
    var json = false

    func validate() throws {
        if let subset, subset < 2 { throw ValidationError("--subset must be at least 2 (got \(subset))") }
        guard (1...DataOptions.maxBatchSize).contains(batchSize) else {
            throw ValidationError("--batch-size must be between 1 and \(DataOptions.maxBatchSize) (got \(batchSize))")
        }
    }

    func run() throws {
        try Console.reportingFailures { print(try evaluate().report(json: json)) }
    }

    /// The recall of the checkpoint (for tests and the command).
    func evaluate() throws -> RetrievalRecall {
        let (data, configuration, batcher) = try corpus.load()
        var samples = data.test
        if let subset {
            guard subset <= samples.count else {
                throw ValidationError("--subset \(subset) is larger than the \(samples.count) test samples of \(data.directory)")
            }
            samples = Array(samples.prefix(subset))
        }
        guard samples.count >= 2 else {
            throw ValidationError("\(data.directory) has \(samples.count) test sample(s); retrieval needs at least 2")
        }
        let device = try Device.select(corpus.device)
        _ = device.apply(corpus.precision)
        let model = try OSCAR(configuration, initializer: Initializer(device: device, seed: corpus.seed))
        do { try model.loadStateDict(SafeTensors.read(path: RunDirectory.modelFile(checkpoint))) } catch {
            throw ValidationError("--checkpoint \(checkpoint) does not hold oscar-\(configuration.name) for "
                                  + "\(data.directory): \(error)")
        }
        return try OSCARRetrieval.evaluate(model: model, batcher: batcher, samples: samples, batchSize: batchSize)
    }
}

extension OSCARPollution: ExpressibleByArgument {}

extension RetrievalRecall {
    /// The figures as text lines (or one JSON object), chance beside them.
    func report(json: Bool) -> String {
        func percent(_ values: [Double]) -> [String] { values.map { Format.fixed(100 * $0, decimals: 1) } }
        if json {
            func list(_ values: [Double]) -> String { "[" + values.map { Format.fixed($0, decimals: 4) }.joined(separator: ", ") + "]" }
            return "{\"count\": \(count), \"imageToText\": \(list(imageToText)), \"textToImage\": \(list(textToImage)), "
                + "\"chance\": \(list(chance))}"
        }
        let (i, t, c) = (percent(imageToText), percent(textToImage), percent(chance))
        return """
            retrieval over \(count) test pairs (R@1 / R@5 / R@10, %):
              image → text  \(i[0]) / \(i[1]) / \(i[2])
              text → image  \(t[0]) / \(t[1]) / \(t[2])
              chance        \(c[0]) / \(c[1]) / \(c[2])
            """
    }
}
