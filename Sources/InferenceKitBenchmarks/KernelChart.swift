import Foundation

extension KernelBenchmarkReport {
    /// A hand-written SVG bar chart: one panel per workload, one horizontal bar per row (GFLOP/s), each panel
    /// scaled to its own largest bar so small and large shapes stay readable. Skipped rows are listed, not drawn.
    public func svg() -> String {
        var workloads: [String] = []
        for r in results where !workloads.contains(r.workload) { workloads.append(r.workload) }
        let width = 860.0, labelWidth = 230.0, barArea = 470.0, barHeight = 18.0, gap = 6.0
        let titleHeight = 64.0, panelHeader = 26.0, panelGap = 14.0

        let colours: [MeasurementMode: String] = [.endToEnd: "#3b6fb6", .kernelOnly: "#e08a1e", .baseline: "#8c8c8c"]
        var body = ""
        var y = titleHeight
        for w in workloads {
            let rows = results.filter { $0.workload == w }
            // Decode is bound by memory, not arithmetic: its panel shows K/V bytes per second against the read baseline.
            let bandwidthPanel = rows.first?.kind == .decodeAttention
            let unit = bandwidthPanel ? "GB/s" : "GFLOP/s"
            let value: (KernelResult) -> Double? = { r in bandwidthPanel ? (r.kvGBps ?? r.gbps) : r.gflops }
            let maxValue = rows.compactMap(value).max() ?? 1
            let title = bandwidthPanel ? "\(w) — K/V GB/s (memory bound)" : w
            body += "<text x=\"10\" y=\"\(y + 17)\" class=\"panel\">\(escape(title))</text>\n"
            y += panelHeader
            for r in rows {
                body += "<text x=\"\(labelWidth - 8)\" y=\"\(y + barHeight - 5)\" class=\"label\" text-anchor=\"end\">\(escape(r.backend))</text>\n"
                if let g = value(r) {
                    let length = max(1, barArea * g / maxValue)
                    body += "<rect x=\"\(labelWidth)\" y=\"\(y)\" width=\"\(String(format: "%.1f", length))\" height=\"\(barHeight)\" fill=\"\(colours[r.mode] ?? "#3b6fb6")\"/>\n"
                    body += "<text x=\"\(String(format: "%.1f", labelWidth + length + 6))\" y=\"\(y + barHeight - 5)\" class=\"value\">\(fmt(g)) \(unit)</text>\n"
                } else {
                    body += "<text x=\"\(labelWidth)\" y=\"\(y + barHeight - 5)\" class=\"note\">\(escape(r.note ?? "not measured"))</text>\n"
                }
                y += barHeight + gap
            }
            y += panelGap
        }
        let height = y + 30
        let subtitle = "\(machine.cpu), \(machine.cores) cores — medians — command: \(command)"
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"Helvetica, Arial, sans-serif\">\n"
        svg += "<style>.title{font-size:18px;font-weight:bold}.sub{font-size:11px;fill:#555}.panel{font-size:13px;font-weight:bold}.label{font-size:12px}.value{font-size:11px}.note{font-size:11px;fill:#888;font-style:italic}</style>\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        svg += "<text x=\"10\" y=\"24\" class=\"title\">InferenceKit kernels: GFLOP/s by backend (decode: GB/s)</text>\n"
        svg += "<text x=\"10\" y=\"42\" class=\"sub\">\(escape(subtitle))</text>\n"
        // Legend.
        var lx = 10.0
        for (mode, text) in [(MeasurementMode.endToEnd, "end-to-end (Tensor API)"), (.kernelOnly, "kernel-only (device-resident)"), (.baseline, "baseline (raw sgemm, memory read)")] {
            svg += "<rect x=\"\(lx)\" y=\"50\" width=\"10\" height=\"10\" fill=\"\(colours[mode] ?? "")\"/><text x=\"\(lx + 14)\" y=\"59\" class=\"value\">\(text)</text>\n"
            lx += 200
        }
        svg += body
        svg += "<text x=\"10\" y=\"\(Int(height) - 10)\" class=\"sub\">Bars in each panel are scaled to that panel's largest value.</text>\n"
        svg += "</svg>\n"
        return svg
    }
}

private func escape(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
}
