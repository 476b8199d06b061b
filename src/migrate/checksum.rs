//! Flyway's checksum, bit for bit, so a history written by Flyway validates here and the
//! reverse.
//!
//! Flyway reads the script as UTF-8 (malformed bytes become U+FFFD), splits it into lines the
//! way `BufferedReader.readLine` does (`\n`, `\r` or `\r\n` end a line; no empty line after a
//! final terminator), drops a byte-order mark at the start of the first line, feeds the UTF-8
//! bytes of each line to one CRC32, and stores the result as a signed 32-bit `INT`. Line
//! terminators never reach the CRC, so the same script checks out identically with LF or CRLF,
//! and blank lines do not count; trailing spaces do.

/// The checksum Flyway records for a script with these bytes.
pub fn flyway(bytes: &[u8]) -> i32 {
    let text = String::from_utf8_lossy(bytes);
    // The BOM is dropped from the first line only, i.e. only at the very start of the text.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut h = crc32fast::Hasher::new();
    // Lines without their terminators, concatenated: CR and LF are exactly the terminators.
    for line in text.split(['\r', '\n']) {
        h.update(line.as_bytes());
    }
    h.finalize() as i32
}

#[cfg(test)]
mod tests {
    /// Files and the checksum Flyway's published algorithm gives each, computed by an
    /// independent implementation of it (tests/data/flyway_checksum.py, which follows Java's
    /// `readLine` character by character and uses zlib's CRC32).
    const TABLE: &[(&str, &[u8], i32)] = &[
    ("empty", b"", 0),
    ("one line, no newline", b"SELECT 1;", 78787420),
    ("LF", b"CREATE TABLE t (id int);\x0aINSERT INTO t VALUES (1);\x0a", 169406234),
    ("CRLF", b"CREATE TABLE t (id int);\x0d\x0aINSERT INTO t VALUES (1);\x0d\x0a", 169406234),
    ("CR only", b"CREATE TABLE t (id int);\x0dINSERT INTO t VALUES (1);\x0d", 169406234),
    ("BOM + LF", b"\xef\xbb\xbfCREATE TABLE t (id int);\x0aINSERT INTO t VALUES (1);\x0a", 169406234),
    ("blank lines", b"\x0a\x0aCREATE TABLE t (id int);\x0a\x0a\x0aINSERT INTO t VALUES (1);\x0a\x0a", 169406234),
    ("trailing spaces kept", b"SELECT 1;  \x0a", 1189962089),
    ("non-ASCII", b"INSERT INTO st\xc3\xa4dte VALUES ('Z\xc3\xbcrich', '\xe6\x9d\xb1\xe4\xba\xac', '\xf0\x9f\x90\x98');\x0a", -190300894),
    ("BOM in second line kept", b"SELECT 1;\x0a\xef\xbb\xbfSELECT 2;\x0a", -737986772),
    ("malformed UTF-8", b"SELECT '\xff\xfe';\x0a", 2058068386),
    ("BOM after a blank first line kept", b"\x0a\xef\xbb\xbfSELECT 1;\x0a", -1606921097),
    ("tabs and mixed endings", b"\x09SELECT 1;\x0d\x0a\x09SELECT 2;\x0a\x09SELECT 3;\x0d", 1969860898),
    ];

    #[test]
    fn matches_flyway_for_every_line_ending_bom_and_encoding() {
        for (name, bytes, want) in TABLE {
            assert_eq!(super::flyway(bytes), *want, "{name}");
        }
    }

    #[test]
    fn the_python_table_is_the_one_checked_in() {
        // Regenerating the table must give the same rows (run when python3 is present).
        let Ok(out) = std::process::Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/flyway_checksum.py"
            ))
            .output()
        else {
            return;
        };
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.lines().count(), TABLE.len());
        for ((name, _, want), line) in TABLE.iter().zip(text.lines()) {
            assert!(
                line.contains(name) && line.ends_with(&format!(", {want}),")),
                "{line}"
            );
        }
    }
}
