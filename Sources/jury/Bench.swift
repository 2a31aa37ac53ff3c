import ArgumentParser
import Foundation
import JuryBench
import Logging

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure Jury's queue against a minimal PostgreSQL queue loop run by pgbench on the same database.",
        discussion: """
            Creates a throwaway run (deleted at the end) with instant in-process judges, and prints: the \
            enqueue rate; votes/s of a worker alone and of a worker with the reducer deciding as it goes; \
            seconds from an example's last vote to its verdict (p50, p99); this process's peak RSS; database \
            writes per vote (tuples from pg_stat_database, WAL from pg_stat_wal, which counts the whole \
            server); CPU per vote in this process and, when the server runs on this machine, in its \
            processes; and pgbench running a minimal queue loop (claim 100 jobs with FOR UPDATE SKIP LOCKED, \
            then insert their votes and mark them done) and Jury's own claim and record SQL, with the ratios; \
            Jury's SQL also with one job per judge per claim (the small batches of slow judges), from \
            --pgbench-clients and from 16 clients (many workers, whose records must not wait for each other); \
            and CPU per job of the loop and of Jury's SQL in pgbench and in the server. \
            Use a database no other worker serves, on a server nothing else writes to: a worker without \
            --run would claim the bench's jobs, and other writes would count as the bench's; the bench \
            names the other active runs it finds. Interrupted (SIGINT, SIGTERM), it stops pgbench if it is \
            running and removes its run before it exits.

            With --scale it instead judges a large corpus (--examples, 2,500,000 by default: ten million \
            jobs with four judges) with a worker and the reducer together, and prints votes/s over each \
            million votes, how long jury status and each view take at the end, and table and index sizes \
            with dead rows at the end, after purging the run's jobs, and after purging the run with its \
            indexes rebuilt (--everything --reindex). It takes about half an hour on two cores, and \
            needs a few GB of disk. Interrupted, it leaves its run, cancelled, and prints the \
            `jury run purge` command that removes it.
            """)
    @OptionGroup var db: DatabaseOptions
    @Option(help: "Examples to enqueue and judge (default: 20,000, or 2,500,000 with --scale).") var examples: Int?
    @Option(help: "Judges in the panel.") var judges = 4
    @Option(help: "Worker concurrency.") var concurrency = 512
    @Option(help: "Clients of each pgbench run.") var pgbenchClients = 4
    @Flag(help: "Print the figures as one JSON object on stdout (the lines go to stderr).") var json = false
    @Flag(help: "Run the scale test instead: a large corpus end to end, status and views at the end, purge.")
    var scale = false

    func validate() throws {
        if let examples, !(100...50_000_000).contains(examples) {
            throw ValidationError("--examples must be between 100 and 50,000,000")
        }
        guard (1...20).contains(judges) else { throw ValidationError("--judges must be between 1 and 20") }
        guard (1...10_000).contains(concurrency) else { throw ValidationError("--concurrency must be 1...10000") }
        guard (1...64).contains(pgbenchClients) else { throw ValidationError("--pgbench-clients must be 1...64") }
    }

    func run() async throws {
        var logger = db.makeLogger("jury.bench")
        logger.logLevel = max(logger.logLevel, .warning)
        let json = json
        let report: @Sendable (String) -> Void = { line in
            // Unbuffered: a scale run takes half an hour, and its lines must reach a file as they
            // come (a pipe or a file buffers print's output until exit, and a crash loses it).
            let handle = json ? FileHandle.standardError : FileHandle.standardOutput
            handle.write(Data((line + "\n").utf8))
        }
        if scale {
            var options = ScaleRun.Options()
            options.examples = examples ?? options.examples
            options.judges = judges
            options.concurrency = concurrency
            let result = try await interruptible(report, whenInterrupted: "keeping the run (see below)") {
                [options, logger] in
                try await ScaleRun.run(database: db.target, options: options, logger: logger, report: report)
            }
            if json { print(try jsonText(result)) }
            return
        }
        var options = Benchmark.Options()
        options.examples = examples ?? options.examples
        options.judges = judges
        options.concurrency = concurrency
        options.pgbenchClients = pgbenchClients
        // Left behind, the bench's run would be met by workers and would skew the next bench.
        let result = try await interruptible(report, whenInterrupted: "removing the bench's run") {
            [options, logger] in
            try await Benchmark.run(database: db.target, options: options, logger: logger, report: report)
        }
        if json { print(try jsonText(result)) }
    }

    /// Runs `body` until it ends or SIGINT or SIGTERM cancels it; `body` then tidies up in what
    /// it does on cancellation, and the command exits with 128 + the signal, as the shell's would.
    private func interruptible<Result: Sendable>(
        _ report: @escaping @Sendable (String) -> Void, whenInterrupted: String,
        _ body: @escaping @Sendable () async throws -> Result
    ) async throws -> Result {
        // Caught before the work starts, so that it is never interrupted without tidying up.
        let signals = StopSignals.caught
        let work = Task { try await body() }
        let watcher = Task { () -> Int32? in
            for await signal in signals {
                report("interrupted (\(StopSignals.name(signal))): stopping, and \(whenInterrupted)")
                work.cancel()
                return signal
            }
            return nil
        }
        defer { watcher.cancel() }
        do {
            return try await work.value
        } catch  where work.isCancelled {
            // Whatever the interrupted statement threw.
            throw ExitCode(128 + (await watcher.value ?? 0))
        }
    }
}
