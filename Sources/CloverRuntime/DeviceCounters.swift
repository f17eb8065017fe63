import CCLCounters

/// Counts of the OpenCL calls that make a training step slow on a GPU:
/// kernel launches, library routines, host waits, buffer copies and device
/// allocations.
///
/// The counts are process-wide and include what libraries do behind
/// Clover's back: CLBlast's pad, transpose and GEMM kernels, its temporary
/// buffers and any waits, since the counted OpenCL entry points are defined
/// in the executable itself and interpose for every library (see
/// `Sources/CCLCounters/CLCounters.c`). ``seesLibraryCalls`` says whether
/// that holds in this process.
///
/// Take a snapshot before and after the work to count and subtract:
///
/// ```swift
/// let before = DeviceCounters.current
/// try step()
/// let perStep = DeviceCounters.current - before
/// ```
public struct DeviceCounters: Equatable, Sendable {
    /// Kernels enqueued (`clEnqueueNDRangeKernel`), Clover's and libraries'.
    public var kernelLaunches = 0
    /// Library routines called (CLBlast GEMMs, as noted by
    /// ``OpenCLContext/noteLaunch(_:event:)``); their kernels are in
    /// ``kernelLaunches``.
    public var libraryCalls = 0
    /// Reads of device memory into host memory (`clEnqueueReadBuffer`), and
    /// how many of them block the host until the device is done.
    public var reads = 0
    public var blockingReads = 0
    /// Writes of host memory into device memory (`clEnqueueWriteBuffer`),
    /// and how many of them block the host.
    public var writes = 0
    public var blockingWrites = 0
    /// Queue drains (`clFinish`).
    public var finishes = 0
    /// Waits for events (`clWaitForEvents`).
    public var eventWaits = 0
    /// Device-to-device copies (`clEnqueueCopyBuffer`).
    public var bufferCopies = 0
    /// Device buffers created (`clCreateBuffer`), Clover's and libraries',
    /// and their bytes; reuse from Clover's pool creates none.
    public var bufferCreations = 0
    public var bytesAllocated = 0
    /// Kernel objects created (`clCreateKernel`).
    public var kernelCreations = 0
    /// CLBlast's `clCreateKernel` calls (one per kernel per routine call)
    /// answered with an object it had released, so nothing was created.
    public var kernelReuses = 0

    public init() {}

    /// Calls that make the host wait for the device: blocking reads and
    /// writes, queue drains and event waits.
    public var hostBlockingCalls: Int { blockingReads + blockingWrites + finishes + eventWaits }

    /// The totals since the process started.
    public static var current: DeviceCounters {
        var raw = CloverCLCounters()
        clover_cl_counters_read(&raw)
        var c = DeviceCounters()
        c.kernelLaunches = Int(raw.kernelLaunches)
        c.libraryCalls = Int(raw.libraryCalls)
        c.reads = Int(raw.reads)
        c.blockingReads = Int(raw.blockingReads)
        c.writes = Int(raw.writes)
        c.blockingWrites = Int(raw.blockingWrites)
        c.finishes = Int(raw.finishes)
        c.eventWaits = Int(raw.eventWaits)
        c.bufferCopies = Int(raw.bufferCopies)
        c.bufferCreations = Int(raw.bufferCreations)
        c.bytesAllocated = Int(raw.bytesAllocated)
        c.kernelCreations = Int(raw.kernelCreations)
        c.kernelReuses = Int(raw.kernelReuses)
        return c
    }

    /// Whether calls that libraries make (CLBlast's kernels and buffers) are
    /// counted, not only Clover's own. True on Linux, where the executable's
    /// definitions interpose; where it is false the counts miss every call a
    /// library makes.
    public static var seesLibraryCalls: Bool { clover_cl_counters_interposing() != 0 }

    /// Counts one library routine (``libraryCalls``).
    static func noteLibraryCall() { clover_cl_counters_note_library_call() }

    /// Every count with a short label, in a fixed order (for printing).
    public var labeledValues: [(label: String, value: Int)] {
        [("kernel launches", kernelLaunches), ("library (CLBlast) calls", libraryCalls),
         ("host-blocking calls", hostBlockingCalls), ("blocking reads", blockingReads),
         ("finishes", finishes), ("event waits", eventWaits), ("reads", reads), ("writes", writes),
         ("blocking writes", blockingWrites), ("buffer copies", bufferCopies),
         ("buffer creations", bufferCreations), ("bytes allocated", bytesAllocated),
         ("kernel creations", kernelCreations), ("kernel reuses", kernelReuses)]
    }

    /// The counts of `b` taken from `a`: what happened between two snapshots.
    public static func - (a: DeviceCounters, b: DeviceCounters) -> DeviceCounters {
        a.combined(with: b, by: -)
    }

    /// The sum of two counts.
    public static func + (a: DeviceCounters, b: DeviceCounters) -> DeviceCounters {
        a.combined(with: b, by: +)
    }

    private func combined(with other: DeviceCounters, by op: (Int, Int) -> Int) -> DeviceCounters {
        var c = DeviceCounters()
        c.kernelLaunches = op(kernelLaunches, other.kernelLaunches)
        c.libraryCalls = op(libraryCalls, other.libraryCalls)
        c.reads = op(reads, other.reads)
        c.blockingReads = op(blockingReads, other.blockingReads)
        c.writes = op(writes, other.writes)
        c.blockingWrites = op(blockingWrites, other.blockingWrites)
        c.finishes = op(finishes, other.finishes)
        c.eventWaits = op(eventWaits, other.eventWaits)
        c.bufferCopies = op(bufferCopies, other.bufferCopies)
        c.bufferCreations = op(bufferCreations, other.bufferCreations)
        c.bytesAllocated = op(bytesAllocated, other.bytesAllocated)
        c.kernelCreations = op(kernelCreations, other.kernelCreations)
        c.kernelReuses = op(kernelReuses, other.kernelReuses)
        return c
    }
}

extension OpenCLContext {
    /// The process's OpenCL call counts (``DeviceCounters/current``): every
    /// context and library shares them, since the calls are counted where
    /// they enter OpenCL, not per queue.
    public var counters: DeviceCounters { DeviceCounters.current }
}
