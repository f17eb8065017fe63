import CloverData
import XCTest

final class AugmentationTests: XCTestCase {
    func testFlipMirrorsEachRow() throws {
        let flip = Augmentation(flipProbability: 1)
        let image: [Float] = [1, 2, 3, 4, 5, 6]  // one channel, 2 rows of 3
        XCTAssertEqual(try flip.apply(to: image, shape: [1, 2, 3], seed: 7), [3, 2, 1, 6, 5, 4])
        XCTAssertEqual(try flip.apply(to: image, shape: [1, 2, 3], draw: .init(cropY: 0, cropX: 0, flipped: false)),
                       image)
    }

    func testCropShiftsInZeros() throws {
        let crop = Augmentation(cropPadding: 1)
        let image: [Float] = [1, 2, 3, 4, 5, 6, 7, 8, 9]  // 3×3
        // Window at (0, 2) of the padded 5×5: one row of padding on top, the
        // image moved one column left with padding on the right.
        XCTAssertEqual(try crop.apply(to: image, shape: [1, 3, 3], draw: .init(cropY: 0, cropX: 2, flipped: false)),
                       [0, 0, 0, 2, 3, 0, 5, 6, 0])
        // The centre window is the image itself.
        XCTAssertEqual(try crop.apply(to: image, shape: [1, 3, 3], draw: .init(cropY: 1, cropX: 1, flipped: false)),
                       image)
    }

    func testDrawsStayInBoundsAndCoverTheRange() {
        let augmentation = Augmentation.cifar10Training
        var offsets = Set<Int>()
        var flips = 0
        let draws = 4000
        for seed in 0..<UInt64(draws) {
            let draw = augmentation.draw(seed: seed)
            XCTAssertTrue((0...8).contains(draw.cropY) && (0...8).contains(draw.cropX), "\(draw)")
            offsets.insert(draw.cropY)
            offsets.insert(draw.cropX)
            if draw.flipped { flips += 1 }
        }
        XCTAssertEqual(offsets, Set(0...8))
        XCTAssertEqual(Double(flips) / Double(draws), 0.5, accuracy: 0.04)
        XCTAssertEqual(Augmentation.none.draw(seed: 3), .init(cropY: 0, cropX: 0, flipped: false))
    }

    func testNormalisationPerChannel() throws {
        let normalize = Augmentation(normalization: Normalization(mean: [0.5, 0.25], std: [0.5, 2]))
        let image: [Float] = [1, 0, 0.25, 4.25]  // two channels of 1×2
        XCTAssertEqual(try normalize.apply(to: image, shape: [2, 1, 2], seed: 0), [1, -1, 0, 2])
        XCTAssertEqual(FashionMNIST.normalization.mean, [0.2860])
        XCTAssertEqual(FashionMNIST.normalization.std, [0.3530])
        XCTAssertEqual(CIFAR10.normalization.mean, [0.4914, 0.4822, 0.4465])
    }

    func testPaddingTo32CentresA28x28Image() throws {
        let pad = Augmentation(paddedSize: 32, normalization: FashionMNIST.normalization)
        XCTAssertEqual(try pad.outputShape(for: [1, 28, 28]), [1, 32, 32])
        let image = [Float](repeating: 1, count: 28 * 28)
        let output = try pad.apply(to: image, shape: [1, 28, 28], seed: 0)
        let inside = (1 - 0.2860 as Float) / 0.3530
        let border = (0 - 0.2860 as Float) / 0.3530
        for y in 0..<32 {
            for x in 0..<32 {
                let expected = (2..<30).contains(y) && (2..<30).contains(x) ? inside : border
                XCTAssertEqual(output[y * 32 + x], expected, "at (\(y), \(x))")
            }
        }
    }

    /// The one-pass implementation against the steps spelled out one by one:
    /// centre pad, zero pad, crop, flip, normalise.
    func testMatchesStepByStepReference() throws {
        let augmentation = Augmentation(paddedSize: 6, cropPadding: 2, flipProbability: 0.5,
                                        normalization: Normalization(mean: [0.1, 0.2], std: [0.3, 0.4]))
        let (channels, height, width) = (2, 5, 4)
        let image = (0..<channels * height * width).map { Float($0) / 40 }
        for seed in 0..<UInt64(50) {
            let draw = augmentation.draw(seed: seed)
            var expected: [Float] = []
            for c in 0..<channels {
                // Canvas of 6×6 with the 5×4 image at (0, 1), then padding 2 → 10×10.
                func padded(_ y: Int, _ x: Int) -> Float {
                    let (iy, ix) = (y - 2 - (6 - height) / 2, x - 2 - (6 - width) / 2)
                    guard (0..<height).contains(iy), (0..<width).contains(ix) else { return 0 }
                    return image[(c * height + iy) * width + ix]
                }
                for y in 0..<6 {
                    let row = (0..<6).map { padded(y + draw.cropY, $0 + draw.cropX) }
                    for value in draw.flipped ? row.reversed() : row {
                        expected.append((value - [0.1, 0.2][c]) / [0.3, 0.4][c])
                    }
                }
            }
            XCTAssertEqual(try augmentation.apply(to: image, shape: [channels, height, width], seed: seed),
                           expected, "seed \(seed), \(draw)")
        }
    }

    func testSameSeedSameResult() throws {
        let image = (0..<3 * 32 * 32).map { Float($0 % 97) / 97 }
        let augmentation = Augmentation.cifar10Training
        let first = try augmentation.apply(to: image, shape: [3, 32, 32], seed: 1234)
        XCTAssertEqual(try augmentation.apply(to: image, shape: [3, 32, 32], seed: 1234), first)
        let others = try (0..<UInt64(8)).map { try augmentation.apply(to: image, shape: [3, 32, 32], seed: $0) }
        XCTAssertTrue(others.contains { $0 != first })
    }

    func testMisfitsAreErrors() {
        let wrongChannels = Augmentation(normalization: CIFAR10.normalization)
        XCTAssertThrowsError(try wrongChannels.outputShape(for: [1, 28, 28]))
        XCTAssertThrowsError(try Augmentation(paddedSize: 16).outputShape(for: [1, 28, 28]))
        XCTAssertThrowsError(try Augmentation(flipProbability: 2).outputShape(for: [1, 28, 28]))
        XCTAssertThrowsError(try Augmentation.none.apply(to: [1, 2, 3], shape: [1, 2, 2], seed: 0))
    }
}
