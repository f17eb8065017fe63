import Clover
import CloverConformance
import CloverRuntime
import XCTest

/// The OpenCL device under test, selected once per test process
/// (`CLOVER_DEVICE`, else the first GPU, else the first CPU device).
enum TestDevice {
    static let shared: Result<Device, Error> = Result {
        let device = try Device.select()
        if device.isReference {
            throw XCTSkip("CLOVER_DEVICE selects the CPU reference; the sweep needs an OpenCL device")
        }
        return device
    }

    /// The device, or a skip when no OpenCL platform exists at all. Any other
    /// selection error fails the test.
    static func get() throws -> Device {
        switch shared {
        case let .success(device): return device
        case let .failure(error):
            if case RuntimeError.noPlatform = error {
                throw XCTSkip("no OpenCL platform is installed: \(error)")
            }
            throw error
        }
    }

    static let runner: Result<ConformanceRunner, Error> = shared.map { ConformanceRunner(device: $0) }
}

/// Runs conformance cases and fails with one line per failing case.
func assertConformance(_ cases: [ConformanceCase], file: StaticString = #filePath, line: UInt = #line) throws {
    let device = try TestDevice.get()
    XCTAssertFalse(cases.isEmpty, "no cases", file: file, line: line)
    let runner = ConformanceRunner(device: device)
    for c in cases {
        let r = runner.run(c)
        XCTAssertTrue(r.passed, "\(r.op) [\(r.label)]: \(r.message ?? "") fwd abs \(r.forward.maxAbsolute) bwd abs \(r.backward.maxAbsolute)",
                      file: file, line: line)
    }
}
