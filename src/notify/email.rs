//! E-mail over SMTP with lettre (rustls with ring for STARTTLS and implicit TLS).
//!
//! One message per event to all recipients. The user name and password come from
//! `UNITSYNC_SMTP_USERNAME` and `UNITSYNC_SMTP_PASSWORD` and are never printed or logged.
//! `security: none` is for local relays: credentials are only sent over it to a loopback host.

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
pub use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use super::{Event, EventKind, Report};
use crate::config::{EmailNotifications, SmtpSecurity};
use crate::redact::Redactor;

pub const USERNAME_ENV: &str = "UNITSYNC_SMTP_USERNAME";
pub const PASSWORD_ENV: &str = "UNITSYNC_SMTP_PASSWORD";
const TIMEOUT: Duration = Duration::from_secs(30);

/// The plain-text body of the message for `event`.
pub fn body(event: &Event) -> String {
    let mut out = String::new();
    let n = event.changes.len();
    let s = if n == 1 { "" } else { "s" };
    let intro = match event.kind {
        EventKind::Proposed => format!(
            "unitsync proposes {n} unit change{s} for {}{}.",
            event.psa,
            event
                .pull_request
                .map_or_else(String::new, |p| format!(" in pull request #{p}"))
        ),
        EventKind::Applied => format!("unitsync applied {n} unit change{s} to {}.", event.psa),
        EventKind::Failed => format!(
            "unitsync could not apply {n} unit change{s} to {}; the next apply retries them.",
            event.psa
        ),
        EventKind::Drift => format!(
            "{n} line{s} in {} were changed by hand since unitsync last wrote them; unitsync left them alone.",
            event.psa
        ),
        EventKind::Held => format!(
            "A guardrail held back {n} unit change{s} for {}; each line says why and how to release it.",
            event.psa
        ),
    };
    out.push_str(&intro);
    out.push('\n');
    if let Some(url) = &event.url {
        out.push_str(&format!("Review it: {url}\n"));
    }
    if let Some(summary) = &event.summary {
        out.push_str(&format!("{summary}\n"));
    }
    out.push_str("\nAccount / licence type (company, product): from → to\n");
    for change in &event.changes {
        out.push_str(&format!("- {}\n", change.line()));
    }
    out
}

/// Sends one message per event, logging in with `UNITSYNC_SMTP_USERNAME` and
/// `UNITSYNC_SMTP_PASSWORD` when they are set; adds a `sent` entry or a warning per event to
/// `report`.
pub async fn send(settings: &EmailNotifications, events: &[Event], report: &mut Report) {
    match credentials() {
        Ok(credentials) => send_with(settings, credentials, events, report).await,
        Err(problem) => report.warnings.push(format!(
            "e-mail to {} via {}: {problem}",
            settings.to.join(", "),
            settings.smtp.host
        )),
    }
}

/// [`send`] with the credentials given instead of read from the environment.
pub async fn send_with(
    settings: &EmailNotifications,
    credentials: Option<Credentials>,
    events: &[Event],
    report: &mut Report,
) {
    let to = settings.to.join(", ");
    let redactor = login_redactor(credentials.as_ref());
    let transport = match transport(settings, credentials) {
        Ok(t) => t,
        Err(problem) => {
            report.warnings.push(format!(
                "e-mail to {to} via {}: {problem}",
                settings.smtp.host
            ));
            return;
        }
    };
    for event in events {
        let kind = event.kind.verb();
        let outcome = match message(settings, event) {
            Ok(message) => transport
                .send(message)
                .await
                .map(|_| ())
                // The server's reply is quoted: it may echo the AUTH exchange.
                .map_err(|e| redactor.redact(&describe(&e))),
            Err(problem) => Err(problem),
        };
        match outcome {
            Ok(()) => report.sent.push(format!("e-mail to {to} ({kind})")),
            Err(problem) => report.warnings.push(format!(
                "e-mail to {to} ({kind}) via {}:{}: {problem}",
                settings.smtp.host,
                port(settings)
            )),
        }
    }
}

fn port(settings: &EmailNotifications) -> u16 {
    settings.smtp.port.unwrap_or(match settings.smtp.security {
        SmtpSecurity::Starttls => 587,
        SmtpSecurity::Tls => 465,
        SmtpSecurity::None => 25,
    })
}

fn message(settings: &EmailNotifications, event: &Event) -> Result<Message, String> {
    let from = settings
        .from
        .clone()
        .unwrap_or_else(|| format!("unitsync@{}", settings.smtp.host));
    let from: Mailbox = from
        .parse()
        .map_err(|e| format!("from address {from:?} is not valid ({e})"))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(event.title())
        .message_id(None)
        .date(crate::clock::now_system_time());
    for to in &settings.to {
        let mailbox: Mailbox = to
            .parse()
            .map_err(|e| format!("recipient {to:?} is not valid ({e})"))?;
        builder = builder.to(mailbox);
    }
    builder
        .header(ContentType::TEXT_PLAIN)
        .body(body(event))
        .map_err(|e| format!("cannot build the message: {e}"))
}

fn credentials() -> Result<Option<Credentials>, String> {
    let get = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .map(SecretString::from)
    };
    match (get(USERNAME_ENV), get(PASSWORD_ENV)) {
        (None, None) => Ok(None),
        (Some(user), Some(password)) => Ok(Some(Credentials::new(
            user.expose_secret().to_string(),
            password.expose_secret().to_string(),
        ))),
        (Some(_), None) => Err(format!("{USERNAME_ENV} is set but {PASSWORD_ENV} is not")),
        (None, Some(_)) => Err(format!("{PASSWORD_ENV} is set but {USERNAME_ENV} is not")),
    }
}

/// Removes the login from a server's reply: the user name, the password and the PLAIN
/// response, as they are and (by the redactor) in base64, which is how `AUTH` sends them.
fn login_redactor(credentials: Option<&Credentials>) -> Redactor {
    use lettre::transport::smtp::authentication::Mechanism;
    let mut secrets = Vec::new();
    if let Some(credentials) = credentials {
        for (mechanism, challenge) in [
            (Mechanism::Plain, None),
            (Mechanism::Login, Some("User Name")),
            (Mechanism::Login, Some("Password")),
        ] {
            if let Ok(value) = mechanism.response(credentials, challenge) {
                secrets.push(SecretString::from(value));
            }
        }
    }
    Redactor::new(secrets)
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn transport(
    settings: &EmailNotifications,
    credentials: Option<Credentials>,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let host = settings.smtp.host.trim();
    let tls = |host: &str| {
        TlsParameters::new(host.to_string())
            .map_err(|e| format!("cannot set up TLS for {host}: {}", describe(&e)))
    };
    let security = match settings.smtp.security {
        SmtpSecurity::Starttls => Tls::Required(tls(host)?),
        SmtpSecurity::Tls => Tls::Wrapper(tls(host)?),
        SmtpSecurity::None => {
            if credentials.is_some() && !is_loopback(host) {
                return Err(format!(
                    "security: none sends {USERNAME_ENV}/{PASSWORD_ENV} unencrypted, so it is only allowed to a \
                     local relay (localhost, 127.0.0.1, ::1); use starttls or tls for {host}"
                ));
            }
            Tls::None
        }
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port(settings))
        .tls(security)
        .timeout(Some(TIMEOUT));
    if let Some(credentials) = credentials {
        builder = builder.credentials(credentials);
    }
    Ok(builder.build())
}

/// The error and its causes on one line (lettre's Display alone is terse). lettre's errors carry
/// no credentials: AUTH data is never echoed in them.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
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
