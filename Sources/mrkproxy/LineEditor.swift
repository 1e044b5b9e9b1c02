import Foundation

/// Line editing for the interactive shell, as libedit gives psql: cursor movement, history
/// recall with the arrow keys, the usual Emacs keys. Written over termios so that the CLI needs
/// no other system library. Used only when standard input and output are terminals.
///
/// Keys: ←/→ (Ctrl-B/F) move, Home/End (Ctrl-A/E), ↑/↓ (Ctrl-P/N) history, Backspace, Delete,
/// Ctrl-D (delete, or end of input on an empty line), Ctrl-K/U kill to end/start, Ctrl-W kill
/// the word before the cursor, Ctrl-L clear the screen, Ctrl-C abandon the line.
final class LineEditor {
    enum Input: Equatable {
        case line(String)
        /// Ctrl-C: the line (and any statement being continued) is abandoned.
        case interrupt
        case endOfInput
    }

    private(set) var history: [String]
    private let input: Int32
    private let output: Int32

    init(history: [String], input: Int32 = STDIN_FILENO, output: Int32 = STDOUT_FILENO) {
        self.history = history
        self.input = input
        self.output = output
    }

    /// Whether standard input and output are both terminals (else read plain lines).
    static var isAvailable: Bool { isatty(STDIN_FILENO) == 1 && isatty(STDOUT_FILENO) == 1 }

    func remember(_ entry: String) {
        guard !entry.isEmpty, history.last != entry else { return }
        history.append(entry)
    }

    /// Reads one line, editing it in raw mode; the terminal is restored before returning.
    func readLine(prompt: String) -> Input {
        var saved = termios()
        guard tcgetattr(input, &saved) == 0 else { return Swift.readLine().map(Input.line) ?? .endOfInput }
        var raw = saved
        raw.c_iflag &= ~tcflag_t(ICRNL | IXON | BRKINT | INPCK | ISTRIP)
        raw.c_lflag &= ~tcflag_t(ECHO | ICANON | IEXTEN | ISIG)
        raw.c_cflag |= tcflag_t(CS8)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        tcsetattr(input, TCSANOW, &raw)  // TCSANOW: keep what was typed ahead
        defer { tcsetattr(input, TCSANOW, &saved) }

        var state = State(prompt: prompt, historyCount: history.count)
        write(prompt)
        while true {
            guard let key = readKey() else {
                write("\r\n")
                return .endOfInput
            }
            switch state.apply(key, history: history) {
            case .redraw: redraw(state)
            case .none: break
            case .bell: write("\u{07}")
            case .clearScreen:
                write("\u{1B}[H\u{1B}[2J")
                redraw(state)
            case .done(let result):
                write(result == .interrupt ? "^C\r\n" : "\r\n")
                return result
            }
        }
    }

    // MARK: Keys

    enum Key: Equatable {
        case character(Character)
        case left, right, up, down, home, end, delete, backspace, enter
        case control(UInt8)
    }

    private func readByte() -> UInt8? {
        var byte: UInt8 = 0
        while true {
            let n = Foundation.read(input, &byte, 1)
            if n == 1 { return byte }
            if n < 0 && errno == EINTR { continue }
            return nil
        }
    }

    private func readKey() -> Key? {
        guard let byte = readByte() else { return nil }
        switch byte {
        case 13, 10: return .enter
        case 127, 8: return .backspace
        case 27: return readEscape()
        case 0..<32: return .control(byte)
        case 32..<128: return .character(Character(UnicodeScalar(byte)))
        default:
            // A UTF-8 sequence: its length from the lead byte.
            let length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1
            var bytes = [byte]
            while bytes.count < length, let next = readByte() { bytes.append(next) }
            return String(validating: bytes, as: UTF8.self).flatMap(\.first).map(Key.character) ?? .control(0)
        }
    }

    private func readEscape() -> Key? {
        guard let first = readByte() else { return nil }
        guard first == UInt8(ascii: "[") || first == UInt8(ascii: "O") else { return .control(0) }
        var parameter: [UInt8] = []
        while let next = readByte() {
            switch next {
            case UInt8(ascii: "A"): return .up
            case UInt8(ascii: "B"): return .down
            case UInt8(ascii: "C"): return .right
            case UInt8(ascii: "D"): return .left
            case UInt8(ascii: "H"): return .home
            case UInt8(ascii: "F"): return .end
            case UInt8(ascii: "~"):
                switch String(decoding: parameter, as: UTF8.self) {
                case "1", "7": return .home
                case "4", "8": return .end
                case "3": return .delete
                default: return .control(0)
                }
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: ";"): parameter.append(next)
            default: return .control(0)
            }
        }
        return nil
    }

    // MARK: Editing

    enum Effect: Equatable {
        case redraw, none, bell, clearScreen
        case done(Input)
    }

    /// The line being edited; pure, so that it is tested without a terminal.
    struct State {
        let prompt: String
        var line: [Character] = []
        var cursor = 0
        /// Which history entry is shown: `history.count` is the line being typed.
        var historyIndex: Int
        /// The line being typed, kept while browsing history.
        var draft: [Character] = []

        init(prompt: String, historyCount: Int) {
            self.prompt = prompt
            historyIndex = historyCount
        }

        mutating func apply(_ key: Key, history: [String]) -> Effect {
            switch key {
            case .character(let c):
                line.insert(c, at: cursor)
                cursor += 1
            case .enter: return .done(.line(String(line)))
            case .left, .control(2):
                guard cursor > 0 else { return .bell }
                cursor -= 1
            case .right, .control(6):
                guard cursor < line.count else { return .bell }
                cursor += 1
            case .home, .control(1): cursor = 0
            case .end, .control(5): cursor = line.count
            case .backspace:
                guard cursor > 0 else { return .bell }
                line.remove(at: cursor - 1)
                cursor -= 1
            case .delete:
                guard cursor < line.count else { return .bell }
                line.remove(at: cursor)
            case .control(4):
                if line.isEmpty { return .done(.endOfInput) }
                guard cursor < line.count else { return .bell }
                line.remove(at: cursor)
            case .control(3): return .done(.interrupt)
            case .control(11): line.removeSubrange(cursor...)
            case .control(21):
                line.removeSubrange(..<cursor)
                cursor = 0
            case .control(23):
                var start = cursor
                while start > 0 && line[start - 1] == " " { start -= 1 }
                while start > 0 && line[start - 1] != " " { start -= 1 }
                line.removeSubrange(start..<cursor)
                cursor = start
            case .control(12): return .clearScreen
            case .up, .control(16):
                guard historyIndex > 0 else { return .bell }
                if historyIndex == history.count { draft = line }
                historyIndex -= 1
                line = Array(history[historyIndex])
                cursor = line.count
            case .down, .control(14):
                guard historyIndex < history.count else { return .bell }
                historyIndex += 1
                line = historyIndex == history.count ? draft : Array(history[historyIndex])
                cursor = line.count
            case .control: return .none
            }
            return .redraw
        }
    }

    private func redraw(_ state: State) {
        var text = "\r" + state.prompt + String(state.line) + "\u{1B}[K"
        let back = state.line.count - state.cursor
        if back > 0 { text += "\u{1B}[\(back)D" }
        write(text)
    }

    private func write(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Foundation.write(output, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            bytes = bytes.dropFirst(n)
        }
    }
}
