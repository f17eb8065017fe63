import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Output helpers: `FoundationEssentials` has no `FileHandle`, so standard
/// error is written through the C library.
enum Console {
    /// Writes one line to standard error.
    static func error(_ message: String) {
        fputs(message + "\n", stderr)
    }

    /// Flushes standard output, so progress lines appear as they happen even
    /// when the output is piped (e.g. through `tee` in CI logs).
    static func flush() {
        fflush(stdout)
    }

    /// Runs a command's body, turning any error but an `ExitCode` (already
    /// reported) into a printed message and a failure exit.
    static func reportingFailures(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch let error as ExitCode {
            throw error
        } catch {
            throw fail(error)
        }
    }

    /// Prints `error`'s description (every Clover error is
    /// `CustomStringConvertible`) and returns the exit code to throw, so
    /// that no error reaches ArgumentParser's generic handler or traps.
    static func fail(_ error: Error, context: String? = nil) -> ExitCode {
        flush()
        if let context {
            self.error("error: \(context): \(error)")
        } else {
            self.error("error: \(error)")
        }
        return .failure
    }
}
