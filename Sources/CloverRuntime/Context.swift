import COpenCL
import Synchronization
import Logging

/// A type whose value an ``OpenCLContext`` can hold for a layer above the
/// runtime (``OpenCLContext/subscript(attachment:)``).
public protocol ContextAttachment {
    /// The value a context holds before one is set.
    static var defaultValue: Self { get }
}

/// An OpenCL context on one device with one in-order, profiling-enabled
/// queue, a program cache and a buffer pool.
///
/// Everything is enqueued on the one queue, so commands run in the order they
/// were issued and a buffer released to the pool can be handed to the next
/// command without waiting.
public final class OpenCLContext {
    public let device: OpenCLDevice
    public let handle: cl_context
    public let queue: cl_command_queue
    public let programs: ProgramCache
    public let pool: BufferPool
    public let logger: Logger
    /// A number no other context of this process has or will have: a key
    /// for per-context caches that, unlike `ObjectIdentifier`, a context
    /// created after this one is freed cannot reuse.
    public let serial: UInt64 = OpenCLContext.nextSerial.add(1, ordering: .relaxed).oldValue
    private static let nextSerial = Atomic<UInt64>(0)
    /// Kernels launched on this context by `family/name` (CLBlast routines
    /// as `clblast/<routine>`), with their launch counts; the conformance
    /// sweep uses it to prove every kernel was exercised.
    public private(set) var launchCounts: [String: Int] = [:]

    /// Called for every launch that passed the profile check, planned or
    /// enqueued, before it is enqueued: the kernel, its global and local
    /// sizes and the bytes of its `__local` arguments. The static NVIDIA
    /// check records a planned step's launches through it (which program,
    /// which kernel, at which work-group size).
    public var launchObserver: ((LaunchRecord) -> Void)?

    /// State that a layer above the runtime keeps per context (the ops'
    /// execution options, say), by type: the runtime holds it without
    /// knowing what it is, so no op choice has to live in a process-wide
    /// variable.
    private var attachments: [ObjectIdentifier: Any] = [:]

    /// The value of type `Value` attached to this context, or
    /// ``ContextAttachment/defaultValue`` until one is set.
    public subscript<Value: ContextAttachment>(attachment type: Value.Type) -> Value {
        get { attachments[ObjectIdentifier(type)] as? Value ?? Value.defaultValue }
        set { attachments[ObjectIdentifier(type)] = newValue }
    }

    /// When true, every launch records a profiling event, so that
    /// ``profile()`` can report device time per kernel. Off by default:
    /// an event per launch costs host time.
    public var isProfiling = false {
        didSet { if !isProfiling { profiledEvents.removeAll() } }
    }
    private var profiledEvents: [(String, Event)] = []

    /// The most bytes of Clover buffers alive at once: the device's global
    /// memory unless set lower (tests; sharing a device).
    public var memoryLimitBytes: Int

    /// The limits every launch is checked against before it is enqueued,
    /// whatever the device itself would accept (see ``LaunchProfile``).
    public var launchProfile = LaunchProfile.portable

    /// The device kind whose kernel paths the ops take (their heuristics:
    /// vector or tiled convolution kernels, batch norm's chunking, …): the
    /// device's own kind, unless set. A planning context for GPU limits sets
    /// `.gpu`, so that the launches it checks are the ones a GPU would make.
    public var pathKind: DeviceKind {
        get { pathKindOverride ?? device.kind }
        set { pathKindOverride = newValue }
    }
    private var pathKindOverride: DeviceKind?

    /// The arithmetic the ops' convolutions may use: ``MatmulPrecision/tf32``
    /// (the default, as PyTorch's convolutions: TF32 tensor cores where the
    /// device has them and their probe passed, FP32 accumulation) or
    /// ``MatmulPrecision/fp32`` (strict FP32 everywhere).
    public var matmulPrecision = MatmulPrecision.tf32

    /// Why the tensor cores are off on this context although the device has
    /// them: the probe's failure (Clover's `TensorCoreProbe`); nil otherwise.
    public var tensorCoreFailure: String?
    /// Whether the tensor-core probe has run on this context.
    public var tensorCoresProbed = false

    /// Whether the ops may take TF32 tensor-core kernels: the precision
    /// allows it and the device has them (and passed the probe), or this is
    /// a planning context standing for a GPU (which then plans the kernels
    /// such a GPU builds).
    public var usesTF32TensorCores: Bool {
        guard matmulPrecision == .tf32, tensorCoreFailure == nil else { return false }
        return device.hasTF32TensorCores || (isPlanning && pathKind == .gpu)
    }

    /// The precision in force and why, in words, for headers and reports:
    /// `tf32 (TF32 tensor cores, FP32 accumulation)`, `fp32 (strict)`, or
    /// `fp32 (tf32 asked; ...)` naming the missing tensor cores or the failed probe.
    public var precisionInForce: String {
        if usesTF32TensorCores { return "tf32 (TF32 tensor cores, FP32 accumulation)" }
        if matmulPrecision == .fp32 { return "fp32 (strict)" }
        if let tensorCoreFailure { return "fp32 (tf32 asked; the tensor-core probe failed: \(tensorCoreFailure))" }
        return "fp32 (tf32 asked; \(device.name) has no TF32 tensor cores)"
    }

    /// Whether this context only plans: launches are checked against the
    /// profile and counted but not enqueued, buffers are placeholders that
    /// hold no memory, uploads and copies do nothing and downloads read
    /// zeros. A model's whole training step at full size and batch can
    /// then be checked against a GPU's launch limits on any machine.
    public let isPlanning: Bool
    /// The one small real buffer every planned allocation stands for (a
    /// retained reference each), so kernel arguments can still be set.
    private let planningBuffer: cl_mem?
    /// Bytes of the planned allocations that are alive, and their peak.
    public private(set) var plannedLiveBytes = 0
    public private(set) var plannedPeakBytes = 0

    /// Starts a new high-water mark of planned memory at what is alive now.
    public func resetPlannedPeak() { plannedPeakBytes = plannedLiveBytes }

    /// Creates a context on `device`.
    ///
    /// - Parameters:
    ///   - cacheDirectory: where program binaries are cached; defaults to
    ///     ``ProgramCache/defaultDirectory``. Pass `.some(nil)` to disable.
    ///   - storeProgramBinaries: whether built programs are stored there and
    ///     loaded back; nil (the default) lets the driver decide
    ///     (``ProgramCache/storesBinariesByDefault(on:)``: off on POCL, which
    ///     caches builds itself).
    ///   - planning: create a planning context (see ``isPlanning``).
    public init(device: OpenCLDevice, cacheDirectory: String?? = .none, storeProgramBinaries: Bool? = nil,
                logger: Logger = Logger(label: "clover.runtime"), planning: Bool = false) throws {
        self.device = device
        self.logger = logger
        self.isPlanning = planning
        self.memoryLimitBytes = device.globalMemoryBytes
        var status: cl_int = 0
        var deviceID: cl_device_id? = device.id
        var properties: [cl_context_properties] = [
            cl_context_properties(CL_CONTEXT_PLATFORM),
            cl_context_properties(Int(bitPattern: UnsafeRawPointer(device.platformID))),
            0,
        ]
        guard let ctx = clCreateContext(&properties, 1, &deviceID, nil, nil, &status), status == CL_SUCCESS else {
            throw OpenCLError(call: "clCreateContext", code: status, detail: device.description)
        }
        handle = ctx
        // clCreateCommandQueue is the OpenCL 1.2 entry point; NVIDIA's driver
        // only offers 1.2, so the 2.0 WithProperties variant is not used.
        guard let q = clCreateCommandQueue(ctx, device.id, cl_command_queue_properties(CL_QUEUE_PROFILING_ENABLE), &status),
              status == CL_SUCCESS else {
            clReleaseContext(ctx)
            throw OpenCLError(call: "clCreateCommandQueue", code: status, detail: device.description)
        }
        queue = q
        if planning {
            guard let mem = clCreateBuffer(ctx, cl_mem_flags(CL_MEM_READ_WRITE), 256, nil, &status),
                  status == CL_SUCCESS else {
                clReleaseCommandQueue(q)
                clReleaseContext(ctx)
                throw OpenCLError(call: "clCreateBuffer", code: status, detail: "the planning placeholder buffer")
            }
            planningBuffer = mem
        } else {
            planningBuffer = nil
        }
        let directory: String? = cacheDirectory ?? ProgramCache.defaultDirectory
        programs = ProgramCache(context: ctx, device: device, directory: directory,
                                storesBinaries: storeProgramBinaries ?? ProgramCache.storesBinariesByDefault(on: device),
                                logger: logger)
        // Keep at most a quarter of device memory idle in the pool.
        pool = BufferPool(cacheLimitBytes: max(device.globalMemoryBytes / 4, 64 << 20))
    }

    deinit {
        clFinish(queue)
        releaseCompletedUploads(all: true)
        pool.trim()
        if let planningBuffer { clReleaseMemObject(planningBuffer) }
        clReleaseCommandQueue(queue)
        clReleaseContext(handle)
    }

    // MARK: Buffers

    /// A device buffer of at least `bytes`, reused from the pool when possible.
    ///
    /// - Throws: ``RuntimeError/allocationTooLarge(bytes:maxAllocation:device:)``
    ///   above the device's single-allocation limit, or
    ///   ``RuntimeError/allocationFailed(bytes:device:status:)``.
    /// - Parameter resident: the buffer will live across training steps (a
    ///   cache, optimiser state): it is created afresh rather than taken from
    ///   the pool, so the pool keeps the buffers that the next step's
    ///   temporaries will ask for and a steady-state step allocates nothing.
    public func allocate(bytes: Int, resident: Bool = false) throws -> DeviceBuffer {
        precondition(bytes >= 0)
        let capacity = BufferPool.bucket(for: max(bytes, 4))
        // A planning context stands for a GPU: the profile's limit, not the planning device's.
        let maxAllocation = isPlanning ? launchProfile.maxPlannedAllocationBytes : device.maxAllocationBytes
        guard capacity <= maxAllocation || bytes <= maxAllocation else {
            throw RuntimeError.allocationTooLarge(bytes: bytes, maxAllocation: maxAllocation,
                                                  device: isPlanning ? "\(device.description) (planning)" : device.description)
        }
        let size = min(capacity, maxAllocation)
        if let planningBuffer {
            clRetainMemObject(planningBuffer)
            plannedLiveBytes += size
            plannedPeakBytes = max(plannedPeakBytes, plannedLiveBytes)
            return DeviceBuffer(handle: planningBuffer, capacityBytes: size, requestedBytes: bytes, pool: nil,
                                onRelease: { [weak self] in self?.plannedLiveBytes -= size })
        }
        if !resident, let mem = pool.take(capacity: size) {
            return DeviceBuffer(handle: mem, capacityBytes: size, requestedBytes: bytes, pool: pool)
        }
        // Drivers that back buffers with host memory (POCL) never refuse:
        // keep what is in use within the device's reported memory, so a run
        // that cannot fit fails here, naming the allocation, instead of
        // swapping the host.
        if pool.statistics.liveBytes + pool.statistics.cachedBytes + size > memoryLimitBytes { pool.trim() }
        let inUse = pool.statistics.liveBytes
        guard inUse + size <= memoryLimitBytes else {
            throw RuntimeError.outOfDeviceMemory(bytes: bytes, inUse: inUse, limit: memoryLimitBytes,
                                                 device: device.description)
        }
        var status: cl_int = 0
        var mem = clCreateBuffer(handle, cl_mem_flags(CL_MEM_READ_WRITE), size, nil, &status)
        if mem == nil || status != CL_SUCCESS {
            // Idle pooled buffers may be what stands in the way: free them and retry once.
            pool.trim()
            mem = clCreateBuffer(handle, cl_mem_flags(CL_MEM_READ_WRITE), size, nil, &status)
        }
        guard let mem, status == CL_SUCCESS else {
            throw RuntimeError.allocationFailed(bytes: bytes, device: device.description,
                                                status: "clCreateBuffer: \(OpenCLError.name(of: status))")
        }
        pool.noteAllocated(capacity: size)
        return DeviceBuffer(handle: mem, capacityBytes: size, requestedBytes: bytes, pool: pool)
    }

    /// A view over a new buffer of `count` 32-bit elements.
    public func allocateView(count: Int, resident: Bool = false) throws -> BufferView {
        BufferView(buffer: try allocate(bytes: count * 4, resident: resident), offset: 0, count: count)
    }

    /// Copies host values into the device at a view, in queue order.
    ///
    /// The write is enqueued without blocking: a blocking write on an
    /// in-order queue would make the host wait for every command before it,
    /// so a batch or label upload in the middle of a training step would
    /// drain the device before the rest of the step could be enqueued.
    /// The values are copied to a host staging block first (the caller may
    /// free `values` at once), which is released when the write completes.
    public func upload<T: BitwiseCopyable>(_ values: [T], to view: BufferView) throws {
        precondition(MemoryLayout<T>.stride == 4, "Clover buffers hold 32-bit elements")
        precondition(values.count <= view.count, "upload of \(values.count) elements into a view of \(view.count)")
        guard !values.isEmpty, !isPlanning else { return }
        releaseCompletedUploads()
        let bytes = values.count * 4
        let staging = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        values.withUnsafeBytes { staging.copyMemory(from: $0.baseAddress!, byteCount: bytes) }
        var event: cl_event?
        let status = clEnqueueWriteBuffer(queue, view.buffer.handle, cl_bool(CL_FALSE), view.offset * 4, bytes,
                                          staging, 0, nil, &event)
        guard status == CL_SUCCESS, let event else {
            staging.deallocate()
            throw OpenCLError(call: "clEnqueueWriteBuffer", code: status, detail: "\(bytes) bytes at element \(view.offset)")
        }
        stagedUploads.append((event, staging))
    }

    /// Host staging blocks of uploads that may still be in flight.
    private var stagedUploads: [(event: cl_event, staging: UnsafeMutableRawPointer)] = []

    /// The number of uploads whose staging blocks are still held (tests).
    public var uploadsInFlight: Int { stagedUploads.count }

    /// Frees the staging blocks of finished uploads; with `all`, of every
    /// upload (only once the queue has drained).
    private func releaseCompletedUploads(all: Bool = false) {
        guard !stagedUploads.isEmpty else { return }
        stagedUploads.removeAll { entry in
            if !all {
                var state = cl_int(CL_QUEUED)
                let status = clGetEventInfo(entry.event, cl_event_info(CL_EVENT_COMMAND_EXECUTION_STATUS),
                                            MemoryLayout<cl_int>.size, &state, nil)
                // Queued, submitted or running: the driver may still read the
                // block. Complete (0) or failed (negative): it never will again.
                guard status == CL_SUCCESS, state <= cl_int(CL_COMPLETE) else { return false }
            }
            clReleaseEvent(entry.event)
            entry.staging.deallocate()
            return true
        }
    }

    /// Reads `view.count` values back (blocking: waits for queued work).
    public func download<T: BitwiseCopyable>(_ view: BufferView, as type: T.Type = T.self) throws -> [T] {
        precondition(MemoryLayout<T>.stride == 4, "Clover buffers hold 32-bit elements")
        guard view.count > 0 else { return [] }
        if isPlanning {
            return [T](unsafeUninitializedCapacity: view.count) { buffer, initialized in
                UnsafeMutableRawBufferPointer(buffer).initializeMemory(as: UInt8.self, repeating: 0)
                initialized = view.count
            }
        }
        var result = [T](unsafeUninitializedCapacity: view.count) { _, initialized in initialized = view.count }
        try result.withUnsafeMutableBytes { raw in
            try checkCL(clEnqueueReadBuffer(queue, view.buffer.handle, cl_bool(CL_TRUE), view.offset * 4, raw.count,
                                            raw.baseAddress, 0, nil, nil), "clEnqueueReadBuffer",
                        detail: "\(raw.count) bytes at element \(view.offset)")
        }
        // Every command before the read has finished (in-order queue).
        releaseCompletedUploads(all: true)
        return result
    }

    /// Device-side copy of `count` elements between views.
    public func copy(from source: BufferView, to destination: BufferView, count: Int) throws {
        guard count > 0, !isPlanning else { return }
        try checkCL(clEnqueueCopyBuffer(queue, source.buffer.handle, destination.buffer.handle, source.offset * 4,
                                        destination.offset * 4, count * 4, 0, nil, nil), "clEnqueueCopyBuffer")
    }

    // MARK: Programs and kernels

    /// The kernel `kernelName` of a program built from `source`.
    /// `registerLimit`: see ``ProgramCache/program(name:source:defines:registerLimit:)``.
    public func kernel(_ kernelName: String, program name: String, source: () throws -> String,
                       defines: [String: String] = [:], registerLimit: Int? = nil) throws -> Kernel {
        try programs.program(name: name, source: source, defines: defines, registerLimit: registerLimit)
            .kernel(kernelName)
    }

    /// Launches `kernel` over `global` work items with optional work-group
    /// size `local`. Each global dimension is rounded up to a multiple of the
    /// local size, so kernels must bounds-check their indices.
    ///
    /// Every launch is first checked against ``launchProfile``; with
    /// `tunedWorkGroupLimit`, a kernel whose tuned parameters ask for larger
    /// work-groups may use up to that many items (at most the device's limit).
    ///
    /// - Throws: ``RuntimeError/launchOutsideProfile(kernel:global:local:profile:reason:)``
    ///   naming the kernel, its sizes and the broken limit.
    /// - Returns: the command's event when `timed` is true (for profiling).
    @discardableResult
    public func launch(_ kernel: Kernel, global: [Int], local: [Int]? = nil,
                       arguments: [KernelArgument], timed: Bool = false,
                       tunedWorkGroupLimit: Int? = nil) throws -> Event? {
        guard (1...3).contains(global.count), local == nil || local!.count == global.count else {
            throw RuntimeError.invalidLaunch(kernel: kernel.name, reason: "global \(global) and local \(local ?? []) ranks differ or exceed 3")
        }
        if global.contains(where: { $0 <= 0 }) {
            // Empty launches are legal no-ops for callers; OpenCL rejects them.
            return nil
        }
        let localBytes = kernel.staticLocalMemoryBytes
            + arguments.reduce(0) { $0 + (($1 as? LocalMemory)?.bytes ?? 0) }
        if let reason = launchProfile.violation(global: global, local: local, localMemoryBytes: localBytes,
                                                tunedWorkGroupLimit: tunedWorkGroupLimit.map { min($0, device.maxWorkGroupSize) }) {
            throw RuntimeError.launchOutsideProfile(kernel: kernel.name, global: global, local: local,
                                                    profile: launchProfile.name, reason: reason)
        }
        try kernel.setArguments(arguments)
        if let launchObserver {
            launchObserver(LaunchRecord(kernel: kernel, global: global, local: local,
                                        localArgumentBytes: localBytes - kernel.staticLocalMemoryBytes))
        }
        if isPlanning {
            launchCounts[kernel.qualifiedName, default: 0] += 1
            return nil
        }
        var globalSize = global
        if let local {
            for i in global.indices { globalSize[i] = (global[i] + local[i] - 1) / local[i] * local[i] }
        }
        var event: cl_event?
        let timed = timed || isProfiling
        var localSize = local ?? []
        // Drivers such as POCL generate a kernel's device code when its first
        // launch is submitted, asynchronously, so the time would surface in
        // some later wait. While a command reports compiles (a build
        // observer is set), a first launch is bracketed by waits so that its
        // code generation is timed and shown as it happens; steady-state
        // launches are untouched.
        let firstLaunch = !kernel.launched
        let reportFirstLaunch = firstLaunch && programs.buildObserver != nil
        if reportFirstLaunch { try checkCL(clFinish(queue), "clFinish", detail: "before the first launch of \(kernel.name)") }
        let clock = ContinuousClock()
        let start = clock.now
        if reportFirstLaunch { programs.noteFirstLaunch(kernel: kernel, seconds: nil) }
        let status: cl_int = globalSize.withUnsafeBufferPointer { g in
            localSize.withUnsafeMutableBufferPointer { l in
                withUnsafeMutablePointer(to: &event) { eventPointer in
                    clEnqueueNDRangeKernel(queue, kernel.handle, cl_uint(global.count), nil, g.baseAddress,
                                           local == nil ? nil : l.baseAddress, 0, nil, timed ? eventPointer : nil)
                }
            }
        }
        try checkCL(status, "clEnqueueNDRangeKernel",
                    detail: "kernel '\(kernel.name)' global \(globalSize) local \(local.map { "\($0)" } ?? "auto")")
        kernel.launched = true
        if reportFirstLaunch {
            try checkCL(clFinish(queue), "clFinish", detail: "after the first launch of \(kernel.name)")
            programs.noteFirstLaunch(kernel: kernel, seconds: (clock.now - start).inSeconds)
        }
        launchCounts[kernel.qualifiedName, default: 0] += 1
        let wrapped = event.map(Event.init(handle:))
        if isProfiling, let wrapped { profiledEvents.append((kernel.name, wrapped)) }
        return wrapped
    }

    /// Records that an externally enqueued routine ran (e.g. a CLBlast call),
    /// with its event when profiling.
    public func noteLaunch(_ name: String, event: cl_event? = nil) {
        launchCounts["clblast/" + name, default: 0] += 1
        // A planning context enqueues nothing, so no library call happened.
        if !isPlanning { DeviceCounters.noteLibraryCall() }
        if let event {
            let wrapped = Event(handle: event)
            if isProfiling { profiledEvents.append((name, wrapped)) }
        }
    }

    /// Device seconds and launch counts per kernel since profiling was
    /// switched on (waits for the queue), largest first; clears the record.
    public func profile() throws -> [(name: String, seconds: Double, launches: Int)] {
        try finish()
        var totals: [String: (Double, Int)] = [:]
        for (name, event) in profiledEvents {
            let t = try event.elapsedSeconds()
            totals[name, default: (0, 0)].0 += t
            totals[name, default: (0, 0)].1 += 1
        }
        profiledEvents.removeAll()
        return totals.map { ($0.key, $0.value.0, $0.value.1) }.sorted { $0.seconds > $1.seconds }
    }

    /// Blocks until every enqueued command has finished.
    public func finish() throws {
        guard !isPlanning else { return }
        try checkCL(clFinish(queue), "clFinish")
        releaseCompletedUploads(all: true)
    }

    /// Enqueues a read of `view` into `destination` without blocking, in
    /// queue order, and submits it; the host keeps enqueuing while the
    /// device catches up. `destination` must hold `view.count` elements
    /// and stay valid until ``PendingRead/wait()`` returns, which any thread
    /// may call (data-parallel training waits on a communication thread).
    public func startDownload(_ view: BufferView, into destination: UnsafeMutableRawPointer) throws -> PendingRead {
        guard view.count > 0, !isPlanning else { return PendingRead(event: nil) }
        var event: cl_event?
        try checkCL(clEnqueueReadBuffer(queue, view.buffer.handle, cl_bool(CL_FALSE), view.offset * 4, view.count * 4,
                                        destination, 0, nil, &event), "clEnqueueReadBuffer",
                    detail: "\(view.count * 4) bytes at element \(view.offset), non-blocking")
        try checkCL(clFlush(queue), "clFlush")
        return PendingRead(event: event)
    }
}

/// A read started by ``OpenCLContext/startDownload(_:into:)``.
public final class PendingRead: @unchecked Sendable {
    private var event: cl_event?

    init(event: cl_event?) { self.event = event }

    deinit { if let event { clReleaseEvent(event) } }

    /// Waits until the values are in the destination (`clWaitForEvents`).
    public func wait() throws {
        guard let event else { return }
        defer { clReleaseEvent(event); self.event = nil }
        var list: cl_event? = event
        try checkCL(clWaitForEvents(1, &list), "clWaitForEvents", detail: "non-blocking read")
    }
}

/// One launch as ``OpenCLContext/launchObserver`` sees it.
public struct LaunchRecord {
    /// The kernel launched (its family, program options and name).
    public let kernel: Kernel
    /// The global size asked for (before rounding up to the local size).
    public let global: [Int]
    /// The work-group size, or nil where the driver chooses it.
    public let local: [Int]?
    /// Bytes of `__local` memory passed as arguments (on top of what the
    /// kernel declares itself).
    public let localArgumentBytes: Int
}

/// The arithmetic of matrix products (PyTorch's `allow_tf32` for convolutions).
public enum MatmulPrecision: String, Sendable, CaseIterable {
    /// Strict FP32 products.
    case fp32
    /// Operands rounded to TF32 (10 mantissa bits) for the tensor cores,
    /// FP32 accumulation.
    case tf32
}
