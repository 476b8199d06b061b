//! A fresh lakelet database per test.
//!
//! `lakelet test -- cargo test` builds a *template* (the project's migrations, then its seed
//! files), keeps a warm pool of copy-on-write branches of it, and runs `cargo test` with the
//! variables this crate reads. Each [`TestDb::checkout`] takes one branch out of the pool (in
//! milliseconds: nothing is copied) and gives a test a database of its own, exactly as the
//! template left it, so tests can commit, alter the schema and run in parallel without seeing
//! each other. The branch goes back when the [`TestDb`] is dropped, also when the test panics.
//!
//! ```no_run
//! # fn main() -> Result<(), lakelet_testdb::Error> {
//! let db = lakelet_testdb::TestDb::checkout("accounts::transfer_moves_money")?;
//! // postgresql://postgres:…@127.0.0.1:5432/postgres?options=branch%3Dtest-ab12cd34-k2x9q1
//! let url = db.url();
//! # let _ = url;
//! // … connect with tokio-postgres, sqlx, diesel, postgres, psql …
//! # Ok(()) }
//! ```
//!
//! The only dependency is `serde_json`: the daemon's API is plain HTTP/1.1 on the loopback, so
//! it is spoken here over [`std::net::TcpStream`] rather than pulling an HTTP client (and an
//! async runtime or TLS stack) into every test build.
//!
//! The environment, read at call time:
//!
//! | variable | what |
//! | --- | --- |
//! | `LAKELET_API_URL` | the daemon's API, `http://127.0.0.1:41234/lakelet/v1` |
//! | `LAKELET_API_TOKEN` | its bearer token |
//! | `LAKELET_TEST_TEMPLATE` | the template the branches are forked from |
//! | `LAKELET_TEST_RUN` | this run's id (optional): the daemon reaps a run's leftovers by it |
//! | `LAKELET_PGUSER`, `LAKELET_PGPASSWORD` | the proxy's user and (optional) password |
//! | `LAKELET_PGHOST`, `LAKELET_PGPORT`, `LAKELET_PGDATABASE` | used only if an answer lacks them |

mod http;

use http::{read_response, ReadError};

use std::fmt;
use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::{json, Value};

/// The longest label the daemon takes; longer ones are cut (a label is only for humans).
pub const MAX_LABEL: usize = 200;

/// How long to wait for the daemon to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for an answer. A checkout normally takes milliseconds (the pool is warm)
/// but waits when the pool is empty; this bounds it, so a stuck daemon fails the test instead
/// of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(120);

const HINT: &str = "run the tests under `lakelet test -- cargo test`, or set LAKELET_API_URL, \
                    LAKELET_API_TOKEN and LAKELET_TEST_TEMPLATE (README, \"A fresh database per test\")";

/// Why a checkout or release did not work. The `Display` form is meant to be shown as it is.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A variable the client needs is not set: the tests were not started by `lakelet test`.
    MissingEnv { var: &'static str },
    /// `LAKELET_API_URL` is not an `http://host:port/path` URL.
    BadApiUrl { url: String, reason: String },
    /// The daemon could not be reached: not running (connection refused), wrong address.
    Unreachable { url: String, source: io::Error },
    /// The connection broke or timed out half way through the exchange.
    Io { url: String, source: io::Error },
    /// The daemon answered with an error status; `message` is its explanation.
    Api {
        what: String,
        url: String,
        status: u16,
        error_code: Option<String>,
        message: String,
    },
    /// The answer was not the HTTP or JSON this protocol expects.
    BadResponse { url: String, reason: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::MissingEnv { var } => write!(f, "lakelet-testdb: {var} is not set: {HINT}"),
            Error::BadApiUrl { url, reason } => {
                write!(f, "lakelet-testdb: LAKELET_API_URL={url:?}: {reason}")
            }
            Error::Unreachable { url, source } => {
                let why = if source.kind() == io::ErrorKind::ConnectionRefused {
                    "connection refused".to_string()
                } else {
                    source.to_string()
                };
                write!(
                    f,
                    "lakelet-testdb: cannot reach the lakelet daemon at {url} ({why}): start it \
                     with `lakelet up`, or run the tests under `lakelet test -- cargo test`"
                )
            }
            Error::Io { url, source } => {
                write!(
                    f,
                    "lakelet-testdb: talking to the lakelet daemon at {url}: {source}"
                )
            }
            Error::Api {
                what,
                url,
                status,
                error_code,
                message,
            } => {
                write!(
                    f,
                    "lakelet-testdb: {what} failed: HTTP {status} from {url}: {message}"
                )?;
                if let Some(code) = error_code {
                    write!(f, " ({code})")?;
                }
                Ok(())
            }
            Error::BadResponse { url, reason } => {
                write!(f, "lakelet-testdb: unexpected answer from {url}: {reason}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Unreachable { source, .. } | Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Where the daemon's API is, split for a raw HTTP/1.1 request.
#[derive(Clone, Debug, PartialEq)]
struct ApiUrl {
    /// As given, without a trailing slash: the base of the URLs in messages.
    base: String,
    /// Without IPv6 brackets, for connecting.
    host: String,
    port: u16,
    /// `host:port` as given, for the Host header.
    authority: String,
    /// The path below which the routes are, without a trailing slash (`/lakelet/v1`).
    path: String,
}

fn parse_api_url(url: &str) -> Result<ApiUrl, Error> {
    let bad = |reason: &str| Error::BadApiUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let base = url.trim_end_matches('/');
    let rest = match base.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some(_) => return Err(bad("only http:// is supported (the daemon's API is local)")),
        None => return Err(bad("expected http://host:port/path")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(bad(
            "user information in the URL is not supported (the token is LAKELET_API_TOKEN)",
        ));
    }
    if path.contains(['?', '#']) {
        return Err(bad("a query or fragment is not expected"));
    }
    let (host, port) = if let Some(after) = authority.strip_prefix('[') {
        let (host, after) = after
            .split_once(']')
            .ok_or_else(|| bad("unclosed [ in the host"))?;
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err(bad("unexpected text after the host")),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        Some(port) => port.parse().map_err(|_| bad("the port is not a number"))?,
        None => 80,
    };
    Ok(ApiUrl {
        base: base.to_string(),
        host: host.to_string(),
        port,
        authority: authority.to_string(),
        path: path.to_string(),
    })
}

/// A client of the daemon's test pool, for when [`TestDb::checkout`]'s reading of the
/// environment does not fit (several templates, a daemon not named by the environment).
#[derive(Clone)]
pub struct Client {
    api: ApiUrl,
    token: String,
    template: String,
    run: Option<String>,
    pg_user: String,
    pg_password: Option<String>,
}

impl fmt::Debug for Client {
    // Not the token nor the password: Debug output ends up in test logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("api", &self.api.base)
            .field("template", &self.template)
            .field("run", &self.run)
            .field("pg_user", &self.pg_user)
            .finish_non_exhaustive()
    }
}

fn env(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

fn require(var: &'static str) -> Result<String, Error> {
    env(var).ok_or(Error::MissingEnv { var })
}

impl Client {
    /// The client `lakelet test` describes in the environment (see the crate's docs).
    pub fn from_env() -> Result<Client, Error> {
        let api_url = require("LAKELET_API_URL")?;
        let token = require("LAKELET_API_TOKEN")?;
        let template = require("LAKELET_TEST_TEMPLATE")?;
        let mut client = Client::new(&api_url, &token, &template)?;
        client.run = env("LAKELET_TEST_RUN");
        if let Some(user) = env("LAKELET_PGUSER") {
            client.pg_user = user;
        }
        client.pg_password = env("LAKELET_PGPASSWORD");
        Ok(client)
    }

    /// A client of the API at `api_url` (`http://host:port/lakelet/v1`) handing out branches
    /// of `template`; the proxy user is `postgres` without a password until set otherwise.
    pub fn new(api_url: &str, token: &str, template: &str) -> Result<Client, Error> {
        Ok(Client {
            api: parse_api_url(api_url)?,
            token: token.to_string(),
            template: template.to_string(),
            run: None,
            pg_user: "postgres".to_string(),
            pg_password: None,
        })
    }

    /// Tags the checkouts with a run id, so that the daemon can reap what a run left behind.
    pub fn with_run(mut self, run: &str) -> Client {
        self.run = Some(run.to_string());
        self
    }

    /// The proxy's user and password, put into the connection URLs.
    pub fn with_pg_user(mut self, user: &str, password: Option<&str>) -> Client {
        self.pg_user = user.to_string();
        self.pg_password = password.map(str::to_string);
        self
    }

    /// Takes a fresh branch of the template out of the pool; `label` (a test's name, cut to
    /// 200 characters; empty for none) shows in the daemon's listings.
    pub fn checkout(&self, label: &str) -> Result<TestDb, Error> {
        let mut body = json!({ "template": self.template });
        if let Some(run) = &self.run {
            body["run"] = json!(run);
        }
        if !label.is_empty() {
            body["label"] = json!(truncate(label, MAX_LABEL));
        }
        let what = format!("checkout of a database from template '{}'", self.template);
        let (url, answer) = self.post("/test/checkout", &body, &what)?;
        let missing = |field: &str| Error::BadResponse {
            url: url.clone(),
            reason: format!("no {field} in {answer}"),
        };
        let branch = answer["branch"]
            .as_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| missing("branch"))?
            .to_string();
        // The answer says where the proxy is; the LAKELET_PG* variables are a fallback.
        let host = answer["host"]
            .as_str()
            .map(str::to_string)
            .or_else(|| env("LAKELET_PGHOST"))
            .ok_or_else(|| missing("host"))?;
        let port = answer["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .or_else(|| env("LAKELET_PGPORT").and_then(|p| p.parse().ok()))
            .ok_or_else(|| missing("port"))?;
        let database = answer["database"]
            .as_str()
            .map(str::to_string)
            .or_else(|| env("LAKELET_PGDATABASE"))
            .ok_or_else(|| missing("database"))?;
        let url = connection_url(
            &self.pg_user,
            self.pg_password.as_deref(),
            &host,
            port,
            &database,
            &branch,
        );
        Ok(TestDb {
            template: answer["template"]
                .as_str()
                .unwrap_or(&self.template)
                .to_string(),
            hit: answer["hit"].as_bool().unwrap_or(false),
            wait_ms: answer["wait_ms"].as_f64().unwrap_or(0.0),
            branch,
            url,
            host,
            port,
            database,
            user: self.pg_user.clone(),
            password: self.pg_password.clone(),
            client: self.clone(),
            released: false,
        })
    }

    /// Gives a branch back (the daemon deletes it, softly, and refills the pool). Returns the
    /// daemon's `released` flag.
    pub fn release(&self, branch: &str) -> Result<bool, Error> {
        let what = format!("release of branch '{branch}'");
        let (_, answer) = self.post("/test/release", &json!({ "branch": branch }), &what)?;
        Ok(answer["released"].as_bool().unwrap_or(true))
    }

    /// One request, one connection (`Connection: close`): a JSON object back, or the error.
    fn post(&self, route: &str, body: &Value, what: &str) -> Result<(String, Value), Error> {
        let url = format!("{}{}", self.api.base, route);
        let unreachable = |source| Error::Unreachable {
            url: url.clone(),
            source,
        };
        let io = |source| Error::Io {
            url: url.clone(),
            source,
        };
        let mut stream = connect(&self.api.host, self.api.port).map_err(unreachable)?;
        stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
        stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
        let body = body.to_string();
        let request = format!(
            "POST {path}{route} HTTP/1.1\r\n\
             Host: {host}\r\n\
             Authorization: Bearer {token}\r\n\
             Content-Type: application/json\r\n\
             Accept: application/json\r\n\
             User-Agent: lakelet-testdb/{version}\r\n\
             Content-Length: {length}\r\n\
             Connection: close\r\n\
             \r\n\
             {body}",
            path = self.api.path,
            host = self.api.authority,
            token = self.token,
            version = env!("CARGO_PKG_VERSION"),
            length = body.len(),
        );
        stream.write_all(request.as_bytes()).map_err(io)?;
        stream.flush().map_err(io)?;
        let response = read_response(&mut stream).map_err(|e| match e {
            ReadError::Io(source) => io(source),
            ReadError::Malformed(reason) => Error::BadResponse {
                url: url.clone(),
                reason,
            },
        })?;
        let parsed: Option<Value> = serde_json::from_slice(&response.body).ok();
        if !(200..300).contains(&response.status) {
            let (error_code, message) = error_body(parsed.as_ref(), &response.body);
            return Err(Error::Api {
                what: what.to_string(),
                url,
                status: response.status,
                error_code,
                message,
            });
        }
        match parsed {
            Some(answer @ Value::Object(_)) => Ok((url, answer)),
            _ => Err(Error::BadResponse {
                reason: format!(
                    "HTTP {} with a body that is not a JSON object: {:?}",
                    response.status,
                    String::from_utf8_lossy(&response.body[..response.body.len().min(200)])
                ),
                url,
            }),
        }
    }
}

fn connect(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address")))
}

/// `{"error_code": …, "message": …}`, or whatever text the body has.
fn error_body(parsed: Option<&Value>, raw: &[u8]) -> (Option<String>, String) {
    if let Some(message) = parsed.and_then(|v| v["message"].as_str()) {
        let code = parsed
            .and_then(|v| v["error_code"].as_str())
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        return (code, message.to_string());
    }
    let text = String::from_utf8_lossy(raw);
    let text = truncate(text.trim(), 500);
    (
        None,
        if text.is_empty() {
            "no message".to_string()
        } else {
            text.to_string()
        },
    )
}

fn truncate(s: &str, chars: usize) -> &str {
    match s.char_indices().nth(chars) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `postgresql://user[:password]@host:port/database?options=branch%3D<branch>`: the form
/// libpq, tokio-postgres, sqlx and pgJDBC (after `jdbc:`) all take.
fn connection_url(
    user: &str,
    password: Option<&str>,
    host: &str,
    port: u16,
    database: &str,
    branch: &str,
) -> String {
    let auth = match password {
        Some(password) if !password.is_empty() => format!("{}:{}", pct(user), pct(password)),
        _ => pct(user),
    };
    let host = if host.starts_with('/') {
        pct(host) // a Unix socket directory, as libpq takes it in a URL
    } else if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]") // an IPv6 address
    } else {
        host.to_string()
    };
    format!(
        "postgresql://{auth}@{host}:{port}/{}?options=branch%3D{}",
        pct(database),
        pct(branch)
    )
}

/// A database of its own for one test: a branch of the template, checked out of lakelet's
/// pool and given back when this value is dropped (so also when the test panics and unwinds;
/// with `panic = "abort"`, or a killed process, the daemon reaps the branch with its run).
pub struct TestDb {
    branch: String,
    template: String,
    url: String,
    host: String,
    port: u16,
    database: String,
    user: String,
    password: Option<String>,
    hit: bool,
    wait_ms: f64,
    client: Client,
    released: bool,
}

impl TestDb {
    /// Takes a fresh branch out of the pool of the template `lakelet test` set up (the
    /// environment is read now). `label` names the test in the daemon's listings; pass
    /// something like `module_path!()` plus the test's name, or `""`.
    pub fn checkout(label: &str) -> Result<TestDb, Error> {
        Client::from_env()?.checkout(label)
    }

    /// `postgresql://user[:password]@host:port/database?options=branch%3D<branch>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The branch's name, e.g. `test-ab12cd34-k2x9q1`.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The template the branch was forked from.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// Whether the pool had a branch ready (false: the checkout waited for one to be made).
    pub fn hit(&self) -> bool {
        self.hit
    }

    /// How long the checkout waited inside the daemon, in milliseconds.
    pub fn wait_ms(&self) -> f64 {
        self.wait_ms
    }

    /// The proxy's host, for clients configured field by field.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The startup option that picks the branch at lakelet's proxy: `branch=<branch>`.
    pub fn options(&self) -> String {
        format!("branch={}", self.branch)
    }

    /// `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD` (when there is one), `PGDATABASE` and
    /// `PGOPTIONS` for this branch, for `Command::envs` (psql, pg_dump, a server under test).
    pub fn pg_env(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            ("PGHOST", self.host.clone()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", self.user.clone()),
        ];
        if let Some(password) = &self.password {
            vars.push(("PGPASSWORD", password.clone()));
        }
        vars.push(("PGDATABASE", self.database.clone()));
        vars.push(("PGOPTIONS", self.options()));
        vars
    }

    /// Gives the branch back now, with the error if that fails (dropping it does the same but
    /// can only print the error).
    pub fn release(mut self) -> Result<(), Error> {
        self.released = true;
        self.client.release(&self.branch).map(|_| ())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if !self.released {
            self.released = true;
            // Drop cannot fail, and panicking here while a failed test unwinds would abort the
            // process: the error is printed and the daemon reaps the branch with its run.
            if let Err(e) = self.client.release(&self.branch) {
                eprintln!(
                    "{e} (lakelet-testdb: dropping the TestDb of branch '{}')",
                    self.branch
                );
            }
        }
    }
}

impl fmt::Debug for TestDb {
    // Not the URL nor the password: Debug output ends up in test logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestDb")
            .field("branch", &self.branch)
            .field("template", &self.template)
            .field("hit", &self.hit)
            .field("wait_ms", &self.wait_ms)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_response;
    use std::io::{BufRead, Read};
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::thread;

    #[test]
    fn api_urls_are_split_for_a_request() {
        let api = parse_api_url("http://127.0.0.1:41234/lakelet/v1/").unwrap();
        assert_eq!(api.base, "http://127.0.0.1:41234/lakelet/v1");
        assert_eq!((api.host.as_str(), api.port), ("127.0.0.1", 41234));
        assert_eq!(api.authority, "127.0.0.1:41234");
        assert_eq!(api.path, "/lakelet/v1");
        let api = parse_api_url("HTTP://[::1]:8080").unwrap();
        assert_eq!(
            (api.host.as_str(), api.port, api.path.as_str()),
            ("::1", 8080, "")
        );
        let api = parse_api_url("http://localhost/x").unwrap();
        assert_eq!((api.host.as_str(), api.port), ("localhost", 80));
        for bad in [
            "https://127.0.0.1:1/x",
            "127.0.0.1:1/x",
            "http://:1/x",
            "http://h:port/x",
            "http://u:p@h:1/x",
            "http://h:1/x?y",
        ] {
            let e = parse_api_url(bad).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("lakelet-testdb: LAKELET_API_URL="),
                "{e}"
            );
        }
    }

    #[test]
    fn connection_urls_encode_what_needs_it() {
        assert_eq!(
            connection_url("postgres", Some("p@ss:w/rd%"), "127.0.0.1", 5433, "postgres", "test-ab12-k2"),
            "postgresql://postgres:p%40ss%3Aw%2Frd%25@127.0.0.1:5433/postgres?options=branch%3Dtest-ab12-k2"
        );
        assert_eq!(
            connection_url("me", None, "::1", 5432, "app db", "b"),
            "postgresql://me@[::1]:5432/app%20db?options=branch%3Db"
        );
        assert_eq!(
            connection_url("me", Some(""), "/run/lakelet", 5432, "d", "b"),
            "postgresql://me@%2Frun%2Flakelet:5432/d?options=branch%3Db"
        );
    }

    #[test]
    fn labels_are_cut_on_a_character_boundary() {
        let long = "é".repeat(300);
        assert_eq!(truncate(&long, MAX_LABEL).chars().count(), 200);
        assert_eq!(truncate("short", MAX_LABEL), "short");
    }

    #[test]
    fn responses_are_complete_by_length_by_chunks_or_by_eof() {
        let by_length = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n{}xy";
        assert_eq!(
            parse_response(by_length, false).unwrap().unwrap().body,
            b"{}xy"
        );
        assert!(parse_response(&by_length[..by_length.len() - 1], false)
            .unwrap()
            .is_none());

        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                        3;ext=1\r\n{\"a\r\n4\r\n\": 1\r\n1\r\n}\r\n0\r\nX-Trailer: y\r\n\r\n";
        let body = parse_response(chunked, false).unwrap().unwrap().body;
        assert_eq!(body, br#"{"a": 1}"#);
        for cut in 0..chunked.len() {
            assert!(
                parse_response(&chunked[..cut], false).unwrap().is_none(),
                "cut at {cut}"
            );
        }

        let continued =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\n\r\nbusy";
        assert!(parse_response(continued, false).unwrap().is_none());
        let response = parse_response(continued, true).unwrap().unwrap();
        assert_eq!(
            (response.status, response.body.as_slice()),
            (503, &b"busy"[..])
        );

        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", false).is_err());
        assert!(parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            false
        )
        .is_err());
    }

    /// A one-connection-per-answer stand-in for the daemon: sends back each canned response
    /// in turn and hands over each request it read (head and body).
    fn fake_daemon(responses: Vec<String>) -> (String, mpsc::Receiver<(String, String)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/lakelet/v1", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for response in responses {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = io::BufReader::new(stream);
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    head.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                }
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .unwrap()
                    .parse()
                    .unwrap();
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                tx.send((head, String::from_utf8(body).unwrap())).unwrap();
                let mut stream = reader.into_inner();
                // Byte by byte: the reader must put a response together from small reads.
                for b in response.as_bytes() {
                    stream.write_all(&[*b]).unwrap();
                }
            }
        });
        (url, rx)
    }

    fn json_response(status: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn checkout_and_release_speak_the_protocol() {
        let checkout = r#"{"branch":"test-ab12cd34-k2x9q1","template":"sample","hit":true,"wait_ms":2.1,"host":"127.0.0.1","port":5433,"database":"postgres","options":"branch=test-ab12cd34-k2x9q1"}"#;
        let release = r#"{"branch":"test-ab12cd34-k2x9q1","released":true}"#;
        let chunked_release = format!(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{release}\r\n0\r\n\r\n",
            release.len()
        );
        let (url, requests) = fake_daemon(vec![
            json_response("200 OK", checkout),
            chunked_release,
            json_response("200 OK", checkout),
            json_response("200 OK", release),
        ]);
        let client = Client::new(&url, "tok", "sample")
            .unwrap()
            .with_run("run-1")
            .with_pg_user("postgres", Some("s3cr:t"));
        let label = "x".repeat(250);
        let db = client.checkout(&label).unwrap();
        assert_eq!(db.branch(), "test-ab12cd34-k2x9q1");
        assert_eq!(
            db.url(),
            "postgresql://postgres:s3cr%3At@127.0.0.1:5433/postgres?options=branch%3Dtest-ab12cd34-k2x9q1"
        );
        assert!(db.hit());
        assert_eq!(db.wait_ms(), 2.1);
        assert_eq!(db.options(), "branch=test-ab12cd34-k2x9q1");
        assert!(!format!("{db:?}").contains("s3cr"));
        let (head, body) = requests.recv().unwrap();
        assert!(
            head.starts_with("POST /lakelet/v1/test/checkout HTTP/1.1\r\n"),
            "{head}"
        );
        for header in [
            "Authorization: Bearer tok\r\n",
            "Content-Type: application/json\r\n",
            "Connection: close\r\n",
        ] {
            assert!(head.contains(header), "{header} in {head}");
        }
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["template"], "sample");
        assert_eq!(body["run"], "run-1");
        assert_eq!(body["label"].as_str().unwrap().len(), MAX_LABEL);
        db.release().unwrap();
        let (head, body) = requests.recv().unwrap();
        assert!(
            head.starts_with("POST /lakelet/v1/test/release HTTP/1.1\r\n"),
            "{head}"
        );
        assert_eq!(body, r#"{"branch":"test-ab12cd34-k2x9q1"}"#);

        // Dropped, it is released too.
        drop(client.checkout("").unwrap());
        let (_, body) = requests.recv().unwrap();
        assert!(!body.contains("label"), "{body}");
        let (head, _) = requests.recv().unwrap();
        assert!(head.starts_with("POST /lakelet/v1/test/release "), "{head}");
    }

    #[test]
    fn errors_carry_the_daemons_message() {
        let (url, _requests) = fake_daemon(vec![
            json_response(
                "404 Not Found",
                r#"{"error_code":"NOT_FOUND","message":"no template 'nope'"}"#,
            ),
            "HTTP/1.1 502 Bad Gateway\r\ncontent-length: 7\r\n\r\nno json".to_string(),
            json_response("200 OK", "[]"),
        ]);
        let client = Client::new(&url, "tok", "nope").unwrap();
        let e = client.checkout("t").unwrap_err();
        assert!(matches!(e, Error::Api { status: 404, .. }));
        assert_eq!(
            e.to_string(),
            format!(
                "lakelet-testdb: checkout of a database from template 'nope' failed: HTTP 404 from \
                 {url}/test/checkout: no template 'nope' (NOT_FOUND)"
            )
        );
        let e = client.checkout("t").unwrap_err();
        let tail = format!("HTTP 502 from {url}/test/checkout: no json");
        assert!(e.to_string().ends_with(&tail), "{e}");
        let e = client.checkout("t").unwrap_err();
        assert!(matches!(e, Error::BadResponse { .. }), "{e}");
    }

    #[test]
    fn a_daemon_that_is_down_is_named_with_what_to_do() {
        // A port that was free a moment ago: nothing listens there now.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = Client::new(&format!("http://127.0.0.1:{port}/lakelet/v1"), "t", "s").unwrap();
        let e = client.checkout("t").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "lakelet-testdb: cannot reach the lakelet daemon at http://127.0.0.1:{port}/lakelet/v1/test/checkout \
                 (connection refused): start it with `lakelet up`, or run the tests under `lakelet test -- cargo test`"
            )
        );
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn a_missing_variable_says_how_to_run() {
        let e = Error::MissingEnv {
            var: "LAKELET_API_URL",
        };
        assert_eq!(
            e.to_string(),
            "lakelet-testdb: LAKELET_API_URL is not set: run the tests under `lakelet test -- cargo test`, \
             or set LAKELET_API_URL, LAKELET_API_TOKEN and LAKELET_TEST_TEMPLATE (README, \"A fresh database per test\")"
        );
    }
}
