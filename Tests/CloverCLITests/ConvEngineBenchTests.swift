import Clover
import CloverModels
import CloverNN
import CloverTestSupport
import Foundation
import XCTest

/// `clover-bench --filter conv/cifar-resnet20`: one row per distinct
/// convolution geometry of ResNet-20's training step and per pass, each
/// timed on the selection's algorithm and on im2col + CLBlast.
///
/// Needs the built `clover-bench` and an OpenCL device; skips without them
/// (fails under CLOVER_REQUIRE_DEVICE=1).
final class ConvEngineBenchTests: XCTestCase {
    func testConvEngineRowsCoverEveryGeometryAndPass() throws {
        try TestSupport.requireOpenCL()
        let bench = try TestSupport.benchBinary(testFile: #filePath)
        let dir = NSTemporaryDirectory() + "clover-bench-conv-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }

        let outcome = try TestSupport.run(
            bench, ["--quick", "--repeat", "2", "--filter", "conv/cifar-resnet20", "--json", dir + "/bench.json"],
            directory: dir, label: "clover-bench --filter conv/cifar-resnet20")
        let stdout = outcome.stdout
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertTrue(stdout.contains("### Convolution engine"), stdout)
        let report = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/bench.json"))) as? [String: Any])
        let rows = try XCTUnwrap(report["results"] as? [[String: Any]])

        // The geometries ResNet-20's training step runs at --quick's size
        // (batch 128/32, side 32 kept at the models' floor of 16), recorded
        // independently of clover-bench.
        let spec = try ModelZoo.spec(named: "cifar-resnet20")
        let planner = try Device.planning()
        let recorded = try ConvAlgorithmSelection.recordGeometries {
            let net = try spec.make(spec.classes, 3, Initializer(device: planner))
            net.train()
            let images = try Tensor.zeros([4, 3, 16, 16], on: planner)
            try softmaxCrossEntropy(net(images), labels: ClassLabels((0..<4).map { Int32($0 % spec.classes) })).backward()
        }
        func key(_ n: Int, _ c: Int, _ h: Int, _ w: Int, _ o: Int, _ kh: Int, _ kw: Int, _ s: Int, _ p: Int, _ g: Int) -> String {
            "\(n) \(c) \(h) \(w) \(o) \(kh) \(kw) s\(s) p\(p) g\(g)"
        }
        let expected = Set(recorded.map {
            key($0.input[0], $0.input[1], $0.input[2], $0.input[3], $0.weight[0], $0.weight[2], $0.weight[3],
                $0.parameters.strideH, $0.parameters.paddingH, $0.parameters.groups)
        })
        XCTAssertGreaterThanOrEqual(expected.count, 3)

        var seen: [String: Set<String>] = [:]
        for row in rows {
            XCTAssertEqual(row["name"] as? String, "conv/cifar-resnet20")
            XCTAssertNil(row["error"], "\(row)")
            let p = try XCTUnwrap(row["params"] as? [String: Int], "\(row)")
            let k = key(p["n"]!, p["c"]!, p["h"]!, p["w"]!, p["o"]!, p["kernel_h"]!, p["kernel_w"]!, p["stride"]!,
                        p["padding"]!, p["groups"]!)
            let pass = try XCTUnwrap(row["pass"] as? String)
            seen[k, default: []].insert(pass)
            XCTAssertGreaterThan(try XCTUnwrap(row["seconds"] as? Double, "\(row)"), 0)
            XCTAssertGreaterThan(try XCTUnwrap(row["gflops"] as? Double, "\(row)"), 0)
            let c = try XCTUnwrap(row["convolution"] as? [String: Any], "\(row)")
            let chosen = try XCTUnwrap(c["chosen"] as? String)
            XCTAssertTrue(ConvAlgorithm.allCases.contains { chosen.hasPrefix($0.rawValue) }, chosen)
            XCTAssertTrue(["heuristic", "tuned"].contains(c["source"] as? String ?? ""), "\(c)")
            XCTAssertEqual(c["baseline"] as? String, "im2colGEMM")
            XCTAssertNil(c["baseline_error"], "\(c)")
            XCTAssertGreaterThan(try XCTUnwrap(c["baseline_seconds"] as? Double, "\(c)"), 0)
            XCTAssertGreaterThan(try XCTUnwrap(c["speedup"] as? Double, "\(c)"), 0)
        }
        XCTAssertEqual(Set(seen.keys), expected)
        for (k, passes) in seen {
            XCTAssertEqual(passes, ["forward", "backwardData", "backwardWeight"], k)
        }
        XCTAssertEqual(rows.count, 3 * expected.count)
    }
}
