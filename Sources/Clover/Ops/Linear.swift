import CloverKernels
import CloverRuntime

// Linear (fully connected) layers: x·Wᵀ through CLBlast GEMM, plus bias kernels in Kernels/linear.cl;
// on TF32 tensor cores, the same three GEMMs as 1x1 convolutions over 1x1 planes on the implicit-GEMM
// kernels' tensor-core form (rows of x are the samples, its features the channels).

/// `y = x·Wᵀ + b` for `x` `[..., in]`, `W` `[out, in]` (PyTorch's layout)
/// and optional `b` `[out]`; `y` is `[..., out]`. Every leading axis of `x`
/// is folded into the rows of one GEMM.
///
/// Inputs: `x`, `W`, and optionally `b`.
public struct LinearMap: Primitive {
    /// Runs every pass on this tensor-core set (conformance; the reference
    /// then rounds its operands to TF32 as the kernels do); nil: the tensor
    /// cores where ``OpenCLContext/usesTF32TensorCores`` allows, else CLBlast.
    public var tensorCoreSet: ConvGemmParameters?

    public init(tensorCoreSet: ConvGemmParameters? = nil) { self.tensorCoreSet = tensorCoreSet }
    public var name: String { "linear" }

    /// The layer as a 1x1 convolution: `rows` samples of `in` channels on a
    /// 1x1 plane, `out` filters.
    private static let pointwise = Convolution2DParameters()

    /// The tensor-core choice for this layer on `device`, or nil for CLBlast.
    private func tensorCoreChoice(_ device: Device, fanIn: Int, fanOut: Int) -> ConvChoice? {
        if let tensorCoreSet { return ConvChoice(.implicitGEMM, tensorCoreSet) }
        guard let context = device.openCL, context.usesTF32TensorCores else { return nil }
        let set = ConvGemmParameters.searchSpace.filter { $0.form == .tensorCore }
        return ConvChoice(.implicitGEMM, min(fanIn, fanOut) <= 64 ? set.first! : set.last!)
    }

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
        let tf32 = tensorCoreSet != nil
        let x = tf32 ? inputs[0].map(\.roundedToTF32) : inputs[0]
        let w = tf32 ? inputs[1].map(\.roundedToTF32) : inputs[1]
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
        if let choice = tensorCoreChoice(x.device, fanIn: fanIn, fanOut: fanOut) {
            let shapes = [[rows, fanIn, 1, 1], [fanOut, fanIn, 1, 1]]
            let g = try Self.pointwise.geometry(input: shapes[0], weight: shapes[1], op: name, shapes: shapes)
            try g.checkImplicitGemmLimits(op: name, shapes: shapes, on: context)
            _ = try implicitGemmForward(context, g, try choice.gemmParameters(), x: x.view, w: w.view,
                                        bias: inputs.count == 3 ? inputs[2].view : nil, y: y.view)
            return
        }
        // beta = 0: CLBlast overwrites y, so the pool buffer's old contents never leak in.
        try clblastGemm(context, transposeA: false, transposeB: true, m: rows, n: fanOut, k: fanIn,
                        alpha: 1, a: x.view, lda: fanIn, strideA: 0, b: w.view, ldb: fanIn, strideB: 0,
                        beta: 0, c: y.view, ldc: fanOut, strideC: 0)
        if inputs.count == 3 {
            try launchBiasAdd(y.view, bias: inputs[2].view, columns: fanOut, into: y.view, on: context)
        }
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        try vjp(inputs: inputs, outputs: outputs, cotangents: cotangents, request: .all(inputs.count))
    }

    /// Computes only the needed gradients (a first layer on data skips dx).
    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor], request: GradientRequest) throws -> [Tensor?] {
        let x = inputs[0], w = inputs[1]
        let fanIn = w.shape[1], fanOut = w.shape[0], rows = x.count / fanIn
        if let choice = tensorCoreChoice(x.device, fanIn: fanIn, fanOut: fanOut) {
            return try tensorCoreVJP(inputs: inputs, cotangents: cotangents, request: request,
                                     choice: choice)
        }
        let g = try cotangents[0].reshaped([rows, fanOut])
        let dx = request.needs(0) ? try matmul(g, w).reshaped(x.shape) : nil
        // Parameter gradients go straight into an optimiser's arena when it holds them.
        let dw = request.needs(1)
            ? try apply(MatMul(transposeA: true), [g, x.reshaped([rows, fanIn])], into: [request.destination(1)])[0]
            : nil
        var grads: [Tensor?] = [dx, dw]
        if inputs.count == 3 {
            grads.append(request.needs(2)
                ? try apply(BiasGradient(), [g], into: [request.destination(2)])[0] : nil)
        }
        return grads
    }

    /// The gradients on the tensor cores: the convolution's data and weight
    /// gradients over 1x1 planes (their references round to TF32 as well).
    private func tensorCoreVJP(inputs: [Tensor], cotangents: [Tensor], request: GradientRequest,
                               choice: ConvChoice) throws -> [Tensor?] {
        let x = inputs[0], w = inputs[1]
        let fanIn = w.shape[1], fanOut = w.shape[0], rows = x.count / fanIn
        let dy = try cotangents[0].reshaped([rows, fanOut, 1, 1])
        let w4 = try w.reshaped([fanOut, fanIn, 1, 1])
        let dx = request.needs(0)
            ? try apply1(Convolution2DBackwardData(Self.pointwise, inputShape: [rows, fanIn, 1, 1], forcedChoice: choice),
                         [dy, w4]).reshaped(x.shape)
            : nil
        let dw = request.needs(1)
            ? try apply(Convolution2DBackwardWeight(Self.pointwise, weightShape: [fanOut, fanIn, 1, 1], forcedChoice: choice),
                        [dy, try x.reshaped([rows, fanIn, 1, 1])], into: [request.destination(1)])[0]
                .reshaped(w.shape)
            : nil
        var grads: [Tensor?] = [dx, dw]
        if inputs.count == 3 {
            grads.append(request.needs(2)
                ? try apply(BiasGradient(), [try cotangents[0].reshaped([rows, fanOut])],
                            into: [request.destination(2)])[0] : nil)
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
        try vjp(inputs: inputs, outputs: outputs, cotangents: cotangents, request: .all(inputs.count))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor], request: GradientRequest) throws -> [Tensor?] {
        [request.needs(0) ? cotangents[0] : nil,
         request.needs(1)
            ? try apply(BiasGradient(), [cotangents[0]], into: [request.destination(1)])[0] : nil]
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
        try context.launch(kernel, global: [cols], local: [64],
                           BiasGradRowsArguments(rows: Int32(rows), cols: Int32(cols), dy: dy, db: db))
    }
}

private func launchBiasAdd(_ x: BufferView, bias: BufferView, columns: Int, into y: BufferView,
                           on context: OpenCLContext) throws {
    try checkInt32Extents(op: "bias_add", [y.count / columns, columns])
    let kernel = try context.kernel(.biasAddRows)
    try context.launch(kernel, global: [y.count], local: [pointwiseGroupSize],
                       BiasAddRowsArguments(n: Int32(y.count), cols: Int32(columns), x: x, b: bias, y: y))
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
