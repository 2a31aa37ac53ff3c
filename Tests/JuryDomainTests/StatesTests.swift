import Foundation
import JuryDomain
import JuryTestSupport
import Testing

@Suite("States and rules")
struct StatesTests {
    /// The values the schema's CHECK constraint allows for `column` of `table`: the last
    /// migration that replaced the constraint (`ADD CONSTRAINT table_column_check`) or added the
    /// column, else the table's creation.
    private func allowed(_ table: String, column: String = "state") throws -> Set<String> {
        let folder = repositoryRoot.appendingPathComponent("Schema")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".sql") }
            .sorted()
        var body: String?
        for file in files {
            let sql = try String(contentsOfFile: folder.appendingPathComponent(file).path, encoding: .utf8)
            if let created = sql.components(separatedBy: "CREATE TABLE \(table) (").dropFirst().first,
                let columns = created.components(separatedBy: "\n);").first, columns.contains("CHECK (\(column) IN (")
            {
                body = String(columns.components(separatedBy: "\n    \(column) ").dropFirst().first ?? columns)
            }
            for marker in ["ADD CONSTRAINT \(table)_\(column)_check", "ADD COLUMN \(column) "] {
                if let found = sql.components(separatedBy: marker).dropFirst().last,
                    found.prefix(200).contains("CHECK (\(column) IN (")
                {
                    body = found
                }
            }
        }
        let found = try #require(body)
        let check = try #require(found.components(separatedBy: "CHECK (\(column) IN (").dropFirst().first)
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
