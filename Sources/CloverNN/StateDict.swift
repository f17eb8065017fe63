import Clover

extension Module {
    /// Parameters and state tensors by state-dict name, downloaded to the host.
    public func stateDict() throws -> SafeTensors {
        for module in allModules() { try module.prepareStatesForSaving() }
        var file = SafeTensors()
        for (name, p) in namedParameters() { file.append(name, shape: p.shape, values: try p.tensor.toArray()) }
        for (name, s) in namedStates() { file.append(name, shape: s.tensor.shape, values: try s.tensor.toArray()) }
        return file
    }

    /// Loads parameters and state tensors by name onto each one's device.
    ///
    /// - Parameter strict: require exactly the module's names (as PyTorch's
    ///   `load_state_dict(strict=True)`); otherwise missing and unexpected
    ///   entries are skipped. Shapes must always match.
    public func loadStateDict(_ file: SafeTensors, strict: Bool = true) throws {
        let params = namedParameters(), states = namedStates()
        let known = Set(params.map(\.0) + states.map(\.0))
        if strict {
            let missing = known.subtracting(file.names).sorted()
            let unexpected = Set(file.names).subtracting(known).sorted()
            if !missing.isEmpty || !unexpected.isEmpty {
                throw CloverError.invalidArgument(op: "load_state_dict",
                                                  reason: "missing keys \(missing), unexpected keys \(unexpected)")
            }
        }
        // Values are written in place, so an optimiser arena that already
        // holds the parameters keeps training the loaded values.
        func load(_ name: String, _ current: Tensor) throws {
            guard let e = file[name] else { return }
            guard e.shape.reduce(1, *) == current.count, e.shape == current.shape || (e.shape.isEmpty && current.count == 1) else {
                throw CloverError.shapeMismatch(op: "load_state_dict \(name)", shapes: [current.shape, e.shape],
                                                reason: "checkpoint shape differs")
            }
            try current.copyValues(e.values)
        }
        for (name, p) in params { try load(name, p.tensor) }
        for (name, s) in states { try load(name, s.tensor) }
        for module in allModules() { try module.statesDidLoad() }
    }
}
