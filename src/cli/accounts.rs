//! `unitsync accounts`: every vendor account and licence type with its mapping status, and for
//! unmapped ones (`--suggest`) the PSA company, agreement and addition they most likely belong
//! to, found by fuzzy name matching; `--write` appends those suggestions to `mappings.yaml` as
//! commented-out entries for a person to confirm.
//!
//! Suggestions read the PSA beyond the mapped records (all companies, a company's agreements and
//! their additions) through inherent methods of [`ConnectWiseClient`]; the [`Psa`](crate::psa::Psa)
//! trait is unchanged, so Autotask suggestions come later.

use std::fmt::Write as _;

use clap::Args;
use serde::Serialize;

use super::workflow::{connect, load_repo, make_plan, runtime};
use super::{CommandError, GlobalArgs, Outcome};
use crate::config::{Approval, BillingRepo};
use crate::plan::{Action, DesiredFrom, Plan, PsaCompany, PsaContract, PsaLine, RecordStatus};
use crate::psa::{ConnectWiseClient, PsaError};

/// Below this score a company is not suggested at all.
const MIN_COMPANY_SCORE: f64 = 0.80;

#[derive(Debug, Args)]
pub struct AccountsArgs {
    /// Only the vendor accounts no mapping covers.
    #[arg(long)]
    pub unmapped: bool,
    /// For each unmapped account, suggest a PSA company, agreement and addition by name.
    #[arg(long)]
    pub suggest: bool,
    /// With --suggest: append the suggestions to mappings.yaml as commented-out entries.
    #[arg(long, requires = "suggest")]
    pub write: bool,
}

/// One row of the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub account: String,
    pub license_type: String,
    /// `mapped`, `unmapped` or `error`.
    pub status: &'static str,
    /// The mapping id, or for errors the reason.
    pub detail: String,
}

/// The rows for a plan: mapped and failing mappings, then unmapped vendor records.
pub fn rows(plan: &Plan) -> Vec<AccountRow> {
    let mut rows: Vec<AccountRow> = plan
        .lines
        .iter()
        .map(|l| match &l.action {
            Action::Error { reason } => AccountRow {
                account: l.account.clone(),
                license_type: l.license_type.clone(),
                status: "error",
                detail: format!("{}: {reason}", l.mapping),
            },
            _ => AccountRow {
                account: l.account.clone(),
                license_type: l.license_type.clone(),
                status: "mapped",
                detail: format!(
                    "{} → {} / {}",
                    l.mapping, l.target.company, l.target.product
                ),
            },
        })
        .collect();
    rows.extend(plan.unmapped.iter().map(|u| AccountRow {
        account: u.account.clone(),
        license_type: u.license_type.clone(),
        status: "unmapped",
        detail: format!("{} units not billed", u.units),
    }));
    rows.sort_by(|a, b| {
        (&a.account, &a.license_type, a.status).cmp(&(&b.account, &b.license_type, b.status))
    });
    rows
}

/// A proposed mapping for one unmapped vendor record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestion {
    pub account: String,
    pub license_type: String,
    pub company: Option<Scored<PsaCompany>>,
    pub agreement: Option<PsaContract>,
    pub addition: Option<Scored<PsaLine>>,
    /// What is missing or uncertain, for a person to check.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scored<T> {
    pub score: f64,
    pub item: T,
}

pub fn run(global: &GlobalArgs, args: &AccountsArgs) -> Result<Outcome, CommandError> {
    let repo = load_repo(&global.dir)?;
    let psa = connect(&repo)?;
    let rt = runtime()?;
    let desired = match repo.settings.approval {
        Approval::Manual => DesiredFrom::Lock,
        Approval::Automatic => DesiredFrom::Vendor,
    };
    let planned = rt.block_on(make_plan(&repo, &psa, desired))?;
    let rows: Vec<AccountRow> = rows(&planned.plan)
        .into_iter()
        .filter(|r| !args.unmapped || r.status == "unmapped")
        .collect();
    print!("{}", rows_text(&rows));
    if args.suggest {
        let crate::psa::AnyPsa::ConnectWise(cw) = &psa else {
            return Err(CommandError::user(
                "account suggestions are available for ConnectWise PSA only so far",
            )
            .hinted("for Autotask, look the company, contract and service up in Autotask and add the mapping by hand"));
        };
        let suggestions = rt.block_on(suggest_all(cw, &planned.plan))?;
        println!();
        print!("{}", suggestions_text(&suggestions));
        if args.write {
            write_suggestions(&repo, &suggestions)?;
        }
    }
    Ok(Outcome::Done)
}

/// Vendor and PSA text for the terminal: see [`crate::render::terminal_text`].
fn clean(text: &str) -> String {
    crate::render::terminal_text(text)
}

fn rows_text(rows: &[AccountRow]) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("No vendor accounts.\n");
        return out;
    }
    let wa = rows
        .iter()
        .map(|r| clean(&r.account).chars().count())
        .chain([7])
        .max()
        .unwrap_or(7);
    let wl = rows
        .iter()
        .map(|r| clean(&r.license_type).chars().count())
        .chain([12])
        .max()
        .unwrap_or(12);
    let pad = |s: &str, w: usize| {
        let s = clean(s);
        let n = w.saturating_sub(s.chars().count());
        format!("{s}{}", " ".repeat(n))
    };
    let _ = writeln!(
        out,
        "{}  {}  {:<8}  DETAIL",
        pad("ACCOUNT", wa),
        pad("LICENCE TYPE", wl),
        "STATUS"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{}  {}  {:<8}  {}",
            pad(&r.account, wa),
            pad(&r.license_type, wl),
            r.status,
            clean(&r.detail)
        );
    }
    out
}

/// Suggestions for every unmapped vendor record, reading the PSA's companies once.
pub async fn suggest_all(
    psa: &ConnectWiseClient,
    plan: &Plan,
) -> Result<Vec<Suggestion>, PsaError> {
    if plan.unmapped.is_empty() {
        return Ok(Vec::new());
    }
    let companies = psa.list_companies().await?;
    let mut out = Vec::new();
    for u in &plan.unmapped {
        let mut s = Suggestion {
            account: u.account.clone(),
            license_type: u.license_type.clone(),
            company: best_company(&u.account, &companies),
            agreement: None,
            addition: None,
            notes: Vec::new(),
        };
        let Some(company) = &s.company else {
            s.notes.push(format!(
                "no PSA company's name is close to {:?}; create the company or map it by hand",
                u.account
            ));
            out.push(s);
            continue;
        };
        let agreements: Vec<PsaContract> = psa
            .list_agreements(company.item.id)
            .await?
            .into_iter()
            .filter(|a| a.status == RecordStatus::Active)
            .collect();
        if agreements.is_empty() {
            s.notes.push(format!(
                "company {} has no active agreement; add one in the PSA first",
                company.item.id
            ));
            out.push(s);
            continue;
        }
        // The best addition over all active agreements; else the first agreement, to name it.
        let mut best: Option<(PsaContract, Scored<PsaLine>)> = None;
        let mut empty = Vec::new();
        for a in &agreements {
            let lines: Vec<PsaLine> = psa
                .list_additions(a.id)
                .await?
                .into_iter()
                .filter(|l| l.status == RecordStatus::Active)
                .collect();
            if lines.is_empty() {
                empty.push(a.id);
            }
            if let Some(line) = best_line(&u.license_type, &lines)
                && best.as_ref().is_none_or(|(_, b)| line.score > b.score)
            {
                best = Some((a.clone(), line));
            }
        }
        match best {
            Some((agreement, line)) => {
                if line.score < MIN_COMPANY_SCORE {
                    s.notes.push(format!(
                        "no addition clearly matches {:?}; check the product",
                        u.license_type
                    ));
                }
                s.agreement = Some(agreement);
                s.addition = Some(line);
            }
            None => {
                let a = &agreements[0];
                s.notes.push(format!(
                    "agreement {} ({}) has no additions, so there is nothing to map to yet; add an addition for {:?} in the PSA, then fill in `addition:`",
                    a.id, a.name, u.license_type
                ));
                s.agreement = Some(a.clone());
            }
        }
        out.push(s);
    }
    Ok(out)
}

fn best_company(account: &str, companies: &[PsaCompany]) -> Option<Scored<PsaCompany>> {
    companies
        .iter()
        .map(|c| {
            let by_name = similarity(&company_words(account), &company_words(&c.name));
            let by_identifier = c
                .identifier
                .as_deref()
                .map_or(0.0, |i| similarity(&compact(account), &compact(i)));
            Scored {
                score: by_name.max(by_identifier),
                item: c.clone(),
            }
        })
        .filter(|s| s.score >= MIN_COMPANY_SCORE)
        .max_by(|a, b| a.score.total_cmp(&b.score).then(b.item.id.cmp(&a.item.id)))
}

fn best_line(license_type: &str, lines: &[PsaLine]) -> Option<Scored<PsaLine>> {
    let wanted = words(license_type);
    lines
        .iter()
        .map(|l| {
            let by_name = similarity(&wanted, &words(&l.product_name));
            let by_id = l
                .product_identifier
                .as_deref()
                .map_or(0.0, |i| similarity(&wanted, &words(i)));
            Scored {
                score: by_name.max(by_id),
                item: l.clone(),
            }
        })
        .max_by(|a, b| a.score.total_cmp(&b.score).then(b.item.id.cmp(&a.item.id)))
}

/// Lower case, words of letters and digits separated by one space.
fn words(text: &str) -> String {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// [`words`] without legal-form suffixes, which say nothing about which customer it is.
fn company_words(text: &str) -> String {
    const FORMS: [&str; 10] = [
        "llc",
        "inc",
        "co",
        "ltd",
        "corp",
        "corporation",
        "gmbh",
        "limited",
        "company",
        "plc",
    ];
    let w = words(text);
    let kept: Vec<&str> = w.split(' ').filter(|w| !FORMS.contains(w)).collect();
    if kept.is_empty() { w } else { kept.join(" ") }
}

fn compact(text: &str) -> String {
    words(text).replace(' ', "")
}

/// Jaro-Winkler similarity in 0..=1.
pub fn similarity(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    let mut b_used = vec![false; b.len()];
    let mut a_matched = Vec::new();
    for (i, ca) in a.iter().enumerate() {
        let lo = i.saturating_sub(window);
        let hi = (i + window + 1).min(b.len());
        if let Some(j) = (lo..hi).find(|&j| !b_used[j] && b[j] == *ca) {
            b_used[j] = true;
            a_matched.push(*ca);
        }
    }
    let m = a_matched.len();
    if m == 0 {
        return 0.0;
    }
    let b_matched = b.iter().zip(&b_used).filter(|(_, u)| **u).map(|(c, _)| *c);
    let transpositions = a_matched
        .iter()
        .zip(b_matched)
        .filter(|(x, y)| **x != *y)
        .count()
        / 2;
    let m = m as f64;
    let jaro = (m / a.len() as f64 + m / b.len() as f64 + (m - transpositions as f64) / m) / 3.0;
    let prefix = a.iter().zip(&b).take(4).take_while(|(x, y)| x == y).count();
    jaro + prefix as f64 * 0.1 * (1.0 - jaro)
}

fn suggestions_text(suggestions: &[Suggestion]) -> String {
    let mut out = String::new();
    if suggestions.is_empty() {
        out.push_str("No unmapped accounts: nothing to suggest.\n");
        return out;
    }
    for s in suggestions {
        let _ = writeln!(
            out,
            "Suggestion for {} / {}:",
            clean(&s.account),
            clean(&s.license_type)
        );
        if let Some(c) = &s.company {
            let _ = writeln!(
                out,
                "  company    {} (id {}, identifier {}) score {:.2}",
                clean(&c.item.name),
                c.item.id,
                clean(c.item.identifier.as_deref().unwrap_or("-")),
                c.score
            );
        }
        if let Some(a) = &s.agreement {
            let _ = writeln!(out, "  agreement  {} (id {})", clean(&a.name), a.id);
        }
        if let Some(l) = &s.addition {
            let _ = writeln!(
                out,
                "  addition   {} (id {}, product {}) score {:.2}",
                clean(&l.item.product_name),
                l.item.id,
                clean(l.item.product_identifier.as_deref().unwrap_or("-")),
                l.score
            );
        }
        for n in &s.notes {
            let _ = writeln!(out, "  note: {}", clean(n));
        }
    }
    out
}

/// A YAML double-quoted scalar (JSON strings are valid YAML), on one line whatever the text.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

/// The commented-out `mappings.yaml` entries for `suggestions` not already in `existing`.
/// Entries are indented like the file's existing `- account:` items, so deleting `# ` from each
/// line yields a valid list entry.
pub fn suggestion_block(suggestions: &[Suggestion], existing: &str) -> String {
    let indent: String = existing
        .lines()
        .find(|l| l.trim_start().starts_with("- account:"))
        .map(|l| l[..l.len() - l.trim_start().len()].to_string())
        .unwrap_or_else(|| "  ".to_string());
    let mut out = String::new();
    for s in suggestions {
        let Some(company) = &s.company else { continue };
        let first = format!("{indent}# - account: {}", quoted(&s.account));
        let license = format!("{indent}#   license_type: {}", quoted(&s.license_type));
        if existing.contains(&format!("{first}\n{license}\n")) {
            continue;
        }
        let _ = writeln!(
            out,
            "{indent}# Suggested by `unitsync accounts --suggest` (company score {:.2}): confirm and uncomment.",
            company.score
        );
        let _ = writeln!(out, "{first}\n{license}");
        let company_ref = match &company.item.identifier {
            Some(i) => quoted(i),
            None => company.item.id.to_string(),
        };
        let _ = writeln!(
            out,
            "{indent}#   company: {company_ref}   # {}",
            quoted(&company.item.name)
        );
        match &s.agreement {
            Some(a) => {
                let _ = writeln!(
                    out,
                    "{indent}#   agreement: {}   # {}",
                    a.id,
                    quoted(&a.name)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "{indent}#   agreement: TODO   # no active agreement found"
                );
            }
        }
        match &s.addition {
            Some(l) => {
                let product = match &l.item.product_identifier {
                    Some(p) => quoted(p),
                    None => format!("{{ id: {} }}", l.item.id),
                };
                let _ = writeln!(
                    out,
                    "{indent}#   addition: {product}   # {} (score {:.2})",
                    quoted(&l.item.product_name),
                    l.score
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "{indent}#   addition: TODO   # the agreement has no additions; add one in the PSA first"
                );
            }
        }
    }
    out
}

fn write_suggestions(repo: &BillingRepo, suggestions: &[Suggestion]) -> Result<(), CommandError> {
    let path = repo.root.join("mappings.yaml");
    let existing = std::fs::read_to_string(&path).map_err(|e| {
        CommandError::user(format!("cannot read {}: {e}", path.display())).hinted(
            "--write appends to mappings.yaml; with mappings/*.yaml, copy the suggestions by hand",
        )
    })?;
    let block = suggestion_block(suggestions, &existing);
    if block.is_empty() {
        eprintln!("No new suggestions to write to {}.", path.display());
        return Ok(());
    }
    let mut text = existing;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&block);
    std::fs::write(&path, text)
        .map_err(|e| CommandError::user(format!("cannot write {}: {e}", path.display())))?;
    eprintln!(
        "Appended the suggestions to {} as comments: confirm and uncomment them, then run `unitsync validate`.",
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_is_jaro_winkler() {
        assert!((similarity("martha", "marhta") - 0.9611).abs() < 0.001);
        assert_eq!(similarity("abc", "abc"), 1.0);
        assert_eq!(similarity("abc", "xyz"), 0.0);
        assert_eq!(company_words("Slate Gravel LLC"), "slate gravel");
    }

    #[test]
    fn companies_match_by_name_without_legal_form_or_by_identifier() {
        let companies = vec![
            PsaCompany {
                id: 1,
                identifier: Some("AngryFox".into()),
                name: "Angry Fox Co".into(),
            },
            PsaCompany {
                id: 2,
                identifier: Some("SlateGravel".into()),
                name: "Slate Gravel LLC".into(),
            },
        ];
        let best = best_company("Slate Gravel", &companies).unwrap();
        assert_eq!(best.item.id, 2);
        assert_eq!(best.score, 1.0);
        assert!(best_company("Zebra Plumbing", &companies).is_none());
    }

    #[test]
    fn the_block_is_comments_only_and_not_repeated() {
        let s = Suggestion {
            account: "Evil \"x\"\nname: 1".into(),
            license_type: "ShadowProtect Desktop".into(),
            company: Some(Scored {
                score: 0.9,
                item: PsaCompany {
                    id: 7,
                    identifier: Some("Evil".into()),
                    name: "Evil".into(),
                },
            }),
            agreement: None,
            addition: None,
            notes: vec![],
        };
        let block = suggestion_block(std::slice::from_ref(&s), "");
        assert!(block.lines().all(|l| l.starts_with("  #")), "{block}");
        assert!(block.contains("confirm and uncomment"));
        assert_eq!(suggestion_block(&[s], &block), "");
    }
}
