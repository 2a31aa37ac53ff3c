public import JuryDomain
public import JuryStore

/// Turns votes into decisions outside the reducer's stream: `jury reduce` (every verdict of a
/// run again, under any rule, without calling a judge), people's labels coming back
/// (`jury import-labels`), and Dawid-Skene, which needs whole batches.
public enum Reduction {
    /// The decisions for `targets`; under `dawid-skene` the model is fitted to every example in `all`.
    public static func decide(
        all: [ExampleVotes], targets: [ExampleVotes], config: RunConfig, rule: ConsensusRule
    ) -> [Decision] {
        var posteriors: [Int64: [String: Double]] = [:]
        if rule.kind == .dawidSkene {
            let panel = Set(config.panel)
            let model = DawidSkene.fit(tasks: all.map { $0.votes.filter { panel.contains($0.key) } })
            for (index, example) in all.enumerated() { posteriors[example.id] = model.posterior(ofTask: index) }
        }
        return targets.map { example in
            config.decide(
                votes: example.votes, rule: rule, sourceLabel: example.sourceLabel,
                reviewedLabel: example.reviewedLabel, posterior: posteriors[example.id],
                early: example.early)
        }
    }

    /// Recomputes every verdict of `run` under `rule` (the run's own when nil), atomically,
    /// keeping the earlier verdicts in `verdict_history`; the run keeps the rule from then on.
    /// `weighted` without weights takes each judge's accuracy from the run's last calibration.
    public static func reduce(run name: String, rule: ConsensusRule?, store: Store) async throws -> ReductionReport {
        let run = try await store.findRun(name)
        var rule = rule
        if var chosen = rule, chosen.kind == .weighted, chosen.weights == nil {
            guard let calibration = try await store.lastCalibration(runID: run.id) else {
                throw JuryError(
                    .invalidInput,
                    "rule weighted needs weights: give them (--weights judge=1.0,...) or run `jury calibrate --run \(name)` first, whose accuracies become the weights"
                )
            }
            chosen.weights = Dictionary(
                uniqueKeysWithValues: calibration.judges.map { ($0.judge, max(0, $0.accuracy ?? 0)) })
            rule = chosen
        }
        if let rule, let problem = rule.problem(panel: run.config.panel) {
            throw JuryError(.invalidInput, "--rule: \(problem.field): \(problem.reason)")
        }
        return try await store.reduce(runID: run.id, scope: .decided, rule: rule) { all, targets, config in
            decide(all: all, targets: targets, config: config, rule: config.rule)
        }
    }

    /// Decides the ready examples of complete batches of a `dawid-skene` run; returns them.
    public static func decideCompleteBatches(runID: Int64, store: Store) async throws -> [DecidedExample] {
        // Every verdict is stored: only a change of the run's rule refuses one, and the run's
        // lock, which `jury reduce` takes too, holds the rule still.
        var decided: [DecidedExample] = []
        _ = try await store.reduce(runID: runID, scope: .completeBatches) { all, targets, config in
            let decisions = decide(all: all, targets: targets, config: config, rule: config.rule)
            decided = decisions.map { DecidedExample(run: config.name, status: $0.verdict.status) }
            return decisions
        }
        return decided
    }

    /// Stores people's labels (all or nothing) and lets them decide the examples already decided.
    public static func importLabels(_ labels: [ReviewLabel], run name: String, store: Store) async throws
        -> ReductionReport
    {
        let run = try await store.findRun(name)
        return try await store.reduce(runID: run.id, scope: .labelled, labels: labels) { all, targets, config in
            decide(all: all, targets: targets, config: config, rule: config.rule)
        }
    }
}
