import CloverRuntime

/// Host-held 32-bit arrays (labels, masks, token ids, index arrays, an
/// optimiser's segment table) uploaded at most once per OpenCL context and
/// tag, and kept for as long as their owner lives.
///
/// Keyed by ``OpenCLContext/serial``, never by the context's object
/// identity: a context created after another is freed may get the same
/// address, and would otherwise be handed the old context's buffer.
final class HostInts {
    private struct Key: Hashable {
        let context: UInt64
        let tag: Int
    }

    private var uploaded: [Key: BufferView] = [:]

    /// `values()` on `context`, computed and uploaded on first use of `tag`.
    ///
    /// - Parameter resident: the owner outlives a training step (an
    ///   optimiser's tables), so the buffer should not come from the pool
    ///   (see ``OpenCLContext/allocate(bytes:resident:)``); per-batch data
    ///   (labels) returns to the pool with its owner.
    func view<T: BitwiseCopyable>(tag: Int = 0, on context: OpenCLContext, resident: Bool = false,
                                  _ values: () -> [T]) throws -> BufferView {
        let key = Key(context: context.serial, tag: tag)
        if let v = uploaded[key] { return v }
        let host = values()
        // One spare element so that an empty array still gets a valid buffer.
        let v = try context.allocateView(count: max(host.count, 1), resident: resident)
        try context.upload(host, to: v)
        uploaded[key] = v
        return v
    }

    func view(_ values: [Int32], on context: OpenCLContext) throws -> BufferView {
        try view(tag: 0, on: context) { values }
    }
}
