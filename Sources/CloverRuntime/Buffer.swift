import COpenCL
import Synchronization

/// A device allocation owned by a Swift object: it returns to its pool, or is
/// released, when the last reference goes away.
public final class DeviceBuffer: KernelArgument {
    /// The OpenCL memory object.
    public let handle: cl_mem
    /// The bytes actually allocated (a pool bucket may exceed the request).
    public let capacityBytes: Int
    /// The bytes that were asked for.
    public let requestedBytes: Int
    private weak var pool: BufferPool?
    /// Runs when the buffer goes away (a planning context's bookkeeping).
    private let onRelease: (() -> Void)?

    init(handle: cl_mem, capacityBytes: Int, requestedBytes: Int, pool: BufferPool?,
         onRelease: (() -> Void)? = nil) {
        self.handle = handle
        self.capacityBytes = capacityBytes
        self.requestedBytes = requestedBytes
        self.pool = pool
        self.onRelease = onRelease
    }

    deinit {
        onRelease?()
        if let pool {
            pool.recycle(handle, capacityBytes: capacityBytes)
        } else {
            clReleaseMemObject(handle)
        }
    }

    public func setArgument(_ kernel: cl_kernel, at index: cl_uint) -> cl_int {
        var mem: cl_mem? = handle
        return clSetKernelArg(kernel, index, MemoryLayout<cl_mem>.size, &mem)
    }
}

/// A window into a ``DeviceBuffer`` starting at an element offset, without a copy.
///
/// Offsets count 32-bit elements (every Clover tensor holds `float` or `int`),
/// and kernels take each buffer as pointer + offset, as dlprimitives does, so
/// a view never needs `clCreateSubBuffer` and its alignment rules.
public struct BufferView {
    public let buffer: DeviceBuffer
    /// Offset from the start of `buffer`, in 32-bit elements.
    public let offset: Int
    /// Number of 32-bit elements the view spans.
    public let count: Int

    public init(buffer: DeviceBuffer, offset: Int = 0, count: Int) {
        precondition(offset >= 0 && count >= 0 && (offset + count) * 4 <= buffer.capacityBytes,
                     "BufferView [\(offset), \(offset + count)) exceeds a buffer of \(buffer.capacityBytes) bytes")
        self.buffer = buffer
        self.offset = offset
        self.count = count
    }

    /// A narrower view, `count` elements from `offset` within this one.
    public func slice(offset extra: Int, count: Int) -> BufferView {
        BufferView(buffer: buffer, offset: offset + extra, count: count)
    }

    /// The offset as the `ulong` kernels take after each buffer argument.
    public var kernelOffset: UInt64 { UInt64(offset) }
}

/// A size-bucketed cache of released device allocations.
///
/// Training allocates the same shapes every step; reusing `cl_mem` objects
/// avoids the driver's allocation cost and fragmentation. Buckets are spaced
/// four to an octave, so at most 25% of a buffer is slack.
public final class BufferPool {
    private struct State {
        var free: [Int: [cl_mem]] = [:]
        var cachedBytes = 0
        var liveBytes = 0
        var peakLiveBytes = 0
        var reused = 0
        var allocated = 0
    }

    private let state = Mutex(State())
    /// Cached (idle) bytes above which released buffers are freed instead.
    public let cacheLimitBytes: Int

    public init(cacheLimitBytes: Int) {
        self.cacheLimitBytes = cacheLimitBytes
    }

    /// The allocation size used for a request of `bytes`.
    public static func bucket(for bytes: Int) -> Int {
        let minimum = 256
        if bytes <= minimum { return minimum }
        var octave = minimum
        while octave * 2 < bytes { octave *= 2 }
        let step = octave / 4
        return ((bytes + step - 1) / step) * step
    }

    /// A cached buffer of exactly `capacity` bytes, if one is idle.
    func take(capacity: Int) -> cl_mem? {
        state.withLock { s in
            guard var list = s.free[capacity], let mem = list.popLast() else { return nil }
            s.free[capacity] = list
            s.cachedBytes -= capacity
            s.liveBytes += capacity
            s.peakLiveBytes = max(s.peakLiveBytes, s.liveBytes)
            s.reused += 1
            return mem
        }
    }

    func noteAllocated(capacity: Int) {
        state.withLock { s in
            s.liveBytes += capacity
            s.peakLiveBytes = max(s.peakLiveBytes, s.liveBytes)
            s.allocated += 1
        }
    }

    func recycle(_ mem: cl_mem, capacityBytes: Int) {
        let keep = state.withLock { s -> Bool in
            s.liveBytes -= capacityBytes
            guard s.cachedBytes + capacityBytes <= cacheLimitBytes else { return false }
            s.free[capacityBytes, default: []].append(mem)
            s.cachedBytes += capacityBytes
            return true
        }
        if !keep { clReleaseMemObject(mem) }
    }

    /// Releases every idle buffer back to the driver.
    public func trim() {
        let released = state.withLock { s -> [cl_mem] in
            let all = s.free.values.flatMap { $0 }
            s.free.removeAll()
            s.cachedBytes = 0
            return all
        }
        for mem in released { clReleaseMemObject(mem) }
    }

    /// Starts a new high-water mark: the peak becomes the bytes in use now,
    /// so that `statistics.peakLiveBytes` later measures one phase (one
    /// model's training steps in a benchmark) rather than the process.
    public func resetPeak() {
        state.withLock { $0.peakLiveBytes = $0.liveBytes }
    }

    /// Counters: bytes in use, the peak of that, idle cached bytes, and how
    /// many requests were served by reuse versus new allocations.
    public var statistics: (liveBytes: Int, peakLiveBytes: Int, cachedBytes: Int, reused: Int, allocated: Int) {
        state.withLock { ($0.liveBytes, $0.peakLiveBytes, $0.cachedBytes, $0.reused, $0.allocated) }
    }

    deinit { trim() }
}
