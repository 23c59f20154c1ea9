//! Webhook notifications: one Slack-compatible message for every new hold and every decision,
//! retried with backoff, each delivery on record (`webhook_deliveries`) and shown on its ticket.
//!
//! A background worker reads new tickets and decisions from the store (as the hold wait does,
//! so it sees what any instance wrote) and claims each event per webhook with a unique row:
//! of several instances exactly one delivers it. The message carries `text` (what a plain
//! Slack incoming webhook shows) and `blocks` with the fields (repository, ref, requester,
//! rule, ticket URL), plus a `gitgate` object with the same facts for other receivers. The
//! webhook URL is never logged or stored: it often carries the receiver's secret.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::config::{ConfigError, parse_duration};
use crate::store::{Decision, DecisionKind, DeliveryStatus, StoreError, Ticket};

/// How often the worker looks for new events.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How far back the worker looks when it starts: events of a short restart are still sent
/// (the claim rows keep it from sending one twice).
pub const LOOKBACK: Duration = Duration::from_secs(600);

/// Attempts per event unless configured.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 6;

/// The wait before the second attempt unless configured; it doubles after each failure.
pub const DEFAULT_FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The longest wait between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How long one attempt may take unless configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most events one pass reads.
const BATCH: i64 = 100;

/// One entry of the `webhooks` list in the service config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// A name for logs and the delivery record (the URL is never shown).
    pub name: String,
    /// Where to POST. Also read from the environment variable named by `url_env`.
    pub url: Option<String>,
    /// The environment variable holding the URL, for URLs that carry a secret.
    pub url_env: Option<String>,
    /// `hold`, `decision` or both (the default).
    pub events: Option<Vec<String>>,
    /// Attempts per event; default 6.
    pub max_attempts: Option<u32>,
    /// The first wait between attempts, for example `1s`; it doubles, up to a minute.
    pub first_backoff: Option<String>,
    /// How long one attempt may take, for example `10s`.
    pub timeout: Option<String>,
}

/// What happened, as a webhook subscribes to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A push was held and a ticket opened.
    Hold,
    /// A reviewer decided (an approval, possibly one of several, or a denial).
    Decision,
}

/// One resolved webhook.
#[derive(Debug, Clone)]
pub struct Target {
    name: String,
    url: String,
    holds: bool,
    decisions: bool,
    max_attempts: u32,
    first_backoff: Duration,
    timeout: Duration,
}

impl Target {
    /// Resolves one config entry.
    pub fn from_config(config: &WebhookConfig) -> Result<Self, ConfigError> {
        let invalid = |problem: String| ConfigError::Webhook {
            name: config.name.clone(),
            problem,
        };
        let url = match (&config.url, &config.url_env) {
            (Some(url), None) => url.clone(),
            (None, Some(var)) => std::env::var(var)
                .map_err(|_| invalid(format!("the environment variable {var} is not set")))?,
            _ => return Err(invalid("give exactly one of url and url_env".into())),
        };
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(invalid("the url must be http:// or https://".into()));
        }
        let events = config
            .events
            .clone()
            .unwrap_or_else(|| vec!["hold".into(), "decision".into()]);
        if let Some(other) = events
            .iter()
            .find(|e| !matches!(e.as_str(), "hold" | "decision"))
        {
            return Err(invalid(format!(
                "unknown event {other:?}: use hold or decision"
            )));
        }
        let duration = |field: &'static str, value: &Option<String>, default: Duration| {
            value
                .as_deref()
                .map_or(Ok(default), |text| parse_duration(field, text))
        };
        Ok(Target {
            name: config.name.clone(),
            url,
            holds: events.iter().any(|e| e == "hold"),
            decisions: events.iter().any(|e| e == "decision"),
            max_attempts: config.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS).max(1),
            first_backoff: duration(
                "first_backoff",
                &config.first_backoff,
                DEFAULT_FIRST_BACKOFF,
            )?,
            timeout: duration("timeout", &config.timeout, DEFAULT_TIMEOUT)?,
        })
    }

    fn wants(&self, kind: EventKind) -> bool {
        match kind {
            EventKind::Hold => self.holds,
            EventKind::Decision => self.decisions,
        }
    }
}

/// The configured webhooks and the HTTP client that calls them.
#[derive(Debug, Clone)]
pub struct Webhooks {
    targets: Vec<Target>,
    client: reqwest::Client,
}

impl Webhooks {
    /// The webhooks of the config, or `None` when there are none.
    pub fn from_config(configs: &[WebhookConfig]) -> Result<Option<Self>, ConfigError> {
        if configs.is_empty() {
            return Ok(None);
        }
        let targets = configs
            .iter()
            .map(Target::from_config)
            .collect::<Result<Vec<_>, _>>()?;
        let client = reqwest::Client::builder()
            // A receiver's redirect is not followed: the message goes where it was configured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("gitgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::Webhook {
                name: "*".into(),
                problem: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Some(Webhooks { targets, client }))
    }
}

/// Starts the worker that announces new holds and decisions; it runs until the runtime ends.
pub fn spawn(state: AppState) -> Option<tokio::task::JoinHandle<()>> {
    state.webhooks()?;
    Some(tokio::spawn(async move {
        let start = state.clock().now_ms() - crate::clock::duration_ms(LOOKBACK);
        let mut marks = Marks {
            tickets: start,
            decisions: start,
        };
        loop {
            if let Err(error) = pass(&state, &mut marks).await {
                tracing::warn!(%error, "webhooks: cannot read new events");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }))
}

/// Where the worker has read up to, unix milliseconds.
struct Marks {
    tickets: i64,
    decisions: i64,
}

/// One look for new events: claims and starts the delivery of each.
async fn pass(state: &AppState, marks: &mut Marks) -> Result<(), StoreError> {
    let Some(webhooks) = state.webhooks() else {
        return Ok(());
    };
    let now = state.clock().now_ms();
    // Events at the mark's millisecond are read again; their claims exist, so they are skipped.
    for ticket in state.store().tickets_since(marks.tickets, BATCH).await? {
        marks.tickets = marks.tickets.max(ticket.created_at);
        let message = hold_message(&state.settings().public_url, &ticket);
        let event = format!("hold:{}", ticket.id);
        claim_and_send(
            state,
            webhooks,
            EventKind::Hold,
            &ticket.id,
            &event,
            &message,
            now,
        )
        .await?;
    }
    for decision in state
        .store()
        .decisions_since(marks.decisions, BATCH)
        .await?
    {
        marks.decisions = marks.decisions.max(decision.decided_at);
        let Some(ticket) = state.store().ticket(&decision.ticket_id).await? else {
            continue;
        };
        let approvals = state
            .store()
            .decisions(&ticket.id)
            .await?
            .iter()
            .filter(|d| d.kind == DecisionKind::Approve && d.decided_at <= decision.decided_at)
            .count();
        let need = state.policy().approvals_needed(ticket.rule.as_deref());
        let message = decision_message(
            &state.settings().public_url,
            &ticket,
            &decision,
            (approvals, need),
        );
        let event = format!("decision:{}", decision.id);
        claim_and_send(
            state,
            webhooks,
            EventKind::Decision,
            &ticket.id,
            &event,
            &message,
            now,
        )
        .await?;
    }
    Ok(())
}

async fn claim_and_send(
    state: &AppState,
    webhooks: &Webhooks,
    kind: EventKind,
    ticket: &str,
    event: &str,
    message: &Value,
    now: i64,
) -> Result<(), StoreError> {
    for target in webhooks.targets.iter().filter(|t| t.wants(kind)) {
        let Some(id) = state
            .store()
            .claim_delivery(ticket, event, &target.name, now)
            .await?
        else {
            continue;
        };
        let (state, client, target, message) = (
            state.clone(),
            webhooks.client.clone(),
            target.clone(),
            message.clone(),
        );
        let event = event.to_owned();
        tokio::spawn(async move { deliver(&state, &client, &target, &id, &event, &message).await });
    }
    Ok(())
}

/// Posts one message until the receiver takes it or the attempts run out, recording each try.
async fn deliver(
    state: &AppState,
    client: &reqwest::Client,
    target: &Target,
    id: &str,
    event: &str,
    message: &Value,
) {
    let mut backoff = target.first_backoff;
    for attempt in 1..=target.max_attempts {
        let sent = client
            .post(&target.url)
            .timeout(target.timeout)
            .json(message)
            .send()
            .await;
        let (code, error) = match sent {
            Ok(response) if response.status().is_success() => {
                (Some(i64::from(response.status().as_u16())), None)
            }
            Ok(response) => (
                Some(i64::from(response.status().as_u16())),
                Some(format!("the receiver answered {}", response.status())),
            ),
            // Without the URL: it may carry the receiver's secret.
            Err(e) => (None, Some(describe(&e.without_url()))),
        };
        let attempts = i64::from(attempt);
        let now = state.clock().now_ms();
        let status = match (&error, attempt == target.max_attempts) {
            (None, _) => DeliveryStatus::Delivered,
            (Some(_), true) => DeliveryStatus::Failed,
            (Some(_), false) => DeliveryStatus::Pending,
        };
        if let Err(store_error) = state
            .store()
            .update_delivery(id, status, attempts, code, error.as_deref(), now)
            .await
        {
            tracing::warn!(%store_error, webhook = %target.name, "webhooks: cannot record an attempt");
        }
        match status {
            DeliveryStatus::Delivered => {
                tracing::info!(webhook = %target.name, event, attempts, "webhook delivered");
                return;
            }
            DeliveryStatus::Failed => {
                tracing::warn!(
                    webhook = %target.name, event, attempts,
                    error = error.as_deref().unwrap_or("-"),
                    "webhook failed; giving up"
                );
                return;
            }
            DeliveryStatus::Pending => {
                tracing::info!(
                    webhook = %target.name, event, attempt,
                    error = error.as_deref().unwrap_or("-"),
                    retry_in_ms = backoff.as_millis() as u64,
                    "webhook attempt failed"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_request() {
        "the request failed"
    } else {
        "failed"
    };
    let mut text = format!("{kind}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    crate::verdicts::one_line(&text)
}

/// Escapes text for Slack's mrkdwn (`&`, `<`, `>`; see Slack's "formatting text" guide).
pub fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn requester(ticket: &Ticket) -> String {
    match (&ticket.pusher.acting_for, ticket.pusher.agent) {
        (Some(person), true) => format!("{} (agent, for {person})", ticket.pusher.subject),
        (Some(person), false) => format!("{} (for {person})", ticket.pusher.subject),
        (None, true) => format!("{} (agent)", ticket.pusher.subject),
        (None, false) => ticket.pusher.subject.clone(),
    }
}

fn rule(ticket: &Ticket) -> String {
    ticket.rule.clone().unwrap_or_else(|| "default".into())
}

fn fields(ticket: &Ticket) -> Value {
    let field = |name: &str, value: &str| json!({ "type": "mrkdwn", "text": format!("*{name}*\n{}", slack_escape(value)) });
    json!([
        field("Repository", &ticket.key.repository),
        field("Ref", &ticket.key.refname),
        field("Requester", &requester(ticket)),
        field("Rule", &rule(ticket)),
    ])
}

/// The message for a new hold.
pub fn hold_message(public_url: &str, ticket: &Ticket) -> Value {
    let url = format!("{public_url}/tickets/{}", ticket.id);
    let text = format!(
        "gitgate: {} held for review: {} {} by {} (rule {}). Review: {url}",
        ticket.id,
        ticket.key.repository,
        ticket.key.refname,
        requester(ticket),
        rule(ticket),
    );
    json!({
        "text": text,
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "text": format!(
                "*Push held for review* <{url}|{}>\n{}", ticket.id, slack_escape(&ticket.reason)
            ) } },
            { "type": "section", "fields": fields(ticket) },
            { "type": "context", "elements": [
                { "type": "mrkdwn", "text": format!("Approvers: {} · <{url}|Open the ticket>", slack_escape(&ticket.approvers)) }
            ] },
        ],
        "gitgate": {
            "event": "hold", "ticket": ticket.id, "url": url,
            "repository": ticket.key.repository, "ref": ticket.key.refname,
            "old": ticket.key.old_id, "new": ticket.key.new_id,
            "requester": ticket.pusher.subject, "agent": ticket.pusher.agent,
            "acting_for": ticket.pusher.acting_for, "rule": rule(ticket),
            "approvers": ticket.approvers,
        },
    })
}

/// The message for a reviewer's decision; `count` is approvals so far and approvals needed.
pub fn decision_message(
    public_url: &str,
    ticket: &Ticket,
    decision: &Decision,
    count: (usize, u32),
) -> Value {
    let url = format!("{public_url}/tickets/{}", ticket.id);
    let (have, need) = count;
    let what = match decision.kind {
        DecisionKind::Deny => "denied".to_owned(),
        DecisionKind::Approve if (have as u64) < u64::from(need) => {
            format!("approval {have} of {need}")
        }
        DecisionKind::Approve => "approved".to_owned(),
    };
    let why = decision
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    let text = format!(
        "gitgate: {} {what} by {}{why}: {} {} by {} (rule {}). {url}",
        ticket.id,
        decision.reviewer,
        ticket.key.repository,
        ticket.key.refname,
        requester(ticket),
        rule(ticket),
    );
    json!({
        "text": text,
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "text": format!(
                "*{}* by {} <{url}|{}>{}",
                capitalise(&what), slack_escape(&decision.reviewer), ticket.id, slack_escape(&why)
            ) } },
            { "type": "section", "fields": fields(ticket) },
        ],
        "gitgate": {
            "event": "decision", "ticket": ticket.id, "url": url,
            "decision": decision.kind.as_str(), "reviewer": decision.reviewer,
            "reason": decision.reason, "valid_until": decision.valid_until.map(crate::clock::rfc3339),
            "approvals": have, "approvals_needed": need,
            "repository": ticket.key.repository, "ref": ticket.key.refname,
            "requester": ticket.pusher.subject, "acting_for": ticket.pusher.acting_for,
            "rule": rule(ticket),
        },
    })
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_control_characters_are_escaped() {
        assert_eq!(slack_escape("<!channel> & co"), "&lt;!channel&gt; &amp; co");
    }

    #[test]
    fn a_webhook_needs_exactly_one_url_and_known_events() {
        let config = |url: Option<&str>, events: Option<Vec<String>>| WebhookConfig {
            name: "slack".into(),
            url: url.map(str::to_owned),
            url_env: None,
            events,
            max_attempts: None,
            first_backoff: None,
            timeout: None,
        };
        assert!(Target::from_config(&config(None, None)).is_err());
        assert!(Target::from_config(&config(Some("ftp://x"), None)).is_err());
        assert!(
            Target::from_config(&config(Some("https://x"), Some(vec!["push".into()]))).is_err()
        );
        let target = Target::from_config(&config(Some("https://x"), None)).expect("valid");
        assert!(target.wants(EventKind::Hold) && target.wants(EventKind::Decision));
    }
}
