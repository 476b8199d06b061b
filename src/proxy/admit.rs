//! Admission: after authentication, the policy decides whether this principal may use this
//! branch, and how (superuser, lakelet_owner or lakelet_reader). Every decision is audited: a
//! refusal at once, an admission by its permit once the session has started or failed.

use super::conn::{fatal, Fail};
use super::startup::Route;
use super::Proxy;
use crate::compute::postgres::SUPERUSER;
use crate::policy::{Access, Action, Decision, Permit, Refusal};

impl Proxy {
    /// Decides the connection of `route.user` to `route.branch`; on success the route's
    /// forwarded user is the Postgres role the session runs as. `grant`: the password was a
    /// promotion grant for this branch.
    pub(super) fn govern(
        &self,
        mut route: Route,
        grant: bool,
    ) -> Result<(Route, Access, Permit), Fail> {
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
            let args = serde_json::json!({ "database": route.database, "access": Access::Read });
            let permit = self
                .gov
                .permit_named(
                    &actor,
                    "proxy",
                    "connect",
                    &Action::ReadAudit,
                    "lakelet",
                    args,
                )
                .map_err(|e| refused(e, "permission denied for database \"lakelet\""))?;
            route.forward.insert("user".into(), "lakelet_reader".into());
            return Ok((route, Access::Read, permit));
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
                let hint = missing.then(|| "`lakelet branch list` shows the branches".into());
                return Err(self.refuse_admission(&actor, &route, code, message, hint));
            }
        };
        if self.gov.masking_pending(&branch) {
            let message = format!("branch \"{branch}\" is being masked; nobody may connect until the masking has finished");
            let hint = "retry in a moment; if it stays so, the masking failed: reset or delete \
                        the branch";
            return Err(self.refuse_admission(&actor, &route, "57P03", message, Some(hint.into())));
        }
        let action = if grant {
            Action::ConnectGranted { branch: &facts }
        } else {
            Action::Connect { branch: &facts }
        };
        let args = serde_json::json!({ "database": route.database });
        let mut permit = self
            .gov
            .permit_named(&actor, "proxy", "connect", &action, &branch, args)
            .map_err(|e| refused(e, &format!("permission denied for branch \"{branch}\"")))?;
        let mut access = permit.decision.access.unwrap_or(Access::Read);
        if access == Access::Superuser && user != super::LOCAL_USER && !self.computes.isolated() {
            // A superuser runs programs as its compute's uid; a daemon that is not root runs
            // computes as itself, so that uid is the daemon's, and a principal would reach
            // the store, the audit log and every other branch from there.
            access = Access::Write;
            permit.note(
                "superuser_withheld",
                "computes share the daemon's uid (a daemon not run as root)".into(),
            );
        }
        permit.note("access", serde_json::json!(access));
        let pg_user = match access.pg_role() {
            None if user == super::LOCAL_USER => user,
            None => SUPERUSER.to_string(),
            Some(role) => role.to_string(),
        };
        route.forward.insert("user".into(), pg_user);
        Ok((route, access, permit))
    }
}

impl Proxy {
    /// A connection refused before any rule could decide (its branch cannot be read, or it is
    /// being masked): audited under rule `admission`, and told to the client with `code`.
    fn refuse_admission(
        &self,
        actor: &crate::policy::Actor,
        route: &Route,
        code: &'static str,
        message: String,
        hint: Option<String>,
    ) -> Fail {
        let d = Decision::refused("admission", message.clone());
        let args = serde_json::json!({ "database": route.database });
        self.gov
            .record(actor, "proxy", "connect", &route.branch, args, &d, &Ok(()));
        Fail::Fatal {
            code,
            message,
            hint,
        }
    }
}

/// A refusal as the client sees it: 42501 with the rule (anything else failed to decide).
fn refused(e: anyhow::Error, what: &str) -> Fail {
    match e.downcast_ref::<Refusal>() {
        Some(r) => Fail::Fatal {
            code: "42501",
            message: format!("{what}: {} (policy rule {})", r.reason, r.rule),
            hint: None,
        },
        None => fatal("57P03", format!("{what}: {e:#}")),
    }
}
