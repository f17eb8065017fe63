import CloverNN
import CloverRuntime
import Foundation
import CloverTestSupport
import XCTest

/// Data-parallel training with the real `clover` binary under Open MPI's
/// `mpirun` on POCL: the MPI bindings' collectives, ranks that stay
/// identical, 2 ranks × batch B equal to 1 process × batch 2B, resuming with
/// another world size, and a failing or killed rank ending the whole job
/// with the rank named, within a time limit.
///
/// They need `mpirun` (scripts/setup.sh installs openmpi-bin) and skip only
/// when it is absent (fail, under CLOVER_REQUIRE_DEVICE=1 as on CI). As root (CI) they pass `--allow-run-as-root`; with
/// fewer cores than ranks, `--oversubscribe`.
final class DistributedTrainingTests: XCTestCase {
    // MARK: Running mpirun

    private func cloverBinary() throws -> String { try TestSupport.cloverBinary(testFile: #filePath) }

    private func mpirun() throws -> String { try TestSupport.mpirun() }

    private func requireOpenCL() throws { try TestSupport.requireOpenCL() }

    private func tempDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "clover-mpi-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    private struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
        var seconds: Double
    }

    /// Runs `clover arguments` as `ranks` processes under mpirun (or once,
    /// without mpirun, when `ranks` is nil), failing the test if it takes
    /// longer than `timeout` seconds.
    private func clover(_ arguments: [String], ranks: Int?, environment extra: [String: String] = [:],
                        timeout: Double = 300) throws -> Outcome {
        let logs = try tempDirectory()
        let process = Process()
        if let ranks {
            process.executableURL = URL(fileURLWithPath: try mpirun())
            process.arguments = ["-np", "\(ranks)", "--oversubscribe", "--allow-run-as-root", try cloverBinary()] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: try cloverBinary())
            process.arguments = arguments
        }
        var environment = ProcessInfo.processInfo.environment
        // Two ranks share the CPU device's cores; one POCL thread each keeps
        // them from fighting over the cores. Without a single-copy mechanism
        // Open MPI's shared memory transport works in containers.
        environment["POCL_MAX_PTHREAD_COUNT"] = "1"
        environment["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
        environment.merge(extra) { $1 }
        process.environment = environment
        _ = FileManager.default.createFile(atPath: logs + "/stdout", contents: nil)
        _ = FileManager.default.createFile(atPath: logs + "/stderr", contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: logs + "/stdout"))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logs + "/stderr"))
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        let start = Date()
        try process.run()
        if done.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            done.wait()
            XCTFail("\(arguments.prefix(2).joined(separator: " ")) did not end within \(timeout) s")
        }
        func read(_ name: String) throws -> String { try String(contentsOfFile: logs + "/" + name, encoding: .utf8) }
        return Outcome(status: process.terminationStatus, stdout: try read("stdout"), stderr: try read("stderr"),
                       seconds: Date().timeIntervalSince(start))
    }

    /// A small LeNet-5 run on synthetic 28x28 images: no BatchNorm and no
    /// dropout, so how a batch is split over ranks cannot change the math.
    /// A constant rate, so that a run of 1 epoch resumed to 2 follows the
    /// same schedule as a run of 2 (cosine depends on --epochs).
    private func lenet(batch: Int, epochs: Int, out: String) -> [String] {
        ["train", "--model", "lenet5", "--dataset", "synthetic", "--train-subset", "128", "--test-subset", "30",
         "--batch-size", "\(batch)", "--epochs", "\(epochs)", "--log-every", "2", "--lr", "0.05",
         "--schedule", "constant", "--out", out]
    }

    /// The largest relative difference between two state dicts with the same names.
    private func maxRelativeDifference(_ a: SafeTensors, _ b: SafeTensors) throws -> Float {
        XCTAssertEqual(a.names.sorted(), b.names.sorted())
        var worst: Float = 0
        for name in a.names {
            let x = try XCTUnwrap(a[name]?.values), y = try XCTUnwrap(b[name]?.values)
            XCTAssertEqual(x.count, y.count, name)
            for (u, v) in zip(x, y) { worst = max(worst, abs(u - v) / max(abs(u), abs(v), 1e-3)) }
        }
        return worst
    }

    // MARK: Bindings

    /// Allreduce of known arrays of awkward sizes (empty, odd, over a
    /// million elements, many 3-element buckets), broadcast and barrier, on
    /// 2 and 3 ranks; an invalid call is thrown as an error naming it.
    func testCollectivesUnderMpirun() throws {
        for (ranks, bucketBytes) in [(2, 12), (3, 4)] {
            let outcome = try clover(["mpi-check", "--bucket-bytes", "\(bucketBytes)"], ranks: ranks, timeout: 120)
            XCTAssertEqual(outcome.status, 0, outcome.stderr)
            for rank in 0..<ranks {
                XCTAssertTrue(outcome.stdout.contains("rank \(rank) of \(ranks) "), outcome.stdout)
            }
            XCTAssertEqual(outcome.stdout.components(separatedBy: "mpi-check passed").count - 1, ranks, outcome.stdout)
            // Errors come back as MPIError naming the call (MPI_ERRORS_RETURN), not as an abort.
            XCTAssertEqual(outcome.stdout.components(separatedBy: "an invalid call reports: MPI_Bcast failed: ").count - 1,
                           ranks, outcome.stdout)
        }
    }

    // MARK: Equivalence

    /// 2 ranks × batch 16 end with identical parameters on both ranks, the
    /// ones rank 0 checkpoints, and those of 1 process × batch 32 (relative
    /// error ≤ 1e-5; only the order of float additions differs).
    func testTwoRanksEqualOneProcessWithTwiceTheBatch() throws {
        try requireOpenCL()
        let dir = try tempDirectory()
        let two = try clover(lenet(batch: 16, epochs: 2, out: dir + "/two"), ranks: 2,
                             environment: ["CLOVER_RANK_STATE_DIR": dir])
        XCTAssertEqual(two.status, 0, two.stderr)
        XCTAssertTrue(two.stdout.contains("distributed: 2 processes, batch 16 per process, global batch 32"), two.stdout)
        let rank0 = try SafeTensors.read(path: dir + "/rank-0.safetensors")
        let rank1 = try SafeTensors.read(path: dir + "/rank-1.safetensors")
        XCTAssertEqual(try maxRelativeDifference(rank0, rank1), 0, "ranks must apply identical updates")
        let checkpoint = try SafeTensors.read(path: dir + "/two/model.safetensors")
        XCTAssertEqual(try maxRelativeDifference(rank0, checkpoint), 0)
        // Only rank 0 wrote: one generation, and one header line of output.
        XCTAssertEqual(two.stdout.components(separatedBy: "training lenet5").count - 1, 1, two.stdout)

        let one = try clover(lenet(batch: 32, epochs: 2, out: dir + "/one"), ranks: nil)
        XCTAssertEqual(one.status, 0, one.stderr)
        let single = try SafeTensors.read(path: dir + "/one/model.safetensors")
        XCTAssertLessThanOrEqual(try maxRelativeDifference(single, checkpoint), 1e-5)
    }

    /// Many small buckets (10 kB: 25 for LeNet-5), reduced while backward
    /// runs (`CLOVER_ALLREDUCE_OVERLAP=1`, the default on GPUs) or after it
    /// (`0`, the default on CPU devices such as POCL's), give
    /// the same parameters: identical on both ranks and within 1e-5 of
    /// 1 process × batch 32. `--profile` reports the share hidden behind
    /// backward.
    func testBucketsReducedDuringOrAfterBackwardGiveTheSameResult() throws {
        try requireOpenCL()
        let dir = try tempDirectory()
        let one = try clover(lenet(batch: 32, epochs: 2, out: dir + "/one"), ranks: nil)
        XCTAssertEqual(one.status, 0, one.stderr)
        let single = try SafeTensors.read(path: dir + "/one/model.safetensors")
        for overlap in ["1", "0"] {
            let states = dir + "/states-\(overlap)"
            try FileManager.default.createDirectory(atPath: states, withIntermediateDirectories: true)
            let two = try clover(lenet(batch: 16, epochs: 2, out: dir + "/two-\(overlap)") + ["--profile"], ranks: 2,
                                 environment: ["CLOVER_RANK_STATE_DIR": states, "CLOVER_ALLREDUCE_BUCKET_BYTES": "10000",
                                               "CLOVER_ALLREDUCE_OVERLAP": overlap])
            XCTAssertEqual(two.status, 0, two.stderr)
            XCTAssertTrue(two.stdout.contains("25 bucket(s)"), two.stdout)
            XCTAssertTrue(two.stdout.contains(overlap == "1" ? "hidden behind backward;" : "none behind backward"), two.stdout)
            let rank0 = try SafeTensors.read(path: states + "/rank-0.safetensors")
            XCTAssertEqual(try maxRelativeDifference(rank0, try SafeTensors.read(path: states + "/rank-1.safetensors")), 0)
            XCTAssertLessThanOrEqual(try maxRelativeDifference(single, rank0), 1e-5, "overlap \(overlap)")
        }
    }

    /// A checkpoint holds no per-rank state: 1 epoch on 2 ranks resumed by
    /// 1 process (batch 32), and 1 epoch on 1 process resumed by 2 ranks,
    /// both match 2 epochs on 2 ranks.
    func testResumeWithAnotherWorldSize() throws {
        try requireOpenCL()
        let dir = try tempDirectory()
        XCTAssertEqual(try clover(lenet(batch: 16, epochs: 2, out: dir + "/ref"), ranks: 2).status, 0)
        let reference = try SafeTensors.read(path: dir + "/ref/model.safetensors")

        XCTAssertEqual(try clover(lenet(batch: 16, epochs: 1, out: dir + "/a"), ranks: 2).status, 0)
        let resumedByOne = try clover(lenet(batch: 32, epochs: 2, out: dir + "/a") + ["--resume"], ranks: nil)
        XCTAssertEqual(resumedByOne.status, 0, resumedByOne.stderr)
        XCTAssertLessThanOrEqual(try maxRelativeDifference(reference, try SafeTensors.read(path: dir + "/a/model.safetensors")), 1e-5)

        XCTAssertEqual(try clover(lenet(batch: 32, epochs: 1, out: dir + "/b"), ranks: nil).status, 0)
        let resumedByTwo = try clover(lenet(batch: 16, epochs: 2, out: dir + "/b") + ["--resume"], ranks: 2)
        XCTAssertEqual(resumedByTwo.status, 0, resumedByTwo.stderr)
        XCTAssertTrue(resumedByTwo.stdout.contains("1 epoch(s) done"), resumedByTwo.stdout)
        XCTAssertLessThanOrEqual(try maxRelativeDifference(reference, try SafeTensors.read(path: dir + "/b/model.safetensors")), 1e-5)
        let csv = try String(contentsOfFile: dir + "/b/metrics.csv", encoding: .utf8)
        XCTAssertEqual(csv.split(separator: "\n").count, 3, csv)
    }

    /// With BatchNorm each rank keeps its own batch statistics while
    /// training; at each epoch's end they are averaged, so both ranks (and
    /// the checkpoint) hold the same parameters and buffers.
    func testBatchNormBuffersAgreeAcrossRanks() throws {
        try requireOpenCL()
        let dir = try tempDirectory()
        let outcome = try clover(["train", "--model", "cifar-resnet20", "--dataset", "synthetic", "--train-subset", "32",
                                  "--test-subset", "16", "--batch-size", "8", "--epochs", "1", "--log-every", "1",
                                  "--out", dir + "/run", "--distributed"], ranks: 2,
                                 environment: ["CLOVER_RANK_STATE_DIR": dir])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        let rank0 = try SafeTensors.read(path: dir + "/rank-0.safetensors")
        let rank1 = try SafeTensors.read(path: dir + "/rank-1.safetensors")
        XCTAssertNotNil(rank0["layer1.0.bn1.running_mean"])
        XCTAssertEqual(try maxRelativeDifference(rank0, rank1), 0)
        XCTAssertEqual(try maxRelativeDifference(rank0, try SafeTensors.read(path: dir + "/run/model.safetensors")), 0)
        // 2 steps per epoch (32 images, global batch 16) on each rank.
        XCTAssertEqual(rank0["layer1.0.bn1.num_batches_tracked"]?.values, [2])
    }

    /// A short Fashion-MNIST run (LeNet-5, augmentation on, 1 epoch of 4,096
    /// images) on 2 ranks × batch 32 lands in the accuracy band of 1
    /// process × batch 64: the same global batches, differing only in the
    /// order of float additions.
    func testFashionMNISTAccuracyMatchesOneProcess() throws {
        try requireOpenCL()
        guard FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist") else {
            throw TestSupport.unavailable("Fashion-MNIST is absent: scripts/setup.sh installs dataset-fashion-mnist")
        }
        let dir = try tempDirectory()
        func run(batch: Int, ranks: Int?, out: String) throws -> Double {
            let outcome = try clover(["train", "--model", "lenet5", "--train-subset", "4096", "--test-subset", "2000",
                                      "--batch-size", "\(batch)", "--epochs", "1", "--lr", "0.05", "--log-every", "16",
                                      "--out", out] + (ranks == nil ? [] : ["--distributed"]), ranks: ranks)
            XCTAssertEqual(outcome.status, 0, outcome.stderr)
            let csv = try String(contentsOfFile: out + "/metrics.csv", encoding: .utf8)
            let fields = try XCTUnwrap(csv.split(separator: "\n").last).split(separator: ",")
            return try XCTUnwrap(Double(fields[4]))  // test_accuracy
        }
        let one = try run(batch: 64, ranks: nil, out: dir + "/one")
        let two = try run(batch: 32, ranks: 2, out: dir + "/two")
        XCTAssertGreaterThan(one, 0.4, "well above chance (10%) after 64 steps")
        XCTAssertEqual(two, one, accuracy: 0.03, "2 ranks: \(two), 1 process: \(one)")
    }

    // MARK: Failures

    /// A rank whose step throws ends the job at once: non-zero exit, the
    /// rank and the error named, the last complete checkpoint kept.
    func testFailingRankAbortsTheJobNamingIt() throws {
        try requireOpenCL()
        let dir = try tempDirectory()
        // 4 steps per epoch: step 6 falls in epoch 2, after epoch 1's checkpoint.
        let outcome = try clover(lenet(batch: 16, epochs: 3, out: dir + "/run"), ranks: 2,
                                 environment: ["CLOVER_FAIL_RANK": "1", "CLOVER_FAIL_STEP": "6"], timeout: 60)
        XCTAssertNotEqual(outcome.status, 0)
        XCTAssertTrue(outcome.stderr.contains("error: rank 1 of 2: "), outcome.stderr)
        XCTAssertTrue(outcome.stderr.contains("failure injected by CLOVER_FAIL_RANK=1"), outcome.stderr)
        XCTAssertLessThan(outcome.seconds, 60)
        let progress = try String(contentsOfFile: dir + "/run/progress.json", encoding: .utf8)
        XCTAssertTrue(progress.contains("\"epochsDone\" : 1"), progress)
        // The kept checkpoint resumes (with one process).
        let resumed = try clover(lenet(batch: 32, epochs: 2, out: dir + "/run") + ["--resume"], ranks: nil)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
    }

    /// A rank killed by SIGKILL (no error handling runs) also ends the job,
    /// and mpirun names it.
    func testKilledRankEndsTheJob() throws {
        try requireOpenCL()
        let dir = try tempDirectory()
        let outcome = try clover(lenet(batch: 16, epochs: 3, out: dir + "/run"), ranks: 2,
                                 environment: ["CLOVER_FAIL_RANK": "1", "CLOVER_FAIL_STEP": "3", "CLOVER_FAIL_KILL": "1"],
                                 timeout: 60)
        XCTAssertNotEqual(outcome.status, 0)
        XCTAssertTrue((outcome.stdout + outcome.stderr).contains("rank 1"), outcome.stdout + outcome.stderr)
        XCTAssertLessThan(outcome.seconds, 60)
    }
}
