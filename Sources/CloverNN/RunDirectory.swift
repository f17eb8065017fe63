import Clover
import CloverData
import CloverFiles
#if canImport(FoundationEssentials)
import FoundationEssentials
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a run stands: written with every checkpoint.
public struct RunProgress: Codable, Sendable {
    /// The model's zoo name.
    public var model: String
    /// The training data set's name.
    public var dataset: String
    public var epochsDone: Int
    /// Every epoch's figures so far, in order.
    public var history: [EpochMetrics]
    /// The checkpoint generation the file belongs to; nil in progress files
    /// written before checkpoints had generations.
    public var generation: Int? = nil

    public init(model: String, dataset: String, epochsDone: Int, history: [EpochMetrics], generation: Int? = nil) {
        (self.model, self.dataset, self.epochsDone, self.history, self.generation) =
            (model, dataset, epochsDone, history, generation)
    }
}

/// A checkpoint that cannot be written, read or trusted, as one line naming
/// the file and the reason.
public struct CheckpointError: Error, CustomStringConvertible {
    public let description: String

    init(_ description: String) { self.description = description }

    /// `what path: reason` from a C library error number, lower-cased as in
    /// "no space left on device".
    static func system(_ what: String, _ path: String, _ code: Int32) -> CheckpointError {
        CheckpointError("\(what) \(path): \(String(cString: strerror(code)).lowercased())")
    }

    /// A failed write in the same style: the file, the lower-cased reason,
    /// then the call that failed.
    init(_ error: FileWriteError) {
        self.init("cannot write \(error.path): \(error.reason.lowercased()) (\(error.failedCall))")
    }
}

/// A training run's output directory: checkpoints, progress and metrics.
///
/// Each checkpoint is one unit: model, optimiser, progress and metrics are
/// written into a fresh generation directory (`checkpoint-000007`), flushed
/// to disk, and only then does the symbolic link `current` switch to it, by
/// one atomic rename. The files a user opens (`model.safetensors`,
/// `progress.json`, ...) are fixed links into `current`, so they change
/// together. A run killed at any moment, or stopped by a full disk, leaves
/// `current` on the previous complete checkpoint, which is deleted only after
/// the switch. Run directories from before generations (the five files as
/// plain files) are still read, and converted by the next save.
public struct RunDirectory {
    /// The directory.
    public let path: String
    /// What error messages call the directory (the option that named it,
    /// e.g. `--out`).
    public let label: String

    /// Writes one checkpoint file; a test substitutes it to fail a chosen
    /// file the way a full disk does.
    var writeFile: (Data, String) throws -> Void = RunDirectory.writeDurably

    /// The files of a checkpoint, each linked from the run directory into
    /// `current`.
    public static let files = ["model.safetensors", "optimizer.safetensors", "progress.json", "metrics.json", "metrics.csv"]

    /// Opens (creating if needed) the run directory; an error, starting with
    /// `label`, says in one line why `path` cannot hold a run (a file, not
    /// writable, ...).
    public init(path: String, label: String = "run directory") throws {
        self.path = path
        self.label = label
        var info = stat()
        if stat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw CheckpointError("\(label) \(path) is a file, not a directory")
            }
        } else {
            do {
                try Self.makeDirectories(path)
            } catch {
                throw CheckpointError("\(label) \(path): \(error)")
            }
        }
        guard access(path, W_OK | X_OK) == 0 else {
            throw CheckpointError.system("\(label): cannot write into", path, errno)
        }
    }

    /// The model file `checkpoint` names: a `.safetensors` file itself, or
    /// the `model.safetensors` of a run directory.
    public static func modelFile(_ checkpoint: String) -> String {
        checkpoint.hasSuffix(".safetensors") ? checkpoint : checkpoint + "/model.safetensors"
    }

    /// How NaN and infinities appear in progress.json and metrics.json.
    static let nonFinite = JSONEncoder.NonConformingFloatEncodingStrategy.convertToString(
        positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
    static let nonFiniteDecoding = JSONDecoder.NonConformingFloatDecodingStrategy.convertFromString(
        positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")

    /// Metadata keys that tie model and optimiser files to their progress.
    static let generationKey = "clover.generation"
    static let epochsKey = "clover.epochs_done"

    // MARK: Saving

    /// Writes a checkpoint as one unit (see the type's note).
    ///
    /// Throws, writing nothing, when a parameter, buffer or optimiser state
    /// holds NaN or an infinity: a diverged model must never replace the
    /// last good checkpoint. A write error (e.g. "no space left on device")
    /// names the file, removes the partial generation and keeps the
    /// previous checkpoint current.
    public func saveCheckpoint(model: Module, optimizer: Optimizer, progress: RunProgress) throws {
        var weights = try model.stateDict()
        var state = try optimizer.stateDict()
        try Self.requireFinite(weights, file: "model.safetensors", epoch: progress.epochsDone, run: path)
        try Self.requireFinite(state, file: "optimizer.safetensors", epoch: progress.epochsDone, run: path)
        let generation = (try existingGenerations().max() ?? 0) + 1
        var progress = progress
        progress.generation = generation
        for key in [Self.generationKey, Self.epochsKey] {
            let value = key == Self.generationKey ? generation : progress.epochsDone
            weights.metadata[key] = "\(value)"
            state.metadata[key] = "\(value)"
        }
        let name = Self.generationName(generation)
        let directory = path + "/" + name
        do {
            try Self.makeDirectories(directory)
            try writeFile(weights.encoded(), directory + "/model.safetensors")
            try writeFile(state.encoded(), directory + "/optimizer.safetensors")
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            // An evaluation can legitimately give a non-finite loss (a deep net in
            // eval mode whose BN statistics have seen one batch overflows); JSON
            // has no literal for it, so it is written as a string Python's
            // float() reads, instead of failing the run after its work is done.
            encoder.nonConformingFloatEncodingStrategy = Self.nonFinite
            try writeFile(encoder.encode(progress), directory + "/progress.json")
            try writeFile(encoder.encode(progress.history), directory + "/metrics.json")
            var csv = "epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds,images_per_second,learning_rate\n"
            for m in progress.history {
                csv += "\(m.epoch),\(m.trainLoss),\(m.trainAccuracy),\(m.testLoss),\(m.testAccuracy),\(m.seconds),\(m.imagesPerSecond),\(m.learningRate)\n"
            }
            try writeFile(Data(csv.utf8), directory + "/metrics.csv")
            // The directory entries must be on disk before `current` names them.
            Self.syncDirectory(directory)
        } catch {
            // Frees what the partial generation took (on a full disk, all of it).
            Self.removeTree(directory)
            throw CheckpointError("checkpoint of epoch \(progress.epochsDone) not saved: \(error); "
                                  + "the previous checkpoint in \(path) is kept")
        }
        // The commit point: one rename switches every file to the new epoch.
        try Self.replaceLink(path + "/current", target: name)
        Self.syncDirectory(path)
        for file in Self.files where Self.linkTarget(path + "/" + file) != "current/" + file {
            // Replaces a plain file of the old layout, or a missing link, atomically.
            try Self.replaceLink(path + "/" + file, target: "current/" + file)
        }
        Self.syncDirectory(path)
        for old in try existingGenerations() where old != generation {
            Self.removeTree(path + "/" + Self.generationName(old))
        }
        // Links a killed run was about to rename into place (named `current.tmp-PID`
        // by versions before AtomicFile).
        for entry in try entries() where (Self.files + ["current"]).contains(where: { name in
            entry.hasPrefix(name + ".tmp-") || entry.hasPrefix(AtomicFile.temporaryPrefix(for: name))
        }) {
            unlink(path + "/" + entry)
        }
    }

    /// Throws when any value in `file` is NaN or infinite, naming the tensor.
    static func requireFinite(_ file: SafeTensors, file name: String, epoch: Int, run: String) throws {
        for tensor in file.names {
            guard let values = file[tensor]?.values else { continue }
            if let bad = values.first(where: { !$0.isFinite }) {
                let count = values.reduce(0) { $0 + ($1.isFinite ? 0 : 1) }
                throw CheckpointError("after epoch \(epoch), \(tensor) (\(name)) holds \(count) non-finite value(s) "
                                      + "such as \(bad): training diverged; lower --lr. The last good checkpoint in "
                                      + "\(run) is kept")
            }
        }
    }

    // MARK: Loading

    /// Reads progress.json of the current checkpoint and checks it, without
    /// loading any weights. `epochLimit` is the `--epochs` of the resuming
    /// run: a checkpoint already past it is an error, not a trap.
    public func readProgress(epochLimit: Int? = nil) throws -> RunProgress {
        let directory = try checkpointDirectory()
        let file = directory + "/progress.json"
        guard let data = FileManager.default.contents(atPath: file) else {
            throw CheckpointError("no checkpoint in \(path) (\(file) is missing or unreadable)")
        }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = Self.nonFiniteDecoding
        let progress: RunProgress
        do {
            progress = try decoder.decode(RunProgress.self, from: data)
        } catch let error as DecodingError {
            throw CheckpointError("\(file) is not a valid progress file: \(error.summary)")
        } catch {
            throw CheckpointError("\(file) is not a valid progress file: \(error)")
        }
        guard progress.epochsDone >= 0 else {
            throw CheckpointError("\(file): epochsDone is \(progress.epochsDone); it must be 0 or more")
        }
        if let epochLimit, progress.epochsDone > epochLimit {
            throw CheckpointError("\(path) has already trained \(progress.epochsDone) epoch(s), more than --epochs "
                                  + "\(epochLimit); to continue, pass --epochs above \(progress.epochsDone) (it counts "
                                  + "the epochs done)")
        }
        return progress
    }

    /// Loads the current checkpoint into `model` and `optimizer` and returns
    /// its progress; refuses model or optimiser files whose generation or
    /// epoch differs from progress.json's.
    public func loadCheckpoint(model: Module, optimizer: Optimizer, epochLimit: Int? = nil) throws -> RunProgress {
        let progress = try readProgress(epochLimit: epochLimit)
        let directory = try checkpointDirectory()
        let weights = try SafeTensors.read(path: directory + "/model.safetensors")
        let state = try SafeTensors.read(path: directory + "/optimizer.safetensors")
        for (file, name) in [(weights, "model.safetensors"), (state, "optimizer.safetensors")] {
            try Self.requireSameEpoch(file, name: directory + "/" + name, progress: progress)
        }
        // Name the file a mismatch comes from (another model, another --optimizer).
        do { try model.loadStateDict(weights) } catch {
            throw CloverError.invalidArgument(op: "resume", reason: "\(directory)/model.safetensors: \(error)")
        }
        do { try optimizer.loadStateDict(state) } catch {
            throw CloverError.invalidArgument(op: "resume", reason: "\(directory)/optimizer.safetensors: \(error) "
                + "(was the run started with another --optimizer?)")
        }
        return progress
    }

    /// The directory holding the checkpoint to resume: the target of
    /// `current`, or the run directory itself in the old flat layout.
    private func checkpointDirectory() throws -> String {
        let current = path + "/current"
        guard Self.linkTarget(current) != nil else { return path }
        var info = stat()
        guard stat(current, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw CheckpointError("\(current) points at no checkpoint directory (\(Self.linkTarget(current) ?? "?"))")
        }
        return current
    }

    private static func requireSameEpoch(_ file: SafeTensors, name: String, progress: RunProgress) throws {
        // Files of the old layout carry no generation; nothing to compare.
        if let generation = file.metadata[generationKey], let expected = progress.generation,
           generation != "\(expected)" {
            throw CheckpointError("inconsistent checkpoint: \(name) is generation \(generation), progress.json "
                                  + "generation \(expected)")
        }
        if let epochs = file.metadata[epochsKey], epochs != "\(progress.epochsDone)" {
            throw CheckpointError("inconsistent checkpoint: \(name) is from epoch \(epochs), progress.json says "
                                  + "\(progress.epochsDone) epoch(s) done")
        }
    }

    // MARK: Generations and links

    static func generationName(_ generation: Int) -> String {
        let digits = String(generation)
        return "checkpoint-" + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }

    /// The generation numbers of the checkpoint directories present,
    /// complete or not.
    private func existingGenerations() throws -> [Int] {
        try entries().compactMap { name in
            guard name.hasPrefix("checkpoint-") else { return nil }
            let digits = name.dropFirst("checkpoint-".count)
            guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            return Int(digits)
        }
    }

    /// The names in the run directory.
    private func entries() throws -> [String] {
        guard let directory = opendir(path) else { throw CheckpointError.system("cannot list", path, errno) }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            names.append(withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            })
        }
        return names
    }

    /// The target of the symbolic link at `path`, or nil if it is none.
    static func linkTarget(_ path: String) -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { readlink(path, $0.baseAddress!.assumingMemoryBound(to: CChar.self), 4095) }
        guard n >= 0 else { return nil }
        return String(decoding: buffer[..<n], as: UTF8.self)
    }

    /// Points `path` at `target` by renaming a fresh link over it: atomic.
    private static func replaceLink(_ path: String, target: String) throws {
        do {
            try AtomicFile.replaceSymbolicLink(at: path, pointingTo: target)
        } catch let error as FileWriteError {
            throw CheckpointError(error)
        }
    }

    // MARK: Files

    /// Writes `data` to `path` and flushes it to disk; an error names the
    /// file and the system's reason. Atomic too, though the generation
    /// directory is new: one helper writes every file.
    static func writeDurably(_ data: Data, to path: String) throws {
        do {
            try AtomicFile.write(data, to: path)
        } catch let error as FileWriteError {
            throw CheckpointError(error)
        }
    }

    /// `mkdir -p`, naming the component that fails.
    private static func makeDirectories(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw CheckpointError.system("cannot create directory", prefix, errno)
            }
        }
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw CheckpointError("cannot create directory \(path): a file of that name is in the way")
        }
    }

    /// Flushes a directory's entries (renames, new files) to disk; best
    /// effort, as some file systems refuse to sync directories.
    private static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    /// Removes a directory tree; best effort (it only ever holds files).
    private static func removeTree(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }
}
