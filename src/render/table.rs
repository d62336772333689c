//! The terminal view of a plan: aligned columns, in-sync lines hidden unless asked for, the
//! unmapped vendor accounts, and the summary line.

use std::ffi::OsStr;
use std::io::IsTerminal;

use super::{
    direction, effective_cell, has_dates, has_prices, line_action_text, money_cell, moved_dates,
    plural, qty_or_dash, terminal_text,
};
use crate::plan::{Action, Plan, PlanLine};

/// How [`table`] renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableOptions {
    /// Show lines that are in sync too (`plan --all`).
    pub all: bool,
    /// Colour with ANSI escapes; see [`use_color`].
    pub color: bool,
    /// The PSA's words: the contract column is headed `AGREEMENT` or `CONTRACT`.
    pub vocabulary: crate::config::Vocabulary,
}

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";

/// Whether to colour standard output: only on a terminal, and never when `NO_COLOR` is set to a
/// non-empty value (<https://no-color.org>).
pub fn use_color() -> bool {
    color_policy(
        std::env::var_os("NO_COLOR").as_deref(),
        std::io::stdout().is_terminal(),
    )
}

/// The policy behind [`use_color`], given the value of `NO_COLOR` and whether stdout is a
/// terminal.
pub fn color_policy(no_color: Option<&OsStr>, is_terminal: bool) -> bool {
    is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// One table cell: its text and the colour it is shown in when colour is on. The other terminal
/// tables ([`history`](super::history), [`snapshot`](super::snapshot)) lay theirs out with
/// [`grid`] too.
pub(super) struct Cell {
    text: String,
    style: Option<&'static str>,
}

impl Cell {
    pub(super) fn plain(text: impl AsRef<str>) -> Cell {
        Cell {
            text: terminal_text(text.as_ref()),
            style: None,
        }
    }

    fn styled(text: impl AsRef<str>, style: Option<&'static str>) -> Cell {
        Cell {
            text: terminal_text(text.as_ref()),
            style,
        }
    }
}

fn width(text: &str) -> usize {
    text.chars().count()
}

/// Lays out rows in columns separated by two spaces. `right` marks right-aligned (numeric)
/// columns. The first row is the header. The last column is not padded, so long error reasons
/// don't leave trailing spaces.
pub(super) fn grid(rows: &[Vec<Cell>], right: &[bool], color: bool) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let mut widths = vec![0; columns];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(&cell.text));
        }
    }
    let mut out = String::new();
    for (r, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            let pad = widths[c] - width(&cell.text);
            let last = c + 1 == columns;
            let right_aligned = right.get(c).copied().unwrap_or(false);
            if right_aligned {
                line.extend(std::iter::repeat_n(' ', pad));
            }
            let style = if r == 0 { Some(BOLD) } else { cell.style };
            match style.filter(|_| color) {
                Some(style) => {
                    line.push_str(style);
                    line.push_str(&cell.text);
                    line.push_str(RESET);
                }
                None => line.push_str(&cell.text),
            }
            if !right_aligned && !last {
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end_matches(' '));
        out.push('\n');
    }
    out
}

fn action_style(action: &Action) -> Option<&'static str> {
    match action {
        Action::Update { .. } | Action::Propose { .. } => match direction(action) {
            Some(true) => Some(GREEN),
            _ => Some(RED),
        },
        Action::InSync => None,
        Action::Drift { .. } | Action::Hold { .. } => Some(YELLOW),
        Action::Error { .. } => Some(RED),
    }
}

fn line_row(line: &PlanLine, currency: &str, dates: bool, prices: bool) -> Vec<Cell> {
    let mut row = vec![
        Cell::plain(&line.mapping),
        Cell::plain(&line.target.company),
        Cell::plain(&line.target.contract),
        Cell::plain(&line.target.product),
        Cell::plain(qty_or_dash(line.vendor)),
        Cell::plain(qty_or_dash(line.approved)),
        Cell::plain(qty_or_dash(line.psa)),
    ];
    if dates {
        row.push(Cell::plain(effective_cell(line)));
    }
    if prices {
        row.push(Cell::plain(money_cell(line, currency)));
    }
    row.push(Cell::styled(
        line_action_text(line, currency),
        action_style(&line.action),
    ));
    row
}

/// Renders `plan` for a terminal:
///
/// ```text
/// MAPPING                               COMPANY        AGREEMENT               PRODUCT     VENDOR  APPROVED  PSA  ACTION
/// bobs-dentistry/shadowprotect-desktop  BobsDentistry  Bob's Dentistry Backup  SP-DESKTOP       4         4    3  update 3 → 4 (+1)
/// 1 line in sync not shown (plan --all shows it).
///
/// Unmapped vendor accounts (not billed until mapped):
/// ACCOUNT       LICENCE TYPE           UNITS
/// Slate Gravel  ShadowProtect Desktop      3
///
/// Plan: 1 to update (+1 / -0 units), 1 in sync, 1 unmapped, 0 errors.
/// ```
///
/// Columns are aligned by character count. With `color`, increases are green, decreases and
/// errors red, drift yellow, and the header and summary bold.
pub fn table(plan: &Plan, opts: &TableOptions) -> String {
    let shown: Vec<&PlanLine> = plan
        .lines
        .iter()
        .filter(|l| opts.all || !matches!(l.action, Action::InSync))
        .collect();
    let hidden = plan.lines.len() - shown.len();

    let mut out = String::new();
    if plan.lines.is_empty() {
        out.push_str("No mappings.\n");
    } else if shown.is_empty() {
        out.push_str(&format!(
            "All {} in sync (plan --all shows {}).\n",
            plural(plan.lines.len(), "line is", "lines are"),
            if plan.lines.len() == 1 { "it" } else { "them" }
        ));
    } else {
        let (dates, prices) = (has_dates(plan), has_prices(plan));
        let contract = opts.vocabulary.contract.to_uppercase();
        let mut header = vec![
            "MAPPING",
            "COMPANY",
            contract.as_str(),
            "PRODUCT",
            "VENDOR",
            "APPROVED",
            "PSA",
        ];
        let mut right = vec![false, false, false, false, true, true, true];
        if dates {
            header.push("EFFECTIVE");
            right.push(false);
        }
        if prices {
            header.push("REVENUE/MONTH");
            right.push(true);
        }
        header.push("ACTION");
        right.push(false);
        let mut rows = vec![header.into_iter().map(Cell::plain).collect::<Vec<_>>()];
        rows.extend(
            shown
                .iter()
                .map(|l| line_row(l, &plan.currency, dates, prices)),
        );
        out.push_str(&grid(&rows, &right, opts.color));
        if hidden > 0 {
            out.push_str(&format!(
                "{} in sync not shown (plan --all shows {}).\n",
                plural(hidden, "line", "lines"),
                if hidden == 1 { "it" } else { "them" }
            ));
        }
    }

    let moved = moved_dates(plan);
    if !moved.is_empty() {
        out.push_str("\nDates moved for invoices:\n");
        for (mapping, why) in &moved {
            out.push_str(&format!("  {}: {why}\n", terminal_text(mapping)));
        }
    }

    if !plan.unmapped.is_empty() {
        out.push_str("\nUnmapped vendor accounts (not billed until mapped):\n");
        let valued = plan.unmapped.iter().any(|u| u.monthly_value.is_some());
        let mut header = vec![
            Cell::plain("ACCOUNT"),
            Cell::plain("LICENCE TYPE"),
            Cell::plain("UNITS"),
        ];
        if valued {
            header.push(Cell::plain("UNBILLED/MONTH"));
        }
        let mut rows = vec![header];
        rows.extend(plan.unmapped.iter().map(|u| {
            let mut row = vec![
                Cell::plain(&u.account),
                Cell::plain(&u.license_type),
                Cell::plain(u.units.to_string()),
            ];
            if valued {
                row.push(Cell::plain(
                    u.monthly_value
                        .map_or_else(|| "-".to_string(), |v| v.text(&plan.currency)),
                ));
            }
            row
        }));
        out.push_str(&grid(&rows, &[false, false, true, true], opts.color));
    }

    out.push('\n');
    let summary = plan.summary().to_string();
    if opts.color {
        out.push_str(&format!("{BOLD}{summary}{RESET}\n"));
    } else {
        out.push_str(&summary);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(color_policy(None, true));
        assert!(color_policy(Some(OsStr::new("")), true));
        assert!(!color_policy(Some(OsStr::new("1")), true));
        assert!(!color_policy(None, false));
    }

    #[test]
    fn columns_align_by_characters_not_bytes() {
        let rows = vec![
            vec![Cell::plain("A"), Cell::plain("N"), Cell::plain("Z")],
            vec![Cell::plain("Ünïcödé"), Cell::plain("1"), Cell::plain("x")],
            vec![Cell::plain("b"), Cell::plain("22"), Cell::plain("y")],
        ];
        assert_eq!(
            grid(&rows, &[false, true, false], false),
            "A         N  Z\nÜnïcödé   1  x\nb        22  y\n"
        );
    }
}
