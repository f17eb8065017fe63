import Clover
import CloverKernels
import CloverRuntime

/// Allowed error between a device result and the CPU reference: an element
/// passes when `|device − reference| ≤ absolute + relative·|reference|`.
public struct Tolerance: Codable, Sendable, CustomStringConvertible {
    public var absolute: Double
    public var relative: Double
    public init(absolute: Double, relative: Double) {
        self.absolute = absolute
        self.relative = relative
    }
    public var description: String { "abs \(absolute) + rel \(relative)" }
}

/// How the values of one input are drawn.
public enum InputDistribution: Sendable {
    /// Uniform in `[low, high]`.
    case uniform(Float, Float)
    /// Uniform in `[-scale, scale]` but at least `margin` away from zero, so
    /// a finite difference never straddles a kink such as ReLU's.
    case awayFromZero(scale: Float, margin: Float)
}

/// One op at one shape: what the sweep runs and how it judges the result.
public struct ConformanceCase {
    /// The op being checked, as shown in reports (e.g. `conv2d`).
    public var op: String
    /// What distinguishes this case (shape, stride, offsets...).
    public var label: String
    public var primitive: Primitive
    public var inputShapes: [[Int]]
    public var distributions: [InputDistribution]
    /// Place each OpenCL input at a non-zero (odd) element offset in a larger buffer.
    public var offsetInputs: Bool
    public var forwardTolerance: Tolerance
    public var backwardTolerance: Tolerance
    /// Check gradients at all (false for ops without a vjp).
    public var checkGradients: Bool
    /// Check the CPU reference's gradients by central finite differences.
    public var finiteDifference: Bool
    public var finiteDifferenceStep: Double
    public var finiteDifferenceTolerance: Tolerance

    public init(op: String, label: String, primitive: Primitive, inputShapes: [[Int]],
                distributions: [InputDistribution]? = nil, offsetInputs: Bool = false,
                forward: Tolerance, backward: Tolerance, checkGradients: Bool = true,
                finiteDifference: Bool = false, finiteDifferenceStep: Double = 1e-2,
                finiteDifferenceTolerance: Tolerance = Tolerance(absolute: 2e-3, relative: 2e-2)) {
        self.op = op
        self.label = label
        self.primitive = primitive
        self.inputShapes = inputShapes
        self.distributions = distributions ?? inputShapes.map { _ in .uniform(-1, 1) }
        self.offsetInputs = offsetInputs
        self.forwardTolerance = forward
        self.backwardTolerance = backward
        self.checkGradients = checkGradients
        self.finiteDifference = finiteDifference
        self.finiteDifferenceStep = finiteDifferenceStep
        self.finiteDifferenceTolerance = finiteDifferenceTolerance
    }
}

/// The largest errors seen in one comparison.
public struct ErrorSummary: Codable, Sendable {
    /// max |device − reference|
    public var maxAbsolute: Double = 0
    /// max |device − reference| / max |reference| (normwise relative error)
    public var maxRelative: Double = 0
    /// Elements outside the tolerance.
    public var failures: Int = 0
    public var compared: Int = 0

    mutating func merge(_ other: ErrorSummary) {
        maxAbsolute = max(maxAbsolute, other.maxAbsolute)
        maxRelative = max(maxRelative, other.maxRelative)
        failures += other.failures
        compared += other.compared
    }
}

/// The outcome of one case.
public struct CaseResult: Codable, Sendable {
    public var op: String
    public var label: String
    public var forward = ErrorSummary()
    public var backward = ErrorSummary()
    /// Finite-difference check of the reference gradient (relative error).
    public var finiteDifference: ErrorSummary?
    public var passed = false
    /// Why it failed (an error, or which comparison was out of tolerance).
    public var message: String?
    public var forwardTolerance: String
    public var backwardTolerance: String
}

/// The harness's generator: Clover's SplitMix64, so every run draws the
/// same inputs (the name is kept for the cases and tests that use it).
public typealias SeededGenerator = SplitMix64

/// Runs ops on a device and on the CPU reference and compares them.
public final class ConformanceRunner {
    public let device: Device
    /// How many coordinates of each input the finite-difference check probes.
    public var finiteDifferenceSamples = 24

    public init(device: Device) { self.device = device }

    /// Runs one case; any thrown error becomes a failed result naming it.
    public func run(_ testCase: ConformanceCase, seed: UInt64 = 0x5EED) -> CaseResult {
        var result = CaseResult(op: testCase.op, label: testCase.label,
                                forwardTolerance: testCase.forwardTolerance.description,
                                backwardTolerance: testCase.backwardTolerance.description)
        do {
            try check(testCase, seed: seed, into: &result)
        } catch {
            result.passed = false
            result.message = "\(error)"
        }
        return result
    }

    /// Runs only the device side of a case: the forward pass and the
    /// gradients on inputs drawn as ``run(_:seed:)`` draws them, results read
    /// back and discarded, no CPU reference and no comparison.
    ///
    /// This is what a background warming process does (`clover conformance
    /// --jobs`): it builds and launches every kernel the case needs, so the
    /// driver's caches hold them when the foreground run reaches the case.
    public func exercise(_ c: ConformanceCase, seed: UInt64 = 0x5EED) throws {
        var rng = SeededGenerator(seed: seed ^ stableHash(c.op + "/" + c.label))
        let inputs = try deviceInputs(c, hostInputs(c, &rng))
        let outputs = try apply(c.primitive, inputs)
        for output in outputs { _ = try output.toArray() }
        guard c.checkGradients else { return }
        let cotangents = try outputs.map { o in
            try Tensor(shape: o.shape, values: draw(count: o.count, .uniform(-1, 1), &rng), on: device)
        }
        for gradient in try c.primitive.vjp(inputs: inputs, outputs: outputs, cotangents: cotangents) {
            _ = try gradient?.toArray()
        }
    }

    private func check(_ c: ConformanceCase, seed: UInt64, into result: inout CaseResult) throws {
        var rng = SeededGenerator(seed: seed ^ stableHash(c.op + "/" + c.label))
        let hostInputs = hostInputs(c, &rng)
        // Reference run.
        let refInputs = try zip(c.inputShapes, hostInputs).map { try Tensor(shape: $0, values: $1, on: .reference) }
        let refOutputs = try apply(c.primitive, refInputs)
        // Device run, inputs optionally at odd offsets.
        let devInputs = try deviceInputs(c, hostInputs)
        let devOutputs = try apply(c.primitive, devInputs)
        guard devOutputs.count == refOutputs.count else {
            throw CloverError.invalidArgument(op: c.op, reason: "output counts differ")
        }
        var failures: [String] = []
        for (k, (d, r)) in zip(devOutputs, refOutputs).enumerated() {
            guard d.shape == r.shape else {
                throw CloverError.shapeMismatch(op: c.op, shapes: [d.shape, r.shape], reason: "device and reference output shapes differ")
            }
            let s = compare(try d.toArray(), try r.toArray(), c.forwardTolerance)
            if s.failures > 0 { failures.append("forward output \(k): \(s.failures)/\(s.compared) out of tolerance") }
            result.forward.merge(s)
        }
        if c.checkGradients {
            let cotangents = refOutputs.map { draw(count: $0.count, .uniform(-1, 1), &rng) }
            let refCot = try zip(refOutputs, cotangents).map { try Tensor(shape: $0.shape, values: $1, on: .reference) }
            let devCot = try zip(refOutputs, cotangents).map { try Tensor(shape: $0.shape, values: $1, on: device) }
            let refGrads = try c.primitive.vjp(inputs: refInputs, outputs: refOutputs, cotangents: refCot)
            let devGrads = try c.primitive.vjp(inputs: devInputs, outputs: devOutputs, cotangents: devCot)
            for (i, (dg, rg)) in zip(devGrads, refGrads).enumerated() {
                guard let dg, let rg else {
                    if (dg == nil) != (rg == nil) { failures.append("gradient \(i) present on one device only") }
                    continue
                }
                guard dg.shape == c.inputShapes[i], rg.shape == c.inputShapes[i] else {
                    throw CloverError.shapeMismatch(op: c.op, shapes: [dg.shape, rg.shape, c.inputShapes[i]],
                                                    reason: "gradient \(i) shape differs from its input")
                }
                let s = compare(try dg.toArray(), try rg.toArray(), c.backwardTolerance)
                if s.failures > 0 { failures.append("gradient of input \(i): \(s.failures)/\(s.compared) out of tolerance") }
                result.backward.merge(s)
            }
            if c.finiteDifference {
                var fd = ErrorSummary()
                for (i, rg) in refGrads.enumerated() {
                    guard let rg else { continue }
                    let s = try finiteDifferenceCheck(c, inputs: hostInputs, input: i, gradient: rg.toArray(),
                                                      cotangents: cotangents, rng: &rng)
                    if s.failures > 0 { failures.append("finite differences of input \(i): \(s.failures)/\(s.compared) disagree") }
                    fd.merge(s)
                }
                result.finiteDifference = fd
            }
        }
        result.passed = failures.isEmpty
        result.message = failures.isEmpty ? nil : failures.joined(separator: "; ")
    }

    /// The case's input values, drawn from its distributions.
    private func hostInputs(_ c: ConformanceCase, _ rng: inout SeededGenerator) -> [[Float]] {
        zip(c.inputShapes, c.distributions).map { shape, dist in draw(count: shape.reduce(1, *), dist, &rng) }
    }

    /// The inputs on the device under test, at odd offsets when the case asks.
    private func deviceInputs(_ c: ConformanceCase, _ values: [[Float]]) throws -> [Tensor] {
        try zip(c.inputShapes, values).enumerated().map { i, pair in
            try makeInput(shape: pair.0, values: pair.1, offset: c.offsetInputs ? 7 + 6 * i : 0)
        }
    }

    /// An input tensor on the device under test, at `offset` elements into
    /// its buffer (OpenCL only; the reference device has no buffers).
    private func makeInput(shape: [Int], values: [Float], offset: Int) throws -> Tensor {
        guard let ctx = device.openCL, offset > 0 else {
            return try Tensor(shape: shape, values: values, on: device)
        }
        let total = offset + values.count + 5
        let whole = try ctx.allocateView(count: total)
        // Poison the padding so a kernel that ignores the offset reads garbage.
        var padded = [Float](repeating: .nan, count: total)
        padded.replaceSubrange(offset..<(offset + values.count), with: values)
        try ctx.upload(padded, to: whole)
        return try Tensor(shape: shape, view: whole.slice(offset: offset, count: values.count), on: device)
    }

    private func draw(count: Int, _ dist: InputDistribution, _ rng: inout SeededGenerator) -> [Float] {
        (0..<count).map { _ in
            switch dist {
            case let .uniform(lo, hi):
                return Float.random(in: lo...hi, using: &rng)
            case let .awayFromZero(scale, margin):
                let magnitude = Float.random(in: margin...scale, using: &rng)
                return Bool.random(using: &rng) ? magnitude : -magnitude
            }
        }
    }

    private func compare(_ actual: [Float], _ expected: [Float], _ tol: Tolerance) -> ErrorSummary {
        var s = ErrorSummary()
        s.compared = expected.count
        var maxRef = 0.0
        for (a, e) in zip(actual, expected) {
            let ad = Double(a), ed = Double(e)
            maxRef = max(maxRef, abs(ed))
            let err = abs(ad - ed)
            if !(err <= tol.absolute + tol.relative * abs(ed)) { s.failures += 1 }
            if err.isNaN { s.maxAbsolute = .infinity } else { s.maxAbsolute = max(s.maxAbsolute, err) }
        }
        if actual.count != expected.count { s.failures += abs(actual.count - expected.count) }
        s.maxRelative = maxRef > 0 ? s.maxAbsolute / maxRef : s.maxAbsolute
        return s
    }

    /// Compares the reference gradient of input `index` with central
    /// differences of `Σ cotangent · output` on the CPU reference.
    private func finiteDifferenceCheck(_ c: ConformanceCase, inputs: [[Float]], input index: Int, gradient: [Float],
                                       cotangents: [[Float]], rng: inout SeededGenerator) throws -> ErrorSummary {
        let h = c.finiteDifferenceStep
        let n = inputs[index].count
        let coordinates = n <= finiteDifferenceSamples
            ? Array(0..<n) : (0..<finiteDifferenceSamples).map { _ in Int.random(in: 0..<n, using: &rng) }
        func objective(_ xs: [[Float]]) throws -> Double {
            let outs = try c.primitive.evalReference(xs, shapes: c.inputShapes)
            var total = 0.0
            for (o, cot) in zip(outs, cotangents) {
                for (a, b) in zip(o, cot) { total += Double(a) * Double(b) }
            }
            return total
        }
        var s = ErrorSummary()
        var maxRef = 0.0
        for j in coordinates {
            var plus = inputs, minus = inputs
            plus[index][j] = Float(Double(inputs[index][j]) + h)
            minus[index][j] = Float(Double(inputs[index][j]) - h)
            let step = Double(plus[index][j]) - Double(minus[index][j])
            let numeric = (try objective(plus) - objective(minus)) / step
            let analytic = Double(gradient[j])
            let err = abs(numeric - analytic)
            maxRef = max(maxRef, abs(numeric))
            s.compared += 1
            s.maxAbsolute = max(s.maxAbsolute, err.isNaN ? .infinity : err)
            let tol = c.finiteDifferenceTolerance
            if !(err <= tol.absolute + tol.relative * abs(numeric)) { s.failures += 1 }
        }
        s.maxRelative = maxRef > 0 ? s.maxAbsolute / maxRef : s.maxAbsolute
        return s
    }
}

/// FNV-1a, stable across processes (unlike `hashValue`), so each case draws
/// the same inputs on every run.
func stableHash(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
    return hash
}
