//! The CLI's client of the daemon API: finds the daemon from DATA/daemon.json, authenticates
//! with DATA/api-token, and turns API errors back into messages that say what to do.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{DaemonInfo, ErrorBody};

pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: String,
    /// The local daemon's record; `None` for a remote (Lakebase) client.
    pub info: Option<DaemonInfo>,
    /// The principal this client acts as (`None`: the daemon's owner, by DATA/api-token).
    pub principal: Option<String>,
}

/// The principal the CLI acts as: LAKELET_PRINCIPAL (or `--as`) with LAKELET_SECRET.
pub fn acting_principal() -> Result<Option<(String, String)>> {
    let name = std::env::var("LAKELET_PRINCIPAL")
        .ok()
        .filter(|s| !s.is_empty());
    let secret = std::env::var("LAKELET_SECRET")
        .ok()
        .filter(|s| !s.is_empty());
    match (name, secret) {
        (Some(n), Some(s)) => Ok(Some((n, s))),
        (Some(n), None) => bail!(
            "acting as principal {n} needs its secret in LAKELET_SECRET (printed once by \
             `lakelet principal add {n}`)"
        ),
        (None, Some(_)) => bail!("LAKELET_SECRET is set but LAKELET_PRINCIPAL (or --as) is not"),
        (None, None) => Ok(None),
    }
}

/// Whether `pid` is a live process: it exists and is not a zombie (a SIGKILLed daemon stays
/// a zombie until its parent reaps it, and must not count as running).
pub fn alive(pid: u32) -> bool {
    if pid == 0 || unsafe { libc::kill(pid as i32, 0) } != 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold spaces.
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next()),
            Some("Z") | Some("X")
        ),
        Err(_) => false,
    }
}

/// Whether a daemon's API at `addr` (`host:port`) answers an HTTP request within 2 s: not just
/// accepts, since a process being killed may still hold its listening socket for a moment.
pub fn answers(addr: &str) -> bool {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let t = std::time::Duration::from_secs(2);
    let Some(a) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&a, t) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(t));
    let _ = s.set_write_timeout(Some(t));
    // The one public route: the discovery document the Databricks SDKs probe.
    let req = format!(
        "GET /.well-known/databricks-config HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let mut head = [0u8; 12];
    s.write_all(req.as_bytes()).is_ok()
        && s.read_exact(&mut head).is_ok()
        && head.starts_with(b"HTTP/1.1 200")
}

/// The daemon recorded in `data_dir`, if its process still exists.
pub fn running_daemon(data_dir: &Path) -> Option<DaemonInfo> {
    let text = std::fs::read_to_string(super::info_path(data_dir)).ok()?;
    let info: DaemonInfo = serde_json::from_str(&text).ok()?;
    alive(info.pid).then_some(info)
}

/// Percent-encodes a URL path segment or query value: everything but [A-Za-z0-9._-] (branch
/// names may contain '/'; generated passwords are alphanumeric).
pub fn seg(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
            out.push(b as char);
        } else {
            out += &format!("%{b:02X}");
        }
    }
    out
}

impl Client {
    /// Connects to the daemon of `data_dir`, or explains how to start it.
    pub fn connect(data_dir: &Path) -> Result<Client> {
        let info = running_daemon(data_dir).ok_or_else(|| {
            anyhow!(
                "lakelet is not running for data directory {}; start it with `lakelet up{}`",
                data_dir.display(),
                data_dir_flag(data_dir)
            )
        })?;
        let (token, principal) = match acting_principal()? {
            Some((name, secret)) => (secret, Some(name)),
            None => {
                let t = std::fs::read_to_string(super::token_path(data_dir))
                    .with_context(|| {
                        format!(
                            "reading the API token {} (are you the user who ran `lakelet up`? \
                             A principal sets LAKELET_PRINCIPAL and LAKELET_SECRET instead)",
                            super::token_path(data_dir).display()
                        )
                    })?
                    .trim()
                    .to_string();
                (t, None)
            }
        };
        let mut c = Client::remote(&format!("http://{}/lakelet/v1", info.api), &token);
        c.info = Some(info);
        c.principal = principal;
        Ok(c)
    }

    /// A client of any API under `base` (no trailing slash) with a bearer token.
    pub fn remote(base: &str, token: &str) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(3600)))
            .build()
            .into();
        Client {
            agent,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            info: None,
            principal: None,
        }
    }

    /// The same server with another path prefix (`/lakelet/v1` → `/api/2.0/postgres`).
    pub fn with_base(&self, base: &str) -> Client {
        Client {
            agent: self.agent.clone(),
            base: base.trim_end_matches('/').to_string(),
            token: self.token.clone(),
            info: self.info.clone(),
            principal: self.principal.clone(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The bearer token this client sends (`lakelet test` hands it to the test command, which
    /// checks out its databases as the same principal).
    pub fn bearer(&self) -> &str {
        &self.token
    }

    /// The local daemon's record (only for a client made by `connect`).
    pub fn daemon(&self) -> &DaemonInfo {
        self.info.as_ref().expect("a client of the local daemon")
    }

    fn finish<T: DeserializeOwned>(
        &self,
        what: &str,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T> {
        let mut resp = r.map_err(|e| anyhow!("{what}: {} did not answer: {e}", self.base))?;
        let status = resp.status();
        let body = resp
            .body_mut()
            .read_to_string()
            .with_context(|| format!("{what}: reading the answer"))?;
        if status.is_success() {
            return serde_json::from_str(&body)
                .with_context(|| format!("{what}: unexpected answer {body:?}"));
        }
        match serde_json::from_str::<ErrorBody>(&body) {
            Ok(e) => bail!(ApiFailure {
                status: status.as_u16(),
                code: e.error_code,
                message: e.message,
            }),
            Err(_) => bail!("{what}: HTTP {status}: {body}"),
        }
    }

    /// The bearer token, and who the CLI says it acts as (the daemon checks the two agree).
    fn headers<B>(&self, r: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        r.header("Authorization", format!("Bearer {}", self.token))
            .header("X-Lakelet-Client", "cli")
            .header(
                "X-Lakelet-Principal",
                self.principal.as_deref().unwrap_or(""),
            )
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let r = self
            .headers(self.agent.get(format!("{}{path}", self.base)))
            .call();
        self.finish(&format!("GET {path}"), r)
    }

    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        let r = self
            .headers(self.agent.post(format!("{}{path}", self.base)))
            .send_json(body);
        self.finish(&format!("POST {path}"), r)
    }

    pub fn patch<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        let r = self
            .headers(self.agent.patch(format!("{}{path}", self.base)))
            .send_json(body);
        self.finish(&format!("PATCH {path}"), r)
    }

    pub fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let r = self
            .headers(self.agent.delete(format!("{}{path}", self.base)))
            .call();
        self.finish(&format!("DELETE {path}"), r)
    }
}

/// An error the server answered in the Databricks shape. Displays as its message alone, so
/// the user reads what the server said; callers downcast it to act on the code.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: u16,
    pub code: String,
    pub message: String,
}

/// Whether `e` is the API saying "no such resource" (a 404 / NOT_FOUND answer), however much
/// context callers added around it.
pub fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ApiFailure>()
        .is_some_and(|f| f.code == "NOT_FOUND" || f.status == 404)
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiFailure {}

/// ` --data-dir D` unless D is the default, for messages that suggest a command.
pub fn data_dir_flag(data_dir: &Path) -> String {
    if data_dir == Path::new(".lakelet") || std::env::var_os("LAKELET_DATA_DIR").is_some() {
        String::new()
    } else {
        format!(" --data-dir {}", data_dir.display())
    }
}
