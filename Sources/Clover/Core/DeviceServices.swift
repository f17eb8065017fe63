import CloverRuntime

// What a tool built on Clover needs of a device beyond running ops: which
// devices exist and which is the default, what the chosen one is, its
// matrix-product precision, profiling, launch counts and program-cache
// figures. The command-line tool uses these instead of the runtime, so it
// only parses and prints; the runtime types they hand out are plain
// descriptions, re-exported so a caller can name them.
@_exported import class CloverRuntime.OpenCLDevice
@_exported import enum CloverRuntime.DeviceKind
@_exported import enum CloverRuntime.MatmulPrecision
@_exported import struct CloverRuntime.DeviceCounters
@_exported import struct CloverRuntime.LaunchProfile
@_exported import enum CloverRuntime.RuntimeError

/// One compile a device's program cache reports: a program built from
/// source, or a kernel's first launch (where drivers such as POCL generate
/// code), started or finished.
public typealias ProgramBuildEvent = ProgramCache.BuildEvent

/// A device's program-cache figures since it was created.
public struct ProgramCacheFigures: Sendable {
    /// Programs compiled from source.
    public var compiled: Int
    /// Programs loaded from the on-disk cache of binaries.
    public var loadedFromDisk: Int
    /// Programs found already built in memory.
    public var memoryHits: Int
    /// The on-disk cache, if any.
    public var directory: String?
    /// Seconds in `clBuildProgram`, and programs built, per kernel family.
    public var compileSeconds: [String: (programs: Int, seconds: Double)]
    /// Seconds in the first enqueue of each kernel, and kernels, per family.
    public var firstLaunchSeconds: [String: (kernels: Int, seconds: Double)]

}

extension Device {
    /// The environment variable that picks the default device (`CLOVER_DEVICE`).
    public static var selectionVariable: String { DeviceDiscovery.environmentVariable }

    /// Every OpenCL device of every platform, in discovery order.
    ///
    /// - Throws: ``RuntimeError`` when no OpenCL platform is installed.
    public static func allOpenCLDevices() throws -> [OpenCLDevice] {
        try DeviceDiscovery.allDevices()
    }

    /// The device of `devices` that `spec` (an index or a name substring)
    /// names; with no spec, the first GPU, else the first CPU device.
    ///
    /// - Throws: ``RuntimeError`` naming the spec and the devices when none matches.
    public static func defaultOpenCLDevice(_ spec: String?, from devices: [OpenCLDevice]) throws -> OpenCLDevice {
        try DeviceDiscovery.select(spec, from: devices)
    }

    /// The OpenCL device this device runs on (name, platform, kind, driver);
    /// nil for the CPU reference and the meta device.
    public var openCLDevice: OpenCLDevice? { openCL?.device }

    /// Whether every launch records its device time for ``kernelProfile()``
    /// (off by default: an event per launch costs host time). Always false
    /// off OpenCL.
    public var isProfiling: Bool {
        get { openCL?.isProfiling ?? false }
        set { openCL?.isProfiling = newValue }
    }

    /// Device seconds and launches per kernel since profiling was switched
    /// on or last reported, largest first (waits for the queue); empty off
    /// OpenCL.
    public func kernelProfile() throws -> [(name: String, seconds: Double, launches: Int)] {
        try openCL?.profile() ?? []
    }

    /// Launches per kernel (`family/name`, CLBlast's as `clblast/<routine>`)
    /// since the device was created; empty off OpenCL.
    public var launchCounts: [String: Int] { openCL?.launchCounts ?? [:] }

    /// Called for every program build and first kernel launch of this
    /// device's program cache (progress for a cold cache); ignored off OpenCL.
    public var programBuildObserver: ((ProgramBuildEvent) -> Void)? {
        get { openCL?.programs.buildObserver }
        set { openCL?.programs.buildObserver = newValue }
    }

    /// The program cache's figures; nil off OpenCL.
    public var programCacheFigures: ProgramCacheFigures? {
        guard let programs = openCL?.programs else { return nil }
        let s = programs.statistics
        return ProgramCacheFigures(compiled: s.compiled, loadedFromDisk: s.loadedFromDisk, memoryHits: s.memoryHits,
                                   directory: programs.directory, compileSeconds: programs.compileSeconds,
                                   firstLaunchSeconds: programs.firstLaunchSeconds)
    }

    /// The launch limits this device's launches are checked against; nil off OpenCL.
    public var launchProfile: LaunchProfile? { openCL?.launchProfile }

    /// Sets the precision of matrix products (`fp32`: strict; `tf32`: tensor
    /// cores where the device has them) and returns the line saying what is
    /// in force, e.g. `precision: fp32 (strict)`.
    @discardableResult
    public func useMatmulPrecision(_ precision: MatmulPrecision) -> String {
        guard let context = openCL else { return "precision: reference (Double)" }
        context.matmulPrecision = precision
        return "precision: " + context.precisionInForce
    }
}

extension DeviceCounters {
    /// The calls made between `earlier` and these counts. (The runtime's
    /// `-` does the same; a method, because operators do not come with a
    /// re-exported type.)
    public func since(_ earlier: DeviceCounters) -> DeviceCounters { self - earlier }

    /// These counts and `other`'s together.
    public func adding(_ other: DeviceCounters) -> DeviceCounters { self + other }
}
