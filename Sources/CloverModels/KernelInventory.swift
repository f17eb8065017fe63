import Clover
import CloverNN
import CloverRuntime

/// Every program and kernel the GPU path asks for, as planned on a planning
/// device whose ops take the GPU paths: one training step of every zoo
/// model and of the OSCAR encoder, plus every candidate the convolution
/// tuner would try for each of their convolution geometries and passes
/// (under TF32, so the tensor-core sets are among them).
///
/// The static NVIDIA check (`scripts/nvidia_static.sh`) compiles exactly
/// these programs, with these build options, for NVIDIA's assembler: the
/// list comes from the ops' own parameter tables and heuristics, so a new
/// parameter set or kernel is covered without editing the check.
public struct KernelInventory: Codable, Sendable {
    /// One kernel of one program, with the launches it was planned for.
    public struct Kernel: Codable, Sendable, Equatable {
        /// The `__kernel` function name.
        public var name: String
        /// The distinct work-group sizes it was launched with, sorted.
        public var localSizes: [[Int]]
        /// Whether some launch left the work-group size to the driver.
        public var driverChosenLocal: Bool
        /// The most `__local` bytes passed as arguments to one launch.
        public var localArgumentBytes: Int
        /// Planned launches in all.
        public var launches: Int
    }

    /// One program: a kernel family built with one set of options.
    public struct Program: Codable, Sendable, Equatable {
        /// The kernel family (`Kernels/<family>.cl`).
        public var family: String
        /// The options the runtime passes to `clBuildProgram`.
        public var options: String
        /// The register limit per work-item the op asked for (NVIDIA's
        /// driver gets it as `-cl-nv-maxrregcount`, which it hands to its
        /// assembler as `--maxrregcount`; the planning device has no such option).
        public var registerLimit: Int?
        /// The first model (or `tune: <model>` for a tuning candidate) that asked for it.
        public var firstUse: String
        /// The kernels of the program that were launched, by name.
        public var kernels: [Kernel]
    }

    /// The programs by family and options.
    public var programs: [Program]
    /// The batch each model was planned at (smaller than asked where the
    /// asked batch breaks a planning limit, as EfficientNet-B7 at 128 does).
    public var batches: [String: Int]
    /// Tuning candidates that could not be planned, with the reason
    /// (the tuner would reject them the same way).
    public var ruledOut: [String]

    /// Plans every model of `models` (default: the whole zoo and OSCAR-base)
    /// on `device`, a planning device with GPU paths.
    ///
    /// - Parameters:
    ///   - batches: the batch sizes to try per model, first that plans wins.
    ///   - includeOSCAR: whether to plan the OSCAR-base pre-training step.
    ///   - tuningCandidates: whether to plan every tuning candidate of each
    ///     convolution geometry too.
    public static func gpuPath(models: [ModelSpec] = ModelZoo.all, includeOSCAR: Bool = true,
                               batches: [Int] = [128, 32], tuningCandidates: Bool = true,
                               on device: Device) throws -> KernelInventory {
        guard let context = device.openCL, context.isPlanning, context.pathKind == .gpu else {
            throw CloverError.invalidArgument(op: "kernel inventory", reason: "\(device) is not a planning device with GPU paths")
        }
        guard !batches.isEmpty, batches.allSatisfy({ $0 >= 1 }) else {
            throw CloverError.invalidArgument(op: "kernel inventory", reason: "batch sizes must be positive, got \(batches)")
        }
        var programs: [String: Program] = [:]
        var order: [String] = []
        var use = ""
        var result = KernelInventory(programs: [], batches: [:], ruledOut: [])
        let previous = context.launchObserver
        context.launchObserver = { record in
            let k = record.kernel
            let key = k.family + " " + k.programOptions
            if programs[key] == nil {
                programs[key] = Program(family: k.family, options: k.programOptions,
                                        registerLimit: k.programRegisterLimit, firstUse: use, kernels: [])
                order.append(key)
            }
            var kernels = programs[key]!.kernels
            let index = kernels.firstIndex { $0.name == k.name } ?? {
                kernels.append(Kernel(name: k.name, localSizes: [], driverChosenLocal: false, localArgumentBytes: 0, launches: 0))
                return kernels.count - 1
            }()
            if let local = record.local {
                if !kernels[index].localSizes.contains(local) {
                    kernels[index].localSizes.append(local)
                    kernels[index].localSizes.sort { $0.lexicographicallyPrecedes($1) }
                }
            } else {
                kernels[index].driverChosenLocal = true
            }
            kernels[index].localArgumentBytes = max(kernels[index].localArgumentBytes, record.localArgumentBytes)
            kernels[index].launches += 1
            programs[key]!.kernels = kernels
        }
        defer { context.launchObserver = previous }

        func planned(_ name: String, _ step: (Int) throws -> Void) throws {
            var failure: Error?
            for batch in batches {
                do {
                    try step(batch)
                    result.batches[name] = batch
                    return
                } catch {
                    failure = error
                }
            }
            throw CloverError.invalidArgument(op: "kernel inventory",
                                              reason: "\(name) plans at none of the batches \(batches): \(failure!)")
        }
        for spec in models {
            use = spec.name
            var geometries: [ConvGeometry] = []
            try planned(spec.name) { batch in
                geometries = try ConvAlgorithmSelection.recordGeometries {
                    _ = try LaunchCheck.trainingStep(of: spec, batch: batch, on: device)
                }
            }
            guard tuningCandidates else { continue }
            use = "tune: " + spec.name
            // Under TF32 the candidates include the tensor-core sets, which a GPU with them tries.
            let precision = context.matmulPrecision
            context.matmulPrecision = .tf32
            defer { context.matmulPrecision = precision }
            for geometry in geometries {
                for (choice, error) in try ConvAlgorithmSelection.planCandidates(context, geometry) {
                    if let error { result.ruledOut.append("\(geometry.key) \(choice): \(error)") }
                }
            }
        }
        // The tensor-core probe a device with them runs before any op uses them.
        use = "tf32 probe"
        let probeInputs = try [[16, 8], [8, 8], [16, 8], [32]].map { shape in
            try Tensor(shape: shape, values: [Float](repeating: 0, count: shape.reduce(1, *)), on: device)
        }
        _ = try apply(TensorCoreProduct(), probeInputs)
        // Every tensor-core GEMM program (set x transposes), not only those the models plan.
        use = "tf32 matmul"
        func zeros(_ shape: [Int]) throws -> Tensor {
            try Tensor(shape: shape, values: [Float](repeating: 0, count: shape.reduce(1, *)), on: device)
        }
        for set in ConvGemmParameters.searchSpace where set.form == .tensorCore {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                _ = try apply(MatMul(transposeA: ta, transposeB: tb, tensorCoreSet: set),
                              [try zeros(ta ? [8, 16] : [16, 8]), try zeros(tb ? [24, 8] : [8, 24])])
            }
        }
        if includeOSCAR {
            use = "oscar-" + LaunchCheck.oscarPreset
            try planned(use) { batch in _ = try LaunchCheck.oscarPretrainingStep(batch: batch, on: device) }
        }
        result.programs = order.map { programs[$0]! }
        return result
    }
}
