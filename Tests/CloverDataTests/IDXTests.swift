import CloverData
import XCTest

final class IDXTests: XCTestCase {
    private let pixels: [UInt8] = (0..<(3 * 2 * 4)).map { UInt8($0 * 10) }

    func testParsesImagesAndLabelsPlainAndGzipped() throws {
        let directory = try temporaryDirectory()
        let imagesPath = directory + "/images-idx3-ubyte"
        try write(idxBytes(magic: 0x803, dimensions: [3, 2, 4], values: pixels), to: imagesPath)
        let images = try IDXArray(contentsOfFile: imagesPath, expectedMagic: IDXArray.imagesMagic)
        XCTAssertEqual(images.dimensions, [3, 2, 4])
        XCTAssertEqual(Array(images.values), pixels)

        let gzipped = try IDXArray(contentsOfFile: try gzipFile(imagesPath), expectedMagic: IDXArray.imagesMagic)
        XCTAssertEqual(gzipped.dimensions, [3, 2, 4])
        XCTAssertEqual(Array(gzipped.values), pixels)

        let labels = try IDXArray(bytes: idxBytes(magic: 0x801, dimensions: [3], values: [7, 0, 9]),
                                  expectedMagic: IDXArray.labelsMagic)
        XCTAssertEqual(labels.dimensions, [3])
        XCTAssertEqual(Array(labels.values), [7, 0, 9])
    }

    func testDatasetFromIDXPairScalesPixels() throws {
        let directory = try temporaryDirectory()
        try write(idxBytes(magic: 0x803, dimensions: [3, 2, 4], values: pixels), to: directory + "/images")
        try write(idxBytes(magic: 0x801, dimensions: [3], values: [2, 0, 1]), to: directory + "/labels")
        let dataset = try Dataset(idxImagesFile: directory + "/images", labelsFile: directory + "/labels",
                                  classCount: 3)
        XCTAssertEqual(dataset.count, 3)
        XCTAssertEqual(dataset.sampleShape, [1, 2, 4])
        XCTAssertEqual(dataset.labels, [2, 0, 1])
        XCTAssertEqual(dataset.images, pixels.map { Float($0) / 255 })
        XCTAssertEqual(Array(dataset.image(at: 1)), pixels[8..<16].map { Float($0) / 255 })
    }

    func testWrongMagicNamesTheFile() throws {
        let path = try temporaryDirectory() + "/labels"
        try write(idxBytes(magic: 0x803, dimensions: [1, 1, 1], values: [0]), to: path)
        assertDataError(naming: path, containing: "wrong magic number 0x00000803") {
            try IDXArray(contentsOfFile: path, expectedMagic: IDXArray.labelsMagic)
        }
        try write([0, 0, 8], to: path)
        assertDataError(naming: path, containing: "truncated") {
            try IDXArray(contentsOfFile: path, expectedMagic: IDXArray.labelsMagic)
        }
    }

    func testTruncatedIDXNamesTheFile() throws {
        let directory = try temporaryDirectory()
        let path = directory + "/images"
        let whole = idxBytes(magic: 0x803, dimensions: [3, 2, 4], values: pixels)
        try write(Array(whole.dropLast(5)), to: path)
        assertDataError(naming: path, containing: "truncated IDX data") {
            try IDXArray(contentsOfFile: path, expectedMagic: IDXArray.imagesMagic)
        }
        try write(Array(whole.prefix(10)), to: path)
        assertDataError(naming: path, containing: "truncated IDX header") {
            try IDXArray(contentsOfFile: path, expectedMagic: IDXArray.imagesMagic)
        }
        try write(whole + [0], to: path)
        assertDataError(naming: path, containing: "unexpected bytes") {
            try IDXArray(contentsOfFile: path, expectedMagic: IDXArray.imagesMagic)
        }
        // Truncated inside a gzip-compressed IDX file: gzip reports it.
        try write(whole, to: path)
        let compressed = try readBytes(try gzipFile(path))
        try write(Array(compressed.dropLast(12)), to: path + ".gz")
        assertDataError(naming: path + ".gz", containing: "truncated") {
            try IDXArray(contentsOfFile: path + ".gz", expectedMagic: IDXArray.imagesMagic)
        }
    }

    /// A Fashion-MNIST directory of four tiny files, with the labels given.
    private func fakeFashionMNIST(labels: [UInt8], imageCount: Int? = nil) throws -> String {
        let directory = try temporaryDirectory()
        let count = imageCount ?? labels.count
        for split in Dataset.Split.allCases {
            let names = FashionMNIST.fileNames(split)
            let imagesPath = directory + "/" + String(names.images.dropLast(3))
            let labelsPath = directory + "/" + String(names.labels.dropLast(3))
            try write(idxBytes(magic: 0x803, dimensions: [count, 28, 28],
                               values: [UInt8](repeating: 255, count: count * 784)), to: imagesPath)
            try write(idxBytes(magic: 0x801, dimensions: [labels.count], values: labels), to: labelsPath)
            try gzipFile(imagesPath)
            try gzipFile(labelsPath)
        }
        return directory
    }

    /// Files that declare no items would train on nothing and exit 0.
    func testFilesDeclaringZeroItemsAreErrorsNamingThem() throws {
        let directory = try fakeFashionMNIST(labels: [])
        let names = FashionMNIST.fileNames(.train)
        assertDataError(naming: names.images, containing: "0 items") {
            try FashionMNIST.load(.train, directory: directory)
        }
        assertDataError(naming: "zero-rows", containing: "is 0") {
            try IDXArray(bytes: idxBytes(magic: 0x803, dimensions: [2, 0, 4], values: []),
                         expectedMagic: IDXArray.imagesMagic, source: "zero-rows")
        }
    }

    func testFashionMNISTFromAnotherDirectory() throws {
        let directory = try fakeFashionMNIST(labels: [9, 0, 3])
        let test = try FashionMNIST.load(.test, directory: directory)
        XCTAssertEqual(test.count, 3)
        XCTAssertEqual(test.sampleShape, [1, 28, 28])
        XCTAssertEqual(test.labels, [9, 0, 3])
        XCTAssertEqual(test.classNames[9], "Ankle boot")
        XCTAssertTrue(test.images.allSatisfy { $0 == 1 })
    }

    func testLabelOutOfRangeNamesTheFile() throws {
        let directory = try fakeFashionMNIST(labels: [9, 10, 3])
        let path = directory + "/train-labels-idx1-ubyte.gz"
        assertDataError(naming: path, containing: "label 10 of sample 1 is out of range 0..<10") {
            try FashionMNIST.load(.train, directory: directory)
        }
    }

    func testCountMismatchNamesBothFiles() throws {
        let directory = try fakeFashionMNIST(labels: [1, 2, 3], imageCount: 2)
        let path = directory + "/train-labels-idx1-ubyte.gz"
        assertDataError(naming: path, containing: "count mismatch") {
            try FashionMNIST.load(.train, directory: directory)
        }
        assertDataError(naming: directory + "/train-images-idx3-ubyte.gz", containing: "count mismatch") {
            try FashionMNIST.load(.train, directory: directory)
        }
    }

    func testMissingDirectoryNamesTheFile() throws {
        let directory = try temporaryDirectory() + "/nowhere"
        assertDataError(naming: directory + "/t10k-images-idx3-ubyte.gz", containing: "no such file") {
            try FashionMNIST.load(.test, directory: directory)
        }
    }
}
