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
import CCLBlast
import Clover
import CloverRuntime
import COpenCL
import Logging

// The search `clover tune` runs for CLBlast's GEMM parameters on a device:
// candidates timed on the device's own shapes, checked against a host
// computation, the threshold between CLBlast's two GEMM paths, and a final
// re-timing. `Tuner.tuneGemm` (Tuner.swift) runs it and `Tuner.save` writes
// its result, which every later run applies.

// MARK: - Options and results

/// How long and on what ``Tuner/tuneGemm(_:progress:)`` searches.
public struct GemmTuningOptions: Sendable {
    /// The search budget in seconds: no candidate is started after it. The
    /// closing re-timing of the default and the winner comes on top.
    public var seconds: Double
    /// The share of the budget for `Xgemm`; `XgemmDirect` gets the rest.
    public var xgemmShare: Double
    /// The GEMMs timed for each candidate; a candidate's score is the
    /// geometric mean of its GFLOP/s over them, so one parameter set serves
    /// all of them.
    public var shapes: [GemmShape]
    /// At most this many candidates per kernel (besides the default); nil
    /// for no limit.
    public var maxCandidates: Int?
    /// Timed runs per shape and candidate after the warm-up; the fastest counts.
    public var repeats: Int
    /// A candidate whose first timed runs score below this fraction of the
    /// best so far is dropped without its remaining runs.
    public var pruneRatio: Double

    public init(seconds: Double, shapes: [GemmShape], maxCandidates: Int? = nil, repeats: Int = 3,
                xgemmShare: Double = 0.6, pruneRatio: Double = 0.7) {
        self.seconds = seconds
        self.shapes = shapes
        self.maxCandidates = maxCandidates
        self.repeats = repeats
        self.xgemmShare = xgemmShare
        self.pruneRatio = pruneRatio
    }

    /// The shapes tuned for by default: a square GEMM (1024³ on CPU devices,
    /// 4096³ on GPUs, large enough to be compute-bound) and a convolution's
    /// im2col GEMM (few output channels by many pixels), which favours other
    /// tiles, and often the other path, than the square one.
    public static func defaultShapes(for device: OpenCLDevice) -> [GemmShape] {
        switch device.kind {
        case .gpu, .accelerator:
            return [GemmShape(m: 4096, n: 4096, k: 4096), GemmShape(m: 64, n: 100_352, k: 576)]
        case .cpu, .other:
            return [GemmShape(m: 1024, n: 1024, k: 1024), GemmShape(m: 16, n: 100_352, k: 144)]
        }
    }
}

/// What became of one candidate during a search.
public enum GemmCandidateOutcome: Sendable, CustomStringConvertible {
    /// Timed on every shape: GFLOP/s per shape and their geometric mean.
    case measured(gflops: [Double], score: Double)
    /// Dropped after one timed run per shape for scoring well below the best.
    case pruned(gflops: [Double], score: Double)
    /// CLBlast refused it (invalid local memory use, a build failure, …).
    case rejected(String)
    /// It ran but computed a wrong result.
    case wrongResult(String)

    public var description: String {
        switch self {
        case let .measured(gflops, score), let .pruned(gflops, score):
            return gflops.map { GemmTuning.fixed($0, digits: 1) }.joined(separator: ", ")
                + " GFLOP/s (score \(GemmTuning.fixed(score, digits: 1)))"
        case let .rejected(reason): return "refused: \(reason)"
        case let .wrongResult(reason): return "wrong result: \(reason)"
        }
    }
}

/// One candidate's report, passed to the progress callback as it finishes.
public struct GemmCandidateReport: Sendable {
    /// The kernel being tuned: `Xgemm` or `XgemmDirect`.
    public var kernel: String
    /// 0 for CLBlast's default, then 1, 2, … in search order.
    public var index: Int
    /// The candidate, as `NAME=value` pairs.
    public var parameters: String
    public var outcome: GemmCandidateOutcome
    /// Whether it is the best of its kernel so far (the default is the first best).
    public var isBest: Bool
    /// Seconds since the search started.
    public var elapsed: Double

    public init(kernel: String, index: Int, parameters: String, outcome: GemmCandidateOutcome, isBest: Bool,
                elapsed: Double) {
        self.kernel = kernel
        self.index = index
        self.parameters = parameters
        self.outcome = outcome
        self.isBest = isBest
        self.elapsed = elapsed
    }
}

/// The outcome of ``Tuner/tuneGemm(_:progress:)``.
public struct GemmTuningResult: Sendable {
    public var shapes: [GemmShape]
    /// CLBlast's own parameters for the device.
    public var defaultConfiguration: GemmConfiguration
    /// The fastest correct parameters found (a kernel's default where
    /// nothing beat it).
    public var best: GemmConfiguration
    /// GFLOP/s per shape of the default and of ``best``, re-timed
    /// alternately after the search so both see the same machine load.
    public var defaultGFLOPS: [Double]
    public var tunedGFLOPS: [Double]
    /// Candidates in the search order (both kernels), and what became of
    /// those started.
    public var candidatesAvailable: Int
    public var candidatesTried: Int
    public var rejected: Int
    public var wrongResults: Int
    public var pruned: Int
    /// Wall-clock seconds of the whole run.
    public var seconds: Double
    /// The file contents that ``TuningStore`` writes for it.
    public var record: GemmTuningRecord

    /// Tuned over default GFLOP/s per shape.
    public var speedups: [Double] { zip(tunedGFLOPS, defaultGFLOPS).map { $0 / max($1, 1e-12) } }

    /// Whether the shape at `index` runs the same kernel with the same
    /// parameters tuned as by default, so that its speedup is only noise.
    public func isUnchanged(at index: Int) -> Bool {
        let shape = shapes[index]
        let direct = defaultConfiguration.routine.usesDirect(shape)
        guard best.routine.usesDirect(shape) == direct else { return false }
        return direct ? best.direct == defaultConfiguration.direct : best.xgemm == defaultConfiguration.xgemm
    }
}

// MARK: - Search

extension GemmTuning {
    // MARK: Search

    /// Searches for the fastest correct GEMM parameters on `context`'s
    /// device within `options.seconds`.
    ///
    /// Both of CLBlast's defaults are timed first, then three steps, all on
    /// every shape of `options`:
    /// 1. `Xgemm`, with every shape forced onto the indirect path:
    ///    ``xgemmCandidates(for:)`` (after the device's persisted set, if
    ///    any) for `xgemmShare` of the budget;
    /// 2. `XgemmDirect`, every shape forced onto the direct path, likewise
    ///    with ``directCandidates(for:)`` for the rest of the budget;
    /// 3. the threshold between the paths: CLBlast's, unless another sends
    ///    each shape to its faster path and so scores better.
    ///
    /// A candidate's score is the geometric mean of GFLOP/s over the shapes
    /// with each shape on its faster path (as the best threshold would route
    /// it), the other kernel's times being those of its best so far; it must
    /// beat the best score by 3 % to replace it.
    ///
    /// Each candidate is applied with ``apply(_:to:)``; one warm-up GEMM per
    /// shape (it compiles the kernels) is checked against a
    /// double-precision host computation of a few entries (the corners,
    /// where padding goes wrong, among them), then timed GEMMs end with
    /// `clFinish`. Sets CLBlast refuses, and sets that compute a wrong
    /// result, are skipped. Finally the default and the winner are re-timed
    /// alternately for the reported numbers.
    ///
    /// On return the winner is applied to the device. Nothing is saved:
    /// ``Tuner`` saves, and is the public entry point.
    ///
    /// - Parameter progress: called after each candidate.
    static func tune(_ context: OpenCLContext, options: GemmTuningOptions,
                            progress: ((GemmCandidateReport) -> Void)? = nil) throws -> GemmTuningResult {
        guard !options.shapes.isEmpty, options.shapes.allSatisfy({ $0.m > 0 && $0.n > 0 && $0.k > 0 }) else {
            throw GemmTuningError.invalidOptions("at least one GEMM shape is needed, every dimension positive")
        }
        guard options.repeats >= 1, options.seconds >= 0, (0...1).contains(options.xgemmShare) else {
            throw GemmTuningError.invalidOptions("repeats must be at least 1, seconds at least 0, xgemmShare in 0...1")
        }
        let device = context.device
        let clock = ContinuousClock()
        let start = clock.now
        // Settle the once-per-process application of persisted parameters
        // first, so the lazy hook in clblastGemm cannot fire mid-search.
        let persisted = try applyPersistedOnce(context)
        let defaults = try builtinConfiguration(on: device)
        let benches = try options.shapes.enumerated().map { i, shape in
            try GemmBench(context: context, shape: shape, seed: 0x7E57 &+ UInt64(i))
        }
        // The budget is for the search: the setup above (host data for
        // large shapes) does not count against it.
        let searchStart = clock.now
        let search = Search(benches: benches, options: options, clock: clock, start: start, progress: progress)
        let shapes = options.shapes

        var xgemmOrder = xgemmCandidates(for: device)
        var directOrder = directCandidates(for: device)
        if let persisted {
            // The saved winner first: a re-run then starts from it.
            xgemmOrder = [persisted.parameters.xgemm] + xgemmOrder.filter { $0 != persisted.parameters.xgemm }
            directOrder = [persisted.parameters.direct] + directOrder.filter { $0 != persisted.parameters.direct }
        }
        xgemmOrder = limited(xgemmOrder, without: defaults.xgemm, to: options.maxCandidates)
        directOrder = limited(directOrder, without: defaults.direct, to: options.maxCandidates)

        // Both defaults first, each with every shape forced down its path: a
        // threshold of 2 000 000 sends every GEMM down the direct path, 1 down
        // the indirect one. A candidate is then scored by what it would make
        // of the whole: each shape on its faster path (as a threshold can
        // route them), the other kernel as found so far. So an Xgemm set is
        // not judged on shapes the direct kernel serves better, nor the
        // reverse.
        try apply(defaults, to: device)
        try apply(GemmRoutineParameters(minIndirectSize: 2_000_000), to: device)
        let directDefaultTimes = try search.baseline(defaults.direct)
        try apply(GemmRoutineParameters(minIndirectSize: 1), to: device)
        let xgemmDefaultTimes = try search.baseline(defaults.xgemm)

        // 1. Xgemm.
        let xgemm = try search.run(
            default: defaults.xgemm, defaultTimes: xgemmDefaultTimes, candidates: xgemmOrder,
            until: searchStart + .seconds(options.seconds * options.xgemmShare)
        ) { times in
            routing(shapes: shapes, indirectTimes: times, directTimes: directDefaultTimes, default: defaults.routine).score
        }
        // 2. XgemmDirect. (The Xgemm winner goes along only because CLBlast
        // builds both kernels into one program.)
        try apply(xgemm.best, to: device)
        try apply(GemmRoutineParameters(minIndirectSize: 2_000_000), to: device)
        let direct = try search.run(
            default: defaults.direct, defaultTimes: directDefaultTimes, candidates: directOrder,
            until: searchStart + .seconds(options.seconds)
        ) { times in
            routing(shapes: shapes, indirectTimes: xgemm.bestTimes, directTimes: times, default: defaults.routine).score
        }
        // 3. The threshold between them.
        let routine = routing(shapes: shapes, indirectTimes: xgemm.bestTimes, directTimes: direct.bestTimes,
                              default: defaults.routine).parameters
        var best = GemmConfiguration(xgemm: xgemm.best, direct: direct.best, routine: routine)

        // Re-time the default and the winner alternately: the search's
        // numbers favour whichever candidate had a quiet moment on a busy
        // machine, and the winner is timed here with its real routing.
        var (defaultTimes, bestTimes) = try retime(defaults, against: best, benches: benches,
                                                   repeats: options.repeats, logger: context.logger)
        if bestTimes == nil { best = defaults }
        // A kernel whose winner is slower here, on the shapes it serves, than
        // CLBlast's defaults are on them goes back to its default: its win in
        // the search was noise.
        if let times = bestTimes {
            var reverted = best
            for direct in [false, true] {
                let served = shapes.indices.filter { best.routine.usesDirect(shapes[$0]) == direct }
                let changed = direct ? best.direct != defaults.direct : best.xgemm != defaults.xgemm
                guard changed, !served.isEmpty else { continue }
                let tuned = served.map { log(times[$0]) }.reduce(0, +)
                let plain = served.map { log(defaultTimes[$0]) }.reduce(0, +)
                if tuned > plain {
                    if direct { reverted.direct = defaults.direct } else { reverted.xgemm = defaults.xgemm }
                }
            }
            if reverted.xgemm == defaults.xgemm && reverted.direct == defaults.direct { reverted = defaults }
            if reverted != best {
                context.logger.info("GEMM tuning: part of the winner was slower on re-timing; CLBlast's defaults are kept for it")
                best = reverted
                (defaultTimes, bestTimes) = try retime(defaults, against: best, benches: benches,
                                                       repeats: options.repeats, logger: context.logger)
                if bestTimes == nil { best = defaults }
            }
        }
        try apply(best, to: device)

        let defaultGFLOPS = zip(shapes, defaultTimes).map { $0.flops / $1 / 1e9 }
        let tunedGFLOPS = zip(shapes, bestTimes ?? defaultTimes).map { $0.flops / $1 / 1e9 }
        let tried = xgemm.tried + direct.tried
        let record = GemmTuningRecord(device: device.description, deviceIdentity: device.cacheIdentity,
                                      parameters: best, defaultParameters: defaults, shapes: shapes,
                                      defaultGFLOPS: defaultGFLOPS, tunedGFLOPS: tunedGFLOPS,
                                      candidatesTried: tried, budgetSeconds: options.seconds)
        return GemmTuningResult(shapes: shapes, defaultConfiguration: defaults, best: best,
                                defaultGFLOPS: defaultGFLOPS, tunedGFLOPS: tunedGFLOPS,
                                candidatesAvailable: xgemmOrder.count + directOrder.count, candidatesTried: tried,
                                rejected: xgemm.rejected + direct.rejected,
                                wrongResults: xgemm.wrong + direct.wrong, pruned: xgemm.pruned + direct.pruned,
                                seconds: seconds(clock.now - start), record: record)
    }

    /// Times `defaults` and `best` alternately, two rounds of `repeats` runs
    /// per shape each, keeping each one's fastest; the first round's warm-up
    /// checks the results. `best`'s times are nil when it equals `defaults`
    /// or fails the check (each kernel passed on its own, but should the
    /// combination not, the defaults are the safe answer).
    static func retime(_ defaults: GemmConfiguration, against best: GemmConfiguration, benches: [GemmBench],
                       repeats: Int, logger: Logger) throws -> (defaults: [Double], best: [Double]?) {
        let device = benches[0].context.device
        let unset = [Double](repeating: .infinity, count: benches.count)
        var times: [[Double]?] = [unset, best == defaults ? nil : unset]
        let configurations = [defaults, best]
        for round in 0..<2 {
            for c in 0..<2 where times[c] != nil {
                try apply(configurations[c], to: device)
                for (i, bench) in benches.enumerated() {
                    // The warm-up rebuilds the kernels (the search cleared CLBlast's cache).
                    if round == 0, let problem = try bench.check() {
                        guard c == 1 else {
                            throw GemmTuningError.invalidOptions(
                                "CLBlast's defaults compute a wrong result for \(bench.shape): \(problem)")
                        }
                        logger.warning("""
                            GEMM tuning: the tuned parameters together compute a wrong result (\(problem)); \
                            keeping CLBlast's defaults
                            """)
                        times[1] = nil
                        break
                    }
                    for _ in 0..<repeats { times[c]![i] = min(times[c]![i], try bench.time()) }
                }
            }
        }
        return (times[0]!, times[1])
    }

    static func limited<P: Equatable>(_ order: [P], without defaultSet: P, to limit: Int?) -> [P] {
        let rest = order.filter { $0 != defaultSet }
        return limit.map { Array(rest.prefix(max($0, 0))) } ?? rest
    }

    /// The threshold that sends each shape down its faster path, when that
    /// beats CLBlast's own by more than noise (2 %), else CLBlast's; and the
    /// geometric mean of the GFLOP/s it gives.
    ///
    /// The shapes are sorted by m·n·k; each split (the smallest j direct,
    /// the rest indirect) gets the threshold nearest the geometric middle of
    /// the neighbouring shapes' sizes, and the best-scoring split wins.
    static func routing(shapes: [GemmShape], indirectTimes: [Double], directTimes: [Double],
                        default defaultRouting: GemmRoutineParameters)
        -> (parameters: GemmRoutineParameters, score: Double) {
        func logScore(_ routing: GemmRoutineParameters) -> Double {
            let logs = shapes.indices.map { i in
                log(shapes[i].flops / 1e9 / (routing.usesDirect(shapes[i]) ? directTimes[i] : indirectTimes[i]))
            }
            return logs.reduce(0, +) / Double(shapes.count)
        }
        let sizes = shapes.map { Double($0.m) * Double($0.n) * Double($0.k) }
        let order = shapes.indices.sorted { sizes[$0] < sizes[$1] }
        var best = defaultRouting
        let defaultScore = logScore(defaultRouting)
        var bestScore = defaultScore
        for j in 0...shapes.count {
            let lower = j == 0 ? nil : cbrt(sizes[order[j - 1]])  // direct below: threshold³ > this size
            let upper = j == shapes.count ? nil : cbrt(sizes[order[j]])  // indirect from: threshold³ ≤ this size
            let guess: Double
            switch (lower, upper) {
            case let (l?, u?): guess = (l * u).squareRoot()
            case let (nil, u?): guess = u.rounded(.down)
            case let (l?, nil): guess = l.rounded(.down) + 1
            case (nil, nil): continue
            }
            let wanted = shapes.indices.map { i in order.firstIndex(of: i)! < j }
            // cbrt and rounding may land one off the boundary: try the neighbours.
            for t in [guess.rounded(), guess.rounded() - 1, guess.rounded() + 1] where t >= 1 && t <= 2_000_000 {
                let routing = GemmRoutineParameters(minIndirectSize: Int(t))
                guard shapes.map(routing.usesDirect) == wanted else { continue }
                let s = logScore(routing)
                if s > bestScore && s > defaultScore + log(1.02) {
                    best = routing
                    bestScore = s
                }
                break
            }
        }
        return (best, exp(bestScore))
    }

    /// One kernel's search: its default's times, then candidates until the
    /// deadline, each scored by an objective over its per-shape times.
    struct Search {
        let benches: [GemmBench]
        let options: GemmTuningOptions
        let clock: ContinuousClock
        let start: ContinuousClock.Instant
        let progress: ((GemmCandidateReport) -> Void)?

        struct Outcome<P> {
            var best: P
            var bestTimes: [Double]
            var tried = 0, rejected = 0, wrong = 0, pruned = 0
        }

        /// A candidate must beat the best so far by this factor to replace
        /// it: smaller differences are within the noise of a busy machine.
        static let minimumGain = 1.03

        /// Times CLBlast's default `defaultSet` (already applied with the
        /// routing wanted) and reports it as candidate 0.
        func baseline<P: CLBlastParameterSet>(_ defaultSet: P) throws -> [Double] {
            let (outcome, times) = try measure(defaultSet, pruneBelow: nil) { geometricMeanGFLOPS($0) }
            guard let times else {
                // CLBlast's own parameters failing is not a tuning matter.
                throw GemmTuningError.invalidOptions("CLBlast's default \(P.kernel) parameters failed on "
                                                     + "\(benches[0].context.device.description): \(outcome)")
            }
            report(P.kernel, 0, defaultSet, outcome, true)
            return times
        }

        func run<P: CLBlastParameterSet>(default defaultSet: P, defaultTimes: [Double], candidates: [P],
                                         until deadline: ContinuousClock.Instant,
                                         objective: @escaping ([Double]) -> Double) throws -> Outcome<P> {
            var result = Outcome(best: defaultSet, bestTimes: defaultTimes)
            var bestScore = objective(defaultTimes)
            for candidate in candidates {
                guard clock.now < deadline else { break }
                result.tried += 1
                let (outcome, times) = try measure(candidate, pruneBelow: bestScore * options.pruneRatio,
                                                   objective: objective)
                var isBest = false
                switch outcome {
                case let .measured(_, score):
                    if score > bestScore * Self.minimumGain, let times {
                        bestScore = score
                        result.best = candidate
                        result.bestTimes = times
                        isBest = true
                    }
                case .pruned: result.pruned += 1
                case .rejected: result.rejected += 1
                case .wrongResult: result.wrong += 1
                }
                // Each candidate's programs would otherwise stay in CLBlast's
                // cache for the life of the process.
                _ = CLBlastClearCache()
                report(P.kernel, result.tried, candidate, outcome, isBest)
            }
            return result
        }

        private func report<P: CLBlastParameterSet>(_ kernel: String, _ index: Int, _ parameters: P,
                                                    _ outcome: GemmCandidateOutcome, _ isBest: Bool) {
            progress?(GemmCandidateReport(kernel: kernel, index: index, parameters: parameters.description,
                                          outcome: outcome, isBest: isBest,
                                          elapsed: GemmTuning.seconds(clock.now - start)))
        }

        private func gflops(_ times: [Double]) -> [Double] { zip(benches, times).map { $0.shape.flops / $1 / 1e9 } }

        private func geometricMeanGFLOPS(_ times: [Double]) -> Double {
            exp(gflops(times).map { log($0) }.reduce(0, +) / Double(times.count))
        }

        /// Applies `parameters`, checks and times every bench. CLBlast
        /// errors make it `.rejected`; other errors (a lost device) are thrown.
        private func measure<P: CLBlastParameterSet>(_ parameters: P, pruneBelow: Double?,
                                                     objective: ([Double]) -> Double) throws
            -> (GemmCandidateOutcome, [Double]?) {
            do {
                try GemmTuning.apply(parameters, to: benches[0].context.device)
                for bench in benches {
                    if let problem = try bench.check() { return (.wrongResult("\(bench.shape): \(problem)"), nil) }
                }
                var times = try benches.map { try $0.time() }
                if let pruneBelow, objective(times) < pruneBelow {
                    return (.pruned(gflops: gflops(times), score: objective(times)), nil)
                }
                for _ in 1..<max(options.repeats, 1) {
                    for (i, bench) in benches.enumerated() { times[i] = min(times[i], try bench.time()) }
                }
                return (.measured(gflops: gflops(times), score: objective(times)), times)
            } catch let error as OpenCLError where GemmTuning.isCandidateFailure(error) {
                return (.rejected(error.description), nil)
            }
        }
    }

    /// Whether an error is the candidate's fault (CLBlast refused the set, or
    /// its kernels failed to build or launch) rather than the device's.
    static func isCandidateFailure(_ error: OpenCLError) -> Bool {
        // Allocation failures are the device's; CL_OUT_OF_RESOURCES stays a
        // candidate's, as GPUs report a kernel needing too many registers so.
        error.call.hasPrefix("CLBlast") && ![-4, -6].contains(error.code)
    }


    static func seconds(_ d: Duration) -> Double {
        d.inSeconds
    }
}

// MARK: - Bench

/// One GEMM shape with device buffers of random inputs, the host inputs and
/// the double-precision values of a few output entries to check against.
final class GemmBench {
    let context: OpenCLContext
    let shape: GemmShape
    private let a: BufferView
    private let b: BufferView
    private let c: BufferView
    private let probes: [(row: Int, column: Int, expected: Double, scale: Double)]

    init(context: OpenCLContext, shape: GemmShape, seed: UInt64) throws {
        self.context = context
        self.shape = shape
        let (m, n, k) = (shape.m, shape.n, shape.k)
        var rng = SplitMix64(seed: seed)
        let hostA = rng.uniformArray(count: m * k, bound: 1)
        let hostB = rng.uniformArray(count: k * n, bound: 1)
        a = try context.allocateView(count: m * k)
        b = try context.allocateView(count: k * n)
        c = try context.allocateView(count: m * n)
        try context.upload(hostA, to: a)
        try context.upload(hostB, to: b)
        // The four corners (where tile padding goes wrong) and a spread of
        // other entries.
        var positions = [(0, 0), (0, n - 1), (m - 1, 0), (m - 1, n - 1)]
        for _ in 0..<28 { positions.append((Int(rng.next() % UInt64(m)), Int(rng.next() % UInt64(n)))) }
        probes = positions.map { row, column in
            var sum = 0.0, scale = 0.0
            for p in 0..<k {
                let x = Double(shape.transposeA ? hostA[p * m + row] : hostA[row * k + p])
                let y = Double(shape.transposeB ? hostB[column * k + p] : hostB[p * n + column])
                sum += x * y
                scale += abs(x * y)
            }
            return (row, column, sum, scale)
        }
    }

    /// One GEMM, `C = op(A)·op(B)` (beta 0: C is never read).
    func run() throws {
        let (m, n, k) = (shape.m, shape.n, shape.k)
        try clblastGemm(context, transposeA: shape.transposeA, transposeB: shape.transposeB, m: m, n: n, k: k,
                        alpha: 1, a: a, lda: shape.transposeA ? m : k, strideA: m * k,
                        b: b, ldb: shape.transposeB ? k : n, strideB: k * n,
                        beta: 0, c: c, ldc: n, strideC: m * n)
    }

    /// Runs the GEMM over a NaN-filled C and compares the probed entries
    /// with the host values; nil when all agree.
    func check() throws -> String? {
        try context.upload([Float](repeating: .nan, count: c.count), to: c)
        try run()
        let result: [Float] = try context.download(c)
        for probe in probes {
            let got = Double(result[probe.row * shape.n + probe.column])
            // Float accumulation over k terms: far inside 1e-4 of the sum of
            // |terms|; a skipped or doubled tile is far outside it.
            let tolerance = 1e-4 * probe.scale + 1e-6
            if !(abs(got - probe.expected) <= tolerance) {
                return "C[\(probe.row), \(probe.column)] = \(got), expected \(probe.expected)"
            }
        }
        return nil
    }

    /// Seconds for one GEMM, from enqueue to `clFinish`.
    func time() throws -> Double {
        try context.finish()
        let clock = ContinuousClock()
        let start = clock.now
        try run()
        try context.finish()
        return GemmTuning.seconds(clock.now - start)
    }
}
