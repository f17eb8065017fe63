import CloverData
import XCTest

final class CIFARTests: XCTestCase {
    /// `count` records whose pixel bytes are a function of the record number,
    /// each starting with `labelBytes(record)`.
    private func records(_ count: Int, first: Int, labelBytes: (Int) -> [UInt8]) -> [UInt8] {
        (0..<count).flatMap { record -> [UInt8] in
            labelBytes(first + record) + (0..<3072).map { UInt8(truncatingIfNeeded: $0 * 7 + first + record) }
        }
    }

    func testCIFAR10ReadsAllBatchesInOrder() throws {
        let directory = try temporaryDirectory()
        // Two records per training file, three in the test file.
        for file in 1...5 {
            try write(records(2, first: (file - 1) * 2) { [UInt8($0 % 10)] },
                      to: directory + "/data_batch_\(file).bin")
        }
        try write(records(3, first: 100) { [UInt8(9 - $0 % 10)] }, to: directory + "/test_batch.bin")

        let train = try CIFAR10.load(.train, directory: directory)
        XCTAssertEqual(train.count, 10)
        XCTAssertEqual(train.sampleShape, [3, 32, 32])
        XCTAssertEqual(train.classCount, 10)
        XCTAssertEqual(train.labels, (0..<10).map { Int32($0) })
        XCTAssertEqual(train.classNames[0], "airplane")
        // Sample 7, channel 1 (green), row 2, column 5 is pixel byte 1024 + 64 + 5.
        let image = Array(train.image(at: 7))
        XCTAssertEqual(image[1 * 1024 + 2 * 32 + 5], Float(UInt8(truncatingIfNeeded: (1024 + 69) * 7 + 7)) / 255)
        XCTAssertEqual(image[0], Float(7) / 255)

        let test = try CIFAR10.load(.test, directory: directory)
        XCTAssertEqual(test.labels, [9, 8, 7])
        XCTAssertEqual(test.image(at: 2).first, Float(102) / 255)
    }

    func testCIFAR100UsesFineLabelsAndFindsNestedFolder() throws {
        let root = try temporaryDirectory()
        let directory = root + "/cifar-100-binary"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try write(records(4, first: 0) { [UInt8($0 % 20), UInt8(99 - $0)] }, to: directory + "/train.bin")
        try write(records(1, first: 50) { _ in [19, 42] }, to: directory + "/test.bin")

        let train = try CIFAR100.load(.train, directory: root)
        XCTAssertEqual(train.count, 4)
        XCTAssertEqual(train.classCount, 100)
        XCTAssertEqual(train.labels, [99, 98, 97, 96])
        XCTAssertEqual(Array(train.image(at: 2).prefix(2)), [Float(2) / 255, Float(9) / 255])
        XCTAssertEqual(CIFAR100.classNames.count, 100)
        XCTAssertEqual(CIFAR100.classNames[42], "leopard")
        XCTAssertEqual(try CIFAR100.load(.test, directory: root).labels, [42])
    }

    func testWrongSizeNamesTheFile() throws {
        let directory = try temporaryDirectory()
        try write(records(1, first: 0) { _ in [3] } + [1, 2, 3], to: directory + "/test_batch.bin")
        assertDataError(naming: directory + "/test_batch.bin", containing: "not a positive multiple of the 3073-byte") {
            try CIFAR10.load(.test, directory: directory)
        }
        try write([], to: directory + "/test_batch.bin")
        assertDataError(naming: directory + "/test_batch.bin", containing: "multiple") {
            try CIFAR10.load(.test, directory: directory)
        }
        // A CIFAR-10 file read as CIFAR-100: 3073 is not a multiple of 3074.
        try write(records(1, first: 0) { _ in [3] }, to: directory + "/test.bin")
        assertDataError(naming: directory + "/test.bin", containing: "3074-byte") {
            try CIFAR100.load(.test, directory: directory)
        }
        assertDataError(naming: directory + "/data_batch_1.bin", containing: "no such file") {
            try CIFAR10.load(.train, directory: directory)
        }
    }

    func testLabelOutOfRangeNamesTheFile() throws {
        let directory = try temporaryDirectory()
        try write(records(3, first: 0) { $0 == 2 ? [10] : [1] }, to: directory + "/test_batch.bin")
        assertDataError(naming: directory + "/test_batch.bin", containing: "label 10 of record 2 is out of range") {
            try CIFAR10.load(.test, directory: directory)
        }
        try write(records(1, first: 0) { _ in [3, 100] }, to: directory + "/test.bin")
        assertDataError(naming: directory + "/test.bin", containing: "label 100 of record 0") {
            try CIFAR100.load(.test, directory: directory)
        }
        try write(records(1, first: 0) { _ in [20, 5] }, to: directory + "/test.bin")
        assertDataError(naming: directory + "/test.bin", containing: "coarse label 20") {
            try CIFAR100.load(.test, directory: directory)
        }
    }
}
