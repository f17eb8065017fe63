import CloverTestSupport
import Foundation
import XCTest

/// `clover-bench --distributed` under Open MPI's `mpirun` on POCL: a model
/// row whose gradients are averaged over 2 ranks carries the job's figures
/// (world size, global batch, bytes allreduced, time in `MPI_Allreduce`,
/// the share hidden, global images/s), and only rank 0 writes the report;
/// with `CLOVER_ALLREDUCE_OVERLAP=1`, the share hidden behind backward.
///
/// Needs `mpirun` (scripts/setup.sh installs openmpi-bin) and the built
/// `clover-bench`; skips without them (fails under CLOVER_REQUIRE_DEVICE=1).
final class DistributedBenchTests: XCTestCase {
    /// Runs `clover-bench --distributed` for ResNet-20 on 2 ranks with
    /// `CLOVER_ALLREDUCE_OVERLAP` set to `overlap` (unset when nil); returns
    /// rank 0's standard output and the JSON report.
    private func runBench(overlap: String?) throws -> (stdout: String, report: [String: Any]) {
        try TestSupport.requireOpenCL()
        let bench = try TestSupport.benchBinary(testFile: #filePath)
        let dir = NSTemporaryDirectory() + "clover-bench-mpi-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }

        var environment = ProcessInfo.processInfo.environment
        // As in DistributedTrainingTests: one POCL thread per rank, and Open
        // MPI's shared memory without a single-copy mechanism (containers).
        environment["POCL_MAX_PTHREAD_COUNT"] = "1"
        environment["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
        // Small buckets: several per step, so the bucket pipeline is exercised.
        environment["CLOVER_ALLREDUCE_BUCKET_BYTES"] = "262144"
        environment["CLOVER_ALLREDUCE_OVERLAP"] = overlap
        let outcome = try TestSupport.run(
            try TestSupport.mpirun(),
            ["-np", "2", "--allow-run-as-root", "--oversubscribe", bench, "--distributed", "--quick",
             "--warmup", "1", "--repeat", "2", "--filter", "model/cifar-resnet20", "--json", dir + "/bench.json"],
            environment: environment, directory: dir, label: "clover-bench --distributed")
        let stdout = outcome.stdout
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        let report = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/bench.json"))) as? [String: Any])
        return (stdout, report)
    }

    func testDistributedModelRowHasAllreduceFigures() throws {
        let (stdout, report) = try runBench(overlap: nil)
        // Rank 0 alone printed the tables.
        XCTAssertEqual(stdout.components(separatedBy: "## clover-bench").count - 1, 1, stdout)
        XCTAssertTrue(stdout.contains("### Distributed: gradients averaged over 2 ranks"), stdout)

        XCTAssertEqual(report["world_size"] as? Int, 2)
        let rows = try XCTUnwrap(report["results"] as? [[String: Any]])
        XCTAssertEqual(rows.count, 1, "kernel benchmarks are skipped: \(rows.map { $0["name"] ?? "?" })")
        let row = try XCTUnwrap(rows.first)
        XCTAssertEqual(row["name"] as? String, "model/cifar-resnet20")
        XCTAssertNil(row["error"])
        let d = try XCTUnwrap(row["distributed"] as? [String: Any], "\(row)")
        let batch = try XCTUnwrap((row["params"] as? [String: Any])?["batch"] as? Int)
        let parameters = try XCTUnwrap(row["parameters"] as? Int)
        XCTAssertEqual(d["world_size"] as? Int, 2)
        XCTAssertEqual(d["per_rank_batch"] as? Int, batch)
        XCTAssertEqual(d["global_batch"] as? Int, 2 * batch)
        XCTAssertEqual(d["overlap"] as? Bool, false)
        // Every parameter's gradient, as Float, once per step, in 256 KiB buckets.
        let bytes = try XCTUnwrap(d["bytes_allreduced_per_step"] as? Double)
        XCTAssertGreaterThan(bytes, 0)
        XCTAssertEqual(bytes, Double(parameters * 4))
        XCTAssertEqual(d["buckets"] as? Int, (parameters * 4 + 262_143) / 262_144)
        let allreduce = try XCTUnwrap(d["allreduce_seconds_per_step"] as? Double)
        XCTAssertGreaterThan(allreduce, 0)
        let stepSeconds = try XCTUnwrap(row["seconds"] as? Double)
        XCTAssertLessThan(allreduce, stepSeconds)
        let hidden = try XCTUnwrap(d["hidden_fraction"] as? Double)
        XCTAssertTrue((0...1).contains(hidden), "\(hidden)")
        XCTAssertNil(d["hidden_behind_backward_fraction"], "no overlap in clover-bench")
        let global = try XCTUnwrap(d["global_images_per_second"] as? Double)
        XCTAssertEqual(global, Double(2 * batch) / stepSeconds, accuracy: global * 1e-9)
    }

    /// With `CLOVER_ALLREDUCE_OVERLAP=1` the buckets are reduced during
    /// backward (``OverlappedReduction``, as `clover train` on GPUs), and
    /// the row reports the share of `MPI_Allreduce` hidden behind backward.
    func testDistributedOverlapRowReportsShareHiddenBehindBackward() throws {
        let (stdout, report) = try runBench(overlap: "1")
        XCTAssertTrue(stdout.contains("behind backward"), stdout)
        let rows = try XCTUnwrap(report["results"] as? [[String: Any]])
        XCTAssertEqual(rows.count, 1)
        let row = try XCTUnwrap(rows.first)
        XCTAssertNil(row["error"])
        let d = try XCTUnwrap(row["distributed"] as? [String: Any], "\(row)")
        let parameters = try XCTUnwrap(row["parameters"] as? Int)
        XCTAssertEqual(d["overlap"] as? Bool, true, "\(d)")
        XCTAssertEqual(d["bytes_allreduced_per_step"] as? Double, Double(parameters * 4))
        XCTAssertEqual(d["buckets"] as? Int, (parameters * 4 + 262_143) / 262_144)
        XCTAssertGreaterThan(try XCTUnwrap(d["allreduce_seconds_per_step"] as? Double), 0)
        let behindBackward = try XCTUnwrap(d["hidden_behind_backward_fraction"] as? Double, "\(d)")
        XCTAssertTrue((0...1).contains(behindBackward), "\(behindBackward)")
        XCTAssertEqual(d["hidden_fraction"] as? Double, behindBackward)
    }
}
