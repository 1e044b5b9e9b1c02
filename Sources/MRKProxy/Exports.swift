// The configuration's public types (`QualifiedName`, `EncryptedTable`, `EncryptedColumn`,
// `ColumnValueType`, …) are defined next to the SQL analysis that uses them; an app that imports
// MRKProxy sees them without importing MRKSQL.
@_exported import MRKSQL
