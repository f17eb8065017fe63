/// SplitMix64: a small, fast, seedable generator, so parameter
/// initialisation and data order reproduce exactly from a seed.
public struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform float in `[low, high)`.
    public mutating func uniform(_ low: Float, _ high: Float) -> Float {
        Float.random(in: low..<high, using: &self)
    }

    /// A standard normal sample (Box–Muller).
    public mutating func normal() -> Float {
        let u1 = Double.random(in: Double.leastNonzeroMagnitude..<1, using: &self)
        let u2 = Double.random(in: 0..<1, using: &self)
        return Float(_sqrt(-2 * _log(u1)) * _cos(2 * Double.pi * u2))
    }

    /// `count` uniform samples in `[-bound, bound)`.
    public mutating func uniformArray(count: Int, bound: Float) -> [Float] {
        (0..<count).map { _ in uniform(-bound, bound) }
    }

    /// `count` normal samples with standard deviation `std`.
    public mutating func normalArray(count: Int, std: Float) -> [Float] {
        (0..<count).map { _ in normal() * std }
    }
}
