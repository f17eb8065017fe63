import Foundation
import PackagePlugin

/// Embeds every `Kernels/*.cl` file (and the shared `Kernels/include/*.h`
/// headers) of the package into the target as Swift
/// string literals, so the library works when linked into another package
/// with no source tree around it.
@main
struct EmbedKernelsPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let kernelsDir = context.package.directoryURL.appending(path: "Kernels")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: kernelsDir.path)) ?? []
        let includeDir = kernelsDir.appending(path: "include")
        let headers = ((try? FileManager.default.contentsOfDirectory(atPath: includeDir.path)) ?? [])
            .filter { $0.hasSuffix(".h") }.sorted().map { includeDir.appending(path: $0) }
        let inputs = names.filter { $0.hasSuffix(".cl") }.sorted().map { kernelsDir.appending(path: $0) } + headers
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedKernelSources.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(inputs.count) OpenCL kernel and header files",
                executable: try context.tool(named: "embed-kernels").url,
                arguments: [output.path] + inputs.map(\.path),
                inputFiles: inputs,
                outputFiles: [output]
            )
        ]
    }
}
