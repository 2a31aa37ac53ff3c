import Foundation
import JuryBench
import JuryDomain
import JuryJudges
import JuryPostgres
import JuryRuntime
import JuryStore
import JuryTestSupport
import Testing

/// Generated malformed input of the three kinds Jury reads from outside: corpus lines, run
/// configs and judge responses. Each is refused with an error that says where, and nothing is
/// written.
@Suite("Malformed input")
struct MalformedInputTests {
    // MARK: - Corpus lines

    static let goodLine = #"{"id": "x-1", "request": "Customers from Paris", "human_label": "valid"}"#

    /// Every truncation of a good line, then lines that are JSON but not a valid example.
    static let badLines: [String] = {
        var lines: [String] = []
        let bytes = Array(goodLine.utf8)
        for length in 1..<bytes.count {
            let prefix = String(decoding: bytes[..<length], as: UTF8.self)
            if !prefix.allSatisfy({ $0 == " " }) { lines.append(prefix) }
        }
        lines += [
            "[]", "42", "\"text\"", "null", "true", "{}", #"{"request": "no id"}"#, #"{"id": ""}"#, #"{"id": null}"#,
            #"{"id": 1.5}"#, #"{"id": true}"#, #"{"id": ["a"]}"#, #"{"id": {"a": 1}}"#,
            #"{"id": "a", "human_label": "maybe"}"#, #"{"id": "a", "human_label": 3}"#,
            #"{"id": "a", "source_label": ["valid"]}"#, #"{"id": "a", "source_label": "VALID"}"#,
            #"{"id": "a", "id": "b"}"#, #"{"id": "a", "x": {"k": 1, "k": 2}}"#, #"{"id": "a", "x": "nul \u0000"}"#,
            #"{"id": "a\u0000"}"#, #"{"id": "a", "x": [1, 2,]}"#, #"{"id": "a",}"#, #"{'id': 'a'}"#,
            #"{"id": "a"} trailing"#, #"{"id": "a", "x": NaN}"#, #"{"id": "a", "x": "\x"}"#,
            #"{"id": "a", "x": {"y": [],}}"#,
        ]
        return lines
    }()

    @Test(.freshDatabase) func everyBadCorpusLineIsNamedAndNothingIsEnqueued() async throws {
        #expect(Self.badLines.count >= 90)
        let url = try TestDatabase.url
        let connection = try await connect(url)
        let jury = try await store(url)
        _ = try await createRun(runYAML(models: ["a", "b"], baseURL: "http://127.0.0.1:9/v1"), in: jury)
        let enqueuer = Enqueuer(store: jury, logger: TestDatabase.logger)
        for bad in Self.badLines {
            let good = (1...3).map { #"{"id": "g\#($0)", "request": "fine"}"# }
            let file = try writeFile(
                (good + [bad, #"{"id": "after", "request": "fine"}"#]).joined(separator: "\n"))
            let error = await #expect(throws: JuryError.self, "line: \(bad)") {
                try await enqueuer.enqueue(file: file, run: "test")
            }
            #expect(error?.code == .invalidInput, "\(bad)")
            #expect(error?.message.hasPrefix("\(file):4: ") == true, "\(bad): \(error?.message ?? "")")
            #expect(error?.message.hasSuffix("nothing was enqueued") == true, "\(bad)")
            try FileManager.default.removeItem(atPath: file)
        }
        #expect(try await connection.count("SELECT count(*) FROM examples") == 0)
        #expect(try await connection.count("SELECT count(*) FROM jobs") == 0)
    }

    // MARK: - Run configs

    static var baseConfig: [String: Any] {
        [
            "name": "gen",
            "taxonomy": [
                ["label": "valid", "description": "can be done"],
                ["label": "ambiguous", "description": "several readings"],
                ["label": "wrong_skill", "description": "not a segment"],
            ],
            "judges": [
                ["name": "j1", "provider": "openai-compatible", "model": "m1", "base_url": "http://127.0.0.1:9/v1"],
                ["name": "j2", "provider": "openai", "model": "m2", "concurrency": 8, "timeout_seconds": 30],
            ],
            "prompt": ["system": "Labels: {{#labels}}{{.}} {{/labels}}", "user": "Request: {{request}}"],
            "consensus": ["rule": "unanimous"],
            "max_attempts": 3,
            "retry": ["base_delay_seconds": 1, "max_delay_seconds": 30],
        ]
    }

    /// A path into the config, a value to put there (nil removes the key), and the field the error must name.
    struct Mutation: CustomStringConvertible {
        let path: [String]
        let value: Any?
        let field: String
        var description: String { "\(path.joined(separator: ".")) = \(value.map { "\($0)" } ?? "(removed)")" }
    }

    static var mutations: [Mutation] {
        var list: [Mutation] = []
        func add(_ path: String, _ values: [Any?], field: String? = nil) {
            for value in values {
                list.append(
                    Mutation(path: path.split(separator: ".").map(String.init), value: value, field: field ?? path))
            }
        }
        // (A number where a string goes reads as its text, as YAML has it: `model: 4` is the model "4".)
        add("name", ["", "has space", "-leading", "a/b", [1], ["n": 1], nil])
        add("taxonomy", [[Any](), [["label": "only", "description": "one"]], "valid", 3, nil])
        add("taxonomy.0.label", ["Valid", "", "has space", ["valid"], nil], field: "taxonomy[0].label")
        add("taxonomy.1.label", ["valid"], field: "taxonomy[1].label")
        add("taxonomy.1.description", ["", "   ", ["x"], nil], field: "taxonomy[1].description")
        add("taxonomy.2.colour", ["red"], field: "taxonomy[2].colour")
        add("judges", [[Any](), "j1", nil])
        add("judges.0.name", ["", "a b", ["j"], nil], field: "judges[0].name")
        add("judges.1.name", ["j1"], field: "judges[1].name")
        add("judges.0.provider", ["openia", "", "OpenAI", 1, nil], field: "judges[0].provider")
        add("judges.0.model", ["", ["m"], nil], field: "judges[0].model")
        add(
            "judges.0.base_url",
            [
                "ftp://x/v1", "not a url", "http://", "http://user:secret@h/v1", "https://h/v1?api_key=abc",
                "https://h/v1?token=abc", "https://h/v1?sig=abc", 8080,
            ], field: "judges[0].base_url")
        add("judges.1.concurrency", [0, -1, 10_001, "many", 1.5], field: "judges[1].concurrency")
        add("judges.1.timeout_seconds", [0, -5, "soon"], field: "judges[1].timeout_seconds")
        add("judges.1.requests_per_minute", [0, -10, "lots"], field: "judges[1].requests_per_minute")
        add("judges.1.api_key", ["sk-live-123"], field: "judges[1].api_key")
        add("judges.1.api_key_env", ["sk-live 123", "1ABC", ""], field: "judges[1].api_key_env")
        add("judges.1.temperature", [0.5], field: "judges[1].temperature")
        add("prompt", ["just text", nil])
        add("prompt.user", ["", "   ", "{{#open}}", "{{/close}}", ["x"], nil])
        add("prompt.system", ["{{#x}}", nil])
        add("prompt.assistant", ["x"])
        add("consensus.rule", ["plurality", "", 1])
        add("consensus.min_votes", [0, 3, "x"], field: "consensus.min_votes")
        add("consensus.weights", [["j1": 1], "heavy"], field: "consensus.weights")
        add("consensus.early_decision", ["maybe"], field: "consensus.early_decision")
        add("taxonomy.0.kind", ["never", 3], field: "taxonomy[0].kind")
        add("taxonomy.1.reply", ["{{#open}}", ["x"]], field: "taxonomy[1].reply")
        add("judges.1.order", [0, 101, "first"], field: "judges[1].order")
        add("training", ["x"])
        add("training.user", ["{{#x}}", nil], field: "training.user")
        add("consensus.quorum", [1, 3, 0], field: "consensus.quorum")
        add("consensus.threshold", [0.5])
        add("max_attempts", [0, 101, -1, "x", 1.5])
        add("retry.base_delay_seconds", [0, -1, "x"])
        add("retry.max_delay_seconds", [0.5, "x"])
        add("retry.give_up_after_seconds", [0, -3, "x"])
        add("retry.max_retry_after_seconds", [0, "x"])
        add("retry.jitter", [true])
        add("retry", ["fast"])
        add("review.per_item", [0, 6, -1, "two", 1.5])
        add("review.blind", [true])
        add("colour", ["red"])
        add("judges.1", ["just a name", 3], field: "judges[1]")
        add("consensus", ["unanimous", ["unanimous"]])
        return list
    }

    @Test func everyBadRunConfigNamesItsField() throws {
        #expect(Self.mutations.count >= 100)
        let base = try Self.yaml(Self.baseConfig)
        _ = try RunConfig.parse(yaml: base, file: "gen.yaml")
        for mutation in Self.mutations {
            var config: Any = Self.baseConfig
            Self.set(&config, mutation.path[...], mutation.value)
            let text = try Self.yaml(config)
            let error = #expect(throws: JuryError.self, "\(mutation)") {
                try RunConfig.parse(yaml: text, file: "gen.yaml")
            }
            #expect(error?.code == .invalidConfig, "\(mutation)")
            let message = error?.message ?? ""
            #expect(message.hasPrefix("gen.yaml: \(mutation.field)"), "\(mutation): \(message)")
            // The message never repeats a credential it refused.
            #expect(!message.contains("secret") && !message.contains("sk-live-123"), "\(mutation): \(message)")
        }
        // Text that is not a mapping at all.
        for text in ["", "- a\n- b", "just words", "name: [unclosed", "{\"name\": "] {
            let error = #expect(throws: JuryError.self) { try RunConfig.parse(yaml: text, file: "gen.yaml") }
            #expect(error?.message.hasPrefix("gen.yaml: ") == true, "\(text): \(error?.message ?? "")")
        }
    }

    @Test(.freshDatabase) func aRefusedConfigWritesNoRun() async throws {
        let binary = juryBinary
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build the jury binary first")
        let url = try TestDatabase.url
        let connection = try await connect(url)
        for mutation in Self.mutations.prefix(10) {
            var config: Any = Self.baseConfig
            Self.set(&config, mutation.path[...], mutation.value)
            let file = try writeFile(try Self.yaml(config))
            let result = try await offThePool {
                try Subprocess.run(
                    binary, ["run", "create", "--config", file],
                    environment: ["DATABASE_URL": url, "PATH": "/usr/bin:/bin"])
            }
            #expect(result.status == 1, "\(mutation)")
            #expect(result.output.contains("\(file): \(mutation.field)"), "\(mutation): \(result.output)")
        }
        #expect(try await connection.count("SELECT count(*) FROM runs") == 0)
    }

    /// JSON is YAML: the configs are written as JSON so that any value can go anywhere.
    static func yaml(_ value: Any) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]), as: UTF8.self)
    }

    static func set(_ node: inout Any, _ path: ArraySlice<String>, _ value: Any?) {
        guard let key = path.first else { return }
        let rest = path.dropFirst()
        if var array = node as? [Any], let index = Int(key) {
            var child = array[index]
            if rest.isEmpty { child = value ?? NSNull() } else { set(&child, rest, value) }
            array[index] = child
            node = array
        } else if var object = node as? [String: Any] {
            if rest.isEmpty {
                object[key] = value
            } else {
                var child = object[key] ?? [String: Any]()
                set(&child, rest, value)
                object[key] = child
            }
            node = object
        }
    }

    // MARK: - Judge responses

    static let labels = ["valid", "ambiguous", "wrong_skill"]

    static func completion(content: String, usage: String = #"{"prompt_tokens": 10, "completion_tokens": 5}"#)
        -> String
    {
        let quoted = String(decoding: try! JSONEncoder().encode(content), as: UTF8.self)
        return
            #"{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":\#(quoted)}}],"usage":\#(usage)}"#
    }

    static let badResponses: [String] = {
        var bodies: [String] = []
        let good = completion(content: #"{"label":"valid","rationale":"ok"}"#)
        // Every truncation of a good body, as a dropped connection leaves it.
        let bytes = Array(good.utf8)
        for length in stride(from: 0, to: bytes.count, by: 3) {
            bodies.append(String(decoding: bytes[..<length], as: UTF8.self))
        }
        bodies += [
            "", "null", "[]", "{}", #"{"choices": []}"#, #"{"choices": [{}]}"#, #"{"choices": [{"message": {}}]}"#,
            #"{"choices": [{"message": {"content": null}}]}"#, #"{"choices": "x"}"#,
            #"{"error": {"message": "overloaded"}}"#, "<html>502 Bad Gateway</html>",
        ]
        for content in [
            "", "valid", "The label is valid.", "{}", "[]", "null", #"{"label": null}"#, #"{"label": 3}"#,
            #"{"label": ["valid"]}"#, #"{"label": "maybe"}"#, #"{"label": "valid_ish"}"#,
            #"{"label": ""}"#, #"{"rationale": "no label"}"#, #"{"label": "valid", "label": "ambiguous"}"#,
            #"{"label": "valid", "label": "valid"}"#, #"{"label": "valid""#, "```json\n{\"label\": \"nope\"}\n```",
            #"{"label": "valid\u0000"}"#, #"{"label": "valid", "rationale": 5}"#,
        ] {
            bodies.append(completion(content: content))
        }
        // The response itself with a key twice.
        bodies.append(
            #"{"choices":[{"message":{"content":"{\"label\":\"valid\"}","content":"{\"label\":\"ambiguous\"}"}}]}"#)
        return bodies
    }()

    @Test func everyBadJudgeResponseIsAWrongAnswerNamingTheJudge() throws {
        #expect(Self.badResponses.count >= 60)
        for body in Self.badResponses {
            let error = #expect(throws: JudgeError.self, "\(body)") {
                try OpenAIFormat.parseAnswer(Data(body.utf8), labels: Self.labels, judge: "claude")
            }
            #expect(error?.code == .badAnswer, "\(body)")
            #expect(
                error?.description.hasPrefix("bad answer: judge claude: ") == true,
                "\(body): \(error?.description ?? "")")
        }
    }

    @Test func oddButReadableResponsesAreRead() throws {
        let cases: [(String, String, Int?)] = [
            (Self.completion(content: #"{"label":"valid","rationale":"ok"}"#), "valid", 10),
            (Self.completion(content: "```json\n{\"label\": \"ambiguous\"}\n```"), "ambiguous", 10),
            // Labels in another case or with spaces around, and JSON inside prose, are read.
            (Self.completion(content: #"{"label": "Valid"}"#), "valid", 10),
            (Self.completion(content: #"{"label": " wrong_skill "}"#), "wrong_skill", 10),
            (Self.completion(content: #"My answer: {"label": "ambiguous"}."#), "ambiguous", 10),
            (
                Self.completion(content: #"{"label":"valid"}"#, usage: #"{"prompt_tokens": 5000000000}"#), "valid",
                5_000_000_000
            ),
            (Self.completion(content: #"{"label":"valid"}"#, usage: #"{"prompt_tokens": -4}"#), "valid", 0),
            (Self.completion(content: #"{"label":"valid"}"#, usage: #"{"prompt_tokens": 1e30}"#), "valid", Int.max),
            (Self.completion(content: #"{"label":"valid"}"#, usage: #"{"prompt_tokens": "many"}"#), "valid", nil),
        ]
        for (body, label, tokens) in cases {
            let answer = try OpenAIFormat.parseAnswer(Data(body.utf8), labels: Self.labels, judge: "j")
            #expect(answer.label == label)
            #expect(answer.promptTokens == tokens, "\(body)")
        }
    }
}
