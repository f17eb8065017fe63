import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CloverRuntime

// Choosing a convolution's algorithm by measurement, as cuDNN's benchmark mode does. Per geometry
// (shapes, stride, padding, dilation, groups) and pass, the candidates — implicit GEMM with each
// parameter set of ConvGemmParameters.searchSpace, im2col + CLBlast, and the direct or pointwise
// path where the shape rule (Convolution2DGeometry.algorithm) allows one — are checked against the
// CPU reference on a small case and timed on the geometry itself by the Tuner (CloverTuning,
// ConvolutionSearch.swift); the fastest is remembered here and persisted per device in the
// program-cache directory (`clover-conv-<FNV-1a of the device's cache identity>.json`, the key
// scheme of GEMM tuning). Unmeasured geometries take the heuristic default unless
// `Tuner.autotunesConvolutions` measures them on first use.
//
// The split with CloverTuning: this file keeps what ops need at run time (the heuristic, the
// cheap look-up of a measured choice, the reader of the persisted file) and the primitives a
// measurement needs that only this module can reach (the candidates, running a pass on a
// choice); the Tuner decides what to measure and when, runs the check and the timing, and owns
// writing the file. Clover cannot depend on CloverTuning, so measuring on first use reaches the
// Tuner through the `autotuner` hook it installs.

/// A pass of a convolution.
public enum ConvPass: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    case forward, backwardData, backwardWeight
    public var description: String { rawValue }
}

/// An algorithm with its parameters: what runs one pass of one geometry.
public struct ConvChoice: Codable, Hashable, Sendable, CustomStringConvertible {
    public var algorithm: ConvAlgorithm
    /// The implicit-GEMM parameter set (nil for the other algorithms).
    public var parameters: ConvGemmParameters?

    public init(_ algorithm: ConvAlgorithm, _ parameters: ConvGemmParameters? = nil) {
        self.algorithm = algorithm
        self.parameters = parameters
    }

    public var description: String { parameters.map { "\(algorithm) \($0)" } ?? algorithm.rawValue }

    /// Whether the choice's products round their operands to TF32 (a
    /// tensor-core set): the CPU reference rounds its inputs the same way.
    public var roundsToTF32: Bool { parameters?.form == .tensorCore }

    func gemmParameters() throws -> ConvGemmParameters {
        guard let parameters else {
            throw CloverError.invalidArgument(op: "conv2d", reason: "implicitGEMM chosen without a parameter set")
        }
        return parameters
    }
}

/// One convolution geometry and pass, as ``ConvAlgorithmSelection/recordGeometries(_:)`` saw it.
public struct ConvGeometry: Sendable {
    public var input: [Int]
    public var weight: [Int]
    public var parameters: Convolution2DParameters
    public var pass: ConvPass
    /// ``ConvAlgorithmSelection/key(input:weight:parameters:pass:)``.
    public var key: String

    /// A geometry and pass, with its key.
    package init(input: [Int], weight: [Int], parameters: Convolution2DParameters, pass: ConvPass) {
        self.init(input: input, weight: weight, parameters: parameters, pass: pass,
                  key: ConvAlgorithmSelection.key(input: input, weight: weight, parameters: parameters, pass: pass))
    }

    init(input: [Int], weight: [Int], parameters: Convolution2DParameters, pass: ConvPass, key: String) {
        self.input = input
        self.weight = weight
        self.parameters = parameters
        self.pass = pass
        self.key = key
    }

    /// The shape rule's view (checked shapes, output size).
    func resolved() throws -> Convolution2DGeometry {
        try parameters.geometry(input: input, weight: weight, op: "conv2d", shapes: [input, weight])
    }
}

/// One measured geometry and pass.
public struct ConvTuningEntry: Codable, Sendable, Equatable {
    public var choice: ConvChoice
    /// Milliseconds per run of each candidate timed, by description; those
    /// disqualified are listed in ``rejected`` with the reason.
    public var milliseconds: [String: Double]
    public var rejected: [String: String]

    /// An entry for the winner `choice`, with every candidate's time or reason for rejection.
    public init(choice: ConvChoice, milliseconds: [String: Double], rejected: [String: String]) {
        self.choice = choice
        self.milliseconds = milliseconds
        self.rejected = rejected
    }
}

/// The persisted choices of one device.
public struct ConvTuningRecord: Codable, Sendable, Equatable {
    /// The file format version; files of another version are ignored.
    public static let currentVersion = 2
    public var version: Int
    /// The device, for people reading the file.
    public var device: String
    /// `OpenCLDevice.cacheIdentity` of the device measured on; a file whose
    /// identity differs from the device's is ignored.
    public var deviceIdentity: String
    /// By ``ConvAlgorithmSelection/key(input:weight:parameters:pass:)``.
    public var entries: [String: ConvTuningEntry]

    /// A record of the current version; `Tuner` (CloverTuning) writes it.
    public init(version: Int = ConvTuningRecord.currentVersion, device: String, deviceIdentity: String,
                entries: [String: ConvTuningEntry]) {
        self.version = version
        self.device = device
        self.deviceIdentity = deviceIdentity
        self.entries = entries
    }
}

/// A persisted convolution tuning file that exists but cannot be used: bad
/// JSON, another version, or another device.
public struct ConvTuningFileError: Error, CustomStringConvertible, Equatable {
    /// The file.
    public var path: String

    public var description: String { "\(path) (not a current record for this device)" }
}

/// Algorithm selection for convolutions: measured, persisted, or heuristic.
public enum ConvAlgorithmSelection {
    /// Measures an untuned geometry and pass on first use and returns the
    /// choice to run; nil takes the heuristic default instead. Installed by
    /// `Tuner.autotunesConvolutions` (`clover train --autotune`): the
    /// library cannot call CloverTuning, which persists what it measures.
    package typealias Autotuner = @Sendable (OpenCLContext, ConvGeometry) throws -> ConvChoice

    /// The hook behind measuring on first use (see `Autotuner`).
    package static var autotuner: Autotuner? {
        get { state.withLock { $0.autotuner } }
        set { state.withLock { $0.autotuner = newValue } }
    }

    /// Set to `0` (or `off`, `false`, `no`) to ignore persisted choices.
    public static let environmentVariable = "CLOVER_CONV_TUNING"

    /// The record key of one geometry and pass.
    public static func key(input: [Int], weight: [Int], parameters: Convolution2DParameters, pass: ConvPass) -> String {
        let s = parameters
        return "\(pass) x\(input.map(String.init).joined(separator: "x")) w\(weight.map(String.init).joined(separator: "x"))"
            + " s\(s.strideH)x\(s.strideW) p\(s.paddingH)x\(s.paddingW) d\(s.dilationH)x\(s.dilationW) g\(s.groups)"
    }

    static func key(_ g: Convolution2DGeometry, _ pass: ConvPass) -> String {
        key(input: [g.n, g.c, g.h, g.w], weight: [g.o, g.cg, g.kh, g.kw], parameters: g.parameters, pass: pass)
    }

    /// The candidates for a geometry and pass, heuristic default first.
    /// GPUs try only the tiled implicit-GEMM sets: the vector and direct
    /// forms are written for CPUs (no local-memory staging, per-item
    /// accumulator arrays that a GPU would keep in local memory), and the
    /// static NVIDIA check holds only the GPU path to its budgets.
    /// The tensor-core sets are candidates only with `tensorCores` (TF32
    /// allowed and available: ``OpenCLContext/usesTF32TensorCores``), never
    /// emulated on a device without them.
    static func candidates(_ g: Convolution2DGeometry, _ pass: ConvPass, kind: DeviceKind,
                           tensorCores: Bool = false, vectorWidth: Int = 16) -> [ConvChoice] {
        var list = [heuristic(g, pass, kind: kind, tensorCores: tensorCores, vectorWidth: vectorWidth)]
        if g.algorithm != .im2colGEMM { list.append(ConvChoice(g.algorithm)) }
        list.append(ConvChoice(.im2colGEMM))
        list += ConvGemmParameters.searchSpace.filter { set in
            switch set.form {
            case .tensorCore: return tensorCores
            case .tiled: return true
            case .direct, .vector: return kind == .cpu
            }
        }.map { ConvChoice(.implicitGEMM, $0) }
        var seen = Set<ConvChoice>()
        return list.filter { seen.insert($0).inserted }
    }

    /// What an unmeasured geometry runs.
    ///
    /// On CPU devices, the row-padded vector kernels for every geometry whose
    /// output planes have at least 4 pixels — general, depthwise,
    /// thin grouped and 1x1 convolutions alike — with one row per item where
    /// a group has at most 2 rows (measured on POCL: 3–5× the direct kernels
    /// and im2col + CLBlast on ResNet-20, 1.5–5× the depthwise kernel, 1.3–3×
    /// the grouped kernels, 3–7× CLBlast on ResNet-50's 1x1 convolutions);
    /// smaller planes (squeeze-and-excitation's 1x1) keep their shape rule's
    /// path. The vector sets are those of the CPU's register file
    /// (`vectorWidth`, ``ConvGemmParameters/vectorRoles(vectorWidth:)``). On GPUs, the shape rule's depthwise, grouped or pointwise path
    /// where it has one, else implicit GEMM with the tiled sets.
    static func heuristic(_ g: Convolution2DGeometry, _ pass: ConvPass, kind: DeviceKind,
                          tensorCores: Bool = false, vectorWidth: Int = 16) -> ConvChoice {
        if kind == .cpu && (g.algorithm == .im2colGEMM || g.oh * g.ow >= 4) {
            let rows = pass == .backwardData ? g.cg : g.og
            return ConvChoice(.implicitGEMM, rows <= 2 ? ConvGemmParameters.vectorRoles(vectorWidth: vectorWidth).depthwise
                                  : ConvGemmParameters.heuristicDefault(for: kind, pass: pass, geometry: g,
                                                                        vectorWidth: vectorWidth))
        }
        if g.algorithm != .im2colGEMM { return ConvChoice(g.algorithm) }
        return ConvChoice(.implicitGEMM, ConvGemmParameters.heuristicDefault(for: kind, pass: pass, geometry: g,
                                                                             tensorCores: tensorCores))
    }

    /// The choice for one pass: forced (tests), measured in this process or
    /// persisted, measured now by the `autotuner`, else the heuristic.
    static func choice(_ context: OpenCLContext, _ g: Convolution2DGeometry, _ pass: ConvPass) throws -> ConvChoice {
        let key = key(g, pass)
        state.withLock { s in
            guard s.recording != nil, !s.recording!.contains(where: { $0.key == key }) else { return }
            s.recording!.append(ConvGeometry(input: [g.n, g.c, g.h, g.w], weight: [g.o, g.cg, g.kh, g.kw],
                                             parameters: g.parameters, pass: pass, key: key))
        }
        let device = deviceKey(context.device)
        try loadOnce(context)
        // A context that takes another kind's paths (a planning context for
        // a GPU on POCL) must not pick up the choices measured on its device.
        // A tensor-core choice measured under TF32 does not hold under strict FP32.
        if context.pathKind == context.device.kind, let known = state.withLock({ $0.entries[device]?[key] }),
           known.choice.parameters?.form != .tensorCore || context.usesTF32TensorCores {
            return known.choice
        }
        if !context.isPlanning, let autotuner = state.withLock({ $0.autotuner }) {
            return try autotuner(context, ConvGeometry(input: [g.n, g.c, g.h, g.w], weight: [g.o, g.cg, g.kh, g.kw],
                                                       parameters: g.parameters, pass: pass, key: key))
        }
        return heuristic(g, pass, kind: context.pathKind, tensorCores: context.usesTF32TensorCores,
                         vectorWidth: context.device.nativeFloatVectorWidth)
    }

    /// What the selection runs for one geometry and pass on `context`'s
    /// device, without measuring anything: the persisted or in-process
    /// measured choice (`tuned` true), else the heuristic default. For
    /// reports (clover-bench) that name the path training takes.
    public static func currentChoice(_ context: OpenCLContext, input: [Int], weight: [Int],
                                     parameters: Convolution2DParameters,
                                     pass: ConvPass) throws -> (choice: ConvChoice, tuned: Bool) {
        let g = try parameters.geometry(input: input, weight: weight, op: "conv2d", shapes: [input, weight])
        try loadOnce(context)
        if let known = state.withLock({ $0.entries[deviceKey(context.device)]?[key(g, pass)] }) {
            return (known.choice, true)
        }
        return (heuristic(g, pass, kind: context.pathKind, tensorCores: context.usesTF32TensorCores,
                          vectorWidth: context.device.nativeFloatVectorWidth), false)
    }

    /// The distinct convolution geometries and passes `body` runs (for
    /// example one planned training step), in first-use order.
    public static func recordGeometries(_ body: () throws -> Void) throws -> [ConvGeometry] {
        state.withLock { $0.recording = [] }
        defer { state.withLock { $0.recording = nil } }
        try body()
        return state.withLock { $0.recording ?? [] }
    }

    /// Plans `geometry` once with every candidate the tuner would try on
    /// `context` (a planning context): what tuning could make the device
    /// compile and launch, for checks that cover more than the heuristic's
    /// choices. Returns each candidate with the error that ruled it out
    /// (too large a column buffer, say), nil where it planned.
    public static func planCandidates(_ context: OpenCLContext, _ geometry: ConvGeometry) throws -> [(ConvChoice, Error?)] {
        guard context.isPlanning else {
            throw CloverError.invalidArgument(op: "conv2d", reason: "planning candidates needs a planning context")
        }
        let g = try geometry.parameters.geometry(input: geometry.input, weight: geometry.weight, op: "conv2d",
                                                 shapes: [geometry.input, geometry.weight])
        let (counts, outCount) = operandCounts(g, geometry.pass)
        let a = try context.allocateView(count: counts[0]), b = try context.allocateView(count: counts[1])
        let out = try context.allocateView(count: outCount)
        return candidates(g, geometry.pass, kind: context.pathKind, tensorCores: context.usesTF32TensorCores,
                          vectorWidth: context.device.nativeFloatVectorWidth).map { choice in
            do {
                try run(context, g, geometry.pass, choice, a, b, out)
                return (choice, nil)
            } catch {
                return (choice, error)
            }
        }
    }

    // MARK: Measurement primitives
    //
    // The search over these (which candidates pass their check, which is
    // fastest) is the Tuner's, in CloverTuning; what is here drives the
    // passes' internal kernels, which only this module can reach.

    /// The candidates the search tries for `geometry` on `context`, the
    /// heuristic default first (see ``candidates(_:_:kind:tensorCores:vectorWidth:)``).
    package static func candidates(for geometry: ConvGeometry, on context: OpenCLContext) throws -> [ConvChoice] {
        candidates(try geometry.resolved(), geometry.pass, kind: context.pathKind,
                   tensorCores: context.usesTF32TensorCores, vectorWidth: context.device.nativeFloatVectorWidth)
    }

    /// The element counts of the pass's two inputs and its output: forward
    /// (x, w) → y; data gradient (dy, w) → dx; weight gradient (dy, x) → dw.
    package static func operandCounts(of geometry: ConvGeometry) throws -> (inputs: [Int], output: Int) {
        let (inputs, output) = operandCounts(try geometry.resolved(), geometry.pass)
        return (inputs, output)
    }

    /// The pass's operand shapes, in ``operandCounts(of:)``'s order, as the
    /// pass's CPU reference takes them.
    package static func operandShapes(of geometry: ConvGeometry) throws -> (inputs: [[Int]], output: [Int]) {
        let g = try geometry.resolved()
        let x = [g.n, g.c, g.h, g.w], w = [g.o, g.cg, g.kh, g.kw], y = [g.n, g.o, g.oh, g.ow]
        switch geometry.pass {
        case .forward: return ([x, w], y)
        case .backwardData: return ([y, w], x)
        case .backwardWeight: return ([y, x], w)
        }
    }

    /// Runs `choice` for `geometry` on `context` from inputs `a`, `b` into
    /// `out` (in ``operandCounts(of:)``'s order), as the op would.
    package static func run(_ context: OpenCLContext, _ geometry: ConvGeometry, _ choice: ConvChoice,
                            _ a: BufferView, _ b: BufferView, _ out: BufferView) throws {
        try run(context, try geometry.resolved(), geometry.pass, choice, a, b, out)
    }

    /// Remembers a measured `entry` for `geometry` on `device` for the rest
    /// of the process: every later look-up of that geometry and pass takes it.
    package static func remember(_ entry: ConvTuningEntry, for geometry: ConvGeometry, on device: OpenCLDevice) {
        let key = geometry.key
        state.withLock { $0.entries[deviceKey(device), default: [:]][key] = entry }
    }

    /// The pass's inputs and output sizes: forward (x, w) → y; data (dy, w) → dx; weight (dy, x) → dw.
    private static func operandCounts(_ g: Convolution2DGeometry, _ pass: ConvPass) -> ([Int], Int) {
        let x = g.n * g.inputPerSample, y = g.n * g.outputPerSample, w = g.o * g.k
        switch pass {
        case .forward: return ([x, w], y)
        case .backwardData: return ([y, w], x)
        case .backwardWeight: return ([y, x], w)
        }
    }

    private static func run(_ context: OpenCLContext, _ g: Convolution2DGeometry, _ pass: ConvPass, _ choice: ConvChoice,
                            _ a: BufferView, _ b: BufferView, _ out: BufferView) throws {
        let shapes = [[g.n, g.c, g.h, g.w], [g.o, g.cg, g.kh, g.kw]]
        switch pass {
        case .forward:
            try convForwardPass(context, g, choice, op: "conv2d", shapes: shapes, x: a, w: b, bias: nil, y: out,
                                columnBufferLimitBytes: defaultConvColumnBufferLimitBytes)
        case .backwardData:
            try convBackwardDataPass(context, g, choice, op: "conv2d_backward_data", shapes: shapes, dy: a, w: b, dx: out,
                                     columnBufferLimitBytes: defaultConvColumnBufferLimitBytes)
        case .backwardWeight:
            try convBackwardWeightPass(context, g, choice, op: "conv2d_backward_weight", shapes: shapes, dy: a, x: b,
                                       dw: out, columnBufferLimitBytes: defaultConvColumnBufferLimitBytes)
        }
    }


    // MARK: Persistence

    /// The file name of `device`'s choices: FNV-1a of its cache identity, as for GEMM tuning.
    public static func fileName(for device: OpenCLDevice) -> String {
        fileName(identity: device.cacheIdentity)
    }

    /// The file name for the device whose ``OpenCLDevice/cacheIdentity`` is
    /// `identity` (the writer names a record's file by its identity).
    package static func fileName(identity: String) -> String {
        "clover-conv-\(String(ProgramCache.fnv1a64([identity]), radix: 16)).json"
    }

    /// Where `device`'s choices live under `directory`.
    public static func path(for device: OpenCLDevice, directory: String) -> String {
        directory + "/" + fileName(for: device)
    }

    /// The record saved for `device` under `directory`, or nil when there is none.
    ///
    /// - Throws: ``ConvTuningFileError`` when the file is not valid JSON of
    ///   the current version or is for another device.
    public static func load(for device: OpenCLDevice, directory: String) throws -> ConvTuningRecord? {
        let path = path(for: device, directory: directory)
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        guard let record = try? JSONDecoder().decode(ConvTuningRecord.self, from: data),
              record.version == ConvTuningRecord.currentVersion,
              record.deviceIdentity == device.cacheIdentity else {
            throw ConvTuningFileError(path: path)
        }
        return record
    }

    /// Every choice measured or loaded for `device` in this process, by key:
    /// what the Tuner writes to the device's file.
    package static func knownEntries(on device: OpenCLDevice) -> [String: ConvTuningEntry] {
        state.withLock { $0.entries[deviceKey(device)] ?? [:] }
    }

    /// Loads the device's persisted choices once per process (a file for
    /// another device, version or of bad JSON is ignored with a warning).
    package static func loadOnce(_ context: OpenCLContext) throws {
        let device = deviceKey(context.device)
        guard state.withLock({ $0.loaded.insert(device).inserted }) else { return }
        guard GemmTuning.isEnabled(environment: [GemmTuning.environmentVariable:
                ProcessInfo.processInfo.environment[environmentVariable] ?? "1"]),
              let directory = context.programs.directory else { return }
        let record: ConvTuningRecord
        do {
            guard let loaded = try load(for: context.device, directory: directory) else { return }
            record = loaded
        } catch let error as ConvTuningFileError {
            context.logger.warning("conv tuning: ignoring \(error)")
            return
        }
        state.withLock { s in
            for (key, entry) in record.entries where s.entries[device]?[key] == nil {
                s.entries[device, default: [:]][key] = entry
            }
        }
    }

    /// Forgets every choice made or loaded in this process (tests).
    static func reset() {
        state.withLock { $0 = State() }
    }

    private static func deviceKey(_ device: OpenCLDevice) -> UInt { UInt(bitPattern: Int(bitPattern: device.id)) }

    private struct State {
        var autotuner: Autotuner?
        var loaded: Set<UInt> = []
        var entries: [UInt: [String: ConvTuningEntry]] = [:]
        var recording: [ConvGeometry]?
    }

    private static let state = Mutex(State())
}
