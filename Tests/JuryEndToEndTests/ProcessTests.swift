import Foundation
import JuryBench
import JuryDomain
import JuryPostgres
import JuryRuntime
import JuryStore
import JuryTestSupport
import Synchronization
import Testing

@Suite("Processes")
struct ProcessTests {
    @Test(.freshDatabase) func aWorkerKilledWithSIGKILLLosesNothingAndDuplicatesNothing() async throws {
        let binary = juryBinary
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build the jury binary first: swift build")
        let judges = [mockJudge("k-a", seed: 4, latency: 40), mockJudge("k-b", seed: 5, latency: 40)]
        try await withMockJudges(judges) { baseURL, _ in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let jury = try await store(url)
            let run = try await createRun(runYAML(models: ["k-a", "k-b"], baseURL: baseURL), in: jury)
            try await enqueue(try writeCorpus(count: 400), run: run.name, in: jury)

            let process = try Subprocess.spawn(
                binary,
                [
                    "worker", "--run", run.name, "--concurrency", "32", "--lease-seconds", "2", "--log-level",
                    "error",
                ],
                environment: ["DATABASE_URL": url, "PATH": "/usr/bin:/bin"])
            // Kill it in the middle: some votes recorded, some calls in flight.
            try await eventually("the worker process to record votes") {
                try await connection.count("SELECT count(*) FROM votes") >= 100
            }
            #expect(try await connection.count("SELECT count(*) FROM jobs WHERE state = 'running'") > 0)
            process.kill(SIGKILL)
            #expect(await process.exitStatus() == 128 + SIGKILL)

            try await runWorkers(url: url, run: run.name) {
                try await connection.count("SELECT count(*) FROM verdicts") == 400
            }
            #expect(try await connection.count("SELECT count(*) FROM votes") == 800)
            #expect(try await connection.count("SELECT count(*) FROM jobs") == 0)
            // The killed worker's jobs were taken back after their leases expired, not lost.
            #expect(try await connection.count("SELECT count(*) FROM votes WHERE attempts > 1") > 0)
            #expect(
                try await connection.count(
                    "SELECT count(*) FROM examples WHERE jobs_open <> 0 OR state <> 'decided'") == 0)
        }
    }

    @Test func workersAndReducersCarryOnAcrossAServerRestart() async throws {
        // A server of its own, so that restarting it disturbs no other test.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("jury-restart-\(UUID())").path
        let url = try await postgresScript(["start", directory])
        defer {
            _ = try? runScript(["stop", directory])
            try? FileManager.default.removeItem(atPath: directory)
        }
        try await withMockJudges([mockJudge("x-a", seed: 14, latency: 10), mockJudge("x-b", seed: 15, latency: 10)]) {
            baseURL, _ in
            let setup = try await store(url)
            try await setup.migrate(logger: TestDatabase.logger)
            let run = try await createRun(runYAML(models: ["x-a", "x-b"], baseURL: baseURL, maxAttempts: 5), in: setup)
            try await enqueue(try writeCorpus(count: 600), run: run.name, in: setup)
            let restarted = Mutex(false)
            // Alone it takes about 5 s; beside the rest of the suite on 2 cores, 46 to 63 s.
            try await runWorkers(url: url, run: run.name, concurrency: 16, timeout: 240) {
                let watcher = try await connect(url)
                let votes = try await watcher.count("SELECT count(*) FROM votes")
                if votes >= 200, !restarted.withLock({ $0 }) {
                    restarted.withLock { $0 = true }
                    try await postgresScript(["restart", directory])
                    return false
                }
                return try await watcher.count("SELECT count(*) FROM verdicts") == 600
            }
            #expect(restarted.withLock { $0 })
            let check = try await connect(url)
            #expect(try await check.count("SELECT count(*) FROM votes") == 1200)
            #expect(try await check.count("SELECT count(*) FROM jobs") == 0)
            #expect(
                try await check.count("SELECT count(*) FROM examples WHERE jobs_open <> 0 OR state <> 'decided'") == 0)
        }
    }
}
