#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Clover
import CloverFiles
import CloverRuntime

// One place for tuning: `Tuner` runs the searches (CLBlast's GEMM parameters
// for a set of shapes, a convolution algorithm for one geometry and pass) and
// `TuningStore` knows where their results live and writes them. `clover tune`,
// `clover tune conv` and `clover train --autotune` all go through it.
//
// The split with Clover, which cannot depend on this module: the op library
// keeps what a run needs without tuning anything: the file names (keyed by
// the device's cache identity: name, platform and driver, so a new driver
// starts untuned), the readers of both files with their checks, applying the
// GEMM parameters (`GemmTuning.applyPersisted`) and looking up a
// convolution's choice (`ConvAlgorithmSelection`), and the primitives a
// convolution measurement needs that reach the passes' internal kernels
// (the candidates, running a pass on one). The searches themselves
// (GemmSearch.swift, ConvolutionSearch.swift), deciding what to measure and
// when, and writing both files are here.

/// Where the tuning results of devices live: one directory (the program-cache
/// directory by default) holding, per device, the CLBlast GEMM parameter file
/// and the convolution choice file, each named after the device's
/// `OpenCLDevice.cacheIdentity`.
///
/// Reading goes through Clover's readers, so what the store reads back is
/// exactly what a run would apply; writing is atomic (`AtomicFile`), so a
/// process starting meanwhile never reads half a file.
public struct TuningStore: Sendable, Equatable {
    /// The directory holding the files; created on the first save.
    public var directory: String

    /// A store in `directory`.
    public init(directory: String) {
        self.directory = directory
    }

    /// The store runs read from: `context`'s program-cache directory, or nil
    /// when it has none (no `XDG_CACHE_HOME` or `HOME`).
    public init?(_ context: OpenCLContext) {
        guard let directory = context.programs.directory else { return nil }
        self.init(directory: directory)
    }

    // MARK: GEMM parameters

    /// Where `device`'s GEMM parameters live.
    public func gemmPath(for device: OpenCLDevice) -> String {
        GemmTuning.path(for: device, directory: directory)
    }

    /// The GEMM parameters saved for `device`, or nil when there are none.
    ///
    /// - Throws: `GemmTuningError.unusableFile(path:reason:)` when the file
    ///   is not valid JSON of the current version, is for another device, or
    ///   holds parameters the device cannot run.
    public func gemmRecord(for device: OpenCLDevice) throws -> GemmTuningRecord? {
        try GemmTuning.load(for: device, directory: directory)
    }

    /// Writes `record` as the GEMM parameter file of the device it names.
    ///
    /// - Returns: the file's path.
    /// - Throws: `FileWriteError` naming the file and the call that failed.
    @discardableResult
    public func save(_ record: GemmTuningRecord) throws -> String {
        let path = directory + "/" + GemmTuning.fileName(identity: record.deviceIdentity)
        try AtomicFile.write(Self.encoded(record), to: path, createDirectories: true)
        return path
    }

    // MARK: Convolution choices

    /// Where `device`'s convolution choices live.
    public func convolutionPath(for device: OpenCLDevice) -> String {
        ConvAlgorithmSelection.path(for: device, directory: directory)
    }

    /// The convolution choices saved for `device`, or nil when there are none.
    ///
    /// - Throws: `ConvTuningFileError` when the file is not valid JSON of
    ///   the current version or is for another device.
    public func convolutionRecord(for device: OpenCLDevice) throws -> ConvTuningRecord? {
        try ConvAlgorithmSelection.load(for: device, directory: directory)
    }

    /// Writes `record` as the convolution choice file of the device it names.
    ///
    /// - Returns: the file's path.
    /// - Throws: `FileWriteError` naming the file and the call that failed.
    @discardableResult
    public func save(_ record: ConvTuningRecord) throws -> String {
        let path = directory + "/" + ConvAlgorithmSelection.fileName(identity: record.deviceIdentity)
        try AtomicFile.write(Self.encoded(record), to: path, createDirectories: true)
        return path
    }

    /// Sorted, indented JSON: the files are meant to be read and diffed.
    private static func encoded<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(value)
    }
}

/// Tunes one device: searches CLBlast GEMM parameters and convolution
/// algorithms on `context`, and saves the results to ``store``, from which
/// every later run on the device reads them.
public struct Tuner {
    /// The context searched on.
    public let context: OpenCLContext
    /// Where results are saved; nil when there is nowhere to save.
    public let store: TuningStore?

    /// A tuner for `context`'s device saving to `store`, by default the
    /// context's program-cache directory (where runs read from).
    public init(_ context: OpenCLContext, store: TuningStore? = nil) {
        self.context = context
        self.store = store ?? TuningStore(context)
    }

    /// A tuner for `device`, saving to its program-cache directory; nil for
    /// a device that runs no kernels (the CPU reference, the meta device).
    public init?(_ device: Device) {
        guard let context = device.openCL else { return nil }
        self.init(context)
    }

    /// The device searched on (name, platform, kind, driver).
    public var device: OpenCLDevice { context.device }

    // MARK: GEMM

    /// Searches for the fastest correct CLBlast GEMM parameters for
    /// `options.shapes` within `options.seconds` (the search is described at
    /// `GemmTuning.tune`, in GemmSearch.swift) and leaves the winner applied
    /// to the device. Nothing is saved: see `save(_:)`.
    ///
    /// - Parameter progress: called after each candidate.
    public func tuneGemm(_ options: GemmTuningOptions,
                         progress: ((GemmCandidateReport) -> Void)? = nil) throws -> GemmTuningResult {
        try GemmTuning.tune(context, options: options, progress: progress)
    }

    /// Saves a GEMM search's winner for the device, or returns nil when
    /// there is no ``store``.
    ///
    /// - Returns: the file's path.
    /// - Throws: `FileWriteError` naming the file and the call that failed.
    @discardableResult
    public func save(_ result: GemmTuningResult) throws -> String? {
        try store?.save(result.record)
    }

    // MARK: Convolution

    /// Checks every candidate algorithm of one convolution geometry and pass
    /// against the CPU reference on a small case, times those that are right
    /// (the fastest of `repeats` runs each), and remembers the fastest for
    /// the device in this process, where every later convolution of that
    /// geometry and pass uses it. Nothing is saved: see ``saveConvolutions()``.
    @discardableResult
    public func tuneConvolution(input: [Int], weight: [Int], parameters: Convolution2DParameters, pass: ConvPass,
                                repeats: Int = 3) throws -> ConvTuningEntry {
        try ConvolutionSearch.run(context, ConvGeometry(input: input, weight: weight, parameters: parameters,
                                                        pass: pass), repeats: repeats)
    }

    /// ``tuneConvolution(input:weight:parameters:pass:repeats:)`` for a
    /// geometry recorded by `ConvAlgorithmSelection.recordGeometries(_:)`.
    @discardableResult
    public func tuneConvolution(_ geometry: ConvGeometry, repeats: Int = 3) throws -> ConvTuningEntry {
        try ConvolutionSearch.run(context, geometry, repeats: repeats)
    }

    /// Saves every convolution choice known for the device in this process
    /// (measured now, or read from its file), or returns nil when there is
    /// no ``store``.
    ///
    /// - Returns: the file's path.
    /// - Throws: `FileWriteError` naming the file and the call that failed.
    @discardableResult
    public func saveConvolutions() throws -> String? {
        guard let store else { return nil }
        let device = context.device
        return try store.save(ConvTuningRecord(device: device.description, deviceIdentity: device.cacheIdentity,
                                               entries: ConvAlgorithmSelection.knownEntries(on: device)))
    }

    /// Whether convolutions measure an untuned geometry and pass on first use
    /// (`clover train --autotune`) and save the choices at once, instead of
    /// taking the heuristic default. Process-wide; planning contexts never
    /// measure.
    public static var autotunesConvolutions: Bool {
        get { ConvAlgorithmSelection.autotuner != nil }
        set {
            guard newValue else {
                ConvAlgorithmSelection.autotuner = nil
                return
            }
            ConvAlgorithmSelection.autotuner = { (context: OpenCLContext, geometry: ConvGeometry) throws -> ConvChoice in
                let tuner = Tuner(context)
                let entry = try tuner.tuneConvolution(geometry)
                try tuner.saveConvolutions()
                return entry.choice
            }
        }
    }
}
