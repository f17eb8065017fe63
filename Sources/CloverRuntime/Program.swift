import CloverFiles
import COpenCL
import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A built OpenCL program: one kernel family specialised by its defines.
public final class Program {
    public let handle: cl_program
    /// The family name plus defines, for messages.
    public let name: String
    /// The kernel family (the program's source file) it was built from.
    public internal(set) var family = ""
    /// The build options it was built with (`-cl-std=CL1.2` and its sorted
    /// `-D` defines), exactly as passed to `clBuildProgram`.
    public let options: String
    /// The most registers per work-item its kernels were asked to keep to
    /// (see ``ProgramCache/program(name:source:defines:registerLimit:)``),
    /// whether or not the device could be told.
    public internal(set) var registerLimit: Int?
    private var kernels: [String: Kernel] = [:]

    init(handle: cl_program, name: String, options: String) {
        self.handle = handle
        self.name = name
        self.options = options
    }

    deinit { clReleaseProgram(handle) }

    /// The kernel called `kernelName`, created once and reused.
    public func kernel(_ kernelName: String) throws -> Kernel {
        if let k = kernels[kernelName] { return k }
        let k = try Kernel(program: handle, programName: name, family: family, options: options,
                           registerLimit: registerLimit, name: kernelName)
        kernels[kernelName] = k
        return k
    }
}

/// Builds programs from source with `-D` defines, caching them in memory and
/// as device binaries on disk, so a second process start compiles nothing.
///
/// The disk key covers the device, its platform and driver version, the
/// source text and the build options: any change to one of them misses.
///
/// On POCL the disk cache stays off by default (``storesBinaries``): POCL keeps
/// its own kernel cache (`$XDG_CACHE_HOME/pocl/kcache`: each program's bitcode
/// and each kernel's code as specialised for its launches, keyed by source and
/// options), so a repeated build from source is a lookup there, while asking
/// POCL for a program binary makes it generate every kernel of the program in
/// a generic, unspecialised form first: 717 kernel compiles that no launch
/// used, more than half of a cold conformance sweep (BENCHMARKS.md, "The first run").
public final class ProgramCache {
    /// How programs were obtained since this cache was created.
    public struct Statistics: Equatable, Sendable {
        public var compiled = 0
        public var loadedFromDisk = 0
        public var memoryHits = 0
        public init(compiled: Int = 0, loadedFromDisk: Int = 0, memoryHits: Int = 0) {
            self.compiled = compiled
            self.loadedFromDisk = loadedFromDisk
            self.memoryHits = memoryHits
        }
    }

    private let context: cl_context
    private let device: OpenCLDevice
    /// Where binaries are kept; nil disables the disk cache.
    public let directory: String?
    /// Whether programs built from source are stored in ``directory`` and
    /// looked up there (see the type's discussion: off on POCL by default).
    public let storesBinaries: Bool

    /// Whether Clover's disk cache pays on `device` when nothing says
    /// otherwise: not on POCL, whose own kernel cache makes a repeated build a
    /// lookup and whose program binaries cost a generic compile of every kernel.
    public static func storesBinariesByDefault(on device: OpenCLDevice) -> Bool {
        !device.platformName.lowercased().contains("portable computing language")
    }
    private var programs: [String: Program] = [:]
    public private(set) var statistics = Statistics()
    private let logger: Logger

    /// One program compile from source, as reported to ``buildObserver``.
    public struct BuildEvent: Sendable {
        /// Where the compile stands.
        public enum Phase: Sendable, Equatable {
            /// `clBuildProgram` is about to run.
            case started
            /// It returned (successfully or not) after this many seconds.
            case finished(seconds: Double)
        }
        /// What is being built.
        public enum Work: Sendable, Equatable {
            /// `clBuildProgram` of one program from source.
            case program
            /// The first enqueue of kernel `name`: drivers that generate
            /// device code lazily (POCL, per kernel and work-group size) do
            /// most of a cold run's compiling here.
            case firstLaunch(kernel: String)
        }
        public var work: Work = .program
        /// The kernel family (source file) being built.
        public var family: String
        /// The family plus its build options, as in error messages.
        public var label: String
        public var phase: Phase
        /// Programs this cache has compiled from source so far (or, for a
        /// first launch, kernels launched for the first time), counting
        /// this one from its start.
        public var ordinal: Int

        public init(work: Work = .program, family: String, label: String, phase: Phase, ordinal: Int) {
            self.work = work
            self.family = family
            self.label = label
            self.phase = phase
            self.ordinal = ordinal
        }
    }

    /// Kernels launched for the first time so far (``BuildEvent/Work/firstLaunch(kernel:)``).
    public internal(set) var firstLaunches = 0
    /// Seconds the first enqueues of kernels took, per family (POCL's lazy code generation).
    public internal(set) var firstLaunchSeconds: [String: (kernels: Int, seconds: Double)] = [:]

    func noteFirstLaunch(kernel: Kernel, seconds: Double?) {
        if let seconds {
            firstLaunchSeconds[kernel.family, default: (0, 0)].kernels += 1
            firstLaunchSeconds[kernel.family, default: (0, 0)].seconds += seconds
        } else {
            firstLaunches += 1
        }
        buildObserver?(BuildEvent(work: .firstLaunch(kernel: kernel.name), family: kernel.family, label: kernel.programName,
                                  phase: seconds.map { .finished(seconds: $0) } ?? .started, ordinal: firstLaunches))
    }

    /// Called before and after every compile from source (not for disk or
    /// memory hits), so that a command can show which program is compiling:
    /// a cold build takes seconds per program and would otherwise look hung.
    /// Set by the command that owns the context; called on the thread that
    /// asked for the program.
    public var buildObserver: ((BuildEvent) -> Void)?

    /// Called with the family and build options of every program asked for
    /// (hit or miss), so that a caller can count the distinct programs a
    /// piece of work needs whatever this cache already holds (the
    /// conformance sweep's program budget is asserted that way).
    public var requestObserver: ((_ family: String, _ options: String) -> Void)?

    /// Seconds spent in compiles from source per kernel family, and how
    /// many programs each took (where a cold run's time goes).
    public private(set) var compileSeconds: [String: (programs: Int, seconds: Double)] = [:]

    init(context: cl_context, device: OpenCLDevice, directory: String?, storesBinaries: Bool, logger: Logger) {
        self.context = context
        self.device = device
        self.directory = directory
        self.storesBinaries = storesBinaries
        self.logger = logger
    }

    /// The default cache directory: `$XDG_CACHE_HOME/clover`, else `~/.cache/clover`.
    public static var defaultDirectory: String? {
        let env = ProcessInfo.processInfo.environment
        if let xdg = env["XDG_CACHE_HOME"], !xdg.isEmpty { return xdg + "/clover" }
        if let home = env["HOME"], !home.isEmpty { return home + "/.cache/clover" }
        return nil
    }

    /// The program for `name` built from `source` with `defines`.
    /// The source is asked for only when the program is not already in memory.
    ///
    /// - Parameter registerLimit: the most registers per work-item its kernels
    ///   should use, for kernels whose launched work-group size leaves a
    ///   compiler free to take more than occupancy allows. Passed to NVIDIA's
    ///   driver as `-cl-nv-maxrregcount` where the device has
    ///   `cl_nv_compiler_options`; other drivers take no such option, and the
    ///   limit is only recorded on the program.
    public func program(name: String, source: () throws -> String, defines: [String: String] = [:],
                        registerLimit: Int? = nil) throws -> Program {
        let options = Self.buildOptions(defines, registerLimit: registerLimit,
                                        nvidiaCompilerOptions: device.supports("cl_nv_compiler_options"))
        let memoryKey = name + " " + options
        requestObserver?(name, options)
        if let p = programs[memoryKey] {
            statistics.memoryHits += 1
            return p
        }
        let source = try source()
        let hash = Self.fnv1a64([device.cacheIdentity, options, source])
        let fileName = "\(name)-\(String(hash, radix: 16)).bin"
        let label = defines.isEmpty ? name : "\(name) \(options)"
        if storesBinaries, let dir = directory, let program = loadBinary(path: dir + "/" + fileName, options: options, label: label) {
            program.family = name
            program.registerLimit = registerLimit
            statistics.loadedFromDisk += 1
            logger.debug("program cache: loaded \(label) from \(dir)/\(fileName)")
            programs[memoryKey] = program
            return program
        }
        let ordinal = statistics.compiled + 1
        buildObserver?(BuildEvent(family: name, label: label, phase: .started, ordinal: ordinal))
        let clock = ContinuousClock()
        let start = clock.now
        let compiled: Result<Program, Error> = Result { try compile(source: source, options: options, label: label) }
        let elapsed = clock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        buildObserver?(BuildEvent(family: name, label: label, phase: .finished(seconds: seconds), ordinal: ordinal))
        let program = try compiled.get()
        program.family = name
        program.registerLimit = registerLimit
        statistics.compiled += 1
        compileSeconds[name, default: (0, 0)].programs += 1
        compileSeconds[name, default: (0, 0)].seconds += seconds
        logger.debug("program cache: compiled \(label)")
        if storesBinaries, let dir = directory { storeBinary(program.handle, directory: dir, fileName: fileName) }
        programs[memoryKey] = program
        return program
    }

    /// `-cl-std=CL1.2`, the sorted defines, and the register limit where the
    /// driver takes one (`cl_nv_compiler_options`: NVIDIA's, passed on to its
    /// assembler as `--maxrregcount`).
    public static func buildOptions(_ defines: [String: String], registerLimit: Int? = nil,
                                    nvidiaCompilerOptions: Bool = false) -> String {
        var parts = ["-cl-std=CL1.2"]
        for key in defines.keys.sorted() {
            let value = defines[key]!
            parts.append(value.isEmpty ? "-D\(key)" : "-D\(key)=\(value)")
        }
        if let registerLimit, nvidiaCompilerOptions { parts.append("-cl-nv-maxrregcount=\(registerLimit)") }
        return parts.joined(separator: " ")
    }

    /// 64-bit FNV-1a over the parts, separated so that ("ab","c") ≠ ("a","bc").
    /// Public so that other per-device cache files (e.g. Clover's tuned
    /// CLBlast parameters) are named the same way as program binaries.
    public static func fnv1a64(_ parts: [String]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for part in parts {
            for byte in part.utf8 {
                hash ^= UInt64(byte)
                hash = hash &* 0x0000_0100_0000_01b3
            }
            hash ^= 0xff
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }

    private func compile(source: String, options: String, label: String) throws -> Program {
        var status: cl_int = 0
        let program: cl_program? = source.withCString { ptr -> cl_program? in
            var p: UnsafePointer<CChar>? = ptr
            var length = strlen(ptr)
            return clCreateProgramWithSource(context, 1, &p, &length, &status)
        }
        guard let program, status == CL_SUCCESS else {
            throw OpenCLError(call: "clCreateProgramWithSource", code: status, detail: label)
        }
        var deviceID: cl_device_id? = device.id
        let build = clBuildProgram(program, 1, &deviceID, options, nil, nil)
        if build != CL_SUCCESS {
            let log = buildLog(program)
            clReleaseProgram(program)
            throw OpenCLError(call: "clBuildProgram", code: build, detail: "\(label) on \(device.name)", buildLog: log)
        }
        return Program(handle: program, name: label, options: options)
    }

    private func buildLog(_ program: cl_program) -> String {
        var size = 0
        guard clGetProgramBuildInfo(program, device.id, cl_program_build_info(CL_PROGRAM_BUILD_LOG), 0, nil, &size) == CL_SUCCESS,
              size > 0 else { return "" }
        var bytes = [CChar](repeating: 0, count: size)
        guard clGetProgramBuildInfo(program, device.id, cl_program_build_info(CL_PROGRAM_BUILD_LOG), size, &bytes, nil) == CL_SUCCESS
        else { return "" }
        return trimmedCString(bytes)
    }

    /// A program from a cached binary, or nil when there is none or it is
    /// unusable (then it is compiled afresh and the file replaced).
    private func loadBinary(path: String, options: String, label: String) -> Program? {
        guard let file = FileManager.default.contents(atPath: path), !file.isEmpty else { return nil }
        // A truncated or corrupted binary can crash the driver inside
        // clCreateProgramWithBinary/clBuildProgram (POCL does), so nothing
        // reaches it unless its recorded length and checksum match.
        guard let data = Self.verifiedBinary([UInt8](file)) else {
            logger.warning("program cache: \(path) failed its length or checksum check (truncated, corrupt or from an older Clover); recompiling \(label)")
            unlink(path)
            return nil
        }
        var status: cl_int = 0
        var binaryStatus: cl_int = 0
        var deviceID: cl_device_id? = device.id
        let program: cl_program? = data.withUnsafeBytes { raw -> cl_program? in
            var length = raw.count
            var ptr: UnsafePointer<UInt8>? = raw.bindMemory(to: UInt8.self).baseAddress
            return clCreateProgramWithBinary(context, 1, &deviceID, &length, &ptr, &binaryStatus, &status)
        }
        guard let program, status == CL_SUCCESS, binaryStatus == CL_SUCCESS else {
            logger.warning("program cache: unusable binary \(path) (\(OpenCLError.name(of: status))); recompiling \(label)")
            return nil
        }
        guard clBuildProgram(program, 1, &deviceID, options, nil, nil) == CL_SUCCESS else {
            clReleaseProgram(program)
            logger.warning("program cache: binary \(path) failed to build; recompiling \(label)")
            return nil
        }
        return Program(handle: program, name: label, options: options)
    }

    /// The magic that opens every cached binary file.
    static let binaryMagic = Array("CLVRBIN1".utf8)

    /// A binary framed for the disk cache: magic, little-endian length and
    /// FNV-1a checksum of the binary (8 bytes each), then the binary.
    static func framedBinary(_ binary: [UInt8]) -> [UInt8] {
        var out = binaryMagic
        for value in [UInt64(binary.count), fnv1a64(bytes: binary)] {
            for i in 0..<8 { out.append(UInt8((value >> (8 * UInt64(i))) & 0xff)) }
        }
        return out + binary
    }

    /// The binary inside a framed file, or nil unless magic, length and
    /// checksum all match.
    static func verifiedBinary(_ file: [UInt8]) -> [UInt8]? {
        let headerSize = binaryMagic.count + 16
        guard file.count > headerSize, Array(file[0..<binaryMagic.count]) == binaryMagic else { return nil }
        func word(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(file[at + $1]) << (8 * UInt64($1)) } }
        let binary = Array(file[headerSize...])
        guard word(binaryMagic.count) == UInt64(binary.count), word(binaryMagic.count + 8) == fnv1a64(bytes: binary) else {
            return nil
        }
        return binary
    }

    /// 64-bit FNV-1a over raw bytes.
    static func fnv1a64(bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }

    private func storeBinary(_ program: cl_program, directory: String, fileName: String) {
        var size = 0
        guard clGetProgramInfo(program, cl_program_info(CL_PROGRAM_BINARY_SIZES), MemoryLayout<Int>.size, &size, nil) == CL_SUCCESS,
              size > 0 else { return }
        var bytes = [UInt8](repeating: 0, count: size)
        let ok = bytes.withUnsafeMutableBufferPointer { buf -> Bool in
            var ptr: UnsafeMutablePointer<UInt8>? = buf.baseAddress
            return clGetProgramInfo(program, cl_program_info(CL_PROGRAM_BINARIES),
                                    MemoryLayout<UnsafeMutablePointer<UInt8>?>.size, &ptr, nil) == CL_SUCCESS
        }
        guard ok else { return }
        do {
            // Atomic, so a concurrent reader never sees a half-written binary; not
            // flushed, as a torn entry fails its checksum on reading and is rebuilt.
            try AtomicFile.write(Self.framedBinary(bytes), to: directory + "/" + fileName,
                                 createDirectories: true, durable: false)
        } catch {
            logger.warning("program cache: binary not stored: \(error)")
        }
    }
}
