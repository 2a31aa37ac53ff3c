import ArgumentParser
import JuryDomain
import JuryRuntime
import JuryStore

extension RunCommand {
    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a live run's judges, limits, prices, budget or retries from its edited YAML config.",
            discussion: """
                Changes what no verdict depends on, while workers run: each judge's model, parameters, \
                base_url, api_key_env, limits, price, timeout, concurrency and order; the run's budget, \
                retry policy, max_attempts, description, training templates and review (per_item). It prints each change, \
                keeps the config it replaces in run_config_history (the view jury_run_config_history), \
                and workers take the new settings within seconds, without a restart. A judge stopped on \
                every worker stays stopped: resume it with `jury judge resume`, then `jury retry` redoes \
                the jobs that failed.

                The taxonomy, the prompt, the consensus rule and the panel's names cannot change in \
                place: the votes already cast were made under them. The error names the field; create \
                a new run, or re-decide every verdict under another rule with `jury reduce`.
                """)
        @OptionGroup var db: DatabaseOptions
        @Argument(help: "The run's name.") var name: String
        @Option(help: "The run's YAML file, edited.") var config: String
        @Flag(help: "Print what would change; change nothing.") var dryRun = false

        func run() async throws {
            let logger = db.makeLogger("jury.run")
            let runConfig = try RunConfig.load(path: config)
            let store = try await db.connect("jury run update", logger: logger)
            let changes = try await store.updateRun(name, to: runConfig, file: config, dryRun: dryRun)
            guard !changes.isEmpty else {
                print("run \(name): nothing to change")
                return
            }
            for change in changes { print("  \(change)") }
            print(
                dryRun
                    ? "run \(name): \(changes.count) changes, not applied (--dry-run)"
                    : "run \(name): \(changes.count) changes applied; workers take them within seconds")
        }
    }
}
