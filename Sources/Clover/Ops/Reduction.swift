import CloverKernels
import CloverRuntime

// Sums, means and maxima over axes, and the broadcast that undoes a
// reduction's shape. Kernels: Kernels/reduction.cl.
//
// The OpenCL path sees a contiguous tensor as alternating groups of kept and
// reduced (or broadcast) axes, merging neighbours of the same kind and
// dropping size-1 axes, and runs one `[outer, extent, inner]` launch per
// reduced group. The CPU references walk every element with its full
// multi-index instead and share none of that planning.

// MARK: Shape rules

/// `axes` for a tensor of `shape`, made non-negative (Python-style negative
/// axes count from the end) and sorted; throws on an empty list, an axis out
/// of range or a repeated axis, naming the op and shape.
func reductionAxes(_ axes: [Int], shape: [Int], op: String) throws -> [Int] {
    guard !axes.isEmpty else {
        throw CloverError.invalidArgument(op: op, reason: "no axes given for shape \(formatShape(shape))")
    }
    let rank = shape.count
    var result: [Int] = []
    for axis in axes {
        guard axis >= -rank && axis < rank else {
            throw CloverError.invalidArgument(
                op: op, reason: "axis \(axis) is out of range for shape \(formatShape(shape)) of rank \(rank)")
        }
        let a = axis < 0 ? axis + rank : axis
        guard !result.contains(a) else {
            throw CloverError.invalidArgument(op: op, reason: "axis \(axis) is repeated in \(axes) for shape \(formatShape(shape))")
        }
        result.append(a)
    }
    return result.sorted()
}

/// `shape` without the (validated) `axes`.
private func removing(_ axes: [Int], from shape: [Int]) -> [Int] {
    shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
}

// MARK: OpenCL planning (not used by the references)

/// One launch over a tensor seen as `[outer, extent, inner]`.
private struct AxisPass {
    var outer: Int
    var extent: Int
    var inner: Int
}

/// The shape as alternating groups of unmarked and marked axes: adjacent
/// axes of the same kind merge (their elements are contiguous either way),
/// and size-1 axes vanish because they change no address.
private func axisGroups(_ shape: [Int], marked: [Int]) -> [(size: Int, marked: Bool)] {
    var groups: [(size: Int, marked: Bool)] = []
    for (axis, size) in shape.enumerated() where size > 1 {
        let isMarked = marked.contains(axis)
        if let last = groups.last, last.marked == isMarked {
            groups[groups.count - 1].size *= size
        } else {
            groups.append((size, isMarked))
        }
    }
    return groups
}

/// Reduction launches, innermost reduced group first; each removes its group.
private func reductionPasses(_ groups: [(size: Int, marked: Bool)]) -> [AxisPass] {
    var g = groups
    var passes: [AxisPass] = []
    while let k = g.lastIndex(where: \.marked) {
        passes.append(AxisPass(outer: g[..<k].reduce(1) { $0 * $1.size }, extent: g[k].size,
                               inner: g[(k + 1)...].reduce(1) { $0 * $1.size }))
        g.remove(at: k)
    }
    return passes
}

/// Broadcast launches, outermost new group first; each inserts its group
/// into a tensor that already has every earlier group and no later new one.
private func broadcastPasses(_ groups: [(size: Int, marked: Bool)]) -> [AxisPass] {
    var passes: [AxisPass] = []
    for k in groups.indices where groups[k].marked {
        passes.append(AxisPass(outer: groups[..<k].reduce(1) { $0 * $1.size }, extent: groups[k].size,
                               inner: groups[(k + 1)...].filter { !$0.marked }.reduce(1) { $0 * $1.size }))
    }
    return passes
}

/// The work-group tile for a pass: LX items across `inner` (up to 64, so a
/// row of a wide inner is read in coalesced runs) times LY items along the
/// reduced extent, at most `limit` items and no more LY lanes than elements.
private func reductionTile(inner: Int, extent: Int, limit: Int) -> (lx: Int, ly: Int) {
    let lx = min(powerOfTwo(atLeast: inner), 64, limit)
    let ly = max(1, min(limit / lx, powerOfTwo(atLeast: extent)))
    return (lx, ly)
}

/// `dst = scale · Σ_r src[o, r, i]`, splitting a long extent into chunks
/// when there are too few outputs to fill the device, then reducing the
/// chunk partials with a second launch.
// Never inlined: inlining this recursive function into its callers crashed
// Swift 6.3.1's optimiser (EarlyPerfInliner, signal 11) in release builds.
@inline(never)
private func launchSum(_ context: OpenCLContext, _ p: AxisPass, scale: Float,
                       from src: BufferView, to dst: BufferView) throws {
    let kernel = try context.kernel(.reduceSum)
    let (lx, ly) = reductionTile(inner: p.inner, extent: p.extent, limit: try groupSize(kernel, context))
    let tiles = (p.inner + lx - 1) / lx
    var chunks = 1
    // Fewer than 128 work-groups, and at least 32 elements per item: split so
    // that each item sums about 16 elements and there are up to 256 groups.
    if p.outer * tiles < 128 && p.extent > ly * 32 {
        chunks = min((p.extent + ly * 16 - 1) / (ly * 16), max(1, 256 / (p.outer * tiles)))
    }
    let chunkLength = (p.extent + chunks - 1) / chunks
    chunks = (p.extent + chunkLength - 1) / chunkLength
    let target = chunks == 1 ? dst : try context.allocateView(count: p.outer * chunks * p.inner)
    try context.launch(kernel, global: [p.outer * chunks * tiles * lx * ly], local: [lx * ly], ReduceSumArguments(
        outer: Int32(p.outer), extent: Int32(p.extent), inner: Int32(p.inner), chunkLen: Int32(chunkLength),
        chunks: Int32(chunks), scale: chunks == 1 ? scale : Float(1), lxSize: Int32(lx),
        x: src, y: target, scratch: LocalMemory(bytes: lx * ly * 4)))
    if chunks > 1 {
        try launchSum(context, AxisPass(outer: p.outer, extent: chunks, inner: p.inner), scale: scale,
                      from: target, to: dst)
    }
}

/// `y = scale · Σ_axes x` on the device, one launch (or two, when chunked)
/// per reduced axis group.
///
/// Not optimised: swift-frontend 6.3.1 crashed in a good part of release
/// builds while optimising this function (`updateReborrowFlags` in the
/// performance inliner, apparently on the `source` phi), nondeterministically;
/// it only enqueues launches, so optimising it gains nothing.
@_optimize(none)
private func encodeSum(_ context: OpenCLContext, op: String, x: Tensor, y: Tensor, axes: [Int], scale: Float) throws {
    try requireInt32(op, [x.shape], context, family: "reduction")
    let passes = reductionPasses(axisGroups(x.shape, marked: axes))
    guard !passes.isEmpty else {
        // Only size-1 axes are reduced: the data is unchanged (and a mean
        // divides by a count of 1).
        try context.copy(from: x.view, to: y.view, count: y.count)
        return
    }
    var source = x.view
    for (n, pass) in passes.enumerated() {
        let last = n == passes.count - 1
        let destination = last ? y.view : try context.allocateView(count: pass.outer * pass.inner)
        try launchSum(context, pass, scale: last ? scale : 1, from: source, to: destination)
        source = destination
    }
}

// MARK: Sum and mean

/// The sum over `axes` (keepdims false: the output shape drops them; summing
/// every axis gives a scalar of shape `[]`). Negative axes count from the end.
public struct Sum: Primitive {
    /// The reduced axes (negative ones count from the end).
    public let axes: [Int]
    public init(axes: [Int]) { self.axes = axes }
    public var name: String { "sum" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1 else { throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "one input") }
        return [removing(try reductionAxes(axes, shape: inputs[0], op: name), from: inputs[0])]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let axes = try reductionAxes(self.axes, shape: shapes[0], op: name)
        return [referenceAxisSum(inputs[0], shape: shapes[0], axes: axes).map { Float($0) }]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        try encodeSum(context, op: name, x: inputs[0], y: outputs[0],
                      axes: try reductionAxes(axes, shape: inputs[0].shape, op: name), scale: 1)
    }

    /// Every input element contributed once: the gradient is the cotangent
    /// broadcast back over the reduced axes.
    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        let axes = try reductionAxes(self.axes, shape: inputs[0].shape, op: name)
        return [try apply1(BroadcastTo(shape: inputs[0].shape, axes: axes), [cotangents[0]])]
    }
}

/// The mean over `axes` (keepdims false; every axis gives shape `[]`).
public struct Mean: Primitive {
    /// The reduced axes (negative ones count from the end).
    public let axes: [Int]
    public init(axes: [Int]) { self.axes = axes }
    public var name: String { "mean" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1 else { throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "one input") }
        return [removing(try reductionAxes(axes, shape: inputs[0], op: name), from: inputs[0])]
    }

    /// How many elements each output averages.
    private func count(_ shape: [Int], _ axes: [Int]) -> Int { axes.reduce(1) { $0 * shape[$1] } }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let axes = try reductionAxes(self.axes, shape: shapes[0], op: name)
        let n = Double(count(shapes[0], axes))
        return [referenceAxisSum(inputs[0], shape: shapes[0], axes: axes).map { Float($0 / n) }]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let axes = try reductionAxes(self.axes, shape: inputs[0].shape, op: name)
        // The division is a multiply by the float reciprocal in the last
        // launch: at most one extra rounding against the reference's divide.
        try encodeSum(context, op: name, x: inputs[0], y: outputs[0], axes: axes,
                      scale: Float(1.0 / Double(count(inputs[0].shape, axes))))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        let axes = try reductionAxes(self.axes, shape: inputs[0].shape, op: name)
        let spread = try apply1(BroadcastTo(shape: inputs[0].shape, axes: axes), [cotangents[0]])
        return [try scale(spread, by: Float(1.0 / Double(count(inputs[0].shape, axes))))]
    }
}

/// The reference sum: every element of `x` added, in Double, to the output
/// its multi-index maps to once `axes` are dropped.
private func referenceAxisSum(_ x: [Float], shape: [Int], axes: [Int]) -> [Double] {
    let rank = shape.count
    // Row-major strides of the output (kept axes only; 0 for reduced ones).
    var outStride = [Int](repeating: 0, count: rank)
    var running = 1
    for d in stride(from: rank - 1, through: 0, by: -1) where !axes.contains(d) {
        outStride[d] = running
        running *= shape[d]
    }
    var out = [Double](repeating: 0, count: running)
    for flat in 0..<x.count {
        var rest = flat, target = 0
        for d in stride(from: rank - 1, through: 0, by: -1) {
            target += (rest % shape[d]) * outStride[d]
            rest /= shape[d]
        }
        out[target] += Double(x[flat])
    }
    return out
}

// MARK: Broadcast

/// Repeats a tensor along new axes: the input's shape is `shape` with `axes`
/// removed, and `y[index] = x[index without axes]`. The inverse of a
/// reduction's shape, used by the gradients of ``Sum`` and ``Mean``.
public struct BroadcastTo: Primitive {
    /// The output shape.
    public let shape: [Int]
    /// The axes of `shape` that the input lacks.
    public let axes: [Int]
    public init(shape: [Int], axes: [Int]) {
        self.shape = shape
        self.axes = axes
    }

    public var name: String { "broadcast" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1 else { throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "one input") }
        if shape.contains(where: { $0 <= 0 }) { throw CloverError.emptyTensor(op: name, shape: shape) }
        let axes = try reductionAxes(self.axes, shape: shape, op: name)
        let expected = removing(axes, from: shape)
        guard inputs[0] == expected else {
            throw CloverError.shapeMismatch(op: name, shapes: [inputs[0], shape],
                                            reason: "the input must be \(formatShape(expected)) to broadcast along axes \(axes)")
        }
        return [shape]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let axes = try reductionAxes(self.axes, shape: shape, op: name)
        let x = inputs[0], rank = shape.count
        let count = shape.reduce(1, *)
        var y = [Float](repeating: 0, count: count)
        for flat in 0..<count {
            // Decompose the output index, then rebuild the input index from
            // the kept coordinates only.
            var coords = [Int](repeating: 0, count: rank)
            var rest = flat
            for d in stride(from: rank - 1, through: 0, by: -1) {
                coords[d] = rest % shape[d]
                rest /= shape[d]
            }
            var source = 0
            for d in 0..<rank where !axes.contains(d) { source = source * shape[d] + coords[d] }
            y[flat] = x[source]
        }
        return [y]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let axes = try reductionAxes(self.axes, shape: shape, op: name)
        try requireInt32(name, [shape], context, family: "reduction")
        let passes = broadcastPasses(axisGroups(shape, marked: axes))
        let x = inputs[0], y = outputs[0]
        guard !passes.isEmpty else {
            try context.copy(from: x.view, to: y.view, count: y.count)
            return
        }
        let kernel = try context.kernel(.broadcastExpand)
        var source = x.view
        for (n, p) in passes.enumerated() {
            let count = p.outer * p.extent * p.inner
            let destination = n == passes.count - 1 ? y.view : try context.allocateView(count: count)
            try context.launch(kernel, global: [count], local: [pointwiseGroupSize], BroadcastExpandArguments(
                outer: Int32(p.outer), extent: Int32(p.extent), inner: Int32(p.inner), x: source, y: destination))
            source = destination
        }
    }

    /// Each input element was copied to every position along `axes`: its
    /// gradient is the sum of the cotangent over them.
    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        [try apply1(Sum(axes: axes), [cotangents[0]])]
    }
}

// MARK: Max

/// The maximum along one axis, and the index reaching it.
///
/// Outputs: the maxima and the argmax (the first index on ties), both of the
/// input shape without `axis`. The argmax is stored as a float (exact up to
/// 2^24, which the shape rule enforces) because Clover tensors are float32. A
/// NaN counts as larger than any number, so it propagates as in PyTorch.
/// The gradient routes each cotangent to its argmax; the argmax output is
/// piecewise constant, so its cotangent contributes nothing and is ignored.
public struct Max: Primitive {
    /// The reduced axis (negative counts from the end).
    public let axis: Int
    public init(axis: Int) { self.axis = axis }
    public var name: String { "max" }

    /// (outer, extent, inner) around the axis.
    private func split(_ shape: [Int]) throws -> (outer: Int, extent: Int, inner: Int, axis: Int) {
        let a = try reductionAxes([axis], shape: shape, op: name)[0]
        return (shape[..<a].reduce(1, *), shape[a], shape[(a + 1)...].reduce(1, *), a)
    }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1 else { throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "one input") }
        let s = try split(inputs[0])
        guard s.extent <= 1 << 24 else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs,
                                            reason: "axis \(axis) has \(s.extent) elements; float argmax indices are exact only up to 2^24")
        }
        let out = removing([s.axis], from: inputs[0])
        return [out, out]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let s = try split(shapes[0])
        let x = inputs[0]
        var values = [Float](repeating: 0, count: s.outer * s.inner)
        var indices = [Float](repeating: 0, count: s.outer * s.inner)
        for o in 0..<s.outer {
            for i in 0..<s.inner {
                var best = x[o * s.extent * s.inner + i]
                var at = 0
                for r in 1..<s.extent {
                    let v = x[(o * s.extent + r) * s.inner + i]
                    // Strictly larger replaces, so ties keep the first index;
                    // the first NaN replaces any number and is then kept.
                    if (v.isNaN && !best.isNaN) || v > best {
                        best = v
                        at = r
                    }
                }
                values[o * s.inner + i] = best
                indices[o * s.inner + i] = Float(at)
            }
        }
        return [values, indices]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let s = try split(inputs[0].shape)
        try requireInt32(name, [inputs[0].shape], context, family: "reduction")
        let kernel = try context.kernel(.reduceMax)
        let (lx, ly) = reductionTile(inner: s.inner, extent: s.extent, limit: try groupSize(kernel, context))
        let tiles = (s.inner + lx - 1) / lx
        let x = inputs[0].view, y = outputs[0].view, arg = outputs[1].view
        try context.launch(kernel, global: [s.outer * tiles * lx * ly], local: [lx * ly], ReduceMaxArguments(
            outer: Int32(s.outer), extent: Int32(s.extent), inner: Int32(s.inner), lxSize: Int32(lx),
            x: x, y: y, arg: arg,
            bestValue: LocalMemory(bytes: lx * ly * 4), bestIndex: LocalMemory(bytes: lx * ly * 4)))
    }

    /// Only `cotangents[0]` (of the maxima) is used: see the type's note.
    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        [try apply1(MaxBackward(axis: axis, inputShape: inputs[0].shape), [cotangents[0], outputs[1]])]
    }
}

/// The gradient of ``Max``: inputs `dy` and the argmax (both the reduced
/// shape); output `dx` of `inputShape`, `dy` at each argmax and 0 elsewhere.
public struct MaxBackward: Primitive {
    /// The forward op's axis.
    public let axis: Int
    /// The shape of the forward input (the shape of `dx`).
    public let inputShape: [Int]
    public init(axis: Int, inputShape: [Int]) {
        self.axis = axis
        self.inputShape = inputShape
    }

    public var name: String { "max_backward" }

    private func split() throws -> (outer: Int, extent: Int, inner: Int, axis: Int) {
        let a = try reductionAxes([axis], shape: inputShape, op: name)[0]
        return (inputShape[..<a].reduce(1, *), inputShape[a], inputShape[(a + 1)...].reduce(1, *), a)
    }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        let s = try split()
        let reduced = removing([s.axis], from: inputShape)
        guard inputs.count == 2, inputs[0] == reduced, inputs[1] == reduced else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs,
                                            reason: "expects dy and argmax of shape \(formatShape(reduced)) for input \(formatShape(inputShape))")
        }
        return [inputShape]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let s = try split()
        let dy = inputs[0], arg = inputs[1]
        var dx = [Float](repeating: 0, count: inputShape.reduce(1, *))
        for o in 0..<s.outer {
            for i in 0..<s.inner {
                let r = Int(arg[o * s.inner + i])
                dx[(o * s.extent + r) * s.inner + i] = dy[o * s.inner + i]
            }
        }
        return [dx]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let s = try split()
        try requireInt32(name, [inputShape], context, family: "reduction")
        let kernel = try context.kernel(.maxBackward)
        let dy = inputs[0].view, arg = inputs[1].view, dx = outputs[0].view
        try context.launch(kernel, global: [dx.count], local: [pointwiseGroupSize], MaxBackwardArguments(
            outer: Int32(s.outer), extent: Int32(s.extent), inner: Int32(s.inner), dy: dy, arg: arg, dx: dx))
    }
}

// MARK: Convenience

/// The sum of `x` over `axes` (dropped from the shape).
public func sum(_ x: Tensor, axes: [Int]) throws -> Tensor { try apply1(Sum(axes: axes), [x]) }
/// The mean of `x` over `axes` (dropped from the shape).
public func mean(_ x: Tensor, axes: [Int]) throws -> Tensor { try apply1(Mean(axes: axes), [x]) }
/// The maxima of `x` along `axis` and their first indices (as floats).
public func reduceMax(_ x: Tensor, axis: Int) throws -> (values: Tensor, indices: Tensor) {
    let out = try apply(Max(axis: axis), [x])
    return (out[0], out[1])
}
/// `x` repeated along `axes` of `shape`; see ``BroadcastTo``.
public func broadcast(_ x: Tensor, to shape: [Int], axes: [Int]) throws -> Tensor {
    try apply1(BroadcastTo(shape: shape, axes: axes), [x])
}
