//! TLS material for the HTTP clients and the boot beacon: a CA bundle to trust, and optionally a certificate and
//! key to present, read from PEM files and checked before anything is sent.
//!
//! Reading is done here, once per run (and again when `--watch` sees a file change): every file must be
//! readable, hold at least one certificate (or one private key), and the key must be the certificate's (rustls's
//! `CertifiedKey::keys_match`, through its ring provider). The errors are plain sentences about one file; the
//! settings layer adds the flag and variable. It must never log or print a private key, and never trust
//! anything but the CA it was given (no public roots once a CA file is named).

use std::path::Path;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A CA bundle to trust and, optionally, a certificate chain with its key to present.
#[derive(Clone)]
pub struct TlsMaterial {
    pub(crate) roots: Vec<CertificateDer<'static>>,
    pub(crate) identity: Option<Identity>,
}

/// A certificate chain (leaf first) and its private key, known to match.
pub(crate) struct Identity {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
    /// The same, as ureq presents it.
    ureq: ureq::tls::ClientCert,
}

impl Clone for Identity {
    fn clone(&self) -> Identity {
        Identity { chain: self.chain.clone(), key: self.key.clone_key(), ureq: self.ureq.clone() }
    }
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("roots", &self.roots.len())
            .field("identity", &self.identity.as_ref().map(|_| "<certificate and key>"))
            .finish()
    }
}

/// Why a file could not be used, and which one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaterialError {
    /// The CA bundle.
    Ca(String),
    /// The certificate.
    Cert(String),
    /// The key (unreadable, not a key, or not the certificate's).
    Key(String),
}

impl TlsMaterial {
    /// Reads `ca` and, when given, `cert` and `key`, and checks them (see the module doc).
    pub fn read(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<TlsMaterial, MaterialError> {
        let roots = read_certs(ca).map_err(MaterialError::Ca)?;
        let identity = identity.map(|(cert, key)| read_identity(cert, key)).transpose()?;
        Ok(TlsMaterial { roots, identity })
    }

    /// Whether a certificate to present is configured.
    pub fn has_identity(&self) -> bool {
        self.identity.is_some()
    }

    /// What is wrong with our own certificate as far as this CA bundle can tell, checked as etcd will check it
    /// (rustls's client-certificate verifier, at this machine's time): expired, not valid yet, or without the
    /// clientAuth usage, or not issued by the bundle's CAs (etcd may trust another CA on the client port, but other
    /// instances' boot beacons trust only the peer bundle: said as a warning, not a refusal).
    pub fn own_certificate_problem(&self) -> Option<String> {
        use rustls::CertificateError as C;
        let identity = self.identity.as_ref()?;
        let (leaf, intermediates) = identity.chain.split_first()?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        let (_added, _ignored) = roots.add_parsable_certificates(self.roots.iter().cloned());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().ok()?;
        let now = rustls_pki_types::UnixTime::now();
        match verifier.verify_client_cert(leaf, intermediates, now) {
            Err(rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. })) => {
                Some("it has expired: etcd will refuse it".into())
            }
            Err(rustls::Error::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. })) => {
                Some("it is not valid yet (or this machine's clock is behind): etcd will refuse it".into())
            }
            Err(rustls::Error::InvalidCertificate(C::InvalidPurpose | C::InvalidPurposeContext { .. })) => {
                Some("it lacks the clientAuth extended key usage: etcd will refuse it".into())
            }
            Err(rustls::Error::InvalidCertificate(C::UnknownIssuer)) => Some(
                "it was not issued by a CA of the given bundle: whoever trusts only that bundle refuses it (under \
                 peer TLS the other instances' boot beacons certainly do)"
                    .into(),
            ),
            _ => None,
        }
    }

    /// A rustls server configuration presenting this certificate and requiring every client to present one that
    /// chains to this CA (the boot beacon under peer TLS); an error when there is no certificate to present.
    pub(crate) fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, String> {
        let identity = self.identity.as_ref().ok_or("no certificate to serve")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        let (_added, _ignored) = roots.add_parsable_certificates(self.roots.iter().cloned());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|e| format!("cannot verify clients against the CA: {e}"))?;
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(verifier)
            .with_single_cert(identity.chain.clone(), identity.key.clone_key())
            .map_err(|e| format!("cannot serve the certificate: {e}"))?;
        Ok(Arc::new(config))
    }

    /// The same material as ureq takes it.
    pub(crate) fn ureq_config(&self) -> ureq::tls::TlsConfig {
        use ureq::tls::{Certificate, RootCerts};
        let roots: Vec<Certificate<'static>> = self.roots.iter().map(|c| Certificate::from_der(c).to_owned()).collect();
        ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(RootCerts::new_with_certs(&roots))
            .client_cert(self.identity.as_ref().map(|id| id.ureq.clone()))
            .build()
    }
}

/// Every certificate in a PEM file; none is an error.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let text = super::small_file::read(path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{} is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display()));
    }
    // rustls's `add_parsable_certificates` drops a block that is not X.509 without a word: each is parsed here.
    for (n, cert) in certs.iter().enumerate() {
        if let Err(e) = rustls::RootCertStore::empty().add(cert.clone()) {
            return Err(format!(
                "{}: certificate block {} of {} is not a valid X.509 certificate ({e}): replace the file with the PEM \
                 certificates as issued",
                path.display(),
                n + 1,
                certs.len()
            ));
        }
    }
    Ok(certs)
}

fn read_identity(cert: &Path, key: &Path) -> Result<Identity, MaterialError> {
    let chain = read_certs(cert).map_err(MaterialError::Cert)?;
    let key_text = super::small_file::read(key).map_err(MaterialError::Key)?;
    let encrypted = [&b"ENCRYPTED PRIVATE KEY-----"[..], b"Proc-Type: 4,ENCRYPTED"];
    if encrypted.iter().any(|marker| key_text.windows(marker.len()).any(|w| w == *marker)) {
        return Err(MaterialError::Key(format!(
            "{} holds an encrypted private key, which etcd-spot does not support (it has no passphrase to ask for): \
             decrypt it (openssl pkey -in {0} -out {0}.plain, then keep the plain key readable by its owner only) and \
             give the decrypted file",
            key.display()
        )));
    }
    let key_der = PrivateKeyDer::from_pem_slice(&key_text).map_err(|e| {
        MaterialError::Key(format!("{} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}", key.display()))
    })?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain.clone(), key_der.clone_key(), &provider).map_err(|e| match e {
        // The key is another certificate's of the file: the chain is in the wrong order.
        rustls::Error::InconsistentKeys(_)
            if let Some(n) = chain
                .iter()
                .skip(1)
                .position(|c| CertifiedKey::from_der(vec![c.clone()], key_der.clone_key(), &provider).is_ok()) =>
        {
            MaterialError::Cert(format!(
                "{}: the key in {} belongs to certificate {} of {}, not the first: the leaf (this instance's \
                 certificate) must come first, then its intermediates (cat leaf.crt intermediate.crt > chain.crt)",
                cert.display(),
                key.display(),
                n + 2,
                chain.len()
            ))
        }
        rustls::Error::InconsistentKeys(_) => MaterialError::Key(format!(
            "{} is not the key of the certificate in {}: give the key that was issued with it",
            key.display(),
            cert.display()
        )),
        other => MaterialError::Key(format!("{} cannot be used with {}: {other}", key.display(), cert.display())),
    })?;
    let ureq_key = ureq::tls::PrivateKey::from_pem(&key_text)
        .map_err(|e| MaterialError::Key(format!("{} holds no usable PEM private key: {e}", key.display())))?;
    let ureq_chain: Vec<ureq::tls::Certificate<'static>> =
        chain.iter().map(|c| ureq::tls::Certificate::from_der(c).to_owned()).collect();
    let ureq = ureq::tls::ClientCert::new_with_certs(&ureq_chain, ureq_key);
    Ok(Identity { chain, key: key_der, ureq })
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcd_spot_sim::{Ca, Validity};

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("etcd-spot-material-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn good_material_reads_and_bad_files_name_themselves() {
        let d = dir("read");
        let ca = Ca::new("ca");
        let ca_file = ca.write(&d, "ca.crt");
        let leaf = ca.leaf("i-1", &["127.0.64.1".parse().unwrap()], Validity::Now);
        let files = leaf.write(&d, "leaf");
        let m = TlsMaterial::read(&ca_file, Some((&files.cert, &files.key))).unwrap();
        assert!(m.has_identity() && m.roots.len() == 1);
        assert!(!format!("{m:?}").contains("PRIVATE"), "{m:?}");

        let wrong = leaf.with_wrong_key().write(&d, "wrong");
        match TlsMaterial::read(&ca_file, Some((&files.cert, &wrong.key))) {
            Err(MaterialError::Key(m)) => assert!(m.contains("is not the key of the certificate"), "{m}"),
            other => panic!("{other:?}"),
        }
        // A chain with the CA first: the certificate file is at fault, not the key.
        let reversed = d.join("reversed.crt");
        let leaf_pem = std::fs::read_to_string(&files.cert).unwrap();
        std::fs::write(&reversed, format!("{}{leaf_pem}", ca.pem())).unwrap();
        match TlsMaterial::read(&ca_file, Some((&reversed, &files.key))) {
            Err(MaterialError::Cert(m)) => {
                assert!(m.contains("certificate 2 of 2") && m.contains("must come first"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let missing = d.join("missing.key");
        match TlsMaterial::read(&ca_file, Some((&files.cert, &missing))) {
            Err(MaterialError::Key(m)) => assert!(m.contains("cannot read") && m.contains("missing.key"), "{m}"),
            other => panic!("{other:?}"),
        }
        // A key file given as the certificate, and a certificate given as the key.
        assert!(
            matches!(TlsMaterial::read(&files.key, None), Err(MaterialError::Ca(m)) if m.contains("no PEM certificate"))
        );
        assert!(matches!(
            TlsMaterial::read(&ca_file, Some((&files.cert, &files.cert))),
            Err(MaterialError::Key(m)) if m.contains("no usable PEM private key")
        ));
        assert_eq!(m.own_certificate_problem(), None);
        let old = ca.leaf("i-1", &[], Validity::Expired).write(&d, "old");
        let m = TlsMaterial::read(&ca_file, Some((&old.cert, &old.key))).unwrap();
        assert_eq!(m.own_certificate_problem().as_deref(), Some("it has expired: etcd will refuse it"));
        let early = ca.leaf("i-1", &[], Validity::NotYetValid).write(&d, "early");
        let m = TlsMaterial::read(&ca_file, Some((&early.cert, &early.key))).unwrap();
        assert!(m.own_certificate_problem().is_some_and(|p| p.contains("not valid yet")));
        // Our certificate from another CA than the one given: warned about (it was silently dropped).
        let other = Ca::new("other ca").leaf("i-1", &[], Validity::Now).write(&d, "other");
        let m = TlsMaterial::read(&ca_file, Some((&other.cert, &other.key))).unwrap();
        assert!(m.own_certificate_problem().is_some_and(|p| p.contains("not issued by a CA of the given bundle")));
        // An encrypted key: said so, with how to decrypt it.
        let enc = d.join("enc.key");
        std::fs::write(&enc, "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n")
            .unwrap();
        match TlsMaterial::read(&ca_file, Some((&files.cert, &enc))) {
            Err(MaterialError::Key(m)) => {
                assert!(m.contains("encrypted private key") && m.contains("openssl pkey"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(d.join("empty.crt"), "").unwrap();
        assert!(matches!(TlsMaterial::read(&d.join("empty.crt"), None), Err(MaterialError::Ca(_))));
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A CA bundle with a block that is base64 but not X.509 passed the check (rustls drops such a block silently),
    /// and such a block in the certificate file was blamed on the key.
    #[test]
    fn a_certificate_block_that_does_not_parse_is_refused_naming_its_file() {
        let d = dir("unparsable");
        let ca = Ca::new("ca");
        let ca_file = ca.write(&d, "ca.crt");
        let files = ca.leaf("i-1", &[], Validity::Now).write(&d, "leaf");
        // "hello world": valid base64, not a certificate.
        let junk = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        std::fs::write(d.join("junk.crt"), junk).unwrap();
        std::fs::write(d.join("mixed.crt"), format!("{}{junk}", ca.pem())).unwrap();
        for bad in ["junk.crt", "mixed.crt"] {
            match TlsMaterial::read(&d.join(bad), None) {
                Err(MaterialError::Ca(m)) => assert!(m.contains("is not a valid X.509 certificate"), "{m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        let leaf_pem = std::fs::read_to_string(&files.cert).unwrap();
        std::fs::write(d.join("leaf-junk.crt"), format!("{junk}{leaf_pem}")).unwrap();
        match TlsMaterial::read(&ca_file, Some((&d.join("leaf-junk.crt"), &files.key))) {
            Err(MaterialError::Cert(m)) => assert!(m.contains("block 1 of 2"), "{m}"),
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
