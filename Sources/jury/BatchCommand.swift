import ArgumentParser
import Foundation
import JuryStore

struct BatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch", abstract: "See and cancel the provider batches of batch-mode judges.",
        discussion: """
            A judge with mode: batch has its jobs sent to the provider's batch API in batches that any \
            worker opens, submits, polls and collects. The same figures are in the views jury_batches and \
            jury_batch_summary.
            """,
        subcommands: [List.self, Show.self, Cancel.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List batches, newest first: state, requests answered and not, age.")
        @OptionGroup var db: DatabaseOptions
        @Option(help: "Only this run's batches.") var run: String?
        @Flag(help: "Only batches still open (building, submitted, ended).") var open = false
        @Option(help: "Most batches listed.") var limit = 50
        @Flag(help: "Print the batches as a JSON array.") var json = false

        func validate() throws {
            guard limit >= 1 else { throw ValidationError("--limit must be at least 1") }
        }

        func run() async throws {
            let store = try await db.connect("jury batch", logger: db.makeLogger("jury.batch"))
            if let run { _ = try await store.findRun(run) }
            let batches = try await store.batches(run: run, openOnly: open, limit: limit)
            if json {
                print(try jsonText(batches))
            } else {
                print(BatchTable(batches).text, terminator: "")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one batch, with its provider ids and last error.")
        @OptionGroup var db: DatabaseOptions
        @Argument(help: "The batch's id (jury batch list).") var id: Int64

        func run() async throws {
            let store = try await db.connect("jury batch", logger: db.makeLogger("jury.batch"))
            guard let batch = try await store.batches(run: nil, id: id).first else {
                throw ValidationError("there is no batch \(id); `jury batch list` shows them")
            }
            print(try jsonText(batch))
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel an open batch at the provider.",
            discussion: """
                The next worker to take the batch cancels it at the provider (workers hold the API keys) \
                within --batch-poll-seconds; what the provider answered before it stopped is still recorded. \
                Its other jobs go back to the queue, and into the next batch: pause the run first \
                (`jury run pause`) to keep them there. `jury run cancel` cancels all of a run's batches.
                """)
        @OptionGroup var db: DatabaseOptions
        @Argument(help: "The batch's id (jury batch list).") var id: Int64

        func run() async throws {
            let store = try await db.connect("jury batch", logger: db.makeLogger("jury.batch"))
            guard try await store.requestBatchCancel(id: id) else {
                throw ValidationError(
                    "batch \(id) is not open (or does not exist); `jury batch list --open` shows those that are")
            }
            print("batch \(id) will be cancelled at the provider by the next worker that takes it up")
        }
    }
}

/// `jury batch list` as text: one row per batch, columns aligned.
struct BatchTable {
    let text: String

    init(_ batches: [Store.BatchLine]) {
        guard !batches.isEmpty else {
            text = "no batches; judges with mode: batch make them\n"
            return
        }
        let header = ["id", "run", "judge", "state", "provider", "requests", "voted", "not voted", "age", "expires"]
        let now = Date()
        let rows = batches.map { batch in
            [
                "\(batch.id)", batch.run, batch.judge, batch.state + (batch.cancelRequested ? " (cancelling)" : ""),
                batch.providerState ?? "-", "\(batch.requests)", "\(batch.succeeded)", "\(batch.failed)",
                Self.age(now.timeIntervalSince(batch.createdAt)),
                ["building", "submitted", "ended"].contains(batch.state)
                    ? "in " + Self.age(batch.expiresAt.timeIntervalSince(now)) : "-",
            ]
        }
        text = columns(header, rows, figures: [0, 5, 6, 7])
    }

    private static func age(_ seconds: Double) -> String {
        let whole = max(0, Int(seconds))
        if whole >= 3600 { return "\(whole / 3600)h\(String(format: "%02d", whole % 3600 / 60))m" }
        if whole >= 60 { return "\(whole / 60)m\(String(format: "%02d", whole % 60))s" }
        return "\(whole)s"
    }
}
