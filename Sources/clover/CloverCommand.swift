import ArgumentParser

/// The `clover` command: lists OpenCL devices and runs the conformance sweep.
@main
struct CloverCommand: ParsableCommand {
    /// The tool's version, printed by `clover --version` and recorded in
    /// conformance reports.
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "clover",
        abstract: "Clover: convolutional learning over OpenCL.",
        discussion: """
            Clover trains with hand-written OpenCL kernels and CLBlast, and checks every \
            kernel against a CPU reference.

            Environment:
              CLOVER_DEVICE      the device when --device is not given: a
                                 case-insensitive substring of a platform or
                                 device name, an index from `clover devices`,
                                 or cpu-reference. Default: the first GPU,
                                 else the first CPU device.
              CLOVER_KERNEL_DIR  a directory of .cl files read instead of the
                                 kernels embedded in the binary.
              XDG_CACHE_HOME     compiled OpenCL programs are cached in
                                 $XDG_CACHE_HOME/clover (or ~/.cache/clover
                                 when unset), so a second run compiles none
                                 of Clover's programs. Delete the directory
                                 to force recompilation. `clover tune` saves
                                 tuned CLBlast GEMM parameters there too.
              CLOVER_GEMM_TUNING set to 0 to ignore the parameters saved by
                                 `clover tune` (CLBlast's defaults are used).
            """,
        version: version,
        subcommands: [DevicesCommand.self, ConformanceCommand.self, ModelsCommand.self, TrainCommand.self, EvalCommand.self, PredictCommand.self,
                      TuneCommand.self, OSCARCorpusCommand.self, PretrainCommand.self, EvalRetrievalCommand.self,
                      DistributedCheckCommand.self, KernelInventoryCommand.self]
    )
}
