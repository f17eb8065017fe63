/// An image classification data set held in host memory: `count` samples of
/// shape `[channels, height, width]`, their pixels as one flat `Float` array
/// in NCHW order, and one `Int32` class label per sample.
public struct Dataset: Sendable {
    /// Which half of a data set to load.
    public enum Split: String, Sendable, CaseIterable {
        case train
        case test
    }

    /// A short name for messages, such as `"fashion-mnist/train"`.
    public var name: String
    /// `[channels, height, width]` of one sample.
    public let sampleShape: [Int]
    /// Labels lie in `0..<classCount`.
    public let classCount: Int
    /// The name of each class, indexed by label; empty when unknown.
    public let classNames: [String]
    /// All samples, NCHW: `count · channels · height · width` values.
    public private(set) var images: [Float]
    /// The label of each sample.
    public private(set) var labels: [Int32]

    /// The number of samples.
    public var count: Int { labels.count }
    /// The number of values in one sample (`channels · height · width`).
    public var sampleSize: Int { sampleShape.reduce(1, *) }

    /// A data set from arrays already in memory.
    ///
    /// - Throws: ``DataError`` naming the data set when `sampleShape` is not
    ///   three positive sizes, `images` does not hold `labels.count` samples,
    ///   a label lies outside `0..<classCount`, or `classNames` is neither
    ///   empty nor `classCount` long.
    public init(images: [Float], labels: [Int32], sampleShape: [Int], classCount: Int,
                classNames: [String] = [], name: String = "dataset") throws {
        guard sampleShape.count == 3, sampleShape.allSatisfy({ $0 > 0 }) else {
            throw DataError(name, "sample shape \(sampleShape) is not [channels, height, width] of positive sizes")
        }
        guard classCount > 0 else { throw DataError(name, "class count \(classCount) is not positive") }
        guard classNames.isEmpty || classNames.count == classCount else {
            throw DataError(name, "\(classNames.count) class names for \(classCount) classes")
        }
        let sampleSize = sampleShape.reduce(1, *)
        guard images.count == labels.count * sampleSize else {
            throw DataError(name, "\(images.count) image values are not \(labels.count) samples of "
                + "\(sampleShape) (\(labels.count * sampleSize) values)")
        }
        if let bad = labels.firstIndex(where: { $0 < 0 || Int($0) >= classCount }) {
            throw DataError(name, "label \(labels[bad]) of sample \(bad) is out of range 0..<\(classCount)")
        }
        self.images = images
        self.labels = labels
        self.sampleShape = sampleShape
        self.classCount = classCount
        self.classNames = classNames
        self.name = name
    }

    /// The values of sample `index`, `[channels, height, width]`.
    public func image(at index: Int) -> ArraySlice<Float> {
        images[index * sampleSize..<(index + 1) * sampleSize]
    }

    /// The first `count` samples (all of them when there are fewer), for
    /// quick runs on part of a data set.
    public func prefix(_ count: Int) -> Dataset {
        let kept = max(0, min(count, self.count))
        var copy = self
        copy.images = Array(images[0..<kept * sampleSize])
        copy.labels = Array(labels[0..<kept])
        return copy
    }
}

extension Dataset {
    /// An image data set from a pair of IDX files (the MNIST layout): images
    /// `[count, rows, columns]` as unsigned bytes, labels `[count]`.
    ///
    /// Pixels become floats in [0, 1] (byte / 255, as torchvision's
    /// `ToTensor` does); the sample shape is `[1, rows, columns]`.
    ///
    /// - Throws: ``DataError`` naming the file at fault for a missing,
    ///   corrupt or truncated file, a wrong magic number, a label outside
    ///   `0..<classCount`, or image and label counts that differ.
    public init(idxImagesFile imagesPath: String, labelsFile labelsPath: String, classCount: Int,
                classNames: [String] = [], name: String? = nil) throws {
        let imageArray = try IDXArray(contentsOfFile: imagesPath, expectedMagic: IDXArray.imagesMagic)
        let labelArray = try IDXArray(contentsOfFile: labelsPath, expectedMagic: IDXArray.labelsMagic)
        let count = imageArray.dimensions[0]
        guard labelArray.dimensions[0] == count else {
            throw DataError(labelsPath, "image/label count mismatch: \(labelArray.dimensions[0]) labels, "
                + "but \(imagesPath) holds \(count) images")
        }
        if let bad = labelArray.values.firstIndex(where: { Int($0) >= classCount }) {
            let sample = bad - labelArray.values.startIndex
            throw DataError(labelsPath, "label \(labelArray.values[bad]) of sample \(sample) is out of "
                + "range 0..<\(classCount)")
        }
        let labels = labelArray.values.map { Int32($0) }
        let images = bytesToUnitFloats(imageArray.values)
        try self.init(images: images, labels: labels,
                      sampleShape: [1, imageArray.dimensions[1], imageArray.dimensions[2]],
                      classCount: classCount, classNames: classNames, name: name ?? imagesPath)
    }

    /// A seeded synthetic data set, for benchmarks and tests: the same
    /// arguments give the same samples on every run.
    ///
    /// Each class has a random prototype image; a sample is its class's
    /// prototype blended with uniform noise (60% / 40%), so values lie in
    /// [0, 1] and a network can learn the classes. Labels are uniform.
    public static func synthetic(count: Int, sampleShape: [Int], classCount: Int,
                                 seed: UInt64 = 0) throws -> Dataset {
        let name = "synthetic(seed: \(seed))"
        guard count >= 0 else { throw DataError(name, "sample count \(count) is negative") }
        guard sampleShape.count == 3, sampleShape.allSatisfy({ $0 > 0 }), classCount > 0 else {
            throw DataError(name, "sample shape \(sampleShape) and class count \(classCount) must be "
                + "[channels, height, width] and a count, all positive")
        }
        let sampleSize = sampleShape.reduce(1, *)
        var generator = SplitMix64(seed: seed)
        let prototypes = (0..<classCount * sampleSize).map { _ in generator.unitFloat() }
        var labels = [Int32](repeating: 0, count: count)
        var images = [Float](repeating: 0, count: count * sampleSize)
        prototypes.withUnsafeBufferPointer { prototype in
            images.withUnsafeMutableBufferPointer { out in
                for sample in 0..<count {
                    let label = generator.below(classCount)
                    labels[sample] = Int32(label)
                    for i in 0..<sampleSize {
                        out[sample * sampleSize + i] = 0.6 * prototype[label * sampleSize + i]
                            + 0.4 * generator.unitFloat()
                    }
                }
            }
        }
        return try Dataset(images: images, labels: labels, sampleShape: sampleShape,
                           classCount: classCount, name: name)
    }
}

/// A 256-entry table keeps the conversion fast in debug builds, where tests
/// load the 47 million Fashion-MNIST pixels.
private let unitFloatOfByte: [Float] = (0..<256).map { Float($0) / 255 }

/// Bytes as floats in [0, 1]; division (not multiplication by 1/255) so
/// each value is the correctly rounded byte/255 that PyTorch computes.
func bytesToUnitFloats<Bytes: Collection>(_ bytes: Bytes) -> [Float] where Bytes.Element == UInt8 {
    [Float](unsafeUninitializedCapacity: bytes.count) { out, initialized in
        unitFloatOfByte.withUnsafeBufferPointer { table in
            var i = 0
            let done: Void? = bytes.withContiguousStorageIfAvailable { source in
                for byte in source {
                    out[i] = table[Int(byte)]
                    i += 1
                }
            }
            if done == nil {
                for byte in bytes {
                    out[i] = table[Int(byte)]
                    i += 1
                }
            }
        }
        initialized = bytes.count
    }
}
