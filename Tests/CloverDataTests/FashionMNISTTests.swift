import CloverData
import Foundation
import CloverTestSupport
import XCTest

/// The real data set, as the Debian package `dataset-fashion-mnist` installs it.
final class FashionMNISTTests: XCTestCase {
    private func requireDataset() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: FashionMNIST.defaultDirectory, isDirectory: &isDirectory),
              isDirectory.boolValue else {
            throw TestSupport.unavailable("\(FashionMNIST.defaultDirectory) is absent: install the Debian package "
                + "dataset-fashion-mnist (scripts/setup.sh does)")
        }
    }

    func testTrainAndTestSplits() throws {
        try requireDataset()
        let start = Date()
        let train = try FashionMNIST.load(.train)
        let trainSeconds = Date().timeIntervalSince(start)
        let test = try FashionMNIST.load(.test)
        print("Fashion-MNIST loaded: train in \(trainSeconds) s, both in \(Date().timeIntervalSince(start)) s")

        XCTAssertEqual(train.count, 60_000)
        XCTAssertEqual(test.count, 10_000)
        for dataset in [train, test] {
            XCTAssertEqual(dataset.sampleShape, [1, 28, 28])
            XCTAssertEqual(dataset.classCount, 10)
            XCTAssertEqual(dataset.classNames, FashionMNIST.classNames)
            XCTAssertEqual(dataset.images.count, dataset.count * 784)
            let stats = statistics(dataset.images)
            XCTAssertEqual(stats.min, 0)
            XCTAssertEqual(stats.max, 1)
        }
        var histogram = [Int](repeating: 0, count: 10)
        for label in train.labels { histogram[Int(label)] += 1 }
        XCTAssertEqual(histogram, [Int](repeating: 6000, count: 10))
        histogram = [Int](repeating: 0, count: 10)
        for label in test.labels { histogram[Int(label)] += 1 }
        XCTAssertEqual(histogram, [Int](repeating: 1000, count: 10))

        // The training pixels' mean and std match the published constants.
        let stats = statistics(train.images)
        XCTAssertEqual(stats.mean, Double(FashionMNIST.normalization.mean[0]), accuracy: 5e-4)
        XCTAssertEqual(stats.std, Double(FashionMNIST.normalization.std[0]), accuracy: 5e-4)
        // The first training image is an ankle boot (label 9) in every copy of the data set.
        XCTAssertEqual(train.labels.prefix(5), [9, 0, 0, 3, 0])
    }

    /// One pass over a buffer pointer: closures over 47 million values are
    /// slow in the debug builds tests run in.
    private func statistics(_ values: [Float]) -> (min: Float, max: Float, mean: Double, std: Double) {
        values.withUnsafeBufferPointer { buffer in
            var (low, high, sum, sumOfSquares) = (Float.infinity, -Float.infinity, 0.0, 0.0)
            for value in buffer {
                low = Swift.min(low, value)
                high = Swift.max(high, value)
                sum += Double(value)
                sumOfSquares += Double(value) * Double(value)
            }
            let mean = sum / Double(buffer.count)
            return (low, high, mean, (sumOfSquares / Double(buffer.count) - mean * mean).squareRoot())
        }
    }
}
