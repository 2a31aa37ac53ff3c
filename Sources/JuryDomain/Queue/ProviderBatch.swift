public import Foundation

/// A batch of a batch-mode judge's jobs at the provider, as stored (the `batches` table).
public struct ProviderBatch: Sendable, Equatable {
    /// Where a batch is in its life; the last four are final.
    public enum State: String, Sendable, CaseIterable {
        case building, submitted, ended, collected, expired, cancelled, failed
    }

    public let id: Int64
    public let runID: Int64
    public let judge: String
    public let state: State
    /// Put in the provider's metadata: finds the batch at the provider when its id was never recorded.
    public let token: String
    public let providerID: String?
    public let providerState: String?
    public let outputFileID: String?
    public let errorFileID: String?
    /// `jury batch cancel` asked for it to be cancelled at the provider.
    public let cancelRequested: Bool
    /// When it was opened: the provider made it after that, if at all.
    public let createdAt: Date
    /// Steps taken, this one included: a batch still building at its second was left unfinished.
    public let steps: Int

    public init(
        id: Int64, runID: Int64, judge: String, state: State, token: String, providerID: String? = nil,
        providerState: String? = nil, outputFileID: String? = nil, errorFileID: String? = nil,
        cancelRequested: Bool = false, createdAt: Date = Date(), steps: Int = 1
    ) {
        self.steps = steps
        self.cancelRequested = cancelRequested
        self.createdAt = createdAt
        self.id = id
        self.runID = runID
        self.judge = judge
        self.state = state
        self.token = token
        self.providerID = providerID
        self.providerState = providerState
        self.outputFileID = outputFileID
        self.errorFileID = errorFileID
    }

    /// The owner its jobs are leased to.
    public var owner: String { "batch:\(id)" }

    /// The request's custom id for a job under a claim: it names both, so that an answer is
    /// recorded only while that claim holds the job.
    public static func customID(job: Int64, claim: Int) -> String { "job-\(job)-claim-\(claim)" }

    /// The job and claim a custom id names; nil for one Jury never writes.
    public static func job(fromCustomID text: String) -> (job: Int64, claim: Int)? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "job", parts[2] == "claim", let job = Int64(parts[1]),
            let claim = Int(parts[3]), job > 0, claim > 0
        else { return nil }
        return (job, claim)
    }
}
