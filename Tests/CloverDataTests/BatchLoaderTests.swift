import CloverData
import XCTest

final class BatchLoaderTests: XCTestCase {
    private func dataset(count: Int = 10) throws -> Dataset {
        try Dataset.synthetic(count: count, sampleShape: [3, 8, 8], classCount: 4, seed: 99)
    }

    private func batches(_ loader: BatchLoader, epoch: Int) -> [Batch] {
        Array(loader.epoch(epoch))
    }

    func testSyntheticDatasetIsSeeded() throws {
        let a = try dataset(count: 50)
        XCTAssertEqual(a.images, try dataset(count: 50).images)
        XCTAssertEqual(a.labels, try dataset(count: 50).labels)
        let other = try Dataset.synthetic(count: 50, sampleShape: [3, 8, 8], classCount: 4, seed: 100)
        XCTAssertNotEqual(a.images, other.images)
        XCTAssertEqual(a.images.count, 50 * 192)
        XCTAssertTrue(a.images.allSatisfy { (0..<1).contains($0) })
        XCTAssertEqual(Set(a.labels), [0, 1, 2, 3])
    }

    func testSameSeedSameBatchesAndEpochsDiffer() throws {
        let data = try dataset(count: 37)
        let make = { try BatchLoader(dataset: data, batchSize: 8, augmentation: .cifarLike, seed: 5) }
        let loader = try make()
        let epoch0 = batches(loader, epoch: 0)
        XCTAssertEqual(epoch0, batches(try make(), epoch: 0))
        XCTAssertEqual(epoch0, batches(loader, epoch: 0))
        let epoch1 = batches(loader, epoch: 1)
        XCTAssertNotEqual(epoch0.flatMap(\.indices), epoch1.flatMap(\.indices))
        XCTAssertNotEqual(epoch0.flatMap(\.images), epoch1.flatMap(\.images))
        // Each epoch visits every sample exactly once.
        for epoch in [epoch0, epoch1] {
            XCTAssertEqual(epoch.flatMap(\.indices).sorted(), Array(0..<37))
        }
        let otherSeed = try BatchLoader(dataset: data, batchSize: 8, augmentation: .cifarLike, seed: 6)
        XCTAssertNotEqual(epoch0.flatMap(\.indices), batches(otherSeed, epoch: 0).flatMap(\.indices))
    }

    func testBackgroundPreparationMatchesSynchronous() throws {
        let data = try dataset(count: 200)
        let synchronous = try BatchLoader(dataset: data, batchSize: 16, augmentation: .cifarLike, seed: 1,
                                          prefetch: 0)
        for depth in [1, 4] {
            let background = try BatchLoader(dataset: data, batchSize: 16, augmentation: .cifarLike, seed: 1,
                                             prefetch: depth)
            for epoch in 0..<3 {
                XCTAssertEqual(batches(background, epoch: epoch), batches(synchronous, epoch: epoch))
            }
        }
    }

    func testEachSampleIsAugmentedWithItsOwnSeed() throws {
        let data = try dataset(count: 12)
        let loader = try BatchLoader(dataset: data, batchSize: 5, augmentation: .cifarLike, seed: 3)
        XCTAssertEqual(loader.sampleShape, [3, 8, 8])
        for batch in loader.epoch(4) {
            XCTAssertEqual(batch.shape, [batch.count, 3, 8, 8])
            for (slot, index) in batch.indices.enumerated() {
                let expected = try loader.augmentation.apply(to: data.image(at: index), shape: data.sampleShape,
                                                             seed: loader.augmentationSeed(sample: index, epoch: 4))
                XCTAssertEqual(Array(batch.images[slot * 192..<(slot + 1) * 192]), expected)
                XCTAssertEqual(batch.labels[slot], data.labels[index])
            }
        }
    }

    func testLastPartialBatchAndDropLast() throws {
        let data = try dataset(count: 10)
        let keep = try BatchLoader(dataset: data, batchSize: 4)
        XCTAssertEqual(keep.batchCount, 3)
        XCTAssertEqual(batches(keep, epoch: 0).map(\.count), [4, 4, 2])
        XCTAssertEqual(batches(keep, epoch: 0).last?.images.count, 2 * 192)
        let drop = try BatchLoader(dataset: data, batchSize: 4, dropLast: true)
        XCTAssertEqual(drop.batchCount, 2)
        XCTAssertEqual(batches(drop, epoch: 0).map(\.count), [4, 4])
        // An exact multiple loses nothing either way.
        XCTAssertEqual(try BatchLoader(dataset: data, batchSize: 5, dropLast: true).batchCount, 2)
        XCTAssertEqual(try BatchLoader(dataset: data, batchSize: 20, dropLast: true).batchCount, 0)
        XCTAssertNil(try BatchLoader(dataset: data, batchSize: 20, dropLast: true).epoch(0).next())
    }

    func testUnshuffledUnaugmentedBatchesAreTheDataInOrder() throws {
        let data = try dataset(count: 10)
        let loader = try BatchLoader(dataset: data, batchSize: 3, shuffle: false)
        let all = batches(loader, epoch: 7)
        XCTAssertEqual(all.flatMap(\.indices), Array(0..<10))
        XCTAssertEqual(all.flatMap(\.images), data.images)
        XCTAssertEqual(all.flatMap(\.labels), data.labels)
    }

    func testPaddingAugmentationChangesSampleShape() throws {
        let data = try Dataset.synthetic(count: 6, sampleShape: [1, 28, 28], classCount: 10, seed: 0)
        let loader = try BatchLoader(dataset: data, batchSize: 4,
                                     augmentation: Augmentation(paddedSize: 32, normalization: FashionMNIST.normalization))
        XCTAssertEqual(loader.sampleShape, [1, 32, 32])
        XCTAssertEqual(loader.epoch(0).next()?.shape, [4, 1, 32, 32])
        XCTAssertThrowsError(try BatchLoader(dataset: data, batchSize: 4, augmentation: .cifar10Training))
        XCTAssertThrowsError(try BatchLoader(dataset: data, batchSize: 0))
    }

    func testAbandonedEpochsStopCleanly() throws {
        let data = try dataset(count: 400)
        let loader = try BatchLoader(dataset: data, batchSize: 8, augmentation: .cifarLike, prefetch: 3)
        for epoch in 0..<50 {
            let iterator = loader.epoch(epoch)
            _ = iterator.next()
        }
        let full = batches(loader, epoch: 0)
        XCTAssertEqual(full.count, 50)
        // An epoch dropped before its first batch is fine too.
        for epoch in 0..<20 { _ = loader.epoch(epoch) }
        XCTAssertEqual(batches(loader, epoch: 0), full)
    }
}

private extension Augmentation {
    /// CIFAR-style augmentation for the 3×8×8 synthetic samples.
    static let cifarLike = Augmentation(cropPadding: 2, flipProbability: 0.5,
                                        normalization: Normalization(mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]))
}
