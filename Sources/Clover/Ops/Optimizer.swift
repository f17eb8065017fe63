import CloverKernels
import CloverRuntime

// Fused optimiser updates. Kernels: Kernels/optimizer.cl.
//
// Parameters, gradients and optimiser states are flat arenas: the tensors of
// a model live back to back in one buffer each, so one launch updates every
// parameter with no per-tensor host round trip. `ParameterSegments` says
// where each tensor's slice ends and whether weight decay applies to it.

/// The layout of a flat parameter arena: one segment per parameter tensor.
public final class ParameterSegments {
    /// Exclusive end (in elements) of each segment, ascending.
    public let ends: [Int32]
    /// Weight-decay multiplier per segment (1 decays, 0 exempts).
    public let decay: [Float]
    private let uploads = HostInts()

    /// Segments of the given sizes; `decays[i]` says whether tensor i gets
    /// weight decay (PyTorch users commonly exempt biases and norms).
    public init(sizes: [Int], decays: [Bool]? = nil) {
        var running = 0
        ends = sizes.map { running += $0; return Int32(running) }
        decay = (decays ?? sizes.map { _ in true }).map { $0 ? 1 : 0 }
    }

    /// One segment covering `count` elements, with weight decay.
    public convenience init(count: Int) { self.init(sizes: [count]) }

    public var totalCount: Int { Int(ends.last ?? 0) }

    func validate(op: String, count: Int) throws {
        guard !ends.isEmpty, totalCount == count, decay.count == ends.count,
              zip(ends, [0] + ends.dropLast()).allSatisfy({ $0 > $1 }) else {
            throw CloverError.invalidArgument(
                op: op, reason: "segments covering \(totalCount) elements (\(ends.count) segments) do not partition \(count) parameters")
        }
    }

    /// Decay multiplier of element `i` (reference path: a plain scan).
    func decayMultiplier(at i: Int) -> Double {
        for (s, end) in ends.enumerated() where i < Int(end) { return Double(decay[s]) }
        return 0
    }

    func views(on context: OpenCLContext) throws -> (ends: BufferView, decay: BufferView) {
        (try uploads.view(tag: 0, on: context, resident: true) { ends },
         try uploads.view(tag: 1, on: context, resident: true) { decay })
    }
}

/// SGD hyper-parameters, with PyTorch's semantics: `g += wd·p`; with
/// momentum `b = μ·b + (1−dampening)·g` and the step uses `b` (or `g + μ·b`
/// with Nesterov); `p −= lr·step`.
public struct SGDConfiguration: Sendable {
    public var learningRate: Float
    public var momentum: Float
    public var dampening: Float
    public var nesterov: Bool
    public var weightDecay: Float

    public init(learningRate: Float, momentum: Float = 0, dampening: Float = 0, nesterov: Bool = false,
                weightDecay: Float = 0) {
        self.learningRate = learningRate
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        self.weightDecay = weightDecay
    }
}

/// AdamW hyper-parameters (Loshchilov & Hutter; PyTorch's `AdamW`):
/// decoupled decay `p −= lr·wd·p`, then Adam with bias correction at `step`
/// (1-based).
public struct AdamWConfiguration: Sendable {
    public var learningRate: Float
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float
    public var weightDecay: Float

    public init(learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
                weightDecay: Float = 0.01) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }
}

/// One fused SGD step as a functional op: inputs `p`, `g`, momentum buffer
/// (all flat `[n]`) → new `p`, new buffer. The OpenCL path copies and then
/// runs the same in-place kernel as ``sgdStep(parameters:gradients:momentum:configuration:segments:)``.
public struct SGDUpdate: Primitive {
    public let configuration: SGDConfiguration
    public let segments: ParameterSegments

    public init(_ configuration: SGDConfiguration, segments: ParameterSegments) {
        self.configuration = configuration
        self.segments = segments
    }

    public var name: String { "sgd_update" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 3, inputs.allSatisfy({ $0.count == 1 && $0 == inputs[0] }) else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects flat parameters, gradients and momentum of one length")
        }
        try segments.validate(op: name, count: inputs[0][0])
        return [inputs[0], inputs[0]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        var p = inputs[0], b = inputs[2]
        let g = inputs[1], c = configuration
        for i in 0..<p.count {
            var d = Double(g[i]) + Double(c.weightDecay) * segments.decayMultiplier(at: i) * Double(p[i])
            if c.momentum != 0 {
                let bi = Double(c.momentum) * Double(b[i]) + (1 - Double(c.dampening)) * d
                b[i] = Float(bi)
                d = c.nesterov ? d + Double(c.momentum) * bi : bi
            }
            p[i] = Float(Double(p[i]) - Double(c.learningRate) * d)
        }
        return [p, b]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let n = inputs[0].count
        try context.copy(from: inputs[0].view, to: outputs[0].view, count: n)
        try context.copy(from: inputs[2].view, to: outputs[1].view, count: n)
        try enqueueSGD(context, configuration, segments, p: outputs[0].view, g: inputs[1].view, buffer: outputs[1].view)
    }
}

/// One fused AdamW step as a functional op: inputs `p`, `g`, `m`, `v` (flat
/// `[n]`) → new `p`, `m`, `v`.
public struct AdamWUpdate: Primitive {
    public let configuration: AdamWConfiguration
    public let step: Int
    public let segments: ParameterSegments

    public init(_ configuration: AdamWConfiguration, step: Int, segments: ParameterSegments) {
        self.configuration = configuration
        self.step = step
        self.segments = segments
    }

    public var name: String { "adamw_update" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 4, inputs.allSatisfy({ $0.count == 1 && $0 == inputs[0] }) else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects flat parameters, gradients, m and v of one length")
        }
        guard step >= 1 else { throw CloverError.invalidArgument(op: name, reason: "step \(step) must be ≥ 1") }
        try segments.validate(op: name, count: inputs[0][0])
        return [inputs[0], inputs[0], inputs[0]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        var p = inputs[0], m = inputs[2], v = inputs[3]
        let g = inputs[1], c = configuration
        let b1 = Double(c.beta1), b2 = Double(c.beta2)
        var c1 = 1.0, c2 = 1.0
        for _ in 0..<step { c1 *= b1; c2 *= b2 }
        c1 = 1 - c1
        c2 = 1 - c2
        for i in 0..<p.count {
            let gi = Double(g[i])
            var w = Double(p[i])
            w -= Double(c.learningRate) * Double(c.weightDecay) * segments.decayMultiplier(at: i) * w
            let mi = b1 * Double(m[i]) + (1 - b1) * gi
            let vi = b2 * Double(v[i]) + (1 - b2) * gi * gi
            m[i] = Float(mi)
            v[i] = Float(vi)
            p[i] = Float(w - Double(c.learningRate) * (mi / c1) / (_sqrt(vi / c2) + Double(c.epsilon)))
        }
        return [p, m, v]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let n = inputs[0].count
        try context.copy(from: inputs[0].view, to: outputs[0].view, count: n)
        try context.copy(from: inputs[2].view, to: outputs[1].view, count: n)
        try context.copy(from: inputs[3].view, to: outputs[2].view, count: n)
        try enqueueAdamW(context, configuration, step: step, segments,
                         p: outputs[0].view, g: inputs[1].view, m: outputs[1].view, v: outputs[2].view)
    }
}

private func enqueueSGD(_ context: OpenCLContext, _ c: SGDConfiguration, _ segments: ParameterSegments,
                        p: BufferView, g: BufferView, buffer: BufferView) throws {
    let (ends, decay) = try segments.views(on: context)
    let kernel = try context.kernel(.sgdUpdate, OptimizerDefines(nesterov: c.nesterov, momentum: c.momentum != 0))
    try context.launch(kernel, global: [p.count], local: [pointwiseGroupSize], SgdUpdateArguments(
        n: UInt32(p.count), lr: c.learningRate, momentum: c.momentum, dampening: c.dampening,
        weightDecay: c.weightDecay, segments: Int32(segments.ends.count), segEnd: ends, segDecay: decay,
        p: p, g: g, buf: buffer))
}

private func enqueueAdamW(_ context: OpenCLContext, _ c: AdamWConfiguration, step: Int, _ segments: ParameterSegments,
                          p: BufferView, g: BufferView, m: BufferView, v: BufferView) throws {
    let (ends, decay) = try segments.views(on: context)
    let kernel = try context.kernel(.adamwUpdate)
    let c1 = 1 - Float(_pow(Double(c.beta1), Double(step)))
    let c2 = 1 - Float(_pow(Double(c.beta2), Double(step)))
    try context.launch(kernel, global: [p.count], local: [pointwiseGroupSize], AdamwUpdateArguments(
        n: UInt32(p.count), lr: c.learningRate, beta1: c.beta1, beta2: c.beta2, epsilon: c.epsilon,
        weightDecay: c.weightDecay, biasCorrection1: c1, biasCorrection2: c2,
        segments: Int32(segments.ends.count), segEnd: ends, segDecay: decay, p: p, g: g, m: m, v: v))
}

/// Updates a flat parameter arena in place with one SGD step: one kernel
/// launch for every tensor in `segments`, no host round trip.
///
/// `momentum` must be given (and is updated in place) when
/// `configuration.momentum != 0`.
public func sgdStep(parameters: Tensor, gradients: Tensor, momentum: Tensor?, configuration: SGDConfiguration,
                    segments: ParameterSegments) throws {
    let op = SGDUpdate(configuration, segments: segments)
    let buffer = try momentum ?? Tensor.zeros(parameters.shape, on: parameters.device)
    if configuration.momentum != 0 && momentum == nil {
        throw CloverError.invalidArgument(op: op.name, reason: "momentum \(configuration.momentum) needs a momentum buffer")
    }
    try checkInPlace(op, [parameters, gradients, buffer])
    switch parameters.device.backend {
    case .meta:
        return
    case .reference:
        let out = try op.evalReference([parameters, gradients, buffer].map(\.hostValues), shapes: [parameters.shape])
        parameters.hostValues = out[0]
        buffer.hostValues = out[1]
    case let .openCL(context):
        try enqueueSGD(context, configuration, segments, p: parameters.view, g: gradients.view, buffer: buffer.view)
    }
}

/// Updates a flat parameter arena and its moments in place with one AdamW
/// step (`step` counts from 1).
public func adamWStep(parameters: Tensor, gradients: Tensor, m: Tensor, v: Tensor, step: Int,
                      configuration: AdamWConfiguration, segments: ParameterSegments) throws {
    let op = AdamWUpdate(configuration, step: step, segments: segments)
    try checkInPlace(op, [parameters, gradients, m, v])
    switch parameters.device.backend {
    case .meta:
        return
    case .reference:
        let out = try op.evalReference([parameters, gradients, m, v].map(\.hostValues), shapes: [parameters.shape])
        parameters.hostValues = out[0]
        m.hostValues = out[1]
        v.hostValues = out[2]
    case let .openCL(context):
        try enqueueAdamW(context, configuration, step: step, segments,
                         p: parameters.view, g: gradients.view, m: m.view, v: v.view)
    }
}

private func checkInPlace(_ op: Primitive, _ tensors: [Tensor]) throws {
    let device = tensors[0].device
    if tensors.contains(where: { $0.device !== device }) {
        throw CloverError.deviceMismatch(op: op.name, devices: tensors.map { $0.device.description })
    }
    _ = try op.outputShapes(for: tensors.map(\.shape))
}
