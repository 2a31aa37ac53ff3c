import Synchronization
import Testing

@testable import JuryRuntime

@Suite("Wakeup")
struct WakeupTests {
    /// A worker raises its claimer's wakeup for every batch it records: millions of times in a
    /// long run. The hook it calls on each raise must stay the closure it was given. It used to
    /// gain two reabstraction thunks per raise, so each call went deeper into the stack and took
    /// longer, and releasing the chain at the end of a ten-million-job run crashed the process.
    @Test func theHookIsCalledFromTheSameDepthOnEveryRaise() {
        let wakeup = Wakeup()
        let calls = Atomic(0)
        let deepest = Atomic(UInt.max)
        let shallowest = Atomic(UInt.min)
        wakeup.alsoOnRaise {
            calls.add(1, ordering: .relaxed)
            var local = 0
            let address = withUnsafeMutablePointer(to: &local) { UInt(bitPattern: $0) }
            deepest.store(min(deepest.load(ordering: .relaxed), address), ordering: .relaxed)
            shallowest.store(max(shallowest.load(ordering: .relaxed), address), ordering: .relaxed)
        }
        for _ in 0..<10_000 { wakeup.raise() }
        #expect(calls.load(ordering: .relaxed) == 10_000)
        // The stack grows down: the spread of the hook's frame addresses is how much deeper the
        // last calls ran than the first. Ten thousand raises with a chain: hundreds of kilobytes.
        #expect(shallowest.load(ordering: .relaxed) - deepest.load(ordering: .relaxed) < 4096)
        #expect(wakeup.consume())
    }
}
