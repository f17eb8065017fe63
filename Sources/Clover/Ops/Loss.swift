import CloverKernels
import CloverRuntime

// Classification losses (softmax cross-entropy with label smoothing and ignored tokens, binary
// cross-entropy with logits) and argmax/accuracy. Kernels: Kernels/loss.cl.

/// Integer class labels, kept on the host for validation and uploaded once
/// per OpenCL context.
public final class ClassLabels {
    public let values: [Int32]
    private let uploads = HostInts()

    public init(_ values: [Int32]) { self.values = values }
    public convenience init(_ values: [Int]) { self.init(values.map { Int32($0) }) }

    /// The labels as a device buffer on `context` (uploaded on first use).
    func view(on context: OpenCLContext) throws -> BufferView {
        try uploads.view(values, on: context)
    }

    /// Throws unless there is one label per row, each in `0..<classes` or
    /// equal to `ignoreIndex`.
    func validate(op: String, rows: Int, classes: Int, ignoreIndex: Int32? = nil) throws {
        guard values.count == rows else {
            throw CloverError.shapeMismatch(op: op, shapes: [[rows, classes], [values.count]],
                                            reason: "\(values.count) labels for \(rows) rows")
        }
        if let (i, bad) = values.enumerated().first(where: {
            $0.element != ignoreIndex && ($0.element < 0 || Int($0.element) >= classes)
        }) {
            throw CloverError.invalidArgument(op: op, reason: "label \(bad) at row \(i) is outside 0..<\(classes)")
        }
    }
}


// MARK: Softmax cross-entropy

/// The label an ignore-free cross-entropy passes to the kernels: validated
/// labels are never negative, so no row matches it.
private let noIgnoreIndex = Int32.min

/// Throws unless `epsilon` is a label-smoothing factor in `[0, 1]`.
private func validateSmoothing(_ epsilon: Float, op: String) throws {
    guard epsilon >= 0 && epsilon <= 1 else {
        throw CloverError.invalidArgument(op: op, reason: "label smoothing \(epsilon) is outside [0, 1]")
    }
}

/// Reference cross-entropy of one row against the smoothed target
/// `(1 − ε)·onehot + ε/C`, as `−Σ_c t_c · log p_c`.
private func referenceRowCrossEntropy(_ x: [Float], row r: Int, classes: Int, label: Int, smoothing: Double) -> Double {
    var m = -Double.infinity
    for c in 0..<classes { m = max(m, Double(x[r * classes + c])) }
    var s = 0.0
    for c in 0..<classes { s += _exp(Double(x[r * classes + c]) - m) }
    let logS = _log(s)
    var loss = 0.0
    for c in 0..<classes {
        let target = (c == label ? 1 - smoothing : 0) + smoothing / Double(classes)
        loss -= target * (Double(x[r * classes + c]) - m - logS)
    }
    return loss
}

/// Reference gradient of one row: `scale · (softmax − smoothed target)`.
private func referenceRowCrossEntropyGradient(_ x: [Float], row r: Int, classes: Int, label: Int, smoothing: Double,
                                              scale: Double, into dx: inout [Float]) {
    var m = -Double.infinity
    for c in 0..<classes { m = max(m, Double(x[r * classes + c])) }
    var s = 0.0
    for c in 0..<classes { s += _exp(Double(x[r * classes + c]) - m) }
    for c in 0..<classes {
        let p = _exp(Double(x[r * classes + c]) - m) / s
        let target = (c == label ? 1 - smoothing : 0) + smoothing / Double(classes)
        dx[r * classes + c] = Float(scale * (p - target))
    }
}

/// Enqueues the per-row cross-entropy kernel and `y = scale · Σ rows`.
private func launchCrossEntropy(_ logits: Tensor, labels: ClassLabels, smoothing: Float, ignoreIndex: Int32,
                                scale: Float, into y: BufferView, on context: OpenCLContext) throws {
    let rows = logits.shape[0], classes = logits.shape[1], x = logits.view
    let labelView = try labels.view(on: context)
    let perRow = try context.allocateView(count: rows)
    let rowKernel = try context.kernel(.softmaxXentRows)
    try context.launch(rowKernel, global: [rows], local: [64], SoftmaxXentRowsArguments(
        rows: Int32(rows), classes: Int32(classes), smoothing: smoothing, ignoreIndex: ignoreIndex,
        x: x, label: labelView, loss: perRow))
    try launchScaledSum(perRow, scale: scale, into: y, on: context)
}

/// Enqueues `y[0] = scale · Σ v`.
private func launchScaledSum(_ v: BufferView, scale: Float, into y: BufferView, on context: OpenCLContext) throws {
    let reduce = try context.kernel(.scaledSumReduce, LossDefines(wg: 256))
    try context.launch(reduce, global: [256], local: [256],
                       ScaledSumReduceArguments(n: UInt64(v.count), scale: scale, v: v, y: y))
}

/// Enqueues the cross-entropy gradient `g · invCount · (softmax − target)`.
private func launchCrossEntropyBackward(_ g: Tensor, _ logits: Tensor, labels: ClassLabels, smoothing: Float,
                                        ignoreIndex: Int32, invCount: Float, into dx: BufferView,
                                        on context: OpenCLContext) throws {
    let rows = logits.shape[0], classes = logits.shape[1]
    let gv = g.view, x = logits.view
    let labelView = try labels.view(on: context)
    let kernel = try context.kernel(.softmaxXentBackward)
    try context.launch(kernel, global: [rows], local: [64], SoftmaxXentBackwardArguments(
        rows: Int32(rows), classes: Int32(classes), smoothing: smoothing, ignoreIndex: ignoreIndex,
        invCount: invCount, g: gv, x: x, label: labelView, dx: dx))
}

/// Mean softmax cross-entropy of logits `[rows, classes]` against labels;
/// the output is a scalar (shape `[]`).
///
/// With `labelSmoothing` ε > 0 each row's target is `(1 − ε)·onehot + ε/C`
/// (PyTorch's `label_smoothing`), so the loss is `−Σ_c t_c · log softmax_c`.
public struct SoftmaxCrossEntropy: Primitive {
    public let labels: ClassLabels
    /// ε in `[0, 1]`.
    public let labelSmoothing: Float

    public init(labels: ClassLabels, labelSmoothing: Float = 0) {
        self.labels = labels
        self.labelSmoothing = labelSmoothing
    }

    public var name: String { "softmax_cross_entropy" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1, inputs[0].count == 2 else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects logits of shape [rows, classes]")
        }
        try validateSmoothing(labelSmoothing, op: name)
        try labels.validate(op: name, rows: inputs[0][0], classes: inputs[0][1])
        return [[]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let rows = shapes[0][0], classes = shapes[0][1]
        var total = 0.0
        for r in 0..<rows {
            total += referenceRowCrossEntropy(inputs[0], row: r, classes: classes, label: Int(labels.values[r]),
                                              smoothing: Double(labelSmoothing))
        }
        return [[Float(total / Double(rows))]]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        try launchCrossEntropy(inputs[0], labels: labels, smoothing: labelSmoothing, ignoreIndex: noIgnoreIndex,
                               scale: 1 / Float(inputs[0].shape[0]), into: outputs[0].view, on: context)
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        try vjp(inputs: inputs, outputs: outputs, cotangents: cotangents, request: .all(inputs.count))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor], request: GradientRequest) throws -> [Tensor?] {
        guard request.needs(0) else { return [nil] }
        return [try apply1(SoftmaxCrossEntropyBackward(labels: labels, labelSmoothing: labelSmoothing),
                           [cotangents[0], inputs[0]])]
    }
}

/// Gradient of ``SoftmaxCrossEntropy``: inputs `g` (scalar) and logits;
/// output `g / rows · (softmax(logits) − target)`.
public struct SoftmaxCrossEntropyBackward: Primitive {
    public let labels: ClassLabels
    public let labelSmoothing: Float

    public init(labels: ClassLabels, labelSmoothing: Float = 0) {
        self.labels = labels
        self.labelSmoothing = labelSmoothing
    }

    public var name: String { "softmax_cross_entropy_backward" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 2, inputs[0].reduce(1, *) == 1, inputs[1].count == 2 else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects a scalar gradient and [rows, classes] logits")
        }
        try validateSmoothing(labelSmoothing, op: name)
        try labels.validate(op: name, rows: inputs[1][0], classes: inputs[1][1])
        return [inputs[1]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let g = Double(inputs[0][0]), x = inputs[1]
        let rows = shapes[1][0], classes = shapes[1][1]
        var dx = [Float](repeating: 0, count: x.count)
        for r in 0..<rows {
            referenceRowCrossEntropyGradient(x, row: r, classes: classes, label: Int(labels.values[r]),
                                             smoothing: Double(labelSmoothing), scale: g / Double(rows), into: &dx)
        }
        return [dx]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        try launchCrossEntropyBackward(inputs[0], inputs[1], labels: labels, smoothing: labelSmoothing,
                                       ignoreIndex: noIgnoreIndex, invCount: 1 / Float(inputs[1].shape[0]),
                                       into: outputs[0].view, on: context)
    }
}

/// Mean softmax cross-entropy of `logits` (`[rows, classes]`) against
/// `labels`, optionally with label smoothing ε; see ``SoftmaxCrossEntropy``.
public func softmaxCrossEntropy(_ logits: Tensor, labels: ClassLabels, labelSmoothing: Float = 0) throws -> Tensor {
    try apply1(SoftmaxCrossEntropy(labels: labels, labelSmoothing: labelSmoothing), [logits])
}

// MARK: Masked-token cross-entropy

/// Softmax cross-entropy over token logits `[N, V]` where labels equal to
/// `ignoreIndex` (−100 by default, as in PyTorch) are skipped: the loss is
/// the mean over the non-ignored rows only, and ignored rows get zero
/// gradient. When every row is ignored the loss is 0 and the gradient is
/// zero (PyTorch returns NaN there). Optional label smoothing as in
/// ``SoftmaxCrossEntropy``. The output is a scalar (shape `[]`).
public struct MaskedTokenCrossEntropy: Primitive {
    public let labels: ClassLabels
    /// The label that marks a skipped position (−100 by default).
    public let ignoreIndex: Int32
    /// ε in `[0, 1]`, as for ``SoftmaxCrossEntropy``.
    public let labelSmoothing: Float

    public init(labels: ClassLabels, ignoreIndex: Int32 = -100, labelSmoothing: Float = 0) {
        self.labels = labels
        self.ignoreIndex = ignoreIndex
        self.labelSmoothing = labelSmoothing
    }

    public var name: String { "masked_token_xent" }

    /// Rows whose label is not ignored.
    var counted: Int { labels.values.reduce(0) { $0 + ($1 == ignoreIndex ? 0 : 1) } }

    /// `1 / counted`, or 0 when every row is ignored (so the loss is 0, not 0/0).
    var inverseCount: Float { counted == 0 ? 0 : 1 / Float(counted) }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1, inputs[0].count == 2 else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects logits of shape [tokens, vocabulary]")
        }
        try validateSmoothing(labelSmoothing, op: name)
        try labels.validate(op: name, rows: inputs[0][0], classes: inputs[0][1], ignoreIndex: ignoreIndex)
        return [[]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let rows = shapes[0][0], classes = shapes[0][1]
        var total = 0.0, count = 0
        for r in 0..<rows where labels.values[r] != ignoreIndex {
            total += referenceRowCrossEntropy(inputs[0], row: r, classes: classes, label: Int(labels.values[r]),
                                              smoothing: Double(labelSmoothing))
            count += 1
        }
        return [[count == 0 ? 0 : Float(total / Double(count))]]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        try launchCrossEntropy(inputs[0], labels: labels, smoothing: labelSmoothing, ignoreIndex: ignoreIndex,
                               scale: inverseCount, into: outputs[0].view, on: context)
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        try vjp(inputs: inputs, outputs: outputs, cotangents: cotangents, request: .all(inputs.count))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor], request: GradientRequest) throws -> [Tensor?] {
        guard request.needs(0) else { return [nil] }
        return [try apply1(MaskedTokenCrossEntropyBackward(of: self), [cotangents[0], inputs[0]])]
    }
}

/// Gradient of ``MaskedTokenCrossEntropy``: inputs `g` (scalar) and logits;
/// output `g / counted · (softmax − target)` on counted rows, 0 on ignored ones.
public struct MaskedTokenCrossEntropyBackward: Primitive {
    public let forward: MaskedTokenCrossEntropy
    public init(of forward: MaskedTokenCrossEntropy) { self.forward = forward }
    public var name: String { "masked_token_xent_backward" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 2, inputs[0].reduce(1, *) == 1, inputs[1].count == 2 else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects a scalar gradient and [tokens, vocabulary] logits")
        }
        try validateSmoothing(forward.labelSmoothing, op: name)
        try forward.labels.validate(op: name, rows: inputs[1][0], classes: inputs[1][1], ignoreIndex: forward.ignoreIndex)
        return [inputs[1]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let g = Double(inputs[0][0]), x = inputs[1]
        let rows = shapes[1][0], classes = shapes[1][1]
        var count = 0
        for r in 0..<rows where forward.labels.values[r] != forward.ignoreIndex { count += 1 }
        var dx = [Float](repeating: 0, count: x.count)
        for r in 0..<rows where forward.labels.values[r] != forward.ignoreIndex {
            referenceRowCrossEntropyGradient(x, row: r, classes: classes, label: Int(forward.labels.values[r]),
                                             smoothing: Double(forward.labelSmoothing), scale: g / Double(count), into: &dx)
        }
        return [dx]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        try launchCrossEntropyBackward(inputs[0], inputs[1], labels: forward.labels, smoothing: forward.labelSmoothing,
                                       ignoreIndex: forward.ignoreIndex, invCount: forward.inverseCount,
                                       into: outputs[0].view, on: context)
    }
}

/// Mean cross-entropy over the tokens whose label is not `ignoreIndex`;
/// see ``MaskedTokenCrossEntropy``.
public func maskedTokenCrossEntropy(_ logits: Tensor, labels: ClassLabels, ignoreIndex: Int32 = -100,
                                    labelSmoothing: Float = 0) throws -> Tensor {
    try apply1(MaskedTokenCrossEntropy(labels: labels, ignoreIndex: ignoreIndex, labelSmoothing: labelSmoothing), [logits])
}

// MARK: Binary cross-entropy with logits

/// Mean binary cross-entropy of logits against float targets of the same
/// shape (usually in `[0, 1]`), over every element, in the stable form
/// `max(x, 0) − x·t + log(1 + exp(−|x|))`. Inputs: logits, targets; the
/// output is a scalar (shape `[]`). The targets get no gradient.
public struct BinaryCrossEntropyWithLogits: Primitive {
    public init() {}
    public var name: String { "bce_with_logits" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 2, inputs[0] == inputs[1] else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "logits and targets must have the same shape")
        }
        return [[]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let x = inputs[0], t = inputs[1]
        var total = 0.0
        for i in 0..<x.count {
            let v = Double(x[i])
            total += max(v, 0) - v * Double(t[i]) + _log(1 + _exp(-abs(v)))
        }
        return [[Float(total / Double(x.count))]]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let x = inputs[0].view, t = inputs[1].view
        let perElement = try context.allocateView(count: x.count)
        let kernel = try context.kernel(.bceLogitsElements)
        try context.launch(kernel, global: [x.count], local: [pointwiseGroupSize],
                           BceLogitsElementsArguments(n: UInt64(x.count), x: x, t: t, loss: perElement))
        try launchScaledSum(perElement, scale: 1 / Float(x.count), into: outputs[0].view, on: context)
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        try vjp(inputs: inputs, outputs: outputs, cotangents: cotangents, request: .all(inputs.count))
    }

    /// The targets never get a gradient; the logits only when they need one.
    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor], request: GradientRequest) throws -> [Tensor?] {
        guard request.needs(0) else { return [nil, nil] }
        return [try apply1(BinaryCrossEntropyWithLogitsBackward(), [cotangents[0], inputs[0], inputs[1]]), nil]
    }
}

/// Gradient of ``BinaryCrossEntropyWithLogits`` with respect to the logits:
/// inputs `g` (scalar), logits, targets; output `g / n · (sigmoid(x) − t)`.
public struct BinaryCrossEntropyWithLogitsBackward: Primitive {
    public init() {}
    public var name: String { "bce_with_logits_backward" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 3, inputs[0].reduce(1, *) == 1, inputs[1] == inputs[2] else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects a scalar gradient and logits and targets of one shape")
        }
        return [inputs[1]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let g = Double(inputs[0][0]), x = inputs[1], t = inputs[2]
        let n = Double(x.count)
        return [(0..<x.count).map { i in
            let sigmoid = 1 / (1 + _exp(-Double(x[i])))
            return Float(g / n * (sigmoid - Double(t[i])))
        }]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let g = inputs[0].view, x = inputs[1].view, t = inputs[2].view, dx = outputs[0].view
        let kernel = try context.kernel(.bceLogitsBackward)
        try context.launch(kernel, global: [dx.count], local: [pointwiseGroupSize], BceLogitsBackwardArguments(
            n: UInt64(dx.count), invCount: 1 / Float(dx.count), g: g, x: x, t: t, dx: dx))
    }
}

/// Mean binary cross-entropy of `logits` against `targets`; see ``BinaryCrossEntropyWithLogits``.
public func binaryCrossEntropyWithLogits(_ logits: Tensor, targets: Tensor) throws -> Tensor {
    try apply1(BinaryCrossEntropyWithLogits(), [logits, targets])
}

// MARK: Argmax and accuracy

/// The index of the largest value along the last axis, as a float tensor
/// with that axis removed (`[..., C]` → `[...]`; a vector gives a scalar).
/// Ties resolve to the first index. Comparisons are a strict `>`, so a NaN
/// is picked only when it is the first entry of its row.
/// Indices are exact in float up to 2²⁴ classes. No gradient is defined.
public struct Argmax: Primitive {
    /// The reduced axis; only the last one (−1 or `rank − 1`) is supported.
    public let axis: Int
    public init(axis: Int = -1) { self.axis = axis }
    public var name: String { "argmax" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1, !inputs[0].isEmpty else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects one tensor of rank ≥ 1")
        }
        guard axis == -1 || axis == inputs[0].count - 1 else {
            throw CloverError.unsupported(op: name, shapes: inputs, device: "any device",
                                          reason: "only the last axis is supported, not axis \(axis)")
        }
        guard inputs[0].last! <= 1 << 24 else {
            throw CloverError.unsupported(op: name, shapes: inputs, device: "any device",
                                          reason: "indices past 2^24 are not exact in float")
        }
        return [Array(inputs[0].dropLast())]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let x = inputs[0], cols = shapes[0].last!
        var y = [Float](repeating: 0, count: x.count / cols)
        for r in 0..<y.count {
            var best = 0
            for c in 1..<max(cols, 1) where x[r * cols + c] > x[r * cols + best] { best = c }
            y[r] = Float(best)
        }
        return [y]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let cols = inputs[0].shape.last!, rows = inputs[0].count / cols
        let x = inputs[0].view, y = outputs[0].view
        let kernel = try context.kernel(.argmaxRows)
        try context.launch(kernel, global: [rows], local: [64],
                           ArgmaxRowsArguments(rows: Int32(rows), cols: Int32(cols), x: x, y: y))
    }
}

/// Indices of the largest values along the last axis; see ``Argmax``.
public func argmax(_ x: Tensor) throws -> Tensor { try apply1(Argmax(), [x]) }

/// The fraction of rows of `logits` (`[rows, classes]`) whose argmax equals
/// the label, skipping rows labelled `ignoreIndex` when one is given. Returns
/// 0 when every row is ignored.
public func accuracy(_ logits: Tensor, labels: ClassLabels, ignoreIndex: Int32? = nil) throws -> Double {
    guard logits.rank == 2 else {
        throw CloverError.shapeMismatch(op: "accuracy", shapes: [logits.shape], reason: "expects logits of shape [rows, classes]")
    }
    try labels.validate(op: "accuracy", rows: logits.shape[0], classes: logits.shape[1], ignoreIndex: ignoreIndex)
    let predicted = try argmax(logits).toArray()
    var correct = 0, counted = 0
    for (p, label) in zip(predicted, labels.values) where label != ignoreIndex {
        counted += 1
        if Int32(p) == label { correct += 1 }
    }
    return counted == 0 ? 0 : Double(correct) / Double(counted)
}
