import Foundation
import JuryDomain
import JuryStore
import JuryTestSupport
import Testing

@Suite("Runs")
struct RunTests {
    let valid = runYAML(models: ["a", "b", "c", "d"], baseURL: "http://127.0.0.1:8089/v1")

    @Test(.freshDatabase) func storingADifferentConfigUnderAnExistingNameIsRefused() async throws {
        let url = try TestDatabase.url
        let jury = try await store(url)
        let config = try RunConfig.parse(yaml: valid, file: "run.yaml")
        #expect(try await jury.createRun(config).created)
        #expect(try await jury.createRun(config).created == false)
        var changed = config
        changed.maxAttempts = 9
        await #expect(throws: JuryError.self) { try await jury.createRun(changed) }
    }
}
