//! Finishing a pushed request away from the authorization endpoint: a consent page on another
//! path, or another node, completes with the client and the `request_uri` alone.

use crate::{
    authorize::parse_handle,
    layer::{Config, Consumption},
    outcome,
    store::{StoreError, StoreKey},
    ParLayer, PushedAuthorizationRequest,
};

impl ParLayer {
    /// Consumes a pushed request from anywhere: a consent page on another path, on any node that
    /// shares the store ([`Consumption::AtCompletion`]). `Ok(true)`: this caller owns the request
    /// and may hand out the authorization response. `Ok(false)`: it is not (or no longer)
    /// completable — another tab or node completed it first, its window is over, it was never
    /// opened at the authorization endpoint, the `request_uri` is not one this server issued to
    /// that client — so the caller must answer with an error and never a code.
    ///
    /// Of any number of concurrent calls for one request, on any nodes, exactly one gets
    /// `Ok(true)`; afterwards the `request_uri` is dead at the authorization endpoint too. In
    /// [`Consumption::Strict`] mode the first hit at the authorization endpoint already
    /// consumed the request, so this returns `Ok(false)`.
    ///
    /// ```
    /// use tower_par::{Consumption, ParLayer, StaticClients};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let par = ParLayer::builder()
    ///     .issuer("https://as.example.com")
    ///     .clients(StaticClients::default())
    ///     .consumption(Consumption::at_completion())
    ///     .build()
    ///     .unwrap();
    /// // A consent POST names the client and the request_uri it was shown.
    /// let won = par.complete("web-app", "urn:ietf:params:oauth:request_uri:unknown").await.unwrap();
    /// assert!(!won, "nothing to complete: no code may be issued");
    /// # }
    /// ```
    ///
    /// # Errors
    /// The store could not be reached; the flow must not complete.
    pub async fn complete(&self, client_id: &str, request_uri: &str) -> Result<bool, StoreError> {
        let config = self.config();
        let Some(key) = key(config, client_id, request_uri) else {
            return Ok(false);
        };
        consume(config, key, client_id, false).await
    }

    /// The pushed request behind a `request_uri`, read from the store without consuming it
    /// ([`Consumption::AtCompletion`]), for a page on another path or node that must finish the
    /// flow: it needs the pushed `redirect_uri`, `state` and `scope` before it calls
    /// [`ParLayer::complete`]. Like a reload of the authorization endpoint, it starts the
    /// completion window if the request was not opened yet.
    ///
    /// `None` when the request is unknown, completed, past its window, another client's, or the
    /// layer consumes strictly ([`Consumption::Strict`]: the request was consumed at the
    /// authorization endpoint). The parameters are those pushed and validated at the PAR
    /// endpoint; the page must still check what its authorization endpoint checks (the user's
    /// session, a CSRF token).
    ///
    /// # Errors
    /// The store could not be reached.
    pub async fn pushed_request(
        &self,
        client_id: &str,
        request_uri: &str,
    ) -> Result<Option<PushedAuthorizationRequest>, StoreError> {
        let config = self.config();
        let Consumption::AtCompletion { window } = config.consumption else {
            return Ok(None);
        };
        let Some(key) = key(config, client_id, request_uri) else {
            return Ok(None);
        };
        let record = config.store.open(key, config.clock.now(), window).await?;
        Ok(record.map(|record| {
            PushedAuthorizationRequest::new(
                client_id.to_owned(),
                request_uri.to_owned(),
                record.payload().clone(),
                false,
            )
        }))
    }
}

/// The one completion of the record under `key`, whoever asks for it; its outcome is logged and
/// counted here. `client_id` labels the count (when the host asked for the label) if it is
/// `registered`, or if the completion proved it (only the client that pushed can complete).
pub(crate) async fn consume(
    config: &Config,
    key: StoreKey,
    client_id: &str,
    registered: bool,
) -> Result<bool, StoreError> {
    let decided = config.store.complete(key, config.clock.now()).await;
    let known = registered || matches!(decided, Ok(true));
    outcome::completion(config, known.then_some(client_id), &decided);
    decided
}

/// The store key of a `request_uri` this server issued to `client_id`.
fn key(config: &Config, client_id: &str, request_uri: &str) -> Option<StoreKey> {
    let handle = parse_handle(request_uri)?;
    Some(StoreKey::derive(&config.issuer, client_id, &handle))
}
