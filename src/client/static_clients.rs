use std::{collections::HashMap, path::Path, sync::Arc, time::Duration};

use serde::Deserialize;

use super::{AuthMethod, Client, ClientRegistry, RegistryFuture};
use crate::error::ConfigError;

/// A fixed set of clients, typically read from a JSON file:
///
/// ```json
/// {"clients": [{
///     "client_id": "web-app",
///     "client_secret": "…",
///     "auth_method": "client_secret_basic",
///     "redirect_uris": ["https://client.example.org/cb"],
///     "grant_types": ["authorization_code"],
///     "require_par": false,
///     "par_lifetime_secs": 60
/// }]}
/// ```
///
/// `auth_method` is one of `client_secret_basic`, `client_secret_post`, `none`, and with the
/// `jwt` feature `client_secret_jwt` and `private_key_jwt` (which add `jwks` and
/// `require_signed_request_object`). `forward_request_object` (default true) says whether the
/// client's signed request objects reach the inner service when the layer
/// [forwards them](crate::ParLayerBuilder::forward_request_objects). Loading refuses unknown fields, duplicate ids, a lifetime
/// outside 1–600 s and a secret-based method without a secret, naming the client.
///
/// ```
/// use tower_par::StaticClients;
///
/// let clients = StaticClients::from_json_str(r#"{"clients":[{
///     "client_id": "spa", "auth_method": "none",
///     "redirect_uris": ["https://spa.example/cb"], "grant_types": ["authorization_code"]
/// }]}"#).unwrap();
/// assert!(clients.get("spa").is_some());
///
/// let err = StaticClients::from_json_str(r#"{"clients":[{"client_id":"x","auth_method":"client_secret_basic"}]}"#)
///     .unwrap_err();
/// assert!(err.to_string().contains("needs a client_secret"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct StaticClients {
    clients: Arc<HashMap<String, Arc<Client>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientsFile {
    clients: Vec<ClientEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientEntry {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    auth_method: AuthMethod,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    grant_types: Vec<String>,
    #[serde(default)]
    require_par: bool,
    #[serde(default)]
    par_lifetime_secs: Option<u64>,
    #[serde(default)]
    require_signed_request_object: bool,
    #[serde(default = "yes")]
    forward_request_object: bool,
    #[serde(default)]
    jwks: Option<serde_json::Value>,
}

const fn yes() -> bool {
    true
}

impl StaticClients {
    /// Reads a clients file.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_json_str(&text).map_err(|e| match e {
            ConfigError::File { message, .. } => ConfigError::File {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses the clients JSON format.
    pub fn from_json_str(json: &str) -> Result<Self, ConfigError> {
        let file: ClientsFile = serde_json::from_str(json).map_err(|e| ConfigError::File {
            path: "<inline>".into(),
            message: e.to_string(),
        })?;
        let mut clients = Vec::with_capacity(file.clients.len());
        for entry in file.clients {
            let mut builder = Client::builder(entry.client_id)
                .auth_method(entry.auth_method)
                .require_par(entry.require_par)
                .require_signed_request_object(entry.require_signed_request_object)
                .forward_request_object(entry.forward_request_object);
            if let Some(secret) = entry.client_secret {
                builder = builder.secret(secret);
            }
            for uri in entry.redirect_uris {
                builder = builder.redirect_uri(uri);
            }
            for grant in entry.grant_types {
                builder = builder.grant_type(grant);
            }
            if let Some(secs) = entry.par_lifetime_secs {
                builder = builder.par_lifetime(Duration::from_secs(secs));
            }
            match entry.jwks {
                #[cfg(feature = "jwt")]
                Some(jwks) => builder = builder.jwks(jwks),
                #[cfg(not(feature = "jwt"))]
                Some(_) => {
                    return Err(ConfigError::Client {
                        client_id: builder.client_id,
                        message: "jwks needs tower-par's `jwt` feature".into(),
                    })
                }
                None => {}
            }
            clients.push(builder.build()?);
        }
        Self::from_clients(clients)
    }

    /// A registry of the given clients; duplicate ids are refused.
    pub fn from_clients(clients: impl IntoIterator<Item = Client>) -> Result<Self, ConfigError> {
        let mut map = HashMap::new();
        for client in clients {
            let id = client.client_id().to_owned();
            if map.insert(id.clone(), Arc::new(client)).is_some() {
                return Err(ConfigError::Client {
                    client_id: id,
                    message: "registered twice".into(),
                });
            }
        }
        Ok(Self {
            clients: Arc::new(map),
        })
    }

    /// The client registered as `client_id`.
    #[must_use]
    pub fn get(&self, client_id: &str) -> Option<&Arc<Client>> {
        self.clients.get(client_id)
    }

    /// Every registered client, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Client>> {
        self.clients.values()
    }
}

impl ClientRegistry for StaticClients {
    fn client<'a>(&'a self, client_id: &'a str) -> RegistryFuture<'a> {
        let found = self.clients.get(client_id).cloned();
        Box::pin(std::future::ready(Ok(found)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(entry: &str) -> Result<StaticClients, ConfigError> {
        StaticClients::from_json_str(&format!(r#"{{"clients":[{entry}]}}"#))
    }

    #[test]
    fn the_demo_file_loads() {
        let clients = StaticClients::from_json_file(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/clients.json"
        ))
        .unwrap();
        let web = clients.get("web-app").unwrap();
        assert_eq!(web.auth_method(), AuthMethod::ClientSecretBasic);
        assert!(web.secret().unwrap().matches(b"web-app-secret"));
        assert!(!web.secret().unwrap().matches(b"web-app-secreT"));
        assert_eq!(
            clients.get("short-lived").unwrap().par_lifetime(),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn bad_registrations_are_refused_with_the_client_named() {
        let cases = [
            (
                r#"{"client_id":"a","auth_method":"none","surprise":1}"#,
                "unknown field",
            ),
            (
                r#"{"client_id":"b","auth_method":"client_secret_post"}"#,
                "needs a client_secret",
            ),
            (
                r#"{"client_id":"c","auth_method":"none","client_secret":"s"}"#,
                "must not have a client_secret",
            ),
            (
                r#"{"client_id":"d","auth_method":"none","par_lifetime_secs":0}"#,
                "1-600",
            ),
            (
                r#"{"client_id":"e","auth_method":"none","par_lifetime_secs":601}"#,
                "1-600",
            ),
            (
                r#"{"client_id":"f","auth_method":"magic"}"#,
                "unknown variant",
            ),
            (
                r#"{"client_id":"","auth_method":"none"}"#,
                "must not be empty",
            ),
        ];
        for (entry, expected) in cases {
            let err = load(entry).unwrap_err().to_string();
            assert!(err.contains(expected), "{entry}: {err}");
        }
        let err = StaticClients::from_json_str(
            r#"{"clients":[{"client_id":"x","auth_method":"none"},{"client_id":"x","auth_method":"none"}]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("registered twice"));
    }

    #[cfg(not(feature = "jwt"))]
    #[test]
    fn jwt_methods_need_the_jwt_feature() {
        let err = load(r#"{"client_id":"k","auth_method":"private_key_jwt"}"#).unwrap_err();
        assert!(err.to_string().contains("`jwt` feature"), "{err}");
    }

    #[test]
    fn lifetimes_at_the_bounds_load() {
        assert!(load(r#"{"client_id":"a","auth_method":"none","par_lifetime_secs":1}"#).is_ok());
        assert!(load(r#"{"client_id":"a","auth_method":"none","par_lifetime_secs":600}"#).is_ok());
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let clients = load(
            r#"{"client_id":"a","auth_method":"client_secret_basic","client_secret":"hunter2"}"#,
        )
        .unwrap();
        assert!(!format!("{clients:?}").contains("hunter2"));
    }
}
