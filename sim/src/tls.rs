//! Test certificates, made at test time and never committed: a CA and the leaf certificates it signs, with an
//! IP SAN for each simulated instance's 127.0.x.y, and the broken variants the bad-TLS tests need (expired, not
//! yet valid, without the address's SAN, signed by another CA, a key that does not match).
//!
//! Generated with `rcgen` (on ring, the crypto the binaries already carry). Keys are ECDSA P-256, which etcd
//! (Go's crypto/tls) and rustls both accept. Nothing here may touch anything but the folder it is given.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, date_time_ymd,
};

/// A certificate authority that signs leaf certificates.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// When a leaf certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// From 2020 to 2100: valid for any test run.
    Now,
    /// It expired in 2021.
    Expired,
    /// It becomes valid in 2099.
    NotYetValid,
}

/// A leaf certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The paths of a leaf written to disk (see [`Leaf::write`]).
#[derive(Debug, Clone)]
pub struct LeafFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Ca {
    /// A new self-signed CA whose subject's common name is `name`.
    ///
    /// # Panics
    /// If rcgen cannot make a key or sign (it does not on a working machine).
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("empty SAN list");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2100, 1, 1);
        let key = KeyPair::generate().expect("generate a CA key");
        Ca { issuer: CertifiedIssuer::self_signed(params, key).expect("self-sign the CA") }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes the CA certificate to `dir/<file>` and returns its path.
    ///
    /// # Panics
    /// If the file cannot be written.
    pub fn write(&self, dir: &Path, file: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, self.pem()).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// A leaf certificate for `common_name` with IP SANs `ips`, usable as a server and as a client certificate
    /// (etcd's peers present the same certificate both ways), valid as `validity` says. With an empty
    /// `common_name` the subject is empty: etcd's JSON gateway refuses (400, "CommonName of client sending a
    /// request against gateway will be ignored") a client certificate that has a common name when
    /// client-cert-auth is on.
    ///
    /// # Panics
    /// If rcgen cannot make a key or sign.
    pub fn leaf(&self, common_name: &str, ips: &[IpAddr], validity: Validity) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("empty SAN list");
        // rcgen's default subject has a common name of its own; an empty `common_name` means none at all.
        params.distinguished_name = DistinguishedName::new();
        if !common_name.is_empty() {
            params.distinguished_name.push(DnType::CommonName, common_name);
        }
        params.subject_alt_names = ips.iter().map(|ip| SanType::IpAddress(*ip)).collect();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        (params.not_before, params.not_after) = match validity {
            Validity::Now => (date_time_ymd(2020, 1, 1), date_time_ymd(2100, 1, 1)),
            Validity::Expired => (date_time_ymd(2020, 1, 1), date_time_ymd(2021, 1, 1)),
            Validity::NotYetValid => (date_time_ymd(2099, 1, 1), date_time_ymd(2100, 1, 1)),
        };
        let key = KeyPair::generate().expect("generate a leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign the leaf");
        Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }
}

impl Leaf {
    /// The same certificate with another, unrelated private key: a key that does not match.
    pub fn with_wrong_key(&self) -> Leaf {
        let key = KeyPair::generate().expect("generate a key");
        Leaf { cert_pem: self.cert_pem.clone(), key_pem: key.serialize_pem() }
    }

    /// Writes `dir/<stem>.crt` and `dir/<stem>.key` (mode 0600) and returns their paths.
    ///
    /// # Panics
    /// If a file cannot be written.
    pub fn write(&self, dir: &Path, stem: &str) -> LeafFiles {
        use std::os::unix::fs::PermissionsExt as _;
        let files = LeafFiles { cert: dir.join(format!("{stem}.crt")), key: dir.join(format!("{stem}.key")) };
        for (path, text) in [(&files.cert, &self.cert_pem), (&files.key, &self.key_pem)] {
            std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        }
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", files.key.display()));
        files
    }
}

#[cfg(test)]
mod tests {
    use super::{Ca, Validity};

    #[test]
    fn a_leaf_is_signed_by_its_ca_and_names_its_addresses() {
        let ca = Ca::new("etcd-spot test CA");
        let leaf = ca.leaf("i-1", &["127.0.64.1".parse().unwrap()], Validity::Now);
        assert!(ca.pem().starts_with("-----BEGIN CERTIFICATE-----"), "{}", ca.pem());
        assert!(leaf.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(leaf.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        // openssl (installed on these machines) reads the SAN and verifies the chain.
        let dir = std::env::temp_dir().join(format!("etcd-spot-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_file = ca.write(&dir, "ca.crt");
        let files = leaf.write(&dir, "leaf");
        let out = std::process::Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(&ca_file)
            .arg(&files.cert)
            .output()
            .expect("run openssl");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(&files.cert)
            .output()
            .expect("run openssl");
        assert!(String::from_utf8_lossy(&text.stdout).contains("IP Address:127.0.64.1"));
        let expired = ca.leaf("i-1", &[], Validity::Expired).write(&dir, "expired");
        let out = std::process::Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(&ca_file)
            .arg(&expired.cert)
            .output()
            .expect("run openssl");
        assert!(!out.status.success(), "an expired leaf must not verify");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
