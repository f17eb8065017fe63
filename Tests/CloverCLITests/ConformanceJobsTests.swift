import CloverTestSupport
import Foundation
import XCTest

/// `clover conformance --jobs`: background processes warm the drivers' caches
/// and the foreground run still judges every case, so the report does not
/// depend on the number of jobs; the warming processes leave nothing behind.
final class ConformanceJobsTests: XCTestCase {
    private struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    private func tempDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "clover-jobs-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// `clover arguments` with empty caches (`XDG_CACHE_HOME`) and its own
    /// temporary folder (`TMPDIR`, where the position file lives), both in `dir`.
    private func clover(_ arguments: [String], in dir: String) throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try TestSupport.cloverBinary(testFile: #filePath))
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        for sub in ["cache", "tmp"] {
            try FileManager.default.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true)
        }
        environment["XDG_CACHE_HOME"] = dir + "/cache"
        environment["TMPDIR"] = dir + "/tmp"
        process.environment = environment
        let out = dir + "/stdout", err = dir + "/stderr"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        try process.run()
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus,
                       stdout: try String(contentsOfFile: out, encoding: .utf8),
                       stderr: try String(contentsOfFile: err, encoding: .utf8))
    }

    /// The per-op table of a report: from its header to the blank line after it.
    private func table(_ stdout: String) -> [Substring] {
        let lines = stdout.split(separator: "\n", omittingEmptySubsequences: false)
        guard let start = lines.firstIndex(where: { $0.hasPrefix("op ") }) else { return [] }
        return Array(lines[start...].prefix { !$0.isEmpty })
    }

    func testTwoJobsReportWhatOneJobReports() throws {
        try TestSupport.requireOpenCL()
        // Two op groups, cold: the warming process starts from the far end.
        let arguments = ["conformance", "--filter", "conv2d_"]
        let alone = try clover(arguments + ["--jobs", "1"], in: try tempDirectory())
        let dir = try tempDirectory()
        let warmed = try clover(arguments + ["--jobs", "2"], in: dir)
        XCTAssertEqual(alone.status, 0, alone.stdout + alone.stderr)
        XCTAssertEqual(warmed.status, 0, warmed.stdout + warmed.stderr)
        XCTAssertFalse(alone.stdout.contains("warming:"), alone.stdout)
        XCTAssertTrue(warmed.stdout.contains("warming: 1 background process compiling ahead (--jobs 2)"), warmed.stdout)
        XCTAssertTrue(warmed.stdout.contains("conformance: PASS — 14/14 cases passed"), warmed.stdout)
        // The same cases, inputs and kernels: the same table, errors included.
        XCTAssertFalse(table(alone.stdout).isEmpty, alone.stdout)
        XCTAssertEqual(table(alone.stdout), table(warmed.stdout))
        // The position file is gone once the run ends.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/tmp"), [])
    }

    func testJobsOutOfRangeAreClearErrors() throws {
        for value in ["0", "-3", "65", "9223372036854775807"] {
            let outcome = try clover(["conformance", "--jobs=\(value)"], in: try tempDirectory())
            XCTAssertNotEqual(outcome.status, 0, value)
            XCTAssertTrue(outcome.stderr.contains("--jobs must be between 1 and 64, not \(value)"), outcome.stderr)
        }
    }
}
