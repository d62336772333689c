//! The plan as GitHub-flavoured Markdown, for a pull-request body or a job summary.
//!
//! Vendor- and PSA-supplied text (account names, licence types, company, agreement and product
//! labels, error reasons) is escaped, so a name cannot inject links, HTML, mentions or break a
//! table. The result fits `max_len` characters (GitHub's comment limit by default): detail is
//! dropped progressively, never mid-table, and the summary line always stays.

use super::{
    effective_cell, has_dates, has_next_invoice_dates, has_prices, money_cell, moved_dates, plural,
    qty_or_dash, reprice_text, signed_delta,
};
use crate::config::UpdatePolicy;
use crate::plan::{Action, Plan, PlanLine};

/// GitHub's limit for a pull-request body or comment, in characters.
pub const GITHUB_COMMENT_LIMIT: usize = 65_536;

/// Unmapped accounts beyond this many are listed inside a collapsed `<details>`.
const UNMAPPED_OPEN_LIMIT: usize = 10;

const SEE_JOB_OUTPUT: &str = "see the full plan in the job output";

/// How [`markdown`] renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkdownOptions {
    /// A unified diff of `units.lock.yaml` (from [`lock_diff`](super::lock_diff)), shown in a
    /// collapsed ```` ```diff ```` block. Empty or `None`: no diff section.
    pub lock_diff: Option<String>,
    /// Most characters the output may have.
    pub max_len: usize,
}

impl Default for MarkdownOptions {
    fn default() -> Self {
        MarkdownOptions {
            lock_diff: None,
            max_len: GITHUB_COMMENT_LIMIT,
        }
    }
}

/// Escapes text for a Markdown paragraph or table cell so it renders literally: no emphasis,
/// links, autolinks, HTML, @-mentions, #-references, and no `|` breaking out of a table cell.
/// Line breaks and other control characters become spaces; bidirectional overrides are dropped.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut previous: Vec<char> = Vec::with_capacity(3);
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            // Backslash escapes: emphasis, code, links, tables, strikethrough; `:` breaks
            // `http://` autolinks.
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' | ':' | '!' | '$' => {
                out.push('\\');
                out.push(c);
            }
            // `www.` autolinks.
            '.' if previous.len() == 3 && previous.iter().all(|p| p.eq_ignore_ascii_case(&'w')) => {
                out.push_str("\\.");
            }
            // A word joiner stops GitHub from turning `@name` into a mention (which notifies
            // that user) and `#123` into an issue reference; it is invisible when rendered.
            '@' | '#' => {
                out.push(c);
                out.push('\u{2060}');
            }
            c if super::is_bidi_control(c) => {}
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
        if previous.len() == 3 {
            previous.remove(0);
        }
        previous.push(c);
    }
    out
}

/// A mapping id as inline code when that is safe, else as escaped text.
fn mapping_cell(id: &str) -> String {
    let safe = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'));
    if safe {
        format!("`{id}`")
    } else {
        escape_markdown(id)
    }
}

fn vendor_cell(line: &PlanLine) -> String {
    format!(
        "{} · {}",
        escape_markdown(&line.account),
        escape_markdown(&line.license_type)
    )
}

fn psa_cell(line: &PlanLine) -> String {
    let t = &line.target;
    [&t.company, &t.contract, &t.product]
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| escape_markdown(s))
        .collect::<Vec<_>>()
        .join(" › ")
}

/// What to include; [`markdown`] drops detail from the bottom of this list upwards until the
/// output fits.
#[derive(Debug, Clone, Copy)]
struct Detail {
    in_sync: bool,
    unmapped: bool,
    diff: bool,
    /// Most rows per table of changes, errors and drift.
    rows: Option<usize>,
}

struct Parts<'a> {
    plan: &'a Plan,
    summary: String,
    changes: Vec<&'a PlanLine>,
    errors: Vec<&'a PlanLine>,
    drift: Vec<&'a PlanLine>,
    held: Vec<&'a PlanLine>,
    in_sync: Vec<&'a PlanLine>,
    diff: Option<&'a str>,
}

/// Renders `plan` as Markdown no longer than `opts.max_len` characters.
///
/// When the full rendering is too long, detail is dropped in this order, each step noted in the
/// output: the in-sync list, the unmapped list, the lock diff, then rows of the change, error and
/// drift tables (whole rows, with a note of how many are left out). The heading and summary line
/// are always kept (unless `max_len` is smaller than they are).
pub fn markdown(plan: &Plan, opts: &MarkdownOptions) -> String {
    let by = |f: fn(&Action) -> bool| plan.lines.iter().filter(|l| f(&l.action)).collect();
    let parts = Parts {
        plan,
        summary: plan.summary().to_string(),
        changes: by(|a| matches!(a, Action::Update { .. } | Action::Propose { .. })),
        errors: by(|a| matches!(a, Action::Error { .. })),
        drift: by(|a| matches!(a, Action::Drift { .. })),
        held: by(|a| matches!(a, Action::Hold { .. })),
        in_sync: by(|a| matches!(a, Action::InSync)),
        diff: opts.lock_diff.as_deref().filter(|d| !d.trim().is_empty()),
    };
    let fits = |text: &str| text.chars().count() <= opts.max_len;

    let mut detail = Detail {
        in_sync: true,
        unmapped: true,
        diff: true,
        rows: None,
    };
    let steps: [fn(&mut Detail); 3] = [
        |d| d.in_sync = false,
        |d| d.unmapped = false,
        |d| d.diff = false,
    ];
    let text = render(&parts, detail);
    if fits(&text) {
        return text;
    }
    for step in steps {
        step(&mut detail);
        let text = render(&parts, detail);
        if fits(&text) {
            return text;
        }
    }

    // Largest row cap that fits, by bisection (the length grows with the cap).
    let most = parts
        .changes
        .len()
        .max(parts.errors.len())
        .max(parts.drift.len())
        .max(parts.held.len());
    let (mut lo, mut hi) = (0, most);
    let with_rows = |rows| {
        render(
            &parts,
            Detail {
                rows: Some(rows),
                ..detail
            },
        )
    };
    if !fits(&with_rows(0)) {
        return cut(&with_rows(0), opts.max_len);
    }
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if fits(&with_rows(mid)) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    with_rows(lo)
}

/// Last resort for a tiny `max_len`: whole lines up to the limit, then a note when it fits. The
/// heading and summary (the first three lines) take precedence over the note.
fn cut(text: &str, max_len: usize) -> String {
    let note = format!("\n… cut to fit; {SEE_JOB_OUTPUT}.\n");
    let whole_lines = |budget: usize| {
        let mut out = String::new();
        let (mut used, mut count) = (0, 0);
        for line in text.split_inclusive('\n') {
            let n = line.chars().count();
            if used + n > budget {
                break;
            }
            out.push_str(line);
            used += n;
            count += 1;
        }
        (out, count)
    };
    let (mut out, count) = whole_lines(max_len.saturating_sub(note.chars().count()));
    if count >= 3 && out.chars().count() + note.chars().count() <= max_len {
        out.push_str(&note);
        out
    } else {
        whole_lines(max_len).0
    }
}

fn render(p: &Parts<'_>, d: Detail) -> String {
    let mut out = String::new();
    out.push_str("## unitsync plan\n\n");
    // Our own text, with nothing Markdown would interpret; left verbatim so it can be searched.
    out.push_str(&format!("**{}**\n", p.summary));

    if !p.changes.is_empty() {
        out.push_str(&format!("\n### Changes ({})\n\n", p.changes.len()));
        let (dates, prices) = (has_dates(p.plan), has_prices(p.plan));
        let mut header =
            "| Mapping | Vendor account | PSA line | Action | From | To | Change |".to_string();
        let mut rule = "|---|---|---|---|--:|--:|--:|".to_string();
        if dates {
            header.push_str(" Effective |");
            rule.push_str("---|");
        }
        if prices {
            header.push_str(" Revenue / month |");
            rule.push_str("--:|");
        }
        out.push_str(&format!("{header}\n{rule}\n"));
        table_rows(&mut out, &p.changes, d.rows, |line| {
            let (action, from, to) = match &line.action {
                Action::Update { from, to } => ("update", Some(*from), *to),
                Action::Propose { from, to } => ("propose", *from, *to),
                _ => unreachable!("only changes are in this table"),
            };
            let action = match (action, line.update) {
                ("update", UpdatePolicy::CancelAndReadd) => "update (cancel and re-add)",
                (action, _) => action,
            };
            let action = match reprice_text(line, &p.plan.currency) {
                Some(prices) => format!("{action}, {}", escape_markdown(&prices)),
                None => action.to_string(),
            };
            let change = from.map_or_else(|| "new".to_string(), |from| signed_delta(from, to));
            let mut row = format!(
                "| {} | {} | {} | {action} | {} | {to} | {change} |",
                mapping_cell(&line.mapping),
                vendor_cell(line),
                psa_cell(line),
                qty_or_dash(from),
            );
            if dates {
                row.push_str(&format!(" {} |", effective_cell(line)));
            }
            if prices {
                row.push_str(&format!(" {} |", money_cell(line, &p.plan.currency)));
            }
            row
        });
        let moved = moved_dates(p.plan);
        if !moved.is_empty() {
            out.push_str("\n**Dates moved for invoices:**\n\n");
            for (mapping, why) in &moved {
                out.push_str(&format!(
                    "- {}: {}\n",
                    mapping_cell(mapping),
                    escape_markdown(why)
                ));
            }
        }
        if has_next_invoice_dates(p.plan) {
            out.push_str(
                "\n_In place: the edit carries no date, and the PSA bills it from the next invoice — the effective date shown._\n",
            );
        }
        if p.changes.iter().any(|l| {
            l.update == UpdatePolicy::CancelAndReadd && matches!(l.action, Action::Update { .. })
        }) {
            out.push_str(
                "\n_Cancel and re-add: the old addition is cancelled as of the day before the effective date (the last day of the previous period) and a copy with the new quantity starts on the effective date, so the two never bill the same day._\n",
            );
        }
    }

    if !p.errors.is_empty() {
        out.push_str(&format!("\n### Errors ({})\n\n", p.errors.len()));
        out.push_str(
            "These lines cannot be planned; the PSA is left as it is until they are fixed.\n\n",
        );
        out.push_str("| Mapping | Vendor account | PSA line | Reason |\n");
        out.push_str("|---|---|---|---|\n");
        table_rows(&mut out, &p.errors, d.rows, |line| {
            let reason = match &line.action {
                Action::Error { reason } => reason.to_string(),
                _ => String::new(),
            };
            format!(
                "| {} | {} | {} | {} |",
                mapping_cell(&line.mapping),
                vendor_cell(line),
                psa_cell(line),
                escape_markdown(&reason)
            )
        });
    }

    if !p.held.is_empty() {
        out.push_str(&format!("\n### Held back ({})\n\n", p.held.len()));
        out.push_str(
            "A guardrail stopped these changes; the approved count stays until the hold is \
             released as its reason says.\n\n",
        );
        out.push_str("| Mapping | Vendor account | PSA line | From | To | Reason and release |\n");
        out.push_str("|---|---|---|--:|--:|---|\n");
        table_rows(&mut out, &p.held, d.rows, |line| {
            let (from, to, reason) = match &line.action {
                Action::Hold { from, to, reason } => {
                    (from.to_string(), to.to_string(), reason.to_string())
                }
                _ => (String::new(), String::new(), String::new()),
            };
            format!(
                "| {} | {} | {} | {from} | {to} | {} |",
                mapping_cell(&line.mapping),
                vendor_cell(line),
                psa_cell(line),
                escape_markdown(&reason)
            )
        });
    }

    if !p.drift.is_empty() {
        out.push_str(&format!("\n### Drift ({})\n\n", p.drift.len()));
        out.push_str(
            "The PSA was changed outside unitsync since unitsync last wrote these lines. They are \
             left alone until someone decides which count is right.\n\n",
        );
        out.push_str("| Mapping | Vendor account | PSA line | Last applied | PSA now | Vendor |\n");
        out.push_str("|---|---|---|--:|--:|--:|\n");
        table_rows(&mut out, &p.drift, d.rows, |line| {
            let (last, psa) = match &line.action {
                Action::Drift { last_applied, psa } => (last_applied.to_string(), psa.to_string()),
                _ => (String::new(), String::new()),
            };
            format!(
                "| {} | {} | {} | {last} | {psa} | {} |",
                mapping_cell(&line.mapping),
                vendor_cell(line),
                psa_cell(line),
                qty_or_dash(line.vendor)
            )
        });
    }

    if !p.in_sync.is_empty() {
        let title = plural(p.in_sync.len(), "line in sync", "lines in sync");
        if d.in_sync {
            out.push_str(&format!("\n<details><summary>{title}</summary>\n\n"));
            out.push_str("| Mapping | Vendor account | PSA line | Units |\n");
            out.push_str("|---|---|---|--:|\n");
            table_rows(&mut out, &p.in_sync, None, |line| {
                format!(
                    "| {} | {} | {} | {} |",
                    mapping_cell(&line.mapping),
                    vendor_cell(line),
                    psa_cell(line),
                    qty_or_dash(line.psa)
                )
            });
            out.push_str("\n</details>\n");
        } else {
            out.push_str(&format!(
                "\n{title}; the list is left out to fit the size limit ({SEE_JOB_OUTPUT}).\n"
            ));
        }
    }

    let unmapped = &p.plan.unmapped;
    if !unmapped.is_empty() {
        out.push_str(&format!(
            "\n### Unmapped vendor accounts ({})\n\n",
            unmapped.len()
        ));
        if d.unmapped {
            out.push_str("Not billed until a mapping covers them.\n\n");
            let collapsed = unmapped.len() > UNMAPPED_OPEN_LIMIT;
            if collapsed {
                out.push_str(&format!(
                    "<details><summary>Show {}</summary>\n\n",
                    plural(unmapped.len(), "account", "accounts")
                ));
            }
            let valued = unmapped.iter().any(|u| u.monthly_value.is_some());
            if valued {
                out.push_str("| Account | Licence type | Units | Unbilled / month |\n");
                out.push_str("|---|---|--:|--:|\n");
            } else {
                out.push_str("| Account | Licence type | Units |\n");
                out.push_str("|---|---|--:|\n");
            }
            for u in unmapped {
                let value = match (valued, u.monthly_value) {
                    (false, _) => String::new(),
                    (true, None) => " - |".to_string(),
                    (true, Some(v)) => format!(" {} |", v.text(&p.plan.currency)),
                };
                out.push_str(&format!(
                    "| {} | {} | {} |{value}\n",
                    escape_markdown(&u.account),
                    escape_markdown(&u.license_type),
                    u.units
                ));
            }
            if collapsed {
                out.push_str("\n</details>\n");
            }
        } else {
            out.push_str(&format!(
                "Not billed until a mapping covers them. The list is left out to fit the size \
                 limit ({SEE_JOB_OUTPUT}).\n"
            ));
        }
    }

    if let Some(diff) = p.diff {
        if d.diff {
            let fence = "`".repeat(longest_backtick_run(diff).max(2) + 1);
            out.push_str("\n<details><summary>Lock file diff</summary>\n\n");
            out.push_str(&format!("{fence}diff\n{diff}"));
            if !diff.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&format!("{fence}\n\n</details>\n"));
        } else {
            out.push_str(
                "\nThe lock file diff is left out to fit the size limit; the pull request's \
                 changed files show it.\n",
            );
        }
    }
    out
}

/// Appends one row per line, at most `cap`, then a note of how many were left out.
fn table_rows(
    out: &mut String,
    lines: &[&PlanLine],
    cap: Option<usize>,
    row: impl Fn(&PlanLine) -> String,
) {
    let shown = cap.map_or(lines.len(), |cap| cap.min(lines.len()));
    for line in &lines[..shown] {
        out.push_str(&row(line));
        out.push('\n');
    }
    if shown < lines.len() {
        out.push_str(&format!(
            "\n… {} more {}; {SEE_JOB_OUTPUT}.\n",
            lines.len() - shown,
            if lines.len() - shown == 1 {
                "line"
            } else {
                "lines"
            }
        ));
    }
}

fn longest_backtick_run(text: &str) -> usize {
    let (mut longest, mut run) = (0, 0);
    for c in text.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_injection_attempts() {
        assert_eq!(
            escape_markdown("Evil | <img src=x> [x](http://e)"),
            "Evil \\| &lt;img src=x&gt; \\[x\\](http\\://e)"
        );
        assert_eq!(escape_markdown("a\nb\r\tc"), "a b  c");
        assert_eq!(
            escape_markdown("**b** _i_ `c` ~s~"),
            "\\*\\*b\\*\\* \\_i\\_ \\`c\\` \\~s\\~"
        );
        assert_eq!(escape_markdown("see www.evil.com"), "see www\\.evil.com");
        assert_eq!(
            escape_markdown("@octocat #1"),
            "@\u{2060}octocat #\u{2060}1"
        );
        assert_eq!(
            escape_markdown("Bob's Dentistry (GB)"),
            "Bob's Dentistry (GB)"
        );
        assert_eq!(escape_markdown("a\u{202E}b"), "ab");
    }

    #[test]
    fn mapping_ids_are_code_only_when_safe() {
        assert_eq!(
            mapping_cell("bobs-dentistry/sp.x_y"),
            "`bobs-dentistry/sp.x_y`"
        );
        assert_eq!(mapping_cell("a`b|c"), "a\\`b\\|c");
    }

    #[test]
    fn fences_outgrow_backticks_in_the_diff() {
        assert_eq!(longest_backtick_run("a ``` b ` c"), 3);
    }

    #[test]
    fn cut_keeps_whole_lines() {
        let text = "## unitsync plan\n\n**Plan**\nmore text here\n";
        let out = cut(text, 90);
        assert!(out.chars().count() <= 90, "{out}");
        assert!(!out.contains("more text"), "{out}");
        assert!(out.starts_with("## unitsync plan\n"));
        assert!(out.contains("cut to fit"));
        // Too little room for the note: the summary wins.
        assert_eq!(cut(text, 30), "## unitsync plan\n\n**Plan**\n");
    }
}
