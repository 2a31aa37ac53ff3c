import Foundation
import Logging
import Synchronization

/// The reducer: turns the votes of ready examples into verdicts, each exactly once.
///
/// Ready examples are claimed with `FOR UPDATE SKIP LOCKED`, so several reducers share the
/// work; the verdict and the example's move to `decided` commit together.
public final class Reducer: Sendable {
    private let conninfo: String
    private let run: String?
    private let batchSize: Int
    private let idlePollSeconds: Double
    private let settings: PostgresSettings
    private let logger: Logger
    private let stopping = Mutex(false)
    private let decided = Mutex(0)
    private let wake: AsyncStream<Void>
    private let wakeContinuation: AsyncStream<Void>.Continuation

    public init(
        conninfo: String, run: String? = nil, batchSize: Int = 500, idlePollSeconds: Double = 2,
        settings: PostgresSettings = PostgresSettings(), logger: Logger
    ) {
        self.conninfo = conninfo
        self.settings = settings
        self.run = run
        self.batchSize = batchSize
        self.idlePollSeconds = idlePollSeconds
        self.logger = logger
        (wake, wakeContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Examples this reducer has decided so far.
    public var examplesDecided: Int { decided.withLock { $0 } }

    public func stop() {
        stopping.withLock { $0 = true }
        wakeContinuation.yield()
    }

    /// Decides ready examples until `stop()` or until the calling task is cancelled, sleeping on
    /// notifications when there are none.
    public func run() async throws {
        // Cancellation reaches the work only as a stop: its waits would otherwise spin.
        let work = Task { try await self.work() }
        try await withTaskCancellationHandler {
            try await work.value
        } onCancel: {
            self.stop()
        }
    }

    private func work() async throws {
        let connection = try await PostgresConnection.connect(
            conninfo, applicationName: "jury reducer", settings: settings, logger: logger)
        let listener = try await PostgresConnection.connect(
            conninfo, applicationName: "jury reducer", settings: settings, logger: logger)
        try await listener.listen(WorkQueue.readyChannel)
        // The listening task also beats the heartbeat, between its waits, on the same connection.
        let id = Heartbeats.processID(role: "reducer")
        try await Heartbeats.register(id, role: "reducer", on: listener)
        var runID: Int64?
        if let run { runID = try await Runs.find(run, on: connection).id }
        let filter = runID
        logger.info("reducer started")
        await withDiscardingTaskGroup { group in
            group.addTask {
                var lastBeat = ContinuousClock.now
                while !self.stopping.withLock({ $0 }) {
                    do {
                        _ = try await listener.waitForNotifications(timeout: .seconds(self.idlePollSeconds))
                    } catch {
                        // The database is unreachable: wait before trying again, or this loop
                        // (and the reducer it wakes) would spin.
                        self.logger.debug("listening failed", metadata: [JuryMetadata.error: "\(error)"])
                        try? await Task.sleep(for: .seconds(1))
                    }
                    self.wakeContinuation.yield()
                    if ContinuousClock.now - lastBeat > .seconds(10) {
                        try? await Heartbeats.beat(id, inFlight: 0, on: listener)
                        lastBeat = .now
                    }
                }
            }
            var iterator = wake.makeAsyncIterator()
            while !stopping.withLock({ $0 }) {
                do {
                    let count = try await Self.reduceOnce(
                        runID: filter, limit: batchSize, on: connection, logger: logger)
                    decided.withLock { $0 += count }
                    if count < batchSize { _ = await iterator.next() }
                } catch {
                    logger.warning("reducing failed; trying again", metadata: [JuryMetadata.error: "\(error)"])
                    _ = await iterator.next()
                }
            }
        }
        _ = try? await withDeadline(.seconds(2)) { await Heartbeats.stopped(id, on: listener) }
        logger.info("reducer stopped")
    }

    /// Decides up to `limit` ready examples in one transaction; returns how many.
    public static func reduceOnce(
        runID: Int64?, limit: Int, on connection: PostgresConnection, logger: Logger
    ) async throws -> Int {
        try await connection.transaction { connection in
            let examples = try await connection.query(
                """
                SELECT id, run_id, source_label FROM examples
                WHERE state = 'ready' AND (\(runID)::bigint IS NULL OR run_id = \(runID))
                ORDER BY id LIMIT \(limit)
                FOR UPDATE SKIP LOCKED
                """)
            guard !examples.isEmpty else { return 0 }
            let ids: [Int64] = try examples.map { try $0.decode("id") }
            var votes: [Int64: [String: String]] = [:]
            for row in try await connection.query(
                "SELECT example_id, judge, label FROM votes WHERE example_id = ANY(\(ids)::bigint[])")
            {
                votes[try row.decode("example_id"), default: [:]][try row.decode("judge")] = try row.decode("label")
            }
            let runIDs = Array(Set(try examples.map { try $0.decode("run_id", as: Int64.self) }))
            var configs: [Int64: RunConfig] = [:]
            for row in try await connection.query(
                "SELECT id, name, config, state FROM runs WHERE id = ANY(\(runIDs)::bigint[])")
            {
                let run = try Runs.decode(row)
                configs[run.id] = run.config
            }
            var runs: [Int64] = []
            var labels: [String?] = []
            var statuses: [String] = []
            var agreements: [Double] = []
            var counts: [Int] = []
            var rules: [String] = []
            var conflicts: [Bool?] = []
            for row in examples {
                let id: Int64 = try row.decode("id")
                let runID: Int64 = try row.decode("run_id")
                let config = configs[runID]!
                runs.append(runID)
                let verdict = config.rule.decide(votes: votes[id] ?? [:], judges: config.judges.count)
                let source: String? = try row.decodeIfPresent("source_label")
                labels.append(verdict.label)
                statuses.append(verdict.status.rawValue)
                agreements.append(verdict.agreement)
                counts.append(verdict.votes)
                rules.append(verdict.rule.description)
                conflicts.append(verdict.label.flatMap { label in source.map { $0 != label } })
            }
            try await connection.query(
                """
                INSERT INTO verdicts (example_id, run_id, label, status, agreement, votes, rule, conflicts_with_source)
                SELECT * FROM unnest(\(ids)::bigint[], \(runs)::bigint[], \(labels)::text[], \(statuses)::text[],
                                     \(agreements)::float8[], \(counts)::int[], \(rules)::text[], \(conflicts)::boolean[])
                ON CONFLICT (example_id) DO NOTHING
                """)
            try await connection.query("UPDATE examples SET state = 'decided' WHERE id = ANY(\(ids)::bigint[])")
            logger.debug("decided", metadata: ["examples": "\(ids.count)"])
            return ids.count
        }
    }
}
