import Dispatch
import JuryTestSupport
import Synchronization
import Testing

@testable import JuryDomain

/// The one timer that keeps every `withDeadline` of the process.
@Suite("Deadline timer")
struct DeadlineTimerTests {
    @Test func deadlinesFireInTimeAndRemovedOnesNever() async throws {
        let timer = DeadlineTimer()
        // When each fired, against when it was due.
        let fired = Mutex<[Int: (due: UInt64, at: UInt64)]>([:])
        var removed: Set<Int> = []
        for index in 0..<300 {
            // Out of order, some sharing a due time, as concurrent calls with several timeouts are.
            let milliseconds = (index * 37) % 250 + 1
            let due = DispatchTime.now().uptimeNanoseconds + UInt64(milliseconds) * 1_000_000
            let id = timer.add(after: .milliseconds(milliseconds)) {
                let now = DispatchTime.now().uptimeNanoseconds
                fired.withLock { $0[index] = (due, now) }
            }
            if index % 3 == 0 {
                timer.remove(id)
                removed.insert(index)
            }
        }
        // Every deadline is due within 250 ms, but beside the whole suite on two cores the timer's
        // thread may run late: wait for the kept ones (a hang still fails), then a little more, in
        // which a removed one would fire too.
        let kept = Set(0..<300).subtracting(removed)
        try await eventually(timeout: 60, "the kept deadlines to fire") {
            fired.withLock { kept.isSubset(of: $0.keys) }
        }
        try await Task.sleep(for: .milliseconds(300))
        let result = fired.withLock { $0 }
        #expect(Set(result.keys) == kept)
        for (index, times) in result {
            #expect(times.at >= times.due, "deadline \(index) fired early")
        }
        #expect(timer.counts == (pending: 0, places: 0))
    }

    @Test func theHeapStaysInProportionToThePendingDeadlines() {
        let timer = DeadlineTimer()
        // A worker's calls: each sets a two-minute deadline and finishes long before it.
        let pending = (0..<10).map { _ in timer.add(after: .seconds(120)) {} }
        for _ in 0..<100_000 {
            timer.remove(timer.add(after: .seconds(120)) {})
        }
        let counts = timer.counts
        #expect(counts.pending == 10)
        #expect(counts.places <= 2 * 10 + 64, "\(counts.places) places kept for 10 deadlines")
        for id in pending { timer.remove(id) }
    }

    @Test func anEarlierDeadlineAddedLaterStillFiresFirst() async throws {
        let timer = DeadlineTimer()
        let order = Mutex<[String]>([])
        _ = timer.add(after: .seconds(30)) { order.withLock { $0.append("late") } }
        _ = timer.add(after: .milliseconds(20)) { order.withLock { $0.append("early") } }
        try await Task.sleep(for: .milliseconds(300))
        #expect(order.withLock { $0 } == ["early"])
    }
}
