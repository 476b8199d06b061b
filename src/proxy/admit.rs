//! Admission: after authentication, the policy decides whether this principal may use this
//! branch, and how (superuser, lakelet_owner or lakelet_reader). Every decision is audited.

use super::conn::{fatal, Fail};
use super::startup::Route;
use super::Proxy;
use crate::compute::postgres::SUPERUSER;
use crate::policy::{Access, Action, Decision};

impl Proxy {
    /// Decides the connection of `route.user` to `route.branch`; on success the route's
    /// forwarded user is the Postgres role the session runs as. `grant`: the password was a
    /// promotion grant for this branch.
    pub(super) fn govern(&self, mut route: Route, grant: bool) -> Result<(Route, Access), Fail> {
        let user = route.user.clone();
        let branch = route.branch.clone();
        let Some(actor) = self.gov.actor(&user) else {
            return Err(fatal(
                "28000",
                format!("role \"{user}\" is not a lakelet principal"),
            ));
        };
        if route.database == crate::policy::system::DATABASE {
            // The system database: audit, branches, usage. Reading it is reading the audit.
            let mut d = self.gov.decide(&actor, &Action::ReadAudit);
            d.access = Some(Access::Read);
            let args = serde_json::json!({ "database": route.database });
            self.gov
                .record(&actor, "proxy", "connect", "lakelet", args, &d, &Ok(()));
            if !d.allowed {
                return Err(Fail::Fatal {
                    code: "42501",
                    message: format!(
                        "permission denied for database \"lakelet\": {} (policy rule {})",
                        d.reason, d.rule
                    ),
                    hint: None,
                });
            }
            route.forward.insert("user".into(), "lakelet_reader".into());
            return Ok((route, Access::Read));
        }
        let facts = match self.gov.facts(&branch) {
            Ok(f) => f,
            // Facts that cannot be read decide nothing: refuse, audited, on every path. (This
            // once admitted as superuser, so a branch created between this lookup and the
            // compute's start was reached with no decision at all.)
            Err(e) => {
                let missing = matches!(
                    e.downcast_ref::<crate::storage::Error>(),
                    Some(crate::storage::Error::BranchNotFound(_))
                );
                let (code, message) = if missing {
                    ("3D000", format!("branch \"{branch}\" does not exist"))
                } else {
                    (
                        "57P03",
                        format!("branch \"{branch}\" cannot be admitted now: {e:#}"),
                    )
                };
                let d = Decision::refused("admission", message.clone());
                let args = serde_json::json!({ "database": route.database });
                self.gov
                    .record(&actor, "proxy", "connect", &branch, args, &d, &Ok(()));
                return Err(Fail::Fatal {
                    code,
                    message,
                    hint: missing.then(|| "`lakelet branch list` shows the branches".into()),
                });
            }
        };
        if self.gov.masking_pending(&branch) {
            return Err(Fail::Fatal {
                code: "57P03",
                message: format!("branch \"{branch}\" is being masked; nobody may connect until the masking has finished"),
                hint: Some("retry in a moment; if it stays so, the masking failed: reset or delete the branch".into()),
            });
        }
        let d = if grant {
            let role = self.gov.policy().role(&actor.role).cloned();
            let access = match role {
                Some(r) if r.superuser && !facts.masked => Access::Superuser,
                _ => Access::Write,
            };
            Decision {
                allowed: true,
                rule: "promotion-chain".into(),
                reason: "a promotion grant".into(),
                access: Some(access),
                mask: false,
            }
        } else {
            self.gov.decide(&actor, &Action::Connect { branch: &facts })
        };
        let args = serde_json::json!({ "database": route.database, "access": d.access });
        self.gov
            .record(&actor, "proxy", "connect", &branch, args, &d, &Ok(()));
        if !d.allowed {
            return Err(Fail::Fatal {
                code: "42501",
                message: format!(
                    "permission denied for branch \"{branch}\": {} (policy rule {})",
                    d.reason, d.rule
                ),
                hint: None,
            });
        }
        let access = d.access.unwrap_or(Access::Read);
        let pg_user = match access {
            Access::Superuser if user == super::LOCAL_USER => user,
            Access::Superuser => SUPERUSER.to_string(),
            Access::Write => "lakelet_owner".to_string(),
            Access::Read => "lakelet_reader".to_string(),
        };
        route.forward.insert("user".into(), pg_user);
        Ok((route, access))
    }
}
