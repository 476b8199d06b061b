//! What the dashboard reads from the audit trail and the PR records: the trail itself (with
//! filters, newest first, paged by sequence number), each feature's SCM state and open PRs,
//! and promotions, merges and rollbacks on a timeline.
//!
//! The SCM state of a feature is what its last allowed `scm.*` event recorded (the gates
//! write `{state, feature_id}` into every transition's audit record), so the dashboard needs
//! no access to the feature's repository.

use serde::{Deserialize, Serialize};

use crate::api::records::Pr;
use crate::policy::audit::{Filter, Record};

/// The audit's filters, as the dashboard's query string gives them.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditQuery {
    pub principal: Option<String>,
    pub decision: Option<String>,
    /// Records whose target is this branch.
    pub branch: Option<String>,
    pub action: Option<String>,
    /// Records older than this sequence number (the previous page's `next_before`).
    pub before: Option<u64>,
    pub page_size: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AuditPage {
    pub records: Vec<Record>,
    /// Pass as `before` for the next (older) page; absent on the last.
    pub next_before: Option<u64>,
    /// Records matching the filters, all pages.
    pub total: usize,
}

pub const MAX_PAGE: usize = 500;

/// One page of the audit, newest first.
pub fn audit_page(all: Vec<Record>, q: &AuditQuery) -> Result<AuditPage, String> {
    if let Some(d) = q.decision.as_deref() {
        if d != "allowed" && d != "refused" {
            return Err(format!("decision must be allowed or refused, not '{d}'"));
        }
    }
    let size = q.page_size.unwrap_or(50);
    if size == 0 || size > MAX_PAGE {
        return Err(format!("page_size must be 1..={MAX_PAGE}"));
    }
    let matching: Vec<Record> = all
        .into_iter()
        .rev()
        .filter(|r| q.branch.as_ref().is_none_or(|b| &r.target == b))
        .collect();
    let total = matching.len();
    let records: Vec<Record> = matching
        .into_iter()
        .filter(|r| q.before.is_none_or(|b| r.seq < b))
        .take(size + 1)
        .collect();
    let more = records.len() > size;
    let records: Vec<Record> = records.into_iter().take(size).collect();
    let next_before = more.then(|| records.last().map(|r| r.seq)).flatten();
    Ok(AuditPage {
        records,
        next_before,
        total,
    })
}

/// The audit filter the query maps to (principal, decision and action are the log's own).
pub fn filter_of(q: &AuditQuery) -> Filter {
    Filter {
        principal: q.principal.clone().filter(|s| !s.is_empty()),
        decision: q.decision.clone().filter(|s| !s.is_empty()),
        action: q.action.clone().filter(|s| !s.is_empty()),
        ..Filter::default()
    }
}

/// A feature as the SCM gates last left it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Feature {
    pub feature_id: Option<String>,
    /// The feature's database branch.
    pub branch: String,
    pub state: String,
    pub last_event: String,
    pub at: String,
    pub by: String,
    /// Its PRs that are open.
    pub open_prs: Vec<PrSummary>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrSummary {
    pub number: u64,
    pub url: String,
    pub title: String,
    pub head: String,
    pub base: String,
    pub database_branch: Option<String>,
    pub state: String,
    pub opened_by: Option<String>,
    pub approvals: usize,
}

impl From<&Pr> for PrSummary {
    fn from(p: &Pr) -> PrSummary {
        PrSummary {
            number: p.number,
            url: p.url.clone(),
            title: p.title.clone(),
            head: p.head.clone(),
            base: p.base.clone(),
            database_branch: p.database_branch.clone(),
            state: p.state.clone(),
            opened_by: p.opened_by.clone(),
            approvals: p.approvals.len(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Scm {
    pub features: Vec<Feature>,
    /// Every open PR, with or without a feature the trail knows.
    pub open_prs: Vec<PrSummary>,
}

/// Each feature's state from the trail (oldest first in), newest feature first out.
pub fn scm(records: &[Record], prs: &[Pr]) -> Scm {
    let open: Vec<PrSummary> = prs
        .iter()
        .filter(|p| p.state == "open")
        .map(PrSummary::from)
        .collect();
    let mut last: std::collections::BTreeMap<String, &Record> = Default::default();
    for r in records {
        if r.action.starts_with("scm.") && r.decision == "allowed" && r.args.get("state").is_some()
        {
            last.insert(r.target.clone(), r);
        }
    }
    let mut features: Vec<Feature> = last
        .into_values()
        .map(|r| Feature {
            feature_id: r.args["feature_id"].as_str().map(str::to_string),
            branch: r.target.clone(),
            state: r.args["state"].as_str().unwrap_or_default().to_string(),
            last_event: r.action.clone(),
            at: r.time.clone(),
            by: r.principal.clone(),
            open_prs: open
                .iter()
                .filter(|p| p.database_branch.as_deref() == Some(r.target.as_str()))
                .cloned()
                .collect(),
        })
        .collect();
    features.sort_by(|a, b| b.at.cmp(&a.at).then(a.branch.cmp(&b.branch)));
    Scm {
        features,
        open_prs: open,
    }
}

/// What moved data between tiers, or moved a tier back.
pub const TIMELINE_ACTIONS: &[&str] = &[
    "merge",
    "promote",
    "rollback",
    "promote.apply",
    "scm.merge",
    "ci.merge",
    "branch.restore",
];

#[derive(Debug, Serialize, Deserialize)]
pub struct Moment {
    pub seq: u64,
    pub time: String,
    /// promotion, merge or rollback.
    pub kind: String,
    pub action: String,
    pub target: String,
    pub principal: String,
    pub decision: String,
    pub result: String,
    pub args: serde_json::Value,
}

/// Promotions, merges and rollbacks (allowed or refused), newest first, at most `limit`.
pub fn timeline(records: &[Record], limit: usize) -> Vec<Moment> {
    records
        .iter()
        .rev()
        .filter(|r| TIMELINE_ACTIONS.contains(&r.action.as_str()))
        .take(limit)
        .map(|r| Moment {
            seq: r.seq,
            time: r.time.clone(),
            kind: match r.action.as_str() {
                "rollback" | "branch.restore" => "rollback",
                "merge" | "scm.merge" | "ci.merge" => "merge",
                _ => "promotion",
            }
            .into(),
            action: r.action.clone(),
            target: r.target.clone(),
            principal: r.principal.clone(),
            decision: r.decision.clone(),
            result: r.result.clone(),
            args: r.args.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, action: &str, target: &str, args: serde_json::Value) -> Record {
        Record {
            seq,
            time: format!("2026-12-06T00:00:{seq:02}Z"),
            principal: "owner".into(),
            role: "platform".into(),
            via: "api".into(),
            action: action.into(),
            target: target.into(),
            args,
            decision: if seq % 5 == 0 { "refused" } else { "allowed" }.into(),
            rule: String::new(),
            reason: String::new(),
            result: "ok".into(),
        }
    }

    #[test]
    fn audit_pages_newest_first_and_end() {
        let all: Vec<Record> = (1..=12)
            .map(|i| {
                rec(
                    i,
                    "branch.create",
                    if i % 2 == 0 { "a" } else { "b" },
                    serde_json::json!({}),
                )
            })
            .collect();
        let q = AuditQuery {
            branch: Some("a".into()),
            page_size: Some(4),
            ..AuditQuery::default()
        };
        let p1 = audit_page(all.clone(), &q).unwrap();
        assert_eq!(
            p1.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [12, 10, 8, 6]
        );
        assert_eq!((p1.next_before, p1.total), (Some(6), 6));
        let q2 = AuditQuery {
            before: p1.next_before,
            ..q
        };
        let p2 = audit_page(all.clone(), &q2).unwrap();
        assert_eq!(p2.records.iter().map(|r| r.seq).collect::<Vec<_>>(), [4, 2]);
        assert_eq!(p2.next_before, None);
        let bad = AuditQuery {
            decision: Some("maybe".into()),
            ..AuditQuery::default()
        };
        assert!(audit_page(all.clone(), &bad)
            .unwrap_err()
            .contains("allowed or refused"));
        let zero = AuditQuery {
            page_size: Some(0),
            ..AuditQuery::default()
        };
        assert!(audit_page(all, &zero).is_err());
    }

    #[test]
    fn a_feature_is_at_its_last_allowed_transition() {
        let j = |s: &str| serde_json::json!({ "state": s, "feature_id": "F1" });
        let recs = vec![
            rec(1, "scm.claim", "dev-f1", j("feature-claimed")),
            rec(2, "scm.prepare-pr", "dev-f1", j("pr-ready")),
            rec(5, "scm.wait-ci", "dev-f1", j("ci-green")), // refused (seq % 5)
            rec(6, "branch.create", "dev-f1", serde_json::json!({})),
        ];
        let s = scm(&recs, &[]);
        assert_eq!(s.features.len(), 1);
        assert_eq!(s.features[0].state, "pr-ready");
        assert_eq!(s.features[0].feature_id.as_deref(), Some("F1"));
    }
}
