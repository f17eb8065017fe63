import CloverRuntime

// Launch-size helpers shared by the op families' OpenCL paths.

/// The smallest power of two at least `n` (1 for n ≤ 1).
func powerOfTwo(atLeast n: Int) -> Int {
    var p = 1
    while p < n { p <<= 1 }
    return p
}

/// The largest power of two at most `n` (1 for n ≤ 1).
func powerOfTwo(atMost n: Int) -> Int {
    var p = 1
    while p * 2 <= n { p <<= 1 }
    return p
}

/// Throws unless every tensor of `shapes` has fewer than 2³¹ elements, for
/// kernels (of `family`, named in the message) that index with 32-bit ints.
func requireInt32(_ op: String, _ shapes: [[Int]], _ context: OpenCLContext, family: String) throws {
    if shapes.contains(where: { $0.reduce(1, *) > Int(Int32.max) }) {
        throw CloverError.unsupported(op: op, shapes: shapes, device: context.device.description,
                                      reason: "the \(family) kernels index with 32-bit integers (at most 2^31-1 elements)")
    }
}

/// Work-group items for `kernel`: up to 256 (or the device's per-kernel
/// limit), a power of two, and no larger than needed for `work` elements
/// when given.
func groupSize(_ kernel: Kernel, _ context: OpenCLContext, work: Int? = nil) throws -> Int {
    let limit = powerOfTwo(atMost: min(256, try kernel.maxWorkGroupSize(on: context.device)))
    guard let work else { return limit }
    return min(limit, powerOfTwo(atLeast: work))
}
