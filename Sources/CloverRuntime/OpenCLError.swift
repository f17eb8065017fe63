import COpenCL
#if canImport(Glibc)
import Glibc
#endif

/// An OpenCL call that did not return `CL_SUCCESS`, or a runtime condition
/// that makes a request impossible on the chosen device.
///
/// The description always names the failing call and the status code's name,
/// e.g. `clEnqueueNDRangeKernel: CL_OUT_OF_RESOURCES (-5)`; a failed program
/// build carries the compiler's full log.
public struct OpenCLError: Error, CustomStringConvertible, Equatable {
    /// The OpenCL API call (or runtime step) that failed.
    public let call: String
    /// The raw status code (0 when the failure is not an OpenCL status).
    public let code: Int32
    /// Extra context: the kernel, program or device involved.
    public let detail: String?
    /// The compiler output of a failed `clBuildProgram`.
    public let buildLog: String?

    public init(call: String, code: Int32, detail: String? = nil, buildLog: String? = nil) {
        self.call = call
        self.code = code
        self.detail = detail
        self.buildLog = buildLog
    }

    /// The symbolic name of ``code``, e.g. `CL_INVALID_KERNEL_NAME`.
    public var codeName: String { OpenCLError.name(of: code) }

    public var description: String {
        var text = "\(call): \(codeName) (\(code))"
        if let detail { text += " — \(detail)" }
        if let buildLog, !buildLog.isEmpty { text += "\nbuild log:\n\(buildLog)" }
        return text
    }

    /// The symbolic name of an OpenCL status code.
    public static func name(of code: Int32) -> String {
        statusNames[code] ?? "UNKNOWN_STATUS"
    }

    private static let statusNames: [Int32: String] = [
        0: "CL_SUCCESS",
        -1: "CL_DEVICE_NOT_FOUND",
        -2: "CL_DEVICE_NOT_AVAILABLE",
        -3: "CL_COMPILER_NOT_AVAILABLE",
        -4: "CL_MEM_OBJECT_ALLOCATION_FAILURE",
        -5: "CL_OUT_OF_RESOURCES",
        -6: "CL_OUT_OF_HOST_MEMORY",
        -7: "CL_PROFILING_INFO_NOT_AVAILABLE",
        -8: "CL_MEM_COPY_OVERLAP",
        -9: "CL_IMAGE_FORMAT_MISMATCH",
        -10: "CL_IMAGE_FORMAT_NOT_SUPPORTED",
        -11: "CL_BUILD_PROGRAM_FAILURE",
        -12: "CL_MAP_FAILURE",
        -13: "CL_MISALIGNED_SUB_BUFFER_OFFSET",
        -14: "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST",
        -15: "CL_COMPILE_PROGRAM_FAILURE",
        -16: "CL_LINKER_NOT_AVAILABLE",
        -17: "CL_LINK_PROGRAM_FAILURE",
        -18: "CL_DEVICE_PARTITION_FAILED",
        -19: "CL_KERNEL_ARG_INFO_NOT_AVAILABLE",
        -30: "CL_INVALID_VALUE",
        -31: "CL_INVALID_DEVICE_TYPE",
        -32: "CL_INVALID_PLATFORM",
        -33: "CL_INVALID_DEVICE",
        -34: "CL_INVALID_CONTEXT",
        -35: "CL_INVALID_QUEUE_PROPERTIES",
        -36: "CL_INVALID_COMMAND_QUEUE",
        -37: "CL_INVALID_HOST_PTR",
        -38: "CL_INVALID_MEM_OBJECT",
        -39: "CL_INVALID_IMAGE_FORMAT_DESCRIPTOR",
        -40: "CL_INVALID_IMAGE_SIZE",
        -41: "CL_INVALID_SAMPLER",
        -42: "CL_INVALID_BINARY",
        -43: "CL_INVALID_BUILD_OPTIONS",
        -44: "CL_INVALID_PROGRAM",
        -45: "CL_INVALID_PROGRAM_EXECUTABLE",
        -46: "CL_INVALID_KERNEL_NAME",
        -47: "CL_INVALID_KERNEL_DEFINITION",
        -48: "CL_INVALID_KERNEL",
        -49: "CL_INVALID_ARG_INDEX",
        -50: "CL_INVALID_ARG_VALUE",
        -51: "CL_INVALID_ARG_SIZE",
        -52: "CL_INVALID_KERNEL_ARGS",
        -53: "CL_INVALID_WORK_DIMENSION",
        -54: "CL_INVALID_WORK_GROUP_SIZE",
        -55: "CL_INVALID_WORK_ITEM_SIZE",
        -56: "CL_INVALID_GLOBAL_OFFSET",
        -57: "CL_INVALID_EVENT_WAIT_LIST",
        -58: "CL_INVALID_EVENT",
        -59: "CL_INVALID_OPERATION",
        -60: "CL_INVALID_GL_OBJECT",
        -61: "CL_INVALID_BUFFER_SIZE",
        -62: "CL_INVALID_MIP_LEVEL",
        -63: "CL_INVALID_GLOBAL_WORK_SIZE",
        -64: "CL_INVALID_PROPERTY",
        -65: "CL_INVALID_IMAGE_DESCRIPTOR",
        -66: "CL_INVALID_COMPILER_OPTIONS",
        -67: "CL_INVALID_LINKER_OPTIONS",
        -68: "CL_INVALID_DEVICE_PARTITION_COUNT",
        -1001: "CL_PLATFORM_NOT_FOUND_KHR",
    ]
}

/// Throws an ``OpenCLError`` naming `call` unless `status` is `CL_SUCCESS`.
@inlinable
public func checkCL(_ status: cl_int, _ call: @autoclosure () -> String, detail: @autoclosure () -> String? = nil) throws {
    if status != CL_SUCCESS {
        throw OpenCLError(call: call(), code: status, detail: detail())
    }
}

/// Errors of device selection and resource limits that are not OpenCL statuses.
public enum RuntimeError: Error, CustomStringConvertible, Equatable {
    /// No OpenCL platform is installed (the ICD loader found none).
    case noPlatform
    /// The device specification matched nothing; lists what exists.
    case noMatchingDevice(spec: String, available: [String])
    /// A buffer larger than the device allows was requested.
    case allocationTooLarge(bytes: Int, maxAllocation: Int, device: String)
    /// An allocation would take the buffers in use past the device's memory.
    case outOfDeviceMemory(bytes: Int, inUse: Int, limit: Int, device: String)
    /// The device ran out of memory while allocating.
    case allocationFailed(bytes: Int, device: String, status: String)
    /// A kernel argument or launch was malformed before reaching OpenCL.
    case invalidLaunch(kernel: String, reason: String)
    /// A launch breaks the launch profile every launch is checked against
    /// (see ``LaunchProfile``), whatever the device would accept.
    case launchOutsideProfile(kernel: String, global: [Int], local: [Int]?, profile: String, reason: String)

    public var description: String {
        switch self {
        case .noPlatform:
            return "no OpenCL platform found (install an ICD such as pocl-opencl-icd)" + Self.cacheEnvironmentHint()
        case let .noMatchingDevice(spec, available):
            return "no OpenCL device matches '\(spec)'; available: " + available.joined(separator: "; ")
        case let .allocationTooLarge(bytes, maxAllocation, device):
            return "cannot allocate \(bytes) bytes on \(device): the device's largest single allocation is \(maxAllocation) bytes"
        case let .outOfDeviceMemory(bytes, inUse, limit, device):
            return "cannot allocate \(bytes) bytes on \(device): \(inUse) bytes are in use and the device has "
                + "\(limit) bytes of memory (try a smaller batch size)"
        case let .allocationFailed(bytes, device, status):
            return "allocating \(bytes) bytes on \(device) failed: \(status)"
        case let .invalidLaunch(kernel, reason):
            return "cannot launch kernel \(kernel): \(reason)"
        case let .launchOutsideProfile(kernel, global, local, profile, reason):
            return "kernel \(kernel) with global size \(global) and local size \(local.map { "\($0)" } ?? "auto") "
                + "breaks the \(profile) launch profile: \(reason)"
        }
    }
}

extension RuntimeError {
    /// POCL keeps its kernel cache under `POCL_CACHE_DIR`, else
    /// `XDG_CACHE_HOME/pocl`, else `~/.cache/pocl`, and fails to start (so
    /// the ICD loader reports no platform at all) when that cannot be a
    /// directory. Names the variable when that is the likely cause.
    static func cacheEnvironmentHint() -> String {
        for name in ["POCL_CACHE_DIR", "XDG_CACHE_HOME"] {
            guard let value = getenv(name).map({ String(cString: $0) }), !value.isEmpty else { continue }
            var info = stat()
            if stat(value, &info) == 0, (info.st_mode & S_IFMT) != S_IFDIR {
                return "; note: \(name)=\(value) is not a directory, and POCL keeps its kernel cache there"
            }
        }
        return ""
    }
}
