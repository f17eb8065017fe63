/// SplitMix64: small, fast and fully specified, so a seed draws the same
/// numbers on every platform and Swift version (the standard library's
/// `shuffle(using:)` and `random(in:using:)` make no such promise).
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return SplitMix64.finalize(state)
    }

    /// The SplitMix64 output function: a bijective mix of all 64 bits.
    static func finalize(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A seed derived from `seed` and `value`, so that streams for different
    /// epochs, samples or purposes are independent of one another.
    static func derive(_ seed: UInt64, _ value: UInt64) -> UInt64 {
        finalize(seed ^ finalize(value &+ 0x9E37_79B9_7F4A_7C15))
    }

    /// Uniform in `0..<bound` (Lemire's multiply-high; the bias is below 2⁻⁵⁰
    /// for the small bounds used here).
    mutating func below(_ bound: Int) -> Int {
        Int(truncatingIfNeeded: next().multipliedFullWidth(by: UInt64(bound)).high)
    }

    /// Uniform in [0, 1) with 53 random bits.
    mutating func unit() -> Double {
        Double(next() >> 11) * 0x1p-53
    }

    /// Uniform in [0, 1) with 24 random bits (every value exact in Float).
    mutating func unitFloat() -> Float {
        Float(next() >> 40) * 0x1p-24
    }
}

/// Fisher–Yates over `0..<count`, drawn from `generator`.
func shuffledIndices(_ count: Int, using generator: inout SplitMix64) -> [Int] {
    var indices = Array(0..<count)
    var i = count - 1
    while i > 0 {
        indices.swapAt(i, generator.below(i + 1))
        i -= 1
    }
    return indices
}
