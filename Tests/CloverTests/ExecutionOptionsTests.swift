import Clover
import CloverRuntime
import CloverTestSupport
import XCTest

/// The ops' execution options belong to one context: setting one changes
/// the kernels that context builds, and no other context's.
final class ExecutionOptionsTests: XCTestCase {
    /// The `VW` define of the batch-norm kernels each context launches.
    private func batchNormVectorWidths(on device: Device) throws -> Set<String> {
        let context = try XCTUnwrap(device.openCL)
        var widths = Set<String>()
        context.launchObserver = { record in
            guard record.kernel.family == "normalization" else { return }
            for option in record.kernel.programOptions.split(separator: " ") where option.hasPrefix("-DVW=") {
                widths.insert(String(option.dropFirst("-DVW=".count)))
            }
        }
        defer { context.launchObserver = nil }
        let x = try Tensor(shape: [2, 3, 4, 5], values: (0..<120).map { Float($0 % 7) - 3 }, on: device)
        let gamma = try Tensor(shape: [3], values: [1, 2, 3], on: device)
        let beta = try Tensor(shape: [3], values: [0, 1, -1], on: device)
        _ = try batchNorm(x, gamma: gamma, beta: beta).y.toArray()
        return widths
    }

    func testOptionsAreTheDevicesOwnUntilSetAndApplyToOneContextOnly() throws {
        let forced = try TestSupport.newDevice(), untouched = try TestSupport.newDevice()
        let forcedContext = try XCTUnwrap(forced.openCL)
        XCTAssertEqual(forcedContext.executionOptions, ExecutionOptions())
        let own = forcedContext.pathKind == .cpu ? "16" : "1"
        let other = own == "16" ? 1 : 16
        XCTAssertEqual(try batchNormVectorWidths(on: untouched), [own])

        forcedContext.executionOptions.batchNormVectorWidth = other
        XCTAssertEqual(try batchNormVectorWidths(on: forced), ["\(other)"])
        XCTAssertEqual(try batchNormVectorWidths(on: untouched), [own], "another context saw the option")
        XCTAssertEqual(try XCTUnwrap(untouched.openCL).executionOptions, ExecutionOptions())

        forcedContext.executionOptions = ExecutionOptions()
        XCTAssertEqual(try batchNormVectorWidths(on: forced), [own])
    }
}
