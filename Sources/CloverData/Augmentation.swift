/// Per-channel normalisation, `(value − mean[c]) / std[c]`, as torchvision's
/// `Normalize` does. The standard constants are ``FashionMNIST/normalization``,
/// ``CIFAR10/normalization`` and ``CIFAR100/normalization``.
public struct Normalization: Sendable, Equatable {
    /// One mean per channel.
    public let mean: [Float]
    /// One standard deviation per channel; each must be positive.
    public let std: [Float]

    public init(mean: [Float], std: [Float]) {
        self.mean = mean
        self.std = std
    }
}

/// What to do to each sample on its way into a batch, in this order:
///
/// 1. **Resize by padding**: centre the image on a zero canvas of
///    `paddedSize × paddedSize` (28×28 → 32×32 adds 2 on every side), so
///    networks built for CIFAR's 32×32 take Fashion-MNIST.
/// 2. **Random crop**: pad by `cropPadding` zeros on every side and cut out
///    a window of the original size at a random offset (torchvision's
///    `RandomCrop(32, padding: 4)` for CIFAR).
/// 3. **Horizontal flip** with probability `flipProbability`.
/// 4. **Normalisation** per channel, so the padding, being zero pixels,
///    becomes `−mean / std` like a black pixel would.
///
/// Random choices come from a seed (see ``draw(seed:)``): the same seed
/// gives the same augmentation. ``BatchLoader`` derives a seed per sample
/// from its own seed, the epoch and the sample's index.
public struct Augmentation: Sendable, Equatable {
    /// The side of the square canvas the image is centred on; `nil` keeps its size.
    public var paddedSize: Int?
    /// Zero padding on each side for the random crop; 0 disables cropping.
    public var cropPadding: Int
    /// The probability of a horizontal flip; 0 disables flipping.
    public var flipProbability: Double
    /// Applied last; `nil` leaves pixel values as they are.
    public var normalization: Normalization?

    public init(paddedSize: Int? = nil, cropPadding: Int = 0, flipProbability: Double = 0,
                normalization: Normalization? = nil) {
        self.paddedSize = paddedSize
        self.cropPadding = cropPadding
        self.flipProbability = flipProbability
        self.normalization = normalization
    }

    /// Samples pass through unchanged.
    public static let none = Augmentation()
    /// The usual CIFAR-10 training pipeline: random crop with padding 4,
    /// flip with probability 0.5, CIFAR-10 normalisation.
    public static let cifar10Training = Augmentation(cropPadding: 4, flipProbability: 0.5,
                                                     normalization: CIFAR10.normalization)
    /// CIFAR-10 evaluation: normalisation only.
    public static let cifar10Test = Augmentation(normalization: CIFAR10.normalization)

    /// Whether any step is random (otherwise every seed gives the same result).
    public var isRandom: Bool { cropPadding > 0 || flipProbability > 0 }

    /// The random choices for one sample.
    public struct Draw: Sendable, Equatable {
        /// The crop window's offset into the padded image, in `0...2·cropPadding`
        /// (`cropPadding` means no shift).
        public var cropY: Int
        public var cropX: Int
        /// Whether the image is mirrored left to right.
        public var flipped: Bool

        public init(cropY: Int, cropX: Int, flipped: Bool) {
            self.cropY = cropY
            self.cropX = cropX
            self.flipped = flipped
        }
    }

    /// The choices that `seed` makes.
    public func draw(seed: UInt64) -> Draw {
        var generator = SplitMix64(seed: seed)
        // Always drawn in this order, so a seed's crop does not depend on
        // whether flipping is enabled.
        let cropY = cropPadding > 0 ? generator.below(2 * cropPadding + 1) : 0
        let cropX = cropPadding > 0 ? generator.below(2 * cropPadding + 1) : 0
        let flipped = flipProbability > 0 && generator.unit() < flipProbability
        return Draw(cropY: cropY, cropX: cropX, flipped: flipped)
    }

    /// The shape `[channels, height, width]` of an augmented sample of `shape`.
    ///
    /// - Throws: ``DataError`` when `shape` is not three positive sizes or the
    ///   augmentation does not fit it: a `paddedSize` smaller than the image,
    ///   a negative `cropPadding`, a `flipProbability` outside [0, 1], or a
    ///   normalisation whose channel count differs or whose std is not positive.
    public func outputShape(for shape: [Int]) throws -> [Int] {
        let source = "Augmentation"
        guard shape.count == 3, shape.allSatisfy({ $0 > 0 }) else {
            throw DataError(source, "sample shape \(shape) is not [channels, height, width] of positive sizes")
        }
        if let size = paddedSize, size < shape[1] || size < shape[2] {
            throw DataError(source, "padded size \(size) is smaller than the \(shape[1])×\(shape[2]) image")
        }
        guard cropPadding >= 0 else { throw DataError(source, "crop padding \(cropPadding) is negative") }
        guard (0...1).contains(flipProbability) else {
            throw DataError(source, "flip probability \(flipProbability) is outside [0, 1]")
        }
        if let normalization {
            guard normalization.mean.count == shape[0], normalization.std.count == shape[0] else {
                throw DataError(source, "normalisation has \(normalization.mean.count) means and "
                    + "\(normalization.std.count) stds for \(shape[0]) channels")
            }
            guard normalization.std.allSatisfy({ $0 > 0 }) else {
                throw DataError(source, "normalisation std \(normalization.std) is not all positive")
            }
        }
        return [shape[0], paddedSize ?? shape[1], paddedSize ?? shape[2]]
    }

    /// Augments one image of `shape` (`[channels, height, width]`) with the
    /// given choices.
    public func apply<Image: Collection>(to image: Image, shape: [Int], draw: Draw) throws -> [Float]
    where Image.Element == Float {
        let output = try outputShape(for: shape)
        guard image.count == shape.reduce(1, *) else {
            throw DataError("Augmentation", "\(image.count) values are not an image of shape \(shape)")
        }
        let pixels = Array(image)
        return [Float](unsafeUninitializedCapacity: output.reduce(1, *)) { out, initialized in
            pixels.withUnsafeBufferPointer { write($0, shape: shape, draw: draw, into: out) }
            initialized = out.count
        }
    }

    /// Augments one image of `shape` with the choices that `seed` makes.
    public func apply<Image: Collection>(to image: Image, shape: [Int], seed: UInt64) throws -> [Float]
    where Image.Element == Float {
        try apply(to: image, shape: shape, draw: draw(seed: seed))
    }

    /// The augmentation itself, without checks (``outputShape(for:)`` has
    /// validated `shape`): one pass that maps each output pixel back to the
    /// input pixel it shows, or to zero padding.
    func write(_ image: UnsafeBufferPointer<Float>, shape: [Int], draw: Draw,
               into out: UnsafeMutableBufferPointer<Float>) {
        let (channels, height, width) = (shape[0], shape[1], shape[2])
        let outHeight = paddedSize ?? height
        let outWidth = paddedSize ?? width
        // Input row of output row y: y + shiftY − padTop (likewise for columns).
        let padTop = (outHeight - height) / 2
        let padLeft = (outWidth - width) / 2
        let shiftY = draw.cropY - cropPadding
        let shiftX = draw.cropX - cropPadding
        for channel in 0..<channels {
            let mean = normalization?.mean[channel] ?? 0
            let std = normalization?.std[channel] ?? 1
            let padding = (0 - mean) / std
            for y in 0..<outHeight {
                let row = out.baseAddress! + (channel * outHeight + y) * outWidth
                let inputY = y + shiftY - padTop
                guard inputY >= 0 && inputY < height else {
                    row.update(repeating: padding, count: outWidth)
                    continue
                }
                let inputRow = image.baseAddress! + (channel * height + inputY) * width
                for x in 0..<outWidth {
                    let inputX = (draw.flipped ? outWidth - 1 - x : x) + shiftX - padLeft
                    row[x] = inputX >= 0 && inputX < width ? (inputRow[inputX] - mean) / std : padding
                }
            }
        }
    }
}
