//! What the service logs: decisions and who made them, never a token or a CSRF value.
//!
//! A test binary of its own: tracing caches per call site whether anyone listens, and tests on
//! other threads without a subscriber would race with the one installed here.

mod support;

use std::sync::{Arc, Mutex};

use support::*;

/// Collects every log line written while it is the default subscriber.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_token_or_csrf_value_appears_in_the_logs() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let held = service
        .verdicts(&push("r1", "agent-7", "refs/heads/main", OLD, NEW))
        .await;
    let ticket = ticket_of(&held[0]);
    let token = service.reviewer_token("bob");
    let mut bob = Browser::new(&service);
    bob.get(&format!("/login?token={token}&next=/")).await;
    let csrf = bob.csrf_for(&ticket).await;
    bob.post(&format!("/tickets/{ticket}/approve"), &[("csrf", &csrf)])
        .await;
    Browser::new(&service).sign_in(&token).await;
    service.stop().await;

    let text = String::from_utf8(logs.0.lock().expect("the log buffer").clone()).expect("utf-8");
    assert!(
        text.contains("reviewer signed in"),
        "the logs were captured:\n{text}"
    );
    assert!(text.contains("verdict"), "{text}");
    let signature = token.rsplit('.').next().expect("a signature");
    assert!(
        !text.contains(signature),
        "a token leaked into the logs:\n{text}"
    );
    assert!(
        !text.contains(&csrf),
        "a CSRF token leaked into the logs:\n{text}"
    );
}
