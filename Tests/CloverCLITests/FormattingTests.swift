@testable import clover
import CloverConformance
import Foundation
import XCTest

/// The CLI formats its own numbers (no `String(format:)` without
/// Foundation), so the formats are pinned here. They match C's printf except
/// at exact halves, which round away from zero rather than to even.
final class FormattingTests: XCTestCase {
    func testFixed() {
        XCTAssertEqual(Format.fixed(3.14159, decimals: 2), "3.14")
        XCTAssertEqual(Format.fixed(2.5, decimals: 0), "3")
        XCTAssertEqual(Format.fixed(0.125, decimals: 2), "0.13")
        XCTAssertEqual(Format.fixed(1.0, decimals: 3), "1.000")
        XCTAssertEqual(Format.fixed(0.05, decimals: 3), "0.050")
        XCTAssertEqual(Format.fixed(-1.5, decimals: 1), "-1.5")
        XCTAssertEqual(Format.fixed(-0.0001, decimals: 2), "0.00")
        XCTAssertEqual(Format.fixed(1234567.0, decimals: 1), "1234567.0")
        XCTAssertEqual(Format.fixed(.nan, decimals: 2), "nan")
        XCTAssertEqual(Format.fixed(-.infinity, decimals: 2), "-inf")
        XCTAssertEqual(Format.fixed(1e300, decimals: 2), "1.00e+300")
    }

    func testScientific() {
        XCTAssertEqual(Format.scientific(1.234e-7), "1.2e-07")
        XCTAssertEqual(Format.scientific(1.25e-7, digits: 2), "1.25e-07")
        XCTAssertEqual(Format.scientific(0), "0")
        XCTAssertEqual(Format.scientific(1), "1.0e+00")
        XCTAssertEqual(Format.scientific(10), "1.0e+01")
        XCTAssertEqual(Format.scientific(9.96), "1.0e+01")
        XCTAssertEqual(Format.scientific(0.001), "1.0e-03")
        XCTAssertEqual(Format.scientific(-2.5e-5, digits: 0), "-3e-05")
        XCTAssertEqual(Format.scientific(6.02e23, digits: 2), "6.02e+23")
        XCTAssertEqual(Format.scientific(1.5e-300), "1.5e-300")
        XCTAssertEqual(Format.scientific(.infinity), "inf")
        XCTAssertEqual(Format.scientific(.nan), "nan")
    }

    func testBytes() {
        XCTAssertEqual(Format.bytes(512), "512 B")
        XCTAssertEqual(Format.bytes(64 << 10), "64.0 KiB")
        XCTAssertEqual(Format.bytes(1 << 20), "1.0 MiB")
        XCTAssertEqual(Format.bytes(3 << 29), "1.5 GiB")
    }

    func testTable() {
        var table = TextTable([("op", .left), ("cases", .right)])
        table.append(["add", "18/18"])
        table.append(["softmax", "1/2"])
        XCTAssertEqual(table.render(), """
            op       cases
            -------  -----
            add      18/18
            softmax    1/2
            """)
    }

    func testOpSummaryIgnoresChecksThatDidNotRun() throws {
        // CaseResult's memberwise init is internal to CloverConformance; it
        // is Codable, so build one the way a report reader would.
        let json = """
            {"op": "relu", "label": "1", "passed": true, "forwardTolerance": "", "backwardTolerance": "",
             "forward": {"maxAbsolute": 2e-7, "maxRelative": 1e-7, "failures": 0, "compared": 1},
             "backward": {"maxAbsolute": 0, "maxRelative": 0, "failures": 0, "compared": 0}}
            """
        let a = try JSONDecoder().decode(CaseResult.self, from: Data(json.utf8))
        var b = a
        b.forward.maxAbsolute = 5e-7
        b.passed = false
        let summary = OpSummary(op: "relu", results: [a, b], seconds: 0)
        XCTAssertEqual(summary.passed, 1)
        XCTAssertEqual(summary.cases, 2)
        XCTAssertEqual(summary.forwardMaxAbsolute, 5e-7)
        XCTAssertNil(summary.backwardMaxAbsolute, "no case compared gradients")
        XCTAssertNil(summary.finiteDifferenceMaxRelative, "no case ran finite differences")
        XCTAssertTrue(ConformanceCommand.table([summary]).contains("FAIL"))
    }

    func testConformanceArguments() throws {
        let command = try ConformanceCommand.parse(["--device", "pocl", "--json", "/tmp/r.json", "--filter", "mat"])
        XCTAssertEqual(command.device, "pocl")
        XCTAssertEqual(command.json, "/tmp/r.json")
        XCTAssertEqual(command.filter, "mat")
    }
}
