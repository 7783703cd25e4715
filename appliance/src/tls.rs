//! TLS material: the configured certificate and key, or a self-signed pair
//! made with rcgen at first start and kept in the data directory; and the
//! rustls server configurations built from them.

use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use cairn_config::Config;
use cairn_storage::DataDir;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// A loaded certificate chain and its key.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// Loads the identity named by the configuration. When the configuration
/// names no files and the data directory has none yet, makes a self-signed
/// certificate for the node's host name, `localhost` and 127.0.0.1.
pub fn load_or_generate(config: &Config, dir: &DataDir) -> Result<Identity, String> {
    let (cert_path, key_path) = config.tls_paths();
    let configured = config.tls.cert.is_some();
    if !configured && !cert_path.exists() && !key_path.exists() {
        generate(config, dir, &cert_path, &key_path)?;
        tracing::info!(cert = %cert_path.display(), "generated a self-signed certificate");
    }
    load(&cert_path, &key_path)
}

fn generate(config: &Config, dir: &DataDir, cert: &Path, key: &Path) -> Result<(), String> {
    let mut names = vec![config.node.hostname.clone()];
    for extra in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|n| n == extra) {
            names.push(extra.to_string());
        }
    }
    let made = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("cannot generate a certificate: {e}"))?;
    let write = |path: &Path, bytes: &[u8], mode| {
        let rel = path.strip_prefix(dir.path()).unwrap_or(path);
        dir.write_file(rel, bytes, mode)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write(key, made.key_pair.serialize_pem().as_bytes(), 0o600)?;
    write(cert, made.cert.pem().as_bytes(), 0o644)
}

fn load(cert_path: &Path, key_path: &Path) -> Result<Identity, String> {
    let open = |p: &Path| {
        std::fs::File::open(p)
            .map(BufReader::new)
            .map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let chain = rustls_pemfile::certs(&mut open(cert_path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate: {e}", cert_path.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", cert_path.display()));
    }
    let key = rustls_pemfile::private_key(&mut open(key_path)?)
        .map_err(|e| format!("{}: not a PEM private key: {e}", key_path.display()))?
        .ok_or_else(|| format!("{}: no private key in it", key_path.display()))?;
    Ok(Identity { chain, key })
}

impl Identity {
    /// A rustls server configuration offering `alpn` (e.g. `http/1.1`).
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, String> {
        cairn_shards::stream::server_config(self.chain.clone(), self.key.clone_key(), alpn)
            .map_err(|e| format!("the certificate and key do not match: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reloads_the_same_certificate() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut config = Config::embedded_default();
        config.data_dir = tmp.path().to_path_buf();
        let dir = DataDir::open(tmp.path()).expect("open");
        let first = load_or_generate(&config, &dir).expect("generate");
        let second = load_or_generate(&config, &dir).expect("reload");
        assert_eq!(first.chain, second.chain);
        first
            .server_config(&[b"http/1.1"])
            .expect("rustls accepts it");
    }

    #[test]
    fn a_configured_certificate_that_is_missing_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut config = Config::embedded_default();
        config.data_dir = tmp.path().to_path_buf();
        config.tls.cert = Some(tmp.path().join("nope.pem"));
        config.tls.key = Some(tmp.path().join("nope.key"));
        let dir = DataDir::open(tmp.path()).expect("open");
        let err = load_or_generate(&config, &dir).err().expect("must fail");
        assert!(err.contains("nope.pem"), "{err}");
    }
}
