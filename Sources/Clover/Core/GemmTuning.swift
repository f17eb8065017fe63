#if canImport(FoundationEssentials)
import Synchronization
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CCLBlast
import CCLBlastParameters
import CloverRuntime
import COpenCL
import Logging

// Every GEMM in Clover is CLBlast's, and CLBlast takes its kernels'
// parameters from a database of tuned devices. Devices it does not know (an
// H100, POCL's CPU device) get generic defaults that can be several times
// slower than a good configuration. `clover tune` searches for better
// parameters on the device itself, and `Tuner` (CloverTuning) writes them;
// this file keeps only what every run needs: the parameter sets
// (GemmTuningParameters.swift), reading and overriding CLBlast's parameters,
// and reading the persisted file per device next to the program cache,
// applied with `CLBlastOverrideParameters` whenever that device is used.

/// Errors of GEMM tuning and of its persisted files.
public enum GemmTuningError: Error, CustomStringConvertible, Equatable {
    /// A parameter set for `kernel` that is incomplete or out of range.
    case invalidParameters(String, [String])
    /// A persisted file that cannot be used; the reason says why.
    case unusableFile(path: String, reason: String)
    /// Tuning options that cannot work, or a search that cannot start.
    case invalidOptions(String)

    public var description: String {
        switch self {
        case let .invalidParameters(kernel, problems):
            return "invalid CLBlast \(kernel) parameters: \(problems.joined(separator: "; "))"
        case let .unusableFile(path, reason):
            return "unusable GEMM tuning file \(path): \(reason)"
        case let .invalidOptions(reason):
            return "GEMM tuning: \(reason)"
        }
    }
}

// MARK: - Shapes, options and results

/// A row-major single-precision GEMM `C[m×n] = op(A)[m×k] · op(B)[k×n]`,
/// as Clover issues it through CLBlast.
public struct GemmShape: Hashable, Sendable, Codable, CustomStringConvertible {
    public var m: Int
    public var n: Int
    public var k: Int
    public var transposeA: Bool
    public var transposeB: Bool

    public init(m: Int, n: Int, k: Int, transposeA: Bool = false, transposeB: Bool = false) {
        self.m = m
        self.n = n
        self.k = k
        self.transposeA = transposeA
        self.transposeB = transposeB
    }

    /// Floating-point operations of one GEMM (a multiply and an add per term).
    public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }

    /// `m×n×k`, with the transposes when any (`Aᵀ`, `Bᵀ`).
    public var description: String {
        "\(m)×\(n)×\(k)" + (transposeA ? " Aᵀ" : "") + (transposeB ? " Bᵀ" : "")
    }
}




/// The persisted form of a tuning: what `Tuner` (CloverTuning) saves per
/// device and ``GemmTuning`` applies at run time.
public struct GemmTuningRecord: Codable, Sendable, Equatable {
    /// The file format version; files of another version are ignored.
    public static let currentVersion = 1

    public var version: Int
    /// `single`: Clover's tensors are float32.
    public var precision: String
    /// The device, for people reading the file.
    public var device: String
    /// ``OpenCLDevice/cacheIdentity`` of the device tuned on; a file whose
    /// identity differs from the device's is not applied.
    public var deviceIdentity: String
    /// The parameters to apply.
    public var parameters: GemmConfiguration
    /// CLBlast's own parameters for the device, for reference.
    public var defaultParameters: GemmConfiguration?
    public var shapes: [GemmShape]
    /// GFLOP/s per shape with CLBlast's defaults and with ``parameters``.
    public var defaultGFLOPS: [Double]
    public var tunedGFLOPS: [Double]
    /// Candidates timed, and the search budget in seconds.
    public var candidatesTried: Int
    public var budgetSeconds: Double

    public init(version: Int = GemmTuningRecord.currentVersion, precision: String = "single", device: String,
                deviceIdentity: String, parameters: GemmConfiguration, defaultParameters: GemmConfiguration?,
                shapes: [GemmShape], defaultGFLOPS: [Double], tunedGFLOPS: [Double], candidatesTried: Int,
                budgetSeconds: Double) {
        self.version = version
        self.precision = precision
        self.device = device
        self.deviceIdentity = deviceIdentity
        self.parameters = parameters
        self.defaultParameters = defaultParameters
        self.shapes = shapes
        self.defaultGFLOPS = defaultGFLOPS
        self.tunedGFLOPS = tunedGFLOPS
        self.candidatesTried = candidatesTried
        self.budgetSeconds = budgetSeconds
    }
}


// MARK: - Tuning

/// Reading, overriding and applying the persisted CLBlast single-precision
/// GEMM parameters (``GemmConfiguration``) per device; the search and the
/// writing are `Tuner`'s (CloverTuning).
public enum GemmTuning {
    /// Set to `0` (or `off`, `false`, `no`) to ignore persisted parameters.
    public static let environmentVariable = "CLOVER_GEMM_TUNING"

    /// Whether persisted parameters are applied under `environment`.
    public static func isEnabled(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        guard let value = environment[environmentVariable]?.filter({ !$0.isWhitespace }).lowercased() else {
            return true
        }
        return !["0", "off", "false", "no"].contains(value)
    }

    // MARK: Reading and overriding CLBlast's parameters

    /// The parameters CLBlast uses for `P`'s kernel on `device` now: its
    /// database's entry, or the last override in this process.
    public static func currentParameters<P: CLBlastParameterSet>(_ type: P.Type, on device: OpenCLDevice) throws -> P {
        var names = [CChar](repeating: 0, count: 2048)
        var values = [Int](repeating: 0, count: 64)
        var count = 0
        let status = clover_clblast_retrieve_parameters(UnsafeMutableRawPointer(device.id), P.kernel,
                                                        Int32(CLBlastPrecisionSingle.rawValue),
                                                        &names, names.count, &values, values.count, &count)
        try checkCLBlast(CLBlastStatusCode(rawValue: status), "clblast::RetrieveParameters",
                         detail: "\(P.kernel) on \(device.description)")
        var result: [String: Int] = [:]
        var start = 0
        for i in 0..<count {
            let end = names[start...].firstIndex(of: 0)!
            result[String(decoding: names[start..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)] = values[i]
            start = end + 1
        }
        // CLBlast 1.5 lists exactly P.names; anything else is another
        // CLBlast, whose parameters this code does not know how to tune.
        return try P(result)
    }

    /// CLBlast's own parameters for `P`'s kernel on `device`: recorded
    /// before Clover first overrode them in this process, else read now.
    public static func builtinParameters<P: CLBlastParameterSet>(_ type: P.Type, on device: OpenCLDevice) throws -> P {
        if let recorded = state.withLock({ $0.builtin[key(device)]?[P.kernel] }) { return try P(recorded) }
        return try currentParameters(P.self, on: device)
    }

    /// The parameters of all three GEMM kernels in force on `device`.
    public static func currentConfiguration(on device: OpenCLDevice) throws -> GemmConfiguration {
        GemmConfiguration(xgemm: try currentParameters(XgemmParameters.self, on: device),
                          direct: try currentParameters(XgemmDirectParameters.self, on: device),
                          routine: try currentParameters(GemmRoutineParameters.self, on: device))
    }

    /// CLBlast's own parameters of all three GEMM kernels on `device`.
    public static func builtinConfiguration(on device: OpenCLDevice) throws -> GemmConfiguration {
        GemmConfiguration(xgemm: try builtinParameters(XgemmParameters.self, on: device),
                          direct: try builtinParameters(XgemmDirectParameters.self, on: device),
                          routine: try builtinParameters(GemmRoutineParameters.self, on: device))
    }

    /// Makes CLBlast use `parameters` for its kernel in every
    /// single-precision GEMM on `device` from the next call on
    /// (process-wide, every context).
    ///
    /// CLBlast cannot undo an override, so the first override of a kernel
    /// records the parameters in force before it, and
    /// ``restoreBuiltinParameters(on:)`` applies those again.
    ///
    /// - Throws: an ``OpenCLError`` naming `CLBlastOverrideParameters` and
    ///   its status when CLBlast refuses the set.
    public static func apply<P: CLBlastParameterSet>(_ parameters: P, to device: OpenCLDevice) throws {
        let k = key(device)
        if state.withLock({ $0.builtin[k]?[P.kernel] }) == nil {
            let builtin = try currentParameters(P.self, on: device)
            state.withLock { s in
                if s.builtin[k, default: [:]][P.kernel] == nil { s.builtin[k, default: [:]][P.kernel] = builtin.values }
            }
        }
        let names = P.names
        let cNames = names.map { strdup($0) }
        defer { cNames.forEach { free($0) } }
        var namePointers: [UnsafePointer<CChar>?] = cNames.map { UnsafePointer($0) }
        let values = names.map { parameters[$0] }
        let status = namePointers.withUnsafeMutableBufferPointer { np in
            values.withUnsafeBufferPointer { vp in
                CLBlastOverrideParameters(device.id, P.kernel, CLBlastPrecisionSingle, names.count,
                                          np.baseAddress, vp.baseAddress)
            }
        }
        try checkCLBlast(status, "CLBlastOverrideParameters",
                         detail: "\(P.kernel) on \(device.description): \(parameters)")
    }

    /// Applies all three kernels' parameters of `configuration`.
    public static func apply(_ configuration: GemmConfiguration, to device: OpenCLDevice) throws {
        try apply(configuration.xgemm, to: device)
        try apply(configuration.direct, to: device)
        try apply(configuration.routine, to: device)
    }

    /// Applies CLBlast's own parameters again for every kernel Clover
    /// overrode on `device` (a no-op when it overrode none).
    public static func restoreBuiltinParameters(on device: OpenCLDevice) throws {
        guard let recorded = state.withLock({ $0.builtin[key(device)] }) else { return }
        if let values = recorded[XgemmParameters.kernel] { try apply(try XgemmParameters(values), to: device) }
        if let values = recorded[XgemmDirectParameters.kernel] { try apply(try XgemmDirectParameters(values), to: device) }
        if let values = recorded[GemmRoutineParameters.kernel] { try apply(try GemmRoutineParameters(values), to: device) }
    }

    /// `value` with `digits` decimals (FoundationEssentials has no `String(format:)`).
    package static func fixed(_ value: Double, digits: Int) -> String {
        guard value.isFinite else { return "\(value)" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        let whole = Int(scaled / scale)
        let fraction = Int(scaled - Double(whole) * scale)
        let sign = value < 0 && scaled > 0 ? "-" : ""
        guard digits > 0 else { return sign + "\(whole)" }
        let digitsText = String(fraction)
        return sign + "\(whole)." + String(repeating: "0", count: digits - digitsText.count) + digitsText
    }

    // MARK: Persistence

    /// The file name for `device`'s parameters: FNV-1a of its
    /// ``OpenCLDevice/cacheIdentity``, so a new driver starts untuned.
    public static func fileName(for device: OpenCLDevice) -> String {
        fileName(identity: device.cacheIdentity)
    }

    /// The file name for the device whose ``OpenCLDevice/cacheIdentity`` is
    /// `identity` (the writer names a record's file by its identity).
    package static func fileName(identity: String) -> String {
        "clblast-xgemm-\(String(ProgramCache.fnv1a64([identity]), radix: 16)).json"
    }

    /// Where `device`'s parameters live under `directory`.
    public static func path(for device: OpenCLDevice, directory: String) -> String {
        directory + "/" + fileName(for: device)
    }

    /// The record saved for `device` under `directory`, or nil when there is none.
    ///
    /// - Throws: ``GemmTuningError/unusableFile(path:reason:)`` when the file
    ///   is not valid JSON of the current version, is for another device, or
    ///   holds parameters the device cannot run.
    public static func load(for device: OpenCLDevice, directory: String) throws -> GemmTuningRecord? {
        let path = path(for: device, directory: directory)
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let record: GemmTuningRecord
        do {
            record = try JSONDecoder().decode(GemmTuningRecord.self, from: data)
        } catch {
            throw GemmTuningError.unusableFile(path: path, reason: "not a GEMM tuning record: \(error)")
        }
        guard record.version == GemmTuningRecord.currentVersion, record.precision == "single" else {
            throw GemmTuningError.unusableFile(
                path: path, reason: "version \(record.version) \(record.precision), expected "
                    + "version \(GemmTuningRecord.currentVersion) single")
        }
        guard record.deviceIdentity == device.cacheIdentity else {
            throw GemmTuningError.unusableFile(
                path: path, reason: "for device '\(record.deviceIdentity)', not '\(device.cacheIdentity)'")
        }
        let problems = record.parameters.violations(localMemoryLimit: device.localMemoryBytes,
                                                    maxWorkGroupSize: device.maxWorkGroupSize)
        guard problems.isEmpty else {
            throw GemmTuningError.unusableFile(path: path, reason: problems.joined(separator: "; "))
        }
        return record
    }

    /// Applies the parameters saved for `device` under `directory`, unless
    /// ``environmentVariable`` is `0` or there are none.
    ///
    /// A file that cannot be used (corrupt, another version or device) is
    /// reported as a warning and ignored: CLBlast's defaults still work.
    ///
    /// - Returns: the record applied, or nil.
    /// - Throws: an ``OpenCLError`` naming `CLBlastOverrideParameters` when
    ///   CLBlast refuses the saved parameters.
    @discardableResult
    public static func applyPersisted(to device: OpenCLDevice, directory: String?,
                                      environment: [String: String] = ProcessInfo.processInfo.environment,
                                      logger: Logger = Logger(label: "clover.runtime")) throws -> GemmTuningRecord? {
        guard isEnabled(environment: environment) else {
            logger.info("""
                GEMM tuning: \(environmentVariable)=\(environment[environmentVariable] ?? ""): \
                CLBlast's default parameters on \(device.description)
                """)
            return nil
        }
        guard let directory else { return nil }
        let path = path(for: device, directory: directory)
        let record: GemmTuningRecord
        do {
            guard let loaded = try load(for: device, directory: directory) else {
                logger.debug("GEMM tuning: none saved for \(device.description) at \(path); `clover tune` makes them")
                return nil
            }
            record = loaded
        } catch let error as GemmTuningError {
            logger.warning("GEMM tuning: ignoring \(error); CLBlast's defaults stay in use")
            return nil
        }
        try apply(record.parameters, to: device)
        let gains = zip(record.tunedGFLOPS, record.defaultGFLOPS).map { fixed($0 / max($1, 1e-12), digits: 2) + "×" }
        let shapes = record.shapes.map(\.description).joined(separator: ", ")
        logger.info("""
            GEMM tuning: applied tuned CLBlast parameters to \(device.description) from \(path) \
            (measured \(gains.joined(separator: ", ")) the default's speed on \(shapes))
            """)
        return record
    }

    /// ``applyPersisted(to:directory:environment:logger:)`` for `context`'s
    /// device and program-cache directory, once per device and process:
    /// CLBlast's override is process-wide, so later contexts on the same
    /// device share it. Called by ``Device/select(_:cacheDirectory:)`` and,
    /// for contexts made otherwise, before the first GEMM.
    @discardableResult
    package static func applyPersistedOnce(_ context: OpenCLContext) throws -> GemmTuningRecord? {
        let k = key(context.device)
        if let done = state.withLock({ $0.checked[k] }) { return done.record }
        let record = try applyPersisted(to: context.device, directory: context.programs.directory,
                                        logger: context.logger)
        state.withLock { $0.checked[k] = Checked(record: record) }
        return record
    }

    /// The persisted record applied to `device` in this process, if any (a
    /// GEMM failing under tuned parameters says so).
    static func appliedRecord(on device: OpenCLDevice) -> GemmTuningRecord? {
        state.withLock { $0.checked[key(device)]?.record }
    }

    /// Whether persisted parameters were looked up for `device` in this
    /// process, and the record applied: nil when not looked up yet (for tests).
    static func persistedLookup(on device: OpenCLDevice) -> Checked? {
        state.withLock { $0.checked[key(device)] }
    }

    /// Sets what ``persistedLookup(on:)`` returns, so a test can make the
    /// next ``applyPersistedOnce(_:)`` look again and then put things back.
    static func setPersistedLookup(on device: OpenCLDevice, _ lookup: Checked?) {
        state.withLock { $0.checked[key(device)] = lookup }
    }

    // MARK: Process-wide state

    struct Checked { var record: GemmTuningRecord? }

    struct State {
        /// CLBlast's own parameters per device and kernel, recorded before
        /// Clover first overrode them.
        var builtin: [UInt: [String: [String: Int]]] = [:]
        /// Devices whose persisted parameters were looked up, with the record applied.
        var checked: [UInt: Checked] = [:]
    }

    private static let state = Mutex(State())

    private static func key(_ device: OpenCLDevice) -> UInt { UInt(bitPattern: Int(bitPattern: device.id)) }
}
