public import Foundation
public import JuryDomain
import JuryPostgres

/// What a person may do in the web app.
public enum ReviewerRole: String, Sendable, CaseIterable, Codable {
    /// Sees the dashboards.
    case viewer
    /// Also labels examples.
    case reviewer
    /// Also runs calibrations.
    case owner

    public var mayReview: Bool { self != .viewer }
    public var mayCalibrate: Bool { self == .owner }
}

/// A person known to the web app.
public struct Reviewer: Sendable, Equatable {
    public let id: Int64
    public let name: String
    public let role: ReviewerRole
    public var createdAt: Date? = nil
    public var disabled = false
}

/// A signed-in browser: who, and the token its forms carry.
public struct ReviewerSession: Sendable {
    public let reviewer: Reviewer
    public let csrfToken: String
}

/// An example handed to a reviewer, with all a person needs to label it.
public struct ReviewItem: Sendable {
    public struct Vote: Sendable {
        public let judge: String
        public let label: String
        public let rationale: String?
    }

    public let exampleID: Int64
    public let externalID: String
    public let batch: String
    /// The example's fields, as stored (JSON object text).
    public let payload: String
    public let sourceLabel: String?
    public let panelLabel: String?
    public let panelStatus: String
    public let agreement: Double
    public let votes: [Vote]
    /// When adjudicating: the labels people gave it, by whom. Empty on the review page, where
    /// each person labels blind.
    public var answers: [(reviewer: String, label: String)] = []
    public let leaseToken: String
    public let leasedUntil: Date
}

/// The review queue of a run for one reviewer: what is left and what they did.
public struct ReviewProgress: Sendable {
    public let waiting: Int
    public let leased: Int
    public let answered: Int
    public let answeredByReviewer: Int
    /// Examples whose people did not agree, waiting for an owner.
    public let conflicts: Int
    /// Examples two people labelled (the first two answers of each), and Cohen's kappa between them.
    public let doublyLabelled: Int
    public let peopleKappa: Double?
}

/// People in the loop: reviewers, sessions, and the review queue (Schema/103_review.sql).
extension Store {
    // MARK: Reviewers

    /// Adds a reviewer with the SHA-256 of their token (hex); a name taken is an error.
    public func addReviewer(name: String, role: ReviewerRole, tokenHash: String) async throws -> Reviewer {
        guard name.range(of: #"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"#, options: .regularExpression) != nil else {
            throw JuryError(
                .invalidInput,
                "reviewer name '\(name)' must be 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
            )
        }
        do {
            let row = try await connection.query(
                """
                INSERT INTO reviewers (name, role, token_hash) VALUES (\(name), \(role.rawValue), decode(\(tokenHash), 'hex'))
                RETURNING id
                """)[0]
            return Reviewer(id: try row.decode("id"), name: name, role: role)
        } catch let error as PostgresError where error.sqlState == "23505" {
            throw JuryError(
                .conflict,
                "a reviewer named '\(name)' already exists; `jury reviewer token \(name)` gives them a new token")
        }
    }

    /// Gives a reviewer a new token (the old one stops working, with every session it opened).
    public func replaceReviewerToken(name: String, tokenHash: String) async throws {
        try await connection.transaction { connection in
            let rows = try await connection.query(
                "UPDATE reviewers SET token_hash = decode(\(tokenHash), 'hex'), disabled_at = NULL WHERE name = \(name) RETURNING id"
            )
            guard let id: Int64 = try rows.first?.decode("id") else { throw Self.unknownReviewer(name) }
            try await connection.query("DELETE FROM reviewer_sessions WHERE reviewer_id = \(id)")
        }
    }

    /// Stops a reviewer signing in; their sessions end and their leases go back to the queue.
    public func disableReviewer(name: String) async throws {
        try await connection.transaction { connection in
            let rows = try await connection.query(
                "UPDATE reviewers SET disabled_at = coalesce(disabled_at, now()) WHERE name = \(name) RETURNING id")
            guard let id: Int64 = try rows.first?.decode("id") else { throw Self.unknownReviewer(name) }
            try await connection.query("DELETE FROM reviewer_sessions WHERE reviewer_id = \(id)")
            try await connection.query("DELETE FROM review_leases WHERE reviewer_id = \(id)")
        }
    }

    public func reviewers() async throws -> [Reviewer] {
        try await connection.query(
            "SELECT id, name, role, created_at, disabled_at IS NOT NULL AS disabled FROM reviewers ORDER BY name"
        ).map { row in
            Reviewer(
                id: try row.decode("id"), name: try row.decode("name"), role: try Self.role(row),
                createdAt: try row.decode("created_at"), disabled: try row.decode("disabled"))
        }
    }

    private static func role(_ row: PostgresRow) throws -> ReviewerRole {
        let role: String = try row.decode("role")
        guard let known = ReviewerRole(rawValue: role) else {
            throw JuryError(.schema, "reviewer role '\(role)' is not one this jury knows; upgrade jury")
        }
        return known
    }

    static func unknownReviewer(_ name: String) -> JuryError {
        JuryError(.notFound, "no reviewer named '\(name)'; `jury reviewer list` shows them")
    }

    // MARK: Sessions

    /// The enabled reviewer whose token has this SHA-256 (hex), if any.
    public func reviewer(tokenHash: String) async throws -> Reviewer? {
        try await connection.query(
            """
            SELECT id, name, role FROM reviewers WHERE token_hash = decode(\(tokenHash), 'hex') AND disabled_at IS NULL
            """
        ).first.map { row in
            Reviewer(id: try row.decode("id"), name: try row.decode("name"), role: try Self.role(row))
        }
    }

    /// Opens a session for `seconds`; expired sessions are swept on the way.
    public func openSession(reviewerID: Int64, tokenHash: String, csrfToken: String, seconds: Int) async throws {
        try await connection.query("DELETE FROM reviewer_sessions WHERE expires_at < now()")
        try await connection.query(
            """
            INSERT INTO reviewer_sessions (token_hash, reviewer_id, csrf_token, expires_at)
            VALUES (decode(\(tokenHash), 'hex'), \(reviewerID), \(csrfToken), now() + make_interval(secs => \(seconds)))
            """)
    }

    /// The live session whose cookie has this SHA-256 (hex), of an enabled reviewer.
    public func session(tokenHash: String) async throws -> ReviewerSession? {
        try await connection.query(
            """
            SELECT r.id, r.name, r.role, s.csrf_token
            FROM reviewer_sessions s JOIN reviewers r ON r.id = s.reviewer_id
            WHERE s.token_hash = decode(\(tokenHash), 'hex') AND s.expires_at > now() AND r.disabled_at IS NULL
            """
        ).first.map { row in
            ReviewerSession(
                reviewer: Reviewer(id: try row.decode("id"), name: try row.decode("name"), role: try Self.role(row)),
                csrfToken: try row.decode("csrf_token"))
        }
    }

    public func closeSession(tokenHash: String) async throws {
        try await connection.query("DELETE FROM reviewer_sessions WHERE token_hash = decode(\(tokenHash), 'hex')")
    }

    /// Failed sign-ins from `client` within the last `seconds`.
    public func signinFailures(client: String, seconds: Int) async throws -> Int {
        try await connection.query(
            """
            SELECT count(*)::int AS n FROM signin_failures
            WHERE client = \(client) AND failed_at > now() - make_interval(secs => \(seconds))
            """)[0].decode("n")
    }

    /// Counts a failed sign-in; attempts older than a day are swept on the way.
    public func recordSigninFailure(client: String) async throws {
        try await connection.query("DELETE FROM signin_failures WHERE failed_at < now() - interval '1 day'")
        try await connection.query("INSERT INTO signin_failures (client) VALUES (\(client))")
    }

    // MARK: The review queue

    /// Hands the reviewer an example of the run under a lease of `seconds`: the one they hold,
    /// else the most split one free (to adjudicate: a conflict between people). Nil when
    /// nothing is left for them.
    public func claimReview(
        run: StoredRun, reviewerID: Int64, leaseSeconds: Int, adjudicate: Bool = false
    ) async throws -> ReviewItem? {
        try await connection.transaction { connection in
            let claims = try await connection.query(
                """
                SELECT example_id, lease_token::text AS lease_token, leased_until
                FROM jury_review_claim(\(run.id), \(reviewerID), make_interval(secs => \(leaseSeconds)),
                                       \(run.config.reviewersPerItem), \(adjudicate))
                """)
            guard let claim = claims.first else { return nil }
            let exampleID: Int64 = try claim.decode("example_id")
            let rows = try await connection.query(
                """
                SELECT e.external_id, e.batch, e.payload::text AS payload, e.source_label,
                       v.label, v.status, v.agreement
                FROM examples e JOIN verdicts v ON v.example_id = e.id
                WHERE e.id = \(exampleID)
                """)
            guard let row = rows.first else { return nil }
            let votes = try await connection.query(
                "SELECT judge, label, rationale FROM votes WHERE example_id = \(exampleID) ORDER BY judge"
            ).map { vote in
                ReviewItem.Vote(
                    judge: try vote.decode("judge"), label: try vote.decode("label"),
                    rationale: try vote.decodeIfPresent("rationale"))
            }
            var item = ReviewItem(
                exampleID: exampleID, externalID: try row.decode("external_id"), batch: try row.decode("batch"),
                payload: try row.decode("payload"), sourceLabel: try row.decodeIfPresent("source_label"),
                panelLabel: try row.decodeIfPresent("label"), panelStatus: try row.decode("status"),
                agreement: try row.decode("agreement"), votes: votes, leaseToken: try claim.decode("lease_token"),
                leasedUntil: try claim.decode("leased_until"))
            if adjudicate {
                item.answers = try await connection.query(
                    """
                    SELECT r.name, a.label FROM review_answers a JOIN reviewers r ON r.id = a.reviewer_id
                    WHERE a.example_id = \(exampleID) AND a.undone_at IS NULL AND NOT a.adjudicated ORDER BY a.id
                    """
                ).map { (reviewer: try $0.decode("name"), label: try $0.decode("label")) }
            }
            return item
        }
    }

    /// Stores a reviewer's label for the example they hold under `leaseToken`, with who and
    /// when. The label decides the example when it is the run's only one (`review.per_item`
    /// 1), the last of people who all agree, or an owner's adjudication: then the example gets
    /// it as its human label (through `jury_import_labels`, as `jury import-labels` stores one)
    /// and a verdict decided by people (the panel's goes to `verdict_history`), in the same
    /// transaction. A label outside the taxonomy, a lease that lapsed or was taken over, or an
    /// answer already given changes nothing. Returns whether the example was decided.
    @discardableResult
    public func answerReview(
        run: StoredRun, reviewerID: Int64, exampleID: Int64, leaseToken: String, label: String
    ) async throws -> Bool {
        guard run.config.labels.contains(label) else {
            throw JuryError(
                .invalidInput,
                "'\(label)' is not a label of run \(run.name); its labels are \(run.config.labels.joined(separator: ", "))"
            )
        }
        return try await connection.transaction { connection in
            try await Self.holdAgainstReductions(run, on: connection)
            // The example first: people answering it at once take turns, so the last of them
            // sees every other answer.
            let rows = try await connection.query(
                """
                SELECT e.external_id, e.source_label, e.human_label, e.reviewed_at,
                       v.label, v.status, v.agreement, v.votes, v.rule_params::text AS rule_params, v.early, v.decided_by
                FROM examples e JOIN verdicts v ON v.example_id = e.id
                WHERE e.id = \(exampleID) AND e.run_id = \(run.id)
                FOR NO KEY UPDATE OF e
                """)
            let adjudicating = try await Self.takeLease(
                run: run, reviewerID: reviewerID, exampleID: exampleID, leaseToken: leaseToken, on: connection)
            guard let row = rows.first else {
                throw JuryError(
                    .conflict, "example \(exampleID) has no verdict now (jury retry took it back); nothing was changed")
            }
            guard try row.decode("decided_by", as: String.self) == "panel" else {
                throw JuryError(.conflict, "example \(exampleID) already has a person's label; nothing was changed")
            }
            let answerID: Int64 = try await connection.query(
                """
                INSERT INTO review_answers (example_id, run_id, reviewer_id, label, adjudicated, previous_label,
                                            previous_reviewed_at)
                VALUES (\(exampleID), \(run.id), \(reviewerID), \(label), \(adjudicating),
                        \(try row.decodeIfPresent("human_label") as String?), \(try row.decodeIfPresent("reviewed_at") as Date?))
                RETURNING id
                """)[0].decode("id")
            try await connection.query(
                "DELETE FROM review_leases WHERE example_id = \(exampleID) AND reviewer_id = \(reviewerID)")
            if !adjudicating {
                let labels: [String] = try await connection.query(
                    """
                    SELECT label FROM review_answers
                    WHERE example_id = \(exampleID) AND undone_at IS NULL AND NOT adjudicated
                    """
                ).map { try $0.decode("label") }
                guard labels.count >= run.config.reviewersPerItem, Set(labels).count == 1 else { return false }
            }
            let decision = run.config.review(
                try Self.verdict(row), label: label, sourceLabel: try row.decodeIfPresent("source_label"),
                early: try row.decode("early"))
            _ = try await connection.query(
                """
                SELECT * FROM jury_import_labels(\(run.id), ARRAY[\(try row.decode("external_id") as String)]::text[],
                                                 ARRAY[\(label)]::text[])
                """)
            _ = try await Self.replace([decision], of: [exampleID], run: run.id, on: connection)
            try await connection.query("UPDATE review_answers SET decided = true WHERE id = \(answerID)")
            // Whoever else still holds it (an owner about to adjudicate) holds nothing now.
            try await connection.query("DELETE FROM review_leases WHERE example_id = \(exampleID)")
            return true
        }
    }

    /// Passes over the example the reviewer holds: it goes back to the queue for everybody else.
    public func skipReview(run: StoredRun, reviewerID: Int64, exampleID: Int64, leaseToken: String) async throws {
        try await connection.transaction { connection in
            _ = try await Self.takeLease(
                run: run, reviewerID: reviewerID, exampleID: exampleID, leaseToken: leaseToken, on: connection)
            try await connection.query(
                "INSERT INTO review_skips (example_id, reviewer_id) VALUES (\(exampleID), \(reviewerID)) ON CONFLICT DO NOTHING"
            )
            try await connection.query(
                "DELETE FROM review_leases WHERE example_id = \(exampleID) AND reviewer_id = \(reviewerID)")
        }
    }

    /// Undoes the reviewer's last answer in the run still standing (of their adjudications,
    /// with `adjudicated`), and hands them its example
    /// again to answer anew (instead of the one on their page). If the example was decided by
    /// people, it gets back the human label it had and the verdict it had before (the people's
    /// moves to `verdict_history`): whoever else labelled it keeps their answer, and it is
    /// decided again when the answers agree once more. Returns the example, or nil when they
    /// have nothing to undo.
    public func undoLastReview(
        run: StoredRun, reviewerID: Int64, leaseSeconds: Int, adjudicated: Bool = false
    ) async throws -> Int64? {
        try await connection.transaction { connection in
            try await Self.holdAgainstReductions(run, on: connection)
            let answers = try await connection.query(
                """
                SELECT a.id, a.example_id FROM review_answers a
                WHERE a.reviewer_id = \(reviewerID) AND a.run_id = \(run.id) AND a.undone_at IS NULL
                  AND a.adjudicated = \(adjudicated)
                ORDER BY a.id DESC LIMIT 1
                """)
            guard let answer = answers.first else { return nil }
            let exampleID: Int64 = try answer.decode("example_id")
            // As an answer does: the example first, so that undo and answers take turns.
            try await connection.query("SELECT 1 FROM examples WHERE id = \(exampleID) FOR NO KEY UPDATE")
            let deciding = try await connection.query(
                """
                SELECT id, previous_label, previous_reviewed_at FROM review_answers
                WHERE example_id = \(exampleID) AND decided AND undone_at IS NULL
                """)
            if let decided = deciding.first {
                try await Self.restorePanel(
                    exampleID: exampleID, run: run, label: try decided.decodeIfPresent("previous_label"),
                    reviewedAt: try decided.decodeIfPresent("previous_reviewed_at"), on: connection)
                try await connection.query(
                    "UPDATE review_answers SET decided = false WHERE id = \(decided.decode("id") as Int64)")
            }
            try await connection.query(
                "UPDATE review_answers SET undone_at = now() WHERE id = \(answer.decode("id") as Int64)")
            try await connection.query(
                "DELETE FROM review_leases WHERE reviewer_id = \(reviewerID) AND run_id = \(run.id)")
            try await connection.query(
                """
                INSERT INTO review_leases (example_id, reviewer_id, run_id, leased_until, adjudicating)
                VALUES (\(exampleID), \(reviewerID), \(run.id), now() + make_interval(secs => \(leaseSeconds)),
                        \(adjudicated))
                """)
            try await connection.query(
                "DELETE FROM review_skips WHERE example_id = \(exampleID) AND reviewer_id = \(reviewerID)")
            return exampleID
        }
    }

    /// Gives an example people decided back the human label it had and the verdict before
    /// theirs: the last one superseded (which a later `jury reduce` would have made the
    /// panel's again too).
    private static func restorePanel(
        exampleID: Int64, run: StoredRun, label: String?, reviewedAt: Date?, on connection: PostgresConnection
    ) async throws {
        let previous = try await connection.query(
            """
            SELECT label, status, agreement, votes, rule_params::text AS rule_params, decided_by, outcome, early
            FROM verdict_history WHERE example_id = \(exampleID) AND run_id = \(run.id)
            ORDER BY superseded_at DESC, decided_at DESC LIMIT 1
            """)
        guard let verdict = previous.first else {
            throw JuryError(.conflict, "example \(exampleID) has no earlier verdict to go back to; nothing was undone")
        }
        try await connection.query(
            "UPDATE examples SET human_label = \(label), reviewed_at = \(reviewedAt) WHERE id = \(exampleID)")
        let restored = Decision(
            verdict: try Self.verdict(verdict),
            decidedBy: DecidedBy(rawValue: try verdict.decode("decided_by")) ?? .panel,
            outcome: (try verdict.decodeIfPresent("outcome", as: String.self)).flatMap(SourceOutcome.init(rawValue:)),
            early: try verdict.decode("early"))
        _ = try await Self.replace([restored], of: [exampleID], run: run.id, on: connection)
    }

    /// A verdict as a row of `verdicts` or `verdict_history` holds it (`rule_params` as text).
    private static func verdict(_ row: PostgresRow) throws -> Verdict {
        Verdict(
            label: try row.decodeIfPresent("label"),
            status: Verdict.Status(rawValue: try row.decode("status")) ?? .disagreed,
            agreement: try row.decode("agreement"), votes: try row.decode("votes"),
            rule: try JSONDecoder().decode(
                ConsensusRule.self, from: Data(try row.decode("rule_params", as: String.self).utf8)))
    }

    /// The queue's counts for a run, the reviewer's own answers, and how well people agree.
    public func reviewProgress(run: StoredRun, reviewerID: Int64) async throws -> ReviewProgress {
        let runID = run.id
        let row = try await connection.query(
            """
            SELECT p.waiting::int, p.leased::int, p.answered::int,
                   (SELECT count(*)::int FROM review_answers a
                    WHERE a.run_id = \(runID) AND a.reviewer_id = \(reviewerID) AND a.undone_at IS NULL) AS mine
            FROM jury_review_progress p WHERE p.run = \(run.name)
            """)[0]
        // People's answers are few (people give them): their pairs are read whole.
        var first: [String] = []
        var second: [String] = []
        var conflicts = 0
        var current: (example: Int64, labels: [String], decided: Bool)?
        func close() {
            guard let done = current else { return }
            if done.labels.count >= 2 {
                first.append(done.labels[0])
                second.append(done.labels[1])
            }
            if !done.decided, done.labels.count >= run.config.reviewersPerItem, Set(done.labels).count > 1 {
                conflicts += 1
            }
        }
        for answer in try await connection.query(
            """
            SELECT a.example_id, a.label, v.decided_by = 'people' AS decided
            FROM review_answers a JOIN verdicts v ON v.example_id = a.example_id
            WHERE a.run_id = \(runID) AND a.undone_at IS NULL AND NOT a.adjudicated
            ORDER BY a.example_id, a.id
            """)
        {
            let example: Int64 = try answer.decode("example_id")
            if current?.example != example {
                close()
                current = (example, [], try answer.decode("decided"))
            }
            current?.labels.append(try answer.decode("label"))
        }
        close()
        return ReviewProgress(
            waiting: try row.decode("waiting"), leased: try row.decode("leased"), answered: try row.decode("answered"),
            answeredByReviewer: try row.decode("mine"), conflicts: conflicts, doublyLabelled: first.count,
            peopleKappa: Agreement.cohenKappa(first, second))
    }

    /// Holds the run against reductions (`jury reduce`, `jury import-labels`, which lock it for
    /// update) until the transaction ends: one that had read the run's examples before this
    /// answer would write the panel's verdict over the person's. Answers share the hold, and wait
    /// for a reduction under way at most 5 seconds.
    private static func holdAgainstReductions(_ run: StoredRun, on connection: PostgresConnection) async throws {
        try await connection.execute(script: "SET LOCAL lock_timeout = '5s'")
        do {
            try await connection.query("SELECT 1 FROM runs WHERE id = \(run.id) FOR SHARE")
        } catch let error as PostgresError where error.sqlState == "55P03" {
            throw JuryError(
                .conflict,
                "run \(run.name) is being reduced (jury reduce or import-labels); nothing was changed: answer again once it is done"
            )
        }
    }

    /// Locks the lease the reviewer holds on the example under `leaseToken`, or says why not;
    /// returns whether it is an adjudication.
    private static func takeLease(
        run: StoredRun, reviewerID: Int64, exampleID: Int64, leaseToken: String, on connection: PostgresConnection
    ) async throws -> Bool {
        guard UUID(uuidString: leaseToken) != nil else {
            throw JuryError(.invalidInput, "'\(leaseToken.prefix(40))' is not a lease token; nothing was changed")
        }
        let rows = try await connection.query(
            """
            SELECT leased_until > now() AS live, adjudicating FROM review_leases
            WHERE example_id = \(exampleID) AND run_id = \(run.id) AND reviewer_id = \(reviewerID)
              AND lease_token = \(leaseToken)::uuid
            FOR UPDATE
            """)
        guard let row = rows.first else {
            throw JuryError(
                .conflict,
                "you no longer hold example \(exampleID) of run \(run.name) (answered already, or its lease went to someone else); nothing was changed"
            )
        }
        guard try row.decode("live", as: Bool.self) else {
            throw JuryError(
                .conflict, "your lease on example \(exampleID) of run \(run.name) ran out; nothing was changed")
        }
        return try row.decode("adjudicating")
    }
}
