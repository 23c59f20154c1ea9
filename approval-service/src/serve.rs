//! `gitgate serve`: load everything, bind, print the address, serve until SIGINT or SIGTERM.

use std::io::Write;

use anyhow::Context;
use axum_extra::extract::cookie::Key;
use rand::RngCore;
use tokio::net::TcpListener;

use crate::app::{AppState, Settings, app};
use crate::clock::Clock;
use crate::config::ServeConfig;
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

    let state = AppState::new(
        settings,
        store.clone(),
        policy,
        verifier,
        session_key()?,
        Clock::system(),
    );
    let router = app(state);

    println!("gitgate: listening on http://{address}");
    // OK to ignore: a closed stdout must not stop the service.
    let _ = std::io::stdout().flush();
    tracing::info!(%address, %public_url, "listening");

    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the server failed")?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
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
