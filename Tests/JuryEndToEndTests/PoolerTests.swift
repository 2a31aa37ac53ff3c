import Foundation
import JuryBench
import JuryDomain
import JuryPostgres
import JuryStore
import JuryTestSupport
import Testing

/// Workers and reducers as processes, counted by their connections, and run through a real
/// PgBouncer in transaction pooling.
@Suite("Connections and poolers")
struct PoolerTests {
    @Test(.freshDatabase) func aWorkerHoldsTwoConnectionsAndAReducerTwo() async throws {
        try await withMockJudges([mockJudge("c-a", seed: 21, latency: 30), mockJudge("c-b", seed: 22, latency: 30)]) {
            baseURL, _ in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            let jury = try await store(url)
            let run = try await createRun(runYAML(models: ["c-a", "c-b"], baseURL: baseURL), in: jury)
            try await enqueue(try writeCorpus(count: 300), run: run.name, in: jury)
            let worker = try spawnJury(["worker", "--run", run.name, "--concurrency", "8"], database: url)
            let reducer = try spawnJury(["reducer", "--run", run.name], database: url)
            defer {
                worker.kill(SIGKILL)
                reducer.kill(SIGKILL)
            }
            try await eventually("votes to be recorded") {
                try await connection.count("SELECT count(*) FROM votes") >= 50
            }
            #expect(try await backends(named: "jury worker", on: connection) == 2)
            #expect(try await backends(named: "jury reducer", on: connection) == 2)
        }
    }

    @Test(.freshDatabase) func workersAndAReducerPollingThroughPgBouncerInTransactionPoolingFinishARun() async throws {
        try await withMockJudges([mockJudge("p-a", seed: 23, latency: 20), mockJudge("p-b", seed: 24, latency: 20)]) {
            baseURL, _ in
            let url = try TestDatabase.url
            let connection = try await connect(url)
            // Scoped, so that its connection closes: from then on the only other backends are PgBouncer's.
            let runName: String
            do {
                let jury = try await store(url)
                runName = try await createRun(runYAML(models: ["p-a", "p-b"], baseURL: baseURL), in: jury).name
                try await enqueue(try writeCorpus(count: 400), run: runName, in: jury)
            }

            let bouncer = try PgBouncer(server: url, poolSize: 2)
            defer { bouncer.stop() }
            let processes = try [
                spawnJury(["worker", "--poll", "--run", runName, "--concurrency", "16"], database: bouncer.url),
                spawnJury(["worker", "--poll", "--run", runName, "--concurrency", "16"], database: bouncer.url),
                spawnJury(["reducer", "--poll", "--run", runName], database: bouncer.url),
            ]
            defer { for process in processes { process.kill(SIGKILL) } }
            // Five client connections share two server connections: only a transaction pooler does that.
            var mostServerConnections = 0
            try await eventually(timeout: 120, "every example to be decided through the pooler") {
                mostServerConnections = max(mostServerConnections, try await backends(named: nil, on: connection))
                return try await connection.count("SELECT count(*) FROM verdicts") == 400
            }
            #expect(mostServerConnections >= 1 && mostServerConnections <= 2)
            #expect(try await connection.count("SELECT count(*) FROM votes") == 800)
            #expect(try await connection.count("SELECT count(*) FROM jobs") == 0)
            #expect(
                try await connection.count("SELECT count(*) FROM examples WHERE jobs_open <> 0 OR state <> 'decided'")
                    == 0)
            // The processes registered and beat through the pooler too.
            #expect(try await connection.count("SELECT count(*) FROM workers WHERE role = 'worker'") == 2)
            for process in processes { process.kill(SIGTERM) }
            for process in processes { #expect(await process.exitStatus() == 0) }
        }
    }

    /// Client backends of this database other than `connection`'s, with this application name
    /// when given.
    private func backends(named name: String?, on connection: PostgresConnection) async throws -> Int {
        try await connection.count(
            """
            SELECT count(*) FROM pg_stat_activity
            WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
              AND (\(name)::text IS NULL OR application_name = \(name))
            """)
    }

    private func spawnJury(_ arguments: [String], database: String) throws -> Subprocess {
        try startJury(arguments + ["--log-level", "error", "--idle-poll-seconds", "0.2"], database: database)
    }
}

/// A PgBouncer in transaction pooling in front of a test server, in a directory of its own.
/// It refuses to run as root, so under root it runs as `postgres`.
final class PgBouncer {
    let url: String
    private let directory: URL
    private let process: Subprocess

    init(server: String, poolSize: Int) throws {
        let binary = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
        let found = try #require(binary, "PgBouncer is needed: apt-get install pgbouncer (deploy/local/test.sh does)")
        let target = try #require(URLComponents(string: server))
        let host = target.host ?? "127.0.0.1"
        let serverPort = target.port ?? 5432
        let user = target.user ?? "postgres"
        let database = String(target.path.dropFirst())
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("jury-pgbouncer-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var attempt = 0
        while true {
            // Below Linux's ephemeral range (32768-60999), where outgoing connections take ports;
            // another process may still hold the one drawn, so a taken port means another draw.
            let port = Int.random(in: 20_000..<32_000)
            let config = """
                [databases]
                \(database) = host=\(host) port=\(serverPort) dbname=\(database) user=\(user)
                [pgbouncer]
                listen_addr = 127.0.0.1
                listen_port = \(port)
                unix_socket_dir =
                auth_type = trust
                auth_file = \(directory.path)/users.txt
                pool_mode = transaction
                default_pool_size = \(poolSize)
                max_client_conn = 100
                ignore_startup_parameters = extra_float_digits
                logfile = \(directory.path)/pgbouncer-\(port).log
                pidfile = \(directory.path)/pgbouncer-\(port).pid
                """
            try config.write(to: directory.appendingPathComponent("pgbouncer.ini"), atomically: true, encoding: .utf8)
            try "\"\(user)\" \"\"\n".write(
                to: directory.appendingPathComponent("users.txt"), atomically: true, encoding: .utf8)
            var command = [found, directory.appendingPathComponent("pgbouncer.ini").path]
            if getuid() == 0 {
                _ = try Subprocess.run("/usr/bin/chown", ["-R", "postgres", directory.path], environment: [:])
                command = ["/usr/sbin/runuser", "-u", "postgres", "--"] + command
            }
            let started = try Subprocess.spawn(
                command[0], Array(command.dropFirst()), environment: ["PATH": "/usr/bin:/bin"])
            let log = directory.appendingPathComponent("pgbouncer-\(port).log")
            do {
                try Self.waitUntilListening(log: log)
                process = started
                url = "postgresql://\(user)@127.0.0.1:\(port)/\(database)"
                return
            } catch let error as PostgresError where error.message.contains("Address already in use") && attempt < 5 {
                started.kill(SIGTERM)
                attempt += 1
            }
        }
    }

    private static func waitUntilListening(log file: URL) throws {
        for _ in 0..<100 {
            let log = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
            if log.contains("process up") { return }
            if log.contains("FATAL") || log.contains("ERROR") {
                throw PostgresError(code: .connectionFailed, message: "PgBouncer did not start: \(log)")
            }
            usleep(100_000)
        }
        throw PostgresError(code: .connectionFailed, message: "PgBouncer did not start within 10 seconds")
    }

    func stop() {
        process.kill(SIGTERM)
        try? FileManager.default.removeItem(at: directory)
    }
}
