import Foundation
import JuryDomain
import JuryStore
import Logging

/// What a run of pgbench gave: transactions and jobs per second.
public struct PGBenchFigures: Codable, Sendable {
    public var clients: Int
    public var jobsPerTransaction: Int
    public var transactionsPerSecond: Double
    public var jobsPerSecond: Double
    /// CPU per job in pgbench and in the server, over pgbench's run alone.
    public var cpuPerJob: CPUUse
}

/// pgbench on the bench's database: the raw limit Jury is compared with.
enum PGBench {
    typealias Figures = PGBenchFigures

    /// The floor any PostgreSQL queue pays here: each client claims 100 jobs with
    /// `FOR UPDATE SKIP LOCKED` in one transaction, then inserts their votes and marks them done
    /// in a second. On its own tables (created and dropped here), with `jobs` rows.
    static func minimalQueue(
        binary: String, database: Database, store: Store, jobs: Int, clients: Int, server: ServerProcesses?
    ) async throws -> Figures {
        let batch = 100
        try await store.createMinimalQueue(jobs: jobs)
        let script = """
            WITH c AS (SELECT id FROM jury_bench_jobs WHERE state = 'pending' ORDER BY id LIMIT \(batch) FOR UPDATE SKIP LOCKED), u AS (UPDATE jury_bench_jobs j SET state = 'running' FROM c WHERE j.id = c.id RETURNING j.id) SELECT coalesce(array_agg(id), '{}')::text AS ids FROM u \\gset
            WITH v AS (INSERT INTO jury_bench_votes (job_id, label) SELECT unnest(':ids'::bigint[]), 'valid') UPDATE jury_bench_jobs SET state = 'done' WHERE id = ANY (':ids'::bigint[]);

            """
        // Two statements (transactions) per pgbench transaction; stop while work is left for all.
        let transactions = max(1, jobs / batch / clients - 2)
        let figures = try await run(
            binary: binary, script: script, database: database, clients: clients, transactions: transactions,
            jobsPerTransaction: batch, server: server)
        try await store.dropMinimalQueue()
        return figures
    }

    /// Jury's own claim and record SQL (`jury_claim_jobs`, `jury_record_votes`) on the run's pending jobs.
    static func jurySQL(
        binary: String, database: Database, run: StoredRun, jobs: Int, batch: Int, clients: Int,
        server: ServerProcesses?
    ) async throws -> Figures {
        let perJudge = max(1, batch / run.config.judges.count)
        let jobsPerTransaction = perJudge * run.config.judges.count
        let transactions = max(1, jobs / jobsPerTransaction / clients - 2)
        return try await self.run(
            binary: binary, script: Store.pgbenchScript(run: run, perJudge: perJudge), database: database,
            clients: clients, transactions: transactions, jobsPerTransaction: jobsPerTransaction, server: server)
    }

    /// Runs `script` with pgbench, each client `transactions` times, and measures it.
    static func run(
        binary: String, script: String, database: Database, clients: Int, transactions: Int, jobsPerTransaction: Int,
        server: ServerProcesses?
    ) async throws -> Figures {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("jury-pgbench-\(UUID()).sql").path
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let arguments = ["-n", "-f", path, "-c", String(clients), "-j", String(clients), "-t", String(transactions)]
        // The database goes to pgbench through PG* variables: a password on its command line would
        // be visible to every user of the machine.
        let environment = ProcessInfo.processInfo.environment.merging(
            try database.environment(), uniquingKeysWith: { _, ours in ours })
        let before = CPUReading.now(server: server)
        // Interrupted, the bench ends pgbench rather than wait up to a phase for it.
        let (status, text) = try await Subprocess.runCancellably(binary, arguments, environment: environment)
        try Task.checkCancellation()
        let after = CPUReading.now(server: server)
        guard status == 0,
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("tps = ") }),
            let tps = Double(line.dropFirst(6).prefix(while: { $0 != " " }))
        else {
            throw JuryError(.io, "pgbench failed: \(text.suffix(500))")
        }
        return Figures(
            clients: clients, jobsPerTransaction: jobsPerTransaction, transactionsPerSecond: tps,
            jobsPerSecond: tps * Double(jobsPerTransaction),
            cpuPerJob: CPUReading.perUnit(
                from: before, to: after, units: clients * transactions * jobsPerTransaction, clientIsChild: true))
    }
}
