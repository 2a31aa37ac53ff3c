import Foundation
import JuryDomain
import JuryPostgres
import JurySchema
import JuryStore
import JuryTestSupport
import Testing

/// The web app's review queue on PostgreSQL: leases, answers that decide as `jury import-labels`
/// does, skips, undo, and what is refused without changing anything.
@Suite("Review queue")
struct ReviewQueueTests {
    typealias Fixture = ConsensusFixture

    static func addReviewer(_ name: String, role: ReviewerRole = .reviewer, to jury: Store) async throws -> Reviewer {
        // Any 32 bytes do here, as long as each reviewer's differ: the name's, padded.
        let hex = name.utf8.map { String(format: "%02x", $0) }.joined()
        let hash = hex + String(repeating: "0", count: 64 - hex.count)
        return try await jury.addReviewer(name: name, role: role, tokenHash: hash)
    }

    @Test(.freshDatabase) func reviewersTakeTheMostSplitFirstUnderLeasesAndAnswersDecide() async throws {
        let (connection, jury, run) = try await Fixture.setUp()
        let ada = try await Self.addReviewer("ada", to: jury)
        let bob = try await Self.addReviewer("bob", to: jury)
        let duplicate = await #expect(throws: JuryError.self) { try await Self.addReviewer("ada", to: jury) }
        #expect(duplicate?.message.contains("already exists") == true)

        // The most split first; a reloaded page gets the same example; two reviewers never share one.
        let lowest = try await connection.count(
            "SELECT min(agreement * 1000)::int FROM verdicts WHERE decided_by = 'panel' AND status <> 'agreed'")
        let first = try #require(try await jury.claimReview(run: run, reviewerID: ada.id, leaseSeconds: 600))
        #expect(Int((first.agreement * 1000).rounded()) == lowest)
        let again = try #require(try await jury.claimReview(run: run, reviewerID: ada.id, leaseSeconds: 600))
        #expect(again.exampleID == first.exampleID && again.leaseToken == first.leaseToken)
        let other = try #require(try await jury.claimReview(run: run, reviewerID: bob.id, leaseSeconds: 600))
        #expect(other.exampleID != first.exampleID)
        #expect(first.votes.count >= 2 && first.votes.allSatisfy { $0.rationale?.isEmpty == false })

        // Refused, and nothing changes: a label outside the taxonomy, another's lease, a forged token.
        let historyBefore = try await connection.count("SELECT count(*) FROM verdict_history")
        let outside = await #expect(throws: JuryError.self) {
            try await jury.answerReview(
                run: run, reviewerID: ada.id, exampleID: first.exampleID, leaseToken: first.leaseToken, label: "maybe")
        }
        #expect(outside?.message.contains("'maybe' is not a label of run") == true)
        let notMine = await #expect(throws: JuryError.self) {
            try await jury.answerReview(
                run: run, reviewerID: ada.id, exampleID: other.exampleID, leaseToken: other.leaseToken, label: "valid")
        }
        #expect(notMine?.message.contains("you no longer hold example") == true)
        let forged = await #expect(throws: JuryError.self) {
            try await jury.answerReview(
                run: run, reviewerID: ada.id, exampleID: first.exampleID, leaseToken: "' OR 1=1 --", label: "valid")
        }
        #expect(forged?.message.contains("is not a lease token") == true)
        #expect(try await connection.count("SELECT count(*) FROM verdict_history") == historyBefore)
        #expect(try await connection.count("SELECT count(*) FROM review_answers") == 0)

        // An answer decides at once, as import-labels does; the same answer twice is refused.
        try await jury.answerReview(
            run: run, reviewerID: ada.id, exampleID: first.exampleID, leaseToken: first.leaseToken, label: "ambiguous")
        let decided = try await connection.query(
            """
            SELECT v.label, v.decided_by, v.status, e.human_label, e.reviewed_at IS NOT NULL AS reviewed
            FROM verdicts v JOIN examples e ON e.id = v.example_id WHERE v.example_id = \(first.exampleID)
            """)[0]
        #expect(decided["label"] == "ambiguous" && decided["decided_by"] == "people" && decided["status"] == "agreed")
        #expect(decided["human_label"] == "ambiguous" && decided["reviewed"] == "t")
        #expect(try await connection.count("SELECT count(*) FROM verdict_history") == historyBefore + 1)
        let twice = await #expect(throws: JuryError.self) {
            try await jury.answerReview(
                run: run, reviewerID: ada.id, exampleID: first.exampleID, leaseToken: first.leaseToken, label: "valid")
        }
        #expect(twice?.message.contains("no longer hold") == true)
        #expect(try await connection.count("SELECT count(*) FROM review_answers") == 1)

        // Undo gives back the panel's verdict and the label the example had, and the example
        // itself, instead of the one the reviewer was shown meanwhile.
        let meanwhile = try #require(try await jury.claimReview(run: run, reviewerID: ada.id, leaseSeconds: 600))
        let humanBefore = Fixture.corpus.first { $0.id == first.externalID }?.human
        let undone = try await jury.undoLastReview(run: run, reviewerID: ada.id, leaseSeconds: 600)
        #expect(undone == first.exampleID)
        let back = try await connection.query(
            """
            SELECT v.decided_by, e.human_label, e.reviewed_at IS NULL AS unreviewed
            FROM verdicts v JOIN examples e ON e.id = v.example_id WHERE v.example_id = \(first.exampleID)
            """)[0]
        #expect(back["decided_by"] == "panel" && back["human_label"] == humanBefore && back["unreviewed"] == "t")
        let held = try #require(try await jury.claimReview(run: run, reviewerID: ada.id, leaseSeconds: 600))
        #expect(held.exampleID == first.exampleID && held.leaseToken != first.leaseToken)
        #expect(
            try await connection.count("SELECT count(*) FROM review_leases WHERE example_id = \(meanwhile.exampleID)")
                == 0)
        #expect(try await jury.undoLastReview(run: run, reviewerID: ada.id, leaseSeconds: 600) == nil)

        // A skipped example is not offered to the same reviewer again, but is to others.
        try await jury.skipReview(run: run, reviewerID: ada.id, exampleID: held.exampleID, leaseToken: held.leaseToken)
        let next = try #require(try await jury.claimReview(run: run, reviewerID: ada.id, leaseSeconds: 600))
        #expect(next.exampleID != held.exampleID && next.exampleID != other.exampleID)

        // A lease that ran out: the example goes to the next reviewer, and the late answer is refused.
        try await connection.query(
            "UPDATE review_leases SET leased_until = now() - interval '1 second' WHERE reviewer_id = \(bob.id)")
        let carol = try await Self.addReviewer("carol", to: jury)
        var offered: [Int64] = []
        while let item = try await jury.claimReview(run: run, reviewerID: carol.id, leaseSeconds: 600) {
            offered.append(item.exampleID)
            try await jury.skipReview(
                run: run, reviewerID: carol.id, exampleID: item.exampleID, leaseToken: item.leaseToken)
        }
        #expect(offered.contains(other.exampleID) && !offered.contains(next.exampleID))
        let late = await #expect(throws: JuryError.self) {
            try await jury.answerReview(
                run: run, reviewerID: bob.id, exampleID: other.exampleID, leaseToken: other.leaseToken, label: "valid")
        }
        #expect(late?.message.contains("nothing was changed") == true)
        let progress = try await jury.reviewProgress(run: run, reviewerID: ada.id)
        #expect(progress.answered == 0 && progress.leased == 1 && progress.waiting == 6)
    }

    @Test(.freshDatabase) func reviewersAskingAtOnceNeverShareAnExample() async throws {
        let (connection, jury, run) = try await Fixture.setUp()
        let url = try TestDatabase.url
        var reviewers: [Reviewer] = []
        for name in ["r1", "r2", "r3", "r4"] { reviewers.append(try await Self.addReviewer(name, to: jury)) }
        // Each on a connection of its own, all at once, answering until the queue is empty.
        let answered = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for reviewer in reviewers {
                group.addTask {
                    let own = try await store(url)
                    var mine: [Int64] = []
                    while let item = try await own.claimReview(run: run, reviewerID: reviewer.id, leaseSeconds: 600) {
                        try await own.answerReview(
                            run: run, reviewerID: reviewer.id, exampleID: item.exampleID, leaseToken: item.leaseToken,
                            label: "valid")
                        mine.append(item.exampleID)
                    }
                    return mine
                }
            }
            return try await group.reduce(into: []) { $0.append(contentsOf: $1) }
        }
        #expect(answered.count == 6 && Set(answered).count == 6)
        #expect(try await connection.count("SELECT count(*) FROM review_answers") == 6)
        #expect(try await connection.count("SELECT count(*) FROM verdicts WHERE decided_by = 'people'") == 6)
    }

    /// With `review.per_item: 2` each example is labelled blind by two people: it is decided
    /// when they agree, and waits for an owner when they do not.
    @Test(.freshDatabase) func twoPeopleLabelBlindAndAnOwnerSettlesTheirConflicts() async throws {
        let (connection, jury, run) = try await Fixture.setUp(
            "rule: unanimous\n  early_decision: false\nreview: { per_item: 2 }")
        #expect(run.config.reviewersPerItem == 2)
        let ada = try await Self.addReviewer("ada", to: jury)
        let bob = try await Self.addReviewer("bob", to: jury)
        let cy = try await Self.addReviewer("cy", to: jury)
        let owner = try await Self.addReviewer("own", role: .owner, to: jury)
        func claim(_ reviewer: Reviewer, adjudicate: Bool = false) async throws -> ReviewItem? {
            try await jury.claimReview(run: run, reviewerID: reviewer.id, leaseSeconds: 600, adjudicate: adjudicate)
        }
        func answer(_ reviewer: Reviewer, _ item: ReviewItem, _ label: String) async throws -> Bool {
            try await jury.answerReview(
                run: run, reviewerID: reviewer.id, exampleID: item.exampleID, leaseToken: item.leaseToken, label: label)
        }
        func decidedBy(_ item: ReviewItem) async throws -> String? {
            try await connection.query(
                "SELECT decided_by || ':' || coalesce(label, '') AS d FROM verdicts WHERE example_id = \(item.exampleID)"
            )
            .first?["d"] ?? nil
        }

        // Two people hold the same example at once, each blind to the other; a third gets another.
        let x = try #require(try await claim(ada))
        let xAgain = try #require(try await claim(bob))
        let y = try #require(try await claim(cy))
        #expect(xAgain.exampleID == x.exampleID && y.exampleID != x.exampleID)
        #expect(x.answers.isEmpty)

        // The first answer decides nothing; the second, agreeing, decides.
        #expect(try await answer(ada, x, "valid") == false)
        #expect(try await decidedBy(x)?.hasPrefix("panel") == true)
        #expect(try await answer(bob, xAgain, "valid") == true)
        #expect(try await decidedBy(x) == "people:valid")

        // Two who differ: a conflict, for an owner who did not label it, who sees both labels.
        #expect(try await answer(cy, y, "ambiguous") == false)
        let yAgain = try #require(try await claim(ada))
        #expect(yAgain.exampleID == y.exampleID)
        #expect(try await answer(ada, yAgain, "valid") == false)
        var progress = try await jury.reviewProgress(run: run, reviewerID: owner.id)
        #expect(progress.conflicts == 1 && progress.doublyLabelled == 2)
        #expect(progress.peopleKappa != nil)
        #expect(try await claim(ada, adjudicate: true) == nil)
        let conflict = try #require(try await claim(owner, adjudicate: true))
        #expect(conflict.exampleID == y.exampleID)
        #expect(conflict.answers.map(\.label).sorted() == ["ambiguous", "valid"])
        #expect(try await answer(owner, conflict, "ambiguous") == true)
        #expect(try await decidedBy(y) == "people:ambiguous")
        progress = try await jury.reviewProgress(run: run, reviewerID: owner.id)
        #expect(progress.conflicts == 0)

        // Undoing the adjudication puts the conflict back, held by the owner.
        let undone = try await jury.undoLastReview(run: run, reviewerID: owner.id, leaseSeconds: 600, adjudicated: true)
        #expect(undone == y.exampleID)
        #expect(try await decidedBy(y)?.hasPrefix("panel") == true)
        #expect(try await claim(owner, adjudicate: true)?.exampleID == y.exampleID)

        // Undoing one of two agreeing answers takes the people's verdict back until it is given again.
        #expect(try await jury.undoLastReview(run: run, reviewerID: bob.id, leaseSeconds: 600) == x.exampleID)
        #expect(try await decidedBy(x)?.hasPrefix("panel") == true)
        let back = try #require(try await claim(bob))
        #expect(back.exampleID == x.exampleID)
        #expect(try await answer(bob, back, "valid") == true)
        #expect(try await decidedBy(x) == "people:valid")
        #expect(
            try await connection.count("SELECT count(*) FROM review_answers WHERE decided AND undone_at IS NULL") == 1)
    }

    /// A database with verdicts from before the review queue counts its disputed ones once the
    /// migration is applied, as if the counter had always been kept.
    @Test(.freshDatabase) func verdictsDecidedBeforeTheReviewQueueAreCountedByItsMigration() async throws {
        let url = try TestDatabase.url
        let connection = try await connect(url)
        try await connection.execute(script: "DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        let jury = try await store(url)
        let before = Schema(files: SchemaFile.embedded.filter { (Int($0.path.prefix(3)) ?? 0) < 103 })
        try await jury.migrate(before, logger: TestDatabase.logger)
        let run = try await createRun(Fixture.yaml(), in: jury)
        try await enqueue(try Fixture.writeLabelledCorpus(Fixture.corpus), run: run.name, in: jury)
        try await Fixture.castVotes(Fixture.votes, run: run, in: jury)
        try await Fixture.decideAll(jury)
        #expect(try await connection.count("SELECT count(*) FROM run_counts WHERE counter = 'verdicts.disputed'") == 0)

        let applied = try await jury.migrate(logger: TestDatabase.logger)
        #expect(applied.contains("103_review"))
        try await expectCountsMatchTables(connection)
        let progress = try await jury.reviewProgress(run: try await jury.findRun(run.name), reviewerID: 0)
        #expect(progress.waiting == 6)
    }

    /// A reduction of the run under way (`jury reduce`, `import-labels` hold the run for update)
    /// holds answers off, so that it cannot write the panel's verdict over a person's.
    @Test(.freshDatabase) func anAnswerWaitsForAReductionUnderWayAndSaysSo() async throws {
        let (connection, jury, run) = try await Fixture.setUp()
        let ada = try await Self.addReviewer("ada", to: jury)
        let item = try #require(try await jury.claimReview(run: run, reviewerID: ada.id, leaseSeconds: 600))
        let reduction = try await connect(try TestDatabase.url)
        try await reduction.execute(script: "BEGIN")
        _ = try await reduction.query("SELECT * FROM jury_lock_run_for_reduction(\(run.id))")
        let refused = await #expect(throws: JuryError.self) {
            try await jury.answerReview(
                run: run, reviewerID: ada.id, exampleID: item.exampleID, leaseToken: item.leaseToken, label: "valid")
        }
        #expect(refused?.message.contains("is being reduced") == true)
        #expect(try await connection.count("SELECT count(*) FROM review_answers") == 0)
        try await reduction.execute(script: "COMMIT")
        #expect(
            try await jury.answerReview(
                run: run, reviewerID: ada.id, exampleID: item.exampleID, leaseToken: item.leaseToken, label: "valid"))
    }
}
