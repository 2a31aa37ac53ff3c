/// How a worker process behaves.
public struct WorkerOptions: Sendable {
    /// Only claim jobs of this run; nil claims from every active run.
    public var run: String?
    /// Most judge calls in flight in this process, all judges together.
    public var concurrency: Int = 128
    /// How long the worker's jobs stay its own after its last heartbeat (beaten every third of it).
    public var leaseSeconds: Double = 60
    /// Whether to LISTEN for announced jobs. Without it (through a transaction-pooling PgBouncer,
    /// where a session's LISTEN is lost) an idle worker only polls.
    public var listens = true
    /// How often an idle worker looks for work when no notification wakes it.
    public var idlePollSeconds: Double = 2
    /// On stop, how long in-flight calls may take to finish before they are cancelled and released.
    public var drainSeconds: Double = 30
    /// After the drain time, how long the worker keeps trying to record outcomes before it gives up.
    public static let recordingGraceSeconds: Double = 5
    /// Most jobs claimed in one statement.
    public var claimBatch: Int = 500
    /// Most outcomes recorded in one statement.
    public var recordBatch: Int = 500
    /// How often a provider batch is polled, and how often the worker looks for batch work.
    public var batchPollSeconds: Double = 30

    /// Outcomes recorded in one statement: at most a quarter of the calls in flight, so that
    /// while one batch is recorded the claimer already refills the slots the last one freed.
    /// With one batch as large as the window, claims and records took turns, each connection
    /// idle while the other worked.
    public var recordBatchInUse: Int { max(1, min(recordBatch, concurrency / 4)) }

    public init() {}

    /// The longest a stop can take: the drain, then the grace for recording.
    public var longestStopSeconds: Double { drainSeconds + Self.recordingGraceSeconds }
}
