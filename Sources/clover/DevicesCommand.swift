import ArgumentParser
import Clover
// FoundationEssentials, not Foundation: it keeps the static binary small (no ICU data).
import FoundationEssentials

/// `clover devices`: every OpenCL platform and device with the facts that
/// decide whether and how Clover can use it.
struct DevicesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "List every OpenCL platform and device, and which one is selected by default."
    )

    @Flag(name: .long, help: "List every extension instead of the key ones.")
    var allExtensions = false

    /// The extensions that matter to Clover's kernels or to judging a device:
    /// precisions, atomics and sub-groups. Vendor `cl_nv_*` extensions are
    /// added by prefix.
    static let keyExtensions = [
        "cl_khr_fp64", "cl_khr_fp16",
        "cl_khr_global_int32_base_atomics", "cl_khr_local_int32_base_atomics",
        "cl_khr_int64_base_atomics",
        "cl_khr_subgroups", "cl_intel_subgroups", "cl_intel_required_subgroup_size",
    ]
    static let keyExtensionPrefixes = ["cl_nv_"]

    func run() throws {
        let devices: [OpenCLDevice]
        do {
            devices = try Device.allOpenCLDevices()
        } catch {
            throw Console.fail(error)
        }
        let platforms = devices.reduce(into: [String]()) { names, device in
            if !names.contains(device.platformName) { names.append(device.platformName) }
        }
        print("OpenCL: \(platforms.count) platform\(platforms.count == 1 ? "" : "s"), "
              + "\(devices.count) device\(devices.count == 1 ? "" : "s")")
        let (defaultIndex, defaultNote) = Self.defaultSelection(devices)
        var currentPlatform: String?
        for device in devices {
            if device.platformName != currentPlatform {
                currentPlatform = device.platformName
                print("\nPlatform: \(device.platformName) (vendor: \(device.platformVendor))")
                print("  version: \(device.platformVersion)")
            }
            print(describe(device, isDefault: device.index == defaultIndex))
        }
        print("\n" + defaultNote)
    }

    /// One device as an indented block of facts.
    private func describe(_ device: OpenCLDevice, isDefault: Bool) -> String {
        let extensions = allExtensions
            ? device.extensions
            : device.extensions.filter { name in
                Self.keyExtensions.contains(name) || Self.keyExtensionPrefixes.contains { name.hasPrefix($0) }
            }
        // Keep key extensions in a fixed order so devices compare at a glance.
        let ordered = allExtensions ? extensions : extensions.sorted { a, b in
            (Self.keyExtensions.firstIndex(of: a) ?? Int.max, a) < (Self.keyExtensions.firstIndex(of: b) ?? Int.max, b)
        }
        let facts: [(String, String)] = [
            ("type", device.kind.rawValue),
            ("vendor", device.vendor),
            ("compute units", String(device.computeUnits)),
            ("global memory", Format.bytes(device.globalMemoryBytes)),
            ("max allocation", Format.bytes(device.maxAllocationBytes)),
            ("local memory", Format.bytes(device.localMemoryBytes)),
            ("max work-group", String(device.maxWorkGroupSize)),
            ("OpenCL C", device.openCLCVersion),
            ("driver", device.driverVersion),
            ("TF32 tensor cores", device.nvidiaComputeCapability.map { cc in
                "\(device.hasTF32TensorCores ? "yes" : "no") (compute capability \(cc.major).\(cc.minor))"
            } ?? "no (not an NVIDIA device)"),
            (allExtensions ? "extensions" : "key extensions",
             (ordered.isEmpty ? "none" : ordered.joined(separator: " "))
                + (allExtensions ? "" : " (\(device.extensions.count) in all; --all-extensions lists them)")),
        ]
        let width = facts.map(\.0.count).max() ?? 0
        var lines = ["  #\(device.index)  \(device.name)\(isDefault ? "  [default]" : "")"]
        for (label, value) in facts {
            lines.append("      " + label + String(repeating: " ", count: width - label.count) + "  " + value)
        }
        return lines.joined(separator: "\n")
    }

    /// The device a command without `--device` would use, and a line that
    /// says why: `CLOVER_DEVICE` when set, else the first GPU or CPU.
    static func defaultSelection(_ devices: [OpenCLDevice]) -> (index: Int?, note: String) {
        let env = ProcessInfo.processInfo.environment[Device.selectionVariable]
        if let env, !env.isEmpty {
            if Device.referenceNames.contains(env.lowercased()) {
                return (nil, "Selected by default: cpu-reference (\(Device.selectionVariable)=\(env))")
            }
            do {
                let device = try Device.defaultOpenCLDevice(env, from: devices)
                return (device.index, "Selected by default: #\(device.index) \(device.description) "
                        + "(\(Device.selectionVariable)=\(env))")
            } catch {
                return (nil, "Selected by default: none — \(Device.selectionVariable)=\(env): \(error)")
            }
        }
        guard let device = try? Device.defaultOpenCLDevice(nil, from: devices) else {
            return (nil, "Selected by default: none")
        }
        let why = device.kind == .gpu ? "first GPU" : device.kind == .cpu ? "no GPU; first CPU device" : "first device"
        return (device.index, "Selected by default: #\(device.index) \(device.description) (\(why); "
                + "override with --device or \(Device.selectionVariable))")
    }
}
