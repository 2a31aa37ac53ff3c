import Foundation
import JuryDomain
import JuryTestSupport
import Testing

@Suite("States and rules")
struct StatesTests {
    /// The values a CHECK constraint of Schema/001_queue.sql allows for `column` of `table`.
    private func allowed(_ table: String, column: String = "state") throws -> Set<String> {
        let sql = try String(
            contentsOfFile: repositoryRoot.appendingPathComponent("Schema/001_queue.sql").path, encoding: .utf8)
        let body = try #require(sql.components(separatedBy: "CREATE TABLE \(table) (").dropFirst().first)
        let check = try #require(body.components(separatedBy: "CHECK (\(column) IN (").dropFirst().first)
        let list = try #require(check.components(separatedBy: "))").first)
        return Set(list.split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: " '\n")) })
    }

    @Test func theSwiftStatesAreTheSchemasStates() throws {
        #expect(Set(RunState.allCases.map(\.rawValue)) == (try allowed("runs")))
        #expect(Set(ExampleState.allCases.map(\.rawValue)) == (try allowed("examples")))
        #expect(Set(JobState.allCases.map(\.rawValue)) == (try allowed("jobs")))
        #expect(Set(Verdict.Status.allCases.map(\.rawValue)) == (try allowed("verdicts", column: "status")))
    }

    @Test func rulesReadBackWhatTheyWrite() {
        for rule in [ConsensusRule.unanimous, .quorum(3)] {
            #expect(ConsensusRule(description: rule.description) == rule)
        }
        for text in ["", "quorum", "quorum:0", "quorum:x", "Unanimous"] {
            #expect(ConsensusRule(description: text) == nil)
        }
    }
}
