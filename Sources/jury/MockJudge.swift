import ArgumentParser
import Foundation
import JuryMockJudge
import Logging
import ServiceLifecycle

struct MockJudge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mock-judge",
        abstract: "Serve mock judges over HTTP in the OpenAI Chat Completions format (no API keys needed).",
        discussion: "Point a judge's base_url at http://HOST:PORT/v1 and its model at a model of the config.")
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
