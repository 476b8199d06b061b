//! The policy's annotations on a branch: who made it (the policy's "own"), the tier its data
//! came from, and its masking state. Stored beside compute's lifecycle in the branch record's
//! annotations (so they change atomically with the name), under keys compute keeps but never
//! reads (`Lifecycle::others`).

use serde::{Deserialize, Serialize};

use crate::lifecycle::Lifecycle;
use crate::storage::Nanos;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stamp {
    /// The principal that created the branch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The tier the branch's data came from (kept across resets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_tier: Option<String>,
    /// Set on a branch that holds masked data. While `done` is false the masking has not
    /// finished and the proxy lets nobody in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masking: Option<MaskState>,
    /// Who else its owner let in (`lakelet branch share`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<super::Share>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskState {
    pub done: bool,
    /// When the masking last finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<Nanos>,
}

const KEYS: [&str; 4] = ["owner", "source_tier", "masking", "shares"];

impl Stamp {
    /// The stamp in `l`'s annotations. One that cannot be read is corruption: it reads as
    /// masking pending, so the proxy admits nobody until the branch is looked at.
    pub fn of(l: &Lifecycle) -> Stamp {
        let obj: serde_json::Map<String, serde_json::Value> = KEYS
            .iter()
            .filter_map(|k| Some((k.to_string(), l.others.get(*k)?.clone())))
            .collect();
        serde_json::from_value(serde_json::Value::Object(obj)).unwrap_or_else(|e| {
            tracing::error!("unreadable policy annotations: {e}");
            Stamp {
                masking: Some(MaskState::default()),
                ..Stamp::default()
            }
        })
    }

    /// Writes the stamp into `l`'s annotations (replacing the policy's keys only).
    pub fn put(&self, l: &mut Lifecycle) {
        for k in KEYS {
            l.others.remove(k);
        }
        if let serde_json::Value::Object(m) =
            serde_json::to_value(self).expect("a stamp serializes")
        {
            l.others.extend(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_round_trips_through_the_lifecycle_and_leaves_the_rest() {
        let mut l = Lifecycle {
            protected: true,
            ..Default::default()
        };
        let s = Stamp {
            owner: Some("bot".into()),
            source_tier: Some("staging".into()),
            masking: Some(MaskState {
                done: true,
                at: Some(7),
            }),
            shares: vec![crate::policy::Share {
                principal: "bob".into(),
                write: false,
                until: Some(9),
            }],
        };
        s.put(&mut l);
        let again = Lifecycle::decode(&l.encode());
        assert_eq!(Stamp::of(&again), s);
        assert!(again.protected);
        let mut cleared = again.clone();
        Stamp::default().put(&mut cleared);
        assert!(cleared.others.is_empty());
    }
}
