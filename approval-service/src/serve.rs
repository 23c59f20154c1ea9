//! `gitgate serve`: load everything, bind, print the address, serve until SIGINT or SIGTERM.

use std::io::Write;

use anyhow::Context;
use axum_extra::extract::cookie::Key;
use rand::RngCore;
use tokio::net::TcpListener;

use crate::app::{AppState, Settings, app};
use crate::clock::Clock;
use crate::config::ServeConfig;
use crate::filter_auth::FilterToken;
use crate::issuer::{DevIssuer, TokenVerifier};
use crate::policy::Policy;
use crate::store::Store;

/// Runs the service with `config` until a shutdown signal arrives.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    // Everything that can fail on bad settings fails before the port is bound, so a
    // successful /healthz means the service is fully up.
    let policy = match &config.policy {
        Some(path) => Policy::from_file(path)?,
        None => Policy::embedded_default().context("the embedded default policy")?,
    };
    let issuer = DevIssuer::ensure(&config.dev_issuer_dir)?;
    let verifier = TokenVerifier::from_issuer_dir(&config.dev_issuer_dir)?;
    let filter_token = FilterToken::load(
        config.filter_token_file.as_deref(),
        std::env::var(crate::filter_auth::TOKEN_ENV).ok().as_deref(),
    )?;
    match &filter_token {
        Some(_) => tracing::info!("the filter API requires the filter token"),
        None => tracing::warn!(
            "no filter token (--filter-token-file or {}): /v1/verdicts, /v1/holds/wait and \
             /v1/events are open to anyone who can reach this port",
            crate::filter_auth::TOKEN_ENV
        ),
    }
    let store = Store::connect(&config.database).await?;
    let policy_source = match &config.policy {
        Some(path) => path.display().to_string(),
        None => "embedded default".to_owned(),
    };
    tracing::info!(
        rules = policy.rule_count(),
        policy = %policy_source,
        backend = store.backend().as_str(),
        kid = issuer.kid(),
        "configured"
    );

    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr().context("the bound address")?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{address}"));
    let mut settings = Settings::new(&public_url);
    settings.approval_ttl = config.approval_ttl;
    settings.hold_wait_max = config.hold_wait_max;

    // Reviewer sign-in: the configured provider, else the development issuer in this service.
    let oidc_settings = crate::oidc::OidcSettings::resolve(config.oidc.clone());
    let dev_provider = oidc_settings.is_dev().then(|| {
        let claims = crate::issuer::provider::ClaimNames {
            groups: oidc_settings.groups_claim.clone(),
            roles: oidc_settings.roles_claim.clone(),
        };
        let callback = format!(
            "{}{}",
            public_url.trim_end_matches('/'),
            crate::oidc::CALLBACK_PATH
        );
        std::sync::Arc::new(crate::issuer::provider::DevProvider::new(
            &issuer,
            &public_url,
            &callback,
            claims,
        ))
    });
    let cookie_key = match (&config.cookie_key, oidc_settings.is_dev()) {
        (Some(text), _) => configured_session_key(text)?,
        (None, true) => {
            tracing::warn!("no cookie_key configured: sessions end when this instance restarts");
            session_key()?
        }
        (None, false) => anyhow::bail!(
            "cookie_key (or GITGATE_COOKIE_KEY) is required with an identity provider, so \
             that every instance accepts the same sessions"
        ),
    };
    let oidc = crate::oidc::OidcClient::new(oidc_settings, &public_url, dev_provider)
        .map_err(|e| anyhow::anyhow!("oidc: {e}"))?;
    let webhooks = crate::webhooks::Webhooks::from_config(&config.webhooks)?;

    let state = AppState::new(
        settings,
        store.clone(),
        policy,
        verifier,
        cookie_key,
        Clock::system(),
    )
    .with_oidc(oidc);
    let state = match filter_token {
        Some(token) => state.with_filter_token(token),
        None => state,
    };
    let state = match webhooks {
        Some(webhooks) => state.with_webhooks(webhooks),
        None => state,
    };
    let _notifier = crate::webhooks::spawn(state.clone());
    let audit = state.audit().clone();
    let router = app(state);

    println!("gitgate: listening on http://{address}");
    // OK to ignore: a closed stdout must not stop the service.
    let _ = std::io::stdout().flush();
    tracing::info!(%address, %public_url, "listening");

    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the server failed")?;
    // Queued read events are stored before the store closes.
    audit.close().await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The configured session cookie key: base64 (standard or URL-safe) of at least 64 bytes.
fn configured_session_key(text: &str) -> anyhow::Result<Key> {
    use base64::Engine;
    let text = text.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
        .map_err(|_| anyhow::anyhow!("cookie_key is not base64"))?;
    Key::try_from(&bytes[..]).map_err(|_| anyhow::anyhow!("cookie_key must hold at least 64 bytes"))
}

/// A fresh random key for signing session cookies; sessions end when the service restarts.
fn session_key() -> anyhow::Result<Key> {
    let mut bytes = [0u8; 64];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Key::try_from(&bytes[..]).context("the session key")
}

async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}
