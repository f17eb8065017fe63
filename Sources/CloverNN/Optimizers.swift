import Clover
import CloverRuntime

/// The parameters an optimiser updates, gathered into one flat arena per
/// quantity (values, gradients, states) on OpenCL devices so that a step is
/// one kernel launch for the whole model.
///
/// Building the arena moves each parameter's data into its slice (a device
/// copy) and rebinds the ``Parameter`` to a view of it, so layers keep
/// working unchanged. Gradients live in a ``GradientArena`` that backward
/// accumulates into directly, so a step gathers nothing. On the CPU
/// reference device there are no buffers to share; each parameter is
/// updated with its own reference step.
final class ParameterArena {
    let parameters: [Parameter]
    let segments: ParameterSegments
    let device: Device
    /// Flat parameter values (OpenCL only).
    let values: Tensor?
    /// Flat gradients (OpenCL only), written by backward.
    let gradientArena: GradientArena?
    var gradients: Tensor? { gradientArena?.gradients }
    let offsets: [Int]

    init(parameters: [Parameter], decays: [Bool]) throws {
        guard let first = parameters.first else {
            throw CloverError.invalidArgument(op: "optimizer", reason: "no parameters to optimise")
        }
        self.parameters = parameters
        device = first.tensor.device
        segments = ParameterSegments(sizes: parameters.map(\.tensor.count), decays: decays)
        var running = 0
        offsets = parameters.map { p in defer { running += p.tensor.count }; return running }
        guard let (flat, parts) = try Tensor.packed(parameters.map(\.tensor), op: "optimizer") else {
            values = nil
            gradientArena = nil
            return
        }
        for (p, part) in zip(parameters, parts) { p.rebind(part) }
        values = flat
        gradientArena = try GradientArena(binding: parameters.map(\.tensor))
    }

    /// A zero-initialised state arena (momentum, Adam moments).
    func makeState() throws -> [Tensor] {
        // Resident: state lives for the whole run, so it must not take the
        // pooled buffers that each step's temporaries reuse.
        if values != nil { return [try Tensor.zeros([segments.totalCount], on: device, resident: true)] }
        return try parameters.map { try Tensor.zeros($0.tensor.shape, on: device, resident: true) }
    }

    /// Makes the gradient arena complete before a step: backward already
    /// wrote each gradient into its slice, so this only zeroes the slices of
    /// parameters that got no gradient (and copies one assigned by hand).
    func gatherGradients() throws {
        try gradientArena?.collect(parameters.map(\.tensor))
    }

    /// Each parameter's gradient, zeros where it got none (the reference
    /// device's path, which has no arena).
    func gradientsOrZeros() throws -> [Tensor] {
        try parameters.map { try $0.tensor.grad ?? Tensor.zeros($0.shape, on: $0.tensor.device) }
    }
}

// Gradients that land where the optimiser reads them. A `GradientArena` is
// one flat device buffer with a slice per leaf; each leaf's
// `gradientDestination` is a view of its slice. `backward` writes a leaf's
// first gradient after `zeroGrad()` into that view (directly, when autograd
// offers the slice to the op's vjp and the vjp writes there, otherwise with
// one copy) and adds
// later ones in place, so the fused optimiser step reads the arena with no
// gather. A nil `grad` is what marks a slice stale: nothing is zero-filled
// up front, and only leaves that got no gradient at all are zeroed, by
// `collect`, one fill per run of adjacent slices.

/// A flat device buffer holding the gradients of several leaf tensors back
/// to back, which `Tensor.backward(_:)` accumulates into directly.
///
/// Binding a leaf sets its gradient destination to a view of its slice. After
/// a backward pass the leaf's ``Tensor/grad`` is that view; ``collect(_:)``
/// then makes the arena complete (zeros for leaves without a gradient, a copy
/// for a gradient assigned by hand) before an optimiser reads ``gradients``.
public final class GradientArena {
    /// The flat gradients, `[total]`.
    public let gradients: Tensor
    /// Each leaf's slice, shaped like the leaf.
    let destinations: [Tensor]
    /// Element offset of each slice in ``gradients``.
    let offsets: [Int]

    /// Allocates the arena on the leaves' OpenCL device and binds each leaf's
    /// gradient destination to its slice, in order.
    ///
    /// - Throws: when the leaves are not all on one OpenCL device.
    public init(binding leaves: [Tensor]) throws {
        guard let device = leaves.first?.device, let context = device.openCL else {
            throw CloverError.invalidArgument(op: "gradient arena", reason: "needs leaves on an OpenCL device")
        }
        if leaves.contains(where: { $0.device !== device }) {
            throw CloverError.deviceMismatch(op: "gradient arena", devices: leaves.map { $0.device.description })
        }
        var running = 0
        offsets = leaves.map { leaf in defer { running += leaf.count }; return running }
        let arena = try context.allocateView(count: running, resident: true)
        gradients = try Tensor(shape: [running], view: arena, on: device)
        destinations = try zip(leaves, offsets).map { leaf, offset in
            try Tensor(shape: leaf.shape, view: arena.slice(offset: offset, count: leaf.count), on: device)
        }
        for (leaf, destination) in zip(leaves, destinations) {
            leaf.grad = nil
            leaf.gradientDestination = destination
        }
    }

    /// Completes the arena from `leaves` (the bound leaves, in binding order,
    /// or tensors that replaced them): a gradient already in its slice costs
    /// nothing, one held elsewhere is copied in, and slices of leaves without
    /// a gradient are zero-filled, one fill per run of adjacent slices.
    public func collect(_ leaves: [Tensor]) throws {
        guard leaves.count == destinations.count, let context = gradients.device.openCL else {
            throw CloverError.invalidArgument(op: "gradient arena", reason: "\(leaves.count) leaves for \(destinations.count) slices")
        }
        let arena = gradients.view
        var zeroStart: Int?
        func flushZeros(upTo end: Int) throws {
            guard let start = zeroStart else { return }
            try fill(arena.slice(offset: start, count: end - start), with: 0, on: context)
            zeroStart = nil
        }
        for (i, leaf) in leaves.enumerated() {
            guard leaf.count == destinations[i].count else {
                throw CloverError.shapeMismatch(op: "gradient arena", shapes: [destinations[i].shape, leaf.shape],
                                                reason: "leaf \(i) does not fit its slice")
            }
            if let g = leaf.grad {
                try flushZeros(upTo: offsets[i])
                if !g.sharesData(with: destinations[i]) {
                    try context.copy(from: g.view, to: destinations[i].view, count: g.count)
                }
            } else if zeroStart == nil {
                zeroStart = offsets[i]
            }
        }
        try flushZeros(upTo: gradients.count)
    }
}

/// A learning-rate schedule: the rate for an epoch (0-based) and the
/// fraction of it done.
public protocol LearningRateSchedule {
    func learningRate(epoch: Int, progress: Double) -> Float
}

/// Multiplies the base rate by `gamma` at each milestone epoch (PyTorch's
/// `MultiStepLR`), e.g. ResNet's ×0.1 at epochs 100 and 150.
public struct StepSchedule: LearningRateSchedule {
    public var base: Float
    public var milestones: [Int]
    public var gamma: Float
    public init(base: Float, milestones: [Int], gamma: Float = 0.1) {
        self.base = base
        self.milestones = milestones
        self.gamma = gamma
    }
    public func learningRate(epoch: Int, progress: Double) -> Float {
        milestones.filter { epoch >= $0 }.reduce(base) { r, _ in r * gamma }
    }
}

/// Cosine annealing from `base` to `minimum` over `epochs`, after an
/// optional linear warm-up of `warmupEpochs`.
public struct CosineSchedule: LearningRateSchedule {
    public var base: Float
    public var epochs: Int
    public var minimum: Float
    public var warmupEpochs: Double
    public init(base: Float, epochs: Int, minimum: Float = 0, warmupEpochs: Double = 0) {
        self.base = base
        self.epochs = epochs
        self.minimum = minimum
        self.warmupEpochs = warmupEpochs
    }
    public func learningRate(epoch: Int, progress: Double) -> Float {
        let t = Double(epoch) + progress
        if t < warmupEpochs { return base * Float(t / warmupEpochs) }
        let span = max(Double(epochs) - warmupEpochs, 1e-9)
        let x = min(max((t - warmupEpochs) / span, 0), 1)
        return minimum + (base - minimum) * Float(0.5 * (1 + cosPi(x)))
    }
}

/// A linear warm-up to `base` over `warmupEpochs`, then constant.
public struct WarmupSchedule: LearningRateSchedule {
    public var base: Float
    public var warmupEpochs: Double
    public init(base: Float, warmupEpochs: Double) {
        self.base = base
        self.warmupEpochs = warmupEpochs
    }
    public func learningRate(epoch: Int, progress: Double) -> Float {
        let t = Double(epoch) + progress
        return t < warmupEpochs ? base * Float(t / warmupEpochs) : base
    }
}

/// cos(πx) by its Taylor series around the nearest multiple of π/2 would be
/// overkill; the schedule only needs a smooth, exact-at-ends curve.
private func cosPi(_ x: Double) -> Double {
    // Reduce to [0, 1] then use the identity cos(πx) = 1 − 2 sin²(πx/2).
    let s = sinApprox(Double.pi * x / 2)
    return 1 - 2 * s * s
}

private func sinApprox(_ x: Double) -> Double {
    // Taylor series; |x| ≤ π/2 here, so 11 terms are far below float error.
    var term = x, sum = x
    for n in 1..<11 {
        term *= -x * x / Double((2 * n) * (2 * n + 1))
        sum += term
    }
    return sum
}

/// Which parameters get weight decay: by default every parameter of rank
/// > 1 (weights), not biases or normalisation scales, as commonly done.
public typealias DecayPolicy = (_ name: String, _ parameter: Parameter) -> Bool

public let decayWeightsOnly: DecayPolicy = { _, p in p.tensor.rank > 1 }
public let decayEverything: DecayPolicy = { _, _ in true }

/// An optimiser over a model's parameters.
public protocol Optimizer: AnyObject {
    /// Applies one update from the parameters' current gradients.
    func step() throws
    var learningRate: Float { get set }
    /// Called by ``step()`` once the gradients are complete and before the
    /// update, with the gradients the update reads: the flat gradient arena
    /// (`[total]`, the parameters' gradients back to back in order) on an
    /// OpenCL device, else one tensor per parameter. Writing them in place
    /// changes the update; data-parallel training averages them over
    /// processes here. Nil (no call) by default.
    var gradientHook: ((_ gradients: [Tensor]) throws -> Void)? { get set }
    /// The optimiser's state (moments, step count) for checkpoints.
    func stateDict() throws -> SafeTensors
    /// Restores a state written by ``stateDict()``.
    func loadStateDict(_ file: SafeTensors) throws
}

/// Loads state tensors saved under `prefix.i` back into `tensors`.
private func loadStates(_ tensors: [Tensor], prefix: String, from file: SafeTensors) throws -> [Tensor] {
    try tensors.enumerated().map { i, t in
        guard let e = file["\(prefix).\(i)"], e.values.count == t.count else {
            throw CloverError.invalidArgument(op: "optimizer state", reason: "missing or mis-sized entry \(prefix).\(i)")
        }
        return try Tensor(shape: t.shape, values: e.values, on: t.device)
    }
}

private func saveStates(_ tensors: [Tensor], prefix: String, into file: inout SafeTensors) throws {
    for (i, t) in tensors.enumerated() { file.append("\(prefix).\(i)", shape: t.shape, values: try t.toArray()) }
}

/// SGD with momentum, Nesterov and weight decay; one fused launch per step.
public final class SGD: Optimizer {
    public var configuration: SGDConfiguration
    public var gradientHook: ((_ gradients: [Tensor]) throws -> Void)?
    let arena: ParameterArena
    var momentum: [Tensor]

    public init(_ named: [(String, Parameter)], configuration: SGDConfiguration,
                decay: DecayPolicy = decayWeightsOnly) throws {
        self.configuration = configuration
        arena = try ParameterArena(parameters: named.map(\.1), decays: named.map { decay($0.0, $0.1) })
        momentum = try arena.makeState()
    }

    public var learningRate: Float {
        get { configuration.learningRate }
        set { configuration.learningRate = newValue }
    }

    /// Applies one update from the parameters' current gradients.
    public func step() throws {
        try withoutGradients {
            if let values = arena.values, let grads = arena.gradients {
                try arena.gatherGradients()
                try gradientHook?([grads])
                try sgdStep(parameters: values, gradients: grads, momentum: momentum[0],
                            configuration: configuration, segments: arena.segments)
            } else {
                let gradients = try arena.gradientsOrZeros()
                try gradientHook?(gradients)
                for (i, p) in arena.parameters.enumerated() {
                    let g = gradients[i]
                    let flat = try [p.tensor.reshaped([p.tensor.count]), g.reshaped([g.count]),
                                    momentum[i].reshaped([momentum[i].count])]
                    try sgdStep(parameters: flat[0], gradients: flat[1], momentum: flat[2], configuration: configuration,
                                segments: ParameterSegments(sizes: [p.tensor.count], decays: [arena.segments.decay[i] != 0]))
                }
            }
        }
    }

    public func stateDict() throws -> SafeTensors {
        var file = SafeTensors()
        file.metadata = ["optimizer": "sgd"]
        try saveStates(momentum, prefix: "momentum", into: &file)
        return file
    }

    public func loadStateDict(_ file: SafeTensors) throws {
        guard file.metadata["optimizer"] == "sgd" else {
            throw CloverError.invalidArgument(op: "optimizer state", reason: "not an SGD state (\(file.metadata["optimizer"] ?? "unknown"))")
        }
        momentum = try loadStates(momentum, prefix: "momentum", from: file)
    }
}

/// AdamW (decoupled weight decay, bias correction); one fused launch per step.
public final class AdamW: Optimizer {
    public var configuration: AdamWConfiguration
    public private(set) var stepCount = 0
    public var gradientHook: ((_ gradients: [Tensor]) throws -> Void)?
    let arena: ParameterArena
    var m: [Tensor]
    var v: [Tensor]

    public init(_ named: [(String, Parameter)], configuration: AdamWConfiguration,
                decay: DecayPolicy = decayWeightsOnly) throws {
        self.configuration = configuration
        arena = try ParameterArena(parameters: named.map(\.1), decays: named.map { decay($0.0, $0.1) })
        m = try arena.makeState()
        v = try arena.makeState()
    }

    public var learningRate: Float {
        get { configuration.learningRate }
        set { configuration.learningRate = newValue }
    }

    public func step() throws {
        stepCount += 1
        try withoutGradients {
            if let values = arena.values, let grads = arena.gradients {
                try arena.gatherGradients()
                try gradientHook?([grads])
                try adamWStep(parameters: values, gradients: grads, m: m[0], v: v[0], step: stepCount,
                              configuration: configuration, segments: arena.segments)
            } else {
                let gradients = try arena.gradientsOrZeros()
                try gradientHook?(gradients)
                for (i, p) in arena.parameters.enumerated() {
                    let g = gradients[i]
                    try adamWStep(parameters: p.tensor.reshaped([p.tensor.count]), gradients: g.reshaped([g.count]),
                                  m: m[i].reshaped([m[i].count]), v: v[i].reshaped([v[i].count]), step: stepCount,
                                  configuration: configuration,
                                  segments: ParameterSegments(sizes: [p.tensor.count], decays: [arena.segments.decay[i] != 0]))
                }
            }
        }
    }

    public func stateDict() throws -> SafeTensors {
        var file = SafeTensors()
        file.metadata = ["optimizer": "adamw", "step": "\(stepCount)"]
        try saveStates(m, prefix: "m", into: &file)
        try saveStates(v, prefix: "v", into: &file)
        return file
    }

    public func loadStateDict(_ file: SafeTensors) throws {
        guard file.metadata["optimizer"] == "adamw", let step = file.metadata["step"].flatMap({ Int($0) }) else {
            throw CloverError.invalidArgument(op: "optimizer state", reason: "not an AdamW state (\(file.metadata["optimizer"] ?? "unknown"))")
        }
        m = try loadStates(m, prefix: "m", from: file)
        v = try loadStates(v, prefix: "v", from: file)
        stepCount = step
    }
}
