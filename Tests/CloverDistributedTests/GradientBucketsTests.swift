import CloverDistributed
import XCTest

/// The bucket plan every rank derives from the buffer size alone: complete,
/// disjoint, bounded, and in a fixed order from the end of the buffer.
final class GradientBucketsTests: XCTestCase {
    func testBucketsCoverTheBufferOnceFromItsEnd() {
        for count in [0, 1, 2, 3, 7, 255, 256, 257, 1000, 6_553_601] {
            // One-element buckets only for the smaller buffers: millions of them add nothing.
            for bytes in [1, 4, 12, 1024, GradientBuckets.defaultBucketBytes] where count < 100_000 || bytes >= 1024 {
                let plan = GradientBuckets(count: count, bucketBytes: bytes)
                let perBucket = max(1, bytes / 4)
                XCTAssertEqual(plan.ranges.map(\.count).reduce(0, +), count, "\(count) / \(bytes)")
                XCTAssertTrue(plan.ranges.allSatisfy { !$0.isEmpty && $0.count <= perBucket }, "\(count) / \(bytes)")
                // Contiguous, descending: each bucket ends where the next began.
                for (a, b) in zip(plan.ranges, plan.ranges.dropFirst()) { XCTAssertEqual(a.lowerBound, b.upperBound) }
                XCTAssertEqual(plan.ranges.first?.upperBound ?? count, count)
                XCTAssertEqual(plan.ranges.last?.lowerBound ?? 0, 0)
            }
        }
    }

    func testDefaultBucketIs25MiBOfFloats() {
        let plan = GradientBuckets(count: 25 << 20)  // 100 MiB of floats
        XCTAssertEqual(plan.ranges.count, 4)
        XCTAssertEqual(plan.ranges[0], (75 << 18)..<(25 << 20))
        XCTAssertEqual(GradientBuckets(count: 269_722).ranges, [0..<269_722])  // ResNet-20: one bucket
    }

    func testSamePlanForSameCount() {
        XCTAssertEqual(GradientBuckets(count: 123_457, bucketBytes: 4096), GradientBuckets(count: 123_457, bucketBytes: 4096))
    }

    func testHiddenFractionIsBounded() {
        var s = ReductionStatistics()
        XCTAssertEqual(s.hiddenFraction, 0)
        s.communicationSeconds = 2
        s.exposedSeconds = 0.5
        XCTAssertEqual(s.hiddenFraction, 0.75, accuracy: 1e-12)
        s.exposedSeconds = 3
        XCTAssertEqual(s.hiddenFraction, 0)
    }

    func testOpenMPIEnvironmentIsDetected() {
        XCTAssertTrue(Communicator.isLaunchedByOpenMPI(environment: ["OMPI_COMM_WORLD_SIZE": "2"]))
        XCTAssertFalse(Communicator.isLaunchedByOpenMPI(environment: ["PATH": "/usr/bin"]))
    }
}
