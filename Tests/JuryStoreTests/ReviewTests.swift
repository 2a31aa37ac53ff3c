import Foundation
import JuryDomain
import JuryPostgres
import JuryRuntime
import JuryStore
import JuryTestSupport
import Testing

/// Rules, reductions, conflicts with the production label, early decision, calibration, exports
/// and people's labels, on PostgreSQL. Votes are cast through the store's own claim and record,
/// with labels the test chooses, so that every outcome is known in advance.
/// People's labels, calibration and exports, on PostgreSQL.
@Suite("Review and calibration")
struct ReviewTests {
    typealias Fixture = ConsensusFixture

    @Test(.freshDatabase) func peoplesLabelsComeBackAndDecide() async throws {
        let (connection, jury, run) = try await Fixture.setUp()
        // The review file holds the disagreements and the verdicts against the production label.
        let review = scratchPath("review.jsonl")
        let written = try await Exporter.export(
            run: run.name, format: .jsonl, filter: ExportFilter(review: true), to: review, from: jury)
        let lines = try String(contentsOfFile: review, encoding: .utf8).split(separator: "\n")
        let ids = Set(try lines.map { try #require(JSONValue.parse(Data($0.utf8))["id"]?.text) })
        #expect(ids == ["e1", "e2", "e3", "e4", "e5", "e6"])
        #expect(written.written == 6)
        #expect(lines[0].contains("\"rationale\": \"j1 says"))

        // All or nothing: one unknown id, and nothing is imported.
        let bad = try writeFile(#"{"id":"e3","label":"valid"}"# + "\n" + #"{"id":"nope","label":"valid"}"# + "\n")
        let config = run.config
        let unknown = await #expect(throws: JuryError.self) {
            try await Reduction.importLabels(try LabelFile.read(path: bad, config: config), run: run.name, store: jury)
        }
        #expect(unknown?.message.contains("'nope' (line 2)") == true)
        #expect(try await connection.count("SELECT count(*) FROM examples WHERE reviewed_at IS NOT NULL") == 0)
        for (text, message) in [
            (
                #"{"id":"e3","label":"valid"}"# + "\n" + #"{"id":"e3","label":"ambiguous"}"#,
                ":2: id 'e3' was labelled already on line 1"
            ),
            (#"{"id":"e3","label":"maybe"}"#, ":1: label 'maybe' is not in the run's taxonomy"),
            (#"{"id":"e3"}"#, ":1: needs \"label\""),
            ("not json", ":1: not a JSON object"),
        ] {
            let error = #expect(throws: JuryError.self) {
                try LabelFile.read(path: try writeFile(text), config: config)
            }
            #expect(error?.message.contains(message) == true, "\(error?.message ?? "")")
        }

        // A review line left as exported (human_label null) is passed over, not an error.
        let partly = try LabelFile.contents(
            path: try writeFile(#"{"id":"e5","human_label":null}"# + "\n" + #"{"id":"e6","human_label":"valid"}"#),
            config: config)
        #expect(partly.labels.map(\.externalID) == ["e6"] && partly.unreviewed == 1)
        let none = #expect(throws: JuryError.self) {
            try LabelFile.read(path: try writeFile(#"{"id":"e5","human_label":null}"#), config: config)
        }
        #expect(none?.message.contains("1 lines still have \"human_label\": null") == true)

        // People settle e3 and e4; their labels decide at once, and the panel's verdicts are kept.
        let good = try writeFile(
            #"{"id":"e3","human_label":"ambiguous"}"# + "\n\n" + #"{"id":"e4","label":"valid"}"# + "\n")
        let report = try await Reduction.importLabels(
            try LabelFile.read(path: good, config: config), run: run.name, store: jury)
        #expect(report.labelled == 2 && report.replaced == 2)
        var verdicts = try await Fixture.verdicts(connection)
        #expect(verdicts["e3"]?["label"] == "ambiguous" && verdicts["e3"]?["decided_by"] == "people")
        #expect(verdicts["e3"]?["outcome"] == "clarify")
        #expect(verdicts["e4"]?["label"] == "valid" && verdicts["e4"]?["outcome"] == "keep")
        #expect(try await connection.count("SELECT count(*) FROM verdict_history") == 2)
        // Under another rule too, and they leave the next review.
        _ = try await Reduction.reduce(run: run.name, rule: .quorum(3), store: jury)
        verdicts = try await Fixture.verdicts(connection)
        #expect(verdicts["e3"]?["label"] == "ambiguous" && verdicts["e3"]?["decided_by"] == "people")
        let again = try await Exporter.export(
            run: run.name, format: .jsonl, filter: ExportFilter(review: true), to: review, from: jury)
        #expect(again.written < written.written)
        // The next calibration counts them with people's labels.
        let calibration = try await Calibrator.calibrate(run: run.name, minCoverage: 0.5, minKappa: 0.75, store: jury)
        #expect(calibration.examples == 7)
        try await expectCountsMatchTables(connection)
    }

    @Test(.freshDatabase) func calibrationMeasuresThePanelAndTheChatExportWritesTheReplies() async throws {
        let (connection, jury, run) = try await Fixture.setUp()
        let calibration = try await Calibrator.calibrate(run: run.name, minCoverage: 0.5, minKappa: 0.75, store: jury)
        // Seven examples carry a human label; j1 voted on six of them, all right; j4 on seven, five right.
        #expect(calibration.examples == 7)
        let j1 = try #require(calibration.judges.first { $0.judge == "j1" })
        #expect(j1.votes == 6 && j1.accuracy == 1)
        let j4 = try #require(calibration.judges.first { $0.judge == "j4" })
        #expect(j4.votes == 7 && abs((j4.accuracy ?? 0) - 5.0 / 7) < 1e-9)
        #expect(calibration.recommendation.weakJudges.contains { $0.judge == "j4" })
        let unanimous = try #require(calibration.rules.first { $0.rule == "unanimous" })
        #expect(unanimous.agreed == 3 && abs(unanimous.coverage - 3.0 / 7) < 1e-9)
        #expect(unanimous.precision == 1)
        #expect(calibration.rules.map(\.rule).contains("dawid-skene"))
        #expect(calibration.table.contains("recommended:"))
        #expect(try await connection.count("SELECT count(*) FROM calibrations") == 1)
        // weighted without weights takes the calibration's accuracies.
        _ = try await Reduction.reduce(run: run.name, rule: ConsensusRule(.weighted), store: jury)
        #expect(abs((try await jury.findRun(run.name).config.rule.weights?["j4"] ?? 0) - 5.0 / 7) < 1e-9)
        _ = try await Reduction.reduce(run: run.name, rule: .unanimous, store: jury)

        let path = scratchPath("chat.jsonl")
        let report = try await Exporter.export(
            run: run.name, format: .chat, filter: ExportFilter(), to: path, from: jury)
        // Agreed: e0 and e7 accept (no training.assistant: left out), e1 refuses, e2 asks to clarify.
        #expect(report.written == 2)
        #expect(report.skipped[ChatFormat.Skip.acceptedWithoutAssistant.rawValue] == 2)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.contains("I build segments only.") && $0.contains("\"role\":\"system\"") })
        #expect(lines.contains { $0.contains("What do you mean by segment e2?") })
        let manifest = try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: report.manifestPath)))
        #expect(manifest["config_sha256"]?.text?.count == 64)
        #expect(manifest["rule"]?.text == "unanimous")
        #expect(manifest["verdicts", "outcome", "relabel"] == .integer(1))
        #expect(manifest["calibration", "examples"] == .integer(7))
        // Filters: by label and by outcome.
        let filtered = try await Exporter.export(
            run: run.name, format: .jsonl, filter: ExportFilter(outcome: .clarify), to: path, from: jury)
        #expect(filtered.written == 1)
        await #expect(throws: JuryError.self) {
            try await Exporter.export(
                run: run.name, format: .jsonl, filter: ExportFilter(label: "nonsense"), to: path, from: jury)
        }
    }

    /// The disagreements view lists the panel's verdicts that are not agreed or that people
    /// marked to relabel or clarify, and reads them through their partial index: without it,
    /// reading the view's first rows scanned every verdict (268 ms at 2.5M).
    @Test(.freshDatabase) func theDisagreementsViewListsTheDisputedVerdictsThroughTheirIndex() async throws {
        let (connection, _, _) = try await Fixture.setUp()
        let disputed = Set(
            try await Fixture.verdicts(connection).filter { _, verdict in
                verdict["decided_by"] == "panel"
                    && (verdict["status"] != "agreed" || ["relabel", "clarify"].contains(verdict["outcome"] ?? nil))
            }.keys)
        #expect(!disputed.isEmpty)
        let listed = Set(
            try await connection.query("SELECT external_id FROM jury_disagreements").map {
                try $0.decode("external_id") as String
            })
        #expect(listed == disputed)
        // Sequential scans off: the plan shows whether the view's condition proves the index's.
        try await connection.execute(script: "SET enable_seqscan = off")
        let plan = try await connection.query("EXPLAIN SELECT * FROM jury_disagreements LIMIT 100").map {
            try $0.decode("QUERY PLAN") as String
        }
        #expect(plan.contains { $0.contains("verdicts_disputed") }, "\(plan.joined(separator: "\n"))")
    }
}
