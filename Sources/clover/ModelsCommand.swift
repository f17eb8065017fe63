import ArgumentParser
import Clover
import CloverModels

/// `clover models`: every model with its parameter count and multiply-adds
/// at its standard input size, computed on the shape-only meta device.
struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "List every model with its parameter count and multiply-adds at its standard input size."
    )

    @Option(name: .long, help: "Only models whose name contains this text.")
    var filter: String?

    func run() throws {
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
