import Clover

extension ConformanceSuite {
    /// Max, average and global average pooling and the squeeze-and-excitation
    /// channel scale: VGG (2x2 s2) and ResNet-stem (3x3 s2 pad 1) windows on
    /// odd and awkward spatial sizes, EfficientNet SE shapes (C = 16/96/144,
    /// spatial scaled down), batch 1 and > 1, offsets.
    static func poolingCases() -> [ConformanceCase] {
        // Max pooling selects an input value: the forward must be exact. Its gradient sums at most
        // ⌈k/s⌉² cotangents per input in float (≤ 9 terms of |dy| ≤ 1: under 1e-6).
        let exact = Tolerance(absolute: 0, relative: 0)
        let windowSum = Tolerance(absolute: 1e-6, relative: 1e-6)
        var cases: [ConformanceCase] = []
        let windows: [(PoolWindow, [[Int]])] = [
            (PoolWindow(kernel: 2, stride: 2), [[2, 3, 8, 8], [1, 16, 13, 13], [3, 7, 7, 5]]),
            (PoolWindow(kernel: 3, stride: 2, padding: 1), [[1, 3, 13, 13], [2, 16, 14, 14], [3, 8, 7, 5], [2, 1, 1, 1]]),
            (PoolWindow(kernel: 3, stride: 1, padding: 1), [[1, 13, 7, 5], [2, 3, 1, 33]]),
            (PoolWindow(kernel: 3, stride: 2), [[2, 4, 13, 7]]),
            (PoolWindow(kernelHeight: 3, kernelWidth: 2, strideHeight: 1, strideWidth: 2, paddingHeight: 1, paddingWidth: 0),
             [[1, 5, 6, 9]]),
            // Stride past the window: some inputs lie in no window (the backward's candidates all masked).
            (PoolWindow(kernel: 2, stride: 3), [[2, 3, 8, 7]]),
        ]
        var index = 0
        for (window, shapes) in windows {
            for shape in shapes {
                let offset = index % 2 == 1
                index += 1
                let label = "\(formatShape(shape)) \(window)" + (offset ? " offset" : "")
                cases.append(ConformanceCase(
                    op: "maxpool2d", label: label, primitive: MaxPooling2D(window), inputShapes: [shape],
                    offsetInputs: offset, forward: exact, backward: windowSum))
                cases.append(ConformanceCase(
                    op: "avgpool2d", label: label, primitive: AveragePooling2D(window), inputShapes: [shape],
                    offsetInputs: offset, forward: windowSum, backward: windowSum))
            }
        }
        // Finite differences. Max pooling is only differentiable away from ties, so the values are
        // drawn from ±64 with a step of 1e-3: two values of one window within a step of each other
        // (which would move the argmax during the difference) has odds of about 1e-4 per window,
        // while float resolution at 64 (4e-6) is far below the step.
        for (window, shape) in [(PoolWindow(kernel: 2, stride: 2), [1, 2, 4, 6]),
                                (PoolWindow(kernel: 3, stride: 2, padding: 1), [2, 1, 5, 5]),
                                (PoolWindow(kernel: 3, stride: 1, padding: 1), [1, 1, 4, 3])] {
            let label = "\(formatShape(shape)) \(window) finite differences"
            cases.append(ConformanceCase(
                op: "maxpool2d", label: label, primitive: MaxPooling2D(window), inputShapes: [shape],
                distributions: [.uniform(-64, 64)], forward: exact, backward: windowSum,
                finiteDifference: true, finiteDifferenceStep: 1e-3))
            cases.append(ConformanceCase(
                op: "avgpool2d", label: label, primitive: AveragePooling2D(window), inputShapes: [shape],
                forward: windowSum, backward: windowSum, finiteDifference: true))
        }

        // Global average pooling: a float sum of H·W values (64 strided partial sums, then a tree)
        // against Double. The worst-case rounding bound of the mean, (H·W/64 + 6)·eps for |x| ≤ 1, is
        // about 3e-6 at 33x97, but roundings are random and the observed error is a few 1e-8; 1e-6
        // keeps a wide margin while a dropped element or a wrong divisor (errors ≥ 1e-3) fails. The
        // backward divides once: exact up to the final rounding.
        let mean = Tolerance(absolute: 1e-6, relative: 1e-6)
        for (i, shape) in [[1, 16, 7, 7], [2, 96, 7, 7], [2, 144, 5, 5], [3, 13, 1, 1], [1, 1, 33, 97], [2, 3, 13, 7]]
            .enumerated() {
            cases.append(ConformanceCase(
                op: "global_avgpool", label: formatShape(shape) + (i % 2 == 1 ? " offset" : ""),
                primitive: GlobalAveragePooling2D(), inputShapes: [shape], offsetInputs: i % 2 == 1,
                forward: mean, backward: mean, finiteDifference: shape.reduce(1, *) <= 300))
        }

        // Channel scale: the forward and dx are single float products (exact against the rounded
        // Double product). ds sums H·W products like global pooling, unscaled: its absolute error
        // grows with Σ|dy·x| (up to ~800 for 33x97), hence the relative bound on top.
        let scaleSum = Tolerance(absolute: 1e-5, relative: 1e-5)
        for (i, shape) in [[2, 16, 7, 7], [1, 96, 5, 5], [2, 144, 3, 3], [3, 13, 1, 1], [1, 1, 33, 97], [1, 3, 2, 5]]
            .enumerated() {
            cases.append(ConformanceCase(
                op: "channel_scale", label: formatShape(shape) + (i % 2 == 0 ? " offset" : ""),
                primitive: ChannelScale(), inputShapes: [shape, [shape[0], shape[1], 1, 1]],
                offsetInputs: i % 2 == 0, forward: exact, backward: scaleSum,
                finiteDifference: shape.reduce(1, *) <= 300))
        }
        return cases
    }
}
