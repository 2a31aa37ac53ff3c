import Foundation
import JuryDomain
import JuryPostgres
import JuryRuntime
import JuryStore
import JuryTestSupport
import Testing

@Suite("Enqueue")
struct EnqueueTests {
    let yaml = runYAML(models: ["a", "b", "c"], baseURL: "http://127.0.0.1:9/v1")

    @Test(.freshDatabase) func createsOneJobPerExampleAndJudgeAndReenqueueIsANoOp() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let jury = try await store(url)
        _ = try await createRun(yaml, in: jury)
        let file = try writeCorpus(count: 250)
        let enqueuer = Enqueuer(store: jury, logger: TestDatabase.logger)
        let first = try await enqueuer.enqueue(file: file, run: "test", batch: "b1")
        #expect(first == EnqueueReport(examples: 250, new: 250, jobs: 750))
        let again = try await enqueuer.enqueue(file: file, run: "test", batch: "b1")
        #expect(again == EnqueueReport(examples: 250, new: 0, jobs: 0))
        #expect(try await connection.count("SELECT count(*) FROM examples") == 250)
        #expect(try await connection.count("SELECT count(*) FROM jobs WHERE state = 'pending'") == 750)
        #expect(
            try await connection.count("SELECT count(*) FROM examples WHERE jobs_open = 3 AND votes_needed = 3")
                == 250)
    }

    @Test(.freshDatabase) func aLargeFileGoesInChunkByChunkAndAnInterruptedEnqueueResumes() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let jury = try await store(url)
        _ = try await createRun(yaml, in: jury)
        let enqueuer = Enqueuer(store: jury, logger: TestDatabase.logger, examplesPerTransaction: 40)
        // The first 100 lines went in before the process died; the whole file is enqueued again.
        let head = try writeCorpus(count: 100)
        let all = try writeCorpus(count: 250)
        _ = try await enqueuer.enqueue(file: head, run: "test", batch: "b")
        let resumed = try await enqueuer.enqueue(file: all, run: "test", batch: "b")
        #expect(resumed == EnqueueReport(examples: 250, new: 150, jobs: 450))
        #expect(try await connection.count("SELECT count(*) FROM examples") == 250)
        #expect(try await connection.count("SELECT count(*) FROM jobs") == 750)
        // One transaction per chunk of 40 lines: 3 for the first 100, then 5 for the chunks with new lines.
        #expect(try await connection.count("SELECT count(DISTINCT xmin::text) FROM examples") == 8)
        #expect(try await connection.count("SELECT count(DISTINCT xmin::text) FROM jobs") == 8)
    }

    @Test(.freshDatabase) func chunksLoadOnSeveralConnectionsAtOnceAndReopenADoneRun() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let stores = [try await store(url), try await store(url), try await store(url)]
        let run = try await createRun(yaml, in: stores[0])
        let enqueuer = Enqueuer(stores: stores, logger: TestDatabase.logger, examplesPerTransaction: 40)
        let file = try writeCorpus(count: 250)
        #expect(
            try await enqueuer.enqueue(file: file, run: "test", batch: "b")
                == EnqueueReport(examples: 250, new: 250, jobs: 750))
        // Seven chunks of at most 40, each its own transaction, on three connections.
        #expect(try await connection.count("SELECT count(DISTINCT xmin::text) FROM examples") == 7)
        #expect(try await connection.count("SELECT count(*) FROM jobs") == 750)
        #expect(try await connection.count("SELECT count(DISTINCT external_id) FROM examples") == 250)
        try await expectCountsMatchTables(connection)

        // The run ends; then new lines come, loaded side by side, and make it active again.
        try await connection.query(
            "UPDATE jobs SET state = 'cancelled' WHERE run_id = \(run.id)")
        try await connection.query(
            "UPDATE examples SET state = 'decided', jobs_open = 0, jobs_cancelled = jobs_total WHERE run_id = \(run.id)"
        )
        #expect(try await stores[0].finishRuns() == ["test"])
        let more = try await enqueuer.enqueue(
            file: try writeCorpus(count: 250, prefix: "more"), run: "test", batch: "b")
        #expect(more == EnqueueReport(examples: 250, new: 250, jobs: 750))
        #expect(try await stores[0].findRun("test").state == .active)
        #expect(try await stores[0].finishRuns().isEmpty)
        try await expectCountsMatchTables(connection)
    }

    @Test(.freshDatabase) func keepsFieldsLabelsAndIntegerIDs() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let jury = try await store(url)
        _ = try await createRun(yaml, in: jury)
        let file = try writeFile(
            """
            {"id": 7, "request": "tab\\there", "nested": {"n": 1.5}, "human_label": "valid", "source_label": "ambiguous"}

            {"id": "s-1", "request": "plain", "human_label": null}
            """)
        let report = try await Enqueuer(store: jury, logger: TestDatabase.logger).enqueue(
            file: file, run: "test")
        #expect(report.new == 2)
        let row = try await connection.query(
            "SELECT payload::text AS payload, human_label, source_label, batch FROM examples WHERE external_id = '7'"
        )[0]
        #expect(row["payload"] == #"{"nested": {"n": 1.5}, "request": "tab\there"}"#)
        #expect(row["human_label"] == "valid")
        #expect(row["source_label"] == "ambiguous")
        #expect(row["batch"] == URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent)
    }

    @Test(
        .freshDatabase,
        arguments: [
            ("{\"id\": \"a\"}\n{\"id\": \"b\"\n", "2: not valid JSON"),
            ("{\"id\": \"a\"}\n[1, 2]\n", "2: expected a JSON object"),
            ("{\"id\": \"a\"}\n{\"request\": \"x\"}\n", "2: missing \"id\""),
            ("{\"id\": \"a\"}\n{\"id\": true}\n", "2: \"id\" must be a non-empty string or an integer"),
            ("{\"id\": \"a\"}\n{\"id\": \"b\"}\n{\"id\": \"a\"}\n", "3: id \"a\" appears earlier in the file"),
            (
                "{\"id\": \"a\"}\n{\"id\": \"b\", \"human_label\": \"maybe\"}\n",
                "2: human_label \"maybe\" is not in the run's taxonomy"
            ),
            ("{\"id\": \"a\", \"source_label\": 3}\n", "1: source_label must be a string"),
            ("{\"id\": \"a\"}\n{\"id\": \"b\", \"request\": \"nul \\u0000 here\"}\n", "2: contains the NUL character"),
            ("{\"id\": \"a\", \"id\": \"b\"}\n", "1: not valid JSON: the key \"id\" appears twice in one object"),
            (
                "{\"id\": \"a\", \"m\": {\"k\": 1, \"k\": 2}}\n",
                "1: not valid JSON: the key \"k\" appears twice in one object"
            ),
            (
                "{\"id\": \"a\", \"request\": \"\(String(repeating: "x", count: 1 << 20))\"}\n",
                "1: the line is longer than"
            ),
        ])
    func badInputNamesTheLineAndWritesNothing(content: String, message: String) async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let jury = try await store(url)
        _ = try await createRun(yaml, in: jury)
        // Enough good lines first that the bad one comes after many chunks' worth.
        var lines = (0..<20_000).map { #"{"id": "good-\#($0)", "request": "padding padding padding"}"# }.joined(
            separator: "\n")
        lines += "\n"
        let lineOffset = 20_000
        let file = try writeFile(lines + content)
        let error = await #expect(throws: JuryError.self) {
            try await Enqueuer(store: jury, logger: TestDatabase.logger, examplesPerTransaction: 1000).enqueue(
                file: file, run: "test")
        }
        let parts = message.split(separator: ":", maxSplits: 1)
        let expected = "\(file):\(Int(parts[0])! + lineOffset):\(parts[1])"
        #expect(error?.message.hasPrefix(expected) == true, "\(error?.message ?? "no error"), expected \(expected)")
        #expect(try await connection.count("SELECT count(*) FROM examples") == 0)
        #expect(try await connection.count("SELECT count(*) FROM jobs") == 0)
    }

    @Test(.freshDatabase) func unknownRunAndMissingFileAreClearErrors() async throws {
        let url = try TestDatabase.url
        let jury = try await store(url)
        let enqueuer = Enqueuer(store: jury, logger: TestDatabase.logger)
        let file = try writeCorpus(count: 1)
        let unknown = await #expect(throws: JuryError.self) { try await enqueuer.enqueue(file: file, run: "nope") }
        #expect(unknown?.message.contains("no run named 'nope'") == true)
        let missing = await #expect(throws: JuryError.self) {
            try await enqueuer.enqueue(file: "/nonexistent/corpus.jsonl", run: "nope")
        }
        #expect(missing?.message.contains("cannot read /nonexistent/corpus.jsonl") == true)
    }

    /// Examples have no foreign key to their run (035): the run's lock refuses a run deleted
    /// after the enqueue looked it up, and nothing of the chunk is written.
    @Test(.freshDatabase) func aRunDeletedBeforeItsChunkArrivesIsRefused() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let jury = try await store(url)
        let run = try await createRun(yaml, in: jury)
        try await jury.deleteRun(id: run.id)
        var chunks = [[CorpusLine(number: 1, bytes: ArraySlice(#"{"id": "a", "request": "r"}"#.utf8))]]
        let refused = await #expect(throws: PostgresError.self) {
            _ = try await jury.enqueue(into: run, batch: "b") { chunks.popLast() }
        }
        #expect(refused?.message.contains("run \(run.id) does not exist") == true)
        #expect(try await connection.count("SELECT count(*) FROM examples") == 0)
        #expect(try await connection.count("SELECT count(*) FROM jobs") == 0)
    }

    @Test(.freshDatabase) func idsCompareByTheirBytes() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let jury = try await store(url)
        _ = try await createRun(yaml, in: jury)
        // "é" as one code point (NFC) and as e + combining accent (NFD): equal as Swift Strings.
        let file = try writeFile("{\"id\": \"caf\u{E9}\"}\n{\"id\": \"cafe\u{301}\"}\n")
        let report = try await Enqueuer(store: jury, logger: TestDatabase.logger).enqueue(
            file: file, run: "test")
        #expect(report.new == 2)
        #expect(try await connection.count("SELECT count(DISTINCT external_id) FROM examples") == 2)
    }

    @Test(.freshDatabase) func aReenqueuedIDWhoseLineChangedIsReported() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let jury = try await store(url)
        _ = try await createRun(yaml, in: jury)
        let enqueuer = Enqueuer(store: jury, logger: TestDatabase.logger)
        _ = try await enqueuer.enqueue(
            file: try writeFile("{\"id\": \"a\", \"request\": \"x\"}\n{\"id\": \"b\", \"request\": \"y\"}\n"),
            run: "test", batch: "one")
        let again = try await enqueuer.enqueue(
            file: try writeFile(
                """
                {"id": "a", "request": "x"}
                {"id": "b", "request": "changed"}
                {"id": "c", "request": "new"}

                """), run: "test", batch: "one")
        #expect(again == EnqueueReport(examples: 3, new: 1, jobs: 3, changed: 1, changedIDs: ["b"]))
        // A different batch for the same lines counts as a change too.
        let moved = try await enqueuer.enqueue(
            file: try writeFile("{\"id\": \"a\", \"request\": \"x\"}\n"), run: "test", batch: "two")
        #expect(moved.changed == 1 && moved.new == 0)
        #expect(
            try await connection.count("SELECT count(*) FROM examples WHERE payload->>'request' = 'changed'") == 0)
    }

    @Test(.freshDatabase) func theLineLimitCanBeRaised() async throws {
        let url = try TestDatabase.url
        let jury = try await store(url)
        _ = try await createRun(yaml, in: jury)
        let file = try writeFile("{\"id\": \"a\", \"request\": \"\(String(repeating: "x", count: 100))\"}\n")
        let small = Enqueuer(store: jury, logger: TestDatabase.logger, maxLineBytes: 50)
        let error = await #expect(throws: JuryError.self) { try await small.enqueue(file: file, run: "test") }
        #expect(error?.message.contains(":1: the line is longer than 50 bytes") == true)
        let large = Enqueuer(store: jury, logger: TestDatabase.logger, maxLineBytes: 200)
        #expect(try await large.enqueue(file: file, run: "test").new == 1)
    }
}
