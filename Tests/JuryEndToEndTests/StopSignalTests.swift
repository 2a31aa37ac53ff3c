import Foundation
import JuryBench
import JuryDomain
import JuryTestSupport
import Testing

@Suite("Stop signals")
struct StopSignalTests {
    /// SIGTERM sent at any moment of a process's start ends it: by its default action before the
    /// process catches it, gracefully after. None is lost. With a dispatch signal source, one
    /// that landed as the source was set up could stay pending unread, and the process ran on
    /// until killed (1 in 120 starts of a release build, by hand; the debug build the tests
    /// run missed it in 300, so this test guards the behaviour rather than reproduce the race).
    @Test func aStopSignalSentWhileAProcessStartsIsNeverLost() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: juryBinary), "build the jury binary first")
        let config = repositoryRoot.appendingPathComponent("deploy/demo/mock-judges.yaml").path
        var statuses: [Int32] = []
        for delay in stride(from: 0, through: 150, by: 10) {
            let judge = try Subprocess.spawn(
                juryBinary, ["mock-judge", "--port", "0", "--config", config], outputPath: scratchPath("judge.out"))
            try await Task.sleep(for: .milliseconds(delay))
            judge.kill(SIGTERM)
            do {
                statuses.append(try await withDeadline(.seconds(30)) { await judge.exitStatus() })
            } catch {
                judge.kill(SIGKILL)
                Issue.record("a SIGTERM sent \(delay) ms after the start was lost: the process ran on")
            }
        }
        #expect(statuses.allSatisfy { $0 == 0 || $0 == 128 + SIGTERM }, "\(statuses)")
        // Once the process is up, the signal stops it gracefully.
        #expect(statuses.last == 0, "\(statuses)")
    }
}
