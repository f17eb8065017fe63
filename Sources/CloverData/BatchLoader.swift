import Synchronization
import Dispatch

/// One mini-batch: `count` samples stacked NCHW, with their labels.
public struct Batch: Sendable, Equatable {
    /// `[count, channels, height, width]` values.
    public let images: [Float]
    /// The label of each sample.
    public let labels: [Int32]
    /// `[count, channels, height, width]`.
    public let shape: [Int]
    /// Each sample's index in the data set, for tracing a sample back.
    public let indices: [Int]

    /// The number of samples, at most the loader's batch size.
    public var count: Int { labels.count }
}

/// Cuts a data set into shuffled, augmented mini-batches, preparing them on a
/// background thread while the caller trains on earlier ones.
///
/// ```swift
/// let loader = try BatchLoader(dataset: train, batchSize: 128,
///                              augmentation: .cifar10Training, seed: 42)
/// for epoch in 0..<30 {
///     for batch in loader.epoch(epoch) { /* train on batch.images, batch.labels */ }
/// }
/// ```
///
/// **Determinism.** The order of epoch `e` and the augmentation of each
/// sample depend only on the seed, `e` and the sample's index, never on
/// thread timing or on `prefetch`: the same seed and epoch give the same
/// batches, byte for byte, prefetched or not.
public final class BatchLoader: Sendable {
    /// The samples batches are drawn from.
    public let dataset: Dataset
    /// The number of samples per batch (the last may hold fewer).
    public let batchSize: Int
    /// Whether each epoch visits the samples in a fresh seeded order.
    public let shuffle: Bool
    /// Whether a last batch smaller than `batchSize` is left out.
    public let dropLast: Bool
    /// Applied to each sample as its batch is built.
    public let augmentation: Augmentation
    /// Seeds shuffling and augmentation.
    public let seed: UInt64
    /// How many batches the background thread keeps ready; 0 prepares each
    /// batch in ``Epoch/next()`` on the caller's thread.
    public let prefetch: Int
    /// `[channels, height, width]` of a sample after augmentation.
    public let sampleShape: [Int]
    /// Which of ``shardCount`` disjoint parts of each batch this loader
    /// delivers (data-parallel training: the process's rank).
    public let shard: Int
    /// How many processes share each batch: a global batch of
    /// `batchSize × shardCount` samples of the epoch's order is cut into
    /// `shardCount` consecutive parts of `batchSize`, and this loader
    /// delivers part ``shard``. With 1 (the default) it is an ordinary loader.
    public let shardCount: Int

    /// - Throws: ``DataError`` when `batchSize` is not positive, `prefetch` is
    ///   negative, the augmentation does not fit the data set's samples, or
    ///   `shard` is not in `0..<shardCount` (or sharding without `dropLast`,
    ///   which could leave a process an empty batch).
    public init(dataset: Dataset, batchSize: Int, shuffle: Bool = true, dropLast: Bool = false,
                augmentation: Augmentation = .none, seed: UInt64 = 0, prefetch: Int = 2,
                shard: Int = 0, shardCount: Int = 1) throws {
        guard batchSize > 0 else { throw DataError("BatchLoader", "batch size \(batchSize) is not positive") }
        guard prefetch >= 0 else { throw DataError("BatchLoader", "prefetch \(prefetch) is negative") }
        guard shardCount >= 1, (0..<shardCount).contains(shard) else {
            throw DataError("BatchLoader", "shard \(shard) is not one of \(shardCount) shards")
        }
        guard shardCount == 1 || dropLast else {
            throw DataError("BatchLoader", "sharded batches need dropLast (a last partial batch may leave a shard empty)")
        }
        guard batchSize <= Int.max / shardCount else {
            throw DataError("BatchLoader", "batch size \(batchSize) × \(shardCount) shards overflows")
        }
        self.shard = shard
        self.shardCount = shardCount
        self.sampleShape = try augmentation.outputShape(for: dataset.sampleShape)
        self.dataset = dataset
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.dropLast = dropLast
        self.augmentation = augmentation
        self.seed = seed
        self.prefetch = prefetch
    }

    /// The number of batches in an epoch.
    public var batchCount: Int {
        let global = batchSize * shardCount
        return dropLast ? dataset.count / global : (dataset.count + global - 1) / global
    }

    /// The order in which epoch `epoch` visits the samples.
    public func order(epoch: Int) -> [Int] {
        guard shuffle else { return Array(0..<dataset.count) }
        var generator = SplitMix64(seed: SplitMix64.derive(epochSeed(epoch), Self.shuffleStream))
        return shuffledIndices(dataset.count, using: &generator)
    }

    /// The seed that augments sample `index` in epoch `epoch`; with
    /// ``Augmentation/apply(to:shape:seed:)`` it reproduces that sample.
    public func augmentationSeed(sample index: Int, epoch: Int) -> UInt64 {
        SplitMix64.derive(SplitMix64.derive(epochSeed(epoch), Self.augmentationStream), UInt64(index))
    }

    /// The batches of epoch `epoch`, in order. With `prefetch` above zero,
    /// preparation starts now on a background thread.
    public func epoch(_ epoch: Int) -> Epoch {
        Epoch(loader: self, number: epoch)
    }

    /// One pass over the data set; iterate it with `for batch in …` or call
    /// ``next()`` until it returns `nil`. Use it from one thread. Dropping it
    /// early stops the background thread.
    public final class Epoch: Sequence, IteratorProtocol {
        /// The epoch's number, which seeds its order and augmentation.
        public let number: Int
        private let loader: BatchLoader
        private let order: [Int]
        private let prefetcher: Prefetcher?
        private var delivered = 0

        init(loader: BatchLoader, number: Int) {
            self.loader = loader
            self.number = number
            let order = loader.order(epoch: number)
            self.order = order
            prefetcher = loader.prefetch == 0 ? nil
                : Prefetcher(count: loader.batchCount, depth: loader.prefetch) { index in
                    loader.makeBatch(index, order: order, epoch: number)
                }
        }

        deinit { prefetcher?.cancel() }

        /// The next batch, or `nil` after the last one of the epoch.
        public func next() -> Batch? {
            guard delivered < loader.batchCount else { return nil }
            defer { delivered += 1 }
            return prefetcher?.take() ?? loader.makeBatch(delivered, order: order, epoch: number)
        }
    }

    // Distinct streams for the shuffle and the augmentation of one epoch.
    private static let shuffleStream: UInt64 = 0x5348_5546_464C_4521
    private static let augmentationStream: UInt64 = 0x4155_474D_454E_5421

    private func epochSeed(_ epoch: Int) -> UInt64 {
        SplitMix64.derive(seed, UInt64(bitPattern: Int64(epoch)))
    }

    /// Batch `index` of an epoch: a pure function of its arguments and the
    /// loader, which is what makes prefetching invisible in the results.
    func makeBatch(_ index: Int, order: [Int], epoch: Int) -> Batch {
        let start = (index * shardCount + shard) * batchSize
        let indices = Array(order[start..<min(start + batchSize, order.count)])
        let inputShape = dataset.sampleShape
        let inputSize = dataset.sampleSize
        let outputSize = sampleShape.reduce(1, *)
        let plainCopy = augmentation == .none
        let images = [Float](unsafeUninitializedCapacity: indices.count * outputSize) { out, initialized in
            dataset.images.withUnsafeBufferPointer { source in
                for (slot, sample) in indices.enumerated() {
                    let input = UnsafeBufferPointer(rebasing: source[sample * inputSize..<(sample + 1) * inputSize])
                    let output = UnsafeMutableBufferPointer(rebasing: out[slot * outputSize..<(slot + 1) * outputSize])
                    if plainCopy {
                        _ = output.update(fromContentsOf: input)
                    } else {
                        let draw = augmentation.draw(seed: augmentationSeed(sample: sample, epoch: epoch))
                        augmentation.write(input, shape: inputShape, draw: draw, into: output)
                    }
                }
            }
            initialized = indices.count * outputSize
        }
        return Batch(images: images, labels: indices.map { dataset.labels[$0] },
                     shape: [indices.count] + sampleShape, indices: indices)
    }
}

/// The background half of an epoch: one producer on a Dispatch queue builds
/// batches in order and hands them over through a locked FIFO, with at most
/// `depth` waiting. Semaphores count free slots and ready batches; the lock
/// guards the FIFO and the cancel flag.
private final class Prefetcher: Sendable {
    /// The FIFO of built batches and the cancel flag.
    private let queue = Mutex<(ready: [Batch], cancelled: Bool)>(([], false))
    private let freeSlots = DispatchSemaphore(value: 0)
    private let filled = DispatchSemaphore(value: 0)

    init(count: Int, depth: Int, make: @escaping @Sendable (Int) -> Batch) {
        // Start at zero and signal up: libdispatch traps when a semaphore is
        // destroyed below its initial value, which an abandoned epoch would
        // otherwise leave behind.
        for _ in 0..<depth { freeSlots.signal() }
        // The closure keeps `self` alive until the producer has finished.
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            for index in 0..<count {
                freeSlots.wait()
                if queue.withLock({ $0.cancelled }) { return }
                let batch = make(index)
                queue.withLock { $0.ready.append(batch) }
                filled.signal()
            }
        }
    }

    /// The next batch in order, waiting for the producer if need be.
    func take() -> Batch {
        filled.wait()
        let batch = queue.withLock { $0.ready.removeFirst() }
        freeSlots.signal()
        return batch
    }

    /// Stops the producer at its next batch boundary.
    func cancel() {
        queue.withLock { $0.cancelled = true }
        freeSlots.signal()  // wakes a producer waiting for a free slot
    }
}
