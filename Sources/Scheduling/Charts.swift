import Foundation

/// Minimal SVG line charts for simulation reports: latency CDFs and time series.
///
/// Self-contained SVG 1.1 text (no scripts, no external fonts), readable in a
/// browser or embedded in DocC and Markdown.
public struct SVGLineChart: Sendable {
    public struct Series: Sendable {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public init(name: String, points: [(x: Double, y: Double)]) {
            self.name = name
            self.points = points
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    /// Logarithmic x axis (latency CDFs spanning orders of magnitude).
    public var logX: Bool
    public var width = 720.0
    public var height = 400.0
    /// Fixed y range; `nil` fits the data from 0.
    public var yRange: ClosedRange<Double>?
    /// Fixed x range (points outside are dropped); `nil` fits the data.
    public var xRange: ClosedRange<Double>?
    /// Most points drawn per series (evenly thinned beyond that).
    public var maxPointsPerSeries = 800

    public init(title: String, xLabel: String, yLabel: String, series: [Series], logX: Bool = false,
                yRange: ClosedRange<Double>? = nil, xRange: ClosedRange<Double>? = nil) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.logX = logX
        self.yRange = yRange
        self.xRange = xRange
        self.series = series.map { s in
            let pts = s.points.filter { p in xRange.map { $0.contains(p.x) } ?? true }
            return Series(name: s.name, points: pts)
        }
    }

    static func thinned(_ pts: [(x: Double, y: Double)], to n: Int) -> [(x: Double, y: Double)] {
        guard pts.count > n, n > 1 else { return pts }
        let stride = Double(pts.count - 1) / Double(n - 1)
        return (0..<n).map { pts[Int((Double($0) * stride).rounded())] }
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]

    /// The chart as SVG text.
    public func render() -> String {
        let left = 70.0, right = 20.0, top = 40.0, bottom = 55.0
        let pw = width - left - right, ph = height - top - bottom
        let xs = series.flatMap { $0.points.map(\.x) }.filter { $0.isFinite && (!logX || $0 > 0) }
        let ys = series.flatMap { $0.points.map(\.y) }.filter(\.isFinite)
        var x0 = xRange?.lowerBound ?? xs.min() ?? 0, x1 = xRange?.upperBound ?? xs.max() ?? 1
        if logX {
            x0 = pow(10, (log10(max(x0, 1e-9))).rounded(.down))
            x1 = pow(10, (log10(max(x1, x0 * 10))).rounded(.up))
        } else {
            if xRange == nil { x0 = min(0, x0) }
            if x1 <= x0 { x1 = x0 + 1 }
        }
        let y0 = yRange?.lowerBound ?? 0
        var y1 = yRange?.upperBound ?? (ys.max() ?? 1)
        if y1 <= y0 { y1 = y0 + 1 }
        func px(_ x: Double) -> Double {
            logX ? left + (log10(max(x, x0)) - log10(x0)) / (log10(x1) - log10(x0)) * pw : left + (x - x0) / (x1 - x0) * pw
        }
        func py(_ y: Double) -> Double { top + ph - (y - y0) / (y1 - y0) * ph }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        func label(_ v: Double) -> String {
            if v == 0 { return "0" }
            let a = abs(v)
            if a >= 1000 || a < 0.01 { return String(format: "%.0e", v) }
            if a >= 10 { return String(format: "%.0f", v) }
            if a >= 1 { return String(format: "%.1f", v) }
            return String(format: "%.2f", v)
        }
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(f(width / 2))" y="22" text-anchor="middle" font-size="15" font-weight="bold">\(esc(title))</text>

        """
        // Grid and ticks.
        var xticks: [Double] = []
        if logX {
            var v = x0
            while v <= x1 * 1.0001 { xticks.append(v); v *= 10 }
        } else {
            xticks = (0...5).map { x0 + (x1 - x0) * Double($0) / 5 }
        }
        for v in xticks {
            out += "<line x1=\"\(f(px(v)))\" y1=\"\(f(top))\" x2=\"\(f(px(v)))\" y2=\"\(f(top + ph))\" stroke=\"#e5e5e5\"/>\n"
            out += "<text x=\"\(f(px(v)))\" y=\"\(f(top + ph + 16))\" text-anchor=\"middle\">\(label(v))</text>\n"
        }
        for i in 0...5 {
            let v = y0 + (y1 - y0) * Double(i) / 5
            out += "<line x1=\"\(f(left))\" y1=\"\(f(py(v)))\" x2=\"\(f(left + pw))\" y2=\"\(f(py(v)))\" stroke=\"#e5e5e5\"/>\n"
            out += "<text x=\"\(f(left - 6))\" y=\"\(f(py(v) + 4))\" text-anchor=\"end\">\(label(v))</text>\n"
        }
        out += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(pw))\" height=\"\(f(ph))\" fill=\"none\" stroke=\"#333\"/>\n"
        out += "<text x=\"\(f(left + pw / 2))\" y=\"\(f(height - 12))\" text-anchor=\"middle\">\(esc(xLabel))</text>\n"
        out += "<text transform=\"translate(16 \(f(top + ph / 2))) rotate(-90)\" text-anchor=\"middle\">\(esc(yLabel))</text>\n"
        for (i, s) in series.enumerated() {
            let color = Self.palette[i % Self.palette.count]
            let pts = Self.thinned(s.points.filter { $0.x.isFinite && $0.y.isFinite && (!logX || $0.x > 0) }, to: maxPointsPerSeries)
            if !pts.isEmpty {
                let path = pts.map { "\(f(px($0.x))),\(f(py(min(max($0.y, y0), y1))))" }.joined(separator: " ")
                out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(path)\"/>\n"
            }
            let ly = top + 14 + Double(i) * 16
            out += "<line x1=\"\(f(left + 10))\" y1=\"\(f(ly - 4))\" x2=\"\(f(left + 30))\" y2=\"\(f(ly - 4))\" stroke=\"\(color)\" stroke-width=\"3\"/>\n"
            out += "<text x=\"\(f(left + 36))\" y=\"\(f(ly))\">\(esc(s.name))</text>\n"
        }
        out += "</svg>\n"
        return out
    }

    /// An empirical CDF of `values` reduced to at most `points` points.
    public static func cdf(_ values: [Double], points: Int = 400) -> [(x: Double, y: Double)] {
        let s = values.sorted()
        guard !s.isEmpty else { return [] }
        let step = max(1, s.count / points)
        var out: [(x: Double, y: Double)] = []
        var i = 0
        while i < s.count {
            out.append((s[i], Double(i + 1) / Double(s.count)))
            i += step
        }
        out.append((s[s.count - 1], 1))
        return out
    }
}

/// Renders simulation results as reports: a text table, CSV and charts.
public enum SimulationReport {
    /// A column-per-policy text table of the headline metrics.
    public static func table(_ summaries: [SimulationSummary]) -> String {
        func ms(_ v: Double) -> String { String(format: "%.1f", v * 1000) }
        let rows: [(String, (SimulationSummary) -> String)] = [
            ("completed / rejected", { "\($0.completed) / \($0.rejected)" }),
            ("duration (s)", { String(format: "%.1f", $0.duration) }),
            ("request throughput (req/s)", { String(format: "%.2f", $0.requestThroughput) }),
            ("output tokens/s", { String(format: "%.0f", $0.outputTokenThroughput) }),
            ("total tokens/s", { String(format: "%.0f", $0.totalTokenThroughput) }),
            ("goodput (req/s)", { String(format: "%.2f", $0.goodput) }),
            ("SLO attainment", { String(format: "%.1f %%", $0.sloAttainment * 100) }),
            ("TTFT mean / p50 (ms)", { "\(ms($0.ttft.mean)) / \(ms($0.ttft.p50))" }),
            ("TTFT p90 / p95 / p99 (ms)", { "\(ms($0.ttft.p90)) / \(ms($0.ttft.p95)) / \(ms($0.ttft.p99))" }),
            ("TPOT mean / p50 (ms)", { "\(ms($0.tpot.mean)) / \(ms($0.tpot.p50))" }),
            ("TPOT p90 / p95 / p99 (ms)", { "\(ms($0.tpot.p90)) / \(ms($0.tpot.p95)) / \(ms($0.tpot.p99))" }),
            ("ITL p50 / p95 / p99 (ms)", { "\(ms($0.itl.p50)) / \(ms($0.itl.p95)) / \(ms($0.itl.p99))" }),
            ("E2E p50 / p95 / p99 (s)", { String(format: "%.2f / %.2f / %.2f", $0.e2e.p50, $0.e2e.p95, $0.e2e.p99) }),
            ("queue time p50 / p95 (s)", { String(format: "%.2f / %.2f", $0.queueTime.p50, $0.queueTime.p95) }),
            ("batch size mean / p50 / max", { String(format: "%.1f / %.0f / %.0f", $0.batchSize.mean, $0.batchSize.p50, $0.batchSize.max) }),
            ("KV usage mean / peak", { String(format: "%.1f %% / %.1f %%", $0.meanKVUsage * 100, $0.peakKVUsage * 100) }),
            ("preemptions", { "\($0.preemptions)" }),
            ("prefix-cache hit rate", { String(format: "%.1f %%", $0.prefixCacheHitRate * 100) }),
            ("engine steps", { "\($0.steps)" }),
            ("GPU-hours", { String(format: "%.3f", $0.replicaHours) }),
            ("GPU busy", { String(format: "%.1f %%", $0.utilization * 100) }),
        ]
        let header = ["metric"] + summaries.map(\.policy)
        var cells = [header]
        for (name, value) in rows { cells.append([name] + summaries.map(value)) }
        let widths = (0..<header.count).map { c in cells.map { $0[c].count }.max() ?? 0 }
        var out = ""
        for (i, row) in cells.enumerated() {
            out += row.enumerated().map { c, v in c == 0 ? v.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                : String(repeating: " ", count: widths[c] - v.count) + v }.joined(separator: "  ") + "\n"
            if i == 0 { out += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n" }
        }
        return out
    }

    /// The time series as CSV: `time_s,queue_depth,running,kv_usage,replicas,finished`.
    public static func timeSeriesCSV(_ samples: [TimeSample]) -> String {
        var out = "time_s,queue_depth,running,kv_usage,replicas,finished\n"
        for s in samples {
            out += String(format: "%.4f,%d,%d,%.5f,%d,%d\n", s.time, s.queueDepth, s.running, s.kvUsage, s.replicas, s.finished)
        }
        return out
    }

    /// Per-request results as CSV.
    public static func recordsCSV(_ records: [RequestRecord]) -> String {
        var out = "id,arrival_s,first_scheduled_s,first_token_s,finish_s,prompt_tokens,output_tokens,cached_tokens,preemptions,priority,replica,ttft_s,tpot_s,e2e_s,met_slo\n"
        for r in records {
            let head = String(format: "%d,%.6f,%.6f,%.6f,%.6f,%d,%d,%d,%d,%d,%d,%.6f,", r.id, r.arrivalTime, r.firstScheduledTime, r.firstTokenTime,
                              r.finishTime, r.promptTokens, r.outputTokens, r.cachedPromptTokens, r.preemptions, r.priority, r.replica, r.ttft)
            out += head + (r.tpot.map { String(format: "%.6f", $0) } ?? "") + String(format: ",%.6f,", r.e2e) + (r.metSLO ? "true" : "false") + "\n"
        }
        return out
    }

    /// TTFT and E2E latency CDFs, one line per simulation.
    public static func latencyCDFs(_ results: [(name: String, records: [RequestRecord])]) -> (ttft: String, e2e: String) {
        let ttft = SVGLineChart(title: "Time to first token — CDF", xLabel: "TTFT (s, log scale)", yLabel: "fraction of requests",
                                series: results.map { .init(name: $0.name, points: SVGLineChart.cdf($0.records.map(\.ttft))) }, logX: true, yRange: 0...1)
        let e2e = SVGLineChart(title: "End-to-end latency — CDF", xLabel: "E2E (s, log scale)", yLabel: "fraction of requests",
                               series: results.map { .init(name: $0.name, points: SVGLineChart.cdf($0.records.map(\.e2e))) }, logX: true, yRange: 0...1)
        return (ttft.render(), e2e.render())
    }

    /// KV usage and queue depth over time, one line per simulation.
    /// `until` clips the time axis (e.g. to the arrival window when one policy drains for much longer).
    public static func timeSeriesCharts(_ results: [(name: String, samples: [TimeSample])], until: Double? = nil) -> (kv: String, queue: String) {
        let range = until.map { 0...$0 }
        let kv = SVGLineChart(title: "KV cache usage over time", xLabel: "simulated time (s)", yLabel: "KV blocks in use (%)",
                              series: results.map { .init(name: $0.name, points: $0.samples.map { ($0.time, $0.kvUsage * 100) }) }, yRange: 0...100, xRange: range)
        let q = SVGLineChart(title: "Queue depth over time", xLabel: "simulated time (s)", yLabel: "requests waiting",
                             series: results.map { .init(name: $0.name, points: $0.samples.map { ($0.time, Double($0.queueDepth)) }) }, xRange: range)
        return (kv.render(), q.render())
    }
}
