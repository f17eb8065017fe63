import CloverFiles
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A problem with a data set file or with arguments given to CloverData.
///
/// `source` is the file at fault (or, for a bad argument, the function or data
/// set it was given to), so the description always says where to look.
public struct DataError: Error, CustomStringConvertible, Sendable {
    /// The file path, or the API that rejected an argument.
    public let source: String
    /// What is wrong, in words.
    public let reason: String

    public init(_ source: String, _ reason: String) {
        self.source = source
        self.reason = reason
    }

    public var description: String { "\(source): \(reason)" }
}

extension DataError {
    /// A file this target writes that could not be written, as a data
    /// error: the file, the system's reason and the call that failed.
    init(_ error: FileWriteError) {
        self.init(error.path, "cannot be written: \(error.reason) (\(error.failedCall))")
    }
}

/// The whole file at `path`, or an error that names it.
func readFileContents(atPath path: String) throws -> Data {
    guard FileManager.default.fileExists(atPath: path) else { throw DataError(path, "no such file") }
    guard let data = FileManager.default.contents(atPath: path) else {
        throw DataError(path, "cannot be read (a directory, or no permission)")
    }
    return data
}

/// `value` as eight hexadecimal digits, for magic numbers in messages.
func hex32(_ value: UInt32) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}
