import ArgumentParser
import Foundation
import JuryMockJudge
import Logging
import ServiceLifecycle

struct MockJudge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mock-judge",
        abstract: "Serve mock judges over HTTP in the OpenAI, Anthropic and Gemini formats (no API keys needed).",
        discussion: """
            Serves OpenAI Chat Completions (POST /v1/chat/completions), Anthropic Messages (POST /v1/messages) \
            and Gemini generateContent (POST /v1beta/models/MODEL:generateContent). Point a judge's base_url \
            at http://HOST:PORT/v1 (for gemini, http://HOST:PORT/v1beta) and its model at a model of the config.

            The mock refuses what the providers refuse now, with a 400 in their words: any sampling \
            parameter (temperature, top_p, top_k) on Anthropic version 2026-10-21 \
            or later and on generation-5 Claude models (claude-opus-5, ...); any temperature but 1, and \
            max_tokens, on OpenAI reasoning models (gpt-5*, o1, o3, o4-mini, ...); thinking with a forced tool \
            on Anthropic. A judge with thinking_tokens reports them as each provider does.

            The config names each mock judge's model, accuracy, latency, errors, limits and faults; \
            deploy/demo/mock-judges.yaml is an example.
            """)
    @Option(help: "Port to listen on (0 picks a free one and prints it).") var port = 8089
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "YAML file describing each mock judge.") var config: String
    @Option(help: "How much to log, to stderr.") var logLevel: Logger.Level = .warning

    func run() async throws {
        var logger = Logger(label: "jury.mock-judge")
        logger.logLevel = logLevel
        let server = MockJudgeServer(config: try MockJudgeConfig.load(path: config), logger: logger)
        let application = server.application(host: host, port: port) { port in
            FileHandle.standardOutput.write(Data("mock judges listening on http://\(host):\(port)/v1\n".utf8))
        }
        try await runUntilSignalled([application], maximumShutdownSeconds: 5, logger: logger)
    }
}
