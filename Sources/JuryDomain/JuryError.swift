/// An error a person can act on: it names what is wrong and where (the file, the line, the field, the run).
public struct JuryError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The kind of error. Opaque so that new kinds break no caller.
    public struct Code: Hashable, Sendable {
        private let name: String
        private init(_ name: String) { self.name = name }
        public static let invalidConfig = Code("invalid config")
        public static let invalidInput = Code("invalid input")
        public static let notFound = Code("not found")
        public static let conflict = Code("conflict")
        public static let schema = Code("schema")
        public static let io = Code("io")
        /// A process stopped with work it could not finish; the message says what becomes of it.
        public static let incomplete = Code("incomplete")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    public static func invalidConfig(_ file: String, field: String, _ reason: String) -> JuryError {
        JuryError(.invalidConfig, "\(file): \(field): \(reason)")
    }

    public static func invalidInput(_ file: String, line: Int, _ reason: String) -> JuryError {
        JuryError(.invalidInput, "\(file):\(line): \(reason); nothing was enqueued")
    }

    public static func unknownRun(_ name: String) -> JuryError {
        JuryError(.notFound, "no run named '\(name)'; create it with `jury run create --config FILE`")
    }

    public static func schemaTooNew(database: Int, binary: Int) -> JuryError {
        JuryError(
            .schema,
            "the database has schema version \(database) but this jury binary knows only up to \(binary); upgrade jury")
    }
}

/// The metadata keys Jury logs with, in one place.
public enum JuryMetadata {
    public static let run = "jury.run"
    public static let judge = "jury.judge"
    public static let example = "jury.example"
    public static let job = "jury.job"
    public static let worker = "jury.worker"
    public static let migration = "jury.migration"
    public static let error = "jury.error"
}
