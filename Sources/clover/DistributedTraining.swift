import ArgumentParser
import CloverDistributed
#if canImport(Glibc)
import Glibc
#endif

// What `clover train` adds to CloverDistributed's data-parallel job: the
// failure report and abort of a rank, and the `--profile` lines. The job
// itself (devices, starting equal, gradient averaging, figures over ranks)
// is the library's ``DistributedTraining``.
extension DistributedTraining {
    /// Runs `body`; in a distributed job, any failure (an error, or an
    /// `ExitCode` after a printed message) is reported with the rank and
    /// ends every rank of the job through `MPI_Abort`.
    static func abortingJobOnFailure(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch {
            // A job of this process, once started (until finished), ends on any failure.
            guard let world = Communicator.active else { throw error }
            Console.flush()
            let size = world.size, rank = world.rank
            if let exit = error as? ExitCode {
                guard exit != .success else { throw error }
                Console.error("error: rank \(rank) of \(size) stopped (reason above); aborting the job")
            } else {
                Console.error("error: rank \(rank) of \(size): \(error); aborting the job")
            }
            fflush(stderr)
            world.abort(code: 1)
        }
    }

    /// The `--profile` lines for the epoch's reductions, and a fresh count.
    func takeProfileLines() -> [String] {
        let epoch = takeEpochProfile()
        let s = epoch.statistics, stepsInEpoch = epoch.steps, deviceWaitSeconds = epoch.deviceWaitSeconds
        let steps = Double(max(stepsInEpoch, 1))
        func ms(_ seconds: Double) -> String { Format.fixed(1000 * seconds / steps, decimals: 2) + " ms" }
        return [
            "gradient allreduce per step (\(size) ranks, \(s.buckets / max(stepsInEpoch, 1)) bucket(s) of at most "
                + "\(Format.fixed(Double(averager.bucketBytes) / 1_048_576, decimals: 2)) MiB): "
                + "\(Format.fixed(Double(s.bytes) / steps / 1e6, decimals: 2)) MB "
                + "allreduced; in MPI_Allreduce \(ms(s.communicationSeconds)) (waiting for the slowest rank included), "
                + (averager.overlap != nil
                    ? "\(Format.fixed(100 * s.hiddenFraction, decimals: 1))% of it hidden behind backward; "
                        + "the step waited \(ms(s.totalSeconds)) for backward and the reductions"
                    : "\(Format.fixed(100 * s.hiddenFraction, decimals: 1))% of it hidden behind other buckets' device "
                        + "reads and writes (none behind backward: CLOVER_ALLREDUCE_OVERLAP=1 enables it); reduction with transfers "
                        + "\(ms(s.totalSeconds)); waiting for backward to finish first \(ms(deviceWaitSeconds))"),
        ]
    }
}
