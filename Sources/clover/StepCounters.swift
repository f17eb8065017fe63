import Clover

/// The OpenCL calls of each training step, for `clover train --profile`: the
/// first step on its own (it builds programs, fills the buffer pool and
/// creates the optimiser's state) and the mean of the steps after it.
struct StepCounterLog {
    /// The first step recorded, once there is one.
    private(set) var first: DeviceCounters?
    /// The sum of the steps after the first since the last ``report()``.
    private(set) var rest = DeviceCounters()
    private(set) var restSteps = 0

    /// Adds one step's counts.
    mutating func record(_ step: DeviceCounters) {
        if first == nil {
            first = step
        } else {
            rest = rest.adding(step)
            restSteps += 1
        }
    }

    /// The table of counts: a row per count, the first step and the mean per
    /// later step since the last report. Starts a new mean.
    mutating func report() -> [String] {
        defer { (rest, restSteps) = (DeviceCounters(), 0) }
        guard let first else { return [] }
        var lines = ["OpenCL calls per training step (CLBlast's own kernels and buffers included"
                     + (DeviceCounters.seesLibraryCalls ? ")" : "; NOT seen on this platform)")]
        let label = restSteps == 0 ? "(no later steps)" : "mean of \(restSteps) later step\(restSteps == 1 ? "" : "s")"
        let width = first.labeledValues.map(\.label.count).max() ?? 0
        lines.append("  " + pad("", width) + "  " + pad("first step", 14, right: true) + "  " + label)
        for (firstEntry, restEntry) in zip(first.labeledValues, rest.labeledValues) {
            let mean = restSteps == 0 ? "—" : Format.fixed(Double(restEntry.value) / Double(restSteps), decimals: 1)
            lines.append("  " + pad(firstEntry.label, width) + "  " + pad(String(firstEntry.value), 14, right: true)
                         + "  " + pad(mean, label.count, right: true))
        }
        return lines
    }

    private func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - text.count))
        return right ? fill + text : text + fill
    }
}
