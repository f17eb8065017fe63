import Clover

extension ConformanceSuite {
    /// The TF32 tensor-core product (``TensorCoreProduct``): on a device with
    /// tensor cores the real `mma.sync`, elsewhere `mma.h`'s emulation, against
    /// the reference's product of TF32-rounded operands (FP32 accumulation of 8
    /// exact products: a few ulps), and the rounding itself, which must be
    /// cvt.rna's to the bit (a tolerance of 1e-6 on values of order 1, where
    /// a missing rounding errs by up to 5e-4). Inputs at odd offsets too, and
    /// magnitudes far from 1: products up to 9e4 whose sums cancel, so the
    /// bound there is a few ulps of the terms (0.05), still far below one
    /// unrounded product's error (about 45).
    static func tensorCoreCases() -> [ConformanceCase] {
        let shapes = [[16, 8], [8, 8], [16, 8], [32]]
        let tight = Tolerance(absolute: 1e-6, relative: 1e-6)
        return [
            ConformanceCase(op: "tf32_mma", label: "m16n8k8 uniform(-1, 1)", primitive: TensorCoreProduct(),
                            inputShapes: shapes, forward: tight, backward: tight, checkGradients: false),
            ConformanceCase(op: "tf32_mma", label: "m16n8k8 uniform(-300, 300) offset", primitive: TensorCoreProduct(),
                            inputShapes: shapes, distributions: shapes.map { _ in .uniform(-300, 300) },
                            offsetInputs: true, forward: Tolerance(absolute: 5e-2, relative: 1e-6),
                            backward: tight, checkGradients: false),
        ]
    }
}
