@testable import clover
import Clover
import CloverTuning
import XCTest

/// `clover tune`'s arguments and output; the search itself is tested in
/// CloverTests/GemmTuningTests.
final class TuneCommandTests: XCTestCase {
    func testArguments() throws {
        let command = try TuneCommand.parse(["--device", "pocl", "--seconds", "5", "--size", "64", "32", "16",
                                             "--candidates", "2", "--no-save"])
        XCTAssertEqual(command.device, "pocl")
        XCTAssertEqual(command.seconds, 5)
        XCTAssertEqual(command.size, [64, 32, 16])
        XCTAssertEqual(command.candidates, 2)
        XCTAssertTrue(command.noSave)
        let defaults = try TuneCommand.parse([])
        XCTAssertEqual(defaults.seconds, 60)
        XCTAssertEqual(defaults.size, [])
        XCTAssertFalse(defaults.noSave)
        for bad in [["--size", "64", "32"], ["--size", "64", "0", "16"], ["--seconds", "-1"], ["--repeats", "0"]] {
            XCTAssertThrowsError(try TuneCommand.parse(bad), "\(bad)")
        }
    }

    func testProgressLine() {
        let report = GemmCandidateReport(kernel: "Xgemm", index: 3, parameters: "MWG=64",
                                         outcome: .measured(gflops: [33.25, 9.5], score: 17.8), isBest: true,
                                         elapsed: 12.4)
        XCTAssertEqual(TuneCommand.line(report),
                       "[  12 s] Xgemm #3: 33.3 / 9.5 GFLOP/s, score 17.8  BEST\n         MWG=64")
        let refused = GemmCandidateReport(kernel: "XgemmDirect", index: 0, parameters: "WGD=8",
                                          outcome: .rejected("CLBlastSgemm: x\nbuild log"), isBest: false, elapsed: 1)
        XCTAssertEqual(TuneCommand.line(refused), "[   1 s] XgemmDirect default: refused: CLBlastSgemm: x\n         WGD=8")
    }
}
