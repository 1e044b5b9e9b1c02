import ArgumentParser
import Foundation
import MRKLocalKMS
import MRKProxy

struct SQLCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sql",
        abstract: "Run SQL through MRKProxy (encrypting and decrypting the configured columns).",
        discussion: "With neither -c nor -f, starts an interactive shell (\\d lists tables, \\d TABLE describes one, \\s shows history, \\q quits). History is kept in ~/.mrkproxy_history, mode 0600 (MRKPROXY_HISTORY overrides; empty turns it off); it may hold the literals you type. SQL given with -c is visible in the process list.")

    @Option(help: "The MRKProxy configuration file.")
    var config: String

    @Option(help: "The region to run in (default: the configuration's region; MRKPROXY_REGION overrides the file).")
    var region: String?

    @Option(name: .customShort("c"), help: "SQL to run (one or more statements separated by ';').")
    var command: String?

    @Option(name: .customShort("f"), help: "A file of SQL statements to run.")
    var file: String?

    @Flag(help: "Print each statement's rows as one JSON array of objects.")
    var json = false

    @Flag(help: "Print rows as CSV with a header line.")
    var csv = false

    func validate() throws {
        if command != nil && file != nil { throw ValidationError("give -c or -f, not both") }
        if json && csv { throw ValidationError("give --json or --csv, not both") }
        if let file {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory) else {
                throw ValidationError("cannot read \(file): no such file")
            }
            guard !isDirectory.boolValue else { throw ValidationError("cannot read \(file): it is a directory") }
            guard FileManager.default.isReadableFile(atPath: file) else { throw ValidationError("cannot read \(file): permission denied") }
        }
    }

    func run() async throws {
        let configuration = try ProxyConfiguration.load(path: config)
        let region = region ?? configuration.region
        let database = try await EncryptedDatabase.open(configuration: configuration, region: region,
                                                        kms: configuration.kmsClient(region: region))
        let shell = Shell(connection: try database.connect(), configuration: configuration,
                          format: json ? .json : csv ? .csv : .table)
        if let command {
            try shell.runScript(command)
        } else if let file {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                FileHandle.standardError.write(Data("error: \(file) is not UTF-8 text\n".utf8))
                throw ExitCode.failure
            }
            try shell.runScript(text)
        } else {
            // Fed from a pipe or file (`… | mrkproxy sql`): no banner or prompts, errors on stderr,
            // and a non-zero exit when a statement failed.
            let scripted = isatty(STDIN_FILENO) == 0
            guard shell.interactive(region: region, scripted: scripted) else { throw ExitCode.failure }
        }
    }
}

/// Runs statements and prints results psql-style, as JSON or as CSV.
final class Shell {
    enum Format { case table, json, csv }
    let connection: EncryptedConnection
    let configuration: ProxyConfiguration
    let format: Format

    init(connection: EncryptedConnection, configuration: ProxyConfiguration, format: Format) {
        self.connection = connection
        self.configuration = configuration
        self.format = format
    }

    /// Runs every statement; stops at the first error (printed as one line, exit status 1).
    func runScript(_ text: String) throws {
        do {
            for statement in try SQLScript.statements(text) { try runStatement(statement) }
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    func runStatement(_ sql: String) throws {
        let result = try connection.query(sql)
        if result.columns.isEmpty {
            if format == .table { print(result.commandTag) }
            return
        }
        switch format {
        case .table: printTable(result)
        case .json: print(ResultFormatter.json(result))
        case .csv: print(ResultFormatter.csv(result), terminator: "")
        }
    }

    /// A psql-style table of text cells, each column as wide as its widest cell.
    func printColumns(_ header: [String], _ rows: [[String]], alignRight: [Bool]? = nil) {
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        let right = alignRight ?? header.map { _ in false }
        func line(_ values: [String], alignRight: [Bool]) -> String {
            values.enumerated().map { i, value in
                let padding = String(repeating: " ", count: widths[i] - value.count)
                return " " + (alignRight[i] ? padding + value : value + padding) + " "
            }.joined(separator: "|")
        }
        print(line(header, alignRight: header.map { _ in false }))
        print(widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "+"))
        for row in rows { print(line(row, alignRight: right)) }
    }

    func printTable(_ result: QueryResult) {
        let cells = result.rows.map { $0.values.map { $0.postgresText ?? "" } }
        let numeric = result.columns.indices.map { i in
            result.rows.allSatisfy { row in
                switch row.values[i] { case .int, .double, .float, .numeric, .null: true; default: false }
            } && !result.rows.isEmpty
        }
        printColumns(result.columns, cells, alignRight: numeric)
        print("(\(result.rows.count) row\(result.rows.count == 1 ? "" : "s"))")
    }

    /// The shell. On a terminal: a banner, prompts and line editing with history; ends with `\q`
    /// or Ctrl-D and succeeds (errors were shown as they happened). Fed from a pipe or file: no
    /// banner or prompts, errors on standard error, and it fails if any statement failed.
    ///
    /// - Returns: false when the session should exit non-zero.
    func interactive(region: String, scripted: Bool = false) -> Bool {
        var succeeded = true
        let historyFile = ProcessInfo.processInfo.environment["MRKPROXY_HISTORY"]
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".mrkproxy_history").path
        let saved = historyFile.isEmpty ? []
            : ((try? String(contentsOfFile: historyFile, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        let editor = LineEditor(history: saved)
        let editing = !scripted && LineEditor.isAvailable
        if !scripted {
            print("MRKProxy SQL shell — region \(region)\(connection.database.isReadOnly ? " (read-only replica)" : ""). \\q quits, \\d lists tables.")
        }
        var buffer = ""
        while true {
            let prompt = buffer.isEmpty ? "mrkproxy(\(region))=> " : "mrkproxy(\(region))-> "
            let line: String
            if editing {
                switch editor.readLine(prompt: prompt) {
                case .line(let text): line = text
                case .interrupt:
                    buffer = ""
                    continue
                case .endOfInput: return true
                }
            } else {
                if !scripted {
                    print(prompt, terminator: "")
                    fflush(nil)
                }
                guard let text = readLine() else {
                    if !scripted { print("") }
                    return scripted ? succeeded : true
                }
                line = text
            }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if buffer.isEmpty && trimmed.hasPrefix("\\") {
                if trimmed == "\\q" { return scripted ? succeeded : true }
                editor.remember(trimmed)
                meta(trimmed, history: editor.history)
                continue
            }
            buffer += (buffer.isEmpty ? "" : "\n") + line
            guard SQLScript.isComplete(buffer) else { continue }
            editor.remember(buffer.replacingOccurrences(of: "\n", with: " "))
            // History may hold plaintext literals: owner-only, and MRKPROXY_HISTORY= (empty) turns it off.
            if !historyFile.isEmpty {
                SQLCommand.writePrivately(Array((editor.history.suffix(500).joined(separator: "\n") + "\n").utf8), to: historyFile)
            }
            do {
                for statement in try SQLScript.statements(buffer) { try runStatement(statement) }
            } catch {
                succeeded = false
                if scripted {
                    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                } else {
                    print("error: \(error)")
                }
            }
            buffer = ""
        }
    }

    private func meta(_ command: String, history: [String]) {
        let parts = command.split(separator: " ", maxSplits: 1).map(String.init)
        do {
            switch parts[0] {
            case "\\d" where parts.count == 1:
                try runStatement("""
                    SELECT table_schema AS schema, table_name AS name, table_type AS type FROM information_schema.tables
                    WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2
                    """)
            case "\\d":
                let name = parts[1].lowercased()
                let qualified = name.contains(".") ? name : "public." + name
                let encrypted = configuration.tables.first { "\($0.key.schema).\($0.key.name)" == qualified }?.value
                let result = try connection.query("""
                    SELECT a.attname AS column, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type
                    FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
                    ORDER BY a.attnum
                    """, [.text(qualified)])
                guard !result.rows.isEmpty else {
                    print("Did not find any relation named \"\(parts[1])\".")
                    return
                }
                var rows: [[String]] = []
                for row in result.rows {
                    let column = row.string("column") ?? ""
                    var note = ""
                    if let spec = encrypted?.columns[column] {
                        note = "encrypted \(spec.type.rawValue)" + (spec.format == .esdk ? " (ESDK message)" : "")
                            + (spec.search == .equality ? ", searchable (= / IN)" : "")
                    } else if encrypted?.columns.values.contains(where: { $0.blindIndexColumn == column }) == true {
                        note = "blind index"
                    } else if encrypted?.rowIdentity == column {
                        note = "row identity"
                    }
                    rows.append([column, row.string("type") ?? "", note])
                }
                print("Table \"\(qualified)\"")
                printColumns(["column", "type", "MRKProxy"], rows)
            case "\\s":
                for (i, entry) in history.enumerated() { print(String(format: "%4d  ", i + 1) + entry) }
            default:
                print("unknown command \(parts[0]) (\\d, \\d TABLE, \\s, \\q)")
            }
        } catch {
            print("error: \(error)")
        }
    }
}

/// JSON and CSV renderings of results.
enum ResultFormatter {
    /// The rows as a JSON array of objects, keys in column order (a repeated column name gets
    /// `_2`, `_3`… so that no value is lost). Integers, booleans, JSON columns and exact numerics
    /// (up to 38 digits) are JSON values; everything else is its PostgreSQL text.
    static func json(_ result: QueryResult) -> String {
        var names: [String] = []
        for column in result.columns {
            var name = column, suffix = 2
            while names.contains(name) { name = "\(column)_\(suffix)"; suffix += 1 }
            names.append(name)
        }
        let rows = result.rows.map { JSONRow(names: names, values: $0.values.map(JSONValue.init)) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return (try? encoder.encode(rows)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
    }

    struct JSONRow: Encodable {
        let names: [String]
        let values: [JSONValue]

        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Key.self)
            for (name, value) in zip(names, values) { try container.encode(value, forKey: Key(stringValue: name)) }
        }
    }

    /// A result value as JSON.
    indirect enum JSONValue: Codable {
        case null, bool(Bool), int(Int), double(Double), decimal(Decimal), string(String), array([JSONValue]), object([(String, JSONValue)])

        init(_ value: SQLValue) {
            switch value {
            case .null: self = .null
            case .int(let i): self = .int(i)
            case .bool(let b): self = .bool(b)
            case .double(let d) where d.isFinite: self = .double(d)
            case .float(let f) where f.isFinite: self = .double(Double(PostgresFloat.text(f)) ?? Double(f))
            case .numeric(let n): self = n.decimal.map(JSONValue.decimal) ?? .string(n.text)
            case .json(let text):
                self = (try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))) ?? .string(text)
            default: self = .string(value.postgresText ?? "")
            }
        }

        init(from decoder: any Decoder) throws {
            if let object = try? decoder.container(keyedBy: JSONRow.Key.self) {
                self = .object(try object.allKeys.sorted { $0.stringValue < $1.stringValue }.map { ($0.stringValue, try object.decode(JSONValue.self, forKey: $0)) })
                return
            }
            if var array = try? decoder.unkeyedContainer() {
                var items: [JSONValue] = []
                while !array.isAtEnd { items.append(try array.decode(JSONValue.self)) }
                self = .array(items)
                return
            }
            let single = try decoder.singleValueContainer()
            if single.decodeNil() { self = .null }
            else if let b = try? single.decode(Bool.self) { self = .bool(b) }
            else if let i = try? single.decode(Int.self) { self = .int(i) }
            else if let d = try? single.decode(Double.self) { self = .double(d) }
            else { self = .string(try single.decode(String.self)) }
        }

        func encode(to encoder: any Encoder) throws {
            switch self {
            case .null: var c = encoder.singleValueContainer(); try c.encodeNil()
            case .bool(let b): var c = encoder.singleValueContainer(); try c.encode(b)
            case .int(let i): var c = encoder.singleValueContainer(); try c.encode(i)
            case .double(let d): var c = encoder.singleValueContainer(); try c.encode(d)
            case .decimal(let d): var c = encoder.singleValueContainer(); try c.encode(d)
            case .string(let s): var c = encoder.singleValueContainer(); try c.encode(s)
            case .array(let items): var c = encoder.unkeyedContainer(); for item in items { try c.encode(item) }
            case .object(let pairs):
                var c = encoder.container(keyedBy: JSONRow.Key.self)
                for (key, value) in pairs { try c.encode(value, forKey: JSONRow.Key(stringValue: key)) }
            }
        }
    }

    static func csv(_ result: QueryResult) -> String {
        func field(_ s: String) -> String {
            s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        var out = result.columns.map(field).joined(separator: ",") + "\n"
        for row in result.rows { out += row.values.map { field($0.postgresText ?? "") }.joined(separator: ",") + "\n" }
        return out
    }
}

extension SQLCommand {
    /// Replaces `path` with `bytes`, readable by the owner only at every moment (`AtomicFile`).
    static func writePrivately(_ bytes: [UInt8], to path: String) {
        try? AtomicFile.write(bytes, to: path)
    }
}
