import Clover
import CloverConformance
import CloverRuntime
import XCTest

/// The OpenCL device under test, selected once per test process
/// (`CLOVER_DEVICE`, else the first GPU, else the first CPU device).
enum TestDevice {
    static let shared: Result<Device, Error> = Result { try Device.select() }

    /// The device, or a skip when no OpenCL platform exists at all (or the
    /// CPU reference was chosen, which has nothing to compare against). Any
    /// other selection error fails the test.
    static func get() throws -> Device {
        switch shared {
        case let .success(device):
            if device.isReference {
                throw XCTSkip("CLOVER_DEVICE selects the CPU reference; the sweep needs an OpenCL device")
            }
            return device
        case let .failure(error):
            if case RuntimeError.noPlatform = error {
                throw XCTSkip("no OpenCL platform is installed: \(error)")
            }
            throw error
        }
    }
}

/// Runs each conformance case at most once per test process on the shared
/// device, so the per-family tests and the kernel-coverage test share work
/// whatever order they run in.
enum Sweep {
    private static var results: [String: CaseResult] = [:]
    private static var runner: ConformanceRunner?

    static func run(_ cases: [ConformanceCase]) throws -> [CaseResult] {
        let device = try TestDevice.get()
        if runner == nil { runner = ConformanceRunner(device: device) }
        return cases.map { c in
            let key = c.op + "|" + c.label
            if let r = results[key] { return r }
            let r = runner!.run(c)
            results[key] = r
            return r
        }
    }
}

/// Runs conformance cases and fails with one line per failing case.
func assertConformance(_ cases: [ConformanceCase], file: StaticString = #filePath, line: UInt = #line) throws {
    XCTAssertFalse(cases.isEmpty, "no cases", file: file, line: line)
    for r in try Sweep.run(cases) {
        XCTAssertTrue(r.passed, "\(r.op) [\(r.label)]: \(r.message ?? "") fwd abs \(r.forward.maxAbsolute) bwd abs \(r.backward.maxAbsolute)",
                      file: file, line: line)
    }
}
