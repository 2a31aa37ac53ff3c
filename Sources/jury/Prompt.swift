import ArgumentParser
import AsyncHTTPClient
import Foundation
import JuryDomain
import JuryJudges
import JuryRuntime

struct Prompt: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the prompt every judge of a run would be sent for one example; or each judge's request, or its answer.",
        discussion: """
            The example is one corpus line (a JSON object with an "id"). The prompt is a pure function of \
            the example: the same bytes in every process and on every machine; fields holding objects or \
            arrays render as canonical JSON (keys sorted). The hash is the one stored with each vote.

            --requests prints, for each judge, one JSON line with the HTTP request it would send: the URL, \
            the headers (the API key as $VARIABLE, never its value) and the body, its parameters laid over it. \
            A judge in batch mode also shows its batch_request: the line (OpenAI) or request item (Anthropic) \
            it puts in a batch, the same body under a custom id that names the job and its claim.

            --send sends it (each judge's key from the variable its api_key_env names) and prints one JSON \
            line per judge: the label, the tokens by kind (input, cached, cache_write, output as billed with \
            the thinking, thinking) and the cost at the judge's price, or the error. Nothing is written to \
            the database. It exits 1 if any judge failed.
            """)
    @Option(help: "The run's YAML file.") var config: String
    @Flag(help: "Print each judge's HTTP request as JSON lines instead of the prompt.") var requests = false
    @Flag(help: "Send the example to each judge and print its answer, tokens and cost as JSON lines.") var send = false
    @Option(help: "With --requests or --send: only this judge.") var judge: String?
    @Argument(help: "The example: one JSONL line.") var example: String

    func validate() throws {
        if requests && send { throw ValidationError("--requests and --send do not go together") }
        if judge != nil && !(requests || send) { throw ValidationError("--judge goes with --requests or --send") }
    }

    func run() async throws {
        let runConfig = try RunConfig.load(path: config)
        guard case .object(var fields) = try? JSONValue.parse(Array(example.utf8)) else {
            throw ValidationError("the example must be a JSON object, as a line of a corpus")
        }
        let id: String
        switch fields["id"] {
        case .string(let text): id = text
        case .integer(let number): id = String(number)
        default: throw ValidationError("the example needs an \"id\" (a string or an integer)")
        }
        for key in ["id", "human_label", "source_label"] { fields.removeValue(forKey: key) }
        let request = try PromptRenderer(config: runConfig).render(id: id, payload: .object(fields))
        if !requests && !send {
            print(
                "# system\n\(request.system)\n# user\n\(request.user)\n# labels\n\(request.labels.joined(separator: " "))"
            )
            print("# hash\n\(request.promptHash)")
            return
        }
        var judges = runConfig.judges
        if let judge {
            judges = judges.filter { $0.name == judge }
            if judges.isEmpty {
                throw ValidationError(
                    "the run has no judge '\(judge)' (its judges: \(runConfig.panel.joined(separator: ", ")))")
            }
        }
        if requests {
            for judge in judges {
                let preview = try HTTPJudge.preview(config: judge, request: request)
                let headers = JSONValue.object(
                    Dictionary(preview.headers.map { ($0.0, JSONValue.string($0.1)) }, uniquingKeysWith: { $1 }))
                var line: JSONValue = [
                    "judge": .string(judge.name), "provider": .string(judge.provider), "method": "POST",
                    "url": .string(preview.url), "headers": headers, "body": try JSONValue.parse(preview.body),
                ]
                let batchID = ProviderBatch.customID(job: 1, claim: 1)
                if let item = try BatchJudges.preview(config: judge, request: request, customID: batchID) {
                    line = line.merging(["batch_request": try JSONValue.parse(item)])
                }
                print(line.jsonText)
            }
            return
        }
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        var failed = false
        for judge in judges {
            print(await Self.answerLine(judge: judge, request: request, client: client, failed: &failed).jsonText)
        }
        try await client.shutdown()
        if failed { throw ExitCode(1) }
    }

    /// One judge's answer to the example as a JSON line: label, tokens by kind, cost; or the error.
    static func answerLine(judge: JudgeConfig, request: JudgeRequest, client: HTTPClient, failed: inout Bool) async
        -> JSONValue
    {
        do {
            let answer = try await HTTPJudge(config: judge, client: client).classify(request)
            guard request.labels.contains(answer.label) else {
                throw JudgeError(.badAnswer, "judge \(judge.name) answered a label outside the taxonomy")
            }
            let count = { (tokens: Int?) in JSONValue.integer(Int64(tokens ?? 0)) }
            return [
                "judge": .string(judge.name), "label": .string(answer.label),
                "rationale": answer.rationale.map(JSONValue.string) ?? .null,
                "model_version": answer.modelVersion.map(JSONValue.string) ?? .null,
                "tokens": [
                    "input": count(answer.promptTokens), "cached": count(answer.cachedTokens),
                    "cache_write": count(answer.cacheWriteTokens), "output": count(answer.completionTokens),
                    "thinking": count(answer.thinkingTokens),
                ],
                "cost_usd": judge.cost(of: answer).map(JSONValue.number) ?? .null,
            ]
        } catch {
            failed = true
            return ["judge": .string(judge.name), "error": .string("\(error)")]
        }
    }
}
