//! How the harness's etcd client reaches an etcd that runs with TLS and auth: the CA it trusts (only that one,
//! never the public roots), the client certificate it presents, and the etcd user whose token it sends once
//! auth is on.
//!
//! One [`EtcdAccess`] is shared (cheaply cloned) by every client a simulated group hands out: when the group
//! turns auth on, every client, also one a chaos writer already holds, starts sending a token, and a token one
//! of them fetched serves them all. It must never print the password or a token, and never trust anything but
//! the CA it was given.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

use crate::util::lock;

/// What a client needs to reach etcd: plain HTTP (the default), or https with a CA and (usually) a client
/// certificate, and an etcd user for when auth is on.
#[derive(Clone, Default)]
pub struct EtcdAccess {
    tls: Option<TlsConfig>,
    auth: Option<Arc<Auth>>,
}

/// An etcd user, whether auth is on, and the last token etcd gave.
struct Auth {
    user: String,
    password: String,
    on: AtomicBool,
    token: Mutex<Option<String>>,
}

impl fmt::Debug for EtcdAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdAccess")
            .field("tls", &self.tls.is_some())
            .field("client_cert", &self.tls.as_ref().is_some_and(|t| t.client_cert().is_some()))
            .field("user", &self.auth.as_ref().map(|a| a.user.as_str()))
            .field("auth_on", &self.auth_on())
            .finish()
    }
}

impl EtcdAccess {
    /// Plain HTTP, no auth.
    pub fn plain() -> EtcdAccess {
        EtcdAccess::default()
    }

    /// https trusting only the CA certificates in `ca_pem`, presenting `client` (certificate chain PEM, private
    /// key PEM) when given.
    pub fn tls(ca_pem: &str, client: Option<(&str, &str)>) -> Result<EtcdAccess, String> {
        let roots = certificates(ca_pem).map_err(|e| format!("CA: {e}"))?;
        let client_cert = match client {
            Some((cert_pem, key_pem)) => {
                let chain = certificates(cert_pem).map_err(|e| format!("client certificate: {e}"))?;
                let key = PrivateKey::from_pem(key_pem.as_bytes()).map_err(|e| format!("client key: {e}"))?;
                Some(ClientCert::new_with_certs(&chain, key))
            }
            None => None,
        };
        let config =
            TlsConfig::builder().root_certs(RootCerts::new_with_certs(&roots)).client_cert(client_cert).build();
        Ok(EtcdAccess { tls: Some(config), auth: None })
    }

    /// The same access as etcd user `user` with `password`; no token is sent until [`EtcdAccess::set_auth_on`].
    #[must_use]
    pub fn with_user(mut self, user: &str, password: &str) -> EtcdAccess {
        self.auth = Some(Arc::new(Auth {
            user: user.to_string(),
            password: password.to_string(),
            on: AtomicBool::new(false),
            token: Mutex::new(None),
        }));
        self
    }

    /// The same access without its user: requests carry no token (to show etcd refuses them).
    #[must_use]
    pub fn without_user(mut self) -> EtcdAccess {
        self.auth = None;
        self
    }

    /// The same access (certificate, user, shared token) that does not verify etcd's certificate: only for a test
    /// that gave etcd a broken certificate on purpose and must still read the member list to show nothing changed.
    #[must_use]
    pub fn without_server_check(mut self) -> EtcdAccess {
        self.tls = self.tls.map(|t| {
            TlsConfig::builder()
                .root_certs(t.root_certs().clone())
                .client_cert(t.client_cert().cloned())
                .disable_verification(true)
                .build()
        });
        self
    }

    /// Whether this is https.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.is_tls() { "https" } else { "http" }
    }

    /// Whether clients send a token (auth was turned on in etcd).
    pub fn auth_on(&self) -> bool {
        self.auth.as_ref().is_some_and(|a| a.on.load(Ordering::SeqCst))
    }

    /// From now on every client sharing this access authenticates and sends a token.
    pub fn set_auth_on(&self) {
        if let Some(a) = &self.auth {
            a.on.store(true, Ordering::SeqCst);
        }
    }

    /// The user and password (for turning auth on), when a user is set.
    pub(crate) fn credentials(&self) -> Option<(&str, &str)> {
        self.auth.as_ref().map(|a| (a.user.as_str(), a.password.as_str()))
    }

    /// The TLS settings for the client's agent, when https.
    pub(crate) fn tls_config(&self) -> Option<&TlsConfig> {
        self.tls.as_ref()
    }

    /// The cached token, when auth is on and one was fetched.
    pub fn token(&self) -> Option<String> {
        self.auth.as_ref().filter(|a| a.on.load(Ordering::SeqCst)).and_then(|a| lock(&a.token).clone())
    }

    /// Remembers `token` (or forgets the cached one, with `None`) for every client sharing this access (a test
    /// may plant a token etcd does not know).
    pub fn store_token(&self, token: Option<String>) {
        if let Some(a) = &self.auth {
            *lock(&a.token) = token;
        }
    }
}

/// Every certificate in a PEM text (at least one).
fn certificates(pem: &str) -> Result<Vec<Certificate<'static>>, String> {
    let mut out = Vec::new();
    for item in ureq::tls::parse_pem(pem.as_bytes()) {
        if let ureq::tls::PemItem::Certificate(c) = item.map_err(|e| e.to_string())? {
            out.push(c);
        }
    }
    if out.is_empty() { Err("no certificate in the PEM text".to_string()) } else { Ok(out) }
}

#[cfg(test)]
mod tests {
    use super::EtcdAccess;
    use crate::{Ca, Validity};

    #[test]
    fn the_password_never_shows_and_auth_waits_to_be_turned_on() {
        let ca = Ca::new("access test");
        let leaf = ca.leaf("sim", &[], Validity::Now);
        let access = EtcdAccess::tls(&ca.pem(), Some((&leaf.cert_pem, &leaf.key_pem)))
            .expect("valid PEM")
            .with_user("root", "s3cret-pass");
        assert!(access.is_tls());
        assert_eq!(access.scheme(), "https");
        assert!(!access.auth_on());
        access.store_token(Some("tok".into()));
        assert_eq!(access.token(), None, "no token is sent before auth is on");
        let shared = access.clone();
        access.set_auth_on();
        assert!(shared.auth_on(), "clones share the switch");
        assert_eq!(shared.token().as_deref(), Some("tok"), "clones share the token");
        assert!(!format!("{access:?}").contains("s3cret"), "{access:?}");
        assert!(EtcdAccess::tls("not pem", None).is_err());
        assert_eq!(EtcdAccess::plain().scheme(), "http");
    }
}
