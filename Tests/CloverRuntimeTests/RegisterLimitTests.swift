import CloverRuntime
import CloverTestSupport
import XCTest

/// A program's register limit reaches NVIDIA's driver as
/// `-cl-nv-maxrregcount` (its `cl_nv_compiler_options`), which other drivers
/// would reject as an unknown option; the limit is recorded on the program
/// and its kernels either way, which is how the static NVIDIA check learns it.
final class RegisterLimitTests: XCTestCase {
    func testTheLimitIsAnOptionOnlyWhereTheDriverTakesIt() {
        let defines = ["TM": "128", "EPI": "EPI_NONE", "FLAG": ""]
        XCTAssertEqual(ProgramCache.buildOptions(defines),
                       "-cl-std=CL1.2 -DEPI=EPI_NONE -DFLAG -DTM=128")
        XCTAssertEqual(ProgramCache.buildOptions(defines, registerLimit: 128),
                       "-cl-std=CL1.2 -DEPI=EPI_NONE -DFLAG -DTM=128")
        XCTAssertEqual(ProgramCache.buildOptions(defines, registerLimit: 128, nvidiaCompilerOptions: true),
                       "-cl-std=CL1.2 -DEPI=EPI_NONE -DFLAG -DTM=128 -cl-nv-maxrregcount=128")
        XCTAssertEqual(ProgramCache.buildOptions(defines, nvidiaCompilerOptions: true),
                       "-cl-std=CL1.2 -DEPI=EPI_NONE -DFLAG -DTM=128")
    }

    func testTheLimitIsRecordedOnTheProgramAndItsKernels() throws {
        let context = try TestSupport.context()
        let source = "__kernel void limited(__global float* x, const ulong x_off) { x[x_off] = 1.0f; }"
        let kernel = try context.kernel("limited", program: "register-limit", source: { source },
                                        defines: ["N": "1"], registerLimit: 96)
        XCTAssertEqual(kernel.programRegisterLimit, 96)
        let nvidia = context.device.supports("cl_nv_compiler_options")
        XCTAssertEqual(kernel.programOptions.contains("-cl-nv-maxrregcount=96"), nvidia, kernel.programOptions)
        let unlimited = try context.kernel("limited", program: "register-limit", source: { source }, defines: ["N": "2"])
        XCTAssertNil(unlimited.programRegisterLimit)
    }
}
