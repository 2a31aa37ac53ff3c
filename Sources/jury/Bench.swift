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
            server); and pgbench running a minimal queue loop (claim 100 jobs with FOR UPDATE SKIP LOCKED, \
            then insert their votes and mark them done) and Jury's own claim and record SQL, with the ratios. \
            Use a database no other worker serves, on a server nothing else writes to: a worker without \
            --run would claim the bench's jobs, and other writes would count as the bench's.
            """)
    @OptionGroup var db: DatabaseOptions
    @Option(help: "Examples to enqueue and judge.") var examples = 20_000
    @Option(help: "Judges in the panel.") var judges = 4
    @Option(help: "Worker concurrency.") var concurrency = 512
    @Option(help: "Clients of each pgbench run.") var pgbenchClients = 4
    @Flag(help: "Print the figures as one JSON object on stdout (the lines go to stderr).") var json = false

    func validate() throws {
        guard examples >= 100 else { throw ValidationError("--examples must be at least 100") }
        guard (1...20).contains(judges) else { throw ValidationError("--judges must be between 1 and 20") }
        guard (1...10_000).contains(concurrency) else { throw ValidationError("--concurrency must be 1...10000") }
        guard (1...64).contains(pgbenchClients) else { throw ValidationError("--pgbench-clients must be 1...64") }
    }

    func run() async throws {
        var options = Benchmark.Options()
        options.examples = examples
        options.judges = judges
        options.concurrency = concurrency
        options.pgbenchClients = pgbenchClients
        var logger = db.makeLogger("jury.bench")
        logger.logLevel = max(logger.logLevel, .warning)
        let json = json
        let result = try await Benchmark.run(database: db.target, options: options, logger: logger) { line in
            if json {
                FileHandle.standardError.write(Data((line + "\n").utf8))
            } else {
                print(line)
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
        }
    }
}
