import MRKSQL
import MRKPostgres

extension LiftedLiteral {
    /// The literal as a value: strings and numbers as text (parsed by the target column's type),
    /// booleans as booleans.
    var value: SQLValue {
        switch kind {
        case .boolean: .bool(text == "true")
        default: .text(text)
        }
    }
}

extension PlannedParameter {
    /// The parameter's type as declared to the server: ciphertext and blind indexes are bytea;
    /// anything else is left for the server to infer.
    var wireType: PostgresOID {
        switch self {
        case .passthrough: .unspecified
        case .encrypt, .blindIndex: .bytea
        }
    }
}
