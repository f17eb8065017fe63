/// Reads the `__kernel` functions a kernel source declares. Used at build
/// time by `embed-kernels` (to generate typed kernel names) and at run time
/// by `KernelSources` (coverage checks), so both read a file the same way.
public enum KernelScanner {
    /// Every `__kernel` function name declared in a source text, in order.
    /// Comments are skipped, so a header that mentions a kernel does not count.
    public static func kernelNames(in source: String) -> [String] {
        let code = stripComments(source)
        var tokens: [Substring] = []
        var start = code.startIndex
        var inToken = false
        for index in code.indices {
            let ch = code[index]
            let isIdent = ch == "_" || ch.isLetter || ch.isNumber
            if isIdent && !inToken { start = index; inToken = true }
            if !isIdent && inToken { tokens.append(code[start..<index]); inToken = false }
        }
        if inToken { tokens.append(code[start...]) }
        var names: [String] = []
        var i = 0
        while i < tokens.count {
            guard tokens[i] == "__kernel" else { i += 1; continue }
            var j = i + 1
            while j < tokens.count && tokens[j] != "void" { j += 1 }
            if j + 1 < tokens.count { names.append(String(tokens[j + 1])) }
            i = j + 1
        }
        return names
    }

    /// One parameter of a `__kernel` function: its OpenCL C type with the
    /// qualifiers that matter for passing it (`__global float*`,
    /// `__local float*`, `int`, `ulong`, `int8`, …) and its name.
    public struct Parameter: Equatable, Sendable {
        public let type: String
        public let name: String

        public init(type: String, name: String) {
            self.type = type
            self.name = name
        }
    }

    /// A `__kernel` function's name and parameters, in declaration order.
    public struct Signature: Equatable, Sendable {
        public let name: String
        public let parameters: [Parameter]
    }

    /// Every `__kernel` function of a source text with its parameter list.
    /// `const`, `restrict` and `volatile` are dropped from the types (they do
    /// not change how an argument is passed); a parameter list holding a
    /// preprocessor line is an error, since its parameters would depend on the
    /// build's macros.
    public static func kernelSignatures(in source: String) throws -> [Signature] {
        let code = stripComments(source)
        var signatures: [Signature] = []
        var rest = code[...]
        while let range = rest.firstRange(of: "__kernel") {
            rest = rest[range.upperBound...]
            // The name is the identifier before the first "(" that follows `void`
            // (attributes such as reqd_work_group_size(...) come before `void`).
            guard let void = rest.firstRange(of: "void") else { break }
            rest = rest[void.upperBound...]
            guard let open = rest.firstIndex(of: "(") else { break }
            let name = String(rest[..<open].filter { !$0.isWhitespace })
            var depth = 0, close = open
            for index in rest[open...].indices {
                if rest[index] == "(" { depth += 1 }
                if rest[index] == ")" { depth -= 1; if depth == 0 { close = index; break } }
            }
            let list = rest[rest.index(after: open)..<close]
            rest = rest[close...]
            if list.contains("#") {
                throw ScanError.conditionalParameters(kernel: name)
            }
            var parameters: [Parameter] = []
            for piece in list.split(separator: ",") {
                let words = piece.split(whereSeparator: \.isWhitespace)
                    .map(String.init).filter { !["const", "restrict", "volatile"].contains($0) }
                guard var last = words.last, words.count >= 2 else {
                    if words.count == 1 && words[0] == "void" { continue }
                    throw ScanError.unreadableParameter(kernel: name, text: String(piece))
                }
                var type = words.dropLast().joined(separator: " ")
                // `float *x` and `float* x` alike.
                while last.hasPrefix("*") { type += "*"; last.removeFirst() }
                type = type.replacing(" *", with: "*")
                parameters.append(Parameter(type: type, name: last))
            }
            signatures.append(Signature(name: name, parameters: parameters))
        }
        return signatures
    }

    /// The macros a kernel file's header says it takes: its `// Macros:`
    /// section (CLBlast's header contract), one item per line of the form
    /// `//   NAME   what it does` or `//   NAME, NAME2   …` (three spaces
    /// after `//`; deeper lines continue an item), or names on the `Macros:`
    /// line itself (`// Macros: MMA_EMULATE (mma.h): …`). `none` and a file
    /// without the section take no macros. The section ends at a blank
    /// comment line or the end of the comment block.
    public static func declaredMacros(in source: String) -> [String] {
        let lines = source.split(separator: "\n", omittingEmptySubsequences: false)
        guard let start = lines.firstIndex(where: { $0.hasPrefix("// Macros:") }) else { return [] }
        var names: [String] = []
        func leadingNames(_ text: Substring) -> [String] {
            // NAME(, NAME)* followed by a space, a parenthesis or the end.
            var found: [String] = []
            var rest = text
            while true {
                let name = rest.prefix { $0.isUppercase || $0.isNumber || $0 == "_" }
                guard let first = name.first, first.isUppercase || first == "_", name.count >= 2 else { break }
                found.append(String(name))
                rest = rest.dropFirst(name.count)
                guard rest.hasPrefix(", ") else { break }
                rest = rest.dropFirst(2)
            }
            let next = rest.first
            return next == nil || next == " " || next == "(" || next == ":" ? found : []
        }
        let first = lines[start].dropFirst("// Macros:".count).drop { $0 == " " }
        if first.lowercased().hasPrefix("none") { return [] }
        names += leadingNames(first)
        for line in lines[(start + 1)...] {
            guard line.hasPrefix("//"), line.drop(while: { $0 == "/" }).contains(where: { $0 != " " }) else { break }
            guard line.hasPrefix("//   "), let c = line.dropFirst(5).first, c != " " else { continue }
            names += leadingNames(line.dropFirst(5))
        }
        var seen = Set<String>()
        return names.filter { seen.insert($0).inserted }
    }

    /// A kernel signature the scanner cannot turn into typed arguments.
    public enum ScanError: Error, CustomStringConvertible {
        case conditionalParameters(kernel: String)
        case unreadableParameter(kernel: String, text: String)

        public var description: String {
            switch self {
            case .conditionalParameters(let kernel):
                return "kernel \(kernel): a preprocessor line inside the parameter list"
            case let .unreadableParameter(kernel, text):
                return "kernel \(kernel): cannot read parameter '\(text)'"
            }
        }
    }

    private static func stripComments(_ source: String) -> String {
        var out = ""
        var chars = Array(source.unicodeScalars)[...]
        while let c = chars.first {
            if c == "/" && chars.dropFirst().first == "/" {
                while let d = chars.first, d != "\n" { chars = chars.dropFirst() }
            } else if c == "/" && chars.dropFirst().first == "*" {
                chars = chars.dropFirst(2)
                while !chars.isEmpty && !(chars.first == "*" && chars.dropFirst().first == "/") {
                    chars = chars.dropFirst()
                }
                chars = chars.dropFirst(2)
                out.append(" ")
            } else {
                out.unicodeScalars.append(c)
                chars = chars.dropFirst()
            }
        }
        return out
    }

    /// The Swift name of kernel `name`: lower camel case
    /// (`bn_backward_dx` → `bnBackwardDx`).
    public static func swiftName(_ name: String) -> String {
        let parts = name.split(separator: "_")
        guard let first = parts.first else { return name }
        return String(first) + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }
}
