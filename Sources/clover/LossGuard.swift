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
            // The flag starts as a zero created before the first step's
            // temporaries, so every step, the first included, holds the same
            // buffers at its peak and a later step allocates nothing new.
            let current = try flag ?? Tensor.zeros(loss.shape, on: loss.device)
            flag = try add(current, try scale(loss, by: 0))
        }
    }

    /// Creates the flag before the first step (see ``record(_:)``).
    mutating func prepare(on device: Device) throws {
        if flag == nil { flag = try Tensor.zeros([], on: device) }
    }

    /// Whether every loss recorded since the last check was finite (reads
    /// one float, waiting for the queued work). `step` is the last recorded
    /// step, so that the next check reports the steps it covers.
    mutating func allFinite(throughStep step: Int) throws -> Bool {
        defer { firstUnchecked = step + 1 }
        guard let flag else { return true }
        return try flag.toArray().allSatisfy(\.isFinite)
    }

    /// What the progress line shows, read from the device at once: whether
    /// every loss since the last check was finite, the step's loss, and the
    /// predicted class of each row of `logits`. One blocking read instead of
    /// three (flag, loss, logits): the line costs one wait for the device.
    mutating func progress(loss: Tensor, logits: Tensor,
                           throughStep step: Int) throws -> (allFinite: Bool, loss: Float, predictions: [Int32]) {
        let read = try progress(loss: loss, reading: try withoutGradients { try argmax(logits.detached()) },
                                throughStep: step)
        return (read.allFinite, read.loss, read.values.map { Int32($0) })
    }

    /// As ``progress(loss:logits:throughStep:)``, with the values of `extra`
    /// (flattened) in place of the predictions: for heads whose progress is
    /// not an argmax, such as OSCAR's contrastive logit.
    mutating func progress(loss: Tensor, reading extra: Tensor,
                           throughStep step: Int) throws -> (allFinite: Bool, loss: Float, values: [Float]) {
        defer { firstUnchecked = step + 1 }
        let packed = try withoutGradients {
            try concat([(flag ?? Tensor.zeros([], on: loss.device)).reshaped([1]), loss.detached().reshaped([1]),
                        extra.detached().reshaped([extra.shape.reduce(1, *)])], axis: 0)
        }
        let values = try packed.toArray()
        return (values[0].isFinite, values[1], Array(values.dropFirst(2)))
    }

    /// Starts a new epoch's step numbering (the flag itself stays: once
    /// non-finite, the run has already stopped).
    mutating func startEpoch() {
        firstUnchecked = 1
    }
}
