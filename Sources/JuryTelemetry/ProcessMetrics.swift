import Foundation
import JuryStore

#if canImport(Glibc)
    import Glibc
#endif

/// What every process exports from its first scrape, before any event: its build, and the
/// figures Prometheus's own clients export for a process (`process_*`), read from /proc at
/// each scrape. Dashboards and `absent()` alerts then work on an idle process.
enum ProcessMetrics {
    /// When the process started, as seconds since the epoch.
    static let startTime = Date().timeIntervalSince1970

    static func exposition() -> String {
        var lines = [
            "# HELP jury_build_info The jury binary this process runs: the schema version it carries.",
            "# TYPE jury_build_info gauge",
            "jury_build_info{schema_version=\"\(Schema.embedded.version)\"} 1",
            "# HELP process_start_time_seconds Start time of the process since the Unix epoch, in seconds.",
            "# TYPE process_start_time_seconds gauge",
            "process_start_time_seconds \(startTime)",
        ]
        #if os(Linux)
            if let stat = statFields() {
                let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
                let page = Double(sysconf(Int32(_SC_PAGESIZE)))
                if let user = Double(stat[11]), let system = Double(stat[12]), ticks > 0 {
                    lines += [
                        "# HELP process_cpu_seconds_total Total user and system CPU time spent, in seconds.",
                        "# TYPE process_cpu_seconds_total counter",
                        "process_cpu_seconds_total \((user + system) / ticks)",
                    ]
                }
                if let virtual = Double(stat[20]), let resident = Double(stat[21]) {
                    lines += [
                        "# HELP process_virtual_memory_bytes Virtual memory size, in bytes.",
                        "# TYPE process_virtual_memory_bytes gauge",
                        "process_virtual_memory_bytes \(virtual)",
                        "# HELP process_resident_memory_bytes Resident memory size, in bytes.",
                        "# TYPE process_resident_memory_bytes gauge",
                        "process_resident_memory_bytes \(resident * page)",
                    ]
                }
            }
            if let open = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
                lines += [
                    "# HELP process_open_fds Number of open file descriptors.",
                    "# TYPE process_open_fds gauge",
                    "process_open_fds \(open.count)",
                ]
            }
            var limit = rlimit()
            if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
                lines += [
                    "# HELP process_max_fds Maximum number of open file descriptors.",
                    "# TYPE process_max_fds gauge",
                    "process_max_fds \(limit.rlim_cur)",
                ]
            }
        #endif
        return lines.joined(separator: "\n") + "\n"
    }

    /// /proc/self/stat's fields after the command name (which may hold spaces): the process's
    /// state first, so field N of proc(5) is at N - 3.
    private static func statFields() -> [Substring]? {
        guard let text = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 21 ? fields : nil
    }
}
