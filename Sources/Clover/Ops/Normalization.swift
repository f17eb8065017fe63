import CloverKernels
import CloverRuntime
import Synchronization

// Batch normalisation over [N, C, spatial...] and layer normalisation over
// the last axis. Kernels: Kernels/normalization.cl.
//
// The forward primitives output the normalised tensor and, by default, the
// statistics the backward pass needs (batch mean and inverse standard
// deviation per channel or per row). Those statistics are saved values, as
// in PyTorch: the vjps treat them as constants and ignore their cotangents.
// A primitive built with `outputsStatistics: false` outputs only `y`, so its
// vjp is the exact gradient of everything it outputs (the conformance sweep
// checks that form against finite differences).

// MARK: Shared shape rules

/// `[N, C, spatial...]` as (N, C, product of spatial axes), after checking
/// that every per-channel operand is `[C]`. `names` label the shapes in
/// errors; index 0 is x.
private func batchNormLayout(_ op: String, _ shapes: [[Int]], names: [String]) throws -> (n: Int, c: Int, hw: Int) {
    guard shapes.count == names.count else {
        throw CloverError.shapeMismatch(op: op, shapes: shapes,
                                        reason: "expects \(names.count) inputs (\(names.joined(separator: ", ")))")
    }
    let x = shapes[0]
    guard x.count >= 2 else {
        throw CloverError.shapeMismatch(op: op, shapes: shapes, reason: "\(names[0]) must be [N, C, spatial...] (rank 2 or more)")
    }
    let c = x[1]
    for (shape, name) in zip(shapes.dropFirst(), names.dropFirst()) where shape != [c] {
        throw CloverError.shapeMismatch(
            op: op, shapes: shapes,
            reason: "\(name) must have shape [\(c)] (one value per channel of \(names[0]) \(formatShape(x))), got \(formatShape(shape))")
    }
    return (x[0], c, x[2...].reduce(1, *))
}

/// `[rows..., D]` as (rows, D), after checking that `gamma`-like operands
/// are `[D]` and row-statistics operands have the leading shape.
private func layerNormLayout(_ op: String, _ shapes: [[Int]], names: [String], rowOperands: Set<Int> = [],
                             xIndex: Int = 0) throws -> (rows: Int, d: Int) {
    guard shapes.count == names.count else {
        throw CloverError.shapeMismatch(op: op, shapes: shapes,
                                        reason: "expects \(names.count) inputs (\(names.joined(separator: ", ")))")
    }
    let x = shapes[xIndex]
    guard let d = x.last else {
        throw CloverError.shapeMismatch(op: op, shapes: shapes, reason: "\(names[xIndex]) must have at least one axis")
    }
    let lead = Array(x.dropLast())
    for (i, shape) in shapes.enumerated() where i != xIndex {
        let expected = rowOperands.contains(i) ? lead : (names[i] == "dy" ? x : [d])
        guard shape == expected else {
            throw CloverError.shapeMismatch(
                op: op, shapes: shapes,
                reason: "\(names[i]) must have shape \(formatShape(expected)) for \(names[xIndex]) \(formatShape(x)), got \(formatShape(shape))")
        }
    }
    return (lead.reduce(1, *), d)
}

// MARK: OpenCL helpers

/// How a channel's N samples are split among work-groups: about 2048
/// elements per chunk (8 per item of a 256-item group), at most 128 chunks
/// and at most one per sample, so a ResNet stem's 128·112·112 elements
/// still spread over C·128 groups. `length` is in samples.
private func channelChunks(n: Int, hw: Int) -> (count: Int, length: Int) {
    let wanted = min(max(1, (n * hw + 2047) / 2048), 128, n)
    let length = (n + wanted - 1) / wanted
    return ((n + length - 1) / length, length)
}

/// Batch norm's partial statistics of a tensor's channels, `[C, chunks, 3]`
/// (count, mean, M2 per chunk, unshifted), written by the op that produced
/// the tensor: the vector convolution kernels' epilogue (`convgemm.cl`,
/// `STATS`). ``BatchNormTraining`` merges them instead of reading the tensor.
struct ChannelStatistics {
    let partial: BufferView
    let chunks: Int
}

/// A declared convolution → batch-norm fusion: the ``Convolution2D`` given
/// this link writes its output's per-channel partial statistics as it stores
/// the output (where its kernels can), and the ``BatchNormTraining`` given
/// the same link merges them instead of a pass over that output.
///
/// The fusion is declared by whoever composes the two ops (`Conv2d`'s
/// `callAsFunction(_:normalizedBy:activation:)` in CloverNN, `Sequential`),
/// so a convolution no batch norm reads writes no statistics. The link holds
/// one hand-off at a time, for the output it was written with: a batch norm
/// of any other tensor takes its own pass, and the partials are released
/// once taken (a recomputation takes the pass too).
public final class ChannelStatisticsLink: Sendable {
    // Written by the convolution's and read by the batch norm's encoding, both
    // on the context's one driving thread; the lock only keeps misuse safe.
    private let lock = Mutex<(output: BufferView, statistics: ChannelStatistics)?>(nil)

    public init() {}

    /// Records the partials a convolution wrote for `output`.
    func deposit(_ statistics: ChannelStatistics?, for output: BufferView) {
        lock.withLock { $0 = statistics.map { (output, $0) } }
    }

    /// The partials written for `input`, once; nil when none were or they
    /// describe another tensor.
    func take(for input: BufferView) -> ChannelStatistics? {
        lock.withLock { held in
            defer { held = nil }
            guard let held, held.output.buffer === input.buffer, held.output.offset == input.offset,
                  held.output.count == input.count else { return nil }
            return held.statistics
        }
    }
}

/// The elementwise batch-norm kernels' positions per item (normalization.cl's
/// `VW`): whole float16s on CPUs, one element on GPUs.
func planeVectorWidth(_ context: OpenCLContext) -> Int {
    context.executionOptions.batchNormVectorWidth ?? (context.pathKind == .cpu ? 16 : 1)
}

/// The elementwise batch-norm kernels' defines: `VW`, and the fused
/// activation when there is one.
private func planeDefines(_ context: OpenCLContext, _ activation: BatchNormActivation = .none) -> NormalizationDefines {
    NormalizationDefines(vw: planeVectorWidth(context), act: activation.macro)
}

/// The elementwise batch-norm kernels' range (normalization.cl's
/// PLANE_CHUNK): chunks of `VW` positions of a plane along dimension 0, its
/// N·C planes folded into dimensions 1 and 2 within the portable grid limit.
private func planeRange(_ context: OpenCLContext, planes: Int, hw: Int) -> (global: [Int], local: [Int]) {
    let vw = planeVectorWidth(context)
    let chunks = (hw + vw - 1) / vw
    let local = chunks >= 64 ? 64 : powerOfTwo(atLeast: chunks)
    return ([(chunks + local - 1) / local * local, min(planes, 32_768), (planes + 32_767) / 32_768], [local, 1, 1])
}

/// Launches `bn_backward_partial` and `bn_backward_finalize`: dbeta = Σ g
/// and dgamma = invstd · Σ g · (x − mean) per channel, with g = dy · act'(z)
/// for a fused `activation` (gamma and beta recompute z; unused without one).
private func encodeBatchNormParameterGradients(_ context: OpenCLContext, n: Int, c: Int, hw: Int,
                                               dy: BufferView, x: BufferView, mean: BufferView, invstd: BufferView,
                                               gamma: BufferView, beta: BufferView,
                                               activation: BatchNormActivation = .none,
                                               dgamma: BufferView, dbeta: BufferView) throws {
    let chunks = channelChunks(n: n, hw: hw)
    let partial = try context.allocateView(count: c * chunks.count * 2)
    let reduce = try context.kernel(.bnBackwardPartial, planeDefines(context, activation))
    let local = try groupSize(reduce, context, work: (hw + planeVectorWidth(context) - 1) / planeVectorWidth(context))
    try context.launch(reduce, global: [c * chunks.count * local], local: [local], BnBackwardPartialArguments(
        N: Int32(n), C: Int32(c), HW: Int32(hw), chunkLen: Int32(chunks.length), chunks: Int32(chunks.count),
        dy: dy, x: x, mean: mean, invstd: invstd, gamma: gamma, beta: beta, partial: partial,
        sDy: LocalMemory(bytes: local * 4), sDyx: LocalMemory(bytes: local * 4)))
    let finalize = try context.kernel(.bnBackwardFinalize)
    try context.launch(finalize, global: [c], local: [64], BnBackwardFinalizeArguments(
        C: Int32(c), chunks: Int32(chunks.count), partial: partial, invstd: invstd, dgamma: dgamma, dbeta: dbeta))
}

/// Launches `bn_normalize`: y = act((x − mean)·invstd·gamma + beta).
private func encodeBatchNormalize(_ context: OpenCLContext, n: Int, c: Int, hw: Int, x: BufferView,
                                  mean: BufferView, invstd: BufferView, gamma: BufferView, beta: BufferView,
                                  activation: BatchNormActivation = .none, y: BufferView) throws {
    let kernel = try context.kernel(.bnNormalize, planeDefines(context, activation))
    let range = planeRange(context, planes: n * c, hw: hw)
    try context.launch(kernel, global: range.global, local: range.local, BnNormalizeArguments(
        N: Int32(n), C: Int32(c), HW: Int32(hw), x: x, mean: mean, invstd: invstd, gamma: gamma, beta: beta, y: y))
}

/// Launches `bn_invstd_from_var`: invstd = 1 / sqrt(var + eps), into a new view.
private func encodeInverseStd(_ context: OpenCLContext, c: Int, variance: BufferView, epsilon: Float) throws -> BufferView {
    let invstd = try context.allocateView(count: c)
    let kernel = try context.kernel(.bnInvstdFromVar)
    try context.launch(kernel, global: [c], local: [64],
                       BnInvstdFromVarArguments(C: Int32(c), eps: epsilon, var: variance, invstd: invstd))
    return invstd
}

// MARK: Batch normalisation, training

/// An activation fused after training-mode batch norm's affine map (the
/// `ACT` macro of `Kernels/normalization.cl`): `relu(bn(x))` and
/// `silu(bn(x))` in one pass forwards and one backwards.
public enum BatchNormActivation: String, CaseIterable, Sendable {
    case none, relu, silu

    /// The kernel specialisation's `ACT`; nil for `none`, so the plain
    /// kernels share one program.
    var macro: String? {
        switch self {
        case .none: return nil
        case .relu: return "ACT_RELU"
        case .silu: return "ACT_SILU"
        }
    }

    /// The activation in Double (the CPU reference).
    func referenceValue(_ z: Double) -> Double {
        switch self {
        case .none: return z
        case .relu: return max(z, 0)
        case .silu: return z / (1 + _exp(-z))
        }
    }

    /// dy · act'(z) in Double; ReLU passes dy only where z > 0.
    func referenceGradient(_ dy: Double, _ z: Double) -> Double {
        switch self {
        case .none: return dy
        case .relu: return z > 0 ? dy : 0
        case .silu:
            let s = 1 / (1 + _exp(-z))
            return dy * (s + z * s * (1 - s))
        }
    }
}

/// Training-mode batch normalisation of `x` `[N, C, spatial...]` (NCHW for
/// images; rank 2 is BatchNorm1d) with per-channel `gamma` and `beta`.
///
/// Outputs `y`, the batch mean `[C]` and the batch inverse standard
/// deviation `1/sqrt(var + epsilon)` `[C]`, where `var` is the biased
/// variance over N and the spatial axes (what PyTorch normalises with). The
/// statistics are computed with a shifted Welford/Chan reduction, never as
/// E[x²] − E[x]². A channel of a single element (N·H·W = 1) has variance 0
/// and gives `y = beta`.
///
/// The vjp is the full training-mode gradient `[dx, dgamma, dbeta]` through
/// ``BatchNormBackward``. The mean and invstd outputs are saved statistics:
/// their cotangents (`cotangents[1]`, `cotangents[2]`) are ignored. With
/// `outputsStatistics: false` the only output is `y`, and the vjp recomputes
/// the statistics.
public struct BatchNormTraining: Primitive {
    /// Added to the variance before the square root.
    public let epsilon: Float
    /// Whether the batch mean and inverse std are outputs 1 and 2.
    public let outputsStatistics: Bool
    /// The activation applied to `y` in the same pass (`none`: plain batch norm).
    public let activation: BatchNormActivation
    /// The convolution → batch-norm fusion this batch norm takes part in:
    /// the statistics the convolution wrote for `x` through it are merged
    /// instead of a pass over `x` (see ``ChannelStatisticsLink``).
    public var statisticsLink: ChannelStatisticsLink?

    public init(epsilon: Float = 1e-5, outputsStatistics: Bool = true, activation: BatchNormActivation = .none,
                statisticsLink: ChannelStatisticsLink? = nil) {
        self.epsilon = epsilon
        self.outputsStatistics = outputsStatistics
        self.activation = activation
        self.statisticsLink = statisticsLink
    }

    public var name: String { activation == .none ? "batchnorm_train" : "batchnorm_train_" + activation.rawValue }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        let l = try batchNormLayout(name, inputs, names: ["x", "gamma", "beta"])
        guard epsilon >= 0, epsilon.isFinite else {
            throw CloverError.invalidArgument(op: name, reason: "epsilon \(epsilon) must be finite and non-negative")
        }
        return outputsStatistics ? [inputs[0], [l.c], [l.c]] : [inputs[0]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let l = try batchNormLayout(name, shapes, names: ["x", "gamma", "beta"])
        let x = inputs[0], gamma = inputs[1], beta = inputs[2]
        let count = Double(l.n * l.hw)
        var y = [Float](repeating: 0, count: x.count)
        var means = [Float](repeating: 0, count: l.c), invstds = [Float](repeating: 0, count: l.c)
        for c in 0..<l.c {
            // Two passes in Double: the mean, then squared deviations from it.
            var total = 0.0
            for n in 0..<l.n {
                for s in 0..<l.hw { total += Double(x[(n * l.c + c) * l.hw + s]) }
            }
            let mean = total / count
            var squares = 0.0
            for n in 0..<l.n {
                for s in 0..<l.hw {
                    let d = Double(x[(n * l.c + c) * l.hw + s]) - mean
                    squares += d * d
                }
            }
            let invstd = 1 / _sqrt(squares / count + Double(epsilon))
            for n in 0..<l.n {
                for s in 0..<l.hw {
                    let i = (n * l.c + c) * l.hw + s
                    let z = (Double(x[i]) - mean) * invstd * Double(gamma[c]) + Double(beta[c])
                    y[i] = Float(activation.referenceValue(z))
                }
            }
            means[c] = Float(mean)
            invstds[c] = Float(invstd)
        }
        return outputsStatistics ? [y, means, invstds] : [y]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let l = try batchNormLayout(name, inputs.map(\.shape), names: ["x", "gamma", "beta"])
        try requireInt32(name, [inputs[0].shape], context, family: "normalisation")
        let x = inputs[0].view
        let mean = outputsStatistics ? outputs[1].view : try context.allocateView(count: l.c)
        let invstd = outputsStatistics ? outputs[2].view : try context.allocateView(count: l.c)
        let partial: BufferView, chunkCount: Int, shifted: Bool
        if let given = statisticsLink?.take(for: x), given.partial.count == l.c * given.chunks * 3 {
            // Written by the convolution that produced x (its epilogue, declared through the link):
            // no pass over x here. The partials are released once merged (a recomputation takes the
            // pass below), so they do not live as long as x, which backward keeps.
            (partial, chunkCount, shifted) = (given.partial, given.chunks, false)
        } else {
            let chunks = channelChunks(n: l.n, hw: l.hw)
            (partial, chunkCount, shifted) = (try context.allocateView(count: l.c * chunks.count * 3), chunks.count, true)
            let stats = try context.kernel(.bnStatsPartial, planeDefines(context))
            let local = try groupSize(stats, context, work: (l.hw + planeVectorWidth(context) - 1) / planeVectorWidth(context))
            try context.launch(stats, global: [l.c * chunks.count * local], local: [local], BnStatsPartialArguments(
                N: Int32(l.n), C: Int32(l.c), HW: Int32(l.hw), chunkLen: Int32(chunks.length),
                chunks: Int32(chunks.count), x: x, partial: partial, sCount: LocalMemory(bytes: local * 4),
                sMean: LocalMemory(bytes: local * 4), sM2: LocalMemory(bytes: local * 4)))
        }
        let finalize = try context.kernel(.bnStatsFinalize)
        try context.launch(finalize, global: [l.c], local: [64], BnStatsFinalizeArguments(
            C: Int32(l.c), HW: Int32(l.hw), chunks: Int32(chunkCount), eps: epsilon, shifted: Int32(shifted ? 1 : 0),
            x: x, partial: partial, mean: mean, invstd: invstd))
        try encodeBatchNormalize(context, n: l.n, c: l.c, hw: l.hw, x: x, mean: mean, invstd: invstd,
                                 gamma: inputs[1].view, beta: inputs[2].view, activation: activation,
                                 y: outputs[0].view)
    }

    /// `[dx, dgamma, dbeta]` from `cotangents[0]` only (see the type's note).
    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        try vjp(inputs: inputs, outputs: outputs, cotangents: cotangents, request: .all(inputs.count))
    }

    /// As the plain vjp, but without the dx kernel when x needs no gradient
    /// (dgamma and dbeta are its ingredients, so they are always computed).
    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor], request: GradientRequest) throws -> [Tensor?] {
        let statistics = outputsStatistics
            ? Array(outputs[1...2])
            : Array(try apply(BatchNormTraining(epsilon: epsilon, outputsStatistics: true), inputs)[1...2])
        // A fused activation's gradient needs the pre-activation, which the
        // backward recomputes from x, the statistics, gamma and beta.
        let fused = activation == .none ? [] : [inputs[2]]
        let parameterDestinations = [request.destination(1), request.destination(2)]
        let inputGradient = request.needs(0)
        let grads = try apply(BatchNormBackward(computesInputGradient: inputGradient, activation: activation),
                              [cotangents[0], inputs[0], inputs[1], statistics[0], statistics[1]] + fused,
                              into: (inputGradient ? [nil] : []) + parameterDestinations)
        let all: [Tensor?] = inputGradient ? grads : [nil] + grads
        return all.enumerated().map { i, g in request.needs(i) ? g : nil }
    }
}

/// The training-mode batch-norm gradient. Inputs `dy`, `x`, `gamma`, the
/// saved batch `mean` and `invstd`; outputs, with `x̂ = (x − mean)·invstd`
/// and M = N·H·W:
/// - `dbeta = Σ dy`, `dgamma = Σ dy·x̂` (sums over N and the spatial axes),
/// - `dx = gamma·invstd·(dy − (dbeta + x̂·dgamma)/M)`,
/// the gradient through the batch statistics included.
public struct BatchNormBackward: Primitive {
    /// Whether `dx` is computed and is the first output; when false the
    /// outputs are `[dgamma, dbeta]` and the dx kernel never runs (a batch
    /// norm straight on data).
    public let computesInputGradient: Bool
    /// The activation fused into the forward pass: `dy` is then the
    /// gradient of its output, and a sixth input `beta` lets the kernels
    /// recompute the pre-activation `z = x̂·gamma + beta` for `act'(z)`.
    public let activation: BatchNormActivation

    public init(computesInputGradient: Bool = true, activation: BatchNormActivation = .none) {
        self.computesInputGradient = computesInputGradient
        self.activation = activation
    }
    public var name: String { activation == .none ? "batchnorm_backward" : "batchnorm_backward_" + activation.rawValue }
    private static let names = ["dy", "x", "gamma", "mean", "invstd", "beta"]

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        let expected = activation == .none ? 5 : 6
        guard inputs.count == expected, inputs[0] == inputs[1] else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs,
                                            reason: "expects dy and x of the same shape, then gamma, mean, invstd"
                                                + (activation == .none ? "" : " and beta"))
        }
        let l = try batchNormLayout(name, Array(inputs.dropFirst().prefix(4)), names: Array(Self.names[1...4]))
        if expected == 6, inputs[5] != [l.c] {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "beta must have shape [\(l.c)]")
        }
        return computesInputGradient ? [inputs[1], [l.c], [l.c]] : [[l.c], [l.c]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let l = try batchNormLayout(name, Array(shapes.dropFirst().prefix(4)), names: Array(Self.names[1...4]))
        let x = inputs[1], gamma = inputs[2], mean = inputs[3], invstd = inputs[4]
        let count = Double(l.n * l.hw)
        // The gradient reaching the affine map: dy through act'(z).
        var dy = inputs[0]
        if activation != .none {
            let beta = inputs[5]
            for c in 0..<l.c {
                for n in 0..<l.n {
                    for s in 0..<l.hw {
                        let i = (n * l.c + c) * l.hw + s
                        let z = (Double(x[i]) - Double(mean[c])) * Double(invstd[c]) * Double(gamma[c]) + Double(beta[c])
                        dy[i] = Float(activation.referenceGradient(Double(inputs[0][i]), z))
                    }
                }
            }
        }
        var dx = [Float](repeating: 0, count: x.count)
        var dgamma = [Float](repeating: 0, count: l.c), dbeta = [Float](repeating: 0, count: l.c)
        for c in 0..<l.c {
            let mu = Double(mean[c]), inv = Double(invstd[c])
            var sumDy = 0.0, sumDyXhat = 0.0
            for n in 0..<l.n {
                for s in 0..<l.hw {
                    let i = (n * l.c + c) * l.hw + s
                    sumDy += Double(dy[i])
                    sumDyXhat += Double(dy[i]) * (Double(x[i]) - mu) * inv
                }
            }
            for n in 0..<l.n {
                for s in 0..<l.hw {
                    let i = (n * l.c + c) * l.hw + s
                    let xhat = (Double(x[i]) - mu) * inv
                    dx[i] = Float(Double(gamma[c]) * inv * (Double(dy[i]) - (sumDy + xhat * sumDyXhat) / count))
                }
            }
            dgamma[c] = Float(sumDyXhat)
            dbeta[c] = Float(sumDy)
        }
        return computesInputGradient ? [dx, dgamma, dbeta] : [dgamma, dbeta]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let l = try batchNormLayout(name, Array(inputs.dropFirst().prefix(4).map(\.shape)), names: Array(Self.names[1...4]))
        try requireInt32(name, [inputs[0].shape], context, family: "normalisation")
        let dy = inputs[0].view, x = inputs[1].view, gamma = inputs[2].view
        let mean = inputs[3].view, invstd = inputs[4].view
        // Without a fused activation the kernels never read beta: gamma stands in.
        let beta = activation == .none ? gamma : inputs[5].view
        let first = computesInputGradient ? 1 : 0
        let dgamma = outputs[first].view, dbeta = outputs[first + 1].view
        try encodeBatchNormParameterGradients(context, n: l.n, c: l.c, hw: l.hw, dy: dy, x: x, mean: mean,
                                              invstd: invstd, gamma: gamma, beta: beta, activation: activation,
                                              dgamma: dgamma, dbeta: dbeta)
        guard computesInputGradient else { return }
        let dx = outputs[0].view
        let kernel = try context.kernel(.bnBackwardDx, planeDefines(context, activation))
        let range = planeRange(context, planes: l.n * l.c, hw: l.hw)
        try context.launch(kernel, global: range.global, local: range.local, BnBackwardDxArguments(
            N: Int32(l.n), C: Int32(l.c), HW: Int32(l.hw), dy: dy, x: x, mean: mean, invstd: invstd,
            gamma: gamma, beta: beta, dgamma: dgamma, dbeta: dbeta, dx: dx))
    }
}

// MARK: Batch normalisation, inference

/// Eval-mode batch normalisation with running statistics: inputs `x`,
/// `gamma`, `beta`, `runningMean` `[C]` and `runningVar` `[C]`; output
/// `y = (x − runningMean)/sqrt(runningVar + epsilon)·gamma + beta`.
///
/// The vjp gives `[dx, dgamma, dbeta, nil, nil]` through
/// ``BatchNormInferenceBackward`` (fine-tuning in eval mode): the running
/// statistics are constants, not trained.
public struct BatchNormInference: Primitive {
    /// Added to the running variance before the square root.
    public let epsilon: Float
    public init(epsilon: Float = 1e-5) { self.epsilon = epsilon }
    public var name: String { "batchnorm_inference" }
    fileprivate static let names = ["x", "gamma", "beta", "running_mean", "running_var"]

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        _ = try batchNormLayout(name, inputs, names: Self.names)
        guard epsilon >= 0, epsilon.isFinite else {
            throw CloverError.invalidArgument(op: name, reason: "epsilon \(epsilon) must be finite and non-negative")
        }
        return [inputs[0]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let l = try batchNormLayout(name, shapes, names: Self.names)
        let x = inputs[0], gamma = inputs[1], beta = inputs[2], rm = inputs[3], rv = inputs[4]
        var y = [Float](repeating: 0, count: x.count)
        for n in 0..<l.n {
            for c in 0..<l.c {
                let inv = 1 / _sqrt(Double(rv[c]) + Double(epsilon))
                for s in 0..<l.hw {
                    let i = (n * l.c + c) * l.hw + s
                    y[i] = Float((Double(x[i]) - Double(rm[c])) * inv * Double(gamma[c]) + Double(beta[c]))
                }
            }
        }
        return [y]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let l = try batchNormLayout(name, inputs.map(\.shape), names: Self.names)
        try requireInt32(name, [inputs[0].shape], context, family: "normalisation")
        let invstd = try encodeInverseStd(context, c: l.c, variance: inputs[4].view, epsilon: epsilon)
        try encodeBatchNormalize(context, n: l.n, c: l.c, hw: l.hw, x: inputs[0].view, mean: inputs[3].view,
                                 invstd: invstd, gamma: inputs[1].view, beta: inputs[2].view, y: outputs[0].view)
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        try vjp(inputs: inputs, outputs: outputs, cotangents: cotangents, request: .all(inputs.count))
    }

    /// All three gradients come from one kernel; the request decides only
    /// where dgamma and dbeta land and which are returned.
    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor], request: GradientRequest) throws -> [Tensor?] {
        let g = try apply(BatchNormInferenceBackward(epsilon: epsilon),
                          [cotangents[0], inputs[0], inputs[1], inputs[3], inputs[4]],
                          into: [nil, request.destination(1), request.destination(2)])
        return [g[0], g[1], g[2], nil, nil].enumerated().map { i, g in request.needs(i) ? g : nil }
    }
}

/// The eval-mode batch-norm gradient. Inputs `dy`, `x`, `gamma`,
/// `runningMean`, `runningVar`; outputs, with `invstd = 1/sqrt(runningVar +
/// epsilon)` and `x̂ = (x − runningMean)·invstd`: `dx = dy·gamma·invstd`,
/// `dgamma = Σ dy·x̂`, `dbeta = Σ dy`.
public struct BatchNormInferenceBackward: Primitive {
    /// The forward op's epsilon.
    public let epsilon: Float
    public init(epsilon: Float = 1e-5) { self.epsilon = epsilon }
    public var name: String { "batchnorm_inference_backward" }
    private static let names = ["dy", "x", "gamma", "running_mean", "running_var"]

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 5, inputs[0] == inputs[1] else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs,
                                            reason: "expects dy and x of the same shape, then gamma, running_mean, running_var")
        }
        let l = try batchNormLayout(name, Array(inputs.dropFirst()), names: Array(Self.names.dropFirst()))
        return [inputs[1], [l.c], [l.c]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let l = try batchNormLayout(name, Array(shapes.dropFirst()), names: Array(Self.names.dropFirst()))
        let dy = inputs[0], x = inputs[1], gamma = inputs[2], rm = inputs[3], rv = inputs[4]
        var dx = [Float](repeating: 0, count: x.count)
        var dgamma = [Double](repeating: 0, count: l.c), dbeta = [Double](repeating: 0, count: l.c)
        for n in 0..<l.n {
            for c in 0..<l.c {
                let inv = 1 / _sqrt(Double(rv[c]) + Double(epsilon))
                for s in 0..<l.hw {
                    let i = (n * l.c + c) * l.hw + s
                    dx[i] = Float(Double(dy[i]) * Double(gamma[c]) * inv)
                    dgamma[c] += Double(dy[i]) * (Double(x[i]) - Double(rm[c])) * inv
                    dbeta[c] += Double(dy[i])
                }
            }
        }
        return [dx, dgamma.map { Float($0) }, dbeta.map { Float($0) }]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let l = try batchNormLayout(name, Array(inputs.dropFirst().map(\.shape)), names: Array(Self.names.dropFirst()))
        try requireInt32(name, [inputs[0].shape], context, family: "normalisation")
        let dy = inputs[0].view, x = inputs[1].view, gamma = inputs[2].view, rm = inputs[3].view
        let dx = outputs[0].view
        let invstd = try encodeInverseStd(context, c: l.c, variance: inputs[4].view, epsilon: epsilon)
        try encodeBatchNormParameterGradients(context, n: l.n, c: l.c, hw: l.hw, dy: dy, x: x, mean: rm,
                                              invstd: invstd, gamma: gamma, beta: gamma,
                                              dgamma: outputs[1].view, dbeta: outputs[2].view)
        let kernel = try context.kernel(.bnInferenceBackwardDx, planeDefines(context))
        let range = planeRange(context, planes: l.n * l.c, hw: l.hw)
        try context.launch(kernel, global: range.global, local: range.local, BnInferenceBackwardDxArguments(
            N: Int32(l.n), C: Int32(l.c), HW: Int32(l.hw), dy: dy, gamma: gamma, invstd: invstd, dx: dx))
    }
}

// MARK: Running statistics

/// The running-statistics update after a training step, with PyTorch's
/// semantics. Inputs: `runningMean`, `runningVar`, and the step's batch
/// `mean` and `invstd` (outputs 1 and 2 of ``BatchNormTraining``, all `[C]`).
/// Outputs the new running mean `(1 − m)·runningMean + m·mean` and the new
/// running variance `(1 − m)·runningVar + m·var·n/(n − 1)`, the unbiased
/// batch variance, with n = ``count`` (N·H·W).
///
/// The batch variance is recovered as `1/invstd² − epsilon` (so `epsilon`
/// must be the one the training step used), accurate to a few float ulps of
/// `var + epsilon` and clamped at 0. With n = 1 there is no unbiased
/// estimate (PyTorch refuses to train on it); this op then uses the biased
/// variance, which is 0, instead of dividing by zero. No gradient.
public struct BatchNormRunningUpdate: Primitive {
    /// The weight of the new batch statistics (PyTorch's default is 0.1).
    public let momentum: Float
    /// The epsilon the training step's invstd was computed with.
    public let epsilon: Float
    /// Elements per channel in the batch that produced the statistics (N·H·W).
    public let count: Int

    public init(momentum: Float = 0.1, epsilon: Float = 1e-5, count: Int) {
        self.momentum = momentum
        self.epsilon = epsilon
        self.count = count
    }

    public var name: String { "batchnorm_running_update" }
    private static let names = ["running_mean", "running_var", "mean", "invstd"]

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 4, let c = inputs.first?.first, inputs[0] == [c] else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs,
                                            reason: "expects running_mean, running_var, mean, invstd, each of shape [C]")
        }
        for (shape, label) in zip(inputs, Self.names) where shape != [c] {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "\(label) must have shape [\(c)], got \(formatShape(shape))")
        }
        guard count >= 1 else {
            throw CloverError.invalidArgument(op: name, reason: "count \(count) must be at least 1")
        }
        guard momentum.isFinite, epsilon.isFinite, epsilon >= 0 else {
            throw CloverError.invalidArgument(op: name, reason: "momentum \(momentum) and epsilon \(epsilon) must be finite")
        }
        return [[c], [c]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let rm = inputs[0], rv = inputs[1], mean = inputs[2], invstd = inputs[3]
        let m = Double(momentum), n = Double(count)
        var newMean = [Float](repeating: 0, count: rm.count), newVar = [Float](repeating: 0, count: rm.count)
        for c in 0..<rm.count {
            let inv = Double(invstd[c])
            let biased = Swift.max(1 / (inv * inv) - Double(epsilon), 0)
            let unbiased = count > 1 ? biased * n / (n - 1) : biased
            newMean[c] = Float((1 - m) * Double(rm[c]) + m * Double(mean[c]))
            newVar[c] = Float((1 - m) * Double(rv[c]) + m * unbiased)
        }
        return [newMean, newVar]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let rm = inputs[0].view, rv = inputs[1].view, mean = inputs[2].view, invstd = inputs[3].view
        let newMean = outputs[0].view, newVar = outputs[1].view
        let kernel = try context.kernel(.bnRunningUpdate)
        try context.launch(kernel, global: [rm.count], local: [64], BnRunningUpdateArguments(
            C: Int32(rm.count), momentum: momentum, eps: epsilon, count: Float(count),
            runningMean: rm, runningVar: rv, batchMean: mean, batchInvstd: invstd, newMean: newMean, newVar: newVar))
    }
}

// MARK: Layer normalisation

/// Layer normalisation over the last axis of `x` `[rows..., D]` with `gamma`
/// and `beta` of shape `[D]`.
///
/// Outputs `y`, the per-row mean and the per-row inverse standard deviation
/// `1/sqrt(var + epsilon)` (biased variance), both of the leading shape
/// `x.shape.dropLast()` (`[]` for a rank-1 `x`). The vjp gives `[dx, dgamma,
/// dbeta]` through ``LayerNormalizationBackward``; the statistics outputs are saved
/// values whose cotangents are ignored. With `outputsStatistics: false` the
/// only output is `y`.
public struct LayerNormalization: Primitive {
    /// Added to the variance before the square root.
    public let epsilon: Float
    /// Whether the row mean and inverse std are outputs 1 and 2.
    public let outputsStatistics: Bool

    public init(epsilon: Float = 1e-5, outputsStatistics: Bool = true) {
        self.epsilon = epsilon
        self.outputsStatistics = outputsStatistics
    }

    public var name: String { "layernorm" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        _ = try layerNormLayout(name, inputs, names: ["x", "gamma", "beta"])
        guard epsilon >= 0, epsilon.isFinite else {
            throw CloverError.invalidArgument(op: name, reason: "epsilon \(epsilon) must be finite and non-negative")
        }
        let lead = Array(inputs[0].dropLast())
        return outputsStatistics ? [inputs[0], lead, lead] : [inputs[0]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let l = try layerNormLayout(name, shapes, names: ["x", "gamma", "beta"])
        let x = inputs[0], gamma = inputs[1], beta = inputs[2]
        var y = [Float](repeating: 0, count: x.count)
        var means = [Float](repeating: 0, count: l.rows), invstds = [Float](repeating: 0, count: l.rows)
        for r in 0..<l.rows {
            var total = 0.0
            for d in 0..<l.d { total += Double(x[r * l.d + d]) }
            let mean = total / Double(l.d)
            var squares = 0.0
            for d in 0..<l.d {
                let e = Double(x[r * l.d + d]) - mean
                squares += e * e
            }
            let invstd = 1 / _sqrt(squares / Double(l.d) + Double(epsilon))
            for d in 0..<l.d {
                y[r * l.d + d] = Float((Double(x[r * l.d + d]) - mean) * invstd * Double(gamma[d]) + Double(beta[d]))
            }
            means[r] = Float(mean)
            invstds[r] = Float(invstd)
        }
        return outputsStatistics ? [y, means, invstds] : [y]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let l = try layerNormLayout(name, inputs.map(\.shape), names: ["x", "gamma", "beta"])
        try requireInt32(name, [inputs[0].shape], context, family: "normalisation")
        let x = inputs[0].view, gamma = inputs[1].view, beta = inputs[2].view, y = outputs[0].view
        let mean = outputsStatistics ? outputs[1].view : try context.allocateView(count: l.rows)
        let invstd = outputsStatistics ? outputs[2].view : try context.allocateView(count: l.rows)
        let kernel = try context.kernel(.layernormForward)
        let local = try groupSize(kernel, context, work: l.d)
        try context.launch(kernel, global: [l.rows * local], local: [local], LayernormForwardArguments(
            rows: Int32(l.rows), D: Int32(l.d), eps: epsilon, x: x, gamma: gamma, beta: beta, y: y,
            mean: mean, invstd: invstd, scratch: LocalMemory(bytes: local * 4)))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        try vjp(inputs: inputs, outputs: outputs, cotangents: cotangents, request: .all(inputs.count))
    }

    /// `[dx, dgamma, dbeta]` from `cotangents[0]` only (see the type's note),
    /// dgamma and dbeta where the request offers.
    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor], request: GradientRequest) throws -> [Tensor?] {
        let statistics = outputsStatistics
            ? Array(outputs[1...2])
            : Array(try apply(LayerNormalization(epsilon: epsilon, outputsStatistics: true), inputs)[1...2])
        return try apply(LayerNormalizationBackward(), [cotangents[0], inputs[0], inputs[1], statistics[0], statistics[1]],
                         into: [nil, request.destination(1), request.destination(2)])
            .enumerated().map { i, g in request.needs(i) ? g : nil }
    }
}

/// The layer-norm gradient. Inputs `dy`, `x`, `gamma`, the saved row `mean`
/// and `invstd`; outputs, with `x̂ = (x − mean)·invstd` and `g = dy·gamma`:
/// `dx = invstd·(g − mean_D(g) − x̂·mean_D(g·x̂))` per row, and `dgamma = Σ
/// dy·x̂`, `dbeta = Σ dy` over the rows.
public struct LayerNormalizationBackward: Primitive {
    public init() {}
    public var name: String { "layernorm_backward" }
    private static let names = ["dy", "x", "gamma", "mean", "invstd"]

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        let l = try layerNormLayout(name, inputs, names: Self.names, rowOperands: [3, 4], xIndex: 1)
        return [inputs[1], [l.d], [l.d]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let l = try layerNormLayout(name, shapes, names: Self.names, rowOperands: [3, 4], xIndex: 1)
        let dy = inputs[0], x = inputs[1], gamma = inputs[2], mean = inputs[3], invstd = inputs[4]
        var dx = [Float](repeating: 0, count: x.count)
        var dgamma = [Double](repeating: 0, count: l.d), dbeta = [Double](repeating: 0, count: l.d)
        for r in 0..<l.rows {
            let mu = Double(mean[r]), inv = Double(invstd[r])
            var sumG = 0.0, sumGXhat = 0.0
            for d in 0..<l.d {
                let i = r * l.d + d
                let g = Double(dy[i]) * Double(gamma[d])
                sumG += g
                sumGXhat += g * (Double(x[i]) - mu) * inv
                dgamma[d] += Double(dy[i]) * (Double(x[i]) - mu) * inv
                dbeta[d] += Double(dy[i])
            }
            let n = Double(l.d)
            for d in 0..<l.d {
                let i = r * l.d + d
                let xhat = (Double(x[i]) - mu) * inv
                dx[i] = Float(inv * (Double(dy[i]) * Double(gamma[d]) - sumG / n - xhat * sumGXhat / n))
            }
        }
        return [dx, dgamma.map { Float($0) }, dbeta.map { Float($0) }]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let l = try layerNormLayout(name, inputs.map(\.shape), names: Self.names, rowOperands: [3, 4], xIndex: 1)
        try requireInt32(name, [inputs[0].shape], context, family: "normalisation")
        let dy = inputs[0].view, x = inputs[1].view, gamma = inputs[2].view
        let mean = inputs[3].view, invstd = inputs[4].view
        let dx = outputs[0].view, dgamma = outputs[1].view, dbeta = outputs[2].view
        let rowKernel = try context.kernel(.layernormBackwardDx)
        let local = try groupSize(rowKernel, context, work: l.d)
        try context.launch(rowKernel, global: [l.rows * local], local: [local], LayernormBackwardDxArguments(
            rows: Int32(l.rows), D: Int32(l.d), dy: dy, x: x, gamma: gamma, mean: mean, invstd: invstd, dx: dx,
            scratch: LocalMemory(bytes: local * 4)))
        // Column sums over rows: LX columns (coalesced) by LY rows per group.
        let columnKernel = try context.kernel(.layernormBackwardParams)
        let limit = try groupSize(columnKernel, context, work: 256)
        let lx = min(powerOfTwo(atLeast: l.d), 64, limit)
        let ly = max(1, min(limit / lx, powerOfTwo(atLeast: l.rows)))
        let tiles = (l.d + lx - 1) / lx
        try context.launch(columnKernel, global: [tiles * lx * ly], local: [lx * ly], LayernormBackwardParamsArguments(
            rows: Int32(l.rows), D: Int32(l.d), lxSize: Int32(lx), dy: dy, x: x, mean: mean, invstd: invstd,
            dgamma: dgamma, dbeta: dbeta,
            sGamma: LocalMemory(bytes: lx * ly * 4), sBeta: LocalMemory(bytes: lx * ly * 4)))
    }
}

// MARK: Convenience

/// Training-mode batch normalisation, optionally followed by a fused
/// `activation`; see ``BatchNormTraining``.
///
/// With `statisticsLink`, the statistics a convolution wrote for `x` through
/// the same link are merged instead of a pass over `x`.
public func batchNorm(_ x: Tensor, gamma: Tensor, beta: Tensor, epsilon: Float = 1e-5,
                      activation: BatchNormActivation = .none,
                      statisticsLink: ChannelStatisticsLink? = nil) throws -> (y: Tensor, mean: Tensor, invstd: Tensor) {
    let out = try apply(BatchNormTraining(epsilon: epsilon, activation: activation, statisticsLink: statisticsLink),
                        [x, gamma, beta])
    return (out[0], out[1], out[2])
}

/// Eval-mode batch normalisation with running statistics; see ``BatchNormInference``.
public func batchNormInference(_ x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor,
                               runningVariance: Tensor, epsilon: Float = 1e-5) throws -> Tensor {
    try apply1(BatchNormInference(epsilon: epsilon), [x, gamma, beta, runningMean, runningVariance])
}

/// New running mean and variance after a training step; see ``BatchNormRunningUpdate``.
public func updateRunningStatistics(runningMean: Tensor, runningVariance: Tensor, batchMean: Tensor,
                                    batchInvstd: Tensor, count: Int, momentum: Float = 0.1,
                                    epsilon: Float = 1e-5) throws -> (mean: Tensor, variance: Tensor) {
    let out = try apply(BatchNormRunningUpdate(momentum: momentum, epsilon: epsilon, count: count),
                        [runningMean, runningVariance, batchMean, batchInvstd])
    return (out[0], out[1])
}

/// Layer normalisation over the last axis; see ``LayerNormalization``.
public func layerNorm(_ x: Tensor, gamma: Tensor, beta: Tensor,
                      epsilon: Float = 1e-5) throws -> (y: Tensor, mean: Tensor, invstd: Tensor) {
    let out = try apply(LayerNormalization(epsilon: epsilon), [x, gamma, beta])
    return (out[0], out[1], out[2])
}
