import ArgumentParser
import Clover
import CloverModels
import CloverNN
import CloverTuning
import FoundationEssentials

/// `clover tune conv`: measures every convolution geometry of a model's
/// training step and saves the fastest algorithm per geometry and pass.
struct TuneConvCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conv",
        abstract: "Choose each convolution's algorithm of a model by measurement and save the choices.",
        discussion: """
            Plans one training step of the model (nothing runs) to find its convolution \
            geometries, then for each geometry and pass (forward, data gradient, weight \
            gradient) checks every candidate algorithm against the CPU reference on a small \
            case of the same kernel, stride, padding, dilation and groups, times those that are \
            right, and keeps the fastest. The choices are saved as JSON in the program-cache \
            directory, named after the device, and used by every later run on that device; \
            CLOVER_CONV_TUNING=0 ignores them. Geometries include the batch size: tune at the \
            batch size you train with.
            """
    )

    @Option(name: .long, help: "The zoo model whose convolutions to tune (see `clover models`).")
    var model: String

    @Option(name: .long, help: "Batch size of the training step.")
    var batchSize: Int = 64

    @Option(name: .long, help: ArgumentHelp("Input shape C×H×W (default: the model's standard input; fashion-mnist is 1x28x28).",
                                            valueName: "CxHxW"))
    var input: String?

    @Option(name: .long, help: ArgumentHelp(
        "Device: name substring or index (default: $CLOVER_DEVICE, else first GPU, else first CPU).",
        valueName: "device"))
    var device: String?

    @Option(name: .long, help: ArgumentHelp("Timed runs per candidate.", valueName: "count"))
    var repeats: Int = 3

    // Not --no-save: `clover tune` has that flag, and the parent's parse takes it.
    @Flag(name: .long, help: "Measure and report, but save nothing.")
    var dryRun = false

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        if let input, parsedInput(input) == nil {
            throw ValidationError("--input takes C×H×W with three positive integers, e.g. 1x28x28; got '\(input)'")
        }
    }

    private func parsedInput(_ text: String) -> [Int]? {
        let parts = text.split(separator: "x").compactMap { Int($0) }
        return parts.count == 3 && parts.allSatisfy({ $0 > 0 }) ? parts : nil
    }

    func run() throws {
        let spec: ModelSpec
        let target: Device, planner: Device
        do {
            spec = try ModelZoo.spec(named: model)
            target = try Device.select(device)
            planner = try Device.planning(device)
        } catch {
            throw Console.fail(error)
        }
        BuildProgress.attach(to: target).activity = "tuning"
        guard let tuner = Tuner(target) else {
            Console.error("error: conv tuning needs an OpenCL device; \(target.description) runs no kernels")
            throw ExitCode.failure
        }
        let inputShape = input.flatMap(parsedInput) ?? spec.inputShape
        let geometries = try ConvAlgorithmSelection.recordGeometries {
            let net = try spec.make(spec.classes, inputShape[0], Initializer(device: planner))
            net.train()
            let images = try Tensor.zeros([batchSize] + inputShape, on: planner)
            let labels = ClassLabels((0..<batchSize).map { Int32($0 % spec.classes) })
            // Forward and backward only: the passes' geometries are what is recorded.
            _ = try Trainer(model: net, optimizer: nil).step(images: images, labels: labels)
        }
        let d = tuner.device
        print("device: #\(d.index) \(d.name) [\(d.platformName)], \(d.kind.rawValue), driver \(d.driverVersion)")
        print("model: \(spec.name), input \(([batchSize] + inputShape).map(String.init).joined(separator: "x")), "
              + "\(geometries.count) convolution geometries and passes")
        Console.flush()
        var table = TextTable([("geometry and pass", .left), ("chosen", .left), ("ms", .right),
                               ("im2colGEMM ms", .right), ("rejected", .right)])
        for geometry in geometries {
            let entry = try tuner.tuneConvolution(geometry, repeats: repeats)
            let best = entry.milliseconds[entry.choice.description] ?? .nan
            let im2col = entry.milliseconds[ConvChoice(.im2colGEMM).description]
            table.append([geometry.key, entry.choice.description, Format.fixed(best, decimals: 3),
                          im2col.map { Format.fixed($0, decimals: 3) } ?? "-", "\(entry.rejected.count)"])
            for (candidate, reason) in entry.rejected.sorted(by: { $0.key < $1.key }) {
                Console.error("  \(geometry.key): \(candidate) rejected: \(reason)")
            }
            if ProcessInfo.processInfo.environment["CLOVER_TUNE_VERBOSE"] != nil {
                let times = entry.milliseconds.sorted { $0.value < $1.value }
                    .map { "\($0.key) \(Format.fixed($0.value, decimals: 3))" }.joined(separator: ", ")
                print("  \(geometry.key): \(times)")
                Console.flush()
            }
        }
        print(table.render())
        if !dryRun {
            if let path = try tuner.saveConvolutions() {
                print("saved: \(path)")
            } else {
                print("not saved: the device has no program-cache directory")
            }
        }
    }
}
