/// A judge call that failed, and whether trying again can help.
///
/// Messages name the judge and the HTTP status but never carry the API key or the prompt.
public struct JudgeError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// 429: slow down and try again.
        public static let rateLimited = Code("rate limited")
        /// 5xx, or a provider overloaded.
        public static let server = Code("server error")
        /// No answer within the judge's timeout.
        public static let timeout = Code("timeout")
        /// The connection failed or broke.
        public static let network = Code("network error")
        /// The answer was not what was asked for (no JSON, a label outside the taxonomy).
        public static let badAnswer = Code("bad answer")
        /// 401/403: the key is missing, wrong or lacks access. Retrying cannot help.
        public static let unauthorized = Code("unauthorized")
        /// 404: unknown model or endpoint. Retrying cannot help.
        public static let notFound = Code("not found")
        /// The account's credit, spend limit or daily quota is used up. Retrying cannot help
        /// until someone acts.
        public static let quotaExhausted = Code("quota exhausted")
        /// Another 4xx: the provider refused the request; it counts as a wrong answer. Several in
        /// a row on different examples mean the request itself is malformed: the judge stops.
        public static let badRequest = Code("bad request")
        /// The model answered but declined to label (a refusal, a safety block); it counts as a
        /// wrong answer, shown apart.
        public static let refused = Code("refused")
        public var description: String { name }
    }

    public let code: Code
    public let message: String
    /// What the provider asked for with Retry-After, in seconds.
    public let retryAfter: Double?
    /// For an answer that could not be read: what the judge said, cut to `answerLimit`
    /// characters, kept for a person to read (never in the message).
    public let answer: String?
    /// What the provider's headers said of the account's remaining budget.
    public var rateLimit: RateLimitObservation?

    /// The longest part of an unreadable answer that is kept.
    public static let answerLimit = 2000

    public init(_ code: Code, _ message: String, retryAfter: Double? = nil, answer: String? = nil) {
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
        self.answer = answer.map { String($0.prefix(Self.answerLimit)) }
    }

    public var description: String { "\(code): \(message)" }
}
