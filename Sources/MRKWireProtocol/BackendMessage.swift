import MRKProxy
import NIOCore

/// Writes backend (server → client) messages of protocol 3.0 into a `ByteBuffer`.
package extension ByteBuffer {
    /// A message: its type byte, its length (patched after `body`), its body.
    mutating func writeMessage(_ type: UInt8, _ body: (inout ByteBuffer) -> Void) {
        writeInteger(type)
        let lengthIndex = writerIndex
        writeInteger(Int32(0))
        body(&self)
        setInteger(Int32(writerIndex - lengthIndex), at: lengthIndex)
    }

    mutating func writeNullTerminated(_ string: String) {
        writeString(string)
        writeInteger(UInt8(0))
    }

    mutating func writeAuthenticationOK() { writeMessage(UInt8(ascii: "R")) { $0.writeInteger(Int32(0)) } }

    mutating func writeAuthenticationSASL(mechanisms: [String]) {
        writeMessage(UInt8(ascii: "R")) { body in
            body.writeInteger(Int32(10))
            for mechanism in mechanisms { body.writeNullTerminated(mechanism) }
            body.writeInteger(UInt8(0))
        }
    }

    mutating func writeAuthenticationSASLContinue(_ data: [UInt8]) {
        writeMessage(UInt8(ascii: "R")) { $0.writeInteger(Int32(11)); $0.writeBytes(data) }
    }

    mutating func writeAuthenticationSASLFinal(_ data: [UInt8]) {
        writeMessage(UInt8(ascii: "R")) { $0.writeInteger(Int32(12)); $0.writeBytes(data) }
    }

    mutating func writeParameterStatus(_ name: String, _ value: String) {
        writeMessage(UInt8(ascii: "S")) { $0.writeNullTerminated(name); $0.writeNullTerminated(value) }
    }

    mutating func writeBackendKeyData(processID: Int32, secretKey: Int32) {
        writeMessage(UInt8(ascii: "K")) { $0.writeInteger(processID); $0.writeInteger(secretKey) }
    }

    /// `status`: `I` idle, `T` in a transaction block, `E` in a failed one.
    mutating func writeReadyForQuery(_ status: UInt8) { writeMessage(UInt8(ascii: "Z")) { $0.writeInteger(status) } }

    mutating func writeRowDescription(_ columns: [WireColumn], formats: [Int16]) {
        writeMessage(UInt8(ascii: "T")) { body in
            body.writeInteger(Int16(truncatingIfNeeded: columns.count))
            for (index, column) in columns.enumerated() {
                body.writeNullTerminated(column.name)
                body.writeInteger(column.tableOID)
                body.writeInteger(column.attributeNumber)
                body.writeInteger(column.typeOID)
                body.writeInteger(column.typeSize)
                body.writeInteger(column.typeModifier)
                body.writeInteger(index < formats.count ? formats[index] : 0)
            }
        }
    }

    mutating func writeParameterDescription(_ types: [UInt32]) {
        writeMessage(UInt8(ascii: "t")) { body in
            body.writeInteger(Int16(truncatingIfNeeded: types.count))
            for type in types { body.writeInteger(type) }
        }
    }

    mutating func writeCommandComplete(_ tag: String) { writeMessage(UInt8(ascii: "C")) { $0.writeNullTerminated(tag) } }
    mutating func writeParseComplete() { writeMessage(UInt8(ascii: "1")) { _ in } }
    mutating func writeBindComplete() { writeMessage(UInt8(ascii: "2")) { _ in } }
    mutating func writeCloseComplete() { writeMessage(UInt8(ascii: "3")) { _ in } }
    mutating func writeNoData() { writeMessage(UInt8(ascii: "n")) { _ in } }
    mutating func writePortalSuspended() { writeMessage(UInt8(ascii: "s")) { _ in } }
    mutating func writeEmptyQueryResponse() { writeMessage(UInt8(ascii: "I")) { _ in } }

    /// ErrorResponse (`E`) or NoticeResponse (`N`) with `fields` by protocol code.
    mutating func writeFields(_ type: UInt8, _ fields: [(UInt8, String)]) {
        writeMessage(type) { body in
            for (code, value) in fields {
                body.writeInteger(code)
                body.writeNullTerminated(value.replacingNUL())
            }
            body.writeInteger(UInt8(0))
        }
    }

    mutating func writeCopyInResponse(binary: Bool, columnFormats: [Int16]) {
        writeMessage(UInt8(ascii: "G")) { body in
            body.writeInteger(UInt8(binary ? 1 : 0))
            body.writeInteger(Int16(truncatingIfNeeded: columnFormats.count))
            for format in columnFormats { body.writeInteger(format) }
        }
    }

    mutating func writeCopyOutResponse(binary: Bool, columnFormats: [Int16]) {
        writeMessage(UInt8(ascii: "H")) { body in
            body.writeInteger(UInt8(binary ? 1 : 0))
            body.writeInteger(Int16(truncatingIfNeeded: columnFormats.count))
            for format in columnFormats { body.writeInteger(format) }
        }
    }

    mutating func writeCopyData(_ bytes: UnsafeRawBufferPointer) { writeMessage(UInt8(ascii: "d")) { $0.writeBytes(bytes) } }
    mutating func writeCopyDone() { writeMessage(UInt8(ascii: "c")) { _ in } }
}

extension String {
    /// The string with NUL characters removed (protocol strings are NUL-terminated).
    func replacingNUL() -> String {
        utf8.contains(0) ? String(decoding: utf8.filter { $0 != 0 }, as: UTF8.self) : self
    }
}
