@testable import clover
import CloverTestSupport
import Foundation
import XCTest

/// `clover models --json` and `--check-launches --json`: every key is always
/// there, and every figure agrees with the text table of the same command
/// (scripts/gpu_session.sh reads the JSON where it used to scrape the table).
final class ModelsCommandTests: XCTestCase {
    private func tempDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "clover-models-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// `clover arguments`'s stdout, failing the test on a non-zero exit.
    private func clover(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let outcome = try TestSupport.run(try TestSupport.cloverBinary(testFile: #filePath), arguments,
                                          directory: try tempDirectory(), timeout: 240,
                                          label: "clover " + arguments.joined(separator: " "), file: file, line: line)
        XCTAssertEqual(outcome.status, 0, "clover \(arguments): \(outcome.stderr)", file: file, line: line)
        return outcome.stdout
    }

    /// The cells of a table's body rows (after the header and its rule);
    /// columns are two or more spaces apart, and no cell holds two spaces.
    private func tableRows(_ text: some StringProtocol) -> [[String]] {
        text.split(separator: "\n").dropFirst(2).map { line in
            line.components(separatedBy: "  ").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
    }

    private func object(_ json: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
    }

    func testListingJSONHoldsTheTablesFigures() throws {
        let text = try clover(["models"])
        let json = try clover(["models", "--json"])

        let document = try object(json)
        XCTAssertEqual(Set(document.keys), ["models"])
        let rows = try XCTUnwrap(document["models"] as? [[String: Any]])
        for row in rows {
            XCTAssertEqual(Set(row.keys), ["name", "input", "input_shape", "classes", "parameters", "multiply_adds"],
                           "\(row)")
        }

        let listing = try JSONDecoder().decode(ModelsCommand.Listing.self, from: Data(json.utf8))
        let table = tableRows(text)
        XCTAssertEqual(listing.models.map(\.name), table.map { $0[0] })
        XCTAssertGreaterThan(listing.models.count, 10, "the whole zoo")
        for (model, cells) in zip(listing.models, table) {
            XCTAssertEqual(cells.count, 5, "\(cells)")
            XCTAssertEqual(model.input, cells[1])
            XCTAssertEqual(model.input, model.inputShape.map(String.init).joined(separator: "x"))
            XCTAssertEqual("\(model.classes)", cells[2])
            XCTAssertEqual("\(model.parameters)", cells[3].replacingOccurrences(of: ",", with: ""), model.name)
            // The table rounds to 0.001 G; the JSON count is exact.
            XCTAssertTrue(cells[4].hasSuffix(" G"), cells[4])
            let gigas = try XCTUnwrap(Double(cells[4].dropLast(2)), cells[4])
            XCTAssertEqual(Double(model.multiplyAdds) / 1e9, gigas, accuracy: 0.0005 + 1e-9, model.name)
        }
    }

    func testFilteredListingJSON() throws {
        let listing = try JSONDecoder().decode(ModelsCommand.Listing.self,
                                               from: Data(try clover(["models", "--filter", "lenet", "--json"]).utf8))
        XCTAssertEqual(listing.models.map(\.name), ["lenet5"])
        XCTAssertEqual(listing.models.first?.inputShape, [1, 28, 28])
        XCTAssertEqual(listing.models.first?.classes, 10)
    }

    func testLaunchCheckJSONHoldsTheTablesFigures() throws {
        try TestSupport.requireOpenCL()
        let arguments = ["models", "--check-launches", "--filter", "lenet5", "--batch", "4"]
        let text = try clover(arguments)
        let json = try clover(arguments + ["--json"])

        let document = try object(json)
        XCTAssertEqual(Set(document.keys), ["batch", "device", "paths", "launch_profile", "models"])
        let rows = try XCTUnwrap(document["models"] as? [[String: Any]])
        XCTAssertEqual(rows.count, 1)
        XCTAssertEqual(Set(rows[0].keys), ["name", "batch", "planned_input", "launches", "planned_peak_bytes", "error"])
        XCTAssertTrue(rows[0]["error"] is NSNull, "a planned step's error is null, not absent: \(rows[0])")

        let report = try JSONDecoder().decode(ModelsCommand.LaunchReport.self, from: Data(json.utf8))
        XCTAssertEqual(report.batch, 4)
        XCTAssertEqual(report.paths, "gpu")
        let header = try XCTUnwrap(text.split(separator: "\n").first)
        XCTAssertEqual(String(header), "Planning one training step per model at batch 4 on \(report.device), "
                       + "gpu kernel paths, against the \(report.launchProfile)")

        let table = tableRows(text.split(separator: "\n", maxSplits: 1)[1])
        XCTAssertEqual(table.count, 1, "\(table)")
        let (model, cells) = (report.models[0], table[0])
        XCTAssertEqual(cells, [model.name, try XCTUnwrap(model.plannedInput), "\(try XCTUnwrap(model.launches))",
                               Format.bytes(try XCTUnwrap(model.plannedPeakBytes)), "ok"])
        XCTAssertEqual(model.name, "lenet5")
        XCTAssertEqual(model.batch, 4)
        XCTAssertEqual(model.plannedInput, "4x1x28x28")
        XCTAssertNil(model.error)
        XCTAssertGreaterThan(model.launches ?? 0, 0)
        XCTAssertGreaterThan(model.plannedPeakBytes ?? 0, 0)
    }

    /// A step that fails to plan keeps every key, its figures null and its error given.
    func testFailedRowEncodesNullFigures() throws {
        let row = ModelsCommand.LaunchReport.Model(name: "m", batch: 2, plannedInput: nil, launches: nil,
                                                   plannedPeakBytes: nil, error: "launch outside the profile")
        let json = try ModelsCommand.encoded(row)
        let object = try self.object(json)
        XCTAssertEqual(Set(object.keys), ["name", "batch", "planned_input", "launches", "planned_peak_bytes", "error"])
        for key in ["planned_input", "launches", "planned_peak_bytes"] {
            XCTAssertTrue(object[key] is NSNull, "\(key): \(json)")
        }
        XCTAssertEqual(try JSONDecoder().decode(ModelsCommand.LaunchReport.Model.self, from: Data(json.utf8)), row)
    }
}
