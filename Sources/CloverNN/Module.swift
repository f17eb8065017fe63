import Clover

/// A trainable tensor owned by a layer. The box lets an optimiser move the
/// data (into its flat arena) without the layer noticing.
public final class Parameter {
    /// The current value; ops read it, optimisers replace it.
    public internal(set) var tensor: Tensor

    public init(_ tensor: Tensor) {
        tensor.requiresGrad = true
        self.tensor = tensor
    }

    public var shape: [Int] { tensor.shape }
    public var grad: Tensor? { tensor.grad }

    /// Overwrites the value in place (e.g. loading a checkpoint), so an
    /// optimiser's arena that holds this parameter keeps seeing it.
    public func assign(_ value: Tensor) throws {
        guard value.shape == tensor.shape else {
            throw CloverError.shapeMismatch(op: "parameter assign", shapes: [tensor.shape, value.shape], reason: "shapes differ")
        }
        try tensor.copyValues(value.toArray())
    }

    /// Points the parameter at another tensor (initialisation while a model
    /// is built, or an optimiser moving it into its flat arena). Unlike
    /// ``assign(_:)`` it does not write through: call it before an optimiser
    /// takes the parameter.
    public func rebind(_ value: Tensor) {
        value.requiresGrad = true
        tensor = value
    }
}

/// Non-trainable layer state saved in checkpoints (BatchNorm running
/// statistics, batch counters).
public final class StateTensor {
    public var tensor: Tensor
    public init(_ tensor: Tensor) { self.tensor = tensor }
}

/// The base of every layer and model, in the style of PyTorch's `nn.Module`.
///
/// Parameters, state tensors and sub-modules are discovered from stored
/// properties by reflection, and named like PyTorch's `state_dict` keys:
/// a property `conv1` holding a module with a parameter `weight` gives
/// `conv1.weight`; arrays of modules give `layer1.0.conv1.weight`. Name the
/// Swift properties as torchvision does and checkpoints interoperate.
open class Module {
    /// Training mode (batch statistics, dropout) versus evaluation mode.
    public private(set) var isTraining = true

    public init() {}

    /// Switches this module and all sub-modules to training or evaluation.
    public func train(_ on: Bool = true) {
        isTraining = on
        for (_, child) in namedChildren() { child.train(on) }
    }

    /// Evaluation mode (inference).
    public func eval() { train(false) }

    /// Direct sub-modules with their property names (arrays expand to
    /// `name.index`, optionals are skipped when nil).
    ///
    /// Open so that a module can name its children as a foreign checkpoint
    /// format does where reflection cannot (BERT's `attention.self`,
    /// `LayerNormalization`); an override must list every child, since training mode
    /// and parameters are found through it.
    open func namedChildren() -> [(String, Module)] {
        var result: [(String, Module)] = []
        forEachProperty { label, value in
            switch value {
            case let m as Module: result.append((label, m))
            case let ms as [Module]: for (i, m) in ms.enumerated() { result.append(("\(label).\(i)", m)) }
            default: break
            }
        }
        return result
    }

    /// Every parameter, depth-first in declaration order, with its dotted name.
    public func namedParameters() -> [(String, Parameter)] {
        var result: [(String, Parameter)] = []
        forEachProperty { label, value in
            if let p = value as? Parameter { result.append((label, p)) }
        }
        for (name, child) in namedChildren() {
            result += child.namedParameters().map { ("\(name).\($0.0)", $0.1) }
        }
        return result
    }

    /// Every state tensor (running statistics...), named like parameters.
    public func namedStates() -> [(String, StateTensor)] {
        var result: [(String, StateTensor)] = []
        forEachProperty { label, value in
            if let s = value as? StateTensor { result.append((label, s)) }
        }
        for (name, child) in namedChildren() {
            result += child.namedStates().map { ("\(name).\($0.0)", $0.1) }
        }
        return result
    }

    public func parameters() -> [Parameter] { namedParameters().map(\.1) }

    /// Called on every module before its states are read for saving, so a
    /// module can write host-side counters into its state tensors.
    open func prepareStatesForSaving() throws {}

    /// Called on every module after states were loaded.
    open func statesDidLoad() throws {}

    /// This module and every descendant, depth-first.
    public func allModules() -> [Module] {
        [self] + namedChildren().flatMap { $0.1.allModules() }
    }

    /// Total number of trainable scalars.
    public var parameterCount: Int { parameters().reduce(0) { $0 + $1.tensor.count } }

    /// Clears every parameter's gradient.
    public func zeroGrad() { for p in parameters() { p.tensor.zeroGrad() } }

    /// Walks stored properties of this class and its superclasses (up to
    /// `Module`), unwrapping optionals. Labels drop a leading underscore and
    /// turn camelCase into PyTorch's snake_case (`runningMean` →
    /// `running_mean`), so Swift names stay idiomatic.
    private func forEachProperty(_ body: (String, Any) -> Void) {
        var mirror: Mirror? = Mirror(reflecting: self)
        var mirrors: [Mirror] = []
        while let m = mirror, m.subjectType != Module.self {
            mirrors.append(m)
            mirror = m.superclassMirror
        }
        for m in mirrors.reversed() {
            for child in m.children {
                guard var label = child.label else { continue }
                if label.hasPrefix("_") { label.removeFirst() }
                label = snakeCased(label)
                let unwrapped = Mirror(reflecting: child.value)
                if unwrapped.displayStyle == .optional {
                    if let some = unwrapped.children.first { body(label, some.value) }
                } else {
                    body(label, child.value)
                }
            }
        }
    }
}

/// Modules applied in order, named `0`, `1`, … as PyTorch's `nn.Sequential`.
public final class Sequential: Module, Layer {
    public let layers: [Layer]

    public init(_ layers: [Layer]) {
        self.layers = layers
    }

    public override func namedChildren() -> [(String, Module)] {
        layers.enumerated().compactMap { i, l in (l as? Module).map { ("\(i)", $0) } }
    }

    /// Runs the layers in order. A ``Conv2d`` followed by a ``BatchNorm2d``
    /// runs as a declared conv → batch-norm fusion (the convolution writes
    /// the batch norm's statistics, ``Conv2d/callAsFunction(_:normalizedBy:activation:)``),
    /// with a ReLU or SiLU ``ActivationLayer`` after the batch norm fused
    /// into it; a ``BatchNorm2d`` followed by one runs as one fused batch
    /// norm, and a ``Conv2d`` followed by one as a convolution with that
    /// activation in its epilogue (the layers and their state-dict names stay
    /// as they are).
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var y = x
        var i = layers.startIndex
        while i < layers.endIndex {
            let next = i + 1 < layers.endIndex ? layers[i + 1] as? ActivationLayer : nil
            if let conv = layers[i] as? Conv2d, i + 1 < layers.endIndex, let bn = layers[i + 1] as? BatchNorm2d {
                let after = i + 2 < layers.endIndex ? layers[i + 2] as? ActivationLayer : nil
                if let fused = after?.kind.batchNormActivation {
                    y = try conv(y, normalizedBy: bn, activation: fused)
                    i += 3
                } else {
                    y = try conv(y, normalizedBy: bn)
                    i += 2
                }
            } else if let bn = layers[i] as? BatchNorm2d, let fused = next?.kind.batchNormActivation {
                y = try bn(y, activation: fused)
                i += 2
            } else if let conv = layers[i] as? Conv2d, let fused = next?.kind.convActivation {
                y = try conv(y, activation: fused)
                i += 2
            } else {
                y = try layers[i](y)
                i += 1
            }
        }
        return y
    }
}

/// A module mapping one tensor to one tensor.
public protocol Layer: AnyObject {
    func callAsFunction(_ x: Tensor) throws -> Tensor
}

/// `runningMean` → `running_mean`; digits and lower-case names are kept.
func snakeCased(_ name: String) -> String {
    var out = ""
    for ch in name {
        if ch.isUppercase {
            if !out.isEmpty { out.append("_") }
            out += ch.lowercased()
        } else {
            out.append(ch)
        }
    }
    return out
}
