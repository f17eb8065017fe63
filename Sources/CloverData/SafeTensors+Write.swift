// Apart from SafeTensors.swift, which is the format alone and compiles by
// itself for scripts/fuzz_safetensors.sh: writing a file needs CloverFiles.
import CloverFiles

extension SafeTensors {
    /// Writes the file atomically and durably: a temporary file in the same
    /// directory, flushed to disk, then renamed over `path`, so a killed run
    /// never leaves a half-written file and any earlier file at `path` is
    /// kept when writing fails.
    ///
    /// - Throws: `FileWriteError` naming `path`, the call that failed and the
    ///   system's reason (e.g. "No space left on device").
    public func write(path: String) throws {
        try AtomicFile.write(encoded(), to: path)
    }
}
