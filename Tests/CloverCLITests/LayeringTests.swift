import XCTest

/// The command-line tool only parses and prints: it reaches devices through
/// Clover's API (``Device`` and its services), never the runtime itself.
final class LayeringTests: XCTestCase {
    private var cliSources: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/clover")
    }

    func testNoCommandImportsTheRuntimeOrDrivesAContext() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: cliSources.path).filter { $0.hasSuffix(".swift") }
        XCTAssertGreaterThan(files.count, 10, "the CLI's sources were not found at \(cliSources.path)")
        for file in files {
            let text = try String(contentsOf: cliSources.appendingPathComponent(file), encoding: .utf8)
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let code = line.split(separator: "//", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
                XCTAssertFalse(code.contains("import CloverRuntime"), "\(file):\(number + 1) imports the runtime")
                XCTAssertNil(code.range(of: #"\.openCL\b"#, options: .regularExpression),
                             "\(file):\(number + 1) drives an OpenCL context: \(line)")
            }
        }
    }
}
