import Clover

/// Notices a NaN or infinite training loss at any step without making the
/// host wait for the device at each one.
///
/// Every step adds `0 · loss` to a scalar on the device: the sum stays
/// exactly 0 while every loss is finite and becomes NaN from the first one
/// that is not (0 · ±∞ and 0 · NaN are NaN), so one read of the flag covers
/// all the steps since the last. The training loop reads it where it waits
/// for the device anyway: with the progress line, which always prints at the
/// end of an epoch, before any checkpoint.
struct LossGuard {
    private var flag: Tensor?
    /// The first step (1-based, in the epoch) not covered by a read yet.
    private(set) var firstUnchecked = 1

    /// Folds one step's loss into the flag: two tiny launches, no wait.
    mutating func record(_ loss: Tensor) throws {
        let loss = loss.detached()
        try withoutGradients {
            let term = try scale(loss, by: 0)
            flag = try flag.map { try add($0, term) } ?? term
        }
    }

    /// Whether every loss recorded since the last check was finite (reads
    /// one float, waiting for the queued work). `step` is the last recorded
    /// step, so that the next check reports the steps it covers.
    mutating func allFinite(throughStep step: Int) throws -> Bool {
        defer { firstUnchecked = step + 1 }
        guard let flag else { return true }
        return try flag.toArray().allSatisfy(\.isFinite)
    }

    /// Starts a new epoch's step numbering (the flag itself stays: once
    /// non-finite, the run has already stopped).
    mutating func startEpoch() {
        firstUnchecked = 1
    }
}
