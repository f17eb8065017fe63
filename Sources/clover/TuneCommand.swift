import ArgumentParser
import Clover
import CloverTuning
// FoundationEssentials, not Foundation: it keeps the static binary small (no ICU data).
import FoundationEssentials

/// `clover tune`: searches CLBlast `Xgemm` parameters for one device and
/// saves the fastest, which every later run on that device then applies.
struct TuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tune",
        abstract: "Tune CLBlast's GEMM kernel for a device and save the parameters for later runs.",
        discussion: """
            Times CLBlast's default Xgemm parameters, then candidate parameter sets in a fixed \
            order until the budget is spent; each candidate's result is checked against the \
            host, and sets CLBlast refuses or that compute wrongly are skipped. The default and \
            the fastest set are then re-timed alternately and both printed. By default a square \
            GEMM (1024³ on CPU devices, 4096³ on GPUs) and a convolution-shaped GEMM are timed; \
            --size times one M×N×K GEMM instead.

            The winner is saved as JSON in the program-cache directory ($XDG_CACHE_HOME/clover \
            or ~/.cache/clover), named after the device, platform and driver, and applied \
            whenever that device is selected. CLOVER_GEMM_TUNING=0 ignores it; deleting the \
            file forgets it. `clover tune conv` chooses convolution algorithms instead.
            """,
        subcommands: [TuneConvCommand.self]
    )

    @Option(name: .long, help: ArgumentHelp(
        "Device: name substring or index (default: $CLOVER_DEVICE, else first GPU, else first CPU).",
        valueName: "device"))
    var device: String?

    @Option(name: .long, help: ArgumentHelp("Search budget in seconds (the final re-timing comes on top).",
                                            valueName: "seconds"))
    var seconds: Double = 60

    @Option(name: .long, parsing: .upToNextOption, help: ArgumentHelp(
        "Tune for one row-major GEMM of M×K by K×N instead of the default shapes.", valueName: "M N K"))
    var size: [Int] = []

    @Option(name: .long, help: ArgumentHelp("Try at most this many candidates.", valueName: "count"))
    var candidates: Int?

    @Option(name: .long, help: ArgumentHelp("Timed runs per shape and candidate.", valueName: "count"))
    var repeats: Int = 3

    @Flag(name: .long, help: "Search and report, but save nothing.")
    var noSave = false

    func validate() throws {
        guard size.isEmpty || (size.count == 3 && size.allSatisfy { $0 > 0 }) else {
            throw ValidationError("--size takes three positive integers M N K, got \(size.count) value(s)")
        }
        guard seconds >= 0 else { throw ValidationError("--seconds must not be negative") }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        if let candidates, candidates < 0 { throw ValidationError("--candidates must not be negative") }
    }

    func run() throws {
        let target: Device
        do {
            target = try Device.select(device)
        } catch {
            throw Console.fail(error)
        }
        BuildProgress.attach(to: target).activity = "tuning"
        guard let tuner = Tuner(target) else {
            Console.error("error: tuning needs an OpenCL device; \(target.description) runs no CLBlast")
            throw ExitCode.failure
        }
        let shapes = size.isEmpty
            ? GemmTuningOptions.defaultShapes(for: tuner.device)
            : [GemmShape(m: size[0], n: size[1], k: size[2])]
        let options = GemmTuningOptions(seconds: seconds, shapes: shapes, maxCandidates: candidates, repeats: repeats)
        let d = tuner.device
        print("device: #\(d.index) \(d.name) [\(d.platformName)], \(d.kind.rawValue), driver \(d.driverVersion)")
        print("shapes: " + shapes.map(\.description).joined(separator: ", "))
        print("budget: \(Format.fixed(seconds, decimals: 0)) s" + (candidates.map { ", at most \($0) candidates" } ?? ""))
        Console.flush()

        let result: GemmTuningResult
        do {
            result = try tuner.tuneGemm(options) { report in
                print(Self.line(report))
                Console.flush()
            }
        } catch {
            throw Console.fail(error, context: "tuning")
        }

        print("")
        print("searched \(result.candidatesTried) of \(result.candidatesAvailable) candidates in "
              + "\(Format.fixed(result.seconds, decimals: 1)) s: \(result.rejected) refused by CLBlast, "
              + "\(result.wrongResults) wrong results, \(result.pruned) dropped as slow")
        print("")
        print(Self.table(result))
        print("")
        print("CLBlast's default parameters:")
        print(Self.indented(result.defaultConfiguration))
        print("tuned parameters" + (result.best == result.defaultConfiguration ? " (CLBlast's defaults):" : ":"))
        print(Self.indented(result.best))
        if noSave {
            print("not saved (--no-save)")
            return
        }
        guard let store = tuner.store else {
            Console.error("error: no cache directory to save in: set XDG_CACHE_HOME or HOME")
            throw ExitCode.failure
        }
        do {
            let path = try store.save(result.record)
            print("saved: \(path) (applied whenever this device is selected; \(GemmTuning.environmentVariable)=0 ignores it)")
        } catch {
            throw Console.fail(error, context: "cannot save the parameters")
        }
        Console.flush()
    }

    /// One candidate as a progress line and its parameters.
    static func line(_ report: GemmCandidateReport) -> String {
        let head = "[\(pad(Format.fixed(report.elapsed, decimals: 0), 4)) s] \(report.kernel) "
            + "\(report.index == 0 ? "default" : "#" + String(report.index)): "
        func rates(_ gflops: [Double], _ score: Double) -> String {
            gflops.map { Format.fixed($0, decimals: 1) }.joined(separator: " / ")
                + " GFLOP/s, score " + Format.fixed(score, decimals: 1)
        }
        let body: String
        switch report.outcome {
        case let .measured(gflops, score):
            body = rates(gflops, score) + (report.index > 0 && report.isBest ? "  BEST" : "")
        case let .pruned(gflops, score):
            body = rates(gflops, score) + "  slow, dropped"
        case let .rejected(reason):
            body = "refused: " + (reason.split(separator: "\n").first.map(String.init) ?? reason)
        case let .wrongResult(reason):
            body = "WRONG RESULT: " + reason
        }
        return head + body + "\n         " + report.parameters
    }

    /// Default against tuned GFLOP/s per shape, with the kernel each runs:
    /// `Xgemm` (the indirect path) or `XgemmDirect`, and whether its
    /// parameters changed (when not, the speedup is measurement noise).
    static func table(_ result: GemmTuningResult) -> String {
        var table = TextTable([("shape", .left), ("default GFLOP/s", .right), ("tuned GFLOP/s", .right),
                               ("speedup", .right), ("kernel", .left)])
        func kernel(_ configuration: GemmConfiguration, _ shape: GemmShape) -> String {
            configuration.routine.usesDirect(shape) ? "XgemmDirect" : "Xgemm"
        }
        for (i, shape) in result.shapes.enumerated() {
            let before = kernel(result.defaultConfiguration, shape), after = kernel(result.best, shape)
            let note = before != after ? "\(before) → \(after)"
                : before + (result.isUnchanged(at: i) ? ", parameters unchanged" : ", tuned")
            table.append([shape.description, Format.fixed(result.defaultGFLOPS[i], decimals: 2),
                          Format.fixed(result.tunedGFLOPS[i], decimals: 2),
                          Format.fixed(result.speedups[i], decimals: 2) + "×", note])
        }
        return table.render()
    }

    static func indented(_ configuration: GemmConfiguration) -> String {
        configuration.description.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n")
    }

    private static func pad(_ text: String, _ width: Int) -> String {
        String(repeating: " ", count: max(0, width - text.count)) + text
    }
}
