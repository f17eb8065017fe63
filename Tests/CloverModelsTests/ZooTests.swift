import CloverModels
import XCTest

final class ZooTests: XCTestCase {
    func testNamesAreUnique() {
        let names = ModelZoo.all.map { $0.name.lowercased() }
        XCTAssertEqual(names.count, Set(names).count)
    }

    func testUnknownModelIsAnErrorListingTheKnownOnes() {
        XCTAssertThrowsError(try ModelZoo.spec(named: "no-such-net")) { XCTAssertTrue("\($0)".contains("no-such-net")) }
    }
}
