import Foundation
import JuryBench
import JuryDomain
import JuryPostgres
import JuryRuntime
import JuryStore
import JuryTestSupport
import Testing

/// The `jury` binary itself, as a person or a supervisor runs it.
@Suite("Command line")
struct CommandLineTests {
    func jury(_ arguments: [String], database: String) async throws -> (status: Int32, output: String) {
        try await runJury(arguments, database: database)
    }

    @Test(.freshDatabase) func badInputFailsWithTheFileLineOrFieldAndExitStatus1() async throws {
        let url = try TestDatabase.url
        let config = try writeFile(
            runYAML(models: ["a"], baseURL: "http://127.0.0.1:9/v1").replacingOccurrences(
                of: "max_attempts: 3", with: "max_attempts: 0"))
        let created = try await jury(["run", "create", "--config", config], database: url)
        #expect(created.status == 1)
        #expect(created.output.contains("\(config): max_attempts: 0 is outside 1...100"), "\(created.output)")

        let good = try writeFile(runYAML(models: ["a"], baseURL: "http://127.0.0.1:9/v1"))
        #expect(try await jury(["run", "create", "--config", good], database: url).status == 0)
        let corpus = try writeFile("{\"id\": 1}\n{\"id\": 2, \"human_label\": \"nope\"}\n")
        let enqueued = try await jury(["enqueue", "--run", "test", corpus], database: url)
        #expect(enqueued.status == 1)
        #expect(enqueued.output.contains("\(corpus):2: human_label \"nope\" is not in the run's taxonomy"))
        let unknown = try await jury(["worker", "--run", "missing"], database: url)
        #expect(unknown.status == 1)
        #expect(unknown.output.contains("no run named 'missing'"))
    }

    @Test(.freshDatabase) func aLiveRunIsUpdatedAndWhatVotesDependOnIsRefused() async throws {
        let url = try TestDatabase.url
        let yaml = runYAML(models: ["a"], baseURL: "http://127.0.0.1:9/v1", apiKeyEnv: "K")
        let config = try writeFile(yaml)
        #expect(try await jury(["run", "create", "--config", config], database: url).status == 0)
        let edited = try writeFile(
            yaml.replacingOccurrences(of: "model: a,", with: "model: a2, parameters: { reasoning_effort: low },"))
        let dry = try await jury(["run", "update", "test", "--config", edited, "--dry-run"], database: url)
        #expect(dry.status == 0 && dry.output.contains("judges[j1].model: \"a\" -> \"a2\""), "\(dry.output)")
        #expect(dry.output.contains("not applied (--dry-run)"))
        let updated = try await jury(["run", "update", "test", "--config", edited], database: url)
        #expect(updated.status == 0 && updated.output.contains("2 changes applied"), "\(updated.output)")
        let again = try await jury(["run", "update", "test", "--config", edited], database: url)
        #expect(again.output.contains("nothing to change"), "\(again.output)")
        // A change to the taxonomy: one line naming the field, and the run keeps its config.
        let taxonomy = try writeFile(
            yaml.replacingOccurrences(of: "description: can be done", with: "description: fine"))
        let refused = try await jury(["run", "update", "test", "--config", taxonomy], database: url)
        #expect(refused.status == 1)
        #expect(refused.output.contains("\(taxonomy): taxonomy[0]: cannot change"), "\(refused.output)")
        let store = try await JuryTestSupport.store(url)
        #expect(try await store.findRun("test").config.judges[0].model == "a2")
        // Each judge's request, with the key as its variable and never its value.
        let requests = try await runJury(
            ["prompt", "--config", edited, "--requests", #"{"id": 1, "request": "x"}"#], database: url,
            environment: ["K": "sk-never-printed"])
        #expect(requests.status == 0, "\(requests.output)")
        let line = try JSONValue.parse(Data(requests.output.utf8))
        #expect(line["body", "reasoning_effort"] == "low" && line["body", "model"] == "a2")
        #expect(line["url"] == "http://127.0.0.1:9/v1/chat/completions")
        #expect(line["headers", "Authorization"] == "Bearer $K" && !requests.output.contains("sk-never-printed"))
    }

    @Test(.freshDatabase) func aRunIsPurgedOnlyOnceFinishedAndTheSizesArePrinted() async throws {
        let url = try TestDatabase.url
        let config = try writeFile(runYAML(models: ["a"], baseURL: "http://127.0.0.1:9/v1"))
        #expect(try await jury(["run", "create", "--config", config], database: url).status == 0)
        let corpus = try writeFile("{\"id\": 1, \"request\": \"x\"}\n{\"id\": 2, \"request\": \"y\"}\n")
        #expect(try await jury(["enqueue", "--run", "test", corpus], database: url).status == 0)
        let refused = try await jury(["run", "purge", "test"], database: url)
        #expect(refused.status == 1)
        #expect(
            refused.output.contains("run 'test' cannot be purged yet: 2 of its examples are not decided yet"),
            "\(refused.output)")
        #expect(try await jury(["run", "cancel", "test"], database: url).status == 0)
        let jobs = try await jury(["run", "purge", "test"], database: url)
        #expect(jobs.status == 0, "\(jobs.output)")
        #expect(jobs.output.contains("jobs of run test deleted"))
        #expect(jobs.output.contains("jobs ") && jobs.output.contains("dead rows before -> after"))
        let everything = try await jury(["run", "purge", "test", "--everything"], database: url)
        #expect(everything.output.contains("run test deleted (2 examples)"), "\(everything.output)")
        #expect(try await jury(["run", "purge", "test"], database: url).output.contains("no run named 'test'"))
    }

    @Test(.freshDatabase) func statusWatchesRunsListAndBothSpeakJSON() async throws {
        let url = try TestDatabase.url
        let config = try writeFile(runYAML(models: ["a"], baseURL: "http://127.0.0.1:9/v1"))
        #expect(try await jury(["run", "create", "--config", config], database: url).status == 0)
        let corpus = try writeFile("{\"id\": 1, \"request\": \"x\"}\n{\"id\": 2, \"request\": \"y\"}\n")
        #expect(try await jury(["enqueue", "--run", "test", corpus], database: url).status == 0)

        func first(_ value: JSONValue?) -> JSONValue? {
            guard case .array(let items)? = value else { return nil }
            return items.first
        }
        let status = try await jury(["status", "--json"], database: url)
        let run = first(try JSONValue.parse(Data(status.output.utf8))["runs"])
        #expect(run?["examples"]?.text == "2", "\(status.output)")
        #expect(run?["remaining_jobs"]?.text == "2")
        let list = try await jury(["run", "list", "--json"], database: url)
        let listed = first(try JSONValue.parse(Data(list.output.utf8)))
        #expect(listed?["name"] == .string("test") && listed?["state"] == .string("active"), "\(list.output)")
        #expect(listed?["undecided"]?.text == "2" && listed?["cost_usd"]?.text.flatMap(Double.init) == 0)
        let table = try await jury(["run", "list"], database: url).output
        #expect(table.hasPrefix("run ") && table.contains("\ntest  active"), "\(table)")

        // --watch redraws in place until interrupted.
        let output = scratchPath("watch.out")
        let watch = try startJury(["status", "--watch", "--interval", "0.2"], database: url, outputPath: output)
        var screen = ""
        try await eventually("three screens") {
            screen = FileManager.default.contents(atPath: output).map { String(decoding: $0, as: UTF8.self) } ?? ""
            return screen.components(separatedBy: "\u{1B}[H\u{1B}[2J").count > 3
        }
        watch.kill(SIGINT)
        _ = await watch.exitStatus()
        let last = try #require(screen.components(separatedBy: "\u{1B}[H\u{1B}[2J").last(where: { !$0.isEmpty }))
        #expect(last.hasPrefix("jury status  "), "\(last)")
        #expect(last.contains("test  active  [") && last.contains("0 of 2 examples decided"), "\(last)")
        #expect(last.contains("judge  progress"))
    }

    @Test(.freshDatabase) func anUnmigratedDatabaseIsNamedAsSuch() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        try await connection.execute(script: "DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        let status = try await jury(["status"], database: url)
        #expect(status.status == 1)
        #expect(status.output.contains("run `jury migrate` first"), "\(status.output)")
        #expect(try await jury(["migrate"], database: url).status == 0)
        #expect(try await jury(["status"], database: url).output.contains("no runs yet"))
    }

    @Test(.freshDatabase) func aWorkerStopsOnSIGTERMReleasesItsJobsAndExits0() async throws {
        try await withMockJudges([mockJudge("t-a", seed: 13, latency: 300)]) { baseURL, _ in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let db = try await store(url)
            let run = try await createRun(runYAML(models: ["t-a"], baseURL: baseURL), in: db)
            try await enqueue(try writeCorpus(count: 200), run: run.name, in: db)
            // A drain shorter than the calls: some finish, the others are cancelled and released.
            let worker = try startJury(
                ["worker", "--concurrency", "20", "--drain-seconds", "0.1", "--log-level", "error"], database: url)
            try await eventually("calls in flight") {
                try await connection.count("SELECT count(*) FROM jobs WHERE state = 'running'") >= 10
            }
            worker.kill(SIGTERM)
            #expect(await worker.exitStatus() == 0)
            #expect(try await connection.count("SELECT count(*) FROM jobs WHERE state = 'running'") == 0)
            #expect(try await connection.count("SELECT count(*) FROM jobs WHERE state = 'failed'") == 0)
            // Released jobs did not use up an attempt.
            #expect(
                try await connection.count("SELECT count(*) FROM jobs WHERE state = 'pending' AND attempts > 0")
                    == 0)
            #expect(try await connection.count("SELECT count(*) FROM jury_workers WHERE alive") == 0)
        }
    }

    @Test(.freshDatabase) func aSecondSignalStopsAWorkerAtOnceDuringItsDrain() async throws {
        try await withMockJudges([mockJudge("t-hung", seed: 17, latency: 60_000)]) { baseURL, _ in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let db = try await store(url)
            let run = try await createRun(runYAML(models: ["t-hung"], baseURL: baseURL), in: db)
            try await enqueue(try writeCorpus(count: 10), run: run.name, in: db)
            // The calls would take a minute and the drain allows a minute: only the second signal ends it.
            let worker = try startJury(["worker", "--drain-seconds", "60", "--log-level", "error"], database: url)
            try await eventually("calls in flight") {
                try await connection.count("SELECT count(*) FROM jobs WHERE state = 'running'") == 10
            }
            worker.kill(SIGTERM)
            try await Task.sleep(for: .milliseconds(500))
            let second = ContinuousClock.now
            worker.kill(SIGTERM)
            #expect(await worker.exitStatus() == 0)
            #expect(ContinuousClock.now - second < .seconds(5))
            // Its jobs went back at once, without using up an attempt.
            #expect(
                try await connection.count("SELECT count(*) FROM jobs WHERE state = 'pending' AND attempts = 0") == 10)
        }
    }
}

@Suite("Bench")
struct BenchCommandTests {
    @Test(.freshDatabase) func theBenchReportsEveryFigureAsJSON() async throws {
        let url = try TestDatabase.url
        let bench = try await runJury(["bench", "--examples", "200", "--json", "--log-level", "error"], database: url)
        #expect(bench.status == 0, "\(bench.output)")
        let start = try #require(bench.output.firstIndex(of: "{"))
        let figures = try JSONValue.parse(Data(bench.output[start...].utf8))
        // A figure as a number: JSON writes a whole one without a fraction.
        func number(at path: [String]) -> Double? {
            switch path.reduce(figures as JSONValue?, { $0?[$1] }) {
            case .number(let value)?: value
            case .integer(let value)?: Double(value)
            default: nil
            }
        }
        func expectPositive(_ path: String...) {
            guard let value = number(at: path) else {
                Issue.record("\(path) is missing: \(bench.output)")
                return
            }
            #expect(value > 0, "\(path)")
        }
        expectPositive("enqueue_examples_per_second")
        expectPositive("worker_votes_per_second")
        expectPositive("worker_and_reducer_votes_per_second")
        expectPositive("last_vote_to_verdict_p99_seconds")
        expectPositive("peak_rss_megabytes")
        // A vote inserts one row and updates its job at least: fewer tuples would mean the counters missed it.
        #expect(try #require(number(at: ["worker_writes", "tuples_per_vote"])) >= 2)
        #expect(figures["minimal_queue", "jobs_per_second"] != nil)
        #expect(figures["jury_sql_one_job_per_judge_many_clients", "clients"] == .integer(16))
        // CPU per vote: this process always; PostgreSQL's share when the server runs here, as
        // the one the tests start does.
        expectPositive("worker_cpu_per_vote", "client_microseconds")
        expectPositive("worker_and_reducer_cpu_per_vote", "client_microseconds")
        if (ProcessInfo.processInfo.environment["JURY_TEST_DATABASE_URL"] ?? "").isEmpty {
            expectPositive("worker_cpu_per_vote", "server_microseconds")
            expectPositive("worker_and_reducer_cpu_per_vote", "server_microseconds")
            expectPositive("minimal_queue", "cpu_per_job", "server_microseconds")
        }
        // The bench leaves nothing behind.
        let connection = try await connect(url)
        #expect(try await connection.count("SELECT count(*) FROM runs") == 0)
        #expect(try await connection.count("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'jury_bench%'") == 0)
    }

    /// Interrupted, a scale run keeps its run, whose millions of examples would take minutes to
    /// remove, cancelled so that no worker takes it up; and the command it prints removes it.
    @Test(.freshDatabase) func anInterruptedScaleRunLeavesItsRunCancelled() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let output = scratchPath("scale.out")
        let bench = try startJury(
            ["bench", "--scale", "--examples", "2000", "--concurrency", "16", "--log-level", "error"], database: url,
            outputPath: output)
        try await eventually(timeout: 180, "the scale run's votes") {
            try await connection.count("SELECT count(*) FROM votes") > 0
        }
        bench.kill(SIGINT)
        #expect(await bench.exitStatus() == 128 + SIGINT)
        let runs = try await connection.query("SELECT name, state FROM runs")
        try #require(runs.count == 1)
        let name: String = try runs[0].decode("name")
        #expect(try runs[0].decode("state", as: String.self) == "cancelled")
        let printed = try String(contentsOfFile: output, encoding: .utf8)
        #expect(printed.contains("jury run purge \(name) --everything"), "\(printed)")
        let purge = try await runJury(["run", "purge", name, "--everything"], database: url)
        #expect(purge.status == 0, "\(purge.output)")
        #expect(try await connection.count("SELECT count(*) FROM runs") == 0)
    }

    /// Interrupted, the bench removes its run: left behind, its work would be met by workers and
    /// skew the next bench; and nothing of pgbench's stays connected. (One bench at a time, and a
    /// small one: beside the suite, a bench at full speed slows the tests that wait on time.)
    @Test(
        .freshDatabase, .serialized,
        arguments: [(SIGINT, "the bench's votes"), (SIGTERM, "pgbench")])
    func anInterruptedBenchRemovesItsRun(signal: Int32, during phase: String) async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let output = scratchPath("bench-\(signal).out")
        func pgbenchConnections() async throws -> Int {
            try await connection.count(
                """
                SELECT count(*) FROM pg_stat_activity
                WHERE application_name = 'pgbench' AND datname = current_database()
                """)
        }
        let bench = try startJury(
            ["bench", "--examples", "2000", "--concurrency", "16", "--log-level", "error"], database: url,
            outputPath: output)
        try await eventually(timeout: 180, phase) {
            if phase == "pgbench" {
                return try await pgbenchConnections() > 0
            }
            return try await connection.count("SELECT count(*) FROM votes") > 0
        }
        bench.kill(signal)
        #expect(await bench.exitStatus() == 128 + signal)
        #expect(try await connection.count("SELECT count(*) FROM runs") == 0)
        #expect(try await connection.count("SELECT count(*) FROM examples") == 0)
        #expect(try await connection.count("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'jury_bench%'") == 0)
        #expect(try String(contentsOfFile: output, encoding: .utf8).contains("interrupted"))
        // A backend whose client is gone ends once its statement does.
        try await eventually("pgbench's connections closed") {
            try await pgbenchConnections() == 0
        }
    }
}
