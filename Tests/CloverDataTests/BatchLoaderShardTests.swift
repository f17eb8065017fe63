import CloverData
import XCTest

/// Sharded loaders (data-parallel training): the shards of one global batch
/// are disjoint, consecutive parts of the unsharded loader's batch of
/// `batchSize × shardCount`, augmentation included.
final class BatchLoaderShardTests: XCTestCase {
    func testShardsConcatenateToTheGlobalBatch() throws {
        let set = try Dataset.synthetic(count: 70, sampleShape: [1, 6, 6], classCount: 3, seed: 5)
        let augmentation = Augmentation(cropPadding: 1, flipProbability: 0.5)
        let global = try BatchLoader(dataset: set, batchSize: 24, dropLast: true, augmentation: augmentation, seed: 9)
        let shards = try (0..<3).map {
            try BatchLoader(dataset: set, batchSize: 8, dropLast: true, augmentation: augmentation, seed: 9,
                            shard: $0, shardCount: 3)
        }
        XCTAssertEqual(shards.map(\.batchCount), [2, 2, 2])
        XCTAssertEqual(global.batchCount, 2)
        for epoch in 0..<2 {
            let whole = Array(global.epoch(epoch))
            let parts = shards.map { Array($0.epoch(epoch)) }
            for (i, batch) in whole.enumerated() {
                XCTAssertEqual(parts.flatMap { $0[i].indices }, batch.indices)
                XCTAssertEqual(parts.flatMap { $0[i].images }, batch.images)
                XCTAssertEqual(parts.flatMap { $0[i].labels }, batch.labels)
            }
            XCTAssertEqual(Set(parts.flatMap { $0.flatMap(\.indices) }).count, 48, "disjoint shards")
        }
    }

    func testBadShardsAreRefused() throws {
        let set = try Dataset.synthetic(count: 10, sampleShape: [1, 2, 2], classCount: 2, seed: 1)
        XCTAssertThrowsError(try BatchLoader(dataset: set, batchSize: 2, dropLast: true, shard: 2, shardCount: 2))
        XCTAssertThrowsError(try BatchLoader(dataset: set, batchSize: 2, dropLast: true, shard: 0, shardCount: 0))
        XCTAssertThrowsError(try BatchLoader(dataset: set, batchSize: 2, dropLast: false, shard: 0, shardCount: 2))
    }
}
