// One way to replace a file on disk, for every writer in the package: the
// tuning files, the program-binary cache, checkpoints, reports. Each used to
// carry its own copy of temp-then-rename, each with its own error handling
// (and one reported a full disk as a bad conv2d argument); this is the copy
// they share, and `FileWriteError` is the one error that reaches a user.
//
// C library calls rather than `Data.write(to:options: .atomic)`: a failure
// must say which call failed and why ("No space left on device"), where
// Foundation's errors print as raw `CocoaError` dumps, and the executables
// link FoundationEssentials only.
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

/// A file that could not be written: the file meant, the system call that
/// failed, what that call worked on, and the system's reason.
///
/// Its description reads, for example,
/// `cannot write /runs/a/progress.json: No space left on device (write /runs/a/.progress.json.tmp-4711-0)`.
public struct FileWriteError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The step of a write that failed, named after its system call.
    public enum Call: String, Sendable, CaseIterable {
        /// Creating a missing parent directory (`mkdir`).
        case makeDirectory = "mkdir"
        /// Creating the temporary file (`open`).
        case open
        /// Writing the bytes (`write`).
        case write
        /// Flushing them to the device (`fsync`).
        case flush = "fsync"
        /// Creating the temporary symbolic link (`symlink`).
        case symlink
        /// Moving the temporary file over the destination (`rename`).
        case rename
    }

    /// The file that was to be written.
    public let path: String
    /// The call that failed.
    public let call: Call
    /// What the call worked on: the directory, the temporary file or link,
    /// or for ``Call/rename`` the temporary file.
    public let operand: String
    /// The C library error number.
    public let code: Int32

    public init(path: String, call: Call, operand: String, code: Int32) {
        self.path = path
        self.call = call
        self.operand = operand
        self.code = code
    }

    /// The system's text for ``code``, e.g. "Permission denied".
    public var reason: String { String(cString: strerror(code)) }

    /// The failing call and its operand, e.g. `rename /a/.x.tmp-1-0 to /a/x`.
    public var failedCall: String {
        call == .rename ? "rename \(operand) to \(path)" : "\(call.rawValue) \(operand)"
    }

    public var description: String { "cannot write \(path): \(reason) (\(failedCall))" }
}

/// Replaces files (and symbolic links) all at once: the new content goes to
/// a temporary file in the same directory, which is then renamed over the
/// destination.
///
/// `rename` within one file system is atomic, so a reader, a process that
/// starts meanwhile, or a run killed half-way sees either the old file or
/// the new one, never part of one. On failure the temporary file is removed
/// and any earlier file at the path is left as it was.
public enum AtomicFile {
    /// Writes `bytes` to `path`, replacing what is there.
    ///
    /// - Parameters:
    ///   - bytes: the file's new content.
    ///   - path: the destination; its directory must be on the same file
    ///     system as the temporary file, which it is, being the same.
    ///   - createDirectories: create the missing directories above `path`
    ///     first (as `mkdir -p` does).
    ///   - durable: `fsync` the content before the rename, so that after a
    ///     power loss the path holds the old file or the complete new one,
    ///     not an empty one. A cache whose entries are checked on reading
    ///     can skip it.
    /// - Throws: ``FileWriteError`` naming `path` and the call that failed.
    public static func write(_ bytes: [UInt8], to path: String, createDirectories: Bool = false,
                             durable: Bool = true) throws {
        try bytes.withUnsafeBytes {
            try write(raw: $0, to: path, createDirectories: createDirectories, durable: durable)
        }
    }

    /// Writes `data` to `path`, replacing what is there, as the `[UInt8]`
    /// overload does.
    public static func write(_ data: Data, to path: String, createDirectories: Bool = false,
                             durable: Bool = true) throws {
        try data.withUnsafeBytes {
            try write(raw: $0, to: path, createDirectories: createDirectories, durable: durable)
        }
    }

    /// Writes `text` as UTF-8 to `path`, replacing what is there, as the
    /// `[UInt8]` overload does.
    public static func write(_ text: String, to path: String, createDirectories: Bool = false,
                             durable: Bool = true) throws {
        try write(Array(text.utf8), to: path, createDirectories: createDirectories, durable: durable)
    }

    /// Points the symbolic link `path` at `target`, replacing whatever is at
    /// `path` (a link, or a plain file) in one rename.
    ///
    /// - Throws: ``FileWriteError`` naming `path` and the call that failed.
    public static func replaceSymbolicLink(at path: String, pointingTo target: String) throws {
        let temporary = temporaryPath(for: path)
        unlink(temporary)
        guard symlink(target, temporary) == 0 else {
            throw FileWriteError(path: path, call: .symlink, operand: temporary, code: errno)
        }
        try rename(temporary, over: path)
    }

    /// Where a write to `path` by this process puts its content first: a
    /// hidden, unique name in `path`'s directory, so the rename stays within
    /// one file system and a directory listing does not show it.
    ///
    /// Every name starts with ``temporaryPrefix(for:)``, by which a cleanup
    /// can find the leftovers of a killed process.
    public static func temporaryPath(for path: String) -> String {
        // The counter keeps two threads writing one path from sharing a file.
        let serial = counter.wrappingAdd(1, ordering: .relaxed).oldValue
        return temporaryPrefix(for: path) + "\(getpid())-\(serial)"
    }

    /// The start of every temporary name ``temporaryPath(for:)`` gives `path`,
    /// whatever the process.
    public static func temporaryPrefix(for path: String) -> String {
        let (directory, name) = split(path)
        return directory + "." + name + ".tmp-"
    }

    // MARK: Implementation

    private static let counter = Atomic<Int>(0)

    private static func write(raw: UnsafeRawBufferPointer, to path: String, createDirectories: Bool,
                              durable: Bool) throws {
        if createDirectories {
            // The directory without its trailing slash; empty for the root or a bare name.
            let parent = String(split(path).directory.dropLast())
            if !parent.isEmpty { try makeDirectories(parent, for: path) }
        }
        let temporary = temporaryPath(for: path)
        // A file of this name is a dead process's leftover (the name holds
        // this process's id, and the serial is unique within it): in a
        // container the same pid comes back run after run.
        unlink(temporary)
        // O_EXCL: never write through a link someone puts there meanwhile;
        // 0o666 as creat(2) and fopen use, the umask decides the rest.
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw FileWriteError(path: path, call: .open, operand: temporary, code: errno) }
        func abandon(_ call: FileWriteError.Call, _ code: Int32) -> FileWriteError {
            close(fd)
            unlink(temporary)
            return FileWriteError(path: path, call: call, operand: temporary, code: code)
        }
        var written = 0
        while written < raw.count {
            let n = systemWrite(fd, raw.baseAddress! + written, raw.count - written)
            if n < 0 && errno == EINTR { continue }
            // A write that makes no progress is a full disk in practice.
            guard n > 0 else { throw abandon(.write, n == 0 ? ENOSPC : errno) }
            written += n
        }
        if durable && fsync(fd) != 0 { throw abandon(.flush, errno) }
        // close can report a deferred write error (NFS, quota).
        guard close(fd) == 0 else {
            let code = errno
            unlink(temporary)
            throw FileWriteError(path: path, call: .write, operand: temporary, code: code)
        }
        try rename(temporary, over: path)
    }

    private static func rename(_ temporary: String, over path: String) throws {
        guard systemRename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw FileWriteError(path: path, call: .rename, operand: temporary, code: code)
        }
    }

    /// `mkdir -p directory`, naming the component that fails; `ENOTDIR` when a
    /// file of that name is in the way.
    private static func makeDirectories(_ directory: String, for path: String) throws {
        var prefix = directory.hasPrefix("/") ? "" : "."
        for component in directory.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o777) != 0 && errno != EEXIST {
                throw FileWriteError(path: path, call: .makeDirectory, operand: prefix, code: errno)
            }
        }
        var info = stat()
        guard stat(directory, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw FileWriteError(path: path, call: .makeDirectory, operand: directory, code: ENOTDIR)
        }
    }

    /// `path`'s directory with its trailing slash ("" for a bare name), and
    /// its last component.
    private static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return ("", path) }
        return (String(path[...slash]), String(path[path.index(after: slash)...]))
    }
}

// At file scope, where the C functions are not hidden by AtomicFile's own
// `write` and `rename`.
private func systemWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, bytes, count)
}

private func systemRename(_ from: String, _ to: String) -> Int32 {
    rename(from, to)
}
