import CloverKernels
import CloverRuntime

// Masked softmax, head layout and multi-head scaled dot-product attention.
// Kernels: Kernels/attention.cl; the Q·Kᵀ and A·V products are batched GEMMs through ``MatMul``
// (CLBlast in strict FP32, Kernels/matmul.cl on TF32 tensor cores).

/// The work-group size of the row-wise softmax kernels (one group per row).
let softmaxGroupSize = 64

/// Which keys each batch element may attend to: `[batch, keys]` flags, kept
/// on the host for validation and uploaded once per OpenCL context (as
/// ``ClassLabels`` are).
///
/// A flag is 1 for a real token and 0 for padding. The mask is shared by
/// every head and every query of a batch element.
public final class KeyPaddingMask {
    /// Batch elements (`B`).
    public let batch: Int
    /// Keys per batch element (`Lk`).
    public let keys: Int
    /// Row-major `[batch, keys]`: 1 = may be attended to, 0 = padding.
    public let valid: [Int32]
    private let uploads = HostInts()

    /// A mask from explicit flags, one row of `keys` booleans per batch element.
    ///
    /// - Throws: when the rows are empty or of different lengths.
    public init(valid rows: [[Bool]]) throws {
        guard let keys = rows.first?.count, keys > 0, rows.allSatisfy({ $0.count == keys }) else {
            throw CloverError.invalidArgument(op: "key_padding_mask",
                                              reason: "rows of lengths \(rows.map(\.count)) must be equal and non-empty")
        }
        self.batch = rows.count
        self.keys = keys
        self.valid = rows.flatMap { $0.map { $0 ? Int32(1) : 0 } }
    }

    /// Right padding: the first `lengths[b]` of `keys` keys of batch element
    /// `b` are real tokens. A length of 0 masks every key of that element.
    ///
    /// - Throws: when a length is outside `0...keys`.
    public convenience init(lengths: [Int], keys: Int) throws {
        if let bad = lengths.first(where: { $0 < 0 || $0 > keys }) {
            throw CloverError.invalidArgument(op: "key_padding_mask", reason: "length \(bad) is outside 0...\(keys)")
        }
        try self.init(valid: lengths.map { n in (0..<keys).map { $0 < n } })
    }

    func view(on context: OpenCLContext) throws -> BufferView { try uploads.view(valid, on: context) }

    func isValid(batch b: Int, key j: Int) -> Bool { valid[b * keys + j] != 0 }
}

/// Softmax over the last axis of attention scores `[B, H, Lq, Lk]`, with an
/// optional key-padding mask and optional causal masking.
///
/// A masked key gets probability 0 and the softmax is taken over the rest
/// (after subtracting their maximum, so scores of any size stay finite).
/// With `causal`, query `i` sees keys `j ≤ i` (top-left aligned, as
/// PyTorch's `is_causal`). **A row that may attend to no key at all**
/// (every key padded, or hidden by the causal mask) **outputs all zeros**,
/// not NaN, and its gradient is zero.
public struct MaskedSoftmax: Primitive {
    /// Padded keys per batch element, or nil for none.
    public let mask: KeyPaddingMask?
    /// Hide keys after the query's own position.
    public let causal: Bool

    public init(mask: KeyPaddingMask? = nil, causal: Bool = false) {
        self.mask = mask
        self.causal = causal
    }

    public var name: String { "masked_softmax" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1, inputs[0].count == 4 else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects scores of shape [B, H, Lq, Lk]")
        }
        let s = inputs[0]
        if let mask, mask.batch != s[0] || mask.keys != s[3] {
            throw CloverError.shapeMismatch(op: name, shapes: [s, [mask.batch, mask.keys]],
                                            reason: "the key-padding mask must be [B, Lk] = \(formatShape([s[0], s[3]]))")
        }
        return inputs
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let s = shapes[0], x = inputs[0]
        let (batch, heads, lq, lk) = (s[0], s[1], s[2], s[3])
        var y = [Float](repeating: 0, count: x.count)
        for b in 0..<batch {
            for h in 0..<heads {
                for i in 0..<lq {
                    let base = ((b * heads + h) * lq + i) * lk
                    func allowed(_ j: Int) -> Bool {
                        (mask?.isValid(batch: b, key: j) ?? true) && (!causal || j <= i)
                    }
                    var m = -Double.infinity
                    for j in 0..<lk where allowed(j) { m = max(m, Double(x[base + j])) }
                    if m == -Double.infinity { continue }  // nothing visible: the row stays 0
                    var sum = 0.0
                    for j in 0..<lk where allowed(j) { sum += _exp(Double(x[base + j]) - m) }
                    for j in 0..<lk where allowed(j) { y[base + j] = Float(_exp(Double(x[base + j]) - m) / sum) }
                }
            }
        }
        return [y]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let s = inputs[0].shape, x = inputs[0].view, y = outputs[0].view
        let rows = s[0] * s[1] * s[2]
        // Without a mask the kernel never reads the flags; any buffer fills the slot.
        let flags = try mask?.view(on: context) ?? x
        let kernel = try context.kernel(.maskedSoftmaxForward, AttentionDefines(wg: softmaxGroupSize))
        try context.launch(kernel, global: [rows * softmaxGroupSize], local: [softmaxGroupSize],
                           MaskedSoftmaxForwardArguments(
                               rows: Int32(rows), heads: Int32(s[1]), lq: Int32(s[2]), lk: Int32(s[3]),
                               useMask: Int32(mask == nil ? 0 : 1), causal: Int32(causal ? 1 : 0),
                               x: x, valid: flags, y: y))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        // Masked keys have y = 0, so the plain softmax gradient already gives them 0.
        [try apply1(SoftmaxBackward(), [cotangents[0], outputs[0]])]
    }
}

/// The softmax gradient over the last axis from the softmax output:
/// inputs `dy`, `y` (same shape); output `dx = y · (dy − Σ dy·y)`.
public struct SoftmaxBackward: Primitive {
    public init() {}
    public var name: String { "softmax_backward" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 2, inputs[0] == inputs[1], !inputs[0].isEmpty else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "dy and y must have the same shape of rank ≥ 1")
        }
        return [inputs[0]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let dy = inputs[0], y = inputs[1], n = shapes[0].last!
        var dx = [Float](repeating: 0, count: dy.count)
        for r in 0..<(dy.count / n) {
            var dot = 0.0
            for j in 0..<n { dot += Double(dy[r * n + j]) * Double(y[r * n + j]) }
            for j in 0..<n { dx[r * n + j] = Float(Double(y[r * n + j]) * (Double(dy[r * n + j]) - dot)) }
        }
        return [dx]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let n = inputs[0].shape.last!, rows = inputs[0].count / n
        let dy = inputs[0].view, y = inputs[1].view, dx = outputs[0].view
        let kernel = try context.kernel(.softmaxBackward, AttentionDefines(wg: softmaxGroupSize))
        try context.launch(kernel, global: [rows * softmaxGroupSize], local: [softmaxGroupSize],
                           SoftmaxBackwardArguments(rows: Int32(rows), n: Int32(n), dy: dy, y: y, dx: dx))
    }
}

/// `[B, L, H·Dh]` → `[B, H, L, Dh]`: the per-head layout the batched GEMMs need.
public struct SplitHeads: Primitive {
    /// Heads `H`; the width must be a multiple of it.
    public let heads: Int
    public init(heads: Int) { self.heads = heads }
    public var name: String { "split_heads" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1, inputs[0].count == 3 else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects [B, L, heads·headDim]")
        }
        guard heads > 0, inputs[0][2] % heads == 0 else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "width \(inputs[0][2]) is not divisible by \(heads) heads")
        }
        let s = inputs[0]
        return [[s[0], heads, s[1], s[2] / heads]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let s = shapes[0], x = inputs[0], dh = s[2] / heads
        var y = [Float](repeating: 0, count: x.count)
        for b in 0..<s[0] {
            for l in 0..<s[1] {
                for h in 0..<heads {
                    for d in 0..<dh { y[((b * heads + h) * s[1] + l) * dh + d] = x[(b * s[1] + l) * s[2] + h * dh + d] }
                }
            }
        }
        return [y]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let s = inputs[0].shape
        try transposeMiddleAxes(inputs[0].view, dims: [s[0], s[1], heads, s[2] / heads], into: outputs[0].view, on: context)
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        [try apply1(MergeHeads(), [cotangents[0]])]
    }
}

/// `[B, H, L, Dh]` → `[B, L, H·Dh]`: the inverse of ``SplitHeads``.
public struct MergeHeads: Primitive {
    public init() {}
    public var name: String { "merge_heads" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1, inputs[0].count == 4 else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects [B, heads, L, headDim]")
        }
        let s = inputs[0]
        return [[s[0], s[2], s[1] * s[3]]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let s = shapes[0], x = inputs[0]
        let (batch, heads, length, dh) = (s[0], s[1], s[2], s[3])
        var y = [Float](repeating: 0, count: x.count)
        for b in 0..<batch {
            for h in 0..<heads {
                for l in 0..<length {
                    for d in 0..<dh {
                        y[(b * length + l) * heads * dh + h * dh + d] = x[((b * heads + h) * length + l) * dh + d]
                    }
                }
            }
        }
        return [y]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        try transposeMiddleAxes(inputs[0].view, dims: inputs[0].shape, into: outputs[0].view, on: context)
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        [try apply1(SplitHeads(heads: inputs[0].shape[1]), [cotangents[0]])]
    }
}


/// Multi-head scaled dot-product attention
/// `softmax(Q·Kᵀ/√Dh + mask) · V` per head, for `q` `[B, Lq, H·Dh]`,
/// `k` `[B, Lk, H·Dh]` and `v` `[B, Lk, H·Dv]` (the layout linear
/// projections produce; head `h` owns columns `h·Dh ..< (h+1)·Dh`). The
/// output is `[B, Lq, H·Dv]`.
///
/// The OpenCL path is a composite of primitives that each have a CPU
/// reference, a kernel and a gradient: ``SplitHeads``, ``MatMul`` (CLBlast
/// strided-batched GEMM over the `B·H` heads), ``MaskedSoftmax`` and
/// ``MergeHeads``. The CPU reference is a direct loop over the formula. The
/// gradient chains those primitives' vjps, recomputing the attention
/// probabilities instead of keeping them from the forward pass.
/// Masking follows ``MaskedSoftmax``: a query that may attend to no key
/// outputs zeros and passes no gradient.
public struct ScaledDotProductAttention: Primitive {
    /// Heads `H`; the widths of q, k and v must be multiples of it.
    public let heads: Int
    /// Padded keys per batch element, or nil for none.
    public let mask: KeyPaddingMask?
    /// Query `i` sees keys `j ≤ i` only.
    public let causal: Bool
    /// Runs both products on this tensor-core set (``MatMul/tensorCoreSet``;
    /// the reference then rounds q, k, v and the probabilities to TF32 as
    /// the products do); nil: whatever ``MatMul`` picks on the device.
    public var tensorCoreSet: ConvGemmParameters?

    public init(heads: Int, mask: KeyPaddingMask? = nil, causal: Bool = false,
                tensorCoreSet: ConvGemmParameters? = nil) {
        self.heads = heads
        self.mask = mask
        self.causal = causal
        self.tensorCoreSet = tensorCoreSet
    }

    public var name: String { "attention" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 3, inputs.allSatisfy({ $0.count == 3 }) else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects q [B, Lq, H·Dh], k [B, Lk, H·Dh], v [B, Lk, H·Dv]")
        }
        let q = inputs[0], k = inputs[1], v = inputs[2]
        guard q[0] == k[0], k[0] == v[0], k[1] == v[1], q[2] == k[2] else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs,
                                            reason: "q and k need the same batch and width, k and v the same batch and length")
        }
        guard heads > 0, q[2] % heads == 0, v[2] % heads == 0 else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "widths are not divisible by \(heads) heads")
        }
        if let mask, mask.batch != k[0] || mask.keys != k[1] {
            throw CloverError.shapeMismatch(op: name, shapes: inputs + [[mask.batch, mask.keys]],
                                            reason: "the key-padding mask must be [B, Lk] = \(formatShape([k[0], k[1]]))")
        }
        return [[q[0], q[1], v[2]]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let tf32 = tensorCoreSet != nil
        let q = tf32 ? inputs[0].map(\.roundedToTF32) : inputs[0]
        let k = tf32 ? inputs[1].map(\.roundedToTF32) : inputs[1]
        let v = tf32 ? inputs[2].map(\.roundedToTF32) : inputs[2]
        let batch = shapes[0][0], lq = shapes[0][1], lk = shapes[1][1]
        let width = shapes[0][2], vWidth = shapes[2][2], dh = width / heads, dv = vWidth / heads
        let scale = 1 / _sqrt(Double(dh))
        var out = [Float](repeating: 0, count: batch * lq * vWidth)
        var scores = [Double](repeating: 0, count: lk)
        for b in 0..<batch {
            for h in 0..<heads {
                for i in 0..<lq {
                    var visible = [Bool](repeating: false, count: lk)
                    var m = -Double.infinity
                    for j in 0..<lk {
                        visible[j] = (mask?.isValid(batch: b, key: j) ?? true) && (!causal || j <= i)
                        guard visible[j] else { continue }
                        var dot = 0.0
                        for d in 0..<dh {
                            dot += Double(q[(b * lq + i) * width + h * dh + d]) * Double(k[(b * lk + j) * width + h * dh + d])
                        }
                        scores[j] = dot * scale
                        m = max(m, scores[j])
                    }
                    if m == -Double.infinity { continue }  // no visible key: output row stays 0
                    var sum = 0.0
                    for j in 0..<lk where visible[j] { sum += _exp(scores[j] - m) }
                    // The probabilities are the second product's A operand: rounded to TF32 there.
                    let probs = (0..<lk).map { j -> Double in
                        guard visible[j] else { return 0 }
                        let p = _exp(scores[j] - m) / sum
                        return tf32 ? Double(Float(p).roundedToTF32) : p
                    }
                    for d in 0..<dv {
                        var acc = 0.0
                        for j in 0..<lk where visible[j] {
                            acc += probs[j] * Double(v[(b * lk + j) * vWidth + h * dv + d])
                        }
                        out[(b * lq + i) * vWidth + h * dv + d] = Float(acc)
                    }
                }
            }
        }
        return [out]
    }

    /// The forward composite's intermediates, on the tensors' device.
    private func forward(_ q: Tensor, _ k: Tensor, _ v: Tensor)
        throws -> (qh: Tensor, kh: Tensor, vh: Tensor, scores: MatMul, probs: Tensor, softmax: MaskedSoftmax,
                   context: MatMul, perHead: Tensor) {
        let batch = q.shape[0], lq = q.shape[1], lk = k.shape[1]
        let dh = q.shape[2] / heads, dv = v.shape[2] / heads
        let qh = try apply1(SplitHeads(heads: heads), [q]).reshaped([batch * heads, lq, dh])
        let kh = try apply1(SplitHeads(heads: heads), [k]).reshaped([batch * heads, lk, dh])
        let vh = try apply1(SplitHeads(heads: heads), [v]).reshaped([batch * heads, lk, dv])
        let scoresOp = MatMul(transposeB: true, alpha: Float(1 / _sqrt(Double(dh))), tensorCoreSet: tensorCoreSet)
        let scores = try apply1(scoresOp, [qh, kh]).reshaped([batch, heads, lq, lk])
        let softmax = MaskedSoftmax(mask: mask, causal: causal)
        let probs = try apply1(softmax, [scores]).reshaped([batch * heads, lq, lk])
        let contextOp = MatMul(tensorCoreSet: tensorCoreSet)
        let perHead = try apply1(contextOp, [probs, vh]).reshaped([batch, heads, lq, dv])
        return (qh, kh, vh, scoresOp, probs, softmax, contextOp, perHead)
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let f = try forward(inputs[0], inputs[1], inputs[2])
        // The last step writes straight into the preallocated output.
        try MergeHeads().evalOpenCL([f.perHead], outputs: outputs, on: context)
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        let q = inputs[0], k = inputs[1], v = inputs[2]
        let batch = q.shape[0], lq = q.shape[1], lk = k.shape[1]
        let f = try forward(q, k, v)
        // out = merge(perHead)
        let dPerHead = try MergeHeads().vjp(inputs: [f.perHead], outputs: [], cotangents: cotangents)[0]!
            .reshaped([batch * heads, lq, v.shape[2] / heads])
        // perHead = probs · vh
        let dContext = try f.context.vjp(inputs: [f.probs, f.vh], outputs: [], cotangents: [dPerHead])
        // probs = masked_softmax(scores)
        let probs4 = try f.probs.reshaped([batch, heads, lq, lk])
        let dScores = try f.softmax.vjp(inputs: [], outputs: [probs4], cotangents: [dContext[0]!.reshaped(probs4.shape)])[0]!
            .reshaped([batch * heads, lq, lk])
        // scores = qh · khᵀ / √Dh
        let dQK = try f.scores.vjp(inputs: [f.qh, f.kh], outputs: [], cotangents: [dScores])
        // qh, kh, vh = split(q), split(k), split(v)
        func unsplit(_ g: Tensor, length: Int) throws -> Tensor {
            try apply1(MergeHeads(), [g.reshaped([batch, heads, length, g.shape[2]])])
        }
        return [try unsplit(dQK[0]!, length: lq), try unsplit(dQK[1]!, length: lk), try unsplit(dContext[1]!, length: lk)]
    }
}

/// Softmax of attention scores `[B, H, Lq, Lk]` over keys; see ``MaskedSoftmax``.
public func maskedSoftmax(_ scores: Tensor, mask: KeyPaddingMask? = nil, causal: Bool = false) throws -> Tensor {
    try apply1(MaskedSoftmax(mask: mask, causal: causal), [scores])
}

/// Multi-head scaled dot-product attention over `[B, L, heads·Dh]` tensors;
/// see ``ScaledDotProductAttention``.
public func attention(_ q: Tensor, _ k: Tensor, _ v: Tensor, heads: Int,
                      mask: KeyPaddingMask? = nil, causal: Bool = false) throws -> Tensor {
    try apply1(ScaledDotProductAttention(heads: heads, mask: mask, causal: causal), [q, k, v])
}
