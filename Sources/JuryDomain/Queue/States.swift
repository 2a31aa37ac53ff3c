/// The states a run, an example and a job go through; the schema's CHECK constraints list the same.

/// A run: `active` runs have their jobs claimed; `paused` ones keep them until resumed;
/// `cancelled` ones never again; `done` ones have every example decided (the reducer marks them,
/// and new examples or retried jobs make them active again).
public enum RunState: String, Sendable, CaseIterable, Encodable {
    case active, paused, cancelled, done

    /// Whether examples may still be added (to a done run, they make it active again).
    public var acceptsExamples: Bool { self != .cancelled }
}

/// An example: `voting` while any job is open, `ready` once the votes it can get are in (or too
/// few remain possible for the rule), `decided` once the reducer stored its verdict.
public enum ExampleState: String, Sendable, CaseIterable {
    case voting, ready, decided
}

/// A job (one example, one judge): `waiting` for the judges of a lower order to answer,
/// `pending` until claimed, `running` under a lease, `failed` when its attempts or its outage
/// time ran out, `cancelled` when the example no longer needs it (early decision, or failed
/// jobs that left too few for a verdict). A job that gets its vote is gone: the vote replaces it.
public enum JobState: String, Sendable, CaseIterable {
    case waiting, pending, running, failed, cancelled
}

/// The channels the queue's functions notify, and workers and reducers listen on.
public enum Channel: String, Sendable {
    /// Jobs became claimable (enqueue, retry, an expired lease, a run resumed).
    case jobs = "jury_jobs"
    /// Examples became ready for the reducer.
    case ready = "jury_ready"

    /// How long an idle listener waits before it looks for work again: its idle poll, but at
    /// most 100 ms after a look a notification woke. Recording votes notifies at most once a
    /// channel every 50 ms (see `jury_notify_throttled`), so one notification may stand for
    /// work committed up to 50 ms after it, which the look it woke can miss.
    public static func idleWait(followsNotification: Bool, idlePoll: Duration) -> Duration {
        followsNotification ? min(.milliseconds(100), idlePoll) : idlePoll
    }
}
