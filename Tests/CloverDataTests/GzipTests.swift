import CloverData
import XCTest

final class GzipTests: XCTestCase {
    /// Compressible text followed by incompressible noise, over 64 KiB so the
    /// output buffer has to be sized from the trailer (or grow).
    private func sampleBytes() -> [UInt8] {
        var state: UInt32 = 12345
        let text = Array(String(repeating: "Clover reads gzip through zlib. ", count: 3000).utf8)
        let noise = (0..<50_000).map { _ -> UInt8 in
            state = state &* 1_664_525 &+ 1_013_904_223
            return UInt8(state >> 24)
        }
        return text + noise
    }

    func testRoundTripAgainstGzipCommand() throws {
        let directory = try temporaryDirectory()
        let original = sampleBytes()
        try write(original, to: directory + "/sample")
        let compressed = try gzipFile(directory + "/sample")
        XCTAssertEqual(try Gzip.decompressFile(atPath: compressed), original)
        XCTAssertEqual(try Gzip.decompress(try readBytes(compressed)), original)
    }

    func testEmptyPayloadAndConcatenatedMembers() throws {
        let directory = try temporaryDirectory()
        try write([], to: directory + "/empty")
        XCTAssertEqual(try Gzip.decompressFile(atPath: try gzipFile(directory + "/empty")), [])

        try write(Array("first ".utf8), to: directory + "/a")
        try write(Array("second".utf8), to: directory + "/b")
        let joined = try readBytes(try gzipFile(directory + "/a")) + readBytes(try gzipFile(directory + "/b"))
        try write(joined, to: directory + "/joined.gz")
        XCTAssertEqual(try Gzip.decompressFile(atPath: directory + "/joined.gz"), Array("first second".utf8))
    }

    func testTruncatedGzipNamesTheFile() throws {
        let directory = try temporaryDirectory()
        try write(sampleBytes(), to: directory + "/sample")
        let compressed = try readBytes(try gzipFile(directory + "/sample"))
        let path = directory + "/truncated.gz"
        try write(Array(compressed.prefix(compressed.count / 2)), to: path)
        assertDataError(naming: path, containing: "truncated") { try Gzip.decompressFile(atPath: path) }
        // Cut inside the 8-byte trailer: the data is whole but unchecked.
        try write(Array(compressed.dropLast(3)), to: path)
        assertDataError(naming: path, containing: "truncated") { try Gzip.decompressFile(atPath: path) }
    }

    func testCorruptGzipNamesTheFile() throws {
        let directory = try temporaryDirectory()
        try write(sampleBytes(), to: directory + "/sample")
        var compressed = try readBytes(try gzipFile(directory + "/sample"))
        let path = directory + "/corrupt.gz"
        // Flipping a byte of the stored CRC-32 leaves the deflate data intact,
        // so only the checksum can catch it.
        compressed[compressed.count - 6] ^= 0xFF
        try write(compressed, to: path)
        assertDataError(naming: path, containing: "corrupt") { try Gzip.decompressFile(atPath: path) }

        try write(Array("plain text, not gzip".utf8), to: path)
        assertDataError(naming: path, containing: "not gzip") { try Gzip.decompressFile(atPath: path) }
        try write([], to: path)
        assertDataError(naming: path, containing: "empty") { try Gzip.decompressFile(atPath: path) }
        try write(try readBytes(try gzipFile(directory + "/sample")) + [1, 2, 3], to: path)
        assertDataError(naming: path, containing: "trailing") { try Gzip.decompressFile(atPath: path) }
        assertDataError(naming: directory + "/missing.gz", containing: "no such file") {
            try Gzip.decompressFile(atPath: directory + "/missing.gz")
        }
    }
}
