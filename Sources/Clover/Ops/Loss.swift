import CloverRuntime

// Softmax cross-entropy. Kernels: Kernels/loss.cl.

/// Integer class labels, kept on the host for validation and uploaded once
/// per OpenCL context.
public final class ClassLabels {
    public let values: [Int32]
    private var uploaded: [ObjectIdentifier: BufferView] = [:]

    public init(_ values: [Int32]) { self.values = values }
    public convenience init(_ values: [Int]) { self.init(values.map { Int32($0) }) }

    /// The labels as a device buffer on `context` (uploaded on first use).
    func view(on context: OpenCLContext) throws -> BufferView {
        let key = ObjectIdentifier(context)
        if let v = uploaded[key] { return v }
        let v = try context.allocateView(count: values.count)
        try context.upload(values, to: v)
        uploaded[key] = v
        return v
    }

    /// Throws unless there is one label per row, each in `0..<classes`.
    func validate(op: String, rows: Int, classes: Int) throws {
        guard values.count == rows else {
            throw CloverError.shapeMismatch(op: op, shapes: [[rows, classes], [values.count]],
                                            reason: "\(values.count) labels for \(rows) rows")
        }
        if let (i, bad) = values.enumerated().first(where: { $0.element < 0 || Int($0.element) >= classes }) {
            throw CloverError.invalidArgument(op: op, reason: "label \(bad) at row \(i) is outside 0..<\(classes)")
        }
    }
}

/// Mean softmax cross-entropy of logits `[rows, classes]` against labels;
/// the output is a scalar (shape `[]`).
public struct SoftmaxCrossEntropy: Primitive {
    public let labels: ClassLabels
    public init(labels: ClassLabels) { self.labels = labels }
    public var name: String { "softmax_cross_entropy" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1, inputs[0].count == 2 else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects logits of shape [rows, classes]")
        }
        try labels.validate(op: name, rows: inputs[0][0], classes: inputs[0][1])
        return [[]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let rows = shapes[0][0], classes = shapes[0][1], x = inputs[0]
        var total = 0.0
        for r in 0..<rows {
            var m = -Double.infinity
            for c in 0..<classes { m = max(m, Double(x[r * classes + c])) }
            var s = 0.0
            for c in 0..<classes { s += _exp(Double(x[r * classes + c]) - m) }
            total += _log(s) + m - Double(x[r * classes + Int(labels.values[r])])
        }
        return [[Float(total / Double(rows))]]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let rows = inputs[0].shape[0], classes = inputs[0].shape[1]
        let x = inputs[0].view, y = outputs[0].view
        let labelView = try labels.view(on: context)
        let perRow = try context.allocateView(count: rows)
        let rowKernel = try context.kernel(family: "loss", "softmax_xent_rows")
        try context.launch(rowKernel, global: [rows], local: [64], arguments: [
            Int32(rows), Int32(classes), x.buffer, x.kernelOffset, labelView.buffer, labelView.kernelOffset,
            perRow.buffer, perRow.kernelOffset,
        ])
        let reduce = try context.kernel(family: "loss", "mean_reduce", defines: ["WG": "256"])
        try context.launch(reduce, global: [256], local: [256], arguments: [
            Int32(rows), perRow.buffer, perRow.kernelOffset, y.buffer, y.kernelOffset,
        ])
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        [try apply1(SoftmaxCrossEntropyBackward(labels: labels), [cotangents[0], inputs[0]])]
    }
}

/// Gradient of ``SoftmaxCrossEntropy``: inputs `g` (scalar) and logits;
/// output `g / rows · (softmax(logits) − onehot(labels))`.
public struct SoftmaxCrossEntropyBackward: Primitive {
    public let labels: ClassLabels
    public init(labels: ClassLabels) { self.labels = labels }
    public var name: String { "softmax_cross_entropy_backward" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 2, inputs[0].reduce(1, *) == 1, inputs[1].count == 2 else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects a scalar gradient and [rows, classes] logits")
        }
        try labels.validate(op: name, rows: inputs[1][0], classes: inputs[1][1])
        return [inputs[1]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let g = Double(inputs[0][0]), x = inputs[1]
        let rows = shapes[1][0], classes = shapes[1][1]
        var dx = [Float](repeating: 0, count: x.count)
        for r in 0..<rows {
            var m = -Double.infinity
            for c in 0..<classes { m = max(m, Double(x[r * classes + c])) }
            var s = 0.0
            for c in 0..<classes { s += _exp(Double(x[r * classes + c]) - m) }
            for c in 0..<classes {
                let p = _exp(Double(x[r * classes + c]) - m) / s
                let target = c == Int(labels.values[r]) ? 1.0 : 0.0
                dx[r * classes + c] = Float(g / Double(rows) * (p - target))
            }
        }
        return [dx]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let rows = inputs[1].shape[0], classes = inputs[1].shape[1]
        let g = inputs[0].view, x = inputs[1].view, dx = outputs[0].view
        let labelView = try labels.view(on: context)
        let kernel = try context.kernel(family: "loss", "softmax_xent_backward")
        try context.launch(kernel, global: [rows], local: [64], arguments: [
            Int32(rows), Int32(classes), g.buffer, g.kernelOffset, x.buffer, x.kernelOffset,
            labelView.buffer, labelView.kernelOffset, dx.buffer, dx.kernelOffset,
        ])
    }
}

/// Mean softmax cross-entropy of `logits` (`[rows, classes]`) against `labels`.
public func softmaxCrossEntropy(_ logits: Tensor, labels: ClassLabels) throws -> Tensor {
    try apply1(SoftmaxCrossEntropy(labels: labels), [logits])
}
