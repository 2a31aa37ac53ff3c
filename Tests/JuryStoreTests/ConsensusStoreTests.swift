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
/// Rules, reductions, conflicts with the production label and early decision, on PostgreSQL.
@Suite("Consensus on PostgreSQL")
struct ConsensusStoreTests {
    typealias Fixture = ConsensusFixture

    @Test(.freshDatabase) func everyRuleAndEveryOutcomeFromTheSameVotes() async throws {
        let (connection, jury, run) = try await Fixture.setUp()
        var verdicts = try await Fixture.verdicts(connection)
        #expect(verdicts.count == 8)
        // Unanimity, and what it does to the production labels.
        #expect(verdicts["e0"]?["outcome"] == "keep" && verdicts["e0"]?["label"] == "valid")
        #expect(verdicts["e1"]?["outcome"] == "relabel" && verdicts["e1"]?["label"] == "wrong_skill")
        #expect(verdicts["e2"]?["outcome"] == "clarify")
        #expect(verdicts["e3"]?["status"] == "disagreed" && verdicts["e3"]?["outcome"] == "drop")
        #expect(verdicts["e5"]?["status"] == "insufficient")
        #expect(verdicts["e7"]?["outcome"] == .some(nil) && verdicts["e7"]?["status"] == "agreed")
        #expect(verdicts["e0"]?["rule"] == "unanimous" && verdicts["e0"]?["params_rule"] == "unanimous")
        #expect(verdicts.values.allSatisfy { $0["decided_by"] == "panel" && $0["early"] == "false" })

        // A quorum of 3 agrees where one judge dissented; the old verdicts are kept.
        var report = try await Reduction.reduce(run: run.name, rule: .quorum(3), store: jury)
        #expect(report.replaced == 8)
        verdicts = try await Fixture.verdicts(connection)
        #expect(verdicts["e3"]?["label"] == "valid" && verdicts["e3"]?["outcome"] == "keep")
        #expect(verdicts["e5"]?["label"] == "valid")
        #expect(verdicts["e4"]?["status"] == "disagreed")
        #expect(verdicts["e0"]?["rule"] == "quorum:3")
        #expect(try await connection.count("SELECT count(*) FROM verdict_history") == 8)
        #expect(try await connection.count("SELECT count(*) FROM verdict_history WHERE rule = 'unanimous'") == 8)
        #expect(try await jury.findRun(run.name).config.rule == .quorum(3))

        // Majority: more than half of the valid votes; 2 against 2 is no majority.
        _ = try await Reduction.reduce(run: run.name, rule: ConsensusRule(.majority), store: jury)
        verdicts = try await Fixture.verdicts(connection)
        #expect(verdicts["e3"]?["label"] == "valid" && verdicts["e4"]?["status"] == "disagreed")

        // Weighted: j1 outweighs the two who disagree with it on e6.
        let weighted = ConsensusRule(.weighted, weights: ["j1": 4, "j2": 1, "j3": 1, "j4": 1])
        _ = try await Reduction.reduce(run: run.name, rule: weighted, store: jury)
        verdicts = try await Fixture.verdicts(connection)
        #expect(verdicts["e6"]?["label"] == "valid" && verdicts["e6"]?["outcome"] == "relabel")
        #expect(
            try await connection.count(
                "SELECT count(*) FROM verdicts WHERE (rule_params->'weights'->>'j1')::float8 = 4") == 8)

        // min_votes: unanimity among the judges that answered, when at least 3 did.
        _ = try await Reduction.reduce(run: run.name, rule: ConsensusRule(.unanimous, minVotes: 3), store: jury)
        verdicts = try await Fixture.verdicts(connection)
        #expect(verdicts["e5"]?["label"] == "valid" && verdicts["e3"]?["status"] == "disagreed")

        // Dawid-Skene: the posteriors of a model fitted to the run's votes decide.
        report = try await Reduction.reduce(
            run: run.name, rule: ConsensusRule(.dawidSkene, threshold: 0.6), store: jury)
        #expect(report.replaced == 8)
        let examples = try await jury.examplesWithVotes(runID: run.id)
        let model = DawidSkene.fit(tasks: examples.map(\.votes))
        verdicts = try await Fixture.verdicts(connection)
        for (index, example) in examples.enumerated() {
            let posterior = model.posterior(ofTask: index)
            let best = posterior.max { $0.value < $1.value }!
            let row = try await connection.query(
                "SELECT label, status FROM verdicts WHERE example_id = \(example.id)")[0]
            #expect(row["status"] == (best.value >= 0.6 ? "agreed" : "disagreed"), "\(example.votes)")
            if best.value >= 0.6 { #expect(row["label"] == best.key) }
        }
        #expect(try await connection.count("SELECT count(*) FROM verdict_history") == 40)

        // The views count the outcomes.
        let outcomes = try await connection.query("SELECT * FROM jury_outcomes WHERE run = 'cons'")[0]
        #expect(outcomes["without_source_label"] == "1")
    }

    @Test(.freshDatabase) func aRuleThatCannotHoldIsRefusedAndNothingChanges() async throws {
        let (connection, jury, run) = try await Fixture.setUp()
        await #expect(throws: JuryError.self) {
            try await Reduction.reduce(run: run.name, rule: .quorum(2), store: jury)
        }
        let error = await #expect(throws: JuryError.self) {
            try await Reduction.reduce(run: run.name, rule: ConsensusRule(.weighted), store: jury)
        }
        #expect(error?.message.contains("jury calibrate") == true)
        #expect(try await connection.count("SELECT count(*) FROM verdict_history") == 0)
        #expect(try await jury.findRun(run.name).config.rule.kind == .unanimous)
    }

    @Test(.freshDatabase) func earlyDecisionCancelsWhatTheRuleNoLongerNeedsAndOrderedJudgesWait() async throws {
        let url = try TestDatabase.url
        let jury = try await store(url)
        let connection = try await connect(url)
        let run = try await createRun(
            Fixture.yaml(judges: 3, orders: [1, 1, 2], consensus: "rule: unanimous"), in: jury)
        try await enqueue(
            try Fixture.writeLabelledCorpus([("a", nil, "valid"), ("b", nil, "valid"), ("c", "valid", nil)]),
            run: run.name, in: jury)
        // The third judge waits: nothing of it can be claimed before the first two answered.
        #expect(try await connection.count("SELECT count(*) FROM jobs WHERE judge = 'j3' AND state = 'waiting'") == 3)
        #expect(
            try await jury.claim([ClaimRequest(runID: run.id, judge: "j3", count: 10)], owner: "t", leaseSeconds: 60)
                .isEmpty)
        let votes: [String: [String?]] = [
            "a": ["valid", "valid", "valid"], "b": ["valid", "wrong_skill", "valid"],
            "c": ["valid", "ambiguous", "valid"],
        ]
        try await Fixture.castVotes(votes, run: run, in: jury)
        try await Fixture.decideAll(jury)
        // b split at once: its third judge was never asked. c carries a human label: every judge answers it.
        #expect(try await connection.count("SELECT count(*) FROM votes WHERE judge = 'j3'") == 2)
        #expect(
            try await connection.count(
                "SELECT count(*) FROM jobs j JOIN examples e ON e.id = j.example_id WHERE e.external_id = 'b' AND j.judge = 'j3' AND j.state = 'cancelled'"
            ) == 1)
        let verdicts = try await Fixture.verdicts(connection)
        #expect(verdicts["a"]?["status"] == "agreed" && verdicts["a"]?["early"] == "false")
        #expect(verdicts["b"]?["status"] == "disagreed" && verdicts["b"]?["early"] == "true")
        #expect(verdicts["c"]?["early"] == "false")
        let early = try await connection.query("SELECT * FROM jury_early_decisions WHERE run = 'cons'")[0]
        #expect(early["calls_saved"] == "1" && early["examples_decided_early"] == "1")
        let status = try await StatusReport.load(run: run.name, from: jury).text
        #expect(status.contains("1 judge calls saved"))
        #expect(status.contains("production labels  keep 1  relabel 0  clarify 0  drop 1"))
        #expect(
            try await connection.count(
                "SELECT count(*) FROM examples WHERE jobs_open <> 0 OR jobs_waiting <> 0 OR state <> 'decided'") == 0)
    }

    @Test(.freshDatabase) func aQuorumOutOfReachIsDecidedAndAJobGivenBackLaterIsCancelled() async throws {
        let url = try TestDatabase.url
        let jury = try await store(url)
        let connection = try await connect(url)
        let run = try await createRun(Fixture.yaml(consensus: "rule: quorum\n  quorum: 3"), in: jury)
        try await enqueue(try Fixture.writeLabelledCorpus([("q", nil, nil)]), run: run.name, in: jury)
        // j4 is under way when the other three split three ways: no label can reach 3.
        let held = try await jury.claim(
            [ClaimRequest(runID: run.id, judge: "j4", count: 1)], owner: "slow", leaseSeconds: 60)
        #expect(held.count == 1)
        try await Fixture.castVotes(["q": ["valid", "wrong_skill", "ambiguous", nil]], run: run, in: jury)
        #expect(
            try await connection.count("SELECT count(*) FROM examples WHERE state = 'ready' AND jobs_open = 1") == 1)
        try await Fixture.decideAll(jury)
        #expect(try await Fixture.verdicts(connection)["q"]?["early"] == "true")
        // The slow worker gives its job back: it is cancelled, not called again.
        #expect(try await jury.record([.returned(held[0], error: "stopping")], owner: "slow").outcomes == 1)
        #expect(try await connection.count("SELECT count(*) FROM jobs WHERE judge = 'j4' AND state = 'cancelled'") == 1)
        #expect(
            try await connection.count(
                "SELECT count(*) FROM examples WHERE jobs_open = 0 AND jobs_cancelled = 1 AND state = 'decided'") == 1)
        try await expectCountsMatchTables(connection)
    }

    @Test(.freshDatabase) func aJobThatFailsForGoodCancelsTheRestAndARetryBringsThemBack() async throws {
        let url = try TestDatabase.url
        let jury = try await store(url)
        let connection = try await connect(url)
        let run = try await createRun(Fixture.yaml(), in: jury)
        try await enqueue(
            try Fixture.writeLabelledCorpus([("short", nil, nil), ("seed", "valid", nil)]), run: run.name, in: jury)
        // j1 fails for good on both before any other judge is called.
        let first = try await jury.claim(
            [ClaimRequest(runID: run.id, judge: "j1", count: 10)], owner: "t", leaseSeconds: 60)
        #expect(first.count == 2)
        let final = CallPolicy.Decision(kind: .answer, delaySeconds: 0, final: true)
        try await jury.record(first.map { .release($0, error: "no answer", final) }, owner: "t")
        func jobs(_ example: String, _ state: String) async throws -> Int {
            try await connection.count(
                "SELECT count(*) FROM jobs j JOIN examples e ON e.id = j.example_id WHERE e.external_id = \(example) AND j.state = \(state)"
            )
        }
        // Unanimity of four can no longer hold: nobody calls the other three.
        #expect(try await jobs("short", "cancelled") == 3)
        #expect(
            try await connection.count(
                "SELECT count(*) FROM examples WHERE external_id = 'short' AND state = 'ready' AND jobs_open = 0 AND jobs_cancelled = 3"
            ) == 1)
        // The human-labelled example calibrates the panel: the other three still answer it.
        #expect(try await jobs("seed", "pending") == 3)
        try await Fixture.castVotes(["seed": [nil, "valid", "valid", "valid"]], run: run, in: jury)
        try await Fixture.decideAll(jury)
        var verdicts = try await Fixture.verdicts(connection)
        #expect(verdicts["short"]?["status"] == "insufficient" && verdicts["short"]?["early"] == "true")
        #expect(verdicts["seed"]?["status"] == "insufficient" && verdicts["seed"]?["early"] == "false")
        #expect(
            try await connection.count("SELECT count(*) FROM jobs WHERE state IN ('pending', 'waiting', 'running')")
                == 0)
        try await expectCountsMatchTables(connection)

        // A retry brings the cancelled jobs back, waiting until j1 has answered.
        #expect(try await jury.retryFailed(runID: run.id, batch: nil, judge: nil, limit: 100) == 2)
        #expect(try await jobs("short", "waiting") == 3)
        #expect(try await jobs("short", "pending") == 1)
        #expect(
            try await jury.claim([ClaimRequest(runID: run.id, judge: "j2", count: 10)], owner: "t", leaseSeconds: 60)
                .isEmpty)
        try await expectCountsMatchTables(connection)
        let agreed: [String?] = ["valid", "valid", "valid", "valid"]
        try await Fixture.castVotes(["short": agreed, "seed": agreed], run: run, in: jury)
        try await Fixture.decideAll(jury)
        verdicts = try await Fixture.verdicts(connection)
        #expect(verdicts["short"]?["status"] == "agreed" && verdicts["short"]?["early"] == "false")
        #expect(verdicts["seed"]?["status"] == "agreed")
        #expect(
            try await connection.count(
                "SELECT count(*) FROM examples WHERE jobs_open <> 0 OR jobs_waiting <> 0 OR jobs_cancelled <> 0 OR state <> 'decided'"
            ) == 0)
        try await expectCountsMatchTables(connection)
    }

    @Test(.freshDatabase) func aVerdictUnderARuleTheRunNoLongerHasIsNotStored() async throws {
        let url = try TestDatabase.url
        let jury = try await store(url)
        let connection = try await connect(url)
        let run = try await createRun(Fixture.yaml(), in: jury)
        try await enqueue(try Fixture.writeLabelledCorpus(Fixture.corpus), run: run.name, in: jury)
        try await Fixture.castVotes(Fixture.votes, run: run, in: jury)
        // A reducer that read the config before `jury reduce` switched the run to a quorum.
        let stale = try await jury.decideReady(runID: nil, limit: 100) { example, config in
            config.decide(votes: example.votes, rule: .quorum(3), sourceLabel: nil, reviewedLabel: nil)
        }.count
        #expect(stale == 0)
        #expect(try await connection.count("SELECT count(*) FROM verdicts") == 0)
        #expect(try await connection.count("SELECT count(*) FROM examples WHERE state = 'ready'") == 8)
        try await Fixture.decideAll(jury)
        #expect(try await connection.count("SELECT count(*) FROM verdicts WHERE rule = 'unanimous'") == 8)
    }

    /// A reducer's claim reads the first entries of the ready examples' index, not the whole table: it
    /// did, a sequential scan per claim, when the planner took its run filter to keep no row (031).
    @Test(.freshDatabase) func claimingReadyExamplesReadsAFewPagesNotTheTable() async throws {
        let url = try TestDatabase.url
        let jury = try await store(url)
        let connection = try await connect(url)
        let run = try await createRun(Fixture.yaml(), in: jury)
        try await enqueue(try writeCorpus(count: 20_000), run: run.name, in: jury)
        // Ready without votes: what the claim reads is under test, not what a reducer decides.
        try await connection.execute(script: "UPDATE examples SET state = 'ready'; ANALYZE examples")
        let tablePages = try await connection.count("SELECT relpages::bigint FROM pg_class WHERE relname = 'examples'")
        #expect(tablePages > 500)
        // The first call plans the function's statements (catalog reads); the second is measured.
        #expect(try await connection.count("SELECT count(*) FROM jury_claim_ready_examples(\(run.id), 10)") == 10)
        let buffers = try await buffersToClaimTen(run: String(run.id), on: connection)
        #expect(buffers * 3 < tablePages, "\(buffers) buffers for 10 examples, the table has \(tablePages) pages")
    }

    /// A reducer's claim reads the ready examples of the runs it decides, not those of others
    /// before them: a Dawid-Skene run's stay ready until their batch is complete (041).
    @Test(.freshDatabase) func claimingReadyExamplesPassesOverNoOtherRunsExamples() async throws {
        let url = try TestDatabase.url
        let jury = try await store(url)
        let connection = try await connect(url)
        let waiting = try await createRun(
            Fixture.yaml(consensus: "rule: dawid-skene").replacingOccurrences(of: "name: cons", with: "name: batch"),
            in: jury)
        try await enqueue(try writeCorpus(count: 20_000), run: waiting.name, in: jury)
        let run = try await createRun(Fixture.yaml(), in: jury)
        try await enqueue(try writeCorpus(count: 20_000), run: run.name, in: jury)
        // Ready without votes: what the claim reads is under test, not what a reducer decides.
        // All of the other run's are ready, and the last 40 of this one's.
        try await connection.execute(
            script: """
                UPDATE examples SET state = 'ready' WHERE run_id = \(waiting.id) OR id > (SELECT max(id) - 40 FROM examples);
                ANALYZE examples
                """)
        for decides in [String(run.id), "NULL"] {
            // The first call plans the function's statements (catalog reads); the second is measured.
            let claimed = try await connection.query(
                "SELECT DISTINCT run_id FROM jury_claim_ready_examples(\(unescaped: decides), 10)"
            ).map { try $0.decode("run_id") as Int64 }
            #expect(claimed == [run.id])
            let buffers = try await buffersToClaimTen(run: decides, on: connection)
            // Passing over the other run's examples, or reading this run's that are not ready,
            // reads 20,000 rows, each a buffer or more.
            #expect(buffers < 500, "\(buffers) buffers to claim 10 examples of run \(decides)")
        }
    }

    /// A plan made while `votes` was empty must not keep scanning all of it for each example once
    /// it fills: the reducer's claim reads each example's votes through the index (033).
    @Test(.freshDatabase) func aPlanMadeWhileVotesWasEmptyStillReadsVotesByIndex() async throws {
        let url = try TestDatabase.url
        let jury = try await store(url)
        let connection = try await connect(url)
        let run = try await createRun(Fixture.yaml(), in: jury)
        try await enqueue(try writeCorpus(count: 4000), run: run.name, in: jury)
        try await connection.execute(
            script: "ANALYZE votes; UPDATE examples SET state = 'ready' WHERE id IN (SELECT id FROM examples LIMIT 40)")
        // Enough calls for plpgsql to keep a generic plan, made while votes is empty.
        for _ in 0..<8 {
            _ = try await connection.count("SELECT count(*) FROM jury_claim_ready_examples(\(run.id), 10)")
        }
        try await connection.execute(
            script: """
                INSERT INTO votes (example_id, judge, run_id, label, attempts)
                SELECT e.id, j, e.run_id, 'valid', 1 FROM examples e CROSS JOIN unnest(ARRAY['a', 'b', 'c', 'd']) j
                """)
        let votePages = try await connection.count(
            "SELECT (pg_relation_size('votes') / current_setting('block_size')::int)::bigint")
        #expect(votePages > 50)
        let buffers = try await buffersToClaimTen(run: String(run.id), on: connection)
        // Ten examples: a scan of votes for each would read ten times its pages.
        #expect(buffers < votePages * 2, "\(buffers) buffers for 10 examples; votes has \(votePages) pages")
    }

    /// The buffers (hit and read) a reducer's claim of ten examples touches, from EXPLAIN: the
    /// top node's counts come first, and include those of the statements the function ran.
    /// `run` is a run's id, or NULL for every run.
    private func buffersToClaimTen(run: String, on connection: PostgresConnection) async throws -> Int {
        let plan = try await connection.query(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM jury_claim_ready_examples(\(unescaped: run), 10)"
        ).map { try $0.decode("QUERY PLAN") as String }.joined()
        let hit = try #require(plan.firstMatch(of: /"Shared Hit Blocks": (\d+)/).flatMap { Int($0.1) })
        let read = try #require(plan.firstMatch(of: /"Shared Read Blocks": (\d+)/).flatMap { Int($0.1) })
        return hit + read
    }

    @Test(.freshDatabase) func dawidSkeneWaitsForACompleteBatch() async throws {
        let url = try TestDatabase.url
        let jury = try await store(url)
        let connection = try await connect(url)
        let run = try await createRun(Fixture.yaml(consensus: "rule: dawid-skene\n  threshold: 0.5"), in: jury)
        try await enqueue(
            try Fixture.writeLabelledCorpus(Array(Fixture.corpus[0..<4])), run: run.name, batch: "one", in: jury)
        try await enqueue(
            try Fixture.writeLabelledCorpus(Array(Fixture.corpus[4...])), run: run.name, batch: "two.b", in: jury)
        // Batch one gets all its votes; batch two half of them.
        try await Fixture.castVotes(
            Fixture.votes.filter { ["e0", "e1", "e2", "e3", "e4", "e5"].contains($0.key) }, run: run, in: jury)
        try await Fixture.decideAll(jury)
        #expect(try await connection.count("SELECT count(*) FROM verdicts") == 4)
        #expect(try await connection.count("SELECT count(*) FROM verdicts WHERE rule = 'dawid-skene'") == 4)
        #expect(
            try await connection.count("SELECT count(*) FROM examples WHERE batch = 'two.b' AND state = 'ready'") == 2)
        // Its last votes complete it (castVotes put the jobs it skipped back for an hour).
        try await connection.execute(script: "UPDATE jobs SET run_after = now() WHERE state = 'pending'")
        try await Fixture.castVotes(Fixture.votes, run: run, in: jury)
        try await Fixture.decideAll(jury)
        #expect(try await connection.count("SELECT count(*) FROM verdicts WHERE rule = 'dawid-skene'") == 8)
        try await expectCountsMatchTables(connection)
    }
}
