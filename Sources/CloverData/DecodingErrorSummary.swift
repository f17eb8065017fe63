#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension DecodingError {
    /// One line for a decoding error ("missing \"caption\"", "expected Int at
    /// history.[2].epoch"), instead of its nested dump: what every JSON file
    /// Clover reads (corpus lines, run progress) puts into its error.
    public var summary: String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return keys.isEmpty ? "" : " at \(keys.joined(separator: "."))"
        }
        switch self {
        case let .dataCorrupted(context):
            return context.codingPath.isEmpty ? "not valid JSON" : "bad value\(path(context))"
        case let .keyNotFound(key, context):
            return "missing \"\(key.stringValue)\"\(path(context))"
        case let .typeMismatch(type, context):
            return "expected \(type)\(path(context))"
        case let .valueNotFound(type, context):
            return "expected \(type)\(path(context)), found null"
        @unknown default:
            return "\(self)"
        }
    }
}
