import Foundation
import JuryStore

/// CPU time per vote (for pgbench, per job) on each side of the connection.
///
/// On a machine whose cores are all busy, throughput is the cores divided by the CPU a vote
/// costs in all: these figures say where a ratio to the minimal loop goes.
public struct CPUUse: Codable, Sendable {
    /// This process (worker, reducer) or pgbench, in microseconds.
    public var clientMicroseconds: Double
    /// PostgreSQL's processes, in microseconds; nil unless the server runs on this machine.
    public var serverMicroseconds: Double?

    /// Both sides; nil without the server's share.
    public var totalMicroseconds: Double? { serverMicroseconds.map { $0 + clientMicroseconds } }
}

/// CPU seconds used so far by this process, by its reaped children (pgbench) and, when it runs
/// on this machine, by the PostgreSQL server: differences of two readings give a phase's use.
struct CPUReading: Sendable {
    var process: Double
    var children: Double
    var server: Double?

    static func now(server: ServerProcesses?) -> CPUReading {
        CPUReading(
            process: seconds(RUSAGE_SELF), children: seconds(RUSAGE_CHILDREN), server: server?.cpuSeconds())
    }

    /// The use per vote (or job) between two readings; the client is this process or, with
    /// `clientIsChild`, the children it reaped meanwhile (pgbench).
    static func perUnit(
        from before: CPUReading, to after: CPUReading, units: Int, clientIsChild: Bool = false
    ) -> CPUUse {
        let n = Double(max(units, 1))
        let client = clientIsChild ? after.children - before.children : after.process - before.process
        var server: Double?
        if let start = before.server, let end = after.server { server = (end - start) * 1e6 / n }
        return CPUUse(clientMicroseconds: client * 1e6 / n, serverMicroseconds: server)
    }

    private static func seconds(_ who: __rusage_who) -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(who.rawValue), &usage)
        let user = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        let system = Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        return user + system
    }
}

/// The PostgreSQL server's processes on this machine, read from /proc: the postmaster and its
/// children (backends, WAL writer, checkpointer, autovacuum), including children already gone,
/// whose time the postmaster collected when it reaped them.
struct ServerProcesses: Sendable {
    let postmaster: Int32

    /// Finds the postmaster from a backend's pid, and checks it is the server's (its start time is
    /// `pg_postmaster_start_time()`): a remote server's backend pid may name any process here.
    static func find(_ server: ServerIdentity) -> ServerProcesses? {
        guard let backend = ProcStat(pid: server.backendPID), let bootTime = ProcStat.bootTime(),
            let postmaster = ProcStat(pid: backend.parent)
        else { return nil }
        let started = bootTime + postmaster.startTicks / ProcStat.ticksPerSecond
        guard abs(started - server.postmasterStartedAt) < 2 else { return nil }
        return ServerProcesses(postmaster: backend.parent)
    }

    /// The server's CPU so far. A child reaped while its siblings are read would count twice or
    /// not at all, so the reading is taken again until the postmaster reaped none meanwhile (a
    /// child that ended unreaped still shows its time).
    func cpuSeconds() -> Double? {
        for _ in 0..<10 {
            guard let before = ProcStat(pid: postmaster) else { return nil }
            var ticks = before.ownTicks + before.reapedChildrenTicks
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            for entry in entries {
                guard let pid = Int32(entry), let process = ProcStat(pid: pid), process.parent == postmaster else {
                    continue
                }
                ticks += process.ownTicks
            }
            guard let after = ProcStat(pid: postmaster) else { return nil }
            if after.reapedChildrenTicks == before.reapedChildrenTicks {
                return ticks / ProcStat.ticksPerSecond
            }
        }
        return nil
    }
}

/// The fields of /proc/PID/stat used here (proc(5)).
private struct ProcStat {
    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    var parent: Int32
    var ownTicks: Double
    var reapedChildrenTicks: Double
    var startTicks: Double

    init?(pid: Int32) {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let nameEnd = text.lastIndex(of: ")")
        else { return nil }
        // After the name: state (field 3), ppid (4), ... utime (14), stime (15), cutime (16),
        // cstime (17), ... starttime (22). The name may hold spaces, hence the split after it.
        let fields = text[text.index(after: nameEnd)...].split(separator: " ")
        func field(_ number: Int) -> Double? { Double(fields[number - 3]) }
        guard fields.count >= 20, let parent = Int32(fields[4 - 3]), let utime = field(14), let stime = field(15),
            let cutime = field(16), let cstime = field(17), let start = field(22)
        else { return nil }
        self.parent = parent
        ownTicks = utime + stime
        reapedChildrenTicks = cutime + cstime
        startTicks = start
    }

    /// When the machine booted, in seconds since 1970 (btime in /proc/stat).
    static func bootTime() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("btime ") })
        else { return nil }
        return Double(line.dropFirst(6))
    }
}
