import Foundation
import JuryDomain
import JuryPostgres
import JuryRuntime
import JuryStore
import JuryTestSupport
import Testing

/// The queue's transitions, straight through the store against PostgreSQL.
@Suite("Queue")
struct QueueTests {
    private func setUp(_ url: String, examples: Int = 3) async throws -> (PostgresConnection, Store, StoredRun) {
        let (jury, run) = try await oneJudgeRun(url, examples: examples)
        return (try await connect(url), jury, run)
    }

    @Test(.freshDatabase) func aLateOutcomeOfAnEarlierClaimTouchesNothing() async throws {
        let url = try TestDatabase.url
        let (connection, jury, run) = try await setUp(url, examples: 1)
        let want = [ClaimRequest(runID: run.id, judge: "j1", count: 1)]
        let first = try await jury.claim(want, owner: "w", leaseSeconds: 60)
        #expect(first.count == 1 && first[0].claim == 1)
        // The lease runs out (the worker stalled) and the job is claimed again, by the same process even.
        try await connection.query("UPDATE jobs SET lease_expires_at = now() - interval '1 second'")
        #expect(try await jury.reapExpiredLeases() == 1)
        let second = try await jury.claim(want, owner: "w", leaseSeconds: 60)
        #expect(second.count == 1 && second[0].claim == 2)

        let answer = JudgeAnswer(label: "valid", rationale: "late")
        #expect(
            try await jury.record(
                [.vote(first[0], answer, latencyMilliseconds: 1)], owner: "w"
            ).outcomes == 0)
        #expect(try await jury.record([.returned(first[0], error: "late")], owner: "w").outcomes == 0)
        #expect(try await connection.count("SELECT count(*) FROM votes") == 0)
        #expect(try await connection.count("SELECT count(*) FROM jobs WHERE state = 'running'") == 1)

        let current = JudgeAnswer(label: "ambiguous", rationale: "current")
        #expect(
            try await jury.record(
                [.vote(second[0], current, latencyMilliseconds: 1)], owner: "w"
            ).outcomes == 1)
        #expect(try await connection.query("SELECT rationale FROM votes")[0]["rationale"] == "current")
    }

    @Test(.freshDatabase) func jobsAWorkerHoldsWithoutKnowingAreGivenBack() async throws {
        let url = try TestDatabase.url
        let (connection, jury, run) = try await setUp(url, examples: 5)
        let want = [ClaimRequest(runID: run.id, judge: "j1", count: 3)]
        // "w" tracks the first of its three jobs; the others came from a claim whose answer it lost.
        let held = try await jury.claim(want, owner: "w", leaseSeconds: 60)
        let other = try await jury.claim(
            [ClaimRequest(runID: run.id, judge: "j1", count: 1)], owner: "v", leaseSeconds: 60)
        #expect(held.count == 3 && other.count == 1)
        #expect(try await jury.returnUntrackedJobs(owner: "w", tracked: [held[0].id]) == 2)
        #expect(try await jury.returnUntrackedJobs(owner: "w", tracked: [held[0].id]) == 0)
        let running = try await connection.query("SELECT id, lease_owner FROM jobs WHERE state = 'running' ORDER BY id")
        #expect(running.map { $0["lease_owner"] } == ["w", "v"])
        // Given back as a return: no attempt counted, and the next claim takes them (with the one never claimed).
        #expect(
            try await connection.count(
                "SELECT count(*) FROM jobs WHERE state = 'pending' AND attempts = 0 AND last_error LIKE 'held by this worker without its knowing%'"
            )
                == 2)
        #expect(try await jury.claim(want, owner: "w", leaseSeconds: 60).count == 3)
        try await expectCountsMatchTables(connection)
    }

    @Test(.freshDatabase) func aBeatingWorkerKeepsItsJobsAndOneThatStoppedBeatingLosesThem() async throws {
        let url = try TestDatabase.url
        let (connection, jury, run) = try await setUp(url, examples: 2)
        try await jury.registerProcess("alive", role: "worker")
        try await jury.registerProcess("gone", role: "worker")
        let want = [ClaimRequest(runID: run.id, judge: "j1", count: 1)]
        let kept = try await jury.claim(want, owner: "alive", leaseSeconds: 60)
        let lost = try await jury.claim(want, owner: "gone", leaseSeconds: 60)
        #expect(try await jury.heartbeat("alive", inFlight: 1, leaseSeconds: 60))
        #expect(try await jury.heartbeat("gone", inFlight: 1, leaseSeconds: 60))
        // Both claims' own leases pass: only the heartbeat holds the jobs now.
        try await connection.query("UPDATE jobs SET lease_expires_at = now() - interval '1 second'")
        #expect(try await jury.reapExpiredLeases() == 0)
        // One worker stops beating and its lease runs out: its job, and only it, is taken back.
        try await connection.query(
            "UPDATE workers SET lease_expires_at = now() - interval '1 second' WHERE id = 'gone'")
        #expect(try await jury.reapExpiredLeases() == 1)
        #expect(
            try await connection.count("SELECT count(*) FROM jobs WHERE state = 'running' AND lease_owner = 'alive'")
                == 1)
        #expect(try await connection.count("SELECT count(*) FROM jobs WHERE state = 'pending'") == 1)
        #expect(
            try await connection.count("SELECT count(*) FROM jobs WHERE id = \(lost[0].id) AND state = 'pending'") == 1)
        // Its heartbeat, when it comes back, says the lease had lapsed; its late vote is refused.
        #expect(try await !jury.heartbeat("gone", inFlight: 1, leaseSeconds: 60))
        #expect(try await jury.heartbeat("gone", inFlight: 0, leaseSeconds: 60))
        let answer = JudgeAnswer(label: "valid", rationale: "late")
        #expect(try await jury.record([.vote(lost[0], answer, latencyMilliseconds: 1)], owner: "gone").outcomes == 0)
        #expect(try await jury.record([.vote(kept[0], answer, latencyMilliseconds: 1)], owner: "alive").outcomes == 1)
        // A process unknown to the table has no lease to beat; one that stopped loses its jobs at once.
        #expect(try await !jury.heartbeat("never-registered", inFlight: 0, leaseSeconds: 60))
        let again = try await jury.claim(want, owner: "alive", leaseSeconds: 60)
        #expect(again.count == 1)
        await jury.processStopped("alive")
        try await connection.query("UPDATE jobs SET lease_expires_at = now() - interval '1 second'")
        #expect(try await jury.reapExpiredLeases() == 1)
    }

    @Test(.freshDatabase) func aReapHeldUpByLocksGivesUpAfterItsTimeoutAndLeavesTheSessionAsItWas() async throws {
        let url = try TestDatabase.url
        let (connection, jury, run) = try await setUp(url, examples: 1)
        _ = try await jury.claim([ClaimRequest(runID: run.id, judge: "j1", count: 1)], owner: "gone", leaseSeconds: 60)
        try await connection.query("UPDATE jobs SET lease_expires_at = now() - interval '1 second'")
        // Another transaction holds the example (a long retry, say).
        let holder = try await connect(url)
        try await holder.execute(script: "BEGIN")
        try await holder.query("SELECT id FROM examples FOR UPDATE")
        let error = await #expect(throws: PostgresError.self) {
            try await jury.reapExpiredLeases(lockTimeout: .milliseconds(200))
        }
        #expect(error?.sqlState == "55P03")
        try await holder.execute(script: "ROLLBACK")
        #expect(try await jury.reapExpiredLeases(lockTimeout: .milliseconds(200)) == 1)
        // The timeout held for the reap's own transaction only.
        #expect(try await jury.currentSetting("lock_timeout") == "30s")
    }

    @Test(.freshDatabase) func pausedRunsAndExamplesNoLongerVotingAreNotClaimed() async throws {
        let url = try TestDatabase.url
        let (connection, jury, run) = try await setUp(url)
        let want = [ClaimRequest(runID: run.id, judge: "j1", count: 10)]
        try await jury.setRunState(.paused, run: run.name)
        #expect(try await jury.claim(want, owner: "w", leaseSeconds: 60).isEmpty)
        try await jury.setRunState(.active, run: run.name)
        try await connection.query("UPDATE examples SET state = 'decided' WHERE external_id = 'ex-0'")
        let claimed = try await jury.claim(want, owner: "w", leaseSeconds: 60)
        #expect(Set(claimed.map(\.externalID)) == ["ex-1", "ex-2"])
        try await jury.setRunState(.cancelled, run: run.name)
        try await connection.query("UPDATE jobs SET state = 'pending'")
        #expect(try await jury.claim(want, owner: "w", leaseSeconds: 60).isEmpty)
    }

    /// A payload Jury cannot read (written past enqueue's check, here nested deeper than the
    /// parser goes) fails its example's jobs at once with the reason; the rest of the claim
    /// goes on, and nothing is left running.
    @Test(.freshDatabase) func aJobWhosePayloadCannotBeReadFailsAndTheClaimGoesOn() async throws {
        let url = try TestDatabase.url
        let (connection, jury, run) = try await setUp(url)
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        try await connection.query(
            "UPDATE examples SET payload = jsonb_build_object('request', \(deep)::jsonb) WHERE external_id = 'ex-1'")
        let claimed = try await jury.claim(
            [ClaimRequest(runID: run.id, judge: "j1", count: 10)], owner: "w", leaseSeconds: 60)
        #expect(Set(claimed.map(\.externalID)) == ["ex-0", "ex-2"])
        let failed = try await connection.query(
            "SELECT e.external_id, j.last_error FROM jobs j JOIN examples e ON e.id = j.example_id WHERE j.state = 'failed'"
        )
        #expect(failed.count == 1 && failed[0]["external_id"] == "ex-1")
        #expect(failed[0]["last_error"]?.contains("payload cannot be read") == true, "\(failed)")
        #expect(try await connection.count("SELECT count(*) FROM jobs WHERE state = 'running'") == 2)
        try await expectCountsMatchTables(connection)
    }

    @Test(.freshDatabase) func outagesRefundAttemptsAndWrongAnswersCountThem() async throws {
        let url = try TestDatabase.url
        let (_, jury, run) = try await setUp(url, examples: 1)
        let want = [ClaimRequest(runID: run.id, judge: "j1", count: 1)]
        let policy = CallPolicy(config: run.config)
        var job = try await jury.claim(want, owner: "w", leaseSeconds: 60)[0]
        let outage = policy.decide(JudgeError(.server, "HTTP 503"), history: job.history, random: 0)
        try await jury.record([.release(job, error: "HTTP 503", outage)], owner: "w")
        job = try await jury.claim(want, owner: "w", leaseSeconds: 60)[0]
        #expect(job.attempts == 1 && job.transientFailures == 1 && job.retryingSeconds != nil)
        let wrong = policy.decide(JudgeError(.badAnswer, "not JSON"), history: job.history, random: 0)
        #expect(wrong.kind == .answer && !wrong.final)
        try await jury.record([.release(job, error: "not JSON", wrong)], owner: "w")
        job = try await jury.claim(want, owner: "w", leaseSeconds: 60)[0]
        #expect(job.attempts == 2 && job.transientFailures == 0 && job.retryingSeconds == nil && job.claim == 3)
    }

    /// A vote replaces its job (037): the row goes, the vote keeps what the job told (its
    /// claims and attempts), and an invalid answer before it stays with the example.
    @Test(.freshDatabase) func aVoteReplacesItsJob() async throws {
        let url = try TestDatabase.url
        let (connection, jury, run) = try await setUp(url, examples: 1)
        let want = [ClaimRequest(runID: run.id, judge: "j1", count: 1)]
        let policy = CallPolicy(config: run.config)
        let first = try await jury.claim(want, owner: "w", leaseSeconds: 60)[0]
        let wrong = policy.decide(JudgeError(.badAnswer, "not JSON"), history: first.history, random: 0)
        try await jury.record([.release(first, error: "not JSON", wrong, answer: "I think it is fine")], owner: "w")
        let second = try await jury.claim(want, owner: "w", leaseSeconds: 60)[0]
        let answer = JudgeAnswer(label: "valid", rationale: "second try")
        #expect(try await jury.record([.vote(second, answer, latencyMilliseconds: 1)], owner: "w").outcomes == 1)

        #expect(try await connection.count("SELECT count(*) FROM jobs") == 0)
        #expect(try await connection.count("SELECT count(*) FROM votes WHERE claims = 2 AND attempts = 2") == 1)
        #expect(
            try await connection.count(
                "SELECT count(*) FROM jury_invalid_answers WHERE example = 'ex-0' AND answer = 'I think it is fine'")
                == 1)
        // The same outcome again finds no job: nothing is written twice.
        #expect(try await jury.record([.vote(second, answer, latencyMilliseconds: 1)], owner: "w").outcomes == 0)
        #expect(try await connection.count("SELECT count(*) FROM votes") == 1)
        let progress = try await connection.query("SELECT done, running, pending FROM jury_run_progress")[0]
        #expect(progress["done"] == "1" && progress["running"] == "0" && progress["pending"] == "0")
        try await expectCountsMatchTables(connection)

        // A purge takes the invalid answers with the queue's other bookkeeping; the vote stays.
        try await ConsensusFixture.decideAll(jury)
        _ = try await Operations.purge(run: run.name, everything: false, examplesPerTransaction: 10, in: jury)
        #expect(try await connection.count("SELECT count(*) FROM invalid_answers") == 0)
        #expect(try await connection.count("SELECT count(*) FROM votes") == 1)
        try await expectCountsMatchTables(connection)
    }

    /// Records of one run never wait for each other (040): each backend adds the judges' spend
    /// to rows of its own, which readers sum, and the reducer's compaction folds those of gone
    /// backends into one.
    @Test(.freshDatabase) func recordsOfOneRunDoNotWaitForEachOther() async throws {
        let url = try TestDatabase.url
        let (connection, jury, run) = try await setUp(url, examples: 2)
        let jobs = try await jury.claim(
            [ClaimRequest(runID: run.id, judge: "j1", count: 2)], owner: "w", leaseSeconds: 60)
        try #require(jobs.count == 2)
        let open = try await connect(url)
        try await open.query("BEGIN")
        try await open.query(
            """
            SELECT jury_record_votes('w', ARRAY[\(jobs[0].id)::bigint], ARRAY[\(jobs[0].claim)::int], ARRAY['valid'],
                ARRAY[NULL]::text[], ARRAY[1], NULL::bigint[], NULL::bigint[], NULL::bigint[], NULL::text[], NULL::text[],
                ARRAY[0.25]::float8[], NULL::bigint[], NULL::bigint[])
            """)
        // Another worker's record of the same run and judge goes through while that one is open.
        let answer = JudgeAnswer(label: "valid", rationale: nil)
        let recorder = Task {
            try await jury.record([.vote(jobs[1], answer, latencyMilliseconds: 1, costUSD: 0.5)], owner: "w").outcomes
        }
        try await eventually("a record while another of the same run is open") {
            try await connection.count("SELECT count(*) FROM votes") == 1
        }
        #expect(try await recorder.value == 1)
        try await open.query("COMMIT")
        let costs = try await connection.query("SELECT votes, cost_usd, run_cost_usd FROM jury_costs")
        #expect(costs.count == 1)
        #expect(costs[0]["votes"] == "2" && costs[0]["cost_usd"] == "0.75" && costs[0]["run_cost_usd"] == "0.75")
        #expect(try await connection.count("SELECT count(*) FROM judge_spend") == 2)

        // Once the first backend is gone, compaction folds its row into slot 0; the sums stay.
        let pid = try await open.backendPID()
        try await connection.query("SELECT pg_terminate_backend(\(pid))")
        try await eventually("the backend to go") {
            try await connection.count("SELECT count(*) FROM pg_stat_activity WHERE pid = \(pid)") == 0
        }
        _ = try await jury.compactCounts()
        #expect(try await connection.count("SELECT count(*) FROM judge_spend WHERE slot = 0 AND votes = 1") == 1)
        let after = try await connection.query("SELECT votes, cost_usd FROM jury_costs")
        #expect(after[0]["votes"] == "2" && after[0]["cost_usd"] == "0.75")
        #expect(try await connection.count("SELECT count(*) FROM jury_judge_progress WHERE cost_usd = 0.75") == 1)
        try await expectCountsMatchTables(connection)
    }

    /// The functions every record calls keep one plan per connection (036): plpgsql could plan
    /// each call afresh, which cost 350-400 microseconds a record. CREATE OR REPLACE drops a
    /// function's settings, so a later migration that restates one must state them again.
    @Test(.freshDatabase) func theRecordsFunctionsKeepTheirPlans() async throws {
        let connection = try await connect(try TestDatabase.url)
        for function in ["jury_settle_examples", "jury_lock_examples_of"] {
            let settings = try await connection.query(
                "SELECT coalesce(array_to_string(proconfig, ','), '') AS settings FROM pg_proc WHERE proname = \(function)"
            )[0].decode("settings", as: String.self)
            #expect(settings.contains("plan_cache_mode=force_generic_plan"), "\(function): \(settings)")
            #expect(settings.contains("enable_seqscan=off"), "\(function): \(settings)")
        }
        // JIT is off in every plpgsql function (038), whatever the session says.
        #expect(
            try await connection.count(
                """
                SELECT count(*) FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
                WHERE p.proname LIKE 'jury\\_%' AND l.lanname = 'plpgsql' AND p.prorettype <> 'trigger'::regtype
                  AND NOT coalesce('jit=off' = ANY (p.proconfig), false)
                """) == 0)
        #expect(
            try await connection.count(
                "SELECT count(*) FROM pg_proc WHERE proname = 'jury_claim_jobs' AND 'jit=off' = ANY (proconfig)") == 1)
        // A LANGUAGE sql function that is SECURITY DEFINER is planned at every call; the claim calls this one.
        #expect(
            try await connection.count(
                """
                SELECT count(*) FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
                WHERE p.proname = 'jury_run_within_budget' AND l.lanname = 'plpgsql'
                """) == 1)
    }
}
