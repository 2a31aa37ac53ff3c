import Foundation
import JuryDomain
import JuryTestSupport
import Testing

@Suite("States and rules")
struct StatesTests {
    /// The values the baseline's CHECK constraint allows for `column` of `table`
    /// (Schema/100_baseline/1_tables.sql: `column ... CHECK (column IN (...))` in its CREATE TABLE).
    private func allowed(_ table: String, column: String = "state") throws -> Set<String> {
        let file = repositoryRoot.appendingPathComponent("Schema/100_baseline/1_tables.sql")
        let sql = try String(contentsOf: file, encoding: .utf8)
        let created = try #require(sql.components(separatedBy: "CREATE TABLE \(table) (").dropFirst().first)
        let columns = try #require(created.components(separatedBy: "\n)").first)
        let definition = try #require(columns.components(separatedBy: "\n    \(column) ").dropFirst().first)
        let check = try #require(definition.components(separatedBy: "CHECK (\(column) IN (").dropFirst().first)
        let list = try #require(check.components(separatedBy: "))").first)
        return Set(list.split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: " '\n")) })
    }

    @Test func theSwiftStatesAreTheSchemasStates() throws {
        #expect(Set(RunState.allCases.map(\.rawValue)) == (try allowed("runs")))
        #expect(Set(ExampleState.allCases.map(\.rawValue)) == (try allowed("examples")))
        #expect(Set(JobState.allCases.map(\.rawValue)) == (try allowed("jobs")))
        #expect(Set(Verdict.Status.allCases.map(\.rawValue)) == (try allowed("verdicts", column: "status")))
        #expect(Set(SourceOutcome.allCases.map(\.rawValue)) == (try allowed("verdicts", column: "outcome")))
        #expect(Set(DecidedBy.allCases.map(\.rawValue)) == (try allowed("verdicts", column: "decided_by")))
    }

    @Test func rulesReadBackWhatTheyWrite() {
        for rule in [
            ConsensusRule.unanimous, .quorum(3), ConsensusRule(.majority), ConsensusRule(.weighted),
            ConsensusRule(.dawidSkene),
        ] {
            #expect(ConsensusRule(description: rule.description) == rule)
        }
        for text in ["", "quorum", "quorum:0", "quorum:x", "Unanimous", "plurality"] {
            #expect(ConsensusRule(description: text) == nil)
        }
    }
}
