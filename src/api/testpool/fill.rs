//! Making and removing a pool's branches: each creation decided and audited as the pool's
//! principal, each removal as whoever asked for it. The filler task keeps one pool topped up,
//! one branch at a time (a pool that forks several at once competes with the tests it serves
//! for the same cores).

use std::time::Duration;

use super::state::{pss_of_tree, Key};
use super::{lifecycle, Caller};
use crate::api::daemon::Shared;
use crate::api::http::ApiError;
use crate::policy::{Action, Actor, OWNER};
use crate::storage::At;

/// A new name for a branch of `template`'s pool made for `who`: `[PRINCIPAL-]test-<8 of the
/// template's hash>-<6 hex>`. Feature-name globs commonly allow `{principal}-*`.
pub(super) fn branch_name(who: &Actor, template: &str) -> String {
    let hash = template.rsplit('-').next().unwrap_or(template);
    let tag = &hash[..crate::util::floor_char_boundary(hash, 8)];
    let prefix = if who.principal == OWNER {
        "test".to_string()
    } else {
        format!("{}-test", who.principal)
    };
    crate::util::throwaway_name(&prefix, tag)
}

/// Forks `name` from `template` for `c`, decided and audited as a `branch.create`, masked
/// first when the policy says so (nobody connects to a branch whose masking is pending).
pub(super) async fn create(
    d: &Shared,
    c: &Caller,
    name: &str,
    template: &str,
) -> Result<(), ApiError> {
    crate::api::lakebase::validate::check_id("branch", name).map_err(super::bad)?;
    let from = d.facts(template)?;
    let action = Action::Create {
        name,
        from: &from,
        snapshot: false,
        past: false,
    };
    let permit = d.enforce(
        c,
        &action,
        name,
        serde_json::json!({ "from": template, "pool": true }),
    )?;
    let mut l = lifecycle(d, template);
    d.gov.stamp(&mut l, &c.actor, &from, &permit.decision);
    let r = async {
        d.branches
            .create(name, template, At::Head, false, &l)
            .await?;
        if permit.decision.mask {
            if let Err(e) = d.gov.mask(name).await {
                let _ = d.branches.delete(name, true).await;
                return Err(ApiError::from(e));
            }
        }
        Ok(())
    }
    .await;
    permit.finish(r)
}

/// Soft-deletes `name` (its compute stopped without a shutdown checkpoint: nobody waits for a
/// test database's data), decided and audited as a `branch.delete` by `c` (under `what`).
pub(super) async fn delete(d: &Shared, c: &Caller, name: &str, what: &str) -> Result<(), ApiError> {
    let f = d.facts(name)?;
    let permit = d.enforce_named(
        c,
        what,
        &Action::Delete { branch: &f },
        name,
        serde_json::json!({ "purge": false }),
    )?;
    let r = d.branches.discard(name).await.map_err(ApiError::from);
    permit.finish(r)
}

/// Closes the pool `k`: its filler stops after the branch it is making (and removes it), its
/// ready branches are soft-deleted. Returns their names.
pub(super) async fn drain(d: &Shared, c: &Caller, k: &Key) -> Vec<String> {
    let (ready, filler) = {
        let mut g = d.pools.lock();
        let Some(p) = g.pools.get_mut(k) else {
            return vec![];
        };
        p.closing = true;
        p.wake.notify_one();
        (p.ready.drain(..).collect::<Vec<_>>(), p.filler.take())
    };
    if let Some(f) = filler {
        let _ = f.await;
    }
    let mut done = vec![];
    for b in ready {
        match delete(d, c, &b, "test.drain").await {
            Ok(()) => done.push(b),
            Err(e) => tracing::error!(branch = b, "draining a test pool: {e}"),
        }
    }
    let mut g = d.pools.lock();
    // Removed unless a declaration revived it meanwhile.
    if g.pools.get(k).is_some_and(|p| p.closing) {
        g.pools.remove(k);
    }
    done
}

/// Keeps pool `k` at its size, within its memory budget, until it closes.
pub(super) async fn filler(d: Shared, k: Key) {
    loop {
        let (wake, actor, budget) = {
            let g = d.pools.lock();
            let Some(p) = g.pools.get(&k) else { return };
            if p.closing {
                return;
            }
            (p.wake.clone(), p.actor.clone(), p.budget)
        };
        let room = within_budget(&d, &k, budget).await;
        let go = {
            let mut g = d.pools.lock();
            let Some(p) = g.pools.get_mut(&k) else { return };
            p.stats.budget_limited = !room && p.short();
            let go = room && p.short();
            if go {
                p.filling += 1;
            }
            go
        };
        if !go {
            // Checked again on every checkout, resize and close; and now and then, since
            // an idle stop or a released neighbour can free memory.
            let _ = tokio::time::timeout(Duration::from_secs(5), wake.notified()).await;
            continue;
        }
        let name = branch_name(&actor, &k.template);
        let c = Caller {
            actor: actor.clone(),
            via: "pool",
        };
        let made = async {
            create(&d, &c, &name, &k.template).await?;
            let ep = d
                .computes
                .ensure_running(&name)
                .await
                .map_err(ApiError::from)?;
            // One session first, here: it rebuilds the relcache files Postgres removed at
            // start (~20 ms of catalog reads through the view), which the test's first
            // connection would otherwise pay.
            crate::compute::postgres::query_one(&ep.socket_dir, "SELECT 1")
                .await
                .map_err(ApiError::from)?;
            Ok::<(), ApiError>(())
        }
        .await;
        let keep = {
            let mut g = d.pools.lock();
            match g.pools.get_mut(&k) {
                Some(p) => {
                    p.filling -= 1;
                    match &made {
                        Ok(()) if !p.closing => {
                            p.ready.push_back(name.clone());
                            p.stats.filled += 1;
                            true
                        }
                        Ok(()) => false,
                        Err(e) => {
                            p.stats.fill_errors += 1;
                            p.stats.last_error = Some(e.to_string());
                            false
                        }
                    }
                }
                None => false,
            }
        };
        if made.is_ok() && !keep {
            let _ = delete(&d, &c, &name, "test.drain").await;
            return;
        }
        if let Err(e) = made {
            tracing::warn!(template = k.template, "filling a test pool: {e}");
            if d.store().branch(&name).is_ok() {
                let _ = d.branches.delete(&name, true).await;
            }
            // A refused or failing fill does not spin.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

/// Measures the ready computes' proportional set size (for the stats), and whether one more
/// compute of their average fits the pool's budget (a first compute always fits).
async fn within_budget(d: &Shared, k: &Key, budget: Option<u64>) -> bool {
    let ready: Vec<String> = {
        let mut g = d.pools.lock();
        let Some(p) = g.pools.get_mut(k) else {
            return false;
        };
        // Reading every process's /proc entries is not free (13% of the daemon's CPU when
        // done before every fill): unbounded pools measure for the stats every few seconds.
        let fresh = p
            .measured_at
            .is_some_and(|t| t.elapsed() < Duration::from_secs(5));
        if budget.is_none() && fresh {
            return true;
        }
        p.measured_at = Some(std::time::Instant::now());
        p.ready.iter().cloned().collect()
    };
    let mut pids = vec![];
    for b in &ready {
        if let Some(pid) = d.computes.status(b).await.pid {
            pids.push(pid);
        }
    }
    let n = pids.len() as u64;
    let total = tokio::task::spawn_blocking(move || pids.into_iter().map(pss_of_tree).sum::<u64>())
        .await
        .unwrap_or(0);
    if let Some(p) = d.pools.lock().pools.get_mut(k) {
        p.stats.pss_bytes = Some(total);
    }
    match budget {
        Some(b) => n == 0 || total + total / n <= b,
        None => true,
    }
}
