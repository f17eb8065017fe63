import COpenCL
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The kind of an OpenCL device.
public enum DeviceKind: String, Sendable {
    case gpu = "GPU", cpu = "CPU", accelerator = "Accelerator", other = "Other"
}

/// One OpenCL device and the facts about it that Clover reports and uses.
public final class OpenCLDevice: CustomStringConvertible {
    /// The OpenCL handle. Devices are owned by their platform, not retained.
    public let id: cl_device_id
    public let platformID: cl_platform_id
    /// Position in the global enumeration (platform order, then device order).
    public let index: Int
    public let platformName: String
    public let platformVersion: String
    public let platformVendor: String
    public let name: String
    public let vendor: String
    public let kind: DeviceKind
    public let driverVersion: String
    public let openCLCVersion: String
    public let computeUnits: Int
    public let globalMemoryBytes: Int
    public let maxAllocationBytes: Int
    public let localMemoryBytes: Int
    public let maxWorkGroupSize: Int
    public let extensions: [String]
    /// Floats per native vector register (`CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT`):
    /// 16 on AVX-512 CPUs, 8 on AVX2 ones (POCL), 1 on most GPUs. The CPU
    /// kernels size their register blocks by it.
    public let nativeFloatVectorWidth: Int
    /// NVIDIA's compute capability (major, minor), read through
    /// `cl_nv_device_attribute_query`; nil on other devices.
    public let nvidiaComputeCapability: (major: Int, minor: Int)?

    /// Whether the device has TF32 tensor cores that Clover's kernels can
    /// reach (`mma.sync` m16n8k8 TF32 through inline PTX): NVIDIA devices of
    /// compute capability 8.0 or later.
    public var hasTF32TensorCores: Bool { (nvidiaComputeCapability?.major ?? 0) >= 8 }

    init(id: cl_device_id, platformID: cl_platform_id, index: Int, platformName: String, platformVersion: String,
         platformVendor: String) throws {
        self.id = id
        self.platformID = platformID
        self.index = index
        self.platformName = platformName
        self.platformVersion = platformVersion
        self.platformVendor = platformVendor
        name = try deviceString(id, cl_device_info(CL_DEVICE_NAME))
        vendor = try deviceString(id, cl_device_info(CL_DEVICE_VENDOR))
        driverVersion = try deviceString(id, cl_device_info(CL_DRIVER_VERSION))
        openCLCVersion = try deviceString(id, cl_device_info(CL_DEVICE_OPENCL_C_VERSION))
        let type: cl_device_type = try deviceValue(id, cl_device_info(CL_DEVICE_TYPE))
        if type & cl_device_type(CL_DEVICE_TYPE_GPU) != 0 { kind = .gpu }
        else if type & cl_device_type(CL_DEVICE_TYPE_CPU) != 0 { kind = .cpu }
        else if type & cl_device_type(CL_DEVICE_TYPE_ACCELERATOR) != 0 { kind = .accelerator }
        else { kind = .other }
        let units: cl_uint = try deviceValue(id, cl_device_info(CL_DEVICE_MAX_COMPUTE_UNITS))
        computeUnits = Int(units)
        let global: cl_ulong = try deviceValue(id, cl_device_info(CL_DEVICE_GLOBAL_MEM_SIZE))
        globalMemoryBytes = Int(global)
        let maxAlloc: cl_ulong = try deviceValue(id, cl_device_info(CL_DEVICE_MAX_MEM_ALLOC_SIZE))
        maxAllocationBytes = Int(maxAlloc)
        let local: cl_ulong = try deviceValue(id, cl_device_info(CL_DEVICE_LOCAL_MEM_SIZE))
        localMemoryBytes = Int(local)
        let wg: Int = try deviceValue(id, cl_device_info(CL_DEVICE_MAX_WORK_GROUP_SIZE))
        maxWorkGroupSize = wg
        let vectorWidth: cl_uint = try deviceValue(id, cl_device_info(CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT))
        nativeFloatVectorWidth = max(1, Int(vectorWidth))
        extensions = try deviceString(id, cl_device_info(CL_DEVICE_EXTENSIONS))
            .split(separator: " ").map(String.init)
        if extensions.contains("cl_nv_device_attribute_query") {
            // CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV and _MINOR_NV (the extension's 0x4000, 0x4001).
            let major: cl_uint = try deviceValue(id, cl_device_info(0x4000))
            let minor: cl_uint = try deviceValue(id, cl_device_info(0x4001))
            nvidiaComputeCapability = (Int(major), Int(minor))
        } else {
            nvidiaComputeCapability = nil
        }
    }

    /// A stable one-line identity: used in cache keys and messages.
    public var description: String { "\(name) [\(platformName)]" }

    /// The identity that keys the on-disk program cache: a new driver or a
    /// different device must not load another's binaries.
    public var cacheIdentity: String {
        "\(platformName)|\(platformVersion)|\(name)|\(vendor)|\(driverVersion)"
    }

    /// Whether the device advertises an OpenCL extension.
    public func supports(_ extensionName: String) -> Bool { extensions.contains(extensionName) }
}

private func deviceString(_ device: cl_device_id, _ param: cl_device_info) throws -> String {
    var size = 0
    try checkCL(clGetDeviceInfo(device, param, 0, nil, &size), "clGetDeviceInfo")
    var bytes = [CChar](repeating: 0, count: max(size, 1))
    try checkCL(clGetDeviceInfo(device, param, size, &bytes, nil), "clGetDeviceInfo")
    return trimmedCString(bytes)
}

private func deviceValue<T: FixedWidthInteger>(_ device: cl_device_id, _ param: cl_device_info) throws -> T {
    var value: T = 0
    try checkCL(clGetDeviceInfo(device, param, MemoryLayout<T>.size, &value, nil), "clGetDeviceInfo")
    return value
}

private func platformString(_ platform: cl_platform_id, _ param: cl_platform_info) throws -> String {
    var size = 0
    try checkCL(clGetPlatformInfo(platform, param, 0, nil, &size), "clGetPlatformInfo")
    var bytes = [CChar](repeating: 0, count: max(size, 1))
    try checkCL(clGetPlatformInfo(platform, param, size, &bytes, nil), "clGetPlatformInfo")
    return trimmedCString(bytes)
}

func trimmedCString(_ bytes: [CChar]) -> String {
    let end = bytes.firstIndex(of: 0) ?? bytes.count
    let text = String(decoding: bytes[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    var scalars = Substring(text)
    while let last = scalars.last, last == " " || last == "\n" { scalars = scalars.dropLast() }
    while let first = scalars.first, first == " " { scalars = scalars.dropFirst() }
    return String(scalars)
}

/// Discovery and selection of OpenCL devices.
public enum DeviceDiscovery {
    /// The environment variable consulted when no `--device` is given.
    public static let environmentVariable = "CLOVER_DEVICE"

    /// Every device of every platform, in platform order.
    ///
    /// - Throws: ``RuntimeError/noPlatform`` when no platform is installed.
    public static func allDevices() throws -> [OpenCLDevice] {
        var count: cl_uint = 0
        let status = clGetPlatformIDs(0, nil, &count)
        if status == -1001 || (status == CL_SUCCESS && count == 0) {
            throw RuntimeError.noPlatform
        }
        try checkCL(status, "clGetPlatformIDs")
        var platforms = [cl_platform_id?](repeating: nil, count: Int(count))
        try checkCL(clGetPlatformIDs(count, &platforms, nil), "clGetPlatformIDs")
        var devices: [OpenCLDevice] = []
        for case let platform? in platforms {
            let pname = try platformString(platform, cl_platform_info(CL_PLATFORM_NAME))
            let pversion = try platformString(platform, cl_platform_info(CL_PLATFORM_VERSION))
            let pvendor = try platformString(platform, cl_platform_info(CL_PLATFORM_VENDOR))
            var n: cl_uint = 0
            let st = clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &n)
            if st == CL_DEVICE_NOT_FOUND || n == 0 { continue }
            try checkCL(st, "clGetDeviceIDs", detail: pname)
            var ids = [cl_device_id?](repeating: nil, count: Int(n))
            try checkCL(clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), n, &ids, nil), "clGetDeviceIDs", detail: pname)
            for case let id? in ids {
                devices.append(try OpenCLDevice(id: id, platformID: platform, index: devices.count,
                                                platformName: pname, platformVersion: pversion,
                                                platformVendor: pvendor))
            }
        }
        if devices.isEmpty { throw RuntimeError.noPlatform }
        return devices
    }

    /// Picks a device by specification.
    ///
    /// `spec` is an index into ``allDevices()`` or a case-insensitive substring
    /// of the platform or device name (or their vendors, so `pocl` finds the
    /// "Portable Computing Language" platform of "The pocl project"). With no spec, `CLOVER_DEVICE` is used;
    /// with neither, the first GPU, else the first CPU, else the first device.
    public static func select(_ spec: String? = nil) throws -> OpenCLDevice {
        let devices = try allDevices()
        let wanted = spec ?? ProcessInfo.processInfo.environment[environmentVariable]
        return try select(wanted, from: devices)
    }

    /// Selection over a given list; see ``select(_:)``.
    public static func select(_ spec: String?, from devices: [OpenCLDevice]) throws -> OpenCLDevice {
        guard let spec = spec?.trimmingSpaces, !spec.isEmpty else {
            if let gpu = devices.first(where: { $0.kind == .gpu }) { return gpu }
            if let cpu = devices.first(where: { $0.kind == .cpu }) { return cpu }
            if let any = devices.first { return any }
            throw RuntimeError.noPlatform
        }
        if let index = Int(spec) {
            if devices.indices.contains(index) { return devices[index] }
        } else {
            let needle = spec.lowercased()
            if let match = devices.first(where: { device in
                [device.name, device.platformName, device.platformVendor, device.vendor]
                    .contains { $0.lowercased().contains(needle) }
            }) {
                return match
            }
        }
        throw RuntimeError.noMatchingDevice(
            spec: spec, available: devices.map { "#\($0.index) \($0.description)" })
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
