//! The development token issuer: an Ed25519 key pair on disk, a JWKS for Envoy's `jwt_authn`,
//! and EdDSA tokens signed with it; plus the verifier the reviewer sign-in uses.
//!
//! The directory holds `signing-key.pem` (PKCS#8, readable by the owner only) and `jwks.json`
//! (one OKP/Ed25519 key whose `kid` is its RFC 7638 thumbprint). It stands in for a real
//! identity provider on a developer's machine.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub mod provider;

/// The `iss` of every dev token; Envoy's provider and the sign-in both require it.
pub const ISSUER: &str = "gitgate-dev";

/// The `aud` of every dev token.
pub const AUDIENCE: &str = "gitgate";

/// The role a token needs in `roles` to sign in to the reviewer pages.
pub const REVIEWER_ROLE: &str = "reviewer";

/// The group `--reviewer` tokens join: the approvers of the embedded default policy.
pub const REVIEWERS_GROUP: &str = "reviewers";

/// The private key file inside the issuer directory.
pub const SIGNING_KEY_FILE: &str = "signing-key.pem";

/// The public key set inside the issuer directory.
pub const JWKS_FILE: &str = "jwks.json";

/// Why the issuer or the verifier could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// A file or directory could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done, for example `write`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The signing key file is not a PKCS#8 Ed25519 key.
    #[error("{path} is not a PKCS#8 Ed25519 private key: {message}")]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// The decoder's complaint.
        message: String,
    },
    /// The JWKS file does not parse or holds no usable Ed25519 key.
    #[error("{path} holds no usable Ed25519 key: {message}")]
    BadJwks {
        /// The JWKS file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Signing a token failed.
    #[error("cannot sign the token: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

/// Why a presented token was not accepted. The messages never quote the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The text is not a JWT with a readable header.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// The header names a key the JWKS does not have.
    #[error("the token was signed with an unknown key")]
    UnknownKey,
    /// The token has expired.
    #[error("the token has expired")]
    Expired,
    /// The signature, issuer, audience or algorithm is wrong.
    #[error("the token is not valid here: {0}")]
    Invalid(String),
    /// The token is valid but lacks the reviewer role.
    #[error("the token does not carry the role `reviewer`")]
    NotReviewer,
    /// The token is an agent's, or delegated (RFC 8693 `act`, `act_for`): a review must be a
    /// person's own decision, so such tokens never sign in as reviewers.
    #[error("an agent's or a delegated token cannot review changes; a person signs in")]
    NotAPerson,
}

/// The claims of a dev token, in the shape the filter reads them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// Always [`AUDIENCE`].
    pub aud: String,
    /// The agent or person holding the token.
    pub sub: String,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expires at, unix seconds.
    pub exp: i64,
    /// A unique token id.
    pub jti: String,
    /// True for an autonomous agent.
    pub agent: bool,
    /// The person an agent acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act_for: Option<String>,
    /// Group memberships.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Roles; [`REVIEWER_ROLE`] for reviewers.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// What to put in a token.
#[derive(Debug, Clone, Default)]
pub struct TokenSpec {
    /// The subject.
    pub subject: String,
    /// Mark the holder as an agent.
    pub agent: bool,
    /// The person the agent acts for.
    pub acting_for: Option<String>,
    /// Groups, in order, without duplicates.
    pub groups: Vec<String>,
    /// Make it a reviewer token: role `reviewer` and group `reviewers`.
    pub reviewer: bool,
    /// Lifetime.
    pub ttl: Duration,
}

/// A loaded dev issuer, able to sign tokens.
pub struct DevIssuer {
    encoding_key: EncodingKey,
    kid: String,
    jwks: JwkSet,
}

impl std::fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The encoding key is private; show only the public side.
        f.debug_struct("DevIssuer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl DevIssuer {
    /// Creates the key pair and `jwks.json` in `dir` when absent, then loads them.
    ///
    /// An existing key is kept; `jwks.json` is rewritten when it does not match the key.
    pub fn ensure(dir: &Path) -> Result<Self, IssuerError> {
        std::fs::create_dir_all(dir).map_err(|source| IssuerError::Io {
            action: "create directory",
            path: dir.to_owned(),
            source,
        })?;
        let key_path = dir.join(SIGNING_KEY_FILE);
        if !key_path.exists() {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| IssuerError::BadKey {
                    path: key_path.clone(),
                    message: e.to_string(),
                })?;
            write_private(&key_path, pem.as_bytes())?;
        }
        let issuer = Self::load_key(&key_path)?;
        let jwks_path = dir.join(JWKS_FILE);
        let wanted = jwks_text(&issuer.jwks);
        let current = std::fs::read_to_string(&jwks_path).ok();
        if current.as_deref() != Some(wanted.as_str()) {
            std::fs::write(&jwks_path, wanted).map_err(|source| IssuerError::Io {
                action: "write",
                path: jwks_path,
                source,
            })?;
        }
        Ok(issuer)
    }

    fn load_key(key_path: &Path) -> Result<Self, IssuerError> {
        let pem = std::fs::read_to_string(key_path).map_err(|source| IssuerError::Io {
            action: "read",
            path: key_path.to_owned(),
            source,
        })?;
        let bad_key = |message: String| IssuerError::BadKey {
            path: key_path.to_owned(),
            message,
        };
        let signing_key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| bad_key(e.to_string()))?;
        let encoding_key =
            EncodingKey::from_ed_pem(pem.as_bytes()).map_err(|e| bad_key(e.to_string()))?;
        let x = URL_SAFE_NO_PAD.encode(signing_key.verifying_key().to_bytes());
        let mut jwk = Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(KeyAlgorithm::EdDSA),
                ..CommonParameters::default()
            },
            algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x,
            }),
        };
        let kid = jwk.thumbprint(ThumbprintHash::SHA256);
        jwk.common.key_id = Some(kid.clone());
        Ok(DevIssuer {
            encoding_key,
            kid,
            jwks: JwkSet { keys: vec![jwk] },
        })
    }

    /// The key id in every token's header and in the JWKS.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key set.
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    /// Signs a token for `spec`, issued at `now_s` (unix seconds).
    pub fn mint(&self, spec: &TokenSpec, now_s: i64) -> Result<String, IssuerError> {
        let ttl_s = i64::try_from(spec.ttl.as_secs()).unwrap_or(i64::MAX);
        let mut groups: Vec<String> = Vec::new();
        let mut roles = Vec::new();
        let extra_group = spec.reviewer.then(|| REVIEWERS_GROUP.to_owned());
        for group in spec.groups.iter().cloned().chain(extra_group) {
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
        if spec.reviewer {
            roles.push(REVIEWER_ROLE.to_owned());
        }
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: spec.subject.clone(),
            iat: now_s,
            exp: now_s.saturating_add(ttl_s),
            jti: uuid::Uuid::new_v4().to_string(),
            agent: spec.agent,
            act_for: spec.acting_for.clone(),
            groups,
            roles,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding_key).map_err(IssuerError::Sign)
    }
}

/// A reviewer, as a verified token describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReviewer {
    /// The token's subject.
    pub subject: String,
    /// The token's groups.
    pub groups: Vec<String>,
    /// The person the token's holder acts for (an agent's token), which separation of duties
    /// treats as the reviewer too.
    pub acting_for: Option<String>,
}

/// Checks reviewer tokens against the dev issuer's JWKS.
pub struct TokenVerifier {
    /// Keys by id; a key without an id is tried for tokens without one.
    keys: Vec<(Option<String>, DecodingKey)>,
    validation: Validation,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<_> = self.keys.iter().map(|(kid, _)| kid).collect();
        f.debug_struct("TokenVerifier")
            .field("kids", &kids)
            .finish_non_exhaustive()
    }
}

/// The claims the sign-in reads; `jsonwebtoken` checks `iss`, `aud` and `exp` itself.
#[derive(Debug, Deserialize)]
struct ReviewerClaims {
    sub: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    act_for: Option<String>,
    #[serde(default)]
    agent: bool,
    #[serde(default)]
    act: Option<serde_json::Value>,
}

impl TokenVerifier {
    /// Loads the verifier from the `jwks.json` in an issuer directory.
    pub fn from_issuer_dir(dir: &Path) -> Result<Self, IssuerError> {
        let path = dir.join(JWKS_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| IssuerError::Io {
            action: "read",
            path: path.clone(),
            source,
        })?;
        let jwks: JwkSet = serde_json::from_str(&text).map_err(|e| IssuerError::BadJwks {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Self::from_jwks(&jwks).map_err(|message| IssuerError::BadJwks {
            path,
            message: message.to_owned(),
        })
    }

    /// Builds the verifier from a key set; fails when it holds no Ed25519 key.
    pub fn from_jwks(jwks: &JwkSet) -> Result<Self, &'static str> {
        let keys: Vec<_> = jwks
            .keys
            .iter()
            .filter(|jwk| {
                matches!(
                    &jwk.algorithm,
                    AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519
                )
            })
            .filter_map(|jwk| {
                DecodingKey::from_jwk(jwk)
                    .ok()
                    .map(|key| (jwk.common.key_id.clone(), key))
            })
            .collect();
        if keys.is_empty() {
            return Err("no OKP Ed25519 key");
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        Ok(TokenVerifier { keys, validation })
    }

    /// Verifies a reviewer token: signature, issuer, audience, expiry and the reviewer role.
    pub fn verify_reviewer(&self, token: &str) -> Result<VerifiedReviewer, TokenError> {
        let token = token.trim();
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let key = match &header.kid {
            Some(kid) => self.keys.iter().find(|(id, _)| id.as_deref() == Some(kid)),
            None => self
                .keys
                .iter()
                .find(|(id, _)| id.is_none())
                .or(match self.keys.as_slice() {
                    [only] => Some(only),
                    _ => None,
                }),
        };
        let (_, key) = key.ok_or(TokenError::UnknownKey)?;
        let data = jsonwebtoken::decode::<ReviewerClaims>(token, key, &self.validation)
            .map_err(|e| classify(e.kind()))?;
        let claims = data.claims;
        if !claims.roles.iter().any(|role| role == REVIEWER_ROLE) {
            return Err(TokenError::NotReviewer);
        }
        if claims.sub.trim().is_empty() {
            return Err(TokenError::Invalid("the subject is empty".to_owned()));
        }
        if claims.agent || claims.act.is_some() || claims.act_for.is_some() {
            return Err(TokenError::NotAPerson);
        }
        Ok(VerifiedReviewer {
            subject: claims.sub,
            groups: claims.groups,
            acting_for: claims.act_for.filter(|p| !p.trim().is_empty()),
        })
    }
}

fn classify(kind: &jsonwebtoken::errors::ErrorKind) -> TokenError {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::InvalidSignature => TokenError::Invalid("the signature does not verify".into()),
        ErrorKind::InvalidIssuer => TokenError::Invalid(format!("the issuer is not {ISSUER}")),
        ErrorKind::InvalidAudience => {
            TokenError::Invalid(format!("the audience is not {AUDIENCE}"))
        }
        ErrorKind::InvalidAlgorithm => TokenError::Invalid("the algorithm is not EdDSA".into()),
        ErrorKind::MissingRequiredClaim(claim) => {
            TokenError::Invalid(format!("the claim `{claim}` is missing"))
        }
        ErrorKind::ImmatureSignature => TokenError::Invalid("the token is not valid yet".into()),
        _ => TokenError::Malformed,
    }
}

fn jwks_text(jwks: &JwkSet) -> String {
    // OK because a JwkSet of strings and enums always serialises.
    let mut text = serde_json::to_string_pretty(jwks).unwrap_or_default();
    text.push('\n');
    text
}

/// Writes a new file readable by its owner only.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), IssuerError> {
    let io = |source| IssuerError::Io {
        action: "write",
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(subject: &str) -> TokenSpec {
        TokenSpec {
            subject: subject.into(),
            ttl: Duration::from_secs(900),
            ..TokenSpec::default()
        }
    }

    fn now_s() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    #[test]
    fn ensure_creates_the_key_once_and_keeps_it() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let first = DevIssuer::ensure(&dir.path().join("dev")).expect("created");
        let second = DevIssuer::ensure(&dir.path().join("dev")).expect("loaded");
        assert_eq!(first.kid(), second.kid());

        let jwks: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("dev").join(JWKS_FILE)).expect("jwks"),
        )
        .expect("json");
        let key = &jwks["keys"][0];
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["crv"], "Ed25519");
        assert_eq!(key["alg"], "EdDSA");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kid"], first.kid());
        assert!(
            key["x"].as_str().is_some_and(|x| x.len() == 43),
            "32 bytes, base64url"
        );
    }

    #[test]
    fn minted_tokens_carry_the_contract_claims_and_the_kid() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let issuer = DevIssuer::ensure(dir.path()).expect("issuer");
        let mut spec = spec("agent-7");
        spec.agent = true;
        spec.acting_for = Some("alice".into());
        spec.groups = vec!["dev".into(), "dev".into()];
        let token = issuer.mint(&spec, now_s()).expect("token");

        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.kid.as_deref(), Some(issuer.kid()));
        let verifier = TokenVerifier::from_issuer_dir(dir.path()).expect("verifier");
        let (_, key) = &verifier.keys[0];
        let claims = jsonwebtoken::decode::<Claims>(&token, key, &verifier.validation)
            .expect("valid")
            .claims;
        assert_eq!(claims.iss, ISSUER);
        assert_eq!(claims.aud, AUDIENCE);
        assert_eq!(claims.sub, "agent-7");
        assert!(claims.agent);
        assert_eq!(claims.act_for.as_deref(), Some("alice"));
        assert_eq!(claims.groups, vec!["dev".to_owned()]);
        assert!(claims.roles.is_empty());
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[test]
    fn reviewer_tokens_verify_and_others_are_refused() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let issuer = DevIssuer::ensure(dir.path()).expect("issuer");
        let verifier = TokenVerifier::from_issuer_dir(dir.path()).expect("verifier");

        let mut reviewer = spec("bob");
        reviewer.reviewer = true;
        let token = issuer.mint(&reviewer, now_s()).expect("token");
        let verified = verifier.verify_reviewer(&token).expect("a reviewer");
        assert_eq!(verified.subject, "bob");
        assert_eq!(verified.groups, vec![REVIEWERS_GROUP.to_owned()]);

        let plain = issuer.mint(&spec("carol"), now_s()).expect("token");
        assert_eq!(
            verifier.verify_reviewer(&plain),
            Err(TokenError::NotReviewer)
        );

        let expired = issuer.mint(&reviewer, now_s() - 3600).expect("token");
        assert_eq!(verifier.verify_reviewer(&expired), Err(TokenError::Expired));

        assert_eq!(
            verifier.verify_reviewer("not a token"),
            Err(TokenError::Malformed)
        );

        let other_dir = tempfile::tempdir().expect("a temporary directory");
        let other = DevIssuer::ensure(other_dir.path()).expect("issuer");
        let foreign = other.mint(&reviewer, now_s()).expect("token");
        assert_eq!(
            verifier.verify_reviewer(&foreign),
            Err(TokenError::UnknownKey)
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_signing_key_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("a temporary directory");
        DevIssuer::ensure(dir.path()).expect("issuer");
        let mode = std::fs::metadata(dir.path().join(SIGNING_KEY_FILE))
            .expect("key")
            .permissions();
        assert_eq!(mode.mode() & 0o777, 0o600);
    }
}
