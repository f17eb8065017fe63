import Clover
import CloverConformance
import XCTest

final class ConvRNNTests: XCTestCase {
    func testGatesMatchTheReference() throws {
        try assertConformance(ConformanceSuite.allCases().filter { ["lstm_cell", "gru_gates", "gru_output"].contains($0.op) })
    }

    /// Hand-computed: all-zero pre-activations give σ = 0.5, tanh = 0.
    func testLSTMWithZeroPreactivationsHalvesTheCell() throws {
        for device in [Device.reference, try TestDevice.get()] {
            let pre = try Tensor.zeros([1, 8, 1, 1], on: device)
            let c = try Tensor(shape: [1, 2, 1, 1], values: [2, -4], on: device)
            let out = try apply(LSTMCell(), [pre, c])
            XCTAssertEqual(try out[1].toArray(), [1, -2])  // c' = 0.5·c + 0.5·0
            let h = try out[0].toArray()
            XCTAssertEqual(Double(h[0]), 0.5 * 0.7615941559557649, accuracy: 1e-6)
        }
    }

    func testGateShapeMismatchIsNamed() throws {
        let device = try TestDevice.get()
        let pre = try Tensor.zeros([1, 6, 2, 2], on: device)
        let c = try Tensor.zeros([1, 2, 2, 2], on: device)
        XCTAssertThrowsError(try apply(LSTMCell(), [pre, c])) { error in
            XCTAssertTrue("\(error)".contains("lstm_cell") && "\(error)".contains("1x6x2x2"), "\(error)")
        }
    }
}
