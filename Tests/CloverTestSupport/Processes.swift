import Foundation
import XCTest

extension TestSupport {
    /// What a finished child process left: its exit status and what it wrote.
    public struct ProcessOutcome {
        public let status: Int32
        public let stdout: String
        public let stderr: String
    }

    /// `mpirun` from `PATH`, or ``unavailable(_:)``.
    public static func mpirun() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/mpirun"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw unavailable("mpirun is not installed (scripts/setup.sh installs openmpi-bin)")
    }

    /// Runs `executable` with `arguments` (and `environment`, else this
    /// process's), its output going to files in `directory` rather than pipes
    /// (a full pipe would block a chatty child); a child still running after
    /// `timeout` seconds is terminated and the test fails naming `label`.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                           directory: String, timeout: Double = 300, label: String,
                           file: StaticString = #filePath, line: UInt = #line) throws -> ProcessOutcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let out = directory + "/stdout", err = directory + "/stderr"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        try process.run()
        if done.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            done.wait()
            XCTFail("\(label) did not end within \(Int(timeout)) s", file: file, line: line)
        }
        return ProcessOutcome(status: process.terminationStatus,
                              stdout: try String(contentsOfFile: out, encoding: .utf8),
                              stderr: try String(contentsOfFile: err, encoding: .utf8))
    }
}
