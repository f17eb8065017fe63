import ArgumentParser
import CloverDistributed

/// `clover mpi-check`: checks the MPI bindings and the job's wiring under
/// `mpirun` before a long run: every rank sums known arrays of awkward
/// sizes (empty, one element, odd lengths, a buffer cut into many small
/// buckets), averages bucketed buffers, and receives rank 0's broadcast; any
/// wrong value fails the job naming the rank.
struct DistributedCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mpi-check",
        abstract: "Check MPI collectives across the ranks of an mpirun job.",
        discussion: "Run it as e.g. `mpirun -np 2 clover mpi-check`; each rank prints one line."
    )

    @Option(name: .long, help: "Bucket size in bytes for the bucketed average (small values give many buckets).")
    var bucketBytes: Int = 12

    func validate() throws {
        guard bucketBytes >= 1 else { throw ValidationError("--bucket-bytes must be at least 1 (got \(bucketBytes))") }
    }

    func run() throws {
        try Console.reportingFailures {
            let world = try Communicator.initialize(requiring: .serialized)
            let job = "rank \(world.rank) of \(world.size)"
            let reported: String
            do {
                try check(world)
                reported = try checkErrorReporting(world)
            } catch {
                Console.error("error: \(job): \(error); aborting the job")
                world.abort(code: 1)
            }
            print("\(job) (host rank \(world.localRank) of \(world.localSize), \(world.threadLevel)): mpi-check passed; "
                  + "an invalid call reports: \(reported)")
            Console.flush()
            try world.finalize()
        }
    }

    private func check(_ world: Communicator) throws {
        let n = Float(world.size), rankSum = n * (n + 1) / 2
        // Sums of small integers are exact in Float, so equality is the test.
        for count in [0, 1, 2, 3, 7, 255, 1000, (1 << 20) + 3] {
            var values = (0..<count).map { Float(world.rank + 1) * Float($0 % 97) }
            try world.allreduceSum(&values)
            if let bad = values.indices.first(where: { values[$0] != Float($0 % 97) * rankSum }) {
                throw CheckFailure("allreduce of \(count) floats: element \(bad) is \(values[bad]), expected \(Float(bad % 97) * rankSum)")
            }
        }
        var doubles: [Double] = [Double(world.rank), 0.5]
        try world.allreduceSum(&doubles)
        guard doubles == [Double(world.size * (world.size - 1) / 2), 0.5 * Double(world.size)] else {
            throw CheckFailure("allreduce of doubles gave \(doubles)")
        }
        for count in [0, 1, 10, 1001] {
            var buffer = (0..<count).map { Float(world.rank) * 2 + Float($0 % 5) }
            let plan = GradientBuckets(count: count, bucketBytes: bucketBytes)
            try world.averageInBuckets(plan, read: { Array(buffer[$0]) }, write: { buffer.replaceSubrange($0, with: $1) })
            // The mean of 2·rank over ranks is size - 1.
            if let bad = buffer.indices.first(where: { buffer[$0] != n - 1 + Float($0 % 5) }) {
                throw CheckFailure("bucketed average of \(count) floats in \(plan.ranges.count) buckets: element \(bad) "
                                   + "is \(buffer[bad]), expected \(n - 1 + Float(bad % 5))")
            }
        }
        let payload = (0..<12_345).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let received = try world.broadcast(world.isRoot ? payload : [])
        guard received == payload else { throw CheckFailure("broadcast: \(received.count) bytes differ from rank 0's") }
        guard try world.broadcast(world.isRoot ? 42 : -1) == 42 else { throw CheckFailure("broadcast of an integer") }
        guard try world.allreduceMax(Int64(world.rank)) == Int64(world.size - 1) else { throw CheckFailure("allreduce max") }
        try world.barrier()
    }

    /// An invalid call (a broadcast from a rank that does not exist) must
    /// come back as an error naming the call, not abort the job; MPI checks
    /// the root on each rank before any communication.
    private func checkErrorReporting(_ world: Communicator) throws -> String {
        do {
            _ = try world.broadcast(Int64(1), root: world.size)
        } catch let error as MPIError {
            guard error.call == "MPI_Bcast", error.code != 0, error.description.hasPrefix("MPI_Bcast failed: ") else {
                throw CheckFailure("an invalid broadcast gave an unexpected error: \(error)")
            }
            return error.description
        }
        throw CheckFailure("a broadcast from rank \(world.size), which does not exist, succeeded")
    }
}

private struct CheckFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
