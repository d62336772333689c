//! Notifications: what a run did, told by e-mail (SMTP) and webhooks (JSON, Slack, Teams).
//!
//! A run sends at most one message per event kind to each channel: an apply that set some lines
//! and failed others sends one [`EventKind::Applied`] and one [`EventKind::Failed`] message.
//! Notifying is best effort: a failure is logged as a warning and returned in the [`Report`],
//! never turned into an error, and never undoes what the run did.

pub mod email;
pub mod webhook;

use serde::Serialize;

use crate::config::{Lock, Notifications};
use crate::history::{HistoryLine, LineOutcome};
use crate::plan::{Action, Plan};
use crate::quantity::Quantity;
use crate::render::terminal_text;

/// The version of the `json` webhook payload; bumped when a field changes meaning or goes away.
pub const FORMAT_VERSION: u32 = 1;

/// What kind of outcome an [`Event`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// `propose` opened or updated the pull request.
    Proposed,
    /// `apply` set these lines in the PSA.
    Applied,
    /// `apply` could not set these lines (refused, unreachable, or stale).
    Failed,
    /// The PSA was changed by hand since unitsync last wrote these lines; they were left alone.
    Drift,
    /// A guardrail held these changes back for a person to confirm.
    Held,
}

impl EventKind {
    fn verb(self) -> &'static str {
        match self {
            EventKind::Proposed => "proposed",
            EventKind::Applied => "applied",
            EventKind::Failed => "failed",
            EventKind::Drift => "drifted",
            EventKind::Held => "held",
        }
    }
}

/// One line of an event: which vendor account and PSA line, and its counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub mapping: String,
    pub account: String,
    pub license_type: String,
    pub company: String,
    pub product: String,
    /// The count before (for drift: what unitsync last wrote); absent for a new lock entry.
    pub from: Option<Quantity>,
    /// The count after (for drift: what the PSA holds now).
    pub to: Quantity,
    /// Why the line failed or was left alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The first day the change bills (proposed and applied changes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective: Option<jiff::civil::Date>,
    /// What the change moves the monthly revenue by, as shown (`+$12.50`), where the price is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly_change: Option<String>,
}

/// The effective date and the monthly revenue text of `mapping`'s change in `plan`.
fn billing_of(plan: &Plan, mapping: &str) -> (Option<jiff::civil::Date>, Option<String>) {
    plan.lines
        .iter()
        .find(|l| l.mapping == mapping)
        .map_or((None, None), |line| {
            (
                line.effective.as_ref().map(|e| e.date),
                line.monthly_change().map(|m| m.signed_text(&plan.currency)),
            )
        })
}

/// Something a run did that people want to hear about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub kind: EventKind,
    /// `ConnectWise PSA` or `Autotask PSA`.
    pub psa: String,
    /// The pull request (proposed, or the one whose merge was applied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The plan's one-line summary (proposed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub changes: Vec<Change>,
}

impl Event {
    /// `unitsync: 2 changes applied to ConnectWise PSA`.
    pub fn title(&self) -> String {
        let n = self.changes.len();
        let (noun, plural) = match self.kind {
            EventKind::Drift => ("line", if n == 1 { "" } else { "s" }),
            _ => ("change", if n == 1 { "" } else { "s" }),
        };
        let what = format!("{n} {noun}{plural} {}", self.kind.verb());
        match self.kind {
            EventKind::Proposed => match self.pull_request {
                Some(number) => format!("unitsync: {what} for {} in #{number}", self.psa),
                None => format!("unitsync: {what} for {}", self.psa),
            },
            EventKind::Applied => format!("unitsync: {what} to {}", self.psa),
            EventKind::Failed => format!("unitsync: {what} on {}", self.psa),
            EventKind::Drift => format!("unitsync: {what} in {}", self.psa),
            EventKind::Held => format!("unitsync: {what} back for {}", self.psa),
        }
    }

    /// A `Proposed` event for the pull request `pull_request` that asks to approve `plan`'s
    /// proposals as written into `proposed` (proposals held back from it are left out); `None`
    /// when nothing is proposed.
    pub fn proposed(
        psa: &str,
        plan: &Plan,
        proposed: &Lock,
        pull_request: Option<u64>,
        url: Option<String>,
    ) -> Option<Event> {
        let changes: Vec<Change> = plan
            .lines
            .iter()
            .filter_map(|line| match line.action {
                Action::Propose { from, to } if proposed.units.get(&line.mapping) == Some(&to) => {
                    let (effective, monthly_change) = billing_of(plan, &line.mapping);
                    Some(Change {
                        mapping: line.mapping.clone(),
                        account: line.account.clone(),
                        license_type: line.license_type.clone(),
                        company: line.target.company.clone(),
                        product: line.target.product.clone(),
                        from,
                        to,
                        reason: None,
                        effective,
                        monthly_change,
                    })
                }
                _ => None,
            })
            .collect();
        (!changes.is_empty()).then(|| Event {
            kind: EventKind::Proposed,
            psa: psa.to_string(),
            pull_request,
            url,
            summary: Some(plan.summary().to_string()),
            changes,
        })
    }

    /// A `Held` event for the changes of `plan` a guardrail held back, each with its reason and
    /// how to release it; `None` when nothing was held. Sent on every run that holds something,
    /// even when nothing else happened: an emptied source holds every change, and that run
    /// changes no pull request — this is how anyone hears about it.
    pub fn held(psa: &str, plan: &Plan, pull_request: Option<u64>) -> Option<Event> {
        let changes: Vec<Change> = plan
            .lines
            .iter()
            .filter_map(|line| match &line.action {
                Action::Hold { from, to, reason } => Some(Change {
                    mapping: line.mapping.clone(),
                    account: line.account.clone(),
                    license_type: line.license_type.clone(),
                    company: line.target.company.clone(),
                    product: line.target.product.clone(),
                    from: Some(*from),
                    to: *to,
                    reason: Some(reason.to_string()),
                    effective: None,
                    monthly_change: None,
                }),
                _ => None,
            })
            .collect();
        (!changes.is_empty()).then(|| Event {
            kind: EventKind::Held,
            psa: psa.to_string(),
            pull_request,
            url: None,
            summary: Some(plan.summary().to_string()),
            changes,
        })
    }

    /// The events of an apply: one `Applied`, one `Failed` (failed and stale lines), one
    /// `Drift` (drifted lines of `plan` that were left alone) and one `Held` (changes a
    /// guardrail held back), each only when it has lines.
    pub fn applied(
        psa: &str,
        lines: &[HistoryLine],
        plan: &Plan,
        pull_request: Option<u64>,
    ) -> Vec<Event> {
        let from_history = |line: &HistoryLine| Change {
            mapping: line.mapping.clone(),
            account: line.account.clone(),
            license_type: line.license_type.clone(),
            company: line.company.clone(),
            product: line.product.clone(),
            from: Some(line.from),
            to: line.to,
            reason: line.reason.clone(),
            effective: None,
            monthly_change: None,
        };
        let applied = lines
            .iter()
            .filter(|l| l.outcome == LineOutcome::Applied)
            .map(|line| {
                let (effective, monthly_change) = billing_of(plan, &line.mapping);
                Change {
                    effective,
                    monthly_change,
                    ..from_history(line)
                }
            })
            .collect();
        let failed = lines
            .iter()
            .filter(|l| l.outcome != LineOutcome::Applied)
            .map(from_history)
            .collect();
        let drift = plan
            .lines
            .iter()
            .filter_map(|line| match line.action {
                Action::Drift { last_applied, psa } => Some(Change {
                    mapping: line.mapping.clone(),
                    account: line.account.clone(),
                    license_type: line.license_type.clone(),
                    company: line.target.company.clone(),
                    product: line.target.product.clone(),
                    from: Some(last_applied),
                    to: psa,
                    reason: Some(format!(
                        "the PSA holds {psa}, but unitsync last wrote {last_applied}; changed by hand"
                    )),
                    effective: None,
                    monthly_change: None,
                }),
                _ => None,
            })
            .collect();
        [
            (EventKind::Applied, applied),
            (EventKind::Failed, failed),
            (EventKind::Drift, drift),
        ]
        .into_iter()
        .filter(|(_, changes): &(EventKind, Vec<Change>)| !changes.is_empty())
        .map(|(kind, changes)| Event {
            kind,
            psa: psa.to_string(),
            pull_request,
            url: None,
            summary: None,
            changes,
        })
        .chain(Event::held(psa, plan, pull_request))
        .collect()
    }
}

impl Change {
    /// `Bob's Dentistry / ShadowProtect Desktop (BobsDentistry, SP-DESKTOP): 3 → 4`, plus the
    /// reason when there is one. Plain text on one line: control characters in vendor and PSA
    /// text are shown escaped (a line break in a name cannot forge another line of the e-mail);
    /// each channel escapes the rest for its own markup.
    pub fn line(&self) -> String {
        let from = self
            .from
            .map_or_else(|| "(none)".to_string(), |q| q.to_string());
        let mut text = format!(
            "{} / {} ({}, {}): {from} → {}",
            terminal_text(&self.account),
            terminal_text(&self.license_type),
            terminal_text(&self.company),
            terminal_text(&self.product),
            self.to
        );
        match (self.effective, &self.monthly_change) {
            (Some(date), Some(money)) => text.push_str(&format!(", from {date}, {money}/month")),
            (Some(date), None) => text.push_str(&format!(", from {date}")),
            (None, Some(money)) => text.push_str(&format!(", {money}/month")),
            (None, None) => {}
        }
        if let Some(reason) = &self.reason {
            text.push_str(" — ");
            text.push_str(&terminal_text(reason));
        }
        text
    }
}

/// What notifying did: one entry per message sent, one warning per message that was not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub sent: Vec<String>,
    pub warnings: Vec<String>,
}

impl Report {
    /// The report as command output: `notified: …` and `warning: notification not sent: …` lines.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for sent in &self.sent {
            out.push_str(&format!("notified: {sent}\n"));
        }
        for warning in &self.warnings {
            out.push_str(&format!("warning: notification not sent: {warning}\n"));
        }
        out
    }
}

/// Sends every event to every configured channel and reports what happened. Never fails:
/// problems become warnings (also logged), so a run that already changed the PSA still succeeds.
pub async fn send_all(notifications: Option<&Notifications>, events: &[Event]) -> Report {
    let mut report = Report::default();
    let Some(notifications) = notifications else {
        return report;
    };
    if events.is_empty() {
        return report;
    }
    if let Some(settings) = &notifications.email {
        email::send(settings, events, &mut report).await;
    }
    for hook in &notifications.webhooks {
        webhook::send(hook, events, &mut report).await;
    }
    for warning in &report.warnings {
        tracing::warn!("notification not sent: {warning}");
    }
    report
}

/// [`send_all`], then prints the report (nothing when no notifications are configured).
pub async fn send_and_print(notifications: Option<&Notifications>, events: &[Event]) -> Report {
    let report = send_all(notifications, events).await;
    let text = report.render();
    if !text.is_empty() {
        print!("\n{text}");
    }
    report
}
