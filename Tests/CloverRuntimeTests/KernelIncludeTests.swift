@testable import CloverKernels
import XCTest

/// Kernel families share work-group code through headers in
/// `Kernels/include`, inlined by `KernelSources` so every program's source
/// text (and so its cache key) holds them.
final class KernelIncludeTests: XCTestCase {
    func testIncludesAreInlinedOnceAndNeverReachTheCompiler() throws {
        XCTAssertNotNil(embeddedKernelHeaders["reduce.h"])
        for family in KernelSources.embeddedFamilies {
            let source = try KernelSources.source(family: family)
            XCTAssertFalse(source.contains("#include \""), "\(family) still holds an #include line")
        }
        let loss = try KernelSources.source(family: "loss")
        XCTAssertEqual(loss.components(separatedBy: "inline void tree_sum(").count, 2, "reduce.h inlined once")
        // A header included twice (directly and through another) is inlined once.
        let twice = try KernelSources.resolvingIncludes("#include \"reduce.h\"\n#include \"reduce.h\"\nx", in: "test")
        XCTAssertEqual(twice.components(separatedBy: "inline void tree_sum(").count, 2)
        XCTAssertTrue(twice.hasSuffix("x"))
    }

    /// Work-group trees live in reduce.h alone (one fixed, documented
    /// order), so a family that needs one calls the header instead of
    /// writing its own halving loop.
    func testNoFamilyWritesItsOwnWorkGroupTree() throws {
        for (family, text) in embeddedKernelSources {
            XCTAssertFalse(text.contains(">>= 1)"), "\(family).cl holds a halving loop: use reduce.h's trees")
        }
        XCTAssertTrue(try XCTUnwrap(embeddedKernelHeaders["reduce.h"]).contains(">>= 1)"))
    }

    func testAMissingHeaderNamesItAndTheFamily() {
        XCTAssertThrowsError(try KernelSources.resolvingIncludes("  #include \"nope.h\"\n", in: "fam")) { error in
            XCTAssertTrue("\(error)".contains("nope.h") && "\(error)".contains("fam"), "\(error)")
        }
    }
}
