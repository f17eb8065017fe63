#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Number, byte-size and table formatting for the CLI.
///
/// The executable imports `FoundationEssentials` only, which has no
/// `String(format:)`, so the few formats the reports need are written here.
enum Format {
    /// `value` with exactly `decimals` digits after the point, rounded half
    /// away from zero: `fixed(3.14159, decimals: 2)` is `"3.14"`.
    ///
    /// Values too large for exact integer arithmetic fall back to
    /// ``scientific(_:digits:)`` rather than print wrong digits.
    static func fixed(_ value: Double, decimals: Int) -> String {
        precondition(decimals >= 0 && decimals <= 15, "fixed: decimals out of range")
        if let special = nonFinite(value) { return special }
        let scale = power10(decimals)
        let scaled = (abs(value) * scale).rounded(.toNearestOrAwayFromZero)
        // 2^53: beyond it a Double no longer holds every integer.
        guard scaled < 9_007_199_254_740_992 else { return scientific(value, digits: decimals) }
        let whole = UInt64(scaled)
        let divisor = UInt64(scale)
        let integerPart = whole / divisor
        var text = String(integerPart)
        if decimals > 0 {
            let fraction = String(whole % divisor)
            text += "." + String(repeating: "0", count: decimals - fraction.count) + fraction
        }
        // No "-0.00": a value that rounds to zero prints unsigned.
        return value < 0 && whole != 0 ? "-" + text : text
    }

    /// `value` in scientific notation with `digits` digits after the point
    /// and an exponent of at least two digits, as C's `%.*e` writes it:
    /// `scientific(1.234e-7)` is `"1.2e-07"`; zero is `"0"`.
    static func scientific(_ value: Double, digits: Int = 1) -> String {
        precondition(digits >= 0 && digits <= 15, "scientific: digits out of range")
        if let special = nonFinite(value) { return special }
        if value == 0 { return "0" }
        let magnitude = abs(value)
        var exponent = Int(floor(log10(magnitude)))
        let scale = power10(digits)
        var mantissa = (magnitude / power10(exponent) * scale).rounded(.toNearestOrAwayFromZero)
        // log10 can be off by one near powers of ten, and rounding can carry
        // 9.96 up to 10.0: renormalise so the mantissa is in [1, 10).
        if mantissa >= 10 * scale {
            exponent += 1
            mantissa = (magnitude / power10(exponent) * scale).rounded(.toNearestOrAwayFromZero)
        } else if mantissa < scale {
            exponent -= 1
            mantissa = (magnitude / power10(exponent) * scale).rounded(.toNearestOrAwayFromZero)
        }
        let digitsText = String(UInt64(min(mantissa, 10 * scale - 1)))
        var text = String(digitsText.prefix(1))
        if digits > 0 { text += "." + digitsText.dropFirst() }
        let exponentDigits = String(abs(exponent))
        text += (exponent < 0 ? "e-" : "e+")
            + (exponentDigits.count < 2 ? "0" : "") + exponentDigits
        return value < 0 ? "-" + text : text
    }

    /// A byte count in the largest binary unit that keeps it at or above
    /// one: `"512 B"`, `"64.0 KiB"`, `"3.8 GiB"`.
    static func bytes(_ count: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : fixed(value, decimals: 1) + " " + units[unit]
    }

    /// Seconds with millisecond resolution, e.g. `"0.125 s"`.
    static func seconds(_ duration: Duration) -> String {
        fixed(clover.seconds(duration), decimals: 3) + " s"
    }

    /// `10^exponent` exactly for the small exponents used above (a literal
    /// table would do, but `pow` is exact for these and covers the rest).
    private static func power10(_ exponent: Int) -> Double {
        pow(10, Double(exponent))
    }

    private static func nonFinite(_ value: Double) -> String? {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        return nil
    }
}

/// A plain-text table with left-aligned text columns and right-aligned
/// numeric ones, separated by two spaces.
struct TextTable {
    enum Alignment { case left, right }

    var headers: [String]
    var alignments: [Alignment]
    private(set) var rows: [[String]] = []

    init(_ columns: [(String, Alignment)]) {
        headers = columns.map(\.0)
        alignments = columns.map(\.1)
    }

    mutating func append(_ row: [String]) {
        precondition(row.count == headers.count, "table row has \(row.count) cells for \(headers.count) columns")
        rows.append(row)
    }

    /// The table as lines, with a dashed rule under the header.
    func render() -> String {
        var widths = headers.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            var parts: [String] = []
            for (i, cell) in cells.enumerated() {
                let padding = String(repeating: " ", count: widths[i] - cell.count)
                parts.append(alignments[i] == .left ? cell + padding : padding + cell)
            }
            // Trailing spaces from a left-aligned last column are noise.
            var text = parts.joined(separator: "  ")
            while text.last == " " { text.removeLast() }
            return text
        }
        var lines = [line(headers), line(widths.map { String(repeating: "-", count: $0) })]
        lines += rows.map(line)
        return lines.joined(separator: "\n")
    }
}
