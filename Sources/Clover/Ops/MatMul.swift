import CloverKernels
import CloverRuntime

// Matrix multiplication: strict FP32 through CLBlast; on TF32 tensor cores through
// Kernels/matmul.cl's batched GEMM (the tiles of the implicit-GEMM convolutions' tensor-core form).

/// `alpha · op(A) · op(B) + beta · C` for rank-2 matrices or rank-3 batches
/// of matrices, where `op` optionally transposes the last two axes.
///
/// Inputs: `A`, `B`, and optionally `C` (shape of the result). Without `C`,
/// `beta` is ignored. A batch is `[batch, rows, cols]`; `A` and `B` must have
/// the same batch size (no broadcasting).
///
/// Under TF32 (``OpenCLContext/usesTF32TensorCores``) the product runs on
/// the tensor cores: operands rounded to TF32, FP32 accumulation
/// (`Kernels/matmul.cl`); otherwise CLBlast's strict FP32 GEMM.
public struct MatMul: Primitive {
    public let transposeA: Bool
    public let transposeB: Bool
    public let alpha: Float
    public let beta: Float
    /// Runs the product and its gradients on this tensor-core set
    /// (conformance: emulated on a device without tensor cores, and the
    /// reference then rounds A and B to TF32 as the kernel does); nil: the
    /// tensor cores where ``OpenCLContext/usesTF32TensorCores`` allows, else CLBlast.
    public var tensorCoreSet: ConvGemmParameters?

    public init(transposeA: Bool = false, transposeB: Bool = false, alpha: Float = 1, beta: Float = 0,
                tensorCoreSet: ConvGemmParameters? = nil) {
        self.transposeA = transposeA
        self.transposeB = transposeB
        self.alpha = alpha
        self.beta = beta
        self.tensorCoreSet = tensorCoreSet
    }

    public var name: String { "matmul" }

    /// (batch, m, n, k) for the input shapes.
    func dimensions(_ shapes: [[Int]]) throws -> (batch: Int, m: Int, n: Int, k: Int) {
        guard shapes.count == 2 || shapes.count == 3 else {
            throw CloverError.shapeMismatch(op: name, shapes: shapes, reason: "expects A, B and optionally C")
        }
        let a = shapes[0], b = shapes[1]
        guard a.count == b.count, a.count == 2 || a.count == 3 else {
            throw CloverError.shapeMismatch(op: name, shapes: shapes, reason: "A and B must both be rank 2 or both rank 3")
        }
        let batch = a.count == 3 ? a[0] : 1
        if a.count == 3 && b[0] != batch {
            throw CloverError.shapeMismatch(op: name, shapes: shapes, reason: "batch sizes differ")
        }
        let ar = a[a.count - 2], ac = a[a.count - 1], br = b[b.count - 2], bc = b[b.count - 1]
        let (m, ka) = transposeA ? (ac, ar) : (ar, ac)
        let (kb, n) = transposeB ? (bc, br) : (br, bc)
        guard ka == kb else {
            throw CloverError.shapeMismatch(op: name, shapes: shapes,
                                            reason: "inner dimensions differ (\(ka) vs \(kb)) with transposeA \(transposeA), transposeB \(transposeB)")
        }
        if shapes.count == 3 {
            let expected = a.count == 3 ? [batch, m, n] : [m, n]
            guard shapes[2] == expected else {
                throw CloverError.shapeMismatch(op: name, shapes: shapes, reason: "C must be \(formatShape(expected))")
            }
        }
        return (batch, m, n, ka)
    }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        let d = try dimensions(inputs)
        return [inputs[0].count == 3 ? [d.batch, d.m, d.n] : [d.m, d.n]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let d = try dimensions(shapes)
        let tf32 = tensorCoreSet != nil
        let a = tf32 ? inputs[0].map(\.roundedToTF32) : inputs[0]
        let b = tf32 ? inputs[1].map(\.roundedToTF32) : inputs[1]
        let ac = shapes[0].last!, bc = shapes[1].last!
        var out = [Float](repeating: 0, count: d.batch * d.m * d.n)
        for p in 0..<d.batch {
            let aBase = p * d.m * d.k, bBase = p * d.k * d.n, cBase = p * d.m * d.n
            for i in 0..<d.m {
                for j in 0..<d.n {
                    var sum = 0.0
                    for l in 0..<d.k {
                        let av = transposeA ? a[aBase + l * ac + i] : a[aBase + i * ac + l]
                        let bv = transposeB ? b[bBase + j * bc + l] : b[bBase + l * bc + j]
                        sum += Double(av) * Double(bv)
                    }
                    var value = Double(alpha) * sum
                    if inputs.count == 3 { value += Double(beta) * Double(inputs[2][cBase + i * d.n + j]) }
                    out[cBase + i * d.n + j] = Float(value)
                }
            }
        }
        return [out]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let d = try dimensions(inputs.map(\.shape))
        let a = inputs[0], b = inputs[1], c = outputs[0]
        let effectiveBeta: Float
        if inputs.count == 3 {
            try context.copy(from: inputs[2].view, to: c.view, count: c.count)
            effectiveBeta = beta
        } else {
            effectiveBeta = 0
        }
        if let set = try tensorCoreChoice(context, m: d.m, n: d.n) {
            try launchTensorCoreGemm(context, set, d, a: a.view, lda: a.shape.last!, b: b.view, ldb: b.shape.last!,
                                     beta: effectiveBeta, c: c.view, shapes: inputs.map(\.shape))
            return
        }
        try clblastGemm(context, transposeA: transposeA, transposeB: transposeB, m: d.m, n: d.n, k: d.k,
                        alpha: alpha, a: a.view, lda: a.shape.last!, strideA: d.m * d.k,
                        b: b.view, ldb: b.shape.last!, strideB: d.k * d.n,
                        beta: effectiveBeta, c: c.view, ldc: d.n, strideC: d.m * d.n, batch: d.batch)
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        try vjp(inputs: inputs, outputs: outputs, cotangents: cotangents, request: .all(inputs.count))
    }

    /// Runs only the GEMMs whose operand needs a gradient.
    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor], request: GradientRequest) throws -> [Tensor?] {
        let g = cotangents[0], a = inputs[0], b = inputs[1]
        let da: Tensor? = !request.needs(0) ? nil : transposeA
            ? try apply1(MatMul(transposeA: transposeB, transposeB: true, alpha: alpha, tensorCoreSet: tensorCoreSet), [b, g])
            : try apply1(MatMul(transposeA: false, transposeB: !transposeB, alpha: alpha, tensorCoreSet: tensorCoreSet), [g, b])
        let db: Tensor? = !request.needs(1) ? nil : transposeB
            ? try apply1(MatMul(transposeA: true, transposeB: transposeA, alpha: alpha, tensorCoreSet: tensorCoreSet), [g, a])
            : try apply1(MatMul(transposeA: !transposeA, transposeB: false, alpha: alpha, tensorCoreSet: tensorCoreSet), [a, g])
        var grads: [Tensor?] = [da, db]
        if inputs.count == 3 { grads.append(request.needs(2) ? try scale(g, by: beta) : nil) }
        return grads
    }
}

extension MatMul {
    /// The tensor-core set for an `m` × `n` product on `context`, or nil for
    /// CLBlast: the forced set, else under TF32 the 64×64 tiles on 4 warps
    /// where either side is at most 64 (attention's heads), the 128×128 on 8
    /// otherwise, as the convolutions choose.
    func tensorCoreChoice(_ context: OpenCLContext, m: Int, n: Int) throws -> ConvGemmParameters? {
        if let tensorCoreSet {
            guard tensorCoreSet.form == .tensorCore else {
                throw CloverError.invalidArgument(op: name, reason: "\(tensorCoreSet) is not a tensor-core set")
            }
            return tensorCoreSet
        }
        guard context.usesTF32TensorCores else { return nil }
        let sets = ConvGemmParameters.searchSpace.filter { $0.form == .tensorCore }
        return min(m, n) <= 64 ? sets.first! : sets.last!
    }

    /// `matmul_tf32` over the batch: one launch, C overwritten (`beta` 0) or
    /// accumulated into.
    private func launchTensorCoreGemm(_ context: OpenCLContext, _ set: ConvGemmParameters,
                                      _ d: (batch: Int, m: Int, n: Int, k: Int),
                                      a: BufferView, lda: Int, b: BufferView, ldb: Int,
                                      beta: Float, c: BufferView, shapes: [[Int]]) throws {
        var problems = set.violations
        // Each item's loads sit at fixed tile rows and columns (matmul.cl's A_ROW, B_COL).
        if set.workGroupSize % set.tileM != 0 { problems.append("work-group size \(set.workGroupSize) is not a multiple of TM \(set.tileM)") }
        guard problems.isEmpty else {
            throw CloverError.invalidArgument(op: name, reason: "tensor-core set \(set): " + problems.joined(separator: "; "))
        }
        // Indices within one matrix are 32-bit in the kernel; the batch rides on dimension 2.
        let largest = max(d.m * d.k, d.k * d.n, d.m * d.n)
        guard largest < Int(Int32.max) else {
            throw CloverError.unsupported(op: name, shapes: shapes, device: context.device.description,
                                          reason: "the tensor-core GEMM indexes a matrix in 32 bits")
        }
        // The PTX only where it builds (see TensorCoreProduct); the emulation elsewhere.
        let defines = MatmulDefines(tm: set.tileM, tn: set.tileN, tk: set.tileK, wm: set.workM, wn: set.workN,
                                    ta: transposeA, tb: transposeB,
                                    mmaEmulate: context.device.hasTF32TensorCores ? nil : true)
        let kernel = try context.kernel(.matmulTf32, defines, registerLimit: set.registerLimit)
        let global = [(d.n + set.tileN - 1) / set.tileN * set.itemsN, (d.m + set.tileM - 1) / set.tileM * set.itemsM,
                      d.batch]
        try context.launch(kernel, global: global, local: [set.itemsN, set.itemsM, 1], MatmulTf32Arguments(
            M: Int32(d.m), N: Int32(d.n), K: Int32(d.k), alpha: alpha, beta: beta,
            A: a, lda: Int32(lda), strideA: UInt64(d.m * d.k),
            B: b, ldb: Int32(ldb), strideB: UInt64(d.k * d.n),
            C: c, ldc: Int32(d.n), strideC: UInt64(d.m * d.n)))
    }
}

/// `alpha · op(a) · op(b) (+ beta · c)`; see ``MatMul``.
public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false,
                   alpha: Float = 1, beta: Float = 0, adding c: Tensor? = nil) throws -> Tensor {
    try apply1(MatMul(transposeA: transposeA, transposeB: transposeB, alpha: alpha, beta: beta),
               c.map { [a, b, $0] } ?? [a, b])
}
