import ArgumentParser
import Clover
import CloverConformance
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
// FoundationEssentials, not Foundation: it keeps the static binary small (no ICU data).
import FoundationEssentials

/// `clover conformance`: runs every op against the CPU reference on one
/// device, checks that every kernel was exercised, and reports.
struct ConformanceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conformance",
        abstract: "Check every op on a device against the CPU reference.",
        discussion: """
            Runs each case of the conformance sweep (forward outputs and gradients against the \
            CPU reference, finite differences of the reference gradients where enabled), then \
            checks that the sweep launched every __kernel in Kernels/. Exits non-zero on any \
            failure.
            """
    )

    @Option(name: .long, help: ArgumentHelp(
        "Device: name substring, index, or cpu-reference (default: $CLOVER_DEVICE, else first GPU, else first CPU).",
        valueName: "device"))
    var device: String?

    @Option(name: .long, help: ArgumentHelp(
        "The precision of the selected convolution paths: fp32 (strict, the default) or tf32 (tensor cores where the device has them). The tensor-core parameter sets are checked, forced, in either case.",
        valueName: "fp32|tf32"))
    var precision: MatmulPrecision = .fp32

    @Option(name: .long, help: ArgumentHelp("Write a JSON report to this file.", valueName: "file"))
    var json: String?

    @Option(name: .long, help: ArgumentHelp(
        "Run only cases whose op contains this substring (case-insensitive); skips the kernel-coverage check.",
        valueName: "substring"))
    var filter: String?

    @Option(name: .long, help: ArgumentHelp(
        "Processes compiling kernels in parallel: this one and N-1 that run the cases' device side ahead of it, "
            + "so a cold cache compiles on every core (default: the CPU cores, at most 8; 1 runs alone).",
        valueName: "n"))
    var jobs: Int?

    // A warming process's orders (see SweepWarmers); not for users.
    @Option(name: .long, help: ArgumentHelp(visibility: .private))
    var warmFrom: Int?

    @Option(name: .long, help: ArgumentHelp(visibility: .private))
    var warmPosition: String?

    func validate() throws {
        // Each job is a process with its own OpenCL context: a bound keeps a typo from starting thousands.
        if let jobs, !(1...Self.maxJobs).contains(jobs) {
            throw ValidationError("--jobs must be between 1 and \(Self.maxJobs), not \(jobs)")
        }
        if (warmFrom == nil) != (warmPosition == nil) {
            throw ValidationError("--warm-from and --warm-position go together")
        }
        if let warmFrom, warmFrom < 0 { throw ValidationError("--warm-from must not be negative") }
    }

    /// The largest `--jobs` accepted.
    static let maxJobs = 64

    /// The default of `--jobs`: the online CPU cores, at most 8.
    static var defaultJobs: Int {
        let cores = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        return max(1, min(8, cores > 0 ? cores : 1))
    }

    func run() throws {
        let target: Device
        do {
            target = try Device.select(device)
        } catch {
            throw Console.fail(error)
        }
        let precisionLine = target.apply(precision)
        let filterText = filter.map { $0.lowercased() }.flatMap { $0.isEmpty ? nil : $0 }
        let allCases = ConformanceSuite.allCases()
        let cases = filterText.map { f in allCases.filter { $0.op.lowercased().contains(f) } } ?? allCases
        let groups = Self.groupedByOp(cases)
        if let warmFrom, let warmPosition {
            // A warming process: no output, no report; the foreground judges every case.
            guard target.openCLDevice != nil else { return }
            let ordered = groups.flatMap(\.cases)
            guard !ordered.isEmpty else { return }
            SweepWarmers.warm(ordered, from: warmFrom, positionPath: warmPosition,
                              runner: ConformanceRunner(device: target))
            return
        }
        guard !groups.isEmpty else {
            let ops = Self.groupedByOp(allCases).map(\.op).joined(separator: ", ")
            Console.error("error: no conformance case's op contains '\(filter ?? "")'; ops: \(ops)")
            throw ExitCode.failure
        }

        print("device: \(Self.deviceLine(target))")
        print(precisionLine)
        print("cases: \(cases.count) in \(groups.count) op\(groups.count == 1 ? "" : "s")"
              + (filter.map { " (filter '\($0)')" } ?? ""))
        Console.flush()

        let runner = ConformanceRunner(device: target)
        let progress = BuildProgress.attach(to: target)
        var warmers: SweepWarmers?
        if let d = target.openCLDevice {
            warmers = SweepWarmers(jobs: jobs ?? Self.defaultJobs, caseCount: cases.count, deviceIndex: d.index,
                                   filter: filter, precision: precision, warning: { Console.error("warning: \($0)") })
            if let warmers {
                print("warming: \(warmers.count) background process\(warmers.count == 1 ? "" : "es") "
                      + "compiling ahead (--jobs \(warmers.count + 1))")
            }
        }
        var caseIndex = 0
        var results: [CaseResult] = []
        var summaries: [OpSummary] = []
        let clock = ContinuousClock()
        let opWidth = groups.map(\.op.count).max() ?? 0
        for (i, group) in groups.enumerated() {
            let label = "[\(i + 1)/\(groups.count)] " + group.op
                + String(repeating: " ", count: opWidth - group.op.count)
            print("\(label)  \(group.cases.count) cases ...", terminator: "")
            Console.flush()
            let start = clock.now
            let groupResults = group.cases.enumerated().map { j, c in
                progress.activity = "\(group.op) case \(j + 1)/\(group.cases.count)"
                warmers?.publish(caseIndex)
                caseIndex += 1
                return runner.run(c)
            }
            let summary = OpSummary(op: group.op, results: groupResults, seconds: Self.seconds(clock.now - start))
            print(" \(summary.passed)/\(summary.cases) passed  \(Format.seconds(clock.now - start))")
            Console.flush()
            results += groupResults
            summaries.append(summary)
        }

        warmers?.finish()
        print("")
        print(Self.table(summaries))

        let failing = results.filter { !$0.passed }
        if !failing.isEmpty {
            print("\nfailing cases:")
            for r in failing {
                print("  \(r.op) [\(r.label)]: \(r.message ?? "failed")")
            }
        }

        let coverage: KernelCoverage
        do {
            coverage = try Self.kernelCoverage(on: target, filtered: filterText != nil)
        } catch {
            throw Console.fail(error, context: "kernel coverage")
        }
        print("")
        if coverage.checked {
            if coverage.unexercised.isEmpty {
                print("kernel coverage: all \(coverage.declared.count) declared kernels launched")
            } else {
                print("kernel coverage: FAIL — \(coverage.unexercised.count) of \(coverage.declared.count) "
                      + "declared kernels never launched:")
                for name in coverage.unexercised { print("  \(name)") }
            }
        } else {
            print("kernel coverage: not checked (\(coverage.note ?? ""))")
        }

        let cache = Self.programCache(of: target)
        print(cache.line + (cache.directory.map { " (cache: \($0))" } ?? ""))
        if let line = Self.compileTimeLine(of: target) { print(line) }

        let passed = failing.isEmpty && coverage.unexercised.isEmpty
        let casesPassed = results.count - failing.count
        if let json {
            let report = ConformanceReport(
                clover: CloverCommand.version, date: Date.now.formatted(.iso8601), device: DeviceReport(target),
                filter: filter, passed: passed, casesRun: results.count, casesPassed: casesPassed,
                summary: summaries, cases: results, kernelCoverage: coverage, programCache: cache)
            do {
                try report.write(to: json)
            } catch {
                throw Console.fail(error, context: "JSON report")
            }
            print("report: \(json)")
        }

        var verdict = "conformance: \(passed ? "PASS" : "FAIL") — \(casesPassed)/\(results.count) cases passed"
        if coverage.checked && !coverage.unexercised.isEmpty {
            let n = coverage.unexercised.count
            verdict += ", \(n) kernel\(n == 1 ? "" : "s") unexercised"
        }
        print(verdict + " on \(target.description)")
        Console.flush()
        if !passed { throw ExitCode.failure }
    }

    /// Cases grouped by op, ops in the order the suite first lists them.
    static func groupedByOp(_ cases: [ConformanceCase]) -> [(op: String, cases: [ConformanceCase])] {
        var groups: [(op: String, cases: [ConformanceCase])] = []
        for c in cases {
            if let i = groups.firstIndex(where: { $0.op == c.op }) {
                groups[i].cases.append(c)
            } else {
                groups.append((c.op, [c]))
            }
        }
        return groups
    }

    /// The per-op table: case counts, the largest forward and backward
    /// errors against the reference, the largest finite-difference error of
    /// the reference gradients, and the verdict. "-" marks a check not run.
    static func table(_ summaries: [OpSummary]) -> String {
        var table = TextTable([
            ("op", .left), ("cases", .right), ("fwd max abs", .right), ("fwd max rel", .right),
            ("bwd max abs", .right), ("bwd max rel", .right), ("fd max rel", .right), ("result", .left),
        ])
        func sci(_ value: Double?) -> String { value.map { Format.scientific($0) } ?? "-" }
        for s in summaries {
            table.append([
                s.op, "\(s.passed)/\(s.cases)", sci(s.forwardMaxAbsolute), sci(s.forwardMaxRelative),
                sci(s.backwardMaxAbsolute), sci(s.backwardMaxRelative), sci(s.finiteDifferenceMaxRelative),
                s.allPassed ? "PASS" : "FAIL",
            ])
        }
        return table.render()
    }

    /// The kernel-coverage check: on an OpenCL device, after the whole
    /// sweep, every declared `__kernel` must have been launched, so a kernel
    /// can't ship without a conformance case that runs it.
    static func kernelCoverage(on device: Device, filtered: Bool) throws -> KernelCoverage {
        let declared = try ConformanceSuite.declaredKernels().map { "\($0.family)/\($0.kernel)" }
        guard device.openCLDevice != nil else {
            return KernelCoverage(checked: false, note: "cpu-reference launches no kernels",
                                  declared: declared, unexercised: [], launches: [:])
        }
        if filtered {
            return KernelCoverage(checked: false, note: "--filter runs only part of the sweep",
                                  declared: declared, unexercised: [], launches: device.launchCounts)
        }
        return KernelCoverage(checked: true, note: nil, declared: declared,
                              unexercised: try ConformanceSuite.unexercisedKernels(on: device),
                              launches: device.launchCounts)
    }

    static func programCache(of device: Device) -> ProgramCacheReport {
        guard let figures = device.programCacheFigures else {
            return ProgramCacheReport(compiled: 0, loadedFromDisk: 0, memoryHits: 0, directory: nil)
        }
        return ProgramCacheReport(compiled: figures.compiled, loadedFromDisk: figures.loadedFromDisk,
                                  memoryHits: figures.memoryHits, directory: figures.directory)
    }

    /// Seconds spent compiling programs from source, per kernel family,
    /// largest first; nil when nothing was compiled (a warm cache).
    static func compileTimeLine(of device: Device) -> String? {
        guard let figures = device.programCacheFigures else { return nil }
        func line(_ entries: [(String, Int, Double)], _ what: String) -> String {
            let sorted = entries.sorted { $0.2 > $1.2 }
            let total = sorted.reduce(0) { $0 + $1.2 }
            return "\(Format.fixed(total, decimals: 1)) s \(what) ("
                + sorted.map { "\($0.0) \($0.1) in \(Format.fixed($0.2, decimals: 1)) s" }.joined(separator: ", ") + ")"
        }
        let builds = figures.compileSeconds.map { ($0.key, $0.value.programs, $0.value.seconds) }
        let launches = figures.firstLaunchSeconds.map { ($0.key, $0.value.kernels, $0.value.seconds) }
        return "compile time: " + line(builds, "in clBuildProgram") + "; "
            + line(launches, "in first enqueues of kernels")
    }

    static func deviceLine(_ device: Device) -> String {
        guard let d = device.openCLDevice else {
            return "cpu-reference (the CPU reference compared with itself: checks finite differences and the harness)"
        }
        return "#\(d.index) \(d.name) [\(d.platformName)], \(d.kind.rawValue), \(d.openCLCVersion), driver \(d.driverVersion)"
    }

    static func seconds(_ duration: Duration) -> Double { clover.seconds(duration) }
}
