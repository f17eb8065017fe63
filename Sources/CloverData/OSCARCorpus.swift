import CloverFiles
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One vision-language sample of an OSCAR pre-training corpus: a caption,
/// the object tags a detector gave the image, and its regions.
public struct OSCARSample: Equatable, Sendable {
    /// The sample's name; unique within a corpus and the key of its region
    /// features in `features.safetensors`.
    public var id: String
    /// The caption, as plain text (tokenized by ``WordPieceTokenizer``).
    public var caption: String
    /// Object tags, each plain text ("ankle boot" is one tag of two words).
    public var tags: [String]
    /// One box per region, `(x1, y1, x2, y2)` in `[0, 1]` of the image's
    /// width and height, `x1 ≤ x2`, `y1 ≤ y2`.
    public var boxes: [[Float]]
    /// Appearance features `[regions, featureSize]`, row-major.
    public var features: [Float]

    public init(id: String, caption: String, tags: [String], boxes: [[Float]], features: [Float]) {
        self.id = id
        self.caption = caption
        self.tags = tags
        self.boxes = boxes
        self.features = features
    }

    /// Regions of the sample.
    public var regionCount: Int { boxes.count }

    /// Region `r`'s model input: its appearance features followed by its
    /// position `(x1, y1, x2, y2, w, h)`, as Oscar appends the 6-d box to the
    /// detector's 2048-d features.
    public func regionInput(_ r: Int, featureSize: Int) -> [Float] {
        let box = boxes[r]
        return Array(features[(r * featureSize)..<((r + 1) * featureSize)])
            + [box[0], box[1], box[2], box[3], box[2] - box[0], box[3] - box[1]]
    }
}

/// An OSCAR pre-training corpus on disk.
///
/// A corpus is a directory of four files:
///
/// - `vocab.txt`: the WordPiece vocabulary (a BERT `vocab.txt`: one token per
///   line, in id order; it must hold `[PAD]`, `[UNK]`, `[CLS]`, `[SEP]` and
///   `[MASK]`).
/// - `train.jsonl` and `test.jsonl`: one sample per line, a JSON object
///   `{"id": "…", "caption": "…", "tags": ["…", …], "boxes": [[x1, y1, x2, y2], …]}`
///   with one box per region, coordinates in `[0, 1]`. Blank lines are
///   skipped. The test split is what `clover eval-retrieval` ranks.
/// - `features.safetensors`: for every id of both splits, an F32 tensor of
///   shape `[regions, featureSize]` named by the id, with as many rows as the
///   sample has boxes and one `featureSize` throughout the corpus.
///
/// Every problem found while reading (a missing file, a line that is not a
/// sample, a duplicate id, a box outside the image, features of the wrong
/// shape or not finite) throws a ``DataError`` naming the file, and the line
/// or id.
public struct OSCARCorpus: Sendable {
    /// The two splits of a corpus.
    public enum Split: String, CaseIterable, Sendable {
        case train, test

        /// The split's file name.
        public var fileName: String { rawValue + ".jsonl" }
    }

    /// The directory read.
    public let directory: String
    /// The tokenizer over `vocab.txt`.
    public let tokenizer: WordPieceTokenizer
    /// The training samples, in file order.
    public let train: [OSCARSample]
    /// The held-out samples, in file order.
    public let test: [OSCARSample]
    /// Appearance features per region (without the 6 position values).
    public let featureSize: Int

    /// The names of the corpus files.
    public static let vocabularyFile = "vocab.txt", featuresFile = "features.safetensors"

    /// Reads the corpus in `directory`.
    ///
    /// - Throws: ``DataError`` naming the file and line (or id) at fault.
    public init(directory: String) throws {
        self.directory = directory
        // The vocabulary must be there in any corpus; checking it first
        // names the directory when the whole corpus is missing.
        var isDirectory = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory else {
            throw DataError(directory, "no such corpus directory")
        }
        guard FileManager.default.fileExists(atPath: directory + "/" + Self.vocabularyFile) else {
            throw DataError(directory, "is not an OSCAR corpus: no \(Self.vocabularyFile) (see `clover oscar-corpus` for the format)")
        }
        tokenizer = try WordPieceTokenizer(vocabularyFile: directory + "/" + Self.vocabularyFile)
        for token in ["[PAD]", "[CLS]", "[SEP]", "[MASK]"] where tokenizer.id(of: token) == nil {
            throw DataError(directory + "/" + Self.vocabularyFile, "the vocabulary has no \(token) token")
        }
        let featuresPath = directory + "/" + Self.featuresFile
        guard FileManager.default.fileExists(atPath: featuresPath) else { throw DataError(featuresPath, "no such file") }
        let features: SafeTensors
        do { features = try SafeTensors.read(path: featuresPath) } catch {
            // One error type from the corpus reader; the safetensors reason kept.
            throw DataError(featuresPath, "is not a readable safetensors file (\(error))")
        }
        var featureSize: Int?
        var seen = Set<String>()
        var splits: [Split: [OSCARSample]] = [:]
        for split in Split.allCases {
            let path = directory + "/" + split.fileName
            var samples: [OSCARSample] = []
            for (line, record) in try Self.records(path) {
                let place = "\(path) line \(line)"
                guard seen.insert(record.id).inserted else {
                    throw DataError(place, "the id \"\(record.id)\" appears twice in the corpus")
                }
                guard let entry = features[record.id] else {
                    throw DataError(featuresPath, "has no tensor named \"\(record.id)\" (the sample of \(place))")
                }
                guard entry.shape.count == 2, entry.shape[0] == record.boxes.count, entry.shape[1] >= 1 else {
                    throw DataError(featuresPath, "\"\(record.id)\" has shape \(entry.shape); the sample has "
                                    + "\(record.boxes.count) box(es), so it must be [\(record.boxes.count), featureSize]")
                }
                if let featureSize, entry.shape[1] != featureSize {
                    throw DataError(featuresPath, "\"\(record.id)\" has \(entry.shape[1]) features per region, "
                                    + "earlier samples \(featureSize); one feature size serves the corpus")
                }
                featureSize = entry.shape[1]
                if let bad = entry.values.first(where: { !$0.isFinite }) {
                    throw DataError(featuresPath, "\"\(record.id)\" holds the non-finite value \(bad)")
                }
                samples.append(OSCARSample(id: record.id, caption: record.caption, tags: record.tags,
                                           boxes: record.boxes, features: entry.values))
            }
            guard !samples.isEmpty else { throw DataError(path, "holds no samples") }
            splits[split] = samples
        }
        train = splits[.train] ?? []
        test = splits[.test] ?? []
        self.featureSize = featureSize ?? 0
        guard self.featureSize >= 1 else { throw DataError(featuresPath, "no sample has regions") }
    }

    /// The samples of `split`.
    public func samples(_ split: Split) -> [OSCARSample] { split == .train ? train : test }

    // MARK: Writing

    /// Writes a corpus into `directory` (created if needed): the vocabulary,
    /// both splits and their features, in the format ``init(directory:)`` reads.
    ///
    /// - Throws: ``DataError`` when a sample's features do not match its
    ///   boxes and `featureSize`, or a file cannot be written.
    public static func write(directory: String, vocabulary: [String], train: [OSCARSample], test: [OSCARSample],
                             featureSize: Int) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw DataError(directory, "cannot create the corpus directory: \(error)")
        }
        var features = SafeTensors()
        for (split, samples) in [(Split.train, train), (Split.test, test)] {
            var text = ""
            for sample in samples {
                guard sample.features.count == sample.boxes.count * featureSize else {
                    throw DataError("OSCARCorpus.write", "sample \"\(sample.id)\" has \(sample.features.count) "
                                    + "feature values for \(sample.boxes.count) box(es) of \(featureSize)")
                }
                let record = Record(id: sample.id, caption: sample.caption, tags: sample.tags, boxes: sample.boxes)
                text += String(decoding: try JSONEncoder().encode(record), as: UTF8.self) + "\n"
                features.append(sample.id, shape: [sample.boxes.count, featureSize], values: sample.features)
            }
            try writeText(text, to: directory + "/" + split.fileName)
        }
        try writeText(vocabulary.joined(separator: "\n") + "\n", to: directory + "/" + vocabularyFile)
        do {
            try features.write(path: directory + "/" + featuresFile)
        } catch let error as FileWriteError {
            throw DataError(error)
        }
    }

    private static func writeText(_ text: String, to path: String) throws {
        do {
            try AtomicFile.write(text, to: path)
        } catch let error as FileWriteError {
            throw DataError(error)
        }
    }

    // MARK: Reading lines

    /// One line of a split file.
    struct Record: Codable {
        var id: String
        var caption: String
        var tags: [String]
        var boxes: [[Float]]
    }

    /// The samples of a JSON-lines file with their 1-based line numbers,
    /// each checked.
    static func records(_ path: String) throws -> [(Int, Record)] {
        let data = try readFileContents(atPath: path)
        guard let text = String(validating: data, as: UTF8.self) else { throw DataError(path, "is not UTF-8 text") }
        let decoder = JSONDecoder()
        var records: [(Int, Record)] = []
        for (index, line) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
            .enumerated() where !line.allSatisfy(\.isWhitespace) {
            let place = "\(path) line \(index + 1)"
            let record: Record
            do {
                record = try decoder.decode(Record.self, from: Data(line.utf8))
            } catch let error as DecodingError {
                throw DataError(place, "is not a sample: \(error.summary)")
            } catch {
                throw DataError(place, "is not a sample: \(error)")
            }
            guard !record.id.isEmpty else { throw DataError(place, "the id is empty") }
            guard !record.caption.allSatisfy(\.isWhitespace) else { throw DataError(place, "the caption is empty") }
            guard !record.boxes.isEmpty else { throw DataError(place, "has no boxes (a sample needs a region)") }
            for (b, box) in record.boxes.enumerated() {
                guard box.count == 4 else {
                    throw DataError(place, "box \(b) has \(box.count) numbers; a box is [x1, y1, x2, y2]")
                }
                guard box.allSatisfy({ $0.isFinite && $0 >= 0 && $0 <= 1 }), box[0] <= box[2], box[1] <= box[3] else {
                    throw DataError(place, "box \(b) \(box) is not inside the image: coordinates are fractions in "
                                    + "[0, 1] with x1 ≤ x2 and y1 ≤ y2")
                }
            }
            records.append((index + 1, record))
        }
        return records
    }
}
