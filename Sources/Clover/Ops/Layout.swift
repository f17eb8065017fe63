import CloverKernels
import CloverRuntime

// Data movement: concat and split along an axis, copies of strided views (transposes, permutes,
// slices) and their gradients. Kernels: Kernels/layout.cl.

/// Row-major strides of a contiguous tensor of `shape`.
func contiguousStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var running = 1
    for k in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[k] = running
        running *= shape[k]
    }
    return strides
}

/// `shape` seen as `[outer, shape[axis], inner]`.
private func splitAround(_ shape: [Int], axis: Int) -> (outer: Int, inner: Int) {
    (shape[..<axis].reduce(1, *), shape[(axis + 1)...].reduce(1, *))
}

/// Launches `copy_blocks`: `rows` blocks of `length` elements from `source`
/// (blocks `sourceStride` apart) to `destination` (blocks `destinationStride` apart).
private func copyBlocks(_ context: OpenCLContext, rows: Int, length: Int,
                        from source: BufferView, sourceOffset: Int, sourceStride: Int,
                        to destination: BufferView, destinationOffset: Int, destinationStride: Int) throws {
    // Every index the kernel forms is below rows · stride (stride ≥ length).
    try checkInt32Extents(op: "copy_blocks", [rows, max(length, sourceStride)], [rows, max(length, destinationStride)])
    let kernel = try context.kernel(.copyBlocks)
    let n = rows * length
    try context.launch(kernel, global: [n], local: [pointwiseGroupSize], CopyBlocksArguments(
        n: Int32(n), len: Int32(length),
        src: source.slice(offset: sourceOffset, count: source.count - sourceOffset), srcStride: Int32(sourceStride),
        dst: destination.slice(offset: destinationOffset, count: destination.count - destinationOffset),
        dstStride: Int32(destinationStride)))
}

// MARK: Concat and split

/// Concatenation of one or more tensors along `axis` (e.g. `[X, H]` along
/// channels, axis 1 of NCHW). All inputs have the same rank and the same
/// sizes on every other axis.
public struct Concat: Primitive {
    public let axis: Int
    public init(axis: Int) { self.axis = axis }
    public var name: String { "concat" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard let first = inputs.first else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "no inputs")
        }
        guard axis >= 0, axis < first.count else {
            throw CloverError.invalidArgument(op: name, reason: "axis \(axis) is outside a rank-\(first.count) tensor")
        }
        for s in inputs where s.count != first.count || zip(s, first).enumerated().contains(where: { $0.offset != axis && $0.element.0 != $0.element.1 }) {
            throw CloverError.shapeMismatch(op: name, shapes: inputs,
                                            reason: "inputs must have the same rank and sizes except on axis \(axis)")
        }
        var out = first
        out[axis] = inputs.map { $0[axis] }.reduce(0, +)
        return [out]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let out = try outputShapes(for: shapes)[0]
        let (outer, inner) = splitAround(out, axis: axis)
        var y = [Float](repeating: 0, count: out.reduce(1, *))
        var start = 0
        for (x, s) in zip(inputs, shapes) {
            for o in 0..<outer {
                for a in 0..<s[axis] {
                    for i in 0..<inner {
                        y[(o * out[axis] + start + a) * inner + i] = x[(o * s[axis] + a) * inner + i]
                    }
                }
            }
            start += s[axis]
        }
        return [y]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let out = outputs[0].shape
        let (outer, inner) = splitAround(out, axis: axis)
        var start = 0
        for x in inputs {
            let length = x.shape[axis] * inner
            try copyBlocks(context, rows: outer, length: length, from: x.view, sourceOffset: 0, sourceStride: length,
                           to: outputs[0].view, destinationOffset: start * inner, destinationStride: out[axis] * inner)
            start += x.shape[axis]
        }
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        try apply(Split(axis: axis, sizes: inputs.map { $0.shape[axis] }), [cotangents[0]])
    }
}

/// Splits a tensor along `axis` into consecutive parts of `sizes` (which
/// must add up to the axis length); the inverse of ``Concat``.
public struct Split: Primitive {
    public let axis: Int
    public let sizes: [Int]
    public init(axis: Int, sizes: [Int]) {
        self.axis = axis
        self.sizes = sizes
    }
    public var name: String { "split" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1 else { throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "one input") }
        let s = inputs[0]
        guard axis >= 0, axis < s.count else {
            throw CloverError.invalidArgument(op: name, reason: "axis \(axis) is outside a rank-\(s.count) tensor")
        }
        guard !sizes.isEmpty, sizes.allSatisfy({ $0 > 0 }), sizes.reduce(0, +) == s[axis] else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs,
                                            reason: "sizes \(sizes) must be positive and add up to \(s[axis]) on axis \(axis)")
        }
        return sizes.map { size in
            var part = s
            part[axis] = size
            return part
        }
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let s = shapes[0], x = inputs[0]
        let (outer, inner) = splitAround(s, axis: axis)
        var parts: [[Float]] = []
        var start = 0
        for size in sizes {
            var part = [Float](repeating: 0, count: outer * size * inner)
            for o in 0..<outer {
                for a in 0..<size {
                    for i in 0..<inner { part[(o * size + a) * inner + i] = x[(o * s[axis] + start + a) * inner + i] }
                }
            }
            parts.append(part)
            start += size
        }
        return parts
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let s = inputs[0].shape
        let (outer, inner) = splitAround(s, axis: axis)
        var start = 0
        for (size, y) in zip(sizes, outputs) {
            let length = size * inner
            try copyBlocks(context, rows: outer, length: length, from: inputs[0].view, sourceOffset: start * inner,
                           sourceStride: s[axis] * inner, to: y.view, destinationOffset: 0, destinationStride: length)
            start += size
        }
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        [try apply1(Concat(axis: axis), cotangents)]
    }
}

// MARK: Strided views

/// A strided view of a tensor's elements: `shape`, per-axis `strides` and a
/// starting `offset`, all in elements of the input's row-major storage.
/// Element `idx` of the view is input element `offset + Σ idx[k]·strides[k]`.
public struct StridedView: Equatable, Sendable, CustomStringConvertible {
    public let shape: [Int]
    public let strides: [Int]
    public let offset: Int

    public init(shape: [Int], strides: [Int], offset: Int = 0) {
        self.shape = shape
        self.strides = strides
        self.offset = offset
    }

    public var description: String { "view \(formatShape(shape)) strides \(strides) offset \(offset)" }

    /// The largest number of axes a view may have once its size-1 axes are dropped.
    public static let maxRank = 8

    /// Checks the view against an input of `count` elements.
    func validate(op: String, input: [Int]) throws {
        let count = input.reduce(1, *)
        guard shape.count == strides.count else {
            throw CloverError.invalidArgument(op: op, reason: "\(description): one stride per axis")
        }
        guard shape.allSatisfy({ $0 > 0 }), strides.allSatisfy({ $0 >= 0 }), offset >= 0 else {
            throw CloverError.invalidArgument(op: op, reason: "\(description): sizes must be positive, strides and offset ≥ 0")
        }
        let last = offset + zip(shape, strides).map { ($0 - 1) * $1 }.reduce(0, +)
        guard last < count else {
            throw CloverError.shapeMismatch(op: op, shapes: [input, shape],
                                            reason: "\(description) reaches element \(last) of \(count)")
        }
        guard axes.count <= Self.maxRank else {
            throw CloverError.unsupported(op: op, shapes: [input, shape], device: "any device",
                                          reason: "\(description) has more than \(Self.maxRank) axes of size > 1")
        }
    }

    /// The axes of size > 1, with their strides and their strides in the
    /// contiguous copy: size-1 axes address nothing.
    var axes: [(size: Int, stride: Int, contiguousStride: Int)] {
        zip(zip(shape, strides), contiguousStrides(shape)).filter { $0.0.0 > 1 }.map { ($0.0.0, $0.0.1, $0.1) }
    }

    /// True when no two view elements are the same input element: sorted by
    /// stride, each stride exceeds the span of all smaller-stride axes.
    var isNonOverlapping: Bool {
        var span = 0
        for axis in axes.sorted(by: { $0.stride < $1.stride }) {
            guard axis.stride > span else { return false }
            span += (axis.size - 1) * axis.stride
        }
        return true
    }

    /// Throws unless the kernels' `int` index arithmetic holds for an input
    /// of `count` elements.
    func checkIntRange(op: String, input: [Int]) throws {
        let limit = Int(Int32.max)
        guard input.reduce(1, *) <= limit, shape.reduce(1, *) <= limit else {
            throw CloverError.unsupported(op: op, shapes: [input, shape], device: "OpenCL",
                                          reason: "strided views index with 32-bit ints (at most \(limit) elements)")
        }
    }
}

/// Copies a strided view of the input (see ``StridedView``) into a
/// contiguous tensor of the view's shape: transposes, permutes, slices and
/// broadcasts (stride 0). The input's own shape only fixes its element count.
///
/// Its gradient needs a view without repeated elements (no broadcast, no
/// overlapping windows); other views are not differentiable here.
public struct StridedCopy: Primitive {
    public let view: StridedView
    public init(_ view: StridedView) { self.view = view }
    /// A view of `shape` with `strides`, starting `offset` elements in.
    public init(shape: [Int], strides: [Int], offset: Int = 0) {
        self.init(StridedView(shape: shape, strides: strides, offset: offset))
    }
    public var name: String { "strided_copy" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1 else { throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "one input") }
        try view.validate(op: name, input: inputs[0])
        return [view.shape]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let x = inputs[0]
        let count = view.shape.reduce(1, *)
        var y = [Float](repeating: 0, count: count)
        var index = [Int](repeating: 0, count: view.shape.count)
        for j in 0..<count {
            var source = view.offset
            for k in 0..<index.count { source += index[k] * view.strides[k] }
            y[j] = x[source]
            // Odometer increment, last axis fastest.
            var k = index.count - 1
            while k >= 0 {
                index[k] += 1
                if index[k] < view.shape[k] { break }
                index[k] = 0
                k -= 1
            }
        }
        return [y]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        try view.checkIntRange(op: name, input: inputs[0].shape)
        let axes = view.axes
        let kernel = try context.kernel(.stridedGather)
        let x = inputs[0].view, y = outputs[0].view
        try context.launch(kernel, global: [y.count], local: [pointwiseGroupSize], StridedGatherArguments(
            n: UInt64(y.count), rank: Int32(axes.count),
            sizes: Int32Vector8(axes.map(\.size), fill: 1), strides: Int32Vector8(axes.map(\.stride), fill: 0),
            offset: UInt64(view.offset), x: x, y: y))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        [try apply1(StridedCopyBackward(view, inputShape: inputs[0].shape), [cotangents[0]])]
    }
}

/// The gradient of ``StridedCopy``: `dy` (the view's shape) written back to
/// the positions it was read from in a tensor of `inputShape`, zeros
/// elsewhere. The view must not repeat elements.
public struct StridedCopyBackward: Primitive {
    public let view: StridedView
    /// The shape of the tensor the view was taken of.
    public let inputShape: [Int]
    public init(_ view: StridedView, inputShape: [Int]) {
        self.view = view
        self.inputShape = inputShape
    }
    public var name: String { "strided_copy_backward" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1, inputs[0] == view.shape, inputShape.allSatisfy({ $0 > 0 }) else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs + [inputShape],
                                            reason: "dy must have the view's shape \(formatShape(view.shape))")
        }
        try view.validate(op: name, input: inputShape)
        guard view.isNonOverlapping else {
            throw CloverError.invalidArgument(op: name, reason: "\(view) repeats input elements, so its gradient would need a scatter-add")
        }
        return [inputShape]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let dy = inputs[0]
        var dx = [Float](repeating: 0, count: inputShape.reduce(1, *))
        var index = [Int](repeating: 0, count: view.shape.count)
        for j in 0..<dy.count {
            var target = view.offset
            for k in 0..<index.count { target += index[k] * view.strides[k] }
            dx[target] = dy[j]
            var k = index.count - 1
            while k >= 0 {
                index[k] += 1
                if index[k] < view.shape[k] { break }
                index[k] = 0
                k -= 1
            }
        }
        return [dx]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        try view.checkIntRange(op: name, input: inputShape)
        let axes = view.axes.sorted { $0.stride > $1.stride }
        let kernel = try context.kernel(.stridedScatterGather)
        let dy = inputs[0].view, dx = outputs[0].view
        try context.launch(kernel, global: [dx.count], local: [pointwiseGroupSize], StridedScatterGatherArguments(
            n: UInt64(dx.count), rank: Int32(axes.count), sizes: Int32Vector8(axes.map(\.size), fill: 1),
            strides: Int32Vector8(axes.map(\.stride), fill: 1),
            dyStrides: Int32Vector8(axes.map(\.contiguousStride), fill: 0),
            offset: UInt64(view.offset), dy: dy, dx: dx))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        [try apply1(StridedCopy(view), [cotangents[0]])]
    }
}

/// Concatenates tensors along `axis` (channels of NCHW by default).
public func concat(_ tensors: [Tensor], axis: Int = 1) throws -> Tensor {
    try apply1(Concat(axis: axis), tensors)
}

/// Splits `x` along `axis` into parts of `sizes`.
public func split(_ x: Tensor, sizes: [Int], axis: Int = 1) throws -> [Tensor] {
    try apply(Split(axis: axis, sizes: sizes), [x])
}

/// A contiguous copy of a strided view of `x`; see ``StridedCopy``.
public func stridedCopy(_ x: Tensor, shape: [Int], strides: [Int], offset: Int = 0) throws -> Tensor {
    try apply1(StridedCopy(shape: shape, strides: strides, offset: offset), [x])
}

/// `x` with its axes reordered: output axis `k` is input axis `order[k]`
/// (e.g. `[0, 2, 3, 1]` turns NCHW into NHWC). A ``StridedCopy``.
public func permute(_ x: Tensor, _ order: [Int]) throws -> Tensor {
    guard order.count == x.rank, order.sorted() == Array(0..<x.rank) else {
        throw CloverError.invalidArgument(op: "permute", reason: "\(order) is not a permutation of the \(x.rank) axes of \(formatShape(x.shape))")
    }
    let strides = contiguousStrides(x.shape)
    return try apply1(StridedCopy(shape: order.map { x.shape[$0] }, strides: order.map { strides[$0] }), [x])
}

/// `y[a, c, b, d] = x[a, b, c, d]` for `x` of shape `dims` (also the
/// convolution's [N, O, P] ↔ [O, N, P] relayout).
func transposeMiddleAxes(_ x: BufferView, dims: [Int], into y: BufferView, on context: OpenCLContext) throws {
    let kernel = try context.kernel(.transposeMiddleAxes)
    let local = [min(dims[3], 64), 1, 1]
    try context.launch(kernel, global: [dims[3], dims[1], dims[0] * dims[2]], local: local,
                       TransposeMiddleAxesArguments(d0: Int32(dims[0]), d1: Int32(dims[1]), d2: Int32(dims[2]),
                                                    d3: Int32(dims[3]), x: x, y: y))
}
