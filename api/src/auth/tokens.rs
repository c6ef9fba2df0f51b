//! Short-lived HS256 access tokens and opaque refresh tokens stored only as SHA-256 hashes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tgfleet_persistence::{Role, UserId};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    /// The refresh-token family this token was issued with (one per login), so a logout without
    /// a body and a revoked family reach the access tokens too. Absent in tokens minted before
    /// it existed; those expire within `access_ttl_s` of the upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fam: Option<String>,
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: Arc<EncodingKey>,
    decoding: Arc<DecodingKey>,
    validation: Arc<Validation>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl JwtKeys {
    pub fn new(secret: &[u8], access_ttl_s: u64, refresh_ttl_s: u64) -> Self {
        // Only HS256 is accepted: a token naming another algorithm (or `none`) is refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        Self {
            encoding: Arc::new(EncodingKey::from_secret(secret)),
            decoding: Arc::new(DecodingKey::from_secret(secret)),
            validation: Arc::new(validation),
            access_ttl: Duration::seconds(access_ttl_s as i64),
            refresh_ttl: Duration::seconds(refresh_ttl_s as i64),
        }
    }

    pub fn issue_access(
        &self,
        user_id: UserId,
        role: Role,
        family_id: &str,
    ) -> anyhow::Result<(String, Claims)> {
        let now = Utc::now();
        let claims = Claims {
            sub: user_id.to_string(),
            role,
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now.timestamp(),
            exp: (now + self.access_ttl).timestamp(),
            fam: Some(family_id.to_owned()),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// Signature, algorithm and expiry checked; revocation is the caller's next step.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|d| d.claims)
    }
}

/// A new opaque refresh token: what the client gets, and the hash the database keeps.
pub fn new_refresh_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_refresh_token(&token);
    (token, hash)
}

pub fn hash_refresh_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn expires_at(from: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    from + ttl
}
