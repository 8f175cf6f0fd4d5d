import Foundation
import NIOCore
import SwitchyardCore

/// How client commands show task records: `task`, `status ID`, `cancel` and `tasks`.
enum TaskOutput {
    /// The record as a JSON object. Times are ISO 8601 UTC strings with
    /// milliseconds and are left out while 0 (not yet); `timeoutMs` 0 means none.
    static func jsonObject(_ info: TaskInfo) -> [String: Any] {
        var object: [String: Any] = [
            "id": info.id, "state": info.state.description, "handler": info.handler, "priority": info.priority,
            "attempts": info.attempts, "maxAttempts": info.maxAttempts, "timeoutMs": info.timeoutMillis,
        ]
        if let key = info.key { object["key"] = key }
        if let uniqueKey = info.uniqueKey { object["uniqueKey"] = uniqueKey }
        let times: [(String, EpochMillis)] = [
            ("runAt", info.runAt), ("createdAt", info.createdAt), ("startedAt", info.startedAt),
            ("finishedAt", info.finishedAt),
        ]
        for (name, millis) in times where millis != 0 { object[name] = formatISO8601(millis, fraction: true) }
        if let code = info.errorCode { object["errorCode"] = code.name }
        if let message = info.errorMessage { object["error"] = message }
        if let result = info.result {
            object["resultSize"] = result.readableBytes
            object["result"] = String(decoding: result.readableBytesView, as: UTF8.self)
        }
        return object
    }

    static func printJSON(_ value: Any) throws {
        let data = try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .prettyPrinted])
        print(String(decoding: data, as: UTF8.self))
    }

    /// Every field of one record, one per line.
    static func printRecord(_ info: TaskInfo) {
        print("task \(info.id): \(info.state)")
        let rows: [(String, String)] = [
            ("handler", info.handler),
            ("priority", "\(info.priority)"),
            ("attempts", "\(info.attempts) of \(info.maxAttempts)"),
            ("key", info.key ?? "-"),
            ("unique key", info.uniqueKey ?? "-"),
            ("timeout", info.timeoutMillis == 0 ? "none" : formatMillis(UInt64(info.timeoutMillis))),
            ("run at", time(info.runAt)),
            ("created", time(info.createdAt)),
            ("started", time(info.startedAt)),
            ("finished", time(info.finishedAt)),
            ("error", info.errorCode.map { "\($0.name): \(info.errorMessage ?? "")" } ?? "-"),
            ("result", info.result.map(describe) ?? "-"),
        ]
        for (label, value) in rows { print("  " + pad(label, 12) + value) }
    }

    /// One line per record, then a hint for the next page when this one is full.
    static func printTable(_ infos: [TaskInfo]) {
        let header = ["ID", "STATE", "HANDLER", "PRIORITY", "ATTEMPTS", "RUN-AT/FINISHED", "ERROR"]
        let rows = infos.map { info -> [String] in
            let when = info.state.isFinal ? info.finishedAt : info.runAt
            let error = info.errorCode.map { "\($0.name): \(oneLine(info.errorMessage ?? "", limit: 60))" } ?? "-"
            return [
                "\(info.id)", info.state.description, info.handler, "\(info.priority)",
                "\(info.attempts)/\(info.maxAttempts)", when == 0 ? "-" : formatISO8601(when / 1000 * 1000), error,
            ]
        }
        var widths = header.map(\.count)
        for row in rows {
            for (column, cell) in row.enumerated() { widths[column] = max(widths[column], cell.count) }
        }
        for row in [header] + rows {
            let cells = row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : pad(cell, widths[column] + 2)
            }
            print(cells.joined())
        }
    }

    /// ISO 8601 UTC, or "-" for 0 (not yet).
    static func time(_ millis: EpochMillis) -> String { millis == 0 ? "-" : formatISO8601(millis) }

    /// "12 bytes: hello", the text cut to 200 characters; or "12 bytes (binary)".
    static func describe(_ result: ByteBuffer) -> String {
        let size = result.readableBytes == 1 ? "1 byte" : "\(result.readableBytes) bytes"
        guard result.readableBytes > 0 else { return size }
        guard let text = String(validating: result.readableBytesView, as: UTF8.self) else { return size + " (binary)" }
        return size + ": " + oneLine(text, limit: 200)
    }

    /// `text` on one line (line breaks shown as ⏎), at most `limit` characters.
    static func oneLine(_ text: String, limit: Int) -> String {
        let flat = text.replacingOccurrences(of: "\r\n", with: "⏎").replacingOccurrences(of: "\n", with: "⏎")
        return flat.count > limit ? String(flat.prefix(limit)) + "…" : flat
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}
