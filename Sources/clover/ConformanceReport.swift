import Clover
import CloverConformance
import CloverFiles
// FoundationEssentials, not Foundation: it keeps the static binary small (no ICU data).
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The largest errors of one op over all its cases: what a row of the
/// conformance table shows.
struct OpSummary: Codable {
    var op: String
    var cases: Int
    var passed: Int
    var forwardMaxAbsolute: Double
    var forwardMaxRelative: Double
    /// Nil when no case of the op compared gradients.
    var backwardMaxAbsolute: Double?
    var backwardMaxRelative: Double?
    /// Nil when no case of the op ran the finite-difference check.
    var finiteDifferenceMaxRelative: Double?
    var seconds: Double

    var allPassed: Bool { passed == cases }

    init(op: String, results: [CaseResult], seconds: Double) {
        self.op = op
        self.seconds = seconds
        cases = results.count
        passed = results.filter(\.passed).count
        let forward = results.map(\.forward).filter { $0.compared > 0 }
        forwardMaxAbsolute = forward.map(\.maxAbsolute).max() ?? 0
        forwardMaxRelative = forward.map(\.maxRelative).max() ?? 0
        let backward = results.map(\.backward).filter { $0.compared > 0 }
        backwardMaxAbsolute = backward.map(\.maxAbsolute).max()
        backwardMaxRelative = backward.map(\.maxRelative).max()
        finiteDifferenceMaxRelative = results.compactMap(\.finiteDifference).filter { $0.compared > 0 }
            .map(\.maxRelative).max()
    }
}

/// The device a sweep ran on, as recorded in the JSON report.
struct DeviceReport: Codable {
    var description: String
    /// `opencl` or `cpu-reference`.
    var backend: String
    var index: Int?
    var platform: String?
    var platformVersion: String?
    var name: String?
    var vendor: String?
    var type: String?
    var driverVersion: String?
    var openCLCVersion: String?

    init(_ device: Device) {
        description = device.description
        guard let d = device.openCLDevice else {
            backend = "cpu-reference"
            return
        }
        backend = "opencl"
        index = d.index
        platform = d.platformName
        platformVersion = d.platformVersion
        name = d.name
        vendor = d.vendor
        type = d.kind.rawValue
        driverVersion = d.driverVersion
        openCLCVersion = d.openCLCVersion
    }
}

/// Whether the sweep launched every `__kernel` in `Kernels/`.
struct KernelCoverage: Codable {
    /// False when the check could not apply (a filtered sweep, or the CPU
    /// reference device, which launches no kernels); `note` says why.
    var checked: Bool
    var note: String?
    /// Every declared kernel, as `family/kernel`.
    var declared: [String]
    /// Declared kernels the sweep never launched (a failure when checked).
    var unexercised: [String]
    /// Launch counts by kernel or CLBlast routine name.
    var launches: [String: Int]
}

/// How Clover's OpenCL programs were obtained during the sweep.
struct ProgramCacheReport: Codable {
    var compiled: Int
    var loadedFromDisk: Int
    var memoryHits: Int
    /// The on-disk cache directory; nil when disabled or on the CPU reference.
    var directory: String?

    /// The one-line summary printed after the sweep.
    var line: String {
        "programs: \(compiled) compiled, \(loadedFromDisk) loaded from disk cache, \(memoryHits) memory hits"
    }
}

/// The document `clover conformance --json FILE` writes.
struct ConformanceReport: Codable {
    var clover: String
    /// ISO 8601, UTC.
    var date: String
    var device: DeviceReport
    var filter: String?
    var passed: Bool
    var casesRun: Int
    var casesPassed: Int
    var summary: [OpSummary]
    var cases: [CaseResult]
    var kernelCoverage: KernelCoverage
    var programCache: ProgramCacheReport

    /// The report as pretty-printed JSON with sorted keys, so two reports
    /// diff cleanly. Infinite or NaN errors (a kernel that wrote NaN) are
    /// written as the strings "inf" and "nan" rather than failing the encode.
    func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try encoder.encode(self)
    }

    /// Writes the report to `path` atomically, so a reader never sees half
    /// a report.
    ///
    /// - Throws: `FileWriteError`, which says which call failed and why
    ///   (`No such file or directory`).
    func write(to path: String) throws {
        try AtomicFile.write(try encoded() + Data("\n".utf8), to: path)
    }
}
