// swift-tools-version:6.0
// Clover: Convolutional Learning Over OpenCL.
//
// Targets, one job each:
//   COpenCL, CCLBlast      system modules over the OpenCL ICD loader and CLBlast
//   CCLBlastParameters     a C wrapper over CLBlast's C++-only RetrieveParameters
//   CCLCounters            counts the process's OpenCL calls by interposition
//   CloverFiles            replaces files atomically (temporary file, then rename)
//                          with one error naming the file and the failing call;
//                          every writer uses it, so it depends on nothing
//   CloverRuntime          devices, buffers, programs, kernels, events (knows no ops)
//   CloverKernelScanner    reads the __kernel names of a source (build tool and runtime)
//   CloverKernels          the Kernels/*.cl sources, embedded at build time, and typed
//                          kernel names generated from them
//   Clover                 Tensor, devices, ops (shape rule, CPU reference,
//                          OpenCL dispatch and gradient per op family)
//   CloverTuning           the Tuner: the searches of `clover tune` (CLBlast GEMM
//                          parameters) and `clover tune conv` (convolution
//                          algorithms, also measured on first use by `clover
//                          train --autotune`), and TuningStore, the one writer of
//                          both per-device files. Clover keeps their readers and
//                          the cheap run-time look-up (it cannot depend on this)
//   CloverNN               layers (Module), optimisers, schedules
//   CloverModels           the model families (one file each) and the model zoo
//   CloverConformance      the sweep that checks every op against the CPU reference
//   CZlib                  system module over zlib (gzip-compressed data sets)
//   CloverData             data sets, augmentation and background batching; host
//                          arrays only, so it needs no OpenCL
//   CMPI, CMPIShim         system module over Open MPI, and C functions for its
//                          predefined handles (macros Swift cannot import)
//   CloverDistributed      MPI communicator, errors, gradient buckets and their
//                          averaging (overlapped with backward) for data-parallel
//                          training (only the executables link MPI)
//   clover                 the command-line tool
//   clover-bench           kernel and model benchmarks (Benchmarks/CloverBench)
import PackageDescription

let package = Package(
    name: "Clover",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Clover", targets: ["Clover"]),
        .library(name: "CloverRuntime", targets: ["CloverRuntime"]),
        .library(name: "CloverNN", targets: ["CloverNN"]),
        .library(name: "CloverModels", targets: ["CloverModels"]),
        .library(name: "CloverConformance", targets: ["CloverConformance"]),
        .library(name: "CloverData", targets: ["CloverData"]),
        .library(name: "CloverFiles", targets: ["CloverFiles"]),
        .executable(name: "clover", targets: ["clover"]),
        .executable(name: "clover-bench", targets: ["clover-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        // `swift package generate-documentation --target Clover` (the DocC catalog,
        // Sources/Clover/Clover.docc); scripts/test.sh builds it.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "COpenCL",
            pkgConfig: "OpenCL",
            providers: [.apt(["ocl-icd-opencl-dev", "opencl-headers"])]
        ),
        .systemLibrary(
            name: "CCLBlast",
            pkgConfig: "clblast",
            providers: [.apt(["libclblast-dev"])]
        ),
        .target(
            name: "CCLBlastParameters",
            dependencies: ["CCLBlast"]
        ),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // Counts the OpenCL calls of the whole process, CLBlast's included, by
        // defining the counted entry points in every executable (see
        // Sources/CCLCounters/CLCounters.c); the runtime reads it.
        .target(
            name: "CCLCounters",
            linkerSettings: [.linkedLibrary("dl", .when(platforms: [.linux]))]
        ),
        .target(name: "CloverFiles"),
        .target(
            name: "CloverRuntime",
            dependencies: [
                "CloverFiles",
                "COpenCL",
                "CCLCounters",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "CloverKernelScanner"),
        .executableTarget(name: "embed-kernels", dependencies: ["CloverKernelScanner"]),
        .plugin(
            name: "EmbedKernelsPlugin",
            capability: .buildTool(),
            dependencies: ["embed-kernels"]
        ),
        .target(
            name: "CloverKernels",
            dependencies: ["CloverKernelScanner", "CloverRuntime"],
            plugins: ["EmbedKernelsPlugin"]
        ),
        .target(
            name: "Clover",
            dependencies: [
                "CloverFiles",
                "CloverRuntime",
                "CloverKernels",
                "CCLBlast",
                "CCLBlastParameters",
                "COpenCL",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The Tuner: GEMM and convolution searches and the writing of their
        // files (the library keeps only what reads and applies them).
        .target(
            name: "CloverTuning",
            dependencies: [
                "Clover",
                "CloverFiles",
                "CloverRuntime",
                "CCLBlast",
                "COpenCL",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "CloverNN",
            dependencies: ["Clover", "CloverData", "CloverFiles", "CloverRuntime"]
        ),
        .target(
            name: "CloverModels",
            dependencies: ["Clover", "CloverNN", "CloverData"]
        ),
        .target(
            name: "CloverConformance",
            dependencies: ["Clover", "CloverRuntime", "CloverKernels"]
        ),
        .target(
            name: "CloverData",
            dependencies: ["CloverFiles", "CZlib"]
        ),
        .systemLibrary(
            name: "CMPI",
            pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]
        ),
        .target(
            name: "CMPIShim",
            dependencies: ["CMPI"]
        ),
        .target(
            name: "CloverDistributed",
            dependencies: ["CMPI", "CMPIShim", "Clover", "CloverData", "CloverNN", "CloverRuntime"]
        ),
        .executableTarget(
            name: "clover",
            dependencies: [
                "Clover",
                "CloverConformance",
                "CloverData",
                "CloverDistributed",
                "CloverFiles",
                "CloverModels",
                "CloverNN",
                "CloverTuning",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "clover-bench",
            dependencies: [
                "Clover",
                "CloverDistributed",
                "CloverFiles",
                "CloverModels",
                "CloverNN",
                "CloverRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/CloverBench"
        ),
        // Shared by the test targets: the device under test and the
        // skip-or-fail rule for missing prerequisites (CLOVER_REQUIRE_DEVICE).
        .target(
            name: "CloverTestSupport",
            dependencies: ["Clover", "CloverRuntime"],
            path: "Tests/CloverTestSupport"
        ),
        .testTarget(
            name: "CloverFilesTests",
            dependencies: ["CloverFiles"]
        ),
        .testTarget(
            name: "CloverRuntimeTests",
            dependencies: ["CloverRuntime", "CloverKernels", "CloverTestSupport"]
        ),
        .testTarget(
            name: "CloverTests",
            dependencies: ["Clover", "CloverConformance", "CloverFiles", "CloverRuntime", "CloverKernels", "CloverTestSupport", "CloverTuning"]
        ),
        .testTarget(
            name: "CloverNNTests",
            dependencies: ["Clover", "CloverNN", "CloverConformance", "CloverRuntime", "CloverTestSupport"]
        ),
        .testTarget(
            name: "CloverModelsTests",
            dependencies: ["Clover", "CloverNN", "CloverModels", "CloverRuntime", "CloverTestSupport"]
        ),
        .testTarget(
            name: "CloverDataTests",
            dependencies: ["CloverData", "CloverTestSupport"]
        ),
        .testTarget(
            name: "CloverDistributedTests",
            dependencies: ["CloverDistributed", "CloverTestSupport"]
        ),
        .testTarget(
            name: "CloverCLITests",
            dependencies: ["clover", "CloverConformance", "CloverNN", "CloverRuntime", "CloverTestSupport", "CloverTuning"]
        ),
    ],
    swiftLanguageModes: [.v5]
)
