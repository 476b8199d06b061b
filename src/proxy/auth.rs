//! Who may connect: lakelet's own credentials, checked by SCRAM-SHA-256 (RFC 5802/7677, as
//! Postgres speaks it) or by a cleartext password over TLS.
//!
//! The proxy stores only SCRAM verifiers (`SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`,
//! the format of `pg_authid.rolpassword`), in DATA/credentials.json. The local user's generated
//! password is also kept in clear in DATA/password (0600, root's) because `lakelet connstr` must
//! print it; that file is the same secret an API token is, on the same machine.
//!
//! Unknown users get a mock exchange with a salt derived from their name, as Postgres does, so a
//! client cannot tell a wrong user from a wrong password.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::{digest, hmac, pbkdf2};
use serde::{Deserialize, Serialize};

/// The user `lakelet up` creates: the computes' superuser.
pub const LOCAL_USER: &str = "postgres";
const ITERATIONS: u32 = 4096;

/// How the proxy authenticates clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// SCRAM-SHA-256 (SCRAM-SHA-256-PLUS over TLS). The default.
    Scram,
    /// A cleartext password, accepted only over TLS.
    Password,
    /// No password at all. For single-user laptops; never the default.
    Trust,
}

pub fn credentials_path(data_dir: &Path) -> PathBuf {
    data_dir.join("credentials.json")
}

pub fn password_path(data_dir: &Path) -> PathBuf {
    data_dir.join("password")
}

/// The local user's password, as `lakelet connstr` prints it.
pub fn local_password(data_dir: &Path) -> Result<String> {
    let p = password_path(data_dir);
    let s = std::fs::read_to_string(&p)
        .with_context(|| format!("reading {} (has `lakelet up` run?)", p.display()))?;
    Ok(s.trim().to_string())
}

pub use crate::util::random_bytes;

/// A password of 24 characters from [A-Za-z0-9]: ~143 bits, and no character a URL, a shell or
/// a JDBC string needs to escape.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    random_bytes::<24>()
        .iter()
        // 256 % 62 != 0: the bias is under 1.6% per character, irrelevant at 24 characters.
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// A SCRAM-SHA-256 verifier: what the server needs, and not enough to log in with.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier(..)")
    }
}

fn hmac256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::sign(&k, msg).as_ref().try_into().unwrap()
}

fn sha256(b: &[u8]) -> [u8; 32] {
    digest::digest(&digest::SHA256, b)
        .as_ref()
        .try_into()
        .unwrap()
}

/// Compares secrets in time independent of where they differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Verifier {
    /// Passwords are used as their UTF-8 bytes. SASLprep would only change non-ASCII passwords;
    /// generated passwords are ASCII.
    pub fn new(password: &str, salt: &[u8], iterations: u32) -> Verifier {
        let mut salted = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            std::num::NonZeroU32::new(iterations.max(1)).unwrap(),
            salt,
            password.as_bytes(),
            &mut salted,
        );
        let client_key = hmac256(&salted, b"Client Key");
        Verifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac256(&salted, b"Server Key"),
        }
    }

    pub fn generate(password: &str) -> Verifier {
        Verifier::new(password, &random_bytes::<16>(), ITERATIONS)
    }

    pub fn encode(&self) -> String {
        format!(
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }

    pub fn parse(s: &str) -> Result<Verifier> {
        let bad = || anyhow::anyhow!("not a SCRAM-SHA-256 verifier");
        let rest = s.strip_prefix("SCRAM-SHA-256$").ok_or_else(bad)?;
        let (params, keys) = rest.split_once('$').ok_or_else(bad)?;
        let (iter, salt) = params.split_once(':').ok_or_else(bad)?;
        let (stored, server) = keys.split_once(':').ok_or_else(bad)?;
        let key = |k: &str| -> Result<[u8; 32]> { B64.decode(k)?.try_into().map_err(|_| bad()) };
        Ok(Verifier {
            iterations: iter.parse()?,
            salt: B64.decode(salt)?,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }

    pub fn check_password(&self, password: &str) -> bool {
        let v = Verifier::new(password, &self.salt, self.iterations);
        ct_eq(&v.stored_key, &self.stored_key)
    }
}

#[derive(Default, Serialize, Deserialize)]
struct CredentialsFile {
    users: BTreeMap<String, UserEntry>,
}

#[derive(Serialize, Deserialize)]
struct UserEntry {
    verifier: String,
}

/// A short-lived password (`POST /api/2.0/postgres/credentials`): valid for one user on one
/// branch until it expires. Its verifier uses the user's salt and iteration count, so one
/// SCRAM exchange can check it beside the user's own password. Kept in memory only: a daemon
/// restart revokes every token, which a short-lived credential may do.
struct Token {
    user: String,
    branch: String,
    verifier: Verifier,
    expires: std::time::SystemTime,
    /// A promotion grant: write access to the branch, whatever the role's connect rights.
    grant: bool,
}

/// The users the proxy accepts.
pub struct Credentials {
    users: RwLock<BTreeMap<String, Verifier>>,
    tokens: std::sync::Mutex<Vec<Token>>,
    /// Salts the mock exchange of unknown users: stable for a daemon's life, secret.
    mock_key: [u8; 32],
}

impl Credentials {
    /// Loads DATA/credentials.json, creating the local user (and DATA/password) on first start.
    pub fn load_or_init(data_dir: &Path) -> Result<Credentials> {
        let path = credentials_path(data_dir);
        let mut file: CredentialsFile = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| {
                format!(
                    "{} is not valid JSON; restore it or delete it to get a new password",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => CredentialsFile::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let pw_path = password_path(data_dir);
        if !file.users.contains_key(LOCAL_USER) || !pw_path.exists() {
            // Reuse a surviving DATA/password so a lost credentials file does not change it.
            let pw = match local_password(data_dir) {
                Ok(p) if !p.is_empty() => p,
                _ => {
                    let p = generate_password();
                    crate::util::write_atomically(&pw_path, format!("{p}\n").as_bytes(), 0o600)?;
                    p
                }
            };
            file.users.insert(
                LOCAL_USER.into(),
                UserEntry {
                    verifier: Verifier::generate(&pw).encode(),
                },
            );
            crate::util::write_atomically(&path, &serde_json::to_vec_pretty(&file)?, 0o600)?;
            tracing::info!(user = LOCAL_USER, "created the proxy's local user");
        }
        let mut users = BTreeMap::new();
        for (name, e) in file.users {
            let v = Verifier::parse(&e.verifier)
                .with_context(|| format!("user {name:?} in {}", path.display()))?;
            users.insert(name, v);
        }
        Ok(Credentials {
            users: RwLock::new(users),
            tokens: Default::default(),
            mock_key: random_bytes(),
        })
    }

    pub fn verifier(&self, user: &str) -> Option<Verifier> {
        self.users.read().unwrap().get(user).cloned()
    }

    /// Every verifier that may hold `user`'s password for `branch` now, each with whether it
    /// is a promotion grant: `own` (the user's own; the local user's if `None`), then each live
    /// token. All share the salt and iteration count of `own`. Empty for an unknown user.
    pub fn verifiers(
        &self,
        user: &str,
        branch: &str,
        own: Option<Verifier>,
    ) -> Vec<(Verifier, bool)> {
        let Some(own) = own.or_else(|| self.verifier(user)) else {
            return vec![];
        };
        let now = std::time::SystemTime::now();
        let mut tokens = self.tokens.lock().unwrap();
        tokens.retain(|t| t.expires > now);
        let mut out = vec![(own, false)];
        out.extend(
            tokens
                .iter()
                .filter(|t| t.user == user && t.branch == branch)
                .map(|t| (t.verifier.clone(), t.grant)),
        );
        out
    }

    /// Issues a password for `user` (whose own verifier is `own`, or the local user's) on
    /// `branch`, valid until `expires`.
    pub fn issue_token(
        &self,
        user: &str,
        own: Option<Verifier>,
        branch: &str,
        expires: std::time::SystemTime,
        grant: bool,
    ) -> Result<String> {
        let own = own
            .or_else(|| self.verifier(user))
            .ok_or_else(|| anyhow::anyhow!("the proxy has no user {user:?}"))?;
        let password = generate_password();
        let verifier = Verifier::new(&password, &own.salt, own.iterations);
        let now = std::time::SystemTime::now();
        let mut tokens = self.tokens.lock().unwrap();
        tokens.retain(|t| t.expires > now);
        tokens.push(Token {
            user: user.into(),
            branch: branch.into(),
            verifier,
            expires,
            grant,
        });
        Ok(password)
    }

    /// A verifier no password matches, with a salt that is the same on every attempt.
    pub fn mock(&self, user: &str) -> Verifier {
        Verifier {
            iterations: ITERATIONS,
            salt: hmac256(&self.mock_key, user.as_bytes())[..16].to_vec(),
            stored_key: random_bytes(),
            server_key: random_bytes(),
        }
    }
}

/// Why authentication failed. Everything but `Malformed` is reported to the client as 28P01.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    WrongPassword,
    Malformed(String),
}

fn malformed(m: impl Into<String>) -> AuthError {
    AuthError::Malformed(m.into())
}

/// The server side of one SCRAM-SHA-256 exchange.
pub struct Scram {
    /// The verifiers the proof may match, all with one salt and iteration count.
    candidates: Vec<Verifier>,
    /// The GS2 header the client sent, with the channel-binding data it must echo in `c=`.
    expected_cbind: Vec<u8>,
    nonce: String,
    client_first_bare: String,
    server_first: String,
}

/// Mechanisms to offer: SCRAM-SHA-256-PLUS only when there is a TLS channel to bind to.
pub fn mechanisms(tls: bool) -> Vec<String> {
    let mut m = vec![];
    if tls {
        m.push("SCRAM-SHA-256-PLUS".to_string());
    }
    m.push("SCRAM-SHA-256".to_string());
    m
}

impl Scram {
    /// Takes the SASLInitialResponse (mechanism and client-first-message) and returns the
    /// exchange and the server-first-message. `cert_hash` is the tls-server-end-point binding
    /// data (SHA-256 of the server certificate) when the connection is TLS.
    pub fn start(
        candidates: Vec<Verifier>,
        mechanism: &str,
        client_first: &[u8],
        cert_hash: Option<&[u8]>,
    ) -> Result<(Scram, String), AuthError> {
        let verifier = candidates.first().expect("at least one verifier");
        assert!(
            candidates
                .iter()
                .all(|c| c.salt == verifier.salt && c.iterations == verifier.iterations),
            "one SCRAM exchange has one salt"
        );
        let msg = std::str::from_utf8(client_first)
            .map_err(|_| malformed("client-first-message is not UTF-8"))?;
        let plus = match mechanism {
            "SCRAM-SHA-256" => false,
            "SCRAM-SHA-256-PLUS" if cert_hash.is_some() => true,
            m => return Err(malformed(format!("unsupported SASL mechanism {m:?}"))),
        };
        // gs2-header = cbind-flag "," [authzid] ","
        let (flag, rest) = msg
            .split_once(',')
            .ok_or_else(|| malformed("no GS2 header"))?;
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or_else(|| malformed("no GS2 header"))?;
        if !authzid.is_empty() {
            return Err(malformed("authorization identities are not supported"));
        }
        let gs2_header = &msg[..flag.len() + authzid.len() + 2];
        let mut expected_cbind = gs2_header.as_bytes().to_vec();
        match (flag, plus) {
            ("p=tls-server-end-point", true) => {
                expected_cbind.extend_from_slice(cert_hash.unwrap())
            }
            ("n", false) => {}
            // "y": the client could bind but believes the server cannot. We offered PLUS over
            // TLS, so over TLS that is a downgrade.
            ("y", false) if cert_hash.is_none() => {}
            ("y", false) => {
                return Err(malformed(
                    "the client thinks channel binding is unsupported, but it was offered",
                ))
            }
            (f, _) => return Err(malformed(format!("unexpected channel binding flag {f:?}"))),
        }
        let mut client_nonce = None;
        for attr in bare.split(',') {
            if let Some(r) = attr.strip_prefix("r=") {
                client_nonce = Some(r);
            } else if attr.starts_with("m=") {
                return Err(malformed("SCRAM extensions are not supported"));
            }
        }
        let client_nonce = client_nonce
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic() && b != b','))
            .ok_or_else(|| malformed("client nonce missing or invalid"))?;
        let nonce = format!("{client_nonce}{}", B64.encode(random_bytes::<18>()));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&verifier.salt),
            verifier.iterations
        );
        Ok((
            Scram {
                candidates,
                expected_cbind,
                nonce,
                client_first_bare: bare.to_string(),
                server_first: server_first.clone(),
            },
            server_first,
        ))
    }

    /// Checks the client-final-message; on success returns the server-final-message and the
    /// index of the candidate the proof matched.
    pub fn finish(self, client_final: &[u8]) -> Result<(String, usize), AuthError> {
        let msg = std::str::from_utf8(client_final)
            .map_err(|_| malformed("client-final-message is not UTF-8"))?;
        let (without_proof, proof) = msg
            .rsplit_once(",p=")
            .ok_or_else(|| malformed("no proof in client-final-message"))?;
        let mut cbind = None;
        let mut nonce = None;
        for attr in without_proof.split(',') {
            if let Some(c) = attr.strip_prefix("c=") {
                cbind = Some(c);
            } else if let Some(r) = attr.strip_prefix("r=") {
                nonce = Some(r);
            }
        }
        let cbind = B64
            .decode(cbind.ok_or_else(|| malformed("no channel binding in client-final"))?)
            .map_err(|_| malformed("channel binding is not base64"))?;
        if cbind != self.expected_cbind {
            return Err(malformed("channel binding does not match"));
        }
        if nonce != Some(self.nonce.as_str()) {
            return Err(malformed("nonce does not match"));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| malformed("proof is not base64"))?;
        if proof.len() != 32 {
            return Err(malformed("proof has the wrong length"));
        }
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let matched = self.candidates.iter().position(|v| {
            let signature = hmac256(&v.stored_key, auth_message.as_bytes());
            let client_key: Vec<u8> = proof.iter().zip(signature).map(|(p, s)| p ^ s).collect();
            ct_eq(&sha256(&client_key), &v.stored_key)
        });
        let i = matched.ok_or(AuthError::WrongPassword)?;
        let server_sig = hmac256(&self.candidates[i].server_key, auth_message.as_bytes());
        Ok((format!("v={}", B64.encode(server_sig)), i))
    }
}

/// Parses a SASLInitialResponse body: mechanism, then a length-prefixed client-first-message.
pub fn parse_sasl_initial(body: &[u8]) -> Result<(String, Vec<u8>), AuthError> {
    let nul = body
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| malformed("SASLInitialResponse without a mechanism"))?;
    let mech = String::from_utf8_lossy(&body[..nul]).into_owned();
    let rest = &body[nul + 1..];
    if rest.len() < 4 {
        return Err(malformed("SASLInitialResponse truncated"));
    }
    let len = i32::from_be_bytes(rest[..4].try_into().unwrap());
    let data = &rest[4..];
    if len < 0 || len as usize != data.len() {
        return Err(malformed("SASLInitialResponse length does not match"));
    }
    Ok((mech, data.to_vec()))
}

/// Parses a PasswordMessage body: one NUL-terminated string.
pub fn parse_password(body: &[u8]) -> Result<String, AuthError> {
    match body.split_last() {
        Some((0, pw)) if !pw.contains(&0) => {
            String::from_utf8(pw.to_vec()).map_err(|_| malformed("password is not UTF-8"))
        }
        _ => Err(malformed("malformed password message")),
    }
}

/// Checks that `s` could not be mistaken for anything but a user name in a file.
pub fn validate_user(s: &str) -> Result<()> {
    if s.is_empty() || s.len() > 63 || s.chars().any(|c| c.is_control()) {
        bail!("user name {s:?}: 1 to 63 printable characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client side, written from RFC 5802, to check the server against.
    fn client_proof(pw: &str, salt: &[u8], iter: u32, auth_message: &str) -> Vec<u8> {
        let v = Verifier::new(pw, salt, iter);
        let mut salted = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            std::num::NonZeroU32::new(iter).unwrap(),
            salt,
            pw.as_bytes(),
            &mut salted,
        );
        let client_key = hmac256(&salted, b"Client Key");
        let sig = hmac256(&v.stored_key, auth_message.as_bytes());
        client_key.iter().zip(sig).map(|(a, b)| a ^ b).collect()
    }

    fn exchange(pw: &str, verifier: &Verifier, cert: Option<&[u8]>) -> Result<String, AuthError> {
        exchange_any(pw, std::slice::from_ref(verifier), cert)
    }

    /// One exchange against several candidate verifiers (a user's password and its tokens).
    fn exchange_any(
        pw: &str,
        candidates: &[Verifier],
        cert: Option<&[u8]>,
    ) -> Result<String, AuthError> {
        let verifier = &candidates[0];
        let (mech, header) = match cert {
            Some(_) => ("SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,"),
            None => ("SCRAM-SHA-256", "n,,"),
        };
        let bare = "n=,r=abcdefghijkl";
        let (s, server_first) = Scram::start(
            candidates.to_vec(),
            mech,
            format!("{header}{bare}").as_bytes(),
            cert,
        )?;
        let nonce = server_first
            .split(',')
            .next()
            .unwrap()
            .strip_prefix("r=")
            .unwrap();
        assert!(nonce.starts_with("abcdefghijkl"));
        let mut cb = header.as_bytes().to_vec();
        cb.extend_from_slice(cert.unwrap_or_default());
        let without_proof = format!("c={},r={nonce}", B64.encode(&cb));
        let am = format!("{bare},{server_first},{without_proof}");
        let proof = client_proof(pw, &verifier.salt, verifier.iterations, &am);
        let (fin, i) = s.finish(format!("{without_proof},p={}", B64.encode(proof)).as_bytes())?;
        assert!(
            candidates[i].check_password(pw),
            "the index names the matching candidate"
        );
        let matched = candidates.iter().find(|v| v.check_password(pw)).unwrap();
        let expected = hmac256(&matched.server_key, am.as_bytes());
        assert_eq!(fin, format!("v={}", B64.encode(expected)));
        Ok(fin)
    }

    #[test]
    fn tokens_work_beside_the_password_for_their_branch_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let c = Credentials::load_or_init(dir.path()).unwrap();
        let own = local_password(dir.path()).unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
        let tok = c
            .issue_token(LOCAL_USER, None, "dev", later, false)
            .unwrap();
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
        let stale = c.issue_token(LOCAL_USER, None, "dev", past, false).unwrap();
        let dev: Vec<Verifier> = c
            .verifiers(LOCAL_USER, "dev", None)
            .into_iter()
            .map(|v| v.0)
            .collect();
        assert_eq!(dev.len(), 2, "the password and the live token");
        assert!(exchange_any(&tok, &dev, None).is_ok());
        assert!(exchange_any(&own, &dev, None).is_ok());
        assert_eq!(
            exchange_any(&stale, &dev, None),
            Err(AuthError::WrongPassword)
        );
        let main: Vec<Verifier> = c
            .verifiers(LOCAL_USER, "main", None)
            .into_iter()
            .map(|v| v.0)
            .collect();
        assert_eq!(
            exchange_any(&tok, &main, None),
            Err(AuthError::WrongPassword),
            "a token is for one branch"
        );
        assert!(c.verifiers("nobody", "dev", None).is_empty());
        assert!(c.issue_token("nobody", None, "dev", later, false).is_err());
    }

    #[test]
    fn scram_accepts_the_password_and_refuses_others() {
        let v = Verifier::new("hunter2", b"0123456789abcdef", 4096);
        exchange("hunter2", &v, None).unwrap();
        exchange("hunter2", &v, Some(b"certhash")).unwrap();
        assert_eq!(exchange("hunter3", &v, None), Err(AuthError::WrongPassword));
    }

    #[test]
    fn verifier_round_trips_and_checks_cleartext() {
        let v = Verifier::generate("pw");
        assert_eq!(Verifier::parse(&v.encode()).unwrap(), v);
        assert!(v.check_password("pw"));
        assert!(!v.check_password("pW"));
        assert!(Verifier::parse("md5abc").is_err());
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let v = Verifier::generate("pw");
        for m in [
            "",
            "n",
            "n,",
            "x,,n=,r=a",
            "n,a=b,n=,r=a",
            "n,,n=",
            "n,,r=a,b",
        ] {
            let _ = Scram::start(vec![v.clone()], "SCRAM-SHA-256", m.as_bytes(), None);
        }
        assert!(Scram::start(vec![v.clone()], "PLAIN", b"n,,r=a", None).is_err());
        assert!(Scram::start(vec![v.clone()], "SCRAM-SHA-256-PLUS", b"n,,r=a", None).is_err());
        assert!(Scram::start(vec![v.clone()], "SCRAM-SHA-256", b"y,,r=a", Some(b"h")).is_err());
        let (s, _) = Scram::start(vec![v], "SCRAM-SHA-256", b"n,,n=,r=abc", None).unwrap();
        assert!(matches!(
            s.finish(b"c=biws,r=zzz,p=AAAA"),
            Err(AuthError::Malformed(_))
        ));
        assert!(parse_sasl_initial(b"SCRAM\0\xff\xff\xff\xff").is_err());
        assert!(parse_sasl_initial(b"SCRAM\0\0\0\0\x02ab").is_ok());
        assert!(parse_password(b"abc").is_err());
        assert_eq!(parse_password(b"abc\0").unwrap(), "abc");
    }
}
