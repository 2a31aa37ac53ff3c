import Foundation
import JuryBench
import JuryTestSupport
import Testing

@Suite("Subprocess")
struct SubprocessTests {
    /// A child keeps the signals its parent ignores: when `jury bench` ignored SIGINT and SIGTERM
    /// to receive them through a dispatch source, the pgbench of an interrupted bench ran on to
    /// its end. A child starts with every signal at its default, and a cancelled wait ends it.
    @Test func aCancelledWaitEndsTheChildEvenWhenTheParentIgnoresSIGTERM() async throws {
        signal(SIGTERM, SIG_IGN)
        let child: Subprocess
        do {
            defer { signal(SIGTERM, SIG_DFL) }
            child = try Subprocess.spawn("/bin/sleep", ["120"])
        }
        let waiting = Task { await child.exitStatus() }
        waiting.cancel()
        #expect(await waiting.value == 128 + SIGTERM)
    }
}
