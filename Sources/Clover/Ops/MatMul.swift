import CloverRuntime

// Matrix multiplication through CLBlast (no hand-written kernel).

/// `alpha · op(A) · op(B) + beta · C` for rank-2 matrices or rank-3 batches
/// of matrices, where `op` optionally transposes the last two axes.
///
/// Inputs: `A`, `B`, and optionally `C` (shape of the result). Without `C`,
/// `beta` is ignored. A batch is `[batch, rows, cols]`; `A` and `B` must have
/// the same batch size (no broadcasting).
public struct MatMul: Primitive {
    public let transposeA: Bool
    public let transposeB: Bool
    public let alpha: Float
    public let beta: Float

    public init(transposeA: Bool = false, transposeB: Bool = false, alpha: Float = 1, beta: Float = 0) {
        self.transposeA = transposeA
        self.transposeB = transposeB
        self.alpha = alpha
        self.beta = beta
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
        let a = inputs[0], b = inputs[1]
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
        try clblastGemm(context, transposeA: transposeA, transposeB: transposeB, m: d.m, n: d.n, k: d.k,
                        alpha: alpha, a: a.view, lda: a.shape.last!, strideA: d.m * d.k,
                        b: b.view, ldb: b.shape.last!, strideB: d.k * d.n,
                        beta: effectiveBeta, c: c.view, ldc: d.n, strideC: d.m * d.n, batch: d.batch)
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        try vjp(inputs: inputs, outputs: outputs, cotangents: cotangents, needsGradient: .all(inputs.count))
    }

    /// Runs only the GEMMs whose operand needs a gradient.
    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor], needsGradient: [Bool]) throws -> [Tensor?] {
        let g = cotangents[0], a = inputs[0], b = inputs[1]
        let da: Tensor? = !needsGradient.needs(0) ? nil : transposeA
            ? try apply1(MatMul(transposeA: transposeB, transposeB: true, alpha: alpha), [b, g])
            : try apply1(MatMul(transposeA: false, transposeB: !transposeB, alpha: alpha), [g, b])
        let db: Tensor? = !needsGradient.needs(1) ? nil : transposeB
            ? try apply1(MatMul(transposeA: true, transposeB: transposeA, alpha: alpha), [g, a])
            : try apply1(MatMul(transposeA: !transposeA, transposeB: false, alpha: alpha), [a, g])
        var grads: [Tensor?] = [da, db]
        if inputs.count == 3 { grads.append(needsGradient.needs(2) ? try scale(g, by: beta) : nil) }
        return grads
    }
}

/// `alpha · op(a) · op(b) (+ beta · c)`; see ``MatMul``.
public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false,
                   alpha: Float = 1, beta: Float = 0, adding c: Tensor? = nil) throws -> Tensor {
    try apply1(MatMul(transposeA: transposeA, transposeB: transposeB, alpha: alpha, beta: beta),
               c.map { [a, b, $0] } ?? [a, b])
}
