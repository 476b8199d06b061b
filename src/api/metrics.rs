//! `GET /metrics`: the daemon's state in the Prometheus text format (version 0.0.4), for a
//! scraper given the API token as its bearer token.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::daemon::Daemon;
use crate::lifecycle::Lifecycle;

/// Escapes a label value: backslash, double quote and newline.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

pub(super) async fn render(State(d): State<std::sync::Arc<Daemon>>) -> impl IntoResponse {
    let text = text(&d).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

async fn text(d: &Daemon) -> String {
    let store = d.computes.store();
    let branches = store.branches();
    let running = d.computes.running().await;
    let mut out = String::new();

    family(
        &mut out,
        "lakelet_branches",
        "gauge",
        "Branches by kind and state.",
    );
    let mut counts = std::collections::BTreeMap::new();
    for b in &branches {
        let kind = if b.snapshot { "snapshot" } else { "branch" };
        let state = if Lifecycle::decode(&b.annotations).is_deleted() {
            "deleted"
        } else {
            "ready"
        };
        *counts.entry((kind, state)).or_insert(0u64) += 1;
    }
    for ((kind, state), n) in counts {
        let _ = writeln!(
            out,
            "lakelet_branches{{kind=\"{kind}\",state=\"{state}\"}} {n}"
        );
    }

    family(
        &mut out,
        "lakelet_computes_running",
        "gauge",
        "Computes (postmasters) running.",
    );
    let _ = writeln!(out, "lakelet_computes_running {}", running.len());

    family(
        &mut out,
        "lakelet_store_last_lsn",
        "counter",
        "The page store's last committed lsn.",
    );
    let _ = writeln!(out, "lakelet_store_last_lsn {}", store.last_lsn());

    family(
        &mut out,
        "lakelet_branch_own_bytes",
        "gauge",
        "Bytes of stored versions a branch's timeline owns.",
    );
    for b in &branches {
        if let Ok(own) = store.own_bytes(&b.name) {
            let _ = writeln!(
                out,
                "lakelet_branch_own_bytes{{branch=\"{}\"}} {}",
                label(&b.name),
                own
            );
        }
    }

    let t = d.proxy.metrics.totals();
    for (name, help, v) in [
        (
            "lakelet_proxy_accepted_total",
            "TCP connections the proxy accepted.",
            t.accepted,
        ),
        (
            "lakelet_proxy_cancel_requests_total",
            "CancelRequests received.",
            t.cancel_requests,
        ),
        (
            "lakelet_proxy_bad_startups_total",
            "Connections refused before routing (garbage, timeouts).",
            t.bad_startups,
        ),
        (
            "lakelet_proxy_tls_sessions_total",
            "Connections that negotiated TLS.",
            t.tls_sessions,
        ),
        (
            "lakelet_proxy_kernel_sessions_total",
            "Plain sessions relayed inside the kernel (sockmap) instead of by the daemon.",
            t.kernel_sessions,
        ),
    ] {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {v}");
    }
    let per: Vec<_> = branches
        .iter()
        .map(|b| (label(&b.name), d.proxy.metrics.snapshot(&b.name)))
        .collect();
    type Pick = fn(&crate::proxy::ConnectionStats) -> u64;
    let per_branch: [(&str, &str, &str, Pick); 3] = [
        (
            "lakelet_proxy_connections_active",
            "gauge",
            "Client sessions open through the proxy.",
            |s| s.active,
        ),
        (
            "lakelet_proxy_connections_total",
            "counter",
            "Client sessions the proxy opened.",
            |s| s.total,
        ),
        (
            "lakelet_proxy_cold_starts_total",
            "counter",
            "Sessions that had to start the compute.",
            |s| s.cold_starts,
        ),
    ];
    for (name, kind, help, pick) in per_branch {
        family(&mut out, name, kind, help);
        for (n, s) in &per {
            let _ = writeln!(out, "{name}{{branch=\"{n}\"}} {}", pick(s));
        }
    }
    out
}
