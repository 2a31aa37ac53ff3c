import Foundation
import JuryDomain
public import JuryStore

/// Writes a run's verdicts, and a manifest beside them that says what they are.
public enum Exporter {
    public enum Format: String, Sendable, CaseIterable {
        /// Each example's fields, its verdict, and every judge's vote and rationale.
        case jsonl
        /// OpenAI fine-tuning conversations (`{"messages": [...]}`), agreed verdicts only.
        case chat
    }

    public struct Report: Sendable {
        public var written: Int
        /// Agreed examples a chat export left out, by why.
        public var skipped: [String: Int]
        public var manifestPath: String
    }

    /// Writes to `path` atomically (a temporary file renamed at the end), and `path.manifest.json`:
    /// the run, the rule, the filter, the counts, the last calibration's summary and the
    /// config's SHA-256.
    public static func export(
        run: String, format: Format, filter: ExportFilter, to path: String, from store: Store
    ) async throws -> Report {
        let stored = try await store.findRun(run)
        var filter = filter
        if let label = filter.label, !stored.config.labels.contains(label) {
            throw JuryError(
                .invalidInput,
                "--label '\(label)' is not in run '\(run)''s taxonomy (\(stored.config.labels.joined(separator: ", ")))"
            )
        }
        let chat = format == .chat ? try ChatFormat(config: stored.config) : nil
        if chat != nil {
            if let status = filter.status, status != .agreed {
                throw JuryError(.invalidInput, "a chat export holds agreed verdicts only; --status \(status) has none")
            }
            filter.status = .agreed
        }
        var skipped: [String: Int] = [:]
        let written = try await writeAtomically(to: path) { handle in
            var count = 0
            try await store.exportVerdicts(runID: stored.id, filter: filter) { lines in
                var out: [String] = []
                for line in lines {
                    guard let chat else {
                        out.append(line)
                        continue
                    }
                    let example = try JSONValue.parse(Data(line.utf8))
                    let id = example["id"]?.text ?? ""
                    guard let label = example["verdict", "label"]?.text else { continue }
                    switch chat.line(id: id, payload: example, label: label) {
                    case .success(let text): out.append(text)
                    case .failure(let reason): skipped[reason.skip.rawValue, default: 0] += 1
                    }
                }
                if !out.isEmpty { try handle.write(contentsOf: Data((out.joined(separator: "\n") + "\n").utf8)) }
                count += out.count
            }
            return count
        }
        let manifestPath = path + ".manifest.json"
        let manifest = try await manifest(
            run: stored, format: format, filter: filter, written: written, skipped: skipped, store: store)
        _ = try await writeAtomically(to: manifestPath) { handle in
            try handle.write(contentsOf: Data((manifest.jsonText + "\n").utf8))
            return 1
        }
        return Report(written: written, skipped: skipped, manifestPath: manifestPath)
    }

    static func manifest(
        run: StoredRun, format: Format, filter: ExportFilter, written: Int, skipped: [String: Int], store: Store
    ) async throws -> JSONValue {
        func string(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }
        func number(_ value: Double?) -> JSONValue { value.map(JSONValue.number) ?? .null }
        let counts = try await store.verdictCounts(runID: run.id)
        var calibrationSummary = JSONValue.null
        if let calibration = try await store.lastCalibration(runID: run.id) {
            calibrationSummary = .object([
                "examples": .integer(Int64(calibration.examples)),
                "recommended_rule": string(calibration.recommendation.rule),
                "min_coverage": .number(calibration.recommendation.minCoverage),
                "fleiss_kappa": number(calibration.fleissKappa),
                "krippendorff_alpha": number(calibration.krippendorffAlpha),
                "judges": .object(
                    Dictionary(
                        uniqueKeysWithValues: calibration.judges.map {
                            (
                                $0.judge,
                                JSONValue.object([
                                    "accuracy": number($0.accuracy), "cohen_kappa": number($0.cohenKappa),
                                ])
                            )
                        })),
                "rules": .object(
                    Dictionary(
                        uniqueKeysWithValues: calibration.rules.map {
                            (
                                $0.rule,
                                JSONValue.object(["precision": number($0.precision), "coverage": .number($0.coverage)])
                            )
                        })),
            ])
        }
        return .object([
            "run": .string(run.name),
            "format": .string(format.rawValue),
            "rule": .string(run.config.rule.description),
            "rule_params": try JSONValue.parse(JSONEncoder().encode(run.config.rule)),
            "filter": .object([
                "status": string(filter.status?.rawValue), "outcome": string(filter.outcome?.rawValue),
                "label": string(filter.label), "batch": string(filter.batch), "review": .bool(filter.review),
            ]),
            "examples_written": .integer(Int64(written)),
            "skipped": .object(skipped.mapValues { .integer(Int64($0)) }),
            "verdicts": .object(counts.mapValues { .object($0.mapValues { .integer(Int64($0)) }) }),
            "calibration": calibrationSummary,
            "config_sha256": .string(try await store.configHash(runID: run.id)),
            "exported_at": .string(ISO8601DateFormatter().string(from: Date())),
        ])
    }

    /// Writes through a temporary file renamed over `path` at the end; nothing is left on failure.
    static func writeAtomically(to path: String, _ body: (FileHandle) async throws -> Int) async throws -> Int {
        let temporary = path + ".partial"
        guard FileManager.default.createFile(atPath: temporary, contents: nil),
            let handle = FileHandle(forWritingAtPath: temporary)
        else {
            throw JuryError(.io, "cannot write \(path)")
        }
        do {
            let result = try await body(handle)
            try handle.close()
            _ = try? FileManager.default.removeItem(atPath: path)
            try FileManager.default.moveItem(atPath: temporary, toPath: path)
            return result
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
    }
}
