import CloverData
import Foundation
import XCTest

extension XCTestCase {
    /// A fresh directory, removed when the test ends.
    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "clover-data-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func write(_ bytes: [UInt8], to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    func readBytes(_ path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Compresses `path` with the `gzip` command into `path.gz`, keeping the
    /// original, so the library is tested against an independent encoder.
    @discardableResult
    func gzipFile(_ path: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["gzip", "-k", "-f", "-9", path]
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "gzip failed on \(path)")
        return path + ".gz"
    }

    /// Asserts that `body` throws a ``DataError`` whose description names
    /// `path` and contains `phrase`.
    func assertDataError<T>(naming path: String, containing phrase: String,
                            file: StaticString = #filePath, line: UInt = #line,
                            _ body: () throws -> T) {
        do {
            _ = try body()
            XCTFail("expected an error naming \(path)", file: file, line: line)
        } catch let error as DataError {
            let text = error.description
            XCTAssertTrue(text.contains(path), "\(text) does not name \(path)", file: file, line: line)
            XCTAssertTrue(text.lowercased().contains(phrase.lowercased()),
                          "\(text) does not say \(phrase)", file: file, line: line)
        } catch {
            XCTFail("expected a DataError, got \(error)", file: file, line: line)
        }
    }
}

/// The bytes of an unsigned-byte IDX file.
func idxBytes(magic: UInt32, dimensions: [Int], values: [UInt8]) -> [UInt8] {
    func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }
    return bigEndian(magic) + dimensions.flatMap { bigEndian(UInt32($0)) } + values
}
