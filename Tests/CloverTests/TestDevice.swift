import Clover
import CloverConformance
import CloverRuntime
import CloverTestSupport
import XCTest

/// The OpenCL device under test, selected once per test process (see
/// ``TestSupport/sharedDevice()``).
enum TestDevice {
    static func get() throws -> Device { try TestSupport.sharedDevice() }
}

/// Runs each conformance case at most once per test process on the shared
/// device, so the per-family tests and the kernel-coverage test share work
/// whatever order they run in.
enum Sweep {
    private static var results: [String: CaseResult] = [:]
    private static var runner: ConformanceRunner?
    /// Every distinct program (family and build options) the cases run so far asked for.
    private(set) static var programs: Set<String> = []

    static func run(_ cases: [ConformanceCase]) throws -> [CaseResult] {
        let device = try TestDevice.get()
        if runner == nil { runner = ConformanceRunner(device: device) }
        return cases.map { c in
            let key = c.op + "|" + c.label
            if let r = results[key] { return r }
            let cache = device.openCL?.programs
            cache?.requestObserver = { family, options in programs.insert(family + " " + options) }
            let r = runner!.run(c)
            cache?.requestObserver = nil
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
