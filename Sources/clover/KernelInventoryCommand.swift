import ArgumentParser
import Clover
import CloverFiles
import CloverKernels
import CloverModels
import FoundationEssentials

/// `clover gpu-kernels`: the programs and kernels the GPU path builds, for
/// the static NVIDIA check (`scripts/nvidia_static.sh`).
struct KernelInventoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpu-kernels",
        abstract: "Write every program the GPU path builds (with its build options) and the kernel sources.",
        discussion: """
            Plans one training step of every zoo model and of OSCAR-base with the GPU kernel \
            paths on a planning device (nothing runs), plus every candidate the convolution \
            tuner would try for each of their convolution geometries, and records each \
            program asked for (kernel family and the exact build options) with the kernels \
            launched and their work-group sizes. Writes DIR/inventory.json and the sources \
            the runtime would compile (headers resolved) as DIR/sources/<family>.cl. \
            Persisted convolution choices are not used: the planning device stands for a GPU.
            """
    )

    @Option(name: .long, help: ArgumentHelp("The directory to write (created if missing).", valueName: "dir"))
    var output: String

    @Option(name: .long, help: "Only models whose name contains this text (OSCAR-base is planned unless excluded by it).")
    var filter: String?

    @Option(name: .long, help: "The batch size to plan at; a model that cannot plan at it is planned at 32.")
    var batch = 128

    @Flag(name: .long, help: "Plan only the heuristic choices, not every convolution tuning candidate.")
    var noTuningCandidates = false

    @Option(name: .long, help: "The OpenCL device whose compiler plans (default: as for train).")
    var device: String?

    func validate() throws {
        // The planner's shape arithmetic is Int: an absurd batch must not overflow it.
        guard (1...65536).contains(batch) else {
            throw ValidationError("--batch must be between 1 and 65536 (got \(batch))")
        }
        guard !output.isEmpty else { throw ValidationError("--output must name a directory") }
    }

    func run() throws {
        let needle = filter?.lowercased()
        let specs = ModelZoo.all.filter { needle == nil || $0.name.contains(needle!) }
        let includeOSCAR = needle == nil || ("oscar-" + LaunchCheck.oscarPreset).contains(needle!)
        if specs.isEmpty && !includeOSCAR {
            Console.error("error: --filter: no model matches '\(filter ?? "")'")
            throw ExitCode.failure
        }
        let planner: Device
        do { planner = try Device.planning(device, pathKind: .gpu) } catch { throw Console.fail(error, context: "--device") }
        let inventory: KernelInventory
        do {
            inventory = try KernelInventory.gpuPath(models: specs, includeOSCAR: includeOSCAR,
                                                    batches: batch == 32 ? [32] : [batch, 32],
                                                    tuningCandidates: !noTuningCandidates, on: planner)
        } catch {
            throw Console.fail(error)
        }
        let sourceDirectory = output + "/sources"
        do {
            try FileManager.default.createDirectory(atPath: sourceDirectory, withIntermediateDirectories: true)
        } catch {
            throw Console.fail(error, context: "--output \(output)")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let families = Set(inventory.programs.map(\.family)).sorted()
        do {
            for family in families {
                let text = try KernelSources.source(family: family)
                try AtomicFile.write(text, to: sourceDirectory + "/" + family + ".cl")
            }
            try AtomicFile.write(try encoder.encode(inventory), to: output + "/inventory.json")
        } catch {
            throw Console.fail(error, context: "--output \(output)")
        }
        let kernels = inventory.programs.reduce(0) { $0 + $1.kernels.count }
        print("gpu-kernels: \(inventory.programs.count) programs of \(families.count) families, \(kernels) kernels, "
              + "from \(inventory.batches.count) planned steps; \(inventory.ruledOut.count) tuning candidates ruled out; "
              + "wrote \(output)/inventory.json")
    }
}
