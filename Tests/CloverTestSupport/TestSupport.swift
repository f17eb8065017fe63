import Clover
import CloverRuntime
import XCTest
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What every test target shares: the OpenCL device under test, and one
/// rule for what happens when a prerequisite (an OpenCL platform, the built
/// `clover` binary, `mpirun`, a data set) is missing.
///
/// A developer without OpenCL gets skips that say why. `scripts/test.sh` sets
/// `CLOVER_REQUIRE_DEVICE=1`, which turns every such skip into a failure, so
/// CI can never pass by skipping the device tests.
public enum TestSupport {
    /// The environment variable that makes a missing prerequisite fail.
    public static let requireVariable = "CLOVER_REQUIRE_DEVICE"

    /// Whether missing prerequisites fail instead of skipping.
    public static var requiresPrerequisites: Bool {
        ProcessInfo.processInfo.environment[requireVariable] == "1"
    }

    /// A prerequisite that is not there.
    public struct MissingPrerequisite: Error, CustomStringConvertible {
        public let reason: String
        public var description: String { "\(reason) (\(TestSupport.requireVariable)=1 requires it)" }
    }

    /// The error to throw when `reason` stops a test: an `XCTSkip`, or a
    /// failure under `CLOVER_REQUIRE_DEVICE=1`.
    public static func unavailable(_ reason: String) -> Error {
        requiresPrerequisites ? MissingPrerequisite(reason: reason) : XCTSkip(reason)
    }

    /// The OpenCL device under test (`CLOVER_DEVICE`, else the first GPU,
    /// else the first CPU device), selected once per test process.
    public static func sharedDevice() throws -> Device {
        switch shared {
        case let .success(device): return try checked(device)
        case let .failure(error): throw translated(error)
        }
    }

    /// A new device (its own context, pool and counters) on the device
    /// under test, for tests that count what one context does.
    public static func newDevice() throws -> Device {
        do { return try checked(Device.select()) } catch { throw translated(error) }
    }

    /// A planning device over the device under test (see
    /// ``Device/planning(_:profile:pathKind:cacheDirectory:)``).
    public static func planningDevice(profile: LaunchProfile = .portable, pathKind: DeviceKind = .gpu) throws -> Device {
        do { return try Device.planning(profile: profile, pathKind: pathKind) } catch { throw translated(error) }
    }

    /// The runtime's view of the device under test.
    public static func openCLDevice() throws -> OpenCLDevice {
        do { return try DeviceDiscovery.select() } catch { throw translated(error) }
    }

    /// A new runtime context on the device under test; `cacheDirectory` as
    /// ``OpenCLContext/init(device:cacheDirectory:logger:planning:)`` takes it
    /// (default: no disk cache).
    public static func context(cacheDirectory: String?? = .some(nil), storeProgramBinaries: Bool? = nil,
                               planning: Bool = false) throws -> OpenCLContext {
        try OpenCLContext(device: openCLDevice(), cacheDirectory: cacheDirectory,
                          storeProgramBinaries: storeProgramBinaries, planning: planning)
    }

    /// Throws ``unavailable(_:)`` unless an OpenCL platform is installed
    /// (tests that run the `clover` tool rather than a device of their own).
    public static func requireOpenCL() throws {
        do { _ = try DeviceDiscovery.allDevices() } catch { throw translated(error) }
    }

    /// The built `clover` binary: beside the test bundle, or in the
    /// package's `.build/debug` (found from `testFile`, a `#filePath` of a
    /// file in `Tests/<target>/`).
    public static func cloverBinary(testFile: String) throws -> String {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("clover").path
        let package = URL(fileURLWithPath: testFile).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug/clover").path
        for candidate in [beside, package] where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        throw unavailable("the clover binary is not built (run `swift build`)")
    }

    /// The built `clover-bench` binary, found as ``cloverBinary(testFile:)``
    /// finds `clover`.
    public static func benchBinary(testFile: String) throws -> String {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("clover-bench").path
        let package = URL(fileURLWithPath: testFile).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug/clover-bench").path
        for candidate in [beside, package] where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        throw unavailable("the clover-bench binary is not built (run `swift build`)")
    }

    private static let shared: Result<Device, Error> = Result { try Device.select() }

    private static func checked(_ device: Device) throws -> Device {
        if device.isReference { throw unavailable("CLOVER_DEVICE selects the CPU reference; these tests need OpenCL") }
        return device
    }

    private static func translated(_ error: Error) -> Error {
        if case RuntimeError.noPlatform = error { return unavailable("no OpenCL platform is installed: \(error)") }
        return error
    }
}
