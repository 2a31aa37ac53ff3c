import ArgumentParser
import JuryStore

struct JudgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "judge", abstract: "Resume a judge that was stopped on every worker.",
        subcommands: [Resume.self])

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Let workers call a judge again after a failure no retry cures (bad key, unknown model, quota).",
            discussion: """
                The first worker that meets such a failure stops the judge for every worker; `jury status` \
                shows why. Fix the cause (the key in the workers' environment, the model name, the account), \
                then resume it. If the cause remains, the next call stops it again.
                """)
        @OptionGroup var db: DatabaseOptions
        @Argument(help: "The run.") var run: String
        @Argument(help: "The judge.") var judge: String

        func run() async throws {
            let store = try await db.connect("jury judge", logger: db.makeLogger("jury.judge"))
            try await store.resumeJudge(judge, run: run)
            print("judge \(judge) of run \(run) resumed")
        }
    }
}
