//! The TLS and etcd-auth settings: which CA, certificate and key files to use on etcd's client and peer ports,
//! and which etcd user and password file; all read and checked at resolve time, before any network call. The
//! Spotinst token file is followed here too, so that `--watch` reads a rotated token like the rest.
//!
//! A file that cannot be read, holds no certificate or key, or a key that is not its certificate's is a
//! configuration error naming the flag and variable. The password is held in a [`Secret`] and never printed; a
//! secret file that its group or others may read is warned about. The material is read again by
//! [`Security::reread`] when one of its files changes, so `--watch` follows rotated certificates and passwords.
//!
//! The own certificate is checked against the given CA as etcd will check it (validity period, clientAuth
//! usage): a problem is warned about, not refused, because a booting machine's clock may be behind for a
//! moment and a refused handshake is retried by the next run; etcd's refusal is then named at the handshake
//! ([`crate::TlsFailure`]).

use std::path::{Path, PathBuf};

use super::{Env, Value, setting};
use crate::clients::etcd_auth::EtcdAuth;
use crate::clients::tls::{MaterialError, TlsMaterial};
use crate::error::Result;
use crate::types::Secret;

/// The files of one port's TLS and what they hold.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub(crate) ca: PathBuf,
    pub(crate) identity: Option<(PathBuf, PathBuf)>,
    pub(crate) material: TlsMaterial,
}

/// The TLS of both ports and etcd's auth, as resolved.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// TLS to etcd's client port (`--cacert`, `--cert`, `--key`).
    pub(crate) client: Option<TlsSettings>,
    /// TLS on the peer port (`--peer-cacert`, `--peer-cert`, `--peer-key`).
    pub(crate) peer: Option<TlsSettings>,
    /// The etcd user and its password (`--etcd-user`, `--etcd-password-file`).
    pub(crate) auth: Option<EtcdAuth>,
    /// Where the password was read from.
    pub(crate) password_file: Option<PathBuf>,
    /// The Spotinst token file, when the token comes from one, and the token it held (read again with the rest).
    spotinst_token_file: Option<PathBuf>,
    pub(crate) spotinst_token: Option<Secret>,
    /// What the files looked like when read (see [`Security::reread`]).
    stamp: Vec<FileStamp>,
}

/// The flags of one port's TLS.
struct TlsFlags {
    ca: &'static str,
    cert: &'static str,
    key: &'static str,
}

const CLIENT: TlsFlags = TlsFlags { ca: "--cacert", cert: "--cert", key: "--key" };
const PEER: TlsFlags = TlsFlags { ca: "--peer-cacert", cert: "--peer-cert", key: "--peer-key" };

/// The raw values of the security flags.
pub(crate) struct RawSecurity<'a> {
    pub(crate) cacert: Option<&'a str>,
    pub(crate) cert: Option<&'a str>,
    pub(crate) key: Option<&'a str>,
    pub(crate) peer_cacert: Option<&'a str>,
    pub(crate) peer_cert: Option<&'a str>,
    pub(crate) peer_key: Option<&'a str>,
    pub(crate) etcd_user: Option<&'a str>,
    pub(crate) etcd_password_file: Option<&'a str>,
    pub(crate) spotinst_token_file: Option<&'a str>,
}

impl Security {
    /// Resolves and reads every security setting.
    pub(crate) fn resolve(raw: &RawSecurity<'_>, env: Env<'_>) -> Result<Security> {
        let client = tls(&CLIENT, [raw.cacert, raw.cert, raw.key], env)?;
        let peer = tls(&PEER, [raw.peer_cacert, raw.peer_cert, raw.peer_key], env)?;
        let user = setting("--etcd-user", raw.etcd_user, env);
        let file = setting("--etcd-password-file", raw.etcd_password_file, env);
        let (auth, password_file) = match (user.given(), file.optional_absolute_path()?) {
            (None, None) => (None, None),
            (Some(_), None) => return Err(file.error("--etcd-user needs its password file: give both or neither")),
            (None, Some(_)) if (env)(user.spec.env).is_some_and(|v| !v.is_empty()) => {
                return Err(
                    user.error("the user is blank (only spaces): give the etcd user --etcd-password-file is for")
                );
            }
            (None, Some(_)) => return Err(user.error("--etcd-password-file needs the user: give both or neither")),
            (Some(name), Some(path)) => {
                let name = name.trim().to_owned();
                if name.contains(['"', '\\']) || name.chars().any(char::is_control) {
                    return Err(user.error(format!("{name:?} holds characters etcd-spot does not send")));
                }
                let password = read_secret(&file, &path)?;
                (Some(EtcdAuth::new(name, password)), Some(path))
            }
        };
        let token = setting("--spotinst-token-file", raw.spotinst_token_file, env);
        let spotinst_token_file = token.given().map(PathBuf::from);
        let spotinst_token = match &spotinst_token_file {
            Some(_) => token.token()?,
            None => None,
        };
        let mut security =
            Security { client, peer, auth, password_file, spotinst_token_file, spotinst_token, stamp: Vec::new() };
        security.stamp = security.files().iter().map(|f| FileStamp::of(f)).collect();
        Ok(security)
    }

    /// Every file the settings read.
    fn files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for tls in [&self.client, &self.peer].into_iter().flatten() {
            files.push(tls.ca.clone());
            if let Some((cert, key)) = &tls.identity {
                files.extend([cert.clone(), key.clone()]);
            }
        }
        files.extend(self.password_file.clone());
        files.extend(self.spotinst_token_file.clone());
        files
    }

    /// Whether a file changed since it was read (its inode, size or modification time), so that `--watch`
    /// reads the material again (certificate rotation replaces files).
    pub(crate) fn changed(&self) -> bool {
        self.files().iter().zip(&self.stamp).any(|(f, seen)| FileStamp::of(f) != *seen)
    }

    /// The same settings read again from their files, when one changed; `None` when nothing changed.
    pub(crate) fn reread(&self) -> Option<Result<Security>> {
        if !self.changed() {
            return None;
        }
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let pair = |t: &Option<TlsSettings>| {
            let ca = t.as_ref().map(|t| t.ca.display().to_string());
            let (cert, key) = t.as_ref().and_then(|t| t.identity.clone()).unzip();
            (ca, path(&cert), path(&key))
        };
        let (cacert, cert, key) = pair(&self.client);
        let (peer_cacert, peer_cert, peer_key) = pair(&self.peer);
        let user = self.auth.as_ref().map(|a| a.user().to_owned());
        let password_file = path(&self.password_file);
        let spotinst_token_file = path(&self.spotinst_token_file);
        let raw = RawSecurity {
            cacert: cacert.as_deref(),
            cert: cert.as_deref(),
            key: key.as_deref(),
            peer_cacert: peer_cacert.as_deref(),
            peer_cert: peer_cert.as_deref(),
            peer_key: peer_key.as_deref(),
            etcd_user: user.as_deref(),
            etcd_password_file: password_file.as_deref(),
            spotinst_token_file: spotinst_token_file.as_deref(),
        };
        Some(Security::resolve(&raw, &|_| None))
    }
}

/// What a file looked like: its inode, size and modification time; `None` when it cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp(Option<(u64, u64, std::time::SystemTime)>);

impl FileStamp {
    fn of(path: &Path) -> FileStamp {
        use std::os::unix::fs::MetadataExt as _;
        FileStamp(std::fs::metadata(path).ok().and_then(|m| Some((m.ino(), m.len(), m.modified().ok()?))))
    }
}

/// One port's TLS: none without its CA; the certificate and key go together and need the CA.
fn tls(flags: &TlsFlags, values: [Option<&str>; 3], env: Env<'_>) -> Result<Option<TlsSettings>> {
    let [ca, cert, key] = values;
    let (ca_v, cert_v, key_v) =
        (setting(flags.ca, ca, env), setting(flags.cert, cert, env), setting(flags.key, key, env));
    let (ca, cert, key) =
        (ca_v.optional_absolute_path()?, cert_v.optional_absolute_path()?, key_v.optional_absolute_path()?);
    let identity = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some(_), None) => return Err(key_v.error(format!("{} needs its key: give both or neither", flags.cert))),
        (None, Some(_)) => return Err(cert_v.error(format!("{} needs its certificate: give both", flags.key))),
    };
    let Some(ca) = ca else {
        return match identity {
            Some(_) => Err(ca_v.error(format!(
                "{} needs {}: the CA that signed the certificates on the other side",
                flags.cert, flags.ca
            ))),
            None => Ok(None),
        };
    };
    let material =
        TlsMaterial::read(&ca, identity.as_ref().map(|(c, k)| (c.as_path(), k.as_path()))).map_err(|e| match e {
            MaterialError::Ca(m) => ca_v.error(m),
            MaterialError::Cert(m) => cert_v.error(m),
            MaterialError::Key(m) => key_v.error(m),
        })?;
    warn_if_ca_holds_a_key(flags.ca, &ca);
    if let Some((cert, key)) = &identity {
        warn_if_shared(key);
        if let Some(problem) = material.own_certificate_problem() {
            log::warn!("{} ({}): {problem}", cert.display(), flags.cert);
        }
    }
    Ok(Some(TlsSettings { ca, identity, material }))
}

/// Warns when a CA bundle also holds a private key: the CA's key signs certificates and belongs on the machine
/// that issues them, not on every instance.
fn warn_if_ca_holds_a_key(flag: &str, ca: &Path) {
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject as _;
    if let Ok(text) = crate::clients::small_file::read(ca)
        && PrivateKeyDer::from_pem_slice(&text).is_ok()
    {
        log::warn!(
            "{} ({flag}) also holds a private key: a CA's private key should not be on the instance; keep only its \
             certificate there and the key where certificates are issued",
            ca.display()
        );
    }
}

/// A secret from a file: its first line, the line end stripped; an empty one is an error, and so is a blank first
/// line (the password is the first line: a blank one would be sent as an empty password).
pub(crate) fn read_secret(value: &Value<'_>, path: &Path) -> Result<Secret> {
    let text = crate::clients::small_file::read_text(path).map_err(|e| value.error(e))?;
    let secret = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if text.trim().is_empty() {
        return Err(value.error(format!("{} is empty", path.display())));
    }
    if secret.trim().is_empty() {
        return Err(value.error(format!(
            "the first line of {} is blank: the password is the file's first line; remove the blank line",
            path.display()
        )));
    }
    warn_if_shared(path);
    Ok(Secret::new(secret))
}

/// Warns when a secret file may be read by its group or by others.
pub(crate) fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        log::warn!(
            "{} may be read by its group or others (mode {:o}): make it readable by its owner only (chmod 600)",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
}
