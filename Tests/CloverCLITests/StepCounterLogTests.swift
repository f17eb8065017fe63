@testable import clover
import CloverRuntime
import XCTest

/// `clover train --profile`'s table: the first step on its own, the mean
/// of the later ones beside it.
final class StepCounterLogTests: XCTestCase {
    func testFirstStepAndMeanOfTheRest() {
        var log = StepCounterLog()
        XCTAssertEqual(log.report(), [])
        for launches in [500, 300, 301] {
            var step = DeviceCounters()
            step.kernelLaunches = launches
            step.blockingReads = launches == 500 ? 0 : 1
            log.record(step)
        }
        let lines = log.report()
        let launches = lines.first { $0.contains("kernel launches") } ?? ""
        XCTAssertTrue(launches.contains("500"), launches)
        XCTAssertTrue(launches.hasSuffix("300.5"), launches)
        XCTAssertTrue(lines[1].contains("mean of 2 later steps"), lines[1])
        let waits = lines.first { $0.contains("host-blocking calls") } ?? ""
        XCTAssertTrue(waits.hasSuffix("1.0"), waits)
        // A report starts a new mean; the first step stays.
        XCTAssertTrue(log.report()[1].contains("(no later steps)"))
    }
}
