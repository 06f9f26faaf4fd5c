//! Fair shares of the store: what each push is charged to.
//!
//! A public client needs no secret and its `client_id` is public, so anyone can push as it; a
//! confidential client can misbehave. Neither may take the store away from the others, so every
//! record is charged to its client's share and, for a public client, to the one share all public
//! clients have together; the store refuses a push past either (`429`), atomically with the
//! insert (see the [store docs](crate::store)).
//!
//! Defaults, as fractions of the store's limits (entries and bytes alike):
//!
//! * each client: **half** ([`ParLayerBuilder::client_share`](crate::ParLayerBuilder::client_share)),
//!   so that one client, however it floods, leaves at least half of the store to the others;
//! * all public clients together: **a quarter**
//!   ([`ParLayerBuilder::public_clients_share`](crate::ParLayerBuilder::public_clients_share)),
//!   so that a flood through any number of public clients leaves three quarters to confidential
//!   clients, who authenticate.
//!
//! A client's own limits ([`ClientBuilder::par_max_outstanding`](crate::client::ClientBuilder::par_max_outstanding),
//! [`ClientBuilder::par_max_outstanding_bytes`](crate::client::ClientBuilder::par_max_outstanding_bytes))
//! replace the per-client default, each for its own dimension; a public client stays within the
//! public clients' share whatever its own limits.

use std::sync::Arc;

use crate::{
    client::Client,
    store::{Charge, Share, StoreKey, StoreLimits},
};

/// Domain tag of share bucket names: never the same digest as a store key.
const SHARE_TAG: &[u8] = b"tower-par/share/v1";

/// Default fraction of the store's entries and bytes one client may hold.
pub(crate) const DEFAULT_CLIENT_SHARE: f64 = 0.5;

/// Default fraction of the store's entries and bytes all public clients may hold together.
pub(crate) const DEFAULT_PUBLIC_CLIENTS_SHARE: f64 = 0.25;

/// The shares of one layer, turned into numbers from its store's limits.
#[derive(Debug)]
pub(crate) struct Shares {
    client_entries: u64,
    client_bytes: u64,
    public_clients: Share,
}

impl Shares {
    pub(crate) fn new(
        issuer: &str,
        limits: StoreLimits,
        client_fraction: f64,
        public_fraction: f64,
    ) -> Self {
        let public_bucket = StoreKey::derive_tagged(SHARE_TAG, issuer, "", b"public-clients");
        Self {
            client_entries: fraction_of(limits.max_entries(), client_fraction),
            client_bytes: fraction_of(limits.max_bytes(), client_fraction),
            public_clients: Share::new(
                public_bucket,
                fraction_of(limits.max_entries(), public_fraction),
                fraction_of(limits.max_bytes(), public_fraction),
            ),
        }
    }

    /// What a push by `client` is charged to.
    pub(crate) fn charge(&self, issuer: &Arc<str>, client: &Client) -> Charge {
        let bucket = client.share_bucket(issuer, || {
            StoreKey::derive_tagged(SHARE_TAG, issuer, client.client_id(), b"client")
        });
        let own = Share::new(
            bucket,
            client.par_max_outstanding().unwrap_or(self.client_entries),
            client
                .par_max_outstanding_bytes()
                .unwrap_or(self.client_bytes),
        );
        let charge = Charge::new(own);
        if client.auth_method().is_confidential() {
            charge
        } else {
            charge.with_group(self.public_clients)
        }
    }
}

/// `fraction` (0 < fraction ≤ 1) of `limit`, rounded down, at least 1.
fn fraction_of(limit: u64, fraction: f64) -> u64 {
    // `as` saturates: u64::MAX × 1.0 stays u64::MAX. Exact for limits below 2^53.
    let share = (limit as f64 * fraction).floor() as u64;
    share.clamp(1, limit.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::AuthMethod;

    fn client(id: &str, method: AuthMethod) -> Client {
        let builder = Client::builder(id)
            .auth_method(method)
            .redirect_uri("https://c.example/cb")
            .grant_type("authorization_code");
        match method {
            AuthMethod::None => builder,
            _ => builder.secret("s"),
        }
        .build()
        .unwrap()
    }

    #[test]
    fn defaults_are_half_per_client_and_a_quarter_for_public_clients() {
        let shares = Shares::new(
            "https://as",
            StoreLimits::new(1_000, 4_096),
            DEFAULT_CLIENT_SHARE,
            DEFAULT_PUBLIC_CLIENTS_SHARE,
        );
        let issuer: Arc<str> = "https://as".into();
        let web = shares.charge(&issuer, &client("web", AuthMethod::ClientSecretBasic));
        assert_eq!(
            (web.owner().max_entries(), web.owner().max_bytes()),
            (500, 2_048)
        );
        assert!(web.group().is_none(), "confidential clients have no group");
        let spa = shares.charge(&issuer, &client("spa", AuthMethod::None));
        let group = spa.group().expect("public clients share a group");
        assert_eq!((group.max_entries(), group.max_bytes()), (250, 1_024));
        let other = shares.charge(&issuer, &client("other-spa", AuthMethod::None));
        assert_eq!(
            other.group(),
            spa.group(),
            "one group for all public clients"
        );
        assert_ne!(other.owner().bucket(), spa.owner().bucket());
        let spa_client = client("spa", AuthMethod::None);
        let here = *shares.charge(&issuer, &spa_client).owner().bucket();
        assert_eq!(
            here,
            *spa.owner().bucket(),
            "the same client, the same bucket"
        );
        assert_eq!(
            here,
            *shares.charge(&issuer, &spa_client).owner().bucket(),
            "cached on the client object"
        );
        let elsewhere = *shares
            .charge(&"https://other-issuer".into(), &spa_client)
            .owner()
            .bucket();
        assert_ne!(here, elsewhere, "buckets are per issuer, cache or not");
        assert_eq!(
            here,
            *shares.charge(&issuer, &spa_client).owner().bucket(),
            "the first issuer's bucket stays cached"
        );
    }

    #[test]
    fn a_client_s_own_limits_replace_the_default_each_in_its_dimension() {
        let shares = Shares::new("https://as", StoreLimits::new(1_000, 4_096), 0.5, 0.25);
        let limited = Client::builder("svc")
            .secret("s")
            .redirect_uri("https://c.example/cb")
            .grant_type("authorization_code")
            .par_max_outstanding(3)
            .build()
            .unwrap();
        let owner = *shares.charge(&"https://as".into(), &limited).owner();
        assert_eq!((owner.max_entries(), owner.max_bytes()), (3, 2_048));
    }

    #[test]
    fn fractions_round_down_but_never_to_zero() {
        assert_eq!(fraction_of(3, 0.5), 1);
        assert_eq!(fraction_of(1, 0.25), 1);
        assert_eq!(fraction_of(0, 0.5), 1);
        assert_eq!(fraction_of(u64::MAX, 1.0), u64::MAX);
        assert_eq!(fraction_of(256 << 20, 0.25), 64 << 20);
    }
}
