import Foundation
import JuryDomain
import JuryPostgres
import JuryRuntime
import JuryStore
import JuryTestSupport
import ServiceLifecycle
import Testing

extension PipelineTests {
    @Test(.freshDatabase) func aStopCancelsCallsToAHungJudgeAfterTheDrainTime() async throws {
        try await withMockJudges([mockJudge("h-a", seed: 16, latency: 60_000)]) { baseURL, _ in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let jury = try await store(url)
            let run = try await createRun(runYAML(models: ["h-a"], baseURL: baseURL), in: jury)
            try await enqueue(try writeCorpus(count: 20), run: run.name, in: jury)
            var options = WorkerOptions()
            options.drainSeconds = 0.5
            let stopped = try await untilShutdown([testWorker(url: url, options: options)]) {
                try await eventually("calls in flight") {
                    try await connection.count("SELECT count(*) FROM jobs WHERE state = 'running'") == 20
                }
                return ContinuousClock.now
            }
            // The calls would take a minute; the worker gave up on them after the drain time. The
            // bound tells that from waiting them out, with room for a loaded machine (a full
            // suite on two cores once took 15.9 s where the test alone takes 2).
            #expect(ContinuousClock.now - stopped < .seconds(45))
            #expect(
                try await connection.count("SELECT count(*) FROM jobs WHERE state = 'pending' AND attempts = 0")
                    == 20)
        }
    }
}
