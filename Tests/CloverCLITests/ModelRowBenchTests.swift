import CloverTestSupport
import Foundation
import XCTest

/// `clover-bench --model NAME:BATCH`: scripts/cpu_peer.sh times Clover's side of the CPU table with
/// it, so the row must be exactly the model and batch asked for, and nothing else must run.
///
/// Needs the built `clover-bench` and an OpenCL device; skips without them
/// (fails under CLOVER_REQUIRE_DEVICE=1).
final class ModelRowBenchTests: XCTestCase {
    func testModelRowsAreTheWholeRunAtTheBatchAsked() throws {
        try TestSupport.requireOpenCL()
        let bench = try TestSupport.benchBinary(testFile: #filePath)
        let dir = NSTemporaryDirectory() + "clover-bench-model-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }

        let outcome = try TestSupport.run(
            bench, ["--model", "cifar-resnet20:3", "--model", "lenet5:5", "--no-reference", "--warmup", "1",
                    "--repeat", "1", "--json", dir + "/bench.json"],
            directory: dir, label: "clover-bench --model")
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        let report = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/bench.json"))) as? [String: Any])
        let rows = try XCTUnwrap(report["results"] as? [[String: Any]])
        XCTAssertEqual(rows.map { $0["name"] as? String }, ["model/cifar-resnet20", "model/lenet5"])
        let batches = rows.map { ($0["params"] as? [String: Int])?["batch"] }
        XCTAssertEqual(batches, [3, 5])
        let sides = rows.map { ($0["params"] as? [String: Int])?["side"] }
        XCTAssertEqual(sides, [32, 28], "each model at its standard input size")
        for row in rows {
            XCTAssertNil(row["error"], "\(row)")
            XCTAssertGreaterThan(row["images_per_second"] as? Double ?? 0, 0, "\(row)")
        }
    }

    func testMalformedOrUnknownModelRowsAreNamed() throws {
        let bench = try TestSupport.benchBinary(testFile: #filePath)
        for (row, says) in [("cifar-resnet20", "expected NAME:BATCH"), ("cifar-resnet20:0", "expected NAME:BATCH"),
                            ("no-such-net:4", "unknown model 'no-such-net'")] {
            let outcome = try TestSupport.run(bench, ["--model", row], directory: NSTemporaryDirectory(),
                                              label: "clover-bench --model \(row)")
            XCTAssertNotEqual(outcome.status, 0, row)
            XCTAssertTrue(outcome.stderr.contains("--model \(row)") && outcome.stderr.contains(says),
                          "\(row): \(outcome.stderr)")
        }
    }
}
