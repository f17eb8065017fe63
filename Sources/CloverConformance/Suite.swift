import Clover
import CloverKernels
import CloverRuntime

/// The whole conformance sweep: every op family's cases, and the check that
/// the sweep reaches every `__kernel` in `Kernels/`.
public enum ConformanceSuite {
    /// Every case of every op family, in a stable order.
    public static func allCases() -> [ConformanceCase] {
        elementwiseCases()
            + gemmCases()
            + convolutionCases()
            + lossCases()
            + optimizerCases()
            + convRNNCases()
            + activationCases()
            + poolingCases()
            + dropoutCases()
            + layoutCases()
            + regulatorCases()
            + normalizationCases()
            + reductionCases()
            + attentionCases()
            + embeddingCases()
            + linearCases()
            + tensorCoreCases()
    }

    /// The odd sizes every sweep uses: 1, sizes that are not multiples of
    /// work-group or vector widths, and one larger than a work-group.
    public static let awkwardSizes = [1, 3, 7, 13, 33, 97]

    /// Every `__kernel` declared in the kernel sources, as `family/kernel`.
    public static func declaredKernels() throws -> [(family: String, kernel: String)] {
        var result: [(String, String)] = []
        for family in KernelSources.embeddedFamilies {
            for name in KernelSources.kernelNames(in: try KernelSources.source(family: family)) {
                result.append((family, name))
            }
        }
        return result
    }

    /// Declared kernels that `context` has never launched.
    public static func unexercisedKernels(on context: OpenCLContext) throws -> [String] {
        try declaredKernels().map { "\($0.family)/\($0.kernel)" }.filter { context.launchCounts[$0] == nil }
    }

    /// Declared kernels that `device` has never launched
    /// (every declared kernel off OpenCL, where nothing is launched).
    public static func unexercisedKernels(on device: Device) throws -> [String] {
        let launched = device.launchCounts
        return try declaredKernels().map { "\($0.family)/\($0.kernel)" }.filter { launched[$0] == nil }
    }
}
