//! TLS at the proxy: the certificate (configured, or self-signed and generated on first start in
//! DATA/tls/), and the rustls acceptor built from it.
//!
//! `sslmode=require` clients need only some certificate; `verify-full` clients can be given
//! DATA/tls/server.crt as their root (`sslrootcert=`), since it names localhost and 127.0.0.1.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// The most plaintext Postgres puts in one TLS record: its send buffer (PQ_SEND_BUFFER_SIZE).
const POSTGRES_RECORD: usize = 8192;

pub struct Tls {
    pub acceptor: TlsAcceptor,
    /// tls-server-end-point channel-binding data (RFC 5929): the certificate's hash. Only for
    /// the generated certificate, whose signature hash is known to be SHA-256; a configured
    /// certificate is served without SCRAM-SHA-256-PLUS rather than with a wrong binding.
    pub cert_hash: Option<Vec<u8>>,
    pub cert_path: PathBuf,
}

pub fn generated_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let d = data_dir.join("tls");
    (d.join("server.crt"), d.join("server.key"))
}

/// Loads the configured pair, or DATA/tls/server.{crt,key}, generating those if missing.
pub fn load_or_generate(data_dir: &Path, configured: Option<(PathBuf, PathBuf)>) -> Result<Tls> {
    let generated = configured.is_none();
    let (cert_path, key_path) = match configured {
        Some(p) => p,
        None => {
            let (c, k) = generated_paths(data_dir);
            if !c.exists() || !k.exists() {
                generate(&c, &k)?;
            }
            (c, k)
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .with_context(|| format!("reading the TLS certificate {}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing the TLS certificate {}", cert_path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "no certificate in {} (expected PEM)",
        cert_path.display()
    );
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("reading the TLS key {} (expected PEM)", key_path.display()))?;
    let cert_hash = generated.then(|| {
        ring::digest::digest(&ring::digest::SHA256, certs[0].as_ref())
            .as_ref()
            .to_vec()
    });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "the TLS key {} does not fit the certificate {}",
                key_path.display(),
                cert_path.display()
            )
        })?;
    // Postgres 17 clients send ALPN "postgresql" and require it for direct TLS.
    cfg.alpn_protocols = vec![b"postgresql".to_vec()];
    // Records of at most 8 KiB of plaintext, as Postgres sends them (OpenSSL writes its 8 KiB
    // send buffer as one record). libpq keeps 8 KiB free before each read, so it always reads
    // such a record whole. rustls's default 16 KiB records could be read in part, and the rest
    // then waited, decrypted, inside libpq's TLS layer while a client that polls the socket
    // itself (psycopg 3) waited for the socket: an intermittent hang after a COPY.
    cfg.max_fragment_size = Some(POSTGRES_RECORD + 5);
    Ok(Tls {
        acceptor: TlsAcceptor::from(Arc::new(cfg)),
        cert_hash,
        cert_path,
    })
}

fn generate(cert: &Path, key: &Path) -> Result<()> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".into()])
        .context("generating the proxy's self-signed certificate")?;
    std::fs::create_dir_all(cert.parent().unwrap())?;
    crate::util::write_atomically(key, ck.signing_key.serialize_pem().as_bytes(), 0o600)?;
    crate::util::write_atomically(cert, ck.cert.pem().as_bytes(), 0o644)?;
    tracing::info!(cert = %cert.display(), "generated a self-signed TLS certificate");
    Ok(())
}
