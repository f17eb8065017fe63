@testable import Clover
import CloverRuntime
import CloverTestSupport
import XCTest

/// Per-context upload caches are keyed by the context's serial number: a
/// context created after another is freed may reuse its address (and so
/// its `ObjectIdentifier`), and must not be handed the old context's buffer.
final class ContextCacheTests: XCTestCase {
    func testUploadsFollowNewContextsThatReplaceFreedOnes() throws {
        let openCL = try TestSupport.openCLDevice()
        let labels = ClassLabels([2, 0, 1])
        let logits: [Float] = [0.1, 0.2, 3.0, 2.0, 0.5, -1.0, 0.0, 1.5, 0.2]
        let expected = try softmaxCrossEntropy(Tensor(shape: [3, 3], values: logits), labels: labels).toArray()[0]
        var serials = Set<UInt64>()
        for _ in 0..<6 {
            // Each context is freed at the end of the iteration; the next may
            // land at the same address.
            let context = try OpenCLContext(device: openCL, cacheDirectory: .some(nil))
            XCTAssertTrue(serials.insert(context.serial).inserted, "serial \(context.serial) reused")
            let device = Device(openCL: context)
            let loss = try softmaxCrossEntropy(Tensor(shape: [3, 3], values: logits, on: device), labels: labels)
            XCTAssertEqual(try loss.toArray()[0], expected, accuracy: 1e-5)
        }
    }
}
