//! Feeds arbitrary bytes to what reads a migration file: the checksum, the statement splitter,
//! placeholder replacement and lint. None may panic; statements are in-order, non-empty slices
//! of the input with lines inside it; an error's line is inside the input.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use lakelet::migrate::{checksum, lint, placeholders, sql};

fuzz_target!(|data: &[u8]| {
    let _ = checksum::flyway(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.lines().count().max(1) + 1;
    match sql::split(text) {
        Ok(stmts) => {
            let mut last = 0;
            for s in &stmts {
                assert!(!s.tokens.is_empty());
                assert_eq!(s.tokens.len(), s.offsets.len());
                assert!(s.line >= last && s.line <= lines, "line {} of {lines}", s.line);
                last = s.line;
                assert!(text.contains(s.text.as_str()));
                let _ = s.non_transactional();
            }
        }
        Err(e) => assert!(e.line >= 1 && e.line <= lines, "{e}"),
    }
    let mut values = BTreeMap::new();
    values.insert("a".to_string(), "x".to_string());
    let _ = placeholders::replace(text, &values, "fuzz.sql");
    let _ = lint::lint(text);
});
