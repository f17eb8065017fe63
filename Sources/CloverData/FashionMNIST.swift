#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Fashion-MNIST: 70,000 grayscale 28×28 images of clothing in 10 classes
/// (60,000 for training, 10,000 for testing), in IDX files.
public enum FashionMNIST {
    /// Where the Debian package `dataset-fashion-mnist` installs the files.
    public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"

    /// The class names, indexed by label.
    public static let classNames = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]

    /// The per-channel mean and standard deviation of the training pixels.
    public static let normalization = Normalization(mean: [0.2860], std: [0.3530])

    /// The images and labels file names of a split, gzip-compressed.
    public static func fileNames(_ split: Dataset.Split) -> (images: String, labels: String) {
        let prefix = split == .train ? "train" : "t10k"
        return ("\(prefix)-images-idx3-ubyte.gz", "\(prefix)-labels-idx1-ubyte.gz")
    }

    /// Loads one split: samples `[1, 28, 28]` with pixels in [0, 1], labels
    /// in `0..<10`.
    ///
    /// Files are looked up as `<name>.gz` and, failing that, under the name
    /// without `.gz` (an uncompressed copy).
    ///
    /// - Throws: ``DataError`` naming the file at fault (see
    ///   ``Dataset/init(idxImagesFile:labelsFile:classCount:classNames:name:)``).
    public static func load(_ split: Dataset.Split, directory: String = defaultDirectory) throws -> Dataset {
        let names = fileNames(split)
        return try Dataset(idxImagesFile: locate(names.images, in: directory),
                           labelsFile: locate(names.labels, in: directory),
                           classCount: 10, classNames: classNames, name: "fashion-mnist/\(split.rawValue)")
    }

    private static func locate(_ name: String, in directory: String) -> String {
        let compressed = directory + "/" + name
        let plain = String(compressed.dropLast(3))
        if !FileManager.default.fileExists(atPath: compressed) && FileManager.default.fileExists(atPath: plain) {
            return plain
        }
        return compressed  // when neither exists, the error names the usual file
    }
}
