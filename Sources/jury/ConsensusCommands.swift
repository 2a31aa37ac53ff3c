import ArgumentParser
import Foundation
import JuryDomain
import JuryRuntime
import JuryStore

struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a run's decided examples: JSONL with every vote, or fine-tuning chat; with a manifest.",
        discussion: """
            --format jsonl (default) writes each example's fields, its verdict (label, status, rule and \
            parameters, who decided, outcome for the production label) and every judge's vote and rationale.
            --format chat writes agreed examples as OpenAI fine-tuning conversations: the run's training.user \
            template as the user's message, and as the reply the label's `reply` template (refusing and \
            clarifying labels) or training.assistant (accepting labels; left out without it).
            --review writes what people should look at: disagreements and verdicts against the production \
            label, with every vote and rationale. Fill in "human_label" and give the file to `jury import-labels`.
            Beside FILE goes FILE.manifest.json: run, rule, filter, counts, the last calibration, the config's SHA-256.
            """)
    @OptionGroup var db: DatabaseOptions
    @Option(help: "The run.") var run: String
    @Option(help: "jsonl or chat.") var format: String = "jsonl"
    @Option(help: "Only verdicts with this status: agreed, disagreed or insufficient.") var status: String?
    @Option(help: "Only verdicts with this outcome for the production label: keep, relabel, clarify or drop.")
    var outcome: String?
    @Option(help: "Only verdicts with this label.") var label: String?
    @Option(help: "Only examples of this batch.") var batch: String?
    @Flag(help: "Only what people should review: disagreements and conflicts with the production label.")
    var review = false
    @Argument(help: "The file to write (replaced atomically).") var file: String

    func validate() throws {
        if Exporter.Format(rawValue: format) == nil {
            throw ValidationError("--format must be jsonl or chat, not '\(format)'")
        }
        if let status, Verdict.Status(rawValue: status) == nil {
            throw ValidationError("--status must be agreed, disagreed or insufficient, not '\(status)'")
        }
        if let outcome, SourceOutcome(rawValue: outcome) == nil {
            throw ValidationError("--outcome must be keep, relabel, clarify or drop, not '\(outcome)'")
        }
        if review && format == "chat" {
            throw ValidationError("--review writes JSONL for people; it does not go with --format chat")
        }
    }

    func run() async throws {
        let store = try await db.connect("jury export", logger: db.makeLogger("jury.export"))
        let filter = ExportFilter(
            status: status.flatMap(Verdict.Status.init(rawValue:)),
            outcome: outcome.flatMap(SourceOutcome.init(rawValue:)),
            label: label, batch: batch, review: review)
        let report = try await Exporter.export(
            run: run, format: Exporter.Format(rawValue: format)!, filter: filter, to: file, from: store)
        print("wrote \(report.written) examples to \(file) (manifest: \(report.manifestPath))")
        for (reason, count) in report.skipped.sorted(by: { $0.key < $1.key }) {
            print("left out \(count) agreed examples: \(reason)")
        }
    }
}

struct Reduce: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Recompute every verdict of a run under a rule, without calling any judge.",
        discussion: """
            In one transaction: the earlier verdicts move to verdict_history, and the run keeps the rule \
            for the verdicts still to come. Rules: unanimous, quorum:K, majority, weighted, dawid-skene. \
            weighted without --weights takes each judge's accuracy from the run's last `jury calibrate`. \
            Examples decided early (some jobs cancelled) are decided from the votes they have. \
            Labels people gave (`jury import-labels`) decide their examples under any rule.
            """)
    @OptionGroup var db: DatabaseOptions
    @Option(help: "The run.") var run: String
    @Option(help: "unanimous, quorum:K, majority, weighted or dawid-skene (default: the run's own rule).")
    var rule: String?
    @Option(help: "Valid votes an example needs for a verdict other than insufficient.") var minVotes: Int?
    @Option(help: "weighted: share of weight to exceed (0.5); dawid-skene: posterior to reach (0.9).")
    var threshold: Double?
    @Option(help: "weighted: judge=weight,... for every judge.") var weights: String?

    func parsedRule() throws -> ConsensusRule? {
        guard let rule else {
            if minVotes != nil || threshold != nil || weights != nil {
                throw ValidationError("--min-votes, --threshold and --weights go with --rule")
            }
            return nil
        }
        guard var parsed = ConsensusRule(description: rule) else {
            throw ValidationError(
                "--rule must be one of unanimous, quorum:K, majority, weighted, dawid-skene, not '\(rule)'")
        }
        parsed.minVotes = minVotes
        parsed.threshold = threshold
        if let weights {
            var table: [String: Double] = [:]
            for pair in weights.split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, let weight = Double(parts[1]) else {
                    throw ValidationError("--weights: '\(pair)' is not judge=weight")
                }
                table[String(parts[0])] = weight
            }
            parsed.weights = table
        }
        return parsed
    }

    func validate() throws { _ = try parsedRule() }

    func run() async throws {
        let store = try await db.connect("jury reduce", logger: db.makeLogger("jury.reduce"))
        let report = try await Reduction.reduce(run: run, rule: try parsedRule(), store: store)
        let stored = try await store.findRun(run)
        print(
            "recomputed \(report.replaced) verdicts under \(stored.config.rule) (earlier ones kept in verdict_history)")
    }
}

struct Calibrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the panel against the examples people labelled (human_label), rule by rule.",
        discussion: """
            Per judge: accuracy, Cohen's kappa against people, the confusion matrix, invalid answers. \
            The panel: Fleiss' kappa (examples every judge voted on) and Krippendorff's alpha (nominal). \
            Per rule: precision against people, coverage (share of labelled examples with an agreed verdict), \
            per-label precision and recall, and the refusal false-positive rate (of the requests people \
            accepted, the share the panel agreed to refuse). Then the rule with the best precision at \
            --min-coverage, and any judge that drags the panel down. The report is kept in the table calibrations.
            """)
    @OptionGroup var db: DatabaseOptions
    @Option(help: "The run.") var run: String
    @Option(help: "The least coverage a recommended rule must reach, 0 to 1.") var minCoverage = 0.5
    @Option(help: "Judges whose kappa against people is below this are flagged.") var minKappa = 0.75
    @Flag(help: "Print the report as JSON.") var json = false

    func validate() throws {
        guard (0...1).contains(minCoverage) else { throw ValidationError("--min-coverage must be between 0 and 1") }
        guard (-1...1).contains(minKappa) else { throw ValidationError("--min-kappa must be between -1 and 1") }
    }

    func run() async throws {
        let store = try await db.connect("jury calibrate", logger: db.makeLogger("jury.calibrate"))
        let calibration = try await Calibrator.calibrate(
            run: run, minCoverage: minCoverage, minKappa: minKappa, store: store)
        if json {
            print(try jsonText(calibration))
        } else {
            print(calibration.table, terminator: "")
        }
    }
}

struct ImportLabels: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import-labels",
        abstract: "Take people's labels back: they become human labels and decide their examples.",
        discussion: """
            FILE holds one JSON object per line with "id" (the example's id in the corpus) and "label" \
            (or "human_label", as in a `jury export --review` file, whose lines left null are passed over). \
            Every line is checked first; one \
            bad line or unknown id imports nothing. Decided examples get a verdict from the person's label \
            at once (the panel's goes to verdict_history); the next `jury calibrate` counts them too.
            """)
    @OptionGroup var db: DatabaseOptions
    @Option(help: "The run.") var run: String
    @Argument(help: "The JSONL file of labels.") var file: String

    func run() async throws {
        let store = try await db.connect("jury import-labels", logger: db.makeLogger("jury.import-labels"))
        let stored = try await store.findRun(run)
        let contents = try LabelFile.contents(path: file, config: stored.config)
        let report = try await Reduction.importLabels(contents.labels, run: run, store: store)
        print("imported \(report.labelled) labels; \(report.replaced) verdicts now decided by people")
        if contents.unreviewed > 0 {
            print("passed over \(contents.unreviewed) lines whose human_label is still null")
        }
    }
}
