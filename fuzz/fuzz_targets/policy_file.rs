//! Feeds arbitrary text to the lakelet.toml policy parser: it must return a policy or an error
//! with a line and column inside the text, never panic (spans, cycles, deep chains).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match lakelet::policy::file::parse("fuzz.toml", text) {
        Ok(p) => {
            // A parsed policy has exactly one root, and every tier's chain reaches it.
            assert!(p.tiers.contains_key(&p.root));
            for t in p.tiers.values() {
                let mut cur = t;
                let mut steps = 0;
                while let Some(parent) = &cur.parent {
                    cur = &p.tiers[parent];
                    steps += 1;
                    assert!(steps <= p.tiers.len(), "a cycle got through");
                }
                assert_eq!(cur.name, p.root);
            }
        }
        Err(e) => {
            assert!(e.line >= 1 && e.line <= text.lines().count().max(1) + 1, "{e}");
        }
    }
});
