import CloverRuntime
import CloverKernelScanner
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The OpenCL C sources of Clover's kernel families (`Kernels/<family>.cl`).
///
/// The sources are embedded in the binary at build time, so a program that
/// links Clover needs no source tree. For kernel development, set
/// `CLOVER_KERNEL_DIR` to a directory of `.cl` files: they are then read from
/// disk on every lookup and take precedence over the embedded copies.
public enum KernelSources {
    /// The environment variable that points at a directory of `.cl` files.
    public static let directoryVariable = "CLOVER_KERNEL_DIR"

    /// Names of every embedded kernel family, sorted.
    public static var embeddedFamilies: [String] {
        embeddedKernelSources.keys.sorted()
    }

    /// The directory named by `CLOVER_KERNEL_DIR`, if set and non-empty.
    public static var overrideDirectory: String? {
        guard let dir = ProcessInfo.processInfo.environment[directoryVariable], !dir.isEmpty else {
            return nil
        }
        return dir
    }

    /// The source text of one kernel family.
    ///
    /// - Throws: ``KernelSourceError/missingFamily(_:searched:)`` when neither
    ///   the override directory nor the embedded set holds the family.
    ///
    /// `#include "NAME"` lines are replaced by the shared header `NAME`
    /// (`Kernels/include/NAME`, embedded, or from `CLOVER_KERNEL_DIR/include`),
    /// once per program: the returned text is complete, so the program cache
    /// keys on the headers too.
    public static func source(family: String) throws -> String {
        try resolvingIncludes(rawSource(family: family), in: family)
    }

    private static func rawSource(family: String) throws -> String {
        if let dir = overrideDirectory {
            let path = dir.hasSuffix("/") ? dir + family + ".cl" : dir + "/" + family + ".cl"
            if let data = FileManager.default.contents(atPath: path) {
                return String(decoding: data, as: UTF8.self)
            }
            throw KernelSourceError.missingFamily(family, searched: path)
        }
        if let text = embeddedKernelSources[family] {
            return text
        }
        throw KernelSourceError.missingFamily(family, searched: "embedded kernels \(embeddedFamilies)")
    }

    /// The text of a shared header, from the override directory's
    /// `include/` or the embedded copies.
    private static func header(_ name: String, for family: String) throws -> String {
        if let dir = overrideDirectory {
            let path = (dir.hasSuffix("/") ? dir : dir + "/") + "include/" + name
            if let data = FileManager.default.contents(atPath: path) { return String(decoding: data, as: UTF8.self) }
            throw KernelSourceError.missingHeader(name, family: family, searched: path)
        }
        if let text = embeddedKernelHeaders[name] { return text }
        throw KernelSourceError.missingHeader(name, family: family,
                                              searched: "embedded headers \(embeddedKernelHeaders.keys.sorted())")
    }

    /// `source` with each `#include "NAME"` line replaced by the header's
    /// text (each header at most once; headers may include others).
    static func resolvingIncludes(_ source: String, in family: String) throws -> String {
        var included = Set<String>()
        func expand(_ text: String) throws -> String {
            var out: [Substring] = []
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                let trimmed = line.drop(while: { $0 == " " || $0 == "\t" })
                guard trimmed.hasPrefix("#include"), let open = trimmed.firstIndex(of: "\""),
                      let close = trimmed[trimmed.index(after: open)...].firstIndex(of: "\"") else {
                    out.append(line)
                    continue
                }
                let name = String(trimmed[trimmed.index(after: open)..<close])
                if included.insert(name).inserted {
                    out.append(Substring(try expand(try header(name, for: family))))
                }
            }
            return out.joined(separator: "\n")
        }
        return try expand(source)
    }

    /// Every `__kernel` function name declared in a source text, in order.
    /// Comments are skipped, so a header that mentions a kernel does not count.
    public static func kernelNames(in source: String) -> [String] {
        KernelScanner.kernelNames(in: source)
    }
}

/// A `__kernel` function of a kernel family (`Kernels/<family>.cl`).
///
/// Every declared kernel has a static constant, generated at build time from
/// the kernel files (`KernelName.bnNormalize`, `KernelName.im2col`, …), so a
/// typo in a kernel name fails to compile.
public struct KernelName: Hashable, Sendable, CustomStringConvertible {
    /// The family: the kernel file's name without `.cl`.
    public let family: String
    /// The `__kernel` function's name.
    public let name: String

    public init(family: String, name: String) {
        self.family = family
        self.name = name
    }

    /// `family/name`, as launch counts and coverage reports show it.
    public var description: String { family + "/" + name }
}

/// The arguments of one `__kernel`, field by field in its parameter order.
///
/// One conforming struct per kernel is generated at build time from the
/// kernel files' signatures (`DepthwiseForwardArguments`, …): a `__global`
/// pointer followed by its `ulong …_off` is one `BufferView` field, `int` an
/// `Int32`, `__local` a ``LocalMemory``. A launch built from one cannot pass
/// too few, too many or misordered arguments, and the runtime checks that it
/// is the launched kernel's.
public protocol KernelArguments {
    /// The kernel these arguments are for.
    static var kernel: KernelName { get }
    /// The values in slot order, buffers expanded to pointer and offset.
    var values: [KernelArgument] { get }
}

/// The `-D` macros of one kernel family, field by field as its file's header
/// lists them (the `// Macros:` section, CLBlast's contract).
///
/// One conforming struct per family that takes macros is generated at build
/// time (`ConvgemmDefines`, `NormalizationDefines`, …): a misspelt macro, or
/// one the header does not document, fails to compile, and the kernel look-up
/// refuses another family's defines. An unset field leaves the kernel's
/// default.
public protocol KernelDefines {
    /// The family (`Kernels/<family>.cl`) these macros are for.
    static var family: String { get }
    /// The set macros as `-D NAME=VALUE` pairs.
    var values: [String: String] { get }
}

/// A value a kernel macro can take: an integer, a flag (1 or 0) or a
/// symbol the kernel file defines (`ACT_RELU`).
public protocol KernelDefineValue {
    /// The text after `-D NAME=`.
    var defineText: String { get }
}

extension Int: KernelDefineValue {
    public var defineText: String { String(self) }
}

extension Bool: KernelDefineValue {
    public var defineText: String { self ? "1" : "0" }
}

extension String: KernelDefineValue {
    public var defineText: String { self }
}

/// A kernel family that could not be found.
public enum KernelSourceError: Error, CustomStringConvertible {
    case missingFamily(String, searched: String)
    /// A `#include "NAME"` of a kernel family that names no shared header.
    case missingHeader(String, family: String, searched: String)

    public var description: String {
        switch self {
        case let .missingFamily(family, searched):
            return "kernel family '\(family)' not found (searched \(searched))"
        case let .missingHeader(name, family, searched):
            return "header '\(name)' included by kernel family '\(family)' not found (searched \(searched))"
        }
    }
}
