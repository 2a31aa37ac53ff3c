public import JuryDomain
public import JuryStore

/// `jury calibrate`: measures the panel against the examples people labelled.
public enum Calibrator {
    /// Calibrates `run` and keeps the report (the `weighted` rule can take its weights from it).
    /// Compares unanimity, each quorum above half the panel, majority, weighted (the run's
    /// weights, or each judge's accuracy here), Dawid-Skene (fitted to all the run's votes) and
    /// the run's own rule.
    public static func calibrate(run name: String, minCoverage: Double, minKappa: Double, store: Store) async throws
        -> Calibration
    {
        let run = try await store.findRun(name)
        let config = run.config
        let all = try await store.examplesWithVotes(runID: run.id)
        let invalid = try await store.invalidAnswersOnLabelledExamples(runID: run.id)
        let panelSet = Set(config.panel)
        let model = DawidSkene.fit(tasks: all.map { $0.votes.filter { panelSet.contains($0.key) } })
        var examples: [Calibration.Example] = []
        for (index, example) in all.enumerated() {
            guard let human = example.humanLabel else { continue }
            examples.append(
                Calibration.Example(
                    human: human, votes: example.votes, invalid: invalid[example.id] ?? [:],
                    posterior: model.posterior(ofTask: index)))
        }
        guard !examples.isEmpty else {
            throw JuryError(
                .invalidInput,
                "run '\(name)' has no example with a human_label: add some to the corpus (a few hundred), or import people's labels with `jury import-labels`"
            )
        }
        return try await calibrate(
            run: name, config: config, examples: examples, minCoverage: minCoverage, minKappa: minKappa, store: store,
            runID: run.id)
    }

    static func calibrate(
        run name: String, config: RunConfig, examples: [Calibration.Example], minCoverage: Double, minKappa: Double,
        store: Store, runID: Int64
    ) async throws -> Calibration {
        let panel = config.panel
        var weights: [String: Double] = [:]
        for judge in panel {
            weights[judge] = Calibration.judgeFigures(judge, examples: examples, labels: config.labels).accuracy ?? 0
        }
        var rules: [ConsensusRule] = [.unanimous]
        if panel.count > 2 {
            for quorum in (panel.count / 2 + 1)..<panel.count { rules.append(.quorum(quorum)) }
        }
        rules.append(ConsensusRule(.majority))
        rules.append(
            config.rule.kind == .weighted && config.rule.weights != nil
                ? config.rule : ConsensusRule(.weighted, weights: weights))
        rules.append(config.rule.kind == .dawidSkene ? config.rule : ConsensusRule(.dawidSkene))
        var own = config.rule
        own.earlyDecision = nil
        if !rules.contains(where: { $0 == own }) && own.kind != .weighted && own.kind != .dawidSkene {
            rules.append(own)
        }
        let calibration = Calibration.compute(
            run: name, examples: examples, labels: config.labels, panel: panel, accepting: config.acceptingLabels,
            rules: rules, minCoverage: minCoverage, minKappa: minKappa)
        try await store.saveCalibration(calibration, runID: runID)
        return calibration
    }
}
