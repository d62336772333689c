//! The dashboard of `unitsync status`: the portal's home page (integration info, mapping counts,
//! pending vs mapped, units per licence type, last sync statistics, alerts) as a terminal view,
//! Markdown (with Mermaid charts) and one self-contained static HTML page (inline CSS and SVG, no
//! scripts, no external assets).
//!
//! [`StatusReport::from_plan`] is pure; the renderers are pure functions of the report. Every
//! vendor- or PSA-supplied string is escaped for the output it lands in.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::{escape_markdown, is_bidi_control, terminal_text};
use crate::history::{HistoryRecord, LineOutcome};
use crate::plan::{Action, Plan};
use crate::quantity::Quantity;

/// Everything the dashboard shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    /// `ConnectWise` or `Autotask`.
    pub psa: String,
    /// The PSA site or URL.
    pub site: String,
    /// `manual` or `automatic`.
    pub approval: String,
    /// RFC 3339, from `history/last-refresh`.
    pub last_refresh: Option<String>,
    /// RFC 3339, from `history/last-sync` or else the newest history record.
    pub last_sync: Option<String>,
    pub counts: Counts,
    /// What the pending changes move the monthly revenue by (`+$16.31`), over the lines with
    /// a known price.
    pub pending_revenue: Option<String>,
    /// What the unmapped accounts with a known price would bill a month (`$37.50`).
    pub unbilled: Option<String>,
    /// Sorted by licence type.
    pub units: Vec<LicenceUnits>,
    /// From the newest history record, when there is one.
    pub last_run: Option<LastRun>,
    pub alerts: Vec<Alert>,
}

/// Mapping counts. `mapped` counts mappings that resolve to a PSA line (not in error);
/// `pending` (lines with an update or a proposal) is a part of `mapped`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub mapped: usize,
    pub unmapped: usize,
    pub pending: usize,
    pub error: usize,
    pub in_sync: usize,
    pub drift: usize,
}

/// Units of one licence type: what the vendor reports (mapped and unmapped accounts) and what
/// the mapped PSA lines hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LicenceUnits {
    pub license_type: String,
    pub vendor: Quantity,
    pub psa: Quantity,
}

/// Statistics of the newest apply.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastRun {
    pub run: String,
    pub approved_by: Option<String>,
    pub updated: usize,
    pub failed: usize,
    pub stale: usize,
    /// Lines in sync now (from the current plan).
    pub up_to_date: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub severity: Severity,
    pub text: String,
}

/// The integration facts that do not come from the plan.
#[derive(Debug, Clone, Default)]
pub struct Integration {
    pub psa: String,
    pub site: String,
    pub approval: String,
    pub last_refresh: Option<String>,
    pub last_sync: Option<String>,
}

impl StatusReport {
    /// Builds the report from the current plan and the newest history record.
    pub fn from_plan(
        integration: Integration,
        plan: &Plan,
        newest: Option<&HistoryRecord>,
    ) -> StatusReport {
        let mut counts = Counts {
            unmapped: plan.unmapped.len(),
            ..Counts::default()
        };
        let mut alerts = Vec::new();
        let mut units: BTreeMap<String, (Quantity, Quantity)> = BTreeMap::new();
        for line in &plan.lines {
            match &line.action {
                Action::Error { reason } => {
                    counts.error += 1;
                    alerts.push(Alert {
                        severity: Severity::Error,
                        text: format!(
                            "{} / {} ({}): {reason}",
                            line.account, line.license_type, line.mapping
                        ),
                    });
                }
                Action::Update { .. } | Action::Propose { .. } => {
                    counts.mapped += 1;
                    counts.pending += 1;
                }
                Action::InSync => {
                    counts.mapped += 1;
                    counts.in_sync += 1;
                }
                Action::Hold { from, to, reason } => {
                    counts.mapped += 1;
                    alerts.push(Alert {
                        severity: Severity::Warning,
                        text: format!(
                            "held on {} / {} ({}): {from} → {to}: {reason}",
                            line.account, line.license_type, line.mapping
                        ),
                    });
                }
                Action::Drift { last_applied, psa } => {
                    counts.mapped += 1;
                    counts.drift += 1;
                    alerts.push(Alert {
                        severity: Severity::Warning,
                        text: format!(
                            "drift on {} / {} ({}): the PSA holds {psa}, unitsync last wrote {last_applied}",
                            line.account, line.license_type, line.mapping
                        ),
                    });
                }
            }
            let entry = units.entry(line.license_type.clone()).or_default();
            if let Some(v) = line.vendor {
                entry.0 = entry.0.saturating_add(v);
            }
            if let Some(p) = line.psa {
                entry.1 = entry.1.saturating_add(p);
            }
        }
        for u in &plan.unmapped {
            let entry = units.entry(u.license_type.clone()).or_default();
            entry.0 = entry.0.saturating_add(u.units);
            alerts.push(Alert {
                severity: Severity::Warning,
                text: format!(
                    "unmapped: {} / {} ({} units not billed); see `unitsync accounts --suggest`",
                    u.account, u.license_type, u.units
                ),
            });
        }
        let last_run = newest.map(|r| {
            let count = |o: LineOutcome| r.lines.iter().filter(|l| l.outcome == o).count();
            for l in r.lines.iter().filter(|l| l.outcome == LineOutcome::Failed) {
                alerts.push(Alert {
                    severity: Severity::Error,
                    text: format!(
                        "the last sync failed on {} / {} ({}){}",
                        l.account,
                        l.license_type,
                        l.mapping,
                        l.reason
                            .as_deref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    ),
                });
            }
            LastRun {
                run: r.run.clone(),
                approved_by: r.approved_by.clone(),
                updated: count(LineOutcome::Applied),
                failed: count(LineOutcome::Failed),
                stale: count(LineOutcome::Stale),
                up_to_date: counts.in_sync,
            }
        });
        alerts.sort_by_key(|a| a.severity);
        let last_sync = integration
            .last_sync
            .or_else(|| newest.map(|r| r.run.clone()));
        let unbilled = plan
            .unmapped
            .iter()
            .filter_map(|u| u.monthly_value)
            .reduce(|a, b| a.checked_add(b).unwrap_or(a));
        StatusReport {
            pending_revenue: plan
                .summary()
                .monthly_change
                .map(|m| m.signed_text(&plan.currency)),
            unbilled: unbilled.map(|m| m.text(&plan.currency)),
            psa: integration.psa,
            site: integration.site,
            approval: integration.approval,
            last_refresh: integration.last_refresh,
            last_sync,
            counts,
            units: units
                .into_iter()
                .map(|(license_type, (vendor, psa))| LicenceUnits {
                    license_type,
                    vendor,
                    psa,
                })
                .collect(),
            last_run,
            alerts,
        }
    }

    /// The pie's slices: mapped without a pending change, pending, unmapped, error.
    pub fn slices(&self) -> [(&'static str, usize); 4] {
        let c = &self.counts;
        [
            ("Mapped, no change pending", c.mapped - c.pending),
            ("Pending", c.pending),
            ("Unmapped", c.unmapped),
            ("Error", c.error),
        ]
    }
}

fn or_never(t: &Option<String>) -> &str {
    t.as_deref().unwrap_or("never")
}

fn f64_of(q: Quantity) -> f64 {
    q.micros() as f64 / 1_000_000.0
}

/// The terminal view.
pub fn status_text(r: &StatusReport) -> String {
    let mut out = String::new();
    let c = &r.counts;
    let _ = writeln!(out, "Integration");
    let _ = writeln!(
        out,
        "  PSA           {} ({})",
        terminal_text(&r.psa),
        terminal_text(&r.site)
    );
    let _ = writeln!(out, "  Approval      {}", terminal_text(&r.approval));
    let _ = writeln!(out, "  Last refresh  {}", or_never(&r.last_refresh));
    let _ = writeln!(out, "  Last sync     {}", or_never(&r.last_sync));
    let _ = writeln!(out, "\nMappings");
    let _ = writeln!(out, "  Mapped    {}", c.mapped);
    let _ = writeln!(out, "  Pending   {} of {} mapped", c.pending, c.mapped);
    if let Some(revenue) = &r.pending_revenue {
        let _ = writeln!(out, "            {revenue}/month when applied");
    }
    let _ = writeln!(out, "  Unmapped  {}", c.unmapped);
    if let Some(unbilled) = &r.unbilled {
        let _ = writeln!(
            out,
            "            {unbilled}/month not billed (where the price is known)"
        );
    }
    let _ = writeln!(out, "  Error     {}", c.error);
    let _ = writeln!(out, "\nUnits per licence type");
    let width = r
        .units
        .iter()
        .map(|u| terminal_text(&u.license_type).chars().count())
        .chain(["Licence type".len()])
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "  {:<width$}  {:>10}  {:>10}",
        "Licence type", "Vendor", "PSA"
    );
    for u in &r.units {
        let name = terminal_text(&u.license_type);
        let pad = width.saturating_sub(name.chars().count());
        let _ = writeln!(
            out,
            "  {name}{}  {:>10}  {:>10}",
            " ".repeat(pad),
            u.vendor.to_string(),
            u.psa.to_string()
        );
    }
    let _ = writeln!(out, "\nLast sync statistics");
    match &r.last_run {
        Some(l) => {
            let _ = writeln!(
                out,
                "  {}{}: {} updated, {} failed, {} stale; {} up to date now",
                l.run,
                l.approved_by
                    .as_deref()
                    .map(|a| format!(" (approved by {})", terminal_text(a)))
                    .unwrap_or_default(),
                l.updated,
                l.failed,
                l.stale,
                l.up_to_date
            );
        }
        None => {
            let _ = writeln!(out, "  no sync yet; {} up to date now", c.in_sync);
        }
    }
    let _ = writeln!(out, "\nAlerts");
    if r.alerts.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for a in &r.alerts {
        let tag = match a.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "  {tag}: {}", terminal_text(&a.text));
    }
    out
}

/// A Mermaid label: quotes and anything outside plain text removed, so a name cannot end the
/// string or the diagram, nor hold a `%%{init: …}%%` directive (which Mermaid looks for anywhere).
fn mermaid_label(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' | '`' | '<' | '>' | '&' | '#' | ';' | '[' | ']' | '{' | '}' | '%' => ' ',
            c if c.is_control() || is_bidi_control(c) => ' ',
            c => c,
        })
        .collect()
}

/// Markdown for a job summary or a pull request: tables plus Mermaid charts.
pub fn status_markdown(r: &StatusReport) -> String {
    let mut out = String::new();
    let c = &r.counts;
    let _ = writeln!(out, "## unitsync status\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(
        out,
        "| PSA | {} ({}) |",
        escape_markdown(&r.psa),
        escape_markdown(&r.site)
    );
    let _ = writeln!(out, "| Approval | {} |", escape_markdown(&r.approval));
    let _ = writeln!(
        out,
        "| Last refresh | {} |",
        escape_markdown(or_never(&r.last_refresh))
    );
    let _ = writeln!(
        out,
        "| Last sync | {} |\n",
        escape_markdown(or_never(&r.last_sync))
    );
    let _ = writeln!(out, "### Mappings\n");
    let _ = writeln!(
        out,
        "| Mapped | Pending | Unmapped | Error |\n|---:|---:|---:|---:|"
    );
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} |\n",
        c.mapped, c.pending, c.unmapped, c.error
    );
    if let Some(revenue) = &r.pending_revenue {
        let _ = writeln!(out, "Pending changes move revenue by {revenue}/month.\n");
    }
    if let Some(unbilled) = &r.unbilled {
        let _ = writeln!(
            out,
            "Unmapped accounts with a known price would bill {unbilled}/month.\n"
        );
    }
    let _ = writeln!(out, "```mermaid\npie title Mappings");
    for (label, n) in r.slices() {
        let _ = writeln!(out, "    \"{label}\" : {n}");
    }
    let _ = writeln!(out, "```\n");
    let _ = writeln!(out, "### Units per licence type\n");
    let _ = writeln!(out, "| Licence type | Vendor | PSA |\n|---|---:|---:|");
    for u in &r.units {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            escape_markdown(&u.license_type),
            u.vendor,
            u.psa
        );
    }
    if !r.units.is_empty() {
        let labels = r
            .units
            .iter()
            .map(|u| format!("\"{}\"", mermaid_label(&u.license_type)))
            .collect::<Vec<_>>()
            .join(", ");
        let series = |f: fn(&LicenceUnits) -> Quantity| {
            r.units
                .iter()
                .map(|u| f(u).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "\n```mermaid\nxychart-beta\n    title \"Units per licence type (bars: vendor, line: PSA)\"\n    x-axis [{labels}]\n    y-axis \"Units\"\n    bar [{}]\n    line [{}]\n```",
            series(|u| u.vendor),
            series(|u| u.psa)
        );
    }
    let _ = writeln!(out, "\n### Last sync\n");
    match &r.last_run {
        Some(l) => {
            let _ = writeln!(
                out,
                "| Run | Updated | Failed | Stale | Up to date now |\n|---|---:|---:|---:|---:|\n| {} | {} | {} | {} | {} |",
                escape_markdown(&l.run),
                l.updated,
                l.failed,
                l.stale,
                l.up_to_date
            );
        }
        None => {
            let _ = writeln!(out, "No sync yet; {} up to date now.", c.in_sync);
        }
    }
    let _ = writeln!(out, "\n### Alerts\n");
    if r.alerts.is_empty() {
        let _ = writeln!(out, "None.");
    }
    for a in &r.alerts {
        let tag = match a.severity {
            Severity::Error => "**Error**",
            Severity::Warning => "Warning",
        };
        let _ = writeln!(out, "- {tag}: {}", escape_markdown(&a.text));
    }
    out
}

/// HTML text escaping (element content and double-quoted attributes).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push(' '),
            // Bidirectional overrides would reorder the page's text after them.
            c if is_bidi_control(c) => {}
            c => out.push(c),
        }
    }
    out
}

const COLORS: [&str; 4] = ["#2e7d32", "#f9a825", "#9e9e9e", "#c62828"];

/// The pie as SVG arcs (a full circle when one slice is everything).
fn pie_svg(slices: &[(&'static str, usize)]) -> String {
    let total: usize = slices.iter().map(|s| s.1).sum();
    let mut svg = String::from(
        r#"<svg class="pie" width="160" height="160" viewBox="-1 -1 2 2" role="img" aria-label="Mappings">"#,
    );
    if total == 0 {
        svg.push_str(r##"<circle r="1" fill="#eeeeee"/>"##);
    }
    let mut angle = 0.0_f64;
    for (i, (label, n)) in slices.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        let color = COLORS[i % COLORS.len()];
        if *n == total {
            let _ = write!(
                svg,
                r#"<circle r="1" fill="{color}"><title>{label}: {n}</title></circle>"#
            );
            continue;
        }
        let sweep = *n as f64 / total as f64 * std::f64::consts::TAU;
        let (x0, y0) = (angle.sin(), -angle.cos());
        angle += sweep;
        let (x1, y1) = (angle.sin(), -angle.cos());
        let large = if sweep > std::f64::consts::PI { 1 } else { 0 };
        let _ = write!(
            svg,
            r#"<path d="M0 0 L{x0:.4} {y0:.4} A1 1 0 {large} 1 {x1:.4} {y1:.4} Z" fill="{color}"><title>{label}: {n}</title></path>"#
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Grouped bars: vendor and PSA units per licence type.
fn bars_svg(units: &[LicenceUnits]) -> String {
    let max = units
        .iter()
        .flat_map(|u| [f64_of(u.vendor), f64_of(u.psa)])
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let group = 150.0;
    let (height, top, bottom) = (200.0, 20.0, 60.0);
    let width = 40.0 + group * units.len().max(1) as f64;
    let plot = height - top - bottom;
    let mut svg = format!(
        r#"<svg class="bars" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="Units per licence type">"#
    );
    let base = top + plot;
    let _ = write!(
        svg,
        r##"<line x1="30" y1="{base}" x2="{width}" y2="{base}" stroke="#555"/>"##
    );
    for (i, u) in units.iter().enumerate() {
        let x = 40.0 + group * i as f64;
        for (j, (q, color, what)) in [(u.vendor, "#1565c0", "vendor"), (u.psa, "#ef6c00", "PSA")]
            .into_iter()
            .enumerate()
        {
            let h = f64_of(q) / max * plot;
            let bx = x + j as f64 * 30.0;
            let _ = write!(
                svg,
                r#"<rect x="{bx:.1}" y="{:.1}" width="26" height="{h:.1}" fill="{color}"><title>{} {what}: {q}</title></rect>"#,
                base - h,
                escape_html(&u.license_type)
            );
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{q}</text>"#,
                bx + 13.0,
                base - h - 3.0
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#,
            x + 28.0,
            base + 14.0,
            escape_html(&u.license_type)
        );
    }
    svg.push_str("</svg>");
    svg
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222;background:#fafafa}\
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.5em}\
.cards{display:flex;gap:1em;flex-wrap:wrap}\
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8em 1.2em;min-width:8em}\
.card .n{font-size:2em;font-weight:bold}\
table{border-collapse:collapse;background:#fff}\
td,th{border:1px solid #ddd;padding:.3em .7em;text-align:left}\
td.num{text-align:right}\
.charts{display:flex;gap:2em;align-items:flex-start;flex-wrap:wrap}\
.legend span{display:inline-block;width:.8em;height:.8em;margin-right:.3em}\
li.error{color:#c62828}li.warning{color:#8d6e00}";

/// One self-contained HTML page: inline CSS, inline SVG, no scripts, no external assets.
pub fn status_html(r: &StatusReport) -> String {
    let c = &r.counts;
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    // No network at all: the page must not load anything, even if some text slipped through.
    out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">");
    let _ = write!(
        out,
        "<title>unitsync status</title><style>{CSS}</style></head><body>"
    );
    out.push_str("<h1>unitsync status</h1>");
    out.push_str("<h2>Integration</h2><table id=\"integration\">");
    for (k, v) in [
        ("PSA", format!("{} ({})", r.psa, r.site)),
        ("Approval", r.approval.clone()),
        ("Last refresh", or_never(&r.last_refresh).to_string()),
        ("Last sync", or_never(&r.last_sync).to_string()),
    ] {
        let _ = write!(out, "<tr><th>{k}</th><td>{}</td></tr>", escape_html(&v));
    }
    out.push_str("</table><h2>Mappings</h2><div class=\"cards\">");
    for (id, label, n) in [
        ("mapped", "Mapped", c.mapped),
        ("pending", "Pending", c.pending),
        ("unmapped", "Unmapped", c.unmapped),
        ("error", "Error", c.error),
    ] {
        let _ = write!(
            out,
            "<div class=\"card\" id=\"count-{id}\"><div class=\"n\">{n}</div>{label}</div>"
        );
    }
    let _ = write!(
        out,
        "</div><p id=\"pending-vs-mapped\">{} of {} mapped lines pending</p>",
        c.pending, c.mapped
    );
    if let Some(revenue) = &r.pending_revenue {
        let _ = write!(
            out,
            "<p id=\"pending-revenue\">Pending changes move revenue by {}/month</p>",
            escape_html(revenue)
        );
    }
    if let Some(unbilled) = &r.unbilled {
        let _ = write!(
            out,
            "<p id=\"unbilled\">Unmapped accounts with a known price would bill {}/month</p>",
            escape_html(unbilled)
        );
    }
    out.push_str("<div class=\"charts\"><div>");
    out.push_str(&pie_svg(&r.slices()));
    out.push_str("<div class=\"legend\">");
    for (i, (label, n)) in r.slices().iter().enumerate() {
        let _ = write!(
            out,
            "<div><span style=\"background:{}\"></span>{label}: {n}</div>",
            COLORS[i % COLORS.len()]
        );
    }
    out.push_str("</div></div><div>");
    out.push_str(&bars_svg(&r.units));
    out.push_str("<div class=\"legend\"><div><span style=\"background:#1565c0\"></span>vendor</div><div><span style=\"background:#ef6c00\"></span>PSA</div></div></div></div>");
    out.push_str("<h2>Units per licence type</h2><table id=\"units\"><tr><th>Licence type</th><th>Vendor</th><th>PSA</th></tr>");
    for u in &r.units {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape_html(&u.license_type),
            u.vendor,
            u.psa
        );
    }
    out.push_str("</table><h2>Last sync</h2>");
    match &r.last_run {
        Some(l) => {
            let _ = write!(
                out,
                "<table id=\"last-sync\"><tr><th>Run</th><th>Approved by</th><th>Updated</th><th>Failed</th><th>Stale</th><th>Up to date now</th></tr><tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr></table>",
                escape_html(&l.run),
                escape_html(l.approved_by.as_deref().unwrap_or("-")),
                l.updated,
                l.failed,
                l.stale,
                l.up_to_date
            );
        }
        None => {
            let _ = write!(
                out,
                "<p id=\"last-sync\">No sync yet; {} up to date now.</p>",
                c.in_sync
            );
        }
    }
    out.push_str("<h2>Alerts</h2><ul id=\"alerts\">");
    if r.alerts.is_empty() {
        out.push_str("<li>None.</li>");
    }
    for a in &r.alerts {
        let (class, tag) = match a.severity {
            Severity::Error => ("error", "Error"),
            Severity::Warning => ("warning", "Warning"),
        };
        let _ = write!(
            out,
            "<li class=\"{class}\">{tag}: {}</li>",
            escape_html(&a.text)
        );
    }
    out.push_str("</ul></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{DesiredFrom, UnitKind, UnmappedUsage};

    fn report(account: &str) -> StatusReport {
        let plan = Plan {
            currency: "USD".into(),
            desired: DesiredFrom::Vendor,
            lines: Vec::new(),
            unmapped: vec![UnmappedUsage {
                monthly_value: None,
                account: account.into(),
                license_type: "Desk | \"top\"".into(),
                units: Quantity::from_units(3),
                kind: UnitKind::Count,
            }],
        };
        StatusReport::from_plan(
            Integration {
                psa: "ConnectWise".into(),
                site: "x".into(),
                approval: "manual".into(),
                ..Integration::default()
            },
            &plan,
            None,
        )
    }

    #[test]
    fn a_held_line_is_a_warning_with_its_reason() {
        let mut plan = Plan {
            currency: "USD".into(),
            desired: DesiredFrom::Vendor,
            lines: Vec::new(),
            unmapped: Vec::new(),
        };
        plan.lines.push(crate::plan::PlanLine {
            reprice: None,
            effective: None,
            money: None,
            mapping: "bobs-dentistry/shadowprotect-desktop".into(),
            account: "Bob's Dentistry".into(),
            license_type: "ShadowProtect Desktop".into(),
            target: crate::plan::ResolvedTarget::default(),
            vendor: Some(Quantity::ZERO),
            approved: None,
            psa: Some(Quantity::from_units(5)),
            last_applied: None,
            update: crate::config::UpdatePolicy::InPlace,
            action: Action::Hold {
                from: Quantity::from_units(5),
                to: Quantity::ZERO,
                reason: crate::plan::HoldReason::ToZero,
            },
        });
        let r = StatusReport::from_plan(Integration::default(), &plan, None);
        assert_eq!(r.counts.mapped, 1);
        assert_eq!(r.counts.pending, 0);
        assert_eq!(r.alerts.len(), 1);
        assert_eq!(r.alerts[0].severity, Severity::Warning);
        assert_eq!(
            r.alerts[0].text,
            format!(
                "held on Bob's Dentistry / ShadowProtect Desktop (bobs-dentistry/shadowprotect-desktop): 5 → 0: {}",
                crate::plan::HoldReason::ToZero
            )
        );
    }

    #[test]
    fn hostile_names_are_escaped_everywhere() {
        let r = report("Evil <img src=x onerror=alert(1)> [x](http://e)");
        let html = status_html(&r);
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("Evil &lt;img src=x onerror=alert(1)&gt;"));
        assert!(!html.contains("<script"));
        let md = status_markdown(&r);
        assert!(!md.contains("<img"), "{md}");
        assert!(md.contains("\\[x\\](http\\://e)"), "{md}");
        assert!(md.contains("x-axis [\"Desk |  top \"]"), "{md}");
        assert_eq!(r.counts.unmapped, 1);
        assert_eq!(r.units[0].vendor, Quantity::from_units(3));
    }

    #[test]
    fn a_single_slice_is_a_full_circle() {
        let svg = pie_svg(&[("a", 0), ("b", 2)]);
        assert!(svg.contains("<circle r=\"1\" fill=\"#f9a825\">"), "{svg}");
        let svg = pie_svg(&[("a", 1), ("b", 1)]);
        assert_eq!(svg.matches("<path").count(), 2);
    }
}
