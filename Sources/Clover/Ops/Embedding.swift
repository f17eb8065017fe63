import CloverKernels
import CloverRuntime

// Token-embedding lookup and its scatter-add gradient. Kernels: Kernels/embedding.cl.

/// Integer token ids of some shape (usually `[B, L]`), kept on the host for
/// validation and uploaded once per OpenCL context.
public final class TokenIDs {
    /// The ids, row-major.
    public let values: [Int32]
    /// Their shape, e.g. `[B, L]`.
    public let shape: [Int]
    private let uploads = HostInts()

    /// Ids of the given shape, row-major.
    ///
    /// - Throws: when `values.count` does not match `shape` or the shape is empty.
    public init(_ values: [Int32], shape: [Int]) throws {
        try Tensor.validate(shape: shape, op: "token_ids")
        guard values.count == shape.reduce(1, *) else {
            throw CloverError.shapeMismatch(op: "token_ids", shapes: [shape],
                                            reason: "\(values.count) ids given for \(shape.reduce(1, *)) positions")
        }
        self.values = values
        self.shape = shape
    }

    public convenience init(_ values: [Int], shape: [Int]) throws {
        try self.init(values.map { Int32($0) }, shape: shape)
    }

    /// Throws unless every id lies in `0..<vocabulary`.
    func validate(op: String, vocabulary: Int) throws {
        if let (i, bad) = values.enumerated().first(where: { $0.element < 0 || Int($0.element) >= vocabulary }) {
            throw CloverError.invalidArgument(op: op, reason: "token id \(bad) at position \(i) is outside 0..<\(vocabulary)")
        }
    }

    func view(on context: OpenCLContext) throws -> BufferView {
        try uploads.view(tag: -1, on: context) { values }
    }

    /// The inverse index for `vocabulary` rows: `starts` (`vocabulary + 1`
    /// entries) delimits, for each id, its run in `positions`, which lists
    /// the token positions holding that id in increasing order.
    func inverseIndex(vocabulary: Int, on context: OpenCLContext) throws -> (starts: BufferView, positions: BufferView) {
        // Counting sort by id: stable, so each id's positions stay increasing.
        func build() -> (starts: [Int32], positions: [Int32]) {
            var starts = [Int32](repeating: 0, count: vocabulary + 1)
            for id in values { starts[Int(id) + 1] += 1 }
            for v in 0..<vocabulary { starts[v + 1] += starts[v] }
            var next = starts
            var positions = [Int32](repeating: 0, count: values.count)
            for (t, id) in values.enumerated() {
                positions[Int(next[Int(id)])] = Int32(t)
                next[Int(id)] += 1
            }
            return (starts, positions)
        }
        // Tags 2v and 2v+1 keep one cached index per vocabulary size.
        var built: (starts: [Int32], positions: [Int32])?
        let starts = try uploads.view(tag: 2 * vocabulary, on: context) {
            built = built ?? build()
            return built!.starts
        }
        let positions = try uploads.view(tag: 2 * vocabulary + 1, on: context) {
            built = built ?? build()
            return built!.positions
        }
        return (starts, positions)
    }
}

/// Looks up rows of an embedding table `[vocabulary, dim]` for token ids of
/// shape `S` (e.g. `[B, L]`); the output is `S + [dim]`. The ids are
/// validated to lie in `0..<vocabulary`.
public struct EmbeddingLookup: Primitive {
    public let ids: TokenIDs
    public init(ids: TokenIDs) { self.ids = ids }
    public var name: String { "embedding" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1, inputs[0].count == 2 else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects a table of shape [vocabulary, dim]")
        }
        try ids.validate(op: name, vocabulary: inputs[0][0])
        return [ids.shape + [inputs[0][1]]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let table = inputs[0], dim = shapes[0][1]
        var y = [Float](repeating: 0, count: ids.values.count * dim)
        for (t, id) in ids.values.enumerated() {
            for d in 0..<dim { y[t * dim + d] = table[Int(id) * dim + d] }
        }
        return [y]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let table = inputs[0].view, y = outputs[0].view, idView = try ids.view(on: context)
        try checkInt32Extents(op: name, inputs[0].shape, outputs[0].shape)
        let kernel = try context.kernel(.embeddingForward)
        try context.launch(kernel, global: [y.count], local: [pointwiseGroupSize], EmbeddingForwardArguments(
            n: Int32(y.count), dim: Int32(inputs[0].shape[1]), table: table, ids: idView, y: y))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        try vjp(inputs: inputs, outputs: outputs, cotangents: cotangents, request: .all(inputs.count))
    }

    /// The table's gradient, written into the request's destination when
    /// the table is a parameter with an arena slice.
    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor], request: GradientRequest) throws -> [Tensor?] {
        [try apply(EmbeddingBackward(ids: ids, vocabulary: inputs[0].shape[0]), [cotangents[0]],
                   into: [request.destination(0)])[0]]
    }
}

/// Gradient of ``EmbeddingLookup`` with respect to its table: input `dy`
/// (`ids.shape + [dim]`), output `[vocabulary, dim]` where row `v` is the sum
/// of the `dy` rows of every token with id `v` (zero for unused ids).
///
/// The OpenCL path is deterministic and uses no float atomics: one work item
/// per table element sums its tokens in increasing position order, through
/// an inverse index built once on the host.
public struct EmbeddingBackward: Primitive {
    public let ids: TokenIDs
    /// Rows of the table the gradient is for.
    public let vocabulary: Int
    public init(ids: TokenIDs, vocabulary: Int) {
        self.ids = ids
        self.vocabulary = vocabulary
    }
    public var name: String { "embedding_backward" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1, inputs[0].count == ids.shape.count + 1, Array(inputs[0].dropLast()) == ids.shape else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs + [ids.shape], reason: "dy must be the ids' shape + [dim]")
        }
        guard vocabulary > 0 else { throw CloverError.invalidArgument(op: name, reason: "vocabulary \(vocabulary)") }
        try ids.validate(op: name, vocabulary: vocabulary)
        return [[vocabulary, inputs[0].last!]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let dy = inputs[0], dim = shapes[0].last!
        var acc = [Double](repeating: 0, count: vocabulary * dim)
        for (t, id) in ids.values.enumerated() {
            for d in 0..<dim { acc[Int(id) * dim + d] += Double(dy[t * dim + d]) }
        }
        return [acc.map { Float($0) }]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let dy = inputs[0].view, dtable = outputs[0].view
        let index = try ids.inverseIndex(vocabulary: vocabulary, on: context)
        try checkInt32Extents(op: name, inputs[0].shape, outputs[0].shape)
        let kernel = try context.kernel(.embeddingBackward)
        try context.launch(kernel, global: [dtable.count], local: [pointwiseGroupSize], EmbeddingBackwardArguments(
            n: Int32(dtable.count), dim: Int32(inputs[0].shape.last!), dy: dy,
            starts: index.starts, positions: index.positions, dtable: dtable))
    }
}

/// Rows of `table` (`[vocabulary, dim]`) for `ids`; see ``EmbeddingLookup``.
public func embedding(_ table: Tensor, ids: TokenIDs) throws -> Tensor {
    try apply1(EmbeddingLookup(ids: ids), [table])
}
