import JuryDomain
import Testing

@Suite("Reading answers")
struct AnswerReaderTests {
    let reader = AnswerReader(labels: ["valid", "needs_more_context", "ambiguous"], judge: "j1")

    @Test(arguments: [
        #"{"label": "valid", "rationale": "ok"}"#,
        "```json\n{\"label\": \"valid\", \"rationale\": \"ok\"}\n```",
        #"Here is my answer: {"label": "valid", "rationale": "ok"} Hope that helps."#,
        #"{"label": "  VALID ", "rationale": "ok"}"#,
        #"{"rationale": "braces } in { a string", "label": "Valid"}"#,
    ])
    func generousReadings(text: String) throws {
        let answer = try reader.read(text: text)
        #expect(answer.label == "valid")
    }

    @Test(arguments: [
        ("no JSON at all", "holds no JSON object"),
        (#"{"label": "valid", "label": "ambiguous"}"#, "not valid JSON"),
        (#"{"label": "valid",}"#, "not valid JSON"),
        (#"{"label": 3}"#, "no string label"),
        (#"{"rationale": "forgot"}"#, "no string label"),
        (#"{"label": "maybe"}"#, "not in the taxonomy"),
        (#"{"label": "valid"#, "holds no JSON object"),
    ])
    func strictChecks(text: String, reason: String) {
        let error = #expect(throws: JudgeError.self) { try reader.read(text: text) }
        #expect(error?.code == .badAnswer)
        #expect(error?.message.contains(reason) == true, "\(error?.message ?? "")")
        #expect(error?.message.hasPrefix("judge j1: ") == true)
        // What the judge said is kept for people, apart from the message.
        #expect(error?.answer == text)
    }

    @Test func keptAnswersAreCut() {
        let long = String(repeating: "x", count: 10_000)
        let error = #expect(throws: JudgeError.self) { try reader.read(text: long) }
        #expect(error?.answer?.count == JudgeError.answerLimit)
    }
}

@Suite("Prompts")
struct PromptRenderingTests {
    @Test func objectsAndArraysRenderAsCanonicalJSON() throws {
        let yaml = """
            name: p
            taxonomy: [{ label: valid, description: ok }, { label: ambiguous, description: unclear }]
            judges: [{ name: a, provider: openai-compatible, model: m, base_url: "http://127.0.0.1:9/v1" }]
            prompt:
              system: "{{#labels}}{{.}};{{/labels}}"
              user: "{{id}} {{meta}} {{meta.shop.name}} {{#tags}}[{{.}}]{{/tags}}{{^missing}}none{{/missing}} {{nothing}}."
            """
        let renderer = try PromptRenderer(config: try RunConfig.parse(yaml: yaml, file: "p.yaml"))
        let payload = try JSONValue.parse(
            Array(
                #"{"meta": {"shop": {"name": "Zed", "id": 2}, "a": 1.5}, "tags": ["x", {"b": 1, "a": 2}], "nothing": null}"#
                    .utf8))
        let request = renderer.render(id: "e7", payload: payload)
        #expect(request.system == "valid;ambiguous;")
        #expect(request.user == #"e7 {"a":1.5,"shop":{"id":2,"name":"Zed"}} Zed [x][{"a":2,"b":1}]none ."#)
        #expect(request.promptHash.count == 16)
        #expect(request.promptHash == renderer.render(id: "e7", payload: payload).promptHash)
        #expect(request.promptHash != renderer.render(id: "e8", payload: payload).promptHash)
    }

    /// A system message that reads only the taxonomy is rendered once; one that reads the
    /// example, even inside a section, is rendered for each example.
    @Test(arguments: [
        (
            "{{#taxonomy}}{{label}}: {{description}}. {{/taxonomy}}", "valid: ok. ambiguous: unclear. ",
            "valid: ok. ambiguous: unclear. "
        ),
        ("For {{store}}: {{#labels}}{{.}} {{/labels}}", "For Zed: valid ambiguous ", "For Ark: valid ambiguous "),
        ("{{#labels}}{{.}}@{{store}} {{/labels}}", "valid@Zed ambiguous@Zed ", "valid@Ark ambiguous@Ark "),
        ("{{^store}}no shop{{/store}}", "", ""),
    ])
    func aSystemMessageIsTheExamplesWheneverItReadsIt(template: String, first: String, second: String) throws {
        let yaml = """
            name: p
            taxonomy: [{ label: valid, description: ok }, { label: ambiguous, description: unclear }]
            judges: [{ name: a, provider: openai-compatible, model: m, base_url: "http://127.0.0.1:9/v1" }]
            prompt:
              system: "\(template)"
              user: "{{id}}"
            """
        let renderer = try PromptRenderer(config: try RunConfig.parse(yaml: yaml, file: "p.yaml"))
        #expect(renderer.render(id: "1", payload: .object(["store": .string("Zed")])).system == first)
        #expect(renderer.render(id: "2", payload: .object(["store": .string("Ark")])).system == second)
    }
}
