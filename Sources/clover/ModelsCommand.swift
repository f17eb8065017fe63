import ArgumentParser
import Clover
import CloverModels
// FoundationEssentials, not Foundation: it keeps the static binary small (no ICU data).
import FoundationEssentials

/// `clover models`: every model with its parameter count and multiply-adds
/// at its standard input size, computed on the shape-only meta device; with
/// `--check-launches`, a planned training step of each at a GPU batch size,
/// every launch checked against the portable launch profile.
struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "List every model with its parameter count and multiply-adds at its standard input size.",
        discussion: """
            With --json, stdout holds one JSON object instead of the table, with a "models" array of \
            one object per model: "name", "input" (e.g. "3x224x224"), "input_shape" ([3, 224, 224]), \
            "classes", "parameters" and "multiply_adds" (exact counts; the table shows multiply-adds \
            in G). With --check-launches --json the object holds "batch", "device", "paths" and \
            "launch_profile", and each of its "models" has "name", "batch", "planned_input" (e.g. \
            "128x3x224x224"), "launches", "planned_peak_bytes" and "error" (null when the step \
            planned; otherwise the error, and the three figures before it are null). Every key is \
            always present. Failures are also written to stderr, and the exit status is the same \
            as without --json.
            """
    )

    @Option(name: .long, help: "Only models whose name contains this text.")
    var filter: String?

    @Flag(name: .long, help: ArgumentHelp(
        "Plan one training step of each model (and the BERT-base OSCAR encoder) at its standard input size, "
            + "checking every launch against the portable GPU launch profile; nothing runs."))
    var checkLaunches = false

    @Flag(name: .long, help: "Write the listing (or the launch check) to stdout as JSON instead of a table.")
    var json = false

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
        var listing = Listing(models: [])
        let specs = ModelZoo.all.filter { filter == nil || $0.name.contains(filter!.lowercased()) }
        if specs.isEmpty {
            Console.error("error: no model matches '\(filter ?? "")'; known: \(ModelZoo.all.map(\.name).joined(separator: ", "))")
            throw ExitCode.failure
        }
        for spec in specs {
            do {
                let census = try spec.census()
                let row = Listing.Model(name: spec.name, inputShape: spec.inputShape, classes: spec.classes,
                                        parameters: census.parameters, multiplyAdds: census.multiplyAdds)
                listing.models.append(row)
                table.append([row.name, row.input, "\(row.classes)", grouped(row.parameters),
                              Format.fixed(Double(row.multiplyAdds) / 1e9, decimals: 3) + " G"])
            } catch {
                throw Console.fail(error, context: spec.name)
            }
        }
        print(json ? try Self.encoded(listing) : table.render())
    }

    /// Plans every matching model's training step and prints a table (or the
    /// JSON report); exits non-zero when any launch breaks the profile.
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
        let profile = planner.launchProfile!
        // The JSON report carries this line's facts as keys: stdout stays one document.
        if !json {
            print("Planning one training step per model at batch \(batch) on \(planner), \(paths.rawValue) kernel paths, "
                  + "against the \(profile)")
        }
        var table = TextTable([("model", .left), ("input", .left), ("launches", .right), ("planned memory", .right),
                               ("result", .left)])
        var report = LaunchReport(batch: batch, device: "\(planner)", paths: paths.rawValue,
                                  launchProfile: "\(profile)", models: [])
        var failures: [String] = []
        func record(_ name: String, _ check: () throws -> LaunchCheck) {
            do {
                let r = try check()
                table.append([r.model, r.input, "\(r.launches)", Format.bytes(r.peakBytes), "ok"])
                report.models.append(LaunchReport.Model(name: r.model, batch: batch, plannedInput: r.input,
                                                        launches: r.launches, plannedPeakBytes: r.peakBytes,
                                                        error: nil))
            } catch {
                table.append([name, "", "", "", "FAILED"])
                report.models.append(LaunchReport.Model(name: name, batch: batch, plannedInput: nil, launches: nil,
                                                        plannedPeakBytes: nil, error: "\(error)"))
                failures.append("\(name): \(error)")
            }
        }
        for spec in specs {
            record(spec.name) { try LaunchCheck.trainingStep(of: spec, batch: batch, on: planner) }
        }
        if includeOSCAR {
            record(oscarName) { try LaunchCheck.oscarPretrainingStep(batch: batch, on: planner) }
        }
        print(json ? try Self.encoded(report) : table.render())
        for failure in failures { Console.error("error: " + failure) }
        if !failures.isEmpty { throw ExitCode.failure }
    }

    /// `--json`'s document for the listing: every figure of the table, the
    /// counts exact rather than rounded.
    struct Listing: Codable, Equatable {
        var models: [Model]

        /// One model at its standard input size.
        struct Model: Codable, Equatable {
            var name: String
            /// The input without the batch, as the table writes it (`3x224x224`).
            var input: String
            var inputShape: [Int]
            var classes: Int
            var parameters: Int
            var multiplyAdds: Int

            init(name: String, inputShape: [Int], classes: Int, parameters: Int, multiplyAdds: Int) {
                self.name = name
                self.input = inputShape.map(String.init).joined(separator: "x")
                self.inputShape = inputShape
                self.classes = classes
                self.parameters = parameters
                self.multiplyAdds = multiplyAdds
            }

            // Spelled out rather than a key strategy: these keys are an interface (gpu_session.sh reads them).
            enum CodingKeys: String, CodingKey {
                case name, input, inputShape = "input_shape", classes, parameters, multiplyAdds = "multiply_adds"
            }
        }
    }

    /// `--check-launches --json`'s document: the header line's facts and
    /// one row per planned model.
    struct LaunchReport: Codable, Equatable {
        var batch: Int
        /// The planning device, as the header line names it.
        var device: String
        /// `gpu` or `cpu`: the kernel paths planned.
        var paths: String
        var launchProfile: String
        var models: [Model]

        enum CodingKeys: String, CodingKey {
            case batch, device, paths, launchProfile = "launch_profile", models
        }

        /// One model's planned step: the figures, or the error that stopped it.
        struct Model: Codable, Equatable {
            var name: String
            var batch: Int
            /// The input planned, batch first (`128x3x224x224`).
            var plannedInput: String?
            var launches: Int?
            var plannedPeakBytes: Int?
            /// Nil when the step planned within the profile.
            var error: String?

            enum CodingKeys: String, CodingKey {
                case name, batch, plannedInput = "planned_input", launches, plannedPeakBytes = "planned_peak_bytes",
                     error
            }

            // Written by hand so that a missing figure is `null`, not an absent key: every row has every key.
            func encode(to encoder: Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(name, forKey: .name)
                try container.encode(batch, forKey: .batch)
                try container.encode(plannedInput, forKey: .plannedInput)
                try container.encode(launches, forKey: .launches)
                try container.encode(plannedPeakBytes, forKey: .plannedPeakBytes)
                try container.encode(error, forKey: .error)
            }
        }
    }

    /// A document as pretty-printed JSON with sorted keys, so that runs diff cleanly.
    static func encoded(_ document: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(document), as: UTF8.self)
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
