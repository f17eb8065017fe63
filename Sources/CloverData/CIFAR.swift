#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// CIFAR-10 in its binary version (`cifar-10-binary.tar.gz`): 32×32 colour
/// images in 10 classes, 50,000 for training in five files and 10,000 for
/// testing. Each record is one label byte then 3,072 pixel bytes: the red,
/// green and blue planes, each 32 rows of 32, which is already CHW order.
public enum CIFAR10 {
    /// The class names, indexed by label.
    public static let classNames = [
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ]

    /// The per-channel mean and standard deviation of the training pixels.
    ///
    /// The std is that of the pixels (0.2470, 0.2435, 0.2616), not the
    /// often-copied (0.2023, 0.1994, 0.2010), which is an average of
    /// per-image stds.
    public static let normalization = Normalization(mean: [0.4914, 0.4822, 0.4465],
                                                    std: [0.2470, 0.2435, 0.2616])

    /// The file names of a split.
    public static func fileNames(_ split: Dataset.Split) -> [String] {
        split == .train ? (1...5).map { "data_batch_\($0).bin" } : ["test_batch.bin"]
    }

    /// Loads one split from `directory` (the extracted `cifar-10-batches-bin`
    /// folder, or the folder that contains it): samples `[3, 32, 32]` with
    /// pixels in [0, 1], labels in `0..<10`.
    ///
    /// - Throws: ``DataError`` naming the file for a missing file, a size
    ///   that is not a positive multiple of the 3,073-byte record, or a
    ///   label out of range.
    public static func load(_ split: Dataset.Split, directory: String) throws -> Dataset {
        let folder = resolveFolder(directory, nested: "cifar-10-batches-bin", firstFile: fileNames(.train)[0])
        return try readCIFAR(paths: fileNames(split).map { folder + "/" + $0 }, coarseLabel: false,
                             classCount: 10, classNames: classNames, name: "cifar-10/\(split.rawValue)")
    }
}

/// CIFAR-100 in its binary version (`cifar-100-binary.tar.gz`): like
/// CIFAR-10 but with 100 fine classes grouped into 20 coarse ones; each
/// record is a coarse label byte, a fine label byte, then 3,072 pixel
/// bytes. Clover uses the fine labels.
public enum CIFAR100 {
    /// The fine class names, indexed by fine label.
    public static let classNames = [
        "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
        "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
        "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
        "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
        "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle",
        "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear",
        "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon",
        "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail",
        "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone",
        "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
        "willow_tree", "wolf", "woman", "worm",
    ]

    /// The per-channel mean and standard deviation of the training pixels.
    public static let normalization = Normalization(mean: [0.5071, 0.4865, 0.4409],
                                                    std: [0.2673, 0.2564, 0.2762])

    /// The file name of a split.
    public static func fileName(_ split: Dataset.Split) -> String {
        split == .train ? "train.bin" : "test.bin"
    }

    /// Loads one split from `directory` (the extracted `cifar-100-binary`
    /// folder, or the folder that contains it): samples `[3, 32, 32]` with
    /// pixels in [0, 1], fine labels in `0..<100`.
    ///
    /// - Throws: ``DataError`` naming the file for a missing file, a size
    ///   that is not a positive multiple of the 3,074-byte record, or a
    ///   coarse label outside `0..<20` or fine label outside `0..<100`.
    public static func load(_ split: Dataset.Split, directory: String) throws -> Dataset {
        let folder = resolveFolder(directory, nested: "cifar-100-binary", firstFile: fileName(.train))
        return try readCIFAR(paths: [folder + "/" + fileName(split)], coarseLabel: true,
                             classCount: 100, classNames: classNames, name: "cifar-100/\(split.rawValue)")
    }
}

/// `directory`, or its subfolder `nested` when the files are only there
/// (the archives extract into a folder of their own).
private func resolveFolder(_ directory: String, nested: String, firstFile: String) -> String {
    let files = FileManager.default
    if !files.fileExists(atPath: directory + "/" + firstFile)
        && files.fileExists(atPath: directory + "/" + nested + "/" + firstFile) {
        return directory + "/" + nested
    }
    return directory
}

private func readCIFAR(paths: [String], coarseLabel: Bool, classCount: Int, classNames: [String],
                       name: String) throws -> Dataset {
    let pixelCount = 3 * 32 * 32
    let labelBytes = coarseLabel ? 2 : 1
    let recordSize = labelBytes + pixelCount
    var images: [Float] = []
    var labels: [Int32] = []
    for path in paths {
        let data = try readFileContents(atPath: path)
        guard data.count > 0, data.count % recordSize == 0 else {
            throw DataError(path, "size \(data.count) bytes is not a positive multiple of the "
                + "\(recordSize)-byte \(coarseLabel ? "CIFAR-100" : "CIFAR-10") record "
                + "(\(labelBytes) label byte\(labelBytes == 1 ? "" : "s") + \(pixelCount) pixel bytes)")
        }
        let records = data.count / recordSize
        images.reserveCapacity(images.count + records * pixelCount)
        labels.reserveCapacity(labels.count + records)
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let bytes = raw.bindMemory(to: UInt8.self)
            for record in 0..<records {
                let start = record * recordSize
                if coarseLabel && bytes[start] >= 20 {
                    throw DataError(path, "coarse label \(bytes[start]) of record \(record) is out of range 0..<20")
                }
                let label = Int(bytes[start + labelBytes - 1])
                guard label < classCount else {
                    throw DataError(path, "label \(label) of record \(record) is out of range 0..<\(classCount)")
                }
                labels.append(Int32(label))
                let pixels = UnsafeBufferPointer(rebasing: bytes[start + labelBytes..<start + recordSize])
                images.append(contentsOf: bytesToUnitFloats(pixels))
            }
        }
    }
    return try Dataset(images: images, labels: labels, sampleShape: [3, 32, 32], classCount: classCount,
                       classNames: classNames, name: name)
}
