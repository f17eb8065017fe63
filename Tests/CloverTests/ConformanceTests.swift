import Clover
import CloverConformance
import CloverRuntime
import XCTest

/// Every op family's sweep against the CPU reference on the OpenCL device.
final class ConformanceTests: XCTestCase {
    func testElementwise() throws {
        try assertConformance(ConformanceSuite.allCases().filter { ["add", "mul", "scale", "relu", "full_like"].contains($0.op) })
    }

    func testMatMul() throws {
        try assertConformance(ConformanceSuite.allCases().filter { $0.op == "matmul" })
    }

    func testConvolution() throws {
        try assertConformance(ConformanceSuite.allCases().filter { $0.op.hasPrefix("conv") })
    }

    func testSoftmaxCrossEntropy() throws {
        try assertConformance(ConformanceSuite.allCases().filter { $0.op == "softmax_cross_entropy" })
    }
}
