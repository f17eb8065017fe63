import ArgumentParser
import Clover
import CloverModels
import CloverNN
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `clover predict`: runs a model in evaluation mode on a batch stored in a
/// safetensors file and writes the logits to another one.
///
/// This is how weights move between Clover and PyTorch can be checked: the
/// state-dict names follow torchvision's, so a torchvision `state_dict()`
/// saved with `safetensors` loads through `--checkpoint`, and
/// `--save-weights` writes the weights Clover ran with for
/// `torchvision.models.*.load_state_dict`. `scripts/torchvision_interop.sh`
/// does both directions and compares the logits.
struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Run a model on an input batch from a safetensors file; write its logits.",
        discussion: """
            --input names a safetensors file holding one float tensor [N, C, H, W] (named \
            "input", or the file's only tensor). The model runs in evaluation mode (BatchNorm \
            on its running statistics, no dropout) without recording gradients, and the \
            logits [N, classes] are written to --output as the tensor "logits". Without \
            --checkpoint the model keeps its seeded initialisation (--seed).
            """
    )

    @Option(name: .long, help: "The model (see `clover models`).")
    var model: String

    @Option(name: .long, help: "Output classes (default: the model's standard count).")
    var classes: Int?

    @Option(name: .long, help: "safetensors file with the input batch [N, C, H, W].")
    var input: String

    @Option(name: .long, help: "safetensors file to write the logits to.")
    var output: String

    @Option(name: .long, help: "Weights to load (a model.safetensors checkpoint or a torchvision state_dict).")
    var checkpoint: String?

    @Option(name: .long, help: "Also write the weights the model ran with (parameters and BatchNorm buffers) here.")
    var saveWeights: String?

    @Option(name: .long, help: "Seed for the initialisation when no --checkpoint is given.")
    var seed: UInt64 = 0

    @Option(name: .long, help: "OpenCL device (index or name substring) or cpu-reference; default CLOVER_DEVICE, else the first GPU, else the first CPU.")
    var device: String?

    func validate() throws {
        if let classes, classes < 1 { throw ValidationError("--classes must be at least 1 (got \(classes))") }
        // Writing over an input would destroy it before (or while) it is read.
        let inputs = [("--input", input)] + (checkpoint.map { [("--checkpoint", RunDirectory.modelFile($0))] } ?? [])
        let outputs = [("--output", output)] + (saveWeights.map { [("--save-weights", $0)] } ?? [])
        for (outputOption, outputPath) in outputs {
            for (inputOption, inputPath) in inputs where Self.sameFile(outputPath, inputPath) {
                throw ValidationError("\(outputOption) \(outputPath) is the \(inputOption) file; write the result elsewhere")
            }
        }
        if let saveWeights, Self.sameFile(saveWeights, output) || saveWeights == output {
            throw ValidationError("--save-weights \(saveWeights) is the --output file; write them elsewhere")
        }
    }

    /// Whether both paths exist and name the same file (through links or
    /// different spellings).
    private static func sameFile(_ a: String, _ b: String) -> Bool {
        var x = stat(), y = stat()
        guard stat(a, &x) == 0, stat(b, &y) == 0 else { return false }
        return x.st_dev == y.st_dev && x.st_ino == y.st_ino
    }

    func run() throws {
        try Console.reportingFailures(predict)
    }

    private func predict() throws {
        let inputs = try SafeTensors.read(path: input)
        let name = inputs["input"] != nil ? "input" : (inputs.names.count == 1 ? inputs.names[0] : nil)
        guard let name, let batch = inputs[name] else {
            throw ValidationError("\(input) holds \(inputs.names.count) tensors and none is named \"input\"")
        }
        guard batch.shape.count == 4 else {
            throw ValidationError("\(input): tensor \(name) has shape \(batch.shape); expected [N, C, H, W]")
        }
        let device = try Device.select(self.device)
        let spec = try ModelZoo.spec(named: model)
        let net = try spec.make(classes ?? spec.classes, batch.shape[1], Initializer(device: device, seed: seed))
        if let checkpoint {
            try net.loadStateDict(SafeTensors.read(path: RunDirectory.modelFile(checkpoint)))
        }
        net.eval()
        let logits = try withoutGradients {
            try net(Tensor(shape: batch.shape, values: batch.values, on: device))
        }
        var file = SafeTensors()
        file.append("logits", shape: logits.shape, values: try logits.toArray())
        try file.write(path: output)
        if let saveWeights { try net.stateDict().write(path: saveWeights) }
        print("\(spec.name) on \(name) \(batch.shape) → logits \(logits.shape) written to \(output)"
              + (saveWeights.map { "; weights written to \($0)" } ?? ""))
    }
}
