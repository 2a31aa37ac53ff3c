import Foundation
import JuryBench
import JuryDomain
import JuryPostgres
import JuryStore
import JuryTestSupport
import Testing

/// `jury calibrate`, `reduce`, `export` and `import-labels`, as a person runs them.
@Suite("Consensus commands")
struct ConsensusCommandTests {
    func jury(_ arguments: [String], database: String) async throws -> (status: Int32, output: String) {
        try await runJury(arguments + ["--log-level", "error"], database: database)
    }

    @Test(.freshDatabase) func aRunIsCalibratedReducedReviewedAndExported() async throws {
        let judges = [
            mockJudge("c-a", seed: 5, accuracy: 0.9, latency: 1), mockJudge("c-b", seed: 6, accuracy: 0.8, latency: 1),
            mockJudge("c-c", seed: 7, accuracy: 0.7, latency: 1),
        ]
        try await withMockJudges(judges) { baseURL, _ in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let config = try writeFile(runYAML(models: ["c-a", "c-b", "c-c"], baseURL: baseURL))
            #expect(try await jury(["run", "create", "--config", config], database: url).status == 0)
            let requests = ["Customers from Paris", "Write an email", "Customers aged 30", "Find my best customers"]
            let truth = ["ambiguous", "wrong_skill", "missing_capability", "needs_more_context"]
            var corpus = ""
            for index in 0..<80 {
                corpus +=
                    #"{"id":"x\#(index)","request":"\#(requests[index % 4]) #\#(index)","human_label":"\#(truth[index % 4])","source_label":"valid"}"#
                    + "\n"
            }
            #expect(try await jury(["enqueue", "--run", "test", try writeFile(corpus)], database: url).status == 0)
            try await runWorkers(url: url, run: "test") {
                try await connection.count("SELECT count(*) FROM verdicts") == 80
            }

            let table = try await jury(["calibrate", "--run", "test"], database: url)
            #expect(table.status == 0)
            #expect(table.output.contains("calibration of run test on 80 examples"), "\(table.output)")
            #expect(table.output.contains("recommended:"))
            let json = try await jury(["calibrate", "--run", "test", "--json", "--min-coverage", "0.9"], database: url)
            let report = try JSONValue.parse(Data(json.output.utf8))
            #expect(report["examples"] == .integer(80))
            #expect(report["recommendation", "min_coverage"] == .number(0.9))

            let refused = try await jury(["reduce", "--run", "test", "--rule", "quorum:1"], database: url)
            #expect(refused.status == 1)
            #expect(refused.output.contains("quorum: 1 must be more than half of the 3 judges"), "\(refused.output)")
            let reduced = try await jury(["reduce", "--run", "test", "--rule", "majority"], database: url)
            #expect(reduced.status == 0)
            #expect(reduced.output.contains("recomputed 80 verdicts under majority"), "\(reduced.output)")

            // The review file goes to people, who fill in human_label; it comes back.
            let review = scratchPath("review.jsonl")
            #expect(try await jury(["export", "--run", "test", "--review", review], database: url).status == 0)
            let lines = try String(contentsOfFile: review, encoding: .utf8).split(separator: "\n")
            #expect(!lines.isEmpty)
            #expect(FileManager.default.fileExists(atPath: review + ".manifest.json"))
            let labelled = try lines.map { line -> String in
                let id = try #require(JSONValue.parse(Data(line.utf8))["id"]?.text)
                return #"{"id":"\#(id)","human_label":"valid"}"#
            }
            let bad = try writeFile(labelled.joined(separator: "\n") + "\n{\"id\":\"x0\",\"human_label\":\"nope\"}\n")
            let rejected = try await jury(["import-labels", "--run", "test", bad], database: url)
            #expect(rejected.status == 1)
            #expect(rejected.output.contains("label 'nope' is not in the run's taxonomy"), "\(rejected.output)")
            #expect(rejected.output.contains("nothing was imported"))
            let imported = try await jury(
                ["import-labels", "--run", "test", try writeFile(labelled.joined(separator: "\n"))], database: url)
            #expect(imported.status == 0, "\(imported.output)")
            #expect(imported.output.contains("imported \(lines.count) labels"))
            #expect(
                try await connection.count(
                    "SELECT count(*) FROM verdicts WHERE decided_by = 'people' AND label = 'valid'")
                    == lines.count)

            // Chat needs a training section, and says so.
            let chat = try await jury(["export", "--run", "test", "--format", "chat", review], database: url)
            #expect(chat.status == 1)
            #expect(chat.output.contains("has no `training` section"), "\(chat.output)")
            let status = try await jury(["status", "--run", "test"], database: url)
            #expect(status.output.contains("decided by people: \(lines.count)"), "\(status.output)")
        }
    }
}
