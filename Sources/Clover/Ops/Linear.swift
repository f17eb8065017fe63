import CloverRuntime

// Linear (fully connected) layers: x·Wᵀ through CLBlast GEMM, plus bias kernels in Kernels/linear.cl.

/// `y = x·Wᵀ + b` for `x` `[..., in]`, `W` `[out, in]` (PyTorch's layout)
/// and optional `b` `[out]`; `y` is `[..., out]`. Every leading axis of `x`
/// is folded into the rows of one GEMM.
///
/// Inputs: `x`, `W`, and optionally `b`.
public struct LinearMap: Primitive {
    public init() {}
    public var name: String { "linear" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 2 || inputs.count == 3 else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects x, weight and optionally bias")
        }
        let x = inputs[0], w = inputs[1]
        guard !x.isEmpty, w.count == 2, w[1] == x.last! else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "weight must be [out, in] with in = the last axis of x")
        }
        if inputs.count == 3 && inputs[2] != [w[0]] {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "bias must be [out] = [\(w[0])]")
        }
        return [Array(x.dropLast()) + [w[0]]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let x = inputs[0], w = inputs[1]
        let fanIn = shapes[1][1], fanOut = shapes[1][0], rows = x.count / fanIn
        var y = [Float](repeating: 0, count: rows * fanOut)
        for r in 0..<rows {
            for o in 0..<fanOut {
                var sum = inputs.count == 3 ? Double(inputs[2][o]) : 0
                for i in 0..<fanIn { sum += Double(x[r * fanIn + i]) * Double(w[o * fanIn + i]) }
                y[r * fanOut + o] = Float(sum)
            }
        }
        return [y]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let x = inputs[0], w = inputs[1], y = outputs[0]
        let fanIn = w.shape[1], fanOut = w.shape[0], rows = x.count / fanIn
        // beta = 0: CLBlast overwrites y, so the pool buffer's old contents never leak in.
        try clblastGemm(context, transposeA: false, transposeB: true, m: rows, n: fanOut, k: fanIn,
                        alpha: 1, a: x.view, lda: fanIn, strideA: 0, b: w.view, ldb: fanIn, strideB: 0,
                        beta: 0, c: y.view, ldc: fanOut, strideC: 0)
        if inputs.count == 3 {
            try launchBiasAdd(y.view, bias: inputs[2].view, columns: fanOut, into: y.view, on: context)
        }
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        try vjp(inputs: inputs, outputs: outputs, cotangents: cotangents, needsGradient: .all(inputs.count))
    }

    /// Computes only the needed gradients (a first layer on data skips dx).
    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor], needsGradient: [Bool]) throws -> [Tensor?] {
        let x = inputs[0], w = inputs[1]
        let fanIn = w.shape[1], fanOut = w.shape[0], rows = x.count / fanIn
        let g = try cotangents[0].reshaped([rows, fanOut])
        let dx = needsGradient.needs(0) ? try matmul(g, w).reshaped(x.shape) : nil
        // Parameter gradients go straight into an optimiser's arena when it holds them.
        let dw = needsGradient.needs(1)
            ? try apply(MatMul(transposeA: true), [g, x.reshaped([rows, fanIn])], into: [w.claimGradientDestination()])[0]
            : nil
        var grads: [Tensor?] = [dx, dw]
        if inputs.count == 3 {
            grads.append(needsGradient.needs(2)
                ? try apply(BiasGradient(), [g], into: [inputs[2].claimGradientDestination()])[0] : nil)
        }
        return grads
    }
}

/// `y[..., c] = x[..., c] + b[c]`: a bias broadcast over every row.
public struct BiasAdd: Primitive {
    public init() {}
    public var name: String { "bias_add" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 2, let cols = inputs[0].last, inputs[1] == [cols] else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "bias must be [n] with n = the last axis of x")
        }
        return [inputs[0]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let x = inputs[0], b = inputs[1], cols = b.count
        var y = [Float](repeating: 0, count: x.count)
        for r in 0..<(x.count / cols) {
            for c in 0..<cols { y[r * cols + c] = Float(Double(x[r * cols + c]) + Double(b[c])) }
        }
        return [y]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        try launchBiasAdd(inputs[0].view, bias: inputs[1].view, columns: inputs[1].count, into: outputs[0].view, on: context)
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        try vjp(inputs: inputs, outputs: outputs, cotangents: cotangents, needsGradient: .all(inputs.count))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor], needsGradient: [Bool]) throws -> [Tensor?] {
        [needsGradient.needs(0) ? cotangents[0] : nil,
         needsGradient.needs(1)
            ? try apply(BiasGradient(), [cotangents[0]], into: [inputs[1].claimGradientDestination()])[0] : nil]
    }
}

/// The bias gradient: `db[c] = Σ_rows dy[..., c]` for `dy` `[..., n]`; output `[n]`.
public struct BiasGradient: Primitive {
    public init() {}
    public var name: String { "bias_grad" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1, let cols = inputs[0].last else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects one tensor of rank ≥ 1")
        }
        return [[cols]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let dy = inputs[0], cols = shapes[0].last!
        var db = [Double](repeating: 0, count: cols)
        for (i, v) in dy.enumerated() { db[i % cols] += Double(v) }
        return [db.map { Float($0) }]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        try checkInt32Extents(op: name, inputs[0].shape)
        let cols = inputs[0].shape.last!, rows = inputs[0].count / cols
        let dy = inputs[0].view, db = outputs[0].view
        let kernel = try context.kernel(.biasGradRows)
        try context.launch(kernel, global: [cols], local: [64], arguments: [
            Int32(rows), Int32(cols), dy.buffer, dy.kernelOffset, db.buffer, db.kernelOffset,
        ])
    }
}

private func launchBiasAdd(_ x: BufferView, bias: BufferView, columns: Int, into y: BufferView,
                           on context: OpenCLContext) throws {
    try checkInt32Extents(op: "bias_add", [y.count / columns, columns])
    let kernel = try context.kernel(.biasAddRows)
    try context.launch(kernel, global: [y.count], local: [pointwiseGroupSize], arguments: [
        Int32(y.count), Int32(columns), x.buffer, x.kernelOffset, bias.buffer, bias.kernelOffset, y.buffer, y.kernelOffset,
    ])
}

/// Throws unless every shape has fewer than 2^31 elements: the pointwise
/// kernels (bias, embedding, layout, ConvRNN gates) index with 32-bit
/// `int`s, because a 64-bit division per element costs several times a
/// 32-bit one on GPUs.
func checkInt32Extents(op: String, _ shapes: [Int]...) throws {
    guard shapes.allSatisfy({ $0.reduce(1, *) <= Int(Int32.max) }) else {
        throw CloverError.unsupported(op: op, shapes: shapes, device: "OpenCL",
                                      reason: "the kernels index with 32-bit integers (at most 2^31-1 elements per tensor)")
    }
}

/// `x·Wᵀ + b` for `x` `[..., in]`, `weight` `[out, in]`, `bias` `[out]`; see ``LinearMap``.
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) throws -> Tensor {
    try apply1(LinearMap(), bias.map { [x, weight, $0] } ?? [x, weight])
}
