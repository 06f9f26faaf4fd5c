use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::Arc,
    time::Duration,
};

use serde::Deserialize;

use super::{AuthMethod, Client, ClientRegistry, RegistryFuture, WebOriginFuture};
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
///     "par_lifetime_secs": 60,
///     "web_origins": ["https://client.example.org"],
///     "par_max_outstanding": 1000,
///     "par_max_outstanding_bytes": 1048576
/// }]}
/// ```
///
/// `web_origins` lists the origins whose pages may push as the client and read the answers
/// (CORS); a public client without it gets its redirect URIs' origins, a confidential one none.
///
/// `par_max_outstanding` and `par_max_outstanding_bytes` (optional, at least 1) cap how many
/// pushed requests, and how many bytes of them, the client may hold in the store at once, in
/// place of the layer's default share (see [`ClientBuilder::par_max_outstanding`](crate::client::ClientBuilder::par_max_outstanding)).
///
/// `auth_method` is one of `client_secret_basic`, `client_secret_post`, `none`, and with the
/// `jwt` feature `client_secret_jwt` and `private_key_jwt` (which add `jwks` and
/// `require_signed_request_object`). `forward_request_object` (default true) says whether the
/// client's signed request objects reach the inner service when the layer
/// [forwards them](crate::ParLayerBuilder::forward_request_objects).
///
/// Secrets: `client_secret` (one string) and `client_secrets` (an array) may be used together,
/// and every secret listed authenticates, so a secret can be rotated without downtime.
/// `client_secret_sha256` (64 hex digits, or an array of them) registers secrets by their
/// SHA-256 digest, so the file holds no usable secret; it serves `client_secret_basic` and
/// `client_secret_post`, and is refused for `client_secret_jwt`, whose HMAC key is the secret
/// itself.
///
/// Loading refuses unknown fields, duplicate ids, a lifetime outside 1–600 s, a secret-based
/// method without a secret, a malformed digest, and a web origin that is not an origin (a path,
/// a query, `*`, user information, a fragment), naming the client.
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
    any_requires_par: bool,
    web_origins: Arc<HashSet<String>>,
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
    #[serde(default)]
    client_secrets: Vec<String>,
    #[serde(default)]
    client_secret_sha256: Option<OneOrMany>,
    auth_method: AuthMethod,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    web_origins: Option<Vec<String>>,
    #[serde(default)]
    grant_types: Vec<String>,
    #[serde(default)]
    require_par: bool,
    #[serde(default)]
    par_lifetime_secs: Option<u64>,
    #[serde(default)]
    par_max_outstanding: Option<u64>,
    #[serde(default)]
    par_max_outstanding_bytes: Option<u64>,
    #[serde(default)]
    require_signed_request_object: bool,
    #[serde(default = "yes")]
    forward_request_object: bool,
    #[serde(default)]
    jwks: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
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
            for secret in entry.client_secret.into_iter().chain(entry.client_secrets) {
                builder = builder.secret(secret);
            }
            let digests = entry.client_secret_sha256.map(OneOrMany::into_vec);
            for digest in digests.into_iter().flatten() {
                builder = builder.secret_sha256(digest);
            }
            for uri in entry.redirect_uris {
                builder = builder.redirect_uri(uri);
            }
            if let Some(origins) = entry.web_origins {
                builder = builder.web_origins(origins);
            }
            for grant in entry.grant_types {
                builder = builder.grant_type(grant);
            }
            if let Some(secs) = entry.par_lifetime_secs {
                builder = builder.par_lifetime(Duration::from_secs(secs));
            }
            if let Some(max) = entry.par_max_outstanding {
                builder = builder.par_max_outstanding(max);
            }
            if let Some(max) = entry.par_max_outstanding_bytes {
                builder = builder.par_max_outstanding_bytes(max);
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
            any_requires_par: map.values().any(|client| client.require_par()),
            web_origins: Arc::new(
                map.values()
                    .flat_map(|client| client.web_origins().iter().cloned())
                    .collect(),
            ),
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

    fn any_client_requires_par(&self) -> bool {
        self.any_requires_par
    }

    fn is_web_origin<'a>(&'a self, origin: &'a str) -> WebOriginFuture<'a> {
        Box::pin(std::future::ready(Ok(self.web_origins.contains(origin))))
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
        assert!(web.secret_matches(b"web-app-secret"));
        assert!(!web.secret_matches(b"web-app-secreT"));
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
            (
                r#"{"client_id":"g","auth_method":"client_secret_basic","client_secret_sha256":"xyz"}"#,
                "64 hex digits",
            ),
            (
                r#"{"client_id":"h","auth_method":"none","client_secret_sha256":"xyz"}"#,
                "must not have a client_secret",
            ),
            (
                r#"{"client_id":"i","auth_method":"none","par_max_outstanding":0}"#,
                "par_max_outstanding must be at least 1",
            ),
            (
                r#"{"client_id":"j","auth_method":"none","par_max_outstanding_bytes":0}"#,
                "par_max_outstanding_bytes must be at least 1",
            ),
            (
                r#"{"client_id":"k","auth_method":"none","par_max_outstanding":-1}"#,
                "invalid value",
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
    fn outstanding_limits_load() {
        let clients = load(
            r#"{"client_id":"a","auth_method":"none","par_max_outstanding":5,"par_max_outstanding_bytes":4096}"#,
        )
        .unwrap();
        let a = clients.get("a").unwrap();
        assert_eq!(a.par_max_outstanding(), Some(5));
        assert_eq!(a.par_max_outstanding_bytes(), Some(4096));
        let clients = load(r#"{"client_id":"b","auth_method":"none"}"#).unwrap();
        assert_eq!(clients.get("b").unwrap().par_max_outstanding(), None);
    }

    #[test]
    fn lifetimes_at_the_bounds_load() {
        assert!(load(r#"{"client_id":"a","auth_method":"none","par_lifetime_secs":1}"#).is_ok());
        assert!(load(r#"{"client_id":"a","auth_method":"none","par_lifetime_secs":600}"#).is_ok());
    }

    #[test]
    fn secrets_from_every_member_authenticate() {
        let clients = load(&format!(
            r#"{{"client_id":"a","auth_method":"client_secret_post","client_secret":"one",
                "client_secrets":["two","three"],"client_secret_sha256":"{DIGEST_SECRET_SHA256}"}}"#
        ))
        .unwrap();
        let a = clients.get("a").unwrap();
        for secret in ["one", "two", "three", "digest-secret"] {
            assert!(a.secret_matches(secret.as_bytes()), "{secret}");
        }
        assert!(!a.secret_matches(b"four"));
        let only_digests = load(&format!(
            r#"{{"client_id":"b","auth_method":"client_secret_basic","client_secret_sha256":["{}","{}"]}}"#,
            "0".repeat(64),
            DIGEST_SECRET_SHA256
        ))
        .unwrap();
        assert!(only_digests
            .get("b")
            .unwrap()
            .secret_matches(b"digest-secret"));
    }

    /// `printf %s digest-secret | sha256sum`
    const DIGEST_SECRET_SHA256: &str =
        "8b5a996ea6720136098b2ef354a195b696c56782e99b30407fe753a3beb559e0";

    #[cfg(feature = "jwt")]
    #[test]
    fn client_secret_jwt_with_a_digest_is_refused_at_load() {
        let err = load(&format!(
            r#"{{"client_id":"h","auth_method":"client_secret_jwt","client_secret":"s","client_secret_sha256":"{}"}}"#,
            "0".repeat(64)
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("client `h`") && err.contains("needs the secret itself"),
            "{err}"
        );
        assert!(load(
            r#"{"client_id":"h","auth_method":"client_secret_jwt","client_secrets":["s1","s2"]}"#
        )
        .is_ok());
    }

    #[test]
    fn the_require_par_hint_follows_the_table() {
        assert!(!StaticClients::default().any_client_requires_par());
        assert!(!load(r#"{"client_id":"a","auth_method":"none"}"#)
            .unwrap()
            .any_client_requires_par());
        let one_requires = StaticClients::from_json_str(
            r#"{"clients":[{"client_id":"a","auth_method":"none"},{"client_id":"b","auth_method":"none","require_par":true}]}"#,
        )
        .unwrap();
        assert!(one_requires.any_client_requires_par());
        assert!(
            Arc::new(one_requires).any_client_requires_par(),
            "Arc forwards the hint"
        );
    }

    #[test]
    fn web_origins_load_and_answer_the_registry_question() {
        let clients = StaticClients::from_json_str(
            r#"{"clients":[
                {"client_id":"spa","auth_method":"none","redirect_uris":["http://127.0.0.1:8080/cb"]},
                {"client_id":"web","auth_method":"client_secret_basic","client_secret":"s",
                 "redirect_uris":["https://web.example/cb"],"web_origins":["https://WEB.example:443"]},
                {"client_id":"quiet","auth_method":"client_secret_basic","client_secret":"s",
                 "redirect_uris":["https://quiet.example/cb"]}
            ]}"#,
        )
        .unwrap();
        assert_eq!(
            clients.get("web").unwrap().web_origins(),
            ["https://web.example"]
        );
        let registered = |origin: &'static str| {
            let clients = clients.clone();
            async move { clients.is_web_origin(origin).await.unwrap() }
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            assert!(
                registered("http://127.0.0.1:8080").await,
                "a public client's redirect URI"
            );
            assert!(
                registered("https://web.example").await,
                "registered explicitly"
            );
            assert!(
                !registered("https://quiet.example").await,
                "confidential, none registered"
            );
            assert!(
                !registered("https://WEB.example").await,
                "compared as ASCII-serialised"
            );
        });
        let err = load(
            r#"{"client_id":"x","auth_method":"none","web_origins":["https://x.example/app"]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("client `x`") && err.contains("no path"),
            "{err}"
        );
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
