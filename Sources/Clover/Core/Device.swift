#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CloverKernels
import CloverRuntime

/// Where tensors live and ops run: an OpenCL device, or the CPU reference
/// that runs every op's naive host implementation through the same API.
public final class Device: CustomStringConvertible {
    public enum Backend {
        /// The deliberately naive host implementation (Double accumulation).
        case reference
        /// An OpenCL device with its context and queue.
        case openCL(OpenCLContext)
        /// Shapes only: ops apply their shape rules and allocate nothing, so
        /// a model's parameter count and multiply-adds at full size cost
        /// nothing (PyTorch's "meta" device).
        case meta
    }

    public let backend: Backend

    /// Called during ``Tensor/backward(_:)`` of a tensor on this device, on
    /// the calling thread, with each leaf that requires a gradient once no
    /// later node of the pass can add to it (its ``Tensor/grad`` is then
    /// complete, or nil when the pass gave it none); the device work that
    /// writes it is enqueued, not necessarily done. Data-parallel training
    /// starts reducing a bucket of gradients here while backward goes on.
    /// Nil (the default) skips the bookkeeping. Set it from the thread that
    /// drives the device.
    public var gradientReadinessObserver: ((Tensor) -> Void)?

    /// The multiply-adds counted on this device while a
    /// ``MultiplyAdds/count(on:_:)`` runs; nil outside one.
    var multiplyAddTally: Int?

    init(backend: Backend) { self.backend = backend }

    /// The CPU reference device.
    public static let reference = Device(backend: .reference)

    /// The shape-only device.
    public static let meta = Device(backend: .meta)

    /// The names that select the CPU reference device.
    public static let referenceNames: Set<String> = ["cpu-reference", "cpu-ref", "reference"]

    /// An OpenCL device wrapped for ops.
    public convenience init(openCL context: OpenCLContext) {
        self.init(backend: .openCL(context))
    }

    /// Selects a device by `--device`-style spec: `cpu-reference`, an index,
    /// or a substring of a platform or device name; `nil` consults
    /// `CLOVER_DEVICE`, then picks the first GPU, else the first CPU device.
    ///
    /// CLBlast parameters saved for the device by `clover tune` (in the
    /// program-cache directory) are applied, unless `CLOVER_GEMM_TUNING=0`;
    /// see ``GemmTuning``. On a device with TF32 tensor cores the
    /// ``TensorCoreProbe`` runs first, and turns them off when it fails.
    ///
    /// - Throws: an ``OpenCLError`` also when CLBlast refuses the saved
    ///   parameters (`CLBlastOverrideParameters`).
    public static func select(_ spec: String? = nil, cacheDirectory: String?? = .none) throws -> Device {
        let env = spec ?? DeviceDiscovery.environmentValue
        if let env, referenceNames.contains(env.lowercased()) { return .reference }
        let device = try DeviceDiscovery.select(env)
        let context = try OpenCLContext(device: device, cacheDirectory: cacheDirectory)
        try GemmTuning.applyPersistedOnce(context)
        // Before any op may take a tensor-core path: one product against the host's.
        TensorCoreProbe.checkOnce(context)
        return Device(openCL: context)
    }

    /// A planning device over an OpenCL device (default: as ``select(_:cacheDirectory:)``
    /// picks one): ops compile and check every launch they would make
    /// against `profile` and count it, but nothing runs and no device memory
    /// is used, so a full-size training step can be checked on any machine
    /// (see ``OpenCLContext/isPlanning``). Tensor values read back as zeros.
    /// The ops take the kernel paths of `pathKind` (default GPU, the devices
    /// the portable profile describes) whatever the device's own kind.
    public static func planning(_ spec: String? = nil, profile: LaunchProfile = .portable,
                                pathKind: DeviceKind = .gpu, cacheDirectory: String?? = .none) throws -> Device {
        let env = spec ?? DeviceDiscovery.environmentValue
        let device = try DeviceDiscovery.select(env.flatMap { referenceNames.contains($0.lowercased()) ? nil : $0 })
        let context = try OpenCLContext(device: device, cacheDirectory: cacheDirectory, planning: true)
        context.launchProfile = profile
        context.pathKind = pathKind
        return Device(openCL: context)
    }

    /// The OpenCL context, or nil for the reference device.
    public var openCL: OpenCLContext? {
        if case let .openCL(ctx) = backend { return ctx }
        return nil
    }

    public var isReference: Bool {
        if case .reference = backend { return true }
        return false
    }

    /// Whether this is a planning device (launches checked, nothing run).
    public var isPlanning: Bool { openCL?.isPlanning ?? false }

    public var isMeta: Bool {
        if case .meta = backend { return true }
        return false
    }

    public var description: String {
        switch backend {
        case .reference: return "cpu-reference"
        case .meta: return "meta"
        case let .openCL(ctx): return ctx.device.description
        }
    }

    /// Waits for all queued work (no-op for the reference device).
    public func synchronize() throws {
        try openCL?.finish()
    }
}

extension DeviceDiscovery {
    static var environmentValue: String? {
        guard let v = ProcessInfo.processInfo.environment[environmentVariable], !v.isEmpty else { return nil }
        return v
    }
}

extension OpenCLContext {
    /// The kernel `name` (`Kernels/<family>.cl`) with its macros' defaults.
    func kernel(_ name: KernelName, registerLimit: Int? = nil) throws -> Kernel {
        try kernel(name.name, program: name.family, source: { try KernelSources.source(family: name.family) },
                   defines: [:], registerLimit: registerLimit)
    }

    /// The kernel `name` specialised with its family's typed macros (generated
    /// per family, see ``KernelDefines``), or an error when they are another
    /// family's.
    func kernel<Defines: KernelDefines>(_ name: KernelName, _ defines: Defines, registerLimit: Int? = nil) throws -> Kernel {
        guard Defines.family == name.family else {
            throw RuntimeError.invalidLaunch(kernel: name.name,
                                             reason: "given the macros of \(Defines.family).cl, not \(name.family).cl")
        }
        return try kernel(name.name, program: name.family, source: { try KernelSources.source(family: name.family) },
                          defines: defines.values, registerLimit: registerLimit)
    }

    /// Launches `kernel` with its typed arguments (generated per `__kernel`,
    /// see ``KernelArguments``), or throws when they are another kernel's.
    @discardableResult
    func launch<Arguments: KernelArguments>(_ kernel: Kernel, global: [Int], local: [Int]? = nil,
                                            _ arguments: Arguments, timed: Bool = false) throws -> Event? {
        guard kernel.name == Arguments.kernel.name else {
            throw RuntimeError.invalidLaunch(kernel: kernel.name, reason: "given the arguments of \(Arguments.kernel)")
        }
        return try launch(kernel, global: global, local: local, arguments: arguments.values, timed: timed)
    }
}
