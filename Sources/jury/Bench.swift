import ArgumentParser
import Foundation
import JuryBench
import Logging

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure enqueue and vote throughput against pgbench running the same SQL on the same database.",
        discussion: """
            Creates a throwaway run (deleted at the end) with instant in-process judges and prints figures. \
            Use a database no other worker serves: a worker without --run would claim the bench's jobs too.
            """)
    @OptionGroup var db: DatabaseOptions
    @Option(help: "Examples to enqueue and judge.") var examples = 20_000
    @Option(help: "Judges in the panel.") var judges = 4
    @Option(help: "Worker concurrency.") var concurrency = 512

    func run() async throws {
        var options = Benchmark.Options()
        options.examples = examples
        options.judges = judges
        options.concurrency = concurrency
        var logger = db.makeLogger("jury.bench")
        logger.logLevel = max(logger.logLevel, .warning)
        _ = try await Benchmark.run(database: db.target, options: options, logger: logger) { print($0) }
    }
}
