import ArgumentParser
import Clover
import CloverModels
import CloverRuntime

/// `clover models`: every model with its parameter count and multiply-adds
/// at its standard input size, computed on the shape-only meta device; with
/// `--check-launches`, a planned training step of each at a GPU batch size,
/// every launch checked against the portable launch profile.
struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "List every model with its parameter count and multiply-adds at its standard input size."
    )

    @Option(name: .long, help: "Only models whose name contains this text.")
    var filter: String?

    @Flag(name: .long, help: ArgumentHelp(
        "Plan one training step of each model (and the BERT-base OSCAR encoder) at its standard input size, "
            + "checking every launch against the portable GPU launch profile; nothing runs."))
    var checkLaunches = false

    @Option(name: .long, help: "The batch size of --check-launches (default 128).")
    var batch = 128

    @Option(name: .long, help: "The OpenCL device whose compiler --check-launches uses (default: as for train).")
    var device: String?

    @Option(name: .long, help: ArgumentHelp(
        "The kernel paths --check-launches plans: gpu (tiled convolutions, depthwise and grouped kernels) "
            + "or cpu (the vector kernels), whatever the device. (default: gpu)"))
    var paths: PlannedPaths = .gpu

    /// The ops' kernel paths a launch check plans.
    enum PlannedPaths: String, ExpressibleByArgument, CaseIterable {
        case gpu, cpu
        var kind: DeviceKind { self == .gpu ? .gpu : .cpu }
    }

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
    }

    func run() throws {
        if checkLaunches { return try runLaunchCheck() }
        var table = TextTable([("model", .left), ("input", .left), ("classes", .right),
                               ("parameters", .right), ("multiply-adds", .right)])
        let specs = ModelZoo.all.filter { filter == nil || $0.name.contains(filter!.lowercased()) }
        if specs.isEmpty {
            Console.error("error: no model matches '\(filter ?? "")'; known: \(ModelZoo.all.map(\.name).joined(separator: ", "))")
            throw ExitCode.failure
        }
        for spec in specs {
            do {
                let census = try spec.census()
                table.append([spec.name, spec.inputShape.map(String.init).joined(separator: "x"), "\(spec.classes)",
                              grouped(census.parameters), Format.fixed(Double(census.multiplyAdds) / 1e9, decimals: 3) + " G"])
            } catch {
                throw Console.fail(error, context: spec.name)
            }
        }
        print(table.render())
    }

    /// Plans every matching model's training step and prints a table; exits
    /// non-zero when any launch breaks the profile.
    private func runLaunchCheck() throws {
        let needle = filter?.lowercased()
        let specs = ModelZoo.all.filter { needle == nil || $0.name.contains(needle!) }
        let oscarName = "oscar-" + LaunchCheck.oscarPreset
        let includeOSCAR = needle == nil || oscarName.contains(needle!)
        if specs.isEmpty && !includeOSCAR {
            Console.error("error: no model matches '\(filter ?? "")'; known: \(ModelZoo.all.map(\.name).joined(separator: ", ")), \(oscarName)")
            throw ExitCode.failure
        }
        let planner: Device
        do { planner = try Device.planning(device, pathKind: paths.kind) } catch { throw Console.fail(error, context: "--device") }
        print("Planning one training step per model at batch \(batch) on \(planner), \(paths.rawValue) kernel paths, "
              + "against the \(planner.openCL!.launchProfile)")
        var table = TextTable([("model", .left), ("input", .left), ("launches", .right), ("planned memory", .right),
                               ("result", .left)])
        var failures: [String] = []
        func record(_ name: String, _ check: () throws -> LaunchCheck) {
            do {
                let r = try check()
                table.append([r.model, r.input, "\(r.launches)", Format.bytes(r.peakBytes), "ok"])
            } catch {
                table.append([name, "", "", "", "FAILED"])
                failures.append("\(name): \(error)")
            }
        }
        for spec in specs {
            record(spec.name) { try LaunchCheck.trainingStep(of: spec, batch: batch, on: planner) }
        }
        if includeOSCAR {
            record(oscarName) { try LaunchCheck.oscarPretrainingStep(batch: batch, on: planner) }
        }
        print(table.render())
        for failure in failures { Console.error("error: " + failure) }
        if !failures.isEmpty { throw ExitCode.failure }
    }

    /// 25557032 as 25,557,032.
    private func grouped(_ n: Int) -> String {
        var digits = Array(String(n))
        var out = ""
        while digits.count > 3 {
            out = "," + String(digits.suffix(3)) + out
            digits.removeLast(3)
        }
        return String(digits) + out
    }
}
