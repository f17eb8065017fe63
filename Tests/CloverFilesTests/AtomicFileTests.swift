import CloverFiles
import Foundation
import XCTest

final class AtomicFileTests: XCTestCase {
    private func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "clover-files-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    private func contents(_ directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    }

    func testWritesAndReplacesContentLeavingOnlyTheFile() throws {
        let directory = try temporaryDirectory()
        let path = directory + "/report.json"
        try AtomicFile.write([1, 2, 3], to: path)
        XCTAssertEqual(FileManager.default.contents(atPath: path), Data([1, 2, 3]))
        try AtomicFile.write(Data("longer content".utf8), to: path)
        XCTAssertEqual(FileManager.default.contents(atPath: path), Data("longer content".utf8))
        // Shorter than before: replaced, not overwritten in place.
        try AtomicFile.write("é\n", to: path, durable: false)
        XCTAssertEqual(FileManager.default.contents(atPath: path), Data("é\n".utf8))
        try AtomicFile.write([UInt8](), to: path)
        XCTAssertEqual(FileManager.default.contents(atPath: path), Data())
        XCTAssertEqual(try contents(directory), ["report.json"])
    }

    func testCreatesMissingDirectoriesOnlyWhenAsked() throws {
        let directory = try temporaryDirectory()
        let path = directory + "/a/b/cache.bin"
        XCTAssertThrowsError(try AtomicFile.write([7], to: path)) { error in
            guard let error = error as? FileWriteError else { return XCTFail("\(error)") }
            XCTAssertEqual(error.call, .open)
            XCTAssertEqual(error.code, ENOENT)
        }
        try AtomicFile.write([7], to: path, createDirectories: true)
        XCTAssertEqual(FileManager.default.contents(atPath: path), Data([7]))
        XCTAssertEqual(try contents(directory + "/a/b"), ["cache.bin"])
    }

    func testAFileWhereTheDirectoryShouldBeNamesThePathAndTheCall() throws {
        let directory = try temporaryDirectory()
        let file = directory + "/plain"
        try AtomicFile.write([0], to: file)
        let path = file + "/tuning.json"
        XCTAssertThrowsError(try AtomicFile.write([1], to: path)) { error in
            guard let error = error as? FileWriteError else { return XCTFail("\(error)") }
            XCTAssertEqual(error.path, path)
            XCTAssertEqual(error.call, .open)
            XCTAssertEqual(error.code, ENOTDIR)
            XCTAssertTrue(error.operand.hasPrefix(AtomicFile.temporaryPrefix(for: path)), error.operand)
            XCTAssertEqual("\(error)", "cannot write \(path): Not a directory (open \(error.operand))")
        }
        XCTAssertThrowsError(try AtomicFile.write([1], to: file + "/sub/tuning.json", createDirectories: true)) { error in
            guard let error = error as? FileWriteError else { return XCTFail("\(error)") }
            XCTAssertEqual(error.call, .makeDirectory)
            XCTAssertEqual(error.operand, file + "/sub")
            XCTAssertEqual("\(error)", "cannot write \(file)/sub/tuning.json: Not a directory (mkdir \(file)/sub)")
        }
        XCTAssertEqual(try contents(directory), ["plain"])
    }

    func testAFailedRenameRemovesTheTemporaryFileAndKeepsWhatWasThere() throws {
        let directory = try temporaryDirectory()
        // A non-empty directory at the destination: open and write succeed,
        // the rename cannot replace it.
        let path = directory + "/model.safetensors"
        try FileManager.default.createDirectory(atPath: path + "/kept", withIntermediateDirectories: true)
        XCTAssertThrowsError(try AtomicFile.write(Data(repeating: 9, count: 1 << 16), to: path)) { error in
            guard let error = error as? FileWriteError else { return XCTFail("\(error)") }
            XCTAssertEqual(error.path, path)
            XCTAssertEqual(error.call, .rename)
            let description = "\(error)"
            XCTAssertTrue(description.hasPrefix("cannot write \(path): "), description)
            XCTAssertTrue(description.hasSuffix("(rename \(error.operand) to \(path))"), description)
            XCTAssertTrue(description.contains(error.reason), description)
        }
        XCTAssertEqual(try contents(directory), ["model.safetensors"])
        XCTAssertEqual(try contents(path), ["kept"])
    }

    /// A path no one may create files in, root included.
    func testAPathTheSystemRefusesNamesThePathAndTheCall() {
        let path = "/proc/clover-atomic-file.json"
        XCTAssertThrowsError(try AtomicFile.write("x", to: path)) { error in
            guard let error = error as? FileWriteError else { return XCTFail("\(error)") }
            XCTAssertEqual(error.path, path)
            XCTAssertEqual(error.call, .open)
            XCTAssertEqual("\(error)", "cannot write \(path): \(error.reason) (open \(error.operand))")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }

    func testEveryCallIsNamedInTheDescription() {
        for call in FileWriteError.Call.allCases {
            let error = FileWriteError(path: "/d/f", call: call, operand: "/d/.f.tmp-1-0", code: ENOSPC)
            let expected = call == .rename ? "rename /d/.f.tmp-1-0 to /d/f" : "\(call.rawValue) /d/.f.tmp-1-0"
            XCTAssertEqual("\(error)", "cannot write /d/f: No space left on device (\(expected))")
        }
        XCTAssertEqual(FileWriteError.Call.allCases.map(\.rawValue), ["mkdir", "open", "write", "fsync", "symlink", "rename"])
    }

    func testReplacesAFileOrALinkWithALink() throws {
        let directory = try temporaryDirectory()
        let path = directory + "/current"
        try AtomicFile.write("old layout", to: path)
        try AtomicFile.replaceSymbolicLink(at: path, pointingTo: "checkpoint-000001")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: path), "checkpoint-000001")
        try AtomicFile.replaceSymbolicLink(at: path, pointingTo: "checkpoint-000002")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: path), "checkpoint-000002")
        XCTAssertEqual(try contents(directory), ["current"])
        XCTAssertThrowsError(try AtomicFile.replaceSymbolicLink(at: directory + "/missing/current", pointingTo: "x")) {
            XCTAssertEqual(($0 as? FileWriteError)?.call, .symlink, "\($0)")
        }
    }

    func testTemporaryNamesAreHiddenBesideTheFileAndUnique() {
        let first = AtomicFile.temporaryPath(for: "/runs/a/progress.json")
        let second = AtomicFile.temporaryPath(for: "/runs/a/progress.json")
        XCTAssertNotEqual(first, second)
        XCTAssertTrue(first.hasPrefix("/runs/a/.progress.json.tmp-\(getpid())-"), first)
        XCTAssertEqual(AtomicFile.temporaryPrefix(for: "report.json"), ".report.json.tmp-")
        XCTAssertEqual(AtomicFile.temporaryPrefix(for: "/x"), "/.x.tmp-")
    }

    /// Threads writing one path never share a temporary file: every write
    /// lands whole.
    func testConcurrentWritersOfOnePathEachLandWhole() throws {
        let directory = try temporaryDirectory()
        let path = directory + "/binary"
        let payloads = (0..<8).map { [UInt8](repeating: UInt8($0), count: 1 << 15) }
        let failures = NSLock()
        var errors: [Error] = []
        DispatchQueue.concurrentPerform(iterations: 64) { i in
            do {
                try AtomicFile.write(payloads[i % 8], to: path, durable: false)
            } catch {
                failures.withLock { errors.append(error) }
            }
        }
        XCTAssertTrue(errors.isEmpty, "\(errors)")
        let final = try XCTUnwrap(FileManager.default.contents(atPath: path))
        XCTAssertTrue(payloads.contains([UInt8](final)))
        XCTAssertEqual(try contents(directory), ["binary"])
    }
}
