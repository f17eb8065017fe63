import CloverTestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The skip-or-fail rule every test target shares: without
/// `CLOVER_REQUIRE_DEVICE=1` a missing prerequisite skips with its reason;
/// with it (as `scripts/test.sh` sets on CI) the test fails.
final class TestSupportTests: XCTestCase {
    func testMissingPrerequisitesSkipOrFailByTheEnvironment() {
        let saved = getenv(TestSupport.requireVariable).map { String(cString: $0) }
        defer {
            if let saved { setenv(TestSupport.requireVariable, saved, 1) } else { unsetenv(TestSupport.requireVariable) }
        }
        unsetenv(TestSupport.requireVariable)
        XCTAssertTrue(TestSupport.unavailable("no device") is XCTSkip)
        setenv(TestSupport.requireVariable, "1", 1)
        let error = TestSupport.unavailable("no device")
        XCTAssertFalse(error is XCTSkip)
        XCTAssertTrue("\(error)".contains("no device") && "\(error)".contains(TestSupport.requireVariable), "\(error)")
    }
}
