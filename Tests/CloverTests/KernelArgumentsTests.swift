@testable import Clover
import CloverKernels
import CloverKernelScanner
import CloverRuntime
import XCTest

/// The typed kernel arguments generated from the `__kernel` signatures
/// (`embed-kernels`, ``KernelArguments``): how the scanner reads a
/// signature, that the generated structs pass exactly the declared
/// parameters, and that a launch refuses another kernel's arguments.
final class KernelArgumentsTests: XCTestCase {
    func testScannerReadsSignaturesWithAttributesCommentsAndPointerSpacing() throws {
        let source = """
            // __kernel void commented_out(int a)
            __kernel __attribute__((reqd_work_group_size(64, 1, 1)))
            void first(const int N, /* count */ __global const float *x, const ulong x_off,
                       __global float* restrict y, const ulong y_off, __local float* scratch) { }
            static inline int helper(int v) { return v; }
            __kernel void second(const int8 sizes, const float alpha) { }
            """
        let signatures = try KernelScanner.kernelSignatures(in: source)
        XCTAssertEqual(signatures.map(\.name), ["first", "second"])
        XCTAssertEqual(signatures[0].parameters, [
            .init(type: "int", name: "N"), .init(type: "__global float*", name: "x"), .init(type: "ulong", name: "x_off"),
            .init(type: "__global float*", name: "y"), .init(type: "ulong", name: "y_off"),
            .init(type: "__local float*", name: "scratch"),
        ])
        XCTAssertEqual(signatures[1].parameters, [.init(type: "int8", name: "sizes"), .init(type: "float", name: "alpha")])
        XCTAssertEqual(signatures.map(\.name), KernelScanner.kernelNames(in: source))
    }

    func testAPreprocessorLineInAParameterListIsAnError() {
        let source = "__kernel void k(const int n,\n#if X\n const int m\n#endif\n) {}"
        XCTAssertThrowsError(try KernelScanner.kernelSignatures(in: source)) { error in
            XCTAssertTrue("\(error)".contains("kernel k"), "\(error)")
        }
    }

    /// Every kernel of every family has a signature the generator could type
    /// (the build fails otherwise), and a generated struct's values are the
    /// kernel's parameters one for one: a buffer view is its pointer and offset.
    func testGeneratedArgumentsMatchTheDeclaredParameters() throws {
        let buffer = try XCTUnwrap(try TestDevice.get().openCL).allocateView(count: 4)
        let depthwise = DepthwiseForwardArguments(C: 1, H: 2, W: 3, OH: 4, OW: 5, x: buffer, w: buffer, bias: buffer,
                                                  hasBias: 0, y: buffer)
        let signature = try XCTUnwrap(try KernelScanner.kernelSignatures(in: KernelSources.source(family: "depthwise"))
            .first { $0.name == "depthwise_forward" })
        XCTAssertEqual(depthwise.values.count, signature.parameters.count)
        XCTAssertEqual(DepthwiseForwardArguments.kernel, .depthwiseForward)
        XCTAssertEqual(depthwise.values.compactMap { $0 as? Int32 }, [1, 2, 3, 4, 5, 0])
        XCTAssertEqual(depthwise.values.compactMap { $0 as? UInt64 }.count, 4, "one offset per buffer view")
        for family in KernelSources.embeddedFamilies {
            XCTAssertNoThrow(try KernelScanner.kernelSignatures(in: KernelSources.source(family: family)), family)
        }
    }

    func testALaunchRefusesAnotherKernelsArguments() throws {
        let context = try XCTUnwrap(try TestDevice.get().openCL)
        let g = try Convolution2DParameters(stride: 1, padding: 1, groups: 4)
            .geometry(input: [1, 4, 6, 6], weight: [4, 1, 3, 3], op: "conv2d", shapes: [])
        let kernel = try DirectConv.kernel(context, .depthwiseBackwardWeightReduce, g)
        let view = try context.allocateView(count: 64)
        XCTAssertThrowsError(try context.launch(kernel, global: [64], local: [64],
                                                DepthwiseBackwardDataArguments(C: 4, H: 6, W: 6, OH: 6, OW: 6, dy: view,
                                                                               w: view, dx: view))) { error in
            guard case RuntimeError.invalidLaunch(let name, let reason) = error else {
                return XCTFail("expected invalidLaunch, got \(error)")
            }
            XCTAssertEqual(name, "depthwise_backward_weight_reduce")
            XCTAssertTrue(reason.contains("depthwise_backward_data"), reason)
        }
    }

    /// The `// Macros:` section is read item by item: several names on one
    /// line, names on the `Macros:` line, `none`, continuation lines and the
    /// paragraph after the section are not macros.
    func testScannerReadsTheDeclaredMacros() {
        let source = """
            // Macros: (integers)
            //   TM, TN   the tile
            //            CONTINUED on this line, not a macro
            //   MMA_EMULATE (mma.h) 1: the emulation
            //   ACT      the activation: ACT_NONE (default)
            //         ACT_RELU continues the item
            // Constraints: NOT_A_MACRO
            //
            //   LATER    after the blank line: another section
            """
        XCTAssertEqual(KernelScanner.declaredMacros(in: source), ["TM", "TN", "MMA_EMULATE", "ACT"])
        XCTAssertEqual(KernelScanner.declaredMacros(in: "// Macros: MMA_EMULATE (mma.h): 1 emulates\n"), ["MMA_EMULATE"])
        XCTAssertEqual(KernelScanner.declaredMacros(in: "// Macros: none.\n//   WG  not listed\n"), [])
        XCTAssertEqual(KernelScanner.declaredMacros(in: "__kernel void k() {}"), [])
    }

    /// Every family's header is a complete contract: each macro its source
    /// (with its includes) gives a default with `#ifndef` is listed in its
    /// `// Macros:` section, so the generated defines can set it, and each
    /// listed macro is one the source reads.
    func testEveryFamilyHeaderListsTheMacrosItsSourceTakes() throws {
        for family in KernelSources.embeddedFamilies {
            let source = try KernelSources.source(family: family)
            let declared = Set(KernelScanner.declaredMacros(in: source))
            let defaulted = Set(source.split(separator: "\n").compactMap { line -> String? in
                guard line.hasPrefix("#ifndef ") else { return nil }
                let name = String(line.dropFirst("#ifndef ".count).prefix { !$0.isWhitespace })
                return name.hasPrefix("CLOVER_") && name.hasSuffix("_H") ? nil : name  // include guards
            })
            XCTAssertTrue(defaulted.isSubset(of: declared),
                          "\(family).cl: \(defaulted.subtracting(declared).sorted()) have defaults but no header entry")
            // The code without its comment lines: a listed macro must appear there.
            let code = source.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("//") }
                .joined(separator: "\n")
            for macro in declared {
                XCTAssertNotNil(code.range(of: "\\b\(macro)\\b", options: .regularExpression),
                                "\(family).cl lists \(macro) but never reads it")
            }
        }
    }

    /// The generated defines carry exactly the set fields, flags as 1 or 0,
    /// and a kernel look-up refuses another family's defines.
    func testGeneratedDefinesAndTheLookUpRefusesAnotherFamilys() throws {
        XCTAssertEqual(OptimizerDefines(nesterov: true, momentum: false).values, ["NESTEROV": "1", "MOMENTUM": "0"])
        XCTAssertEqual(ConvgemmDefines(tm: 64, epi: "EPI_RELU").values, ["TM": "64", "EPI": "EPI_RELU"])
        XCTAssertEqual(NormalizationDefines(vw: 16, act: nil as String?).values, ["VW": "16"])
        let context = try XCTUnwrap(try TestDevice.get().openCL)
        XCTAssertThrowsError(try context.kernel(.bnNormalize, ActivationDefines(act: "ACT_SILU"))) { error in
            guard case RuntimeError.invalidLaunch(let name, let reason) = error else {
                return XCTFail("expected invalidLaunch, got \(error)")
            }
            XCTAssertEqual(name, "bn_normalize")
            XCTAssertTrue(reason.contains("activation.cl"), reason)
        }
        XCTAssertNoThrow(try context.kernel(.bnNormalize, NormalizationDefines(vw: 1)))
    }
}
