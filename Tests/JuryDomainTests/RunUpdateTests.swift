import Foundation
import JuryDomain
import JuryTestSupport
import Testing

/// What `jury run update` may change on a live run, and what it refuses.
@Suite("Run updates")
struct RunUpdateTests {
    let yaml = runYAML(models: ["a", "b"], baseURL: "http://127.0.0.1:8089/v1")

    func config(_ text: String) throws -> RunConfig { try RunConfig.parse(yaml: text, file: "run.yaml") }

    @Test func judgesLimitsPricesBudgetAndRetriesChangeAndEachChangeIsNamed() throws {
        let old = try config(yaml)
        let edited = yaml.replacingOccurrences(
            of: "model: b,",
            with: "model: b2, parameters: { reasoning_effort: low }, requests_per_minute: 60, timeout_seconds: 30,"
        ).replacingOccurrences(of: "max_attempts: 3", with: "max_attempts: 6\nbudget_usd: 25")
        let changes = try old.changes(to: try config(edited), file: "run.yaml")
        #expect(
            changes == [
                "budget_usd: (none) -> 25",
                "judges[j2].model: \"b\" -> \"b2\"",
                "judges[j2].parameters.reasoning_effort: (none) -> \"low\"",
                "judges[j2].requests_per_minute: (none) -> 60",
                "judges[j2].timeout_seconds: 120 -> 30",
                "max_attempts: 3 -> 6",
            ], "\(changes)")
        #expect(try old.changes(to: old, file: "run.yaml").isEmpty)
    }

    @Test func aLimitLeftOutIsRefusedSinceTheAccountWouldKeepIt() throws {
        let limited = yaml.replacingOccurrences(of: "model: b,", with: "model: b, requests_per_minute: 60,")
        let error = #expect(throws: JuryError.self) {
            try config(limited).changes(to: try config(yaml), file: "run.yaml")
        }
        #expect(error?.message.contains("judges[1].requests_per_minute: cannot be left out") == true)
        let raised = limited.replacingOccurrences(of: "requests_per_minute: 60", with: "requests_per_minute: 600")
        #expect(try config(limited).changes(to: try config(raised), file: "run.yaml").count == 1)
    }

    @Test(arguments: [
        ("description: can be done", "description: may be done", "run.yaml: taxonomy[0]: cannot change"),
        ("user: \"Request: {{request}}\"", "user: \"Ask: {{request}}\"", "run.yaml: prompt: cannot change"),
        ("rule: unanimous", "rule: quorum\n  quorum: 2", "run.yaml: consensus: cannot change on a live run"),
        ("name: j2,", "name: j9,", "run.yaml: judges: the panel's names cannot change (j1, j2 -> j1, j9)"),
        ("name: test", "name: other", "run.yaml: name: is 'other', not 'test'"),
    ])
    func whatVotesWereCastUnderIsRefusedNamingTheField(replacing: String, with replacement: String, message: String)
        throws
    {
        let edited = yaml.replacingOccurrences(of: replacing, with: replacement)
        #expect(edited != yaml, "the test's replacement did not apply")
        let error = #expect(throws: JuryError.self) {
            try config(yaml).changes(to: try config(edited), file: "run.yaml")
        }
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "no error")")
    }
}
