//! etcd's authentication (RBAC) as the JSON gateway takes it: a user and password exchanged for a token at
//! `POST /v3/auth/authenticate`, sent as the `Authorization` header of every client-port call.
//!
//! etcd's default "simple" tokens are known only to the member that issued them and expire (`--auth-token-ttl`,
//! 300 s by default), so a token is kept per endpoint, and a call answered `invalid auth token` (401, code 16, on
//! 3.4 and 3.5 alike) authenticates again once. The gateway cannot authenticate by the client certificate's CN
//! (it calls etcd's gRPC with its own identity), so a password is the only way. The password and the tokens are
//! [`Secret`]s: never logged, printed or put in a `Debug`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::json;

use super::http::{Http, Method, Request};
use crate::error::{Error, Result};
use crate::types::Secret;

/// An etcd user, its password, and the tokens etcd gave it (shared between clones).
#[derive(Clone)]
pub struct EtcdAuth {
    user: String,
    password: Secret,
    tokens: Arc<Mutex<HashMap<String, Secret>>>,
}

impl std::fmt::Debug for EtcdAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdAuth").field("user", &self.user).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenBody {
    #[serde(default)]
    token: String,
}

impl EtcdAuth {
    /// `user` with `password`; no token yet.
    pub fn new(user: impl Into<String>, password: Secret) -> EtcdAuth {
        EtcdAuth { user: user.into(), password, tokens: Arc::default() }
    }

    /// The user's name.
    pub fn user(&self) -> &str {
        &self.user
    }

    #[cfg(test)]
    pub(crate) fn password(&self) -> &Secret {
        &self.password
    }

    /// The token for `endpoint`: the one held, else a new one from etcd.
    pub(crate) fn token(&self, http: &Http, endpoint: &str) -> Result<Secret> {
        if let Some(t) = self.tokens.lock().ok().and_then(|t| t.get(endpoint).cloned()) {
            return Ok(t);
        }
        self.authenticate(http, endpoint)
    }

    /// Forgets the token of `endpoint` (etcd said it is invalid or expired).
    pub(crate) fn forget(&self, endpoint: &str) {
        if let Ok(mut t) = self.tokens.lock() {
            t.remove(endpoint);
        }
    }

    /// `POST /v3/auth/authenticate`: a new token for `endpoint`, kept for the next calls.
    fn authenticate(&self, http: &Http, endpoint: &str) -> Result<Secret> {
        let url = format!("{endpoint}/v3/auth/authenticate");
        let body = json!({"name": self.user, "password": self.password.expose()}).to_string();
        let resp = http.send(Request {
            method: Method::Post,
            url: url.clone(),
            headers: vec![("Content-Type", "application/json".to_owned())],
            body: Some(body),
            retry: true,
        })?;
        if !resp.is_success() {
            return Err(super::etcd::etcd_error(url, resp));
        }
        let token = serde_json::from_str::<TokenBody>(&resp.body).map(|b| b.token).unwrap_or_default();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Malformed { url, message: "no usable token in the answer".into() });
        }
        let token = Secret::new(token);
        if let Ok(mut t) = self.tokens.lock() {
            t.insert(endpoint.to_owned(), token.clone());
        }
        log::debug!("authenticated to {endpoint} as {}", self.user);
        Ok(token)
    }
}
