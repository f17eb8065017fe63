import Clover
import CloverRuntime
import XCTest

/// Bad input gives a thrown error naming the op and shapes (or the device),
/// never a crash or silent garbage — on the reference and OpenCL devices.
final class BadInputTests: XCTestCase {
    private func devices() throws -> [Device] {
        [.reference, try TestDevice.get()]
    }

    private func assertError(_ body: @autoclosure () throws -> Any, contains fragments: [String],
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            let text = "\(error)"
            for fragment in fragments {
                XCTAssertTrue(text.contains(fragment), "'\(text)' lacks '\(fragment)'", file: file, line: line)
            }
        }
    }

    func testShapeMismatchNamesOpAndShapes() throws {
        for device in try devices() {
            let a = try Tensor.zeros([2, 3], on: device)
            let b = try Tensor.zeros([3, 2], on: device)
            assertError(try add(a, b), contains: ["add", "2x3", "3x2"])
            assertError(try mul(a, b), contains: ["mul", "2x3", "3x2"])
            assertError(try matmul(a, a), contains: ["matmul", "2x3", "inner"])
            assertError(try matmul(a, b, adding: a), contains: ["matmul", "C must be 2x2"])
            let batch = try Tensor.zeros([2, 3, 4], on: device)
            assertError(try matmul(batch, a), contains: ["matmul", "rank"])
        }
    }

    func testLabelsAreValidated() throws {
        for device in try devices() {
            let logits = try Tensor.zeros([3, 4], on: device)
            assertError(try softmaxCrossEntropy(logits, labels: ClassLabels([0, 4, 1])),
                        contains: ["softmax_cross_entropy", "label 4", "row 1"])
            assertError(try softmaxCrossEntropy(logits, labels: ClassLabels([0, -1, 1])), contains: ["label -1"])
            assertError(try softmaxCrossEntropy(logits, labels: ClassLabels([0, 1])), contains: ["2 labels for 3 rows"])
            assertError(try softmaxCrossEntropy(try Tensor.zeros([12], on: device), labels: ClassLabels([0])),
                        contains: ["softmax_cross_entropy", "12"])
        }
    }

    func testZeroSizeAndWrongValueCountsAreRejected() throws {
        for device in try devices() {
            assertError(try Tensor.zeros([2, 0, 3], on: device), contains: ["zero-size", "2x0x3"])
            assertError(try Tensor(shape: [2, 2], values: [1, 2, 3], on: device), contains: ["3 values", "4 elements"])
            assertError(try Tensor.zeros([4], on: device).reshaped([3]), contains: ["reshape"])
        }
    }

    func testMixedDevicesAreRejected() throws {
        let gpu = try TestDevice.get()
        let a = try Tensor.zeros([4], on: .reference)
        let b = try Tensor.zeros([4], on: gpu)
        assertError(try add(a, b), contains: ["add", "different devices", "cpu-reference"])
    }

    func testUnknownDeviceIsAnError() throws {
        _ = try TestDevice.get()
        assertError(try Device.select("definitely-not-a-device"), contains: ["definitely-not-a-device", "available"])
        XCTAssertTrue(try Device.select("cpu-reference").isReference)
    }

    func testValuesRoundTripAndMove() throws {
        let device = try TestDevice.get()
        let t = try Tensor(shape: [2, 3], values: [1, -2, 3, -4, 5, -6], on: device)
        XCTAssertEqual(try relu(t).toArray(), [1, 0, 3, 0, 5, 0])
        XCTAssertEqual(try relu(t).to(.reference).shape, [2, 3])
        let loss = try softmaxCrossEntropy(try Tensor.zeros([4, 8], on: device), labels: ClassLabels([1, 2, 3, 4]))
        XCTAssertEqual(loss.shape, [])
        XCTAssertEqual(Double(try loss.toArray()[0]), _log8, accuracy: 1e-5)
    }
}

private let _log8 = 2.0794415416798357
