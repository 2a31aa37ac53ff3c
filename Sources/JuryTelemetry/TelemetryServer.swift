import CoreMetrics
import HTTPTypes
import Hummingbird
public import JuryRuntime
public import Logging
import NIOCore
public import Prometheus
public import ServiceLifecycle

/// A worker's or reducer's HTTP endpoint for operators:
///
/// - `GET /metrics`: every metric in the Prometheus text format, each with its HELP line;
///   `beforeScrape` first refreshes what is read from the database (the queue's depth). The
///   build and the process's own figures (`ProcessMetrics`) come first, from the first scrape.
/// - `GET /healthz`: 200 while the process's loop turns, else 503 (liveness).
/// - `GET /readyz`: 200 while it reaches the database and is not stopping, else 503 (readiness).
public struct TelemetryServer: Sendable {
    public let registry: PrometheusCollectorRegistry
    let probes: ProcessProbes
    let beforeScrape: @Sendable () async -> Void
    let logger: Logger

    /// Makes the registry the process's swift-metrics backend; call once, before any metric is made.
    public static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Judge calls take from milliseconds to minutes; claims from 1 job to thousands.
        factory.durationHistogramBuckets[RuntimeMetrics.judgeCallDuration.name] = [
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2),
            .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(120),
        ]
        factory.valueHistogramBuckets[RuntimeMetrics.claimSize.name] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000]
        MetricsSystem.bootstrap(factory)
        return registry
    }

    public init(
        registry: PrometheusCollectorRegistry, probes: ProcessProbes, logger: Logger,
        beforeScrape: @escaping @Sendable () async -> Void = {}
    ) {
        self.registry = registry
        self.probes = probes
        self.beforeScrape = beforeScrape
        self.logger = logger
    }

    /// The server as a service; `onStart` receives the port it listens on (useful with port 0).
    public func service(host: String, port: Int, onStart: @escaping @Sendable (Int) -> Void = { _ in }) -> some Service
    {
        let router = Router()
        router.get("metrics") { _, _ in
            await beforeScrape()
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(
                status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: Self.exposition(registry))))
        }
        router.get("healthz") { _, _ in
            Response(
                status: probes.isAlive ? .ok : .serviceUnavailable,
                body: .init(byteBuffer: ByteBuffer(string: probes.isAlive ? "alive\n" : "stalled\n")))
        }
        router.get("readyz") { _, _ in
            let ready = probes.isReady
            return Response(
                status: ready ? .ok : .serviceUnavailable,
                body: .init(byteBuffer: ByteBuffer(string: ready ? "ready\n" : "not ready\n")))
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "jury"),
            onServerRunning: { channel in onStart(channel.localAddress?.port ?? port) },
            logger: logger)
    }

    /// What `/metrics` answers: the build and the process's own figures, then every metric of
    /// the registry with the HELP line `metrics` gives it.
    public static func exposition(
        _ registry: PrometheusCollectorRegistry, metrics: [RuntimeMetrics.Metric] = RuntimeMetrics.all
    ) -> String {
        ProcessMetrics.exposition() + withHelp(registry.emitToString(), metrics: metrics)
    }

    /// swift-metrics carries no help text: each family gets its HELP line here, before its TYPE line.
    static func withHelp(_ exposition: String, metrics: [RuntimeMetrics.Metric] = RuntimeMetrics.all) -> String {
        let help = Dictionary(metrics.map { ($0.name, $0.help) }, uniquingKeysWith: { first, _ in first })
        var out = ""
        out.reserveCapacity(exposition.utf8.count + help.count * 100)
        for line in exposition.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE "), let name = line.dropFirst(7).split(separator: " ").first,
                let text = help[String(name)]
            {
                out += "# HELP \(name) \(text)\n"
            }
            out += line
            out += "\n"
        }
        // The split kept the final empty line: one newline too many.
        if out.hasSuffix("\n\n") { out.removeLast() }
        return out
    }
}
