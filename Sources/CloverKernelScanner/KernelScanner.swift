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
