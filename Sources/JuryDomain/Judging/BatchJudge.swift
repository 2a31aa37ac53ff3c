public import Foundation

/// A request in a provider batch: what the judge is asked, under the custom id that names the
/// job and its claim.
public struct BatchRequest: Sendable {
    public let customID: String
    public let request: JudgeRequest

    public init(customID: String, request: JudgeRequest) {
        self.customID = customID
        self.request = request
    }
}

/// A batch as the provider reports it.
public struct BatchStatus: Sendable, Equatable {
    /// How a batch the provider is done with ended.
    public enum End: String, Sendable {
        /// Every request answered, each with a result or an error.
        case completed
        /// The completion window passed first: the requests not answered are unanswered.
        case expired
        /// Cancelled before every request was answered.
        case cancelled
        /// The provider refused the batch as a whole (its file did not validate, say).
        case failed
    }

    public let providerID: String
    /// The provider's own word for the state (`in_progress`, `ended`, `JOB_STATE_SUCCEEDED`).
    public let providerState: String
    /// Nil while the provider is still working on it.
    public let end: End?
    /// Where the results are: the provider's output and error files (or results URL).
    public let outputFileID: String?
    public let errorFileID: String?
    /// Why the provider failed the batch as a whole, when it did.
    public let error: String?

    public init(
        providerID: String, providerState: String, end: End?, outputFileID: String? = nil, errorFileID: String? = nil,
        error: String? = nil
    ) {
        self.providerID = providerID
        self.providerState = providerState
        self.end = end
        self.outputFileID = outputFileID
        self.errorFileID = errorFileID
        self.error = error
    }
}

/// One line of a batch's results: the answer to one request, or why there is none.
public struct BatchResult: Sendable {
    public enum Outcome: Sendable {
        case answer(JudgeAnswer)
        /// The request failed, as a call would have (its status, a bad answer, a refusal).
        case failed(JudgeError)
        /// The provider never got to it (the batch expired or was cancelled first): given back
        /// without using an attempt.
        case unanswered(String)
    }

    /// The custom id as the provider returned it; untrusted.
    public let customID: String
    public let outcome: Outcome

    public init(customID: String, outcome: Outcome) {
        self.customID = customID
        self.outcome = outcome
    }
}

/// A judge behind a provider's batch API. Everything the provider returns is untrusted input.
public protocol BatchJudge: Sendable {
    /// What the batch's input holds for `request`, on one line: OpenAI's or Gemini's input file
    /// line, Anthropic's request item. Each carries the body the online call would send.
    func entry(for request: BatchRequest) throws -> Data
    /// Uploads the entries `input` holds and creates the batch, with `token` in its metadata.
    /// Returns the provider's batch and input file ids.
    func submit(_ input: BatchInput, token: String) async throws -> (batchID: String, inputFileID: String?)
    /// The provider's batches that may be the one Jury built as `token` from `createdAfter`
    /// with `requests` requests, most likely first: a submission whose answer was lost is found
    /// again, not sent twice. (OpenAI carries the token in the batch's metadata; Anthropic has
    /// none, so its batches of that size made since are the candidates.)
    func find(token: String, createdAfter: Date, requests: Int) async throws -> [String]
    /// Where the batch is.
    func status(of batchID: String) async throws -> BatchStatus
    /// Reads the results of an ended batch, calling `receive` with up to `chunk` results at a
    /// time, in bounded memory; answers are held to `labels`. `malformed` is called, with the
    /// line number and why, for each line that is not a result (its request stays unanswered).
    func results(
        of status: BatchStatus, labels: [String], chunk: Int, malformed: (Int, String) -> Void,
        receive: ([BatchResult]) async throws -> Void
    ) async throws
    /// Asks the provider to cancel the batch.
    func cancel(_ batchID: String) async throws
}
