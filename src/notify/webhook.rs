//! Webhooks: a JSON POST per event. The URL comes from the environment variable the settings
//! name (`url_env`); it usually embeds a token, so it is never printed — messages name the
//! variable instead.
//!
//! Payloads:
//! - `json`: `{"format_version": 1, "event": "applied", "title": …, "psa": …, "pull_request"?,
//!   "url"?, "summary"?, "changes": [{"mapping", "account", "license_type", "company", "product",
//!   "from", "to", "reason"?}]}` (`from` is `null` for a new lock entry).
//! - `slack`: `{"text": …}` in mrkdwn, with `&`, `<` and `>` in every text escaped as Slack asks.
//! - `teams`: an Adaptive Card (what Teams Workflows webhooks accept; Office 365 connector
//!   MessageCards are retired) in a `message` with one attachment; vendor text is Markdown-escaped.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Event, FORMAT_VERSION, Report};
use crate::config::{Webhook, WebhookFormat};
use crate::render::escape_markdown;

const TIMEOUT: Duration = Duration::from_secs(15);

/// The body POSTed for `event` in `format`.
pub fn payload(format: WebhookFormat, event: &Event) -> Value {
    match format {
        WebhookFormat::Json => {
            let mut value = serde_json::to_value(event).unwrap_or_default();
            if let Value::Object(map) = &mut value {
                let kind = map.remove("kind").unwrap_or_default();
                map.insert("format_version".into(), json!(FORMAT_VERSION));
                map.insert("event".into(), kind);
                map.insert("title".into(), json!(event.title()));
            }
            value
        }
        WebhookFormat::Slack => {
            let mut text = format!("*{}*", slack_escape(&event.title()));
            if let Some(url) = &event.url {
                text.push_str(&format!(
                    "\n<{}|Review the pull request>",
                    slack_escape(url)
                ));
            }
            if let Some(summary) = &event.summary {
                text.push('\n');
                text.push_str(&slack_escape(summary));
            }
            for change in &event.changes {
                text.push_str("\n• ");
                text.push_str(&slack_escape(&change.line()));
            }
            json!({ "text": text })
        }
        WebhookFormat::Teams => {
            let mut body = vec![json!({
                "type": "TextBlock",
                "text": escape_markdown(&event.title()),
                "weight": "Bolder",
                "size": "Medium",
                "wrap": true,
            })];
            if let Some(summary) = &event.summary {
                body.push(
                    json!({ "type": "TextBlock", "text": escape_markdown(summary), "wrap": true }),
                );
            }
            for change in &event.changes {
                body.push(json!({
                    "type": "TextBlock",
                    "text": format!("- {}", escape_markdown(&change.line())),
                    "wrap": true,
                    "spacing": "None",
                }));
            }
            let mut card = json!({
                "type": "AdaptiveCard",
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "version": "1.4",
                "body": body,
            });
            if let Some(url) = &event.url {
                card["actions"] = json!([{ "type": "Action.OpenUrl", "title": "Review the pull request", "url": url }]);
            }
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": card,
                }],
            })
        }
    }
}

/// Slack's mrkdwn control characters: `&`, `<`, `>` become entities.
pub fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn format_name(format: WebhookFormat) -> &'static str {
    match format {
        WebhookFormat::Json => "json",
        WebhookFormat::Slack => "slack",
        WebhookFormat::Teams => "teams",
    }
}

/// POSTs one payload per event to the webhook; adds a `sent` entry or a warning per event.
pub async fn send(hook: &Webhook, events: &[Event], report: &mut Report) {
    let name = format!("webhook ${} ({})", hook.url_env, format_name(hook.format));
    let url = match std::env::var(&hook.url_env) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            report.warnings.push(format!(
                "{name}: environment variable {} is not set",
                hook.url_env
            ));
            return;
        }
    };
    send_to(&name, hook.format, &url, events, report).await;
}

/// POSTs one `format` payload per event to `url`; `name` (never the URL) labels the report.
pub async fn send_to(
    name: &str,
    format: WebhookFormat,
    url: &str,
    events: &[Event],
    report: &mut Report,
) {
    let url = match reqwest::Url::parse(url.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => url,
        _ => {
            report
                .warnings
                .push(format!("{name}: the URL is not an http:// or https:// URL"));
            return;
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            report.warnings.push(format!(
                "{name}: cannot make an HTTP client: {}",
                e.without_url()
            ));
            return;
        }
    };
    for event in events {
        let kind = event.kind.verb();
        let result = client
            .post(url.clone())
            .json(&payload(format, event))
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => {
                report.sent.push(format!("{name} ({kind})"));
            }
            Ok(response) => report
                .warnings
                .push(format!("{name} ({kind}): HTTP {}", response.status())),
            // Without the URL: it is the secret.
            Err(e) => report
                .warnings
                .push(format!("{name} ({kind}): {}", describe(e.without_url()))),
        }
    }
}

fn describe(error: reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
