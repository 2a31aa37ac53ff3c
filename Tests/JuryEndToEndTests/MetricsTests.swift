import AsyncHTTPClient
import Foundation
import JuryBench
import JuryDomain
import JuryPostgres
import JuryStore
import JuryTestSupport
import NIOCore
import NIOHTTP1
import Testing

/// `/metrics`, `/healthz` and `/readyz` of real `jury worker` and `jury reducer` processes,
/// checked against the database.
@Suite("Metrics")
struct MetricsTests {
    @Test(.freshDatabase) func workerAndReducerMetricsAgreeWithTheDatabase() async throws {
        let judges = [
            mockJudge("me-a", seed: 21, latency: 5, errorRate: 0.1),
            mockJudge("me-b", seed: 22, latency: 5, rateLimitRate: 0.15),
            mockJudge("me-c", seed: 23, latency: 5),
        ]
        try await withMockJudges(judges) { baseURL, _ in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let jury = try await store(url)
            // Priced judges, so that tokens and cost are counted.
            let yaml = runYAML(models: ["me-a", "me-b", "me-c"], baseURL: baseURL, maxAttempts: 8)
                .replacingOccurrences(
                    of: "\" }", with: "\", price: { input_per_million: 1.5, output_per_million: 6 } }")
            let run = try await createRun(yaml, in: jury)
            try await enqueue(try writeCorpus(count: 150), run: run.name, in: jury)
            // Paused first: the queue's depth is read while nothing moves.
            try await jury.setRunState(.paused, run: run.name)

            let worker = try MetricsProcess(
                ["worker", "--concurrency", "16", "--idle-poll-seconds", "0.2"], database: url)
            let reducer = try MetricsProcess(["reducer", "--idle-poll-seconds", "0.2"], database: url)
            do {
                try await check(worker: worker, reducer: reducer, run: run, jury: jury, connection: connection)
            } catch {
                worker.process.kill(SIGKILL)
                reducer.process.kill(SIGKILL)
                throw error
            }
            // Stopping: both exit 0.
            worker.process.kill(SIGTERM)
            reducer.process.kill(SIGTERM)
            #expect(await worker.process.exitStatus() == 0)
            #expect(await reducer.process.exitStatus() == 0)
        }
    }

    /// No process serves an empty /metrics: before any event, the build, the process's own
    /// figures and every run's series at zero are there, for dashboards and absent() alerts.
    @Test(.freshDatabase) func anIdleWorkerAndReducerExportTheirSeriesFromTheStart() async throws {
        let url = try TestDatabase.url
        let jury = try await store(url)
        // Judges nobody answers for (nothing listens on port 9): calls fail, no vote lands.
        let run = try await createRun(runYAML(models: ["m-a", "m-b"], baseURL: "http://127.0.0.1:9/v1"), in: jury)
        try await enqueue(try writeCorpus(count: 5), run: run.name, in: jury)
        let worker = try MetricsProcess(
            ["worker", "--concurrency", "2", "--idle-poll-seconds", "0.2", "--drain-seconds", "1"], database: url)
        let reducer = try MetricsProcess(["reducer", "--idle-poll-seconds", "0.2"], database: url)
        defer {
            worker.process.kill(SIGKILL)
            reducer.process.kill(SIGKILL)
        }
        let workerURL = try await worker.endpoint()
        let reducerURL = try await reducer.endpoint()
        try await eventually("the worker to be ready") { try await status(of: workerURL + "/readyz") == 200 }
        try await eventually("the reducer to be ready") { try await status(of: reducerURL + "/readyz") == 200 }
        let schema = "\(Schema.embedded.version)"
        for base in [workerURL, reducerURL] {
            let idle = try await scrape(base + "/metrics")
            #expect(idle.value("jury_build_info", ["schema_version": schema]) == 1, "\(idle.text)")
            for name in [
                "process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
                "process_open_fds", "process_max_fds", "process_start_time_seconds",
            ] {
                #expect((idle.value(name, [:]) ?? 0) > 0, "\(name)")
            }
            try await expectPromtoolAccepts(idle.text)
        }
        let working = try await scrape(workerURL + "/metrics")
        for judge in ["j1", "j2"] {
            let labels = ["run": run.name, "judge": judge]
            for name in ["jury_votes_total", "jury_cost_usd_total", "jury_judge_rate_limited_total"] {
                #expect(working.value(name, labels) == 0, "\(name) \(judge)")
            }
            #expect(working.value("jury_judge_calls_total", labels.merging(["outcome": "vote"]) { $1 }) == 0)
            #expect(working.value("jury_tokens_total", labels.merging(["kind": "prompt"]) { $1 }) == 0)
        }
        let reducing = try await scrape(reducerURL + "/metrics")
        for status in ["agreed", "disagreed", "insufficient"] {
            #expect(reducing.value("jury_verdicts_total", ["run": run.name, "status": status]) == 0, "\(status)")
        }
    }

    private func check(
        worker: MetricsProcess, reducer: MetricsProcess, run: StoredRun, jury: Store, connection: PostgresConnection
    ) async throws {
        do {
            let workerURL = try await worker.endpoint()
            let reducerURL = try await reducer.endpoint()
            try await eventually("the worker to be ready") { try await status(of: workerURL + "/readyz") == 200 }
            #expect(try await status(of: workerURL + "/healthz") == 200)
            try await eventually("the reducer to be ready") { try await status(of: reducerURL + "/readyz") == 200 }

            let waiting = try await scrape(workerURL + "/metrics")
            for judge in ["j1", "j2", "j3"] {
                let labels = ["run": run.name, "judge": judge]
                #expect(waiting.value("jury_queue_pending_jobs", labels) == 150)
                #expect((waiting.value("jury_queue_oldest_pending_age_seconds", labels) ?? 0) > 0)
            }

            try await jury.setRunState(.active, run: run.name)
            // 180 s ends a hang; beside the whole suite on two cores this took over 60 (27 alone).
            try await eventually(timeout: 180, "the run to be done") { try await jury.findRun(run.name).state == .done }
            let worked = try await scrape(workerURL + "/metrics")
            let reduced = try await scrape(reducerURL + "/metrics")

            var rateLimited = 0.0
            for judge in ["j1", "j2", "j3"] {
                let labels = ["run": run.name, "judge": judge]
                let row = try await connection.query(
                    """
                    SELECT count(*) AS votes, coalesce(sum(prompt_tokens), 0) AS prompt,
                           coalesce(sum(completion_tokens), 0) AS completion, coalesce(sum(cost_usd), 0) AS cost
                    FROM votes WHERE run_id = \(run.id) AND judge = \(judge)
                    """)[0]
                let votes = Double(try row.decode("votes", as: Int.self))
                #expect(votes > 0)
                #expect(worked.value("jury_votes_total", labels) == votes, "\(judge)")
                #expect(worked.value("jury_judge_calls_total", labels.merging(["outcome": "vote"]) { $1 }) == votes)
                #expect(
                    worked.value("jury_tokens_total", labels.merging(["kind": "prompt"]) { $1 })
                        == Double(try row.decode("prompt", as: Int.self)))
                #expect(
                    worked.value("jury_tokens_total", labels.merging(["kind": "completion"]) { $1 })
                        == Double(try row.decode("completion", as: Int.self)))
                let cost: Double = try row.decode("cost")
                #expect(abs((worked.value("jury_cost_usd_total", labels) ?? 0) - cost) <= cost * 1e-9)
                // Every call ended in some outcome, and each was timed.
                #expect(
                    worked.sum("jury_judge_calls_total", labels)
                        == worked.value("jury_judge_call_duration_seconds_count", labels))
                #expect(worked.value("jury_judge_calls_in_flight", labels) == 0)
                #expect(worked.value("jury_queue_pending_jobs", labels) == 0)
                rateLimited += worked.value("jury_judge_rate_limited_total", labels) ?? 0
            }
            // The mock refused some calls: 429s to j2, 500s to j1; each as its class.
            #expect(rateLimited > 0)
            #expect(
                rateLimited
                    == worked.sum("jury_judge_calls_total", ["run": run.name, "outcome": "rate_limited"]))
            #expect(worked.sum("jury_judge_calls_total", ["judge": "j1", "outcome": "server_error"]) > 0)
            // Each claim of a job is counted once in the claim sizes; a voted job's claims are in its vote.
            #expect(
                worked.value("jury_claim_size_jobs_sum", [:])
                    == Double(
                        try await connection.count(
                            "SELECT (SELECT coalesce(sum(claims), 0) FROM jobs) + (SELECT coalesce(sum(claims), 0) FROM votes)"
                        )))

            for status in ["agreed", "disagreed", "insufficient"] {
                let stored = try await connection.count(
                    "SELECT count(*) FROM verdicts WHERE run_id = \(run.id) AND status = \(status)")
                #expect(
                    reduced.value("jury_verdicts_total", ["run": run.name, "status": status]) ?? 0 == Double(stored))
            }
            #expect(
                reduced.value("jury_last_vote_to_verdict_seconds_count", ["run": run.name])
                    == Double(try await connection.count("SELECT count(*) FROM verdicts WHERE votes > 0")))

            // Both expositions pass Prometheus's own checker.
            for text in [worked.text, reduced.text] { try await expectPromtoolAccepts(text) }
        }
    }
}

/// A `jury` process started with `--metrics-port 0`; its output goes to a file, where it says its port.
private struct MetricsProcess {
    let process: Subprocess
    let output: String

    init(_ arguments: [String], database: String) throws {
        output = scratchPath("metrics.log")
        process = try startJury(
            arguments + ["--metrics-port", "0", "--metrics-host", "127.0.0.1", "--log-level", "warning"],
            database: database, outputPath: output)
    }

    /// The endpoint's base URL, once the process has said it listens.
    func endpoint() async throws -> String {
        var found: String?
        try await eventually("the metrics endpoint to listen") {
            let text = FileManager.default.contents(atPath: output).map { String(decoding: $0, as: UTF8.self) } ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("metrics listening on ") }) {
                found = String(line.dropFirst("metrics listening on ".count).dropLast("/metrics".count))
            }
            return found != nil
        }
        return try #require(found)
    }
}

/// A scraped exposition: samples by name and labels.
private struct Exposition {
    let text: String
    let samples: [(name: String, labels: [String: String], value: Double)]

    init(_ text: String) {
        self.text = text
        samples = text.split(separator: "\n").compactMap { line in
            guard !line.hasPrefix("#"), let space = line.lastIndex(of: " "),
                let value = Double(line[line.index(after: space)...])
            else { return nil }
            let series = line[..<space]
            guard let open = series.firstIndex(of: "{") else { return (String(series), [:], value) }
            var labels: [String: String] = [:]
            for pair in series[series.index(after: open)..<series.index(before: series.endIndex)]
                .split(separator: ",")
            {
                let parts = pair.split(separator: "=", maxSplits: 1)
                labels[String(parts[0])] = String(parts[1].dropFirst().dropLast())
            }
            return (String(series[..<open]), labels, value)
        }
    }

    /// The sample with exactly these labels.
    func value(_ name: String, _ labels: [String: String]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }

    /// The sum of the samples whose labels include these.
    func sum(_ name: String, _ labels: [String: String]) -> Double {
        samples.filter { sample in
            sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value }
        }.reduce(0) { $0 + $1.value }
    }
}

private func status(of url: String) async throws -> Int {
    Int(try await testHTTPClient.get(url: url).get().status.code)
}

private func scrape(_ url: String) async throws -> Exposition {
    let response = try await testHTTPClient.get(url: url).get()
    #expect(response.status.code == 200)
    #expect(response.headers.first(name: "content-type")?.hasPrefix("text/plain; version=0.0.4") == true)
    return Exposition(response.body.map { String(buffer: $0) } ?? "")
}

/// `promtool check metrics` (Debian's prometheus package; `deploy/local/setup.sh` installs it
/// for the tests) must find nothing to say.
private func expectPromtoolAccepts(_ text: String) async throws {
    let promtool = "/usr/bin/promtool"
    guard FileManager.default.isExecutableFile(atPath: promtool) else {
        Issue.record("promtool is missing: run deploy/local/test.sh, or apt-get install prometheus")
        return
    }
    let file = try writeFile(text)
    let result = try await offThePool { try Subprocess.run("/bin/sh", ["-c", "\(promtool) check metrics < \(file)"]) }
    #expect(result.status == 0, "promtool check metrics: \(result.output)")
}
