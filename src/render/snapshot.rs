//! What a PSA holds, for a terminal: the active lines of a [`PsaSnapshot`], as `unitsync demo`
//! shows the PSA before and after its apply.

use super::table::{Cell, grid};
use crate::plan::{PsaSnapshot, RecordStatus};

/// The snapshot's active lines by agreement and line id, indented two spaces:
///
/// ```text
///   COMPANY           AGREEMENT            ADDITION  PRODUCT     QUANTITY
///   Bob's Dentistry   1001 Managed Backup  5001      SP-DESKTOP         3
///   DigitalTorch Inc  1003 Cloud Backup    5005      CLOUD-GB      120.25
/// ```
///
/// The product is its identifier, or its name when it has none. PSA text is shown, not
/// interpreted (see [`terminal_text`](super::terminal_text)).
pub fn snapshot_table(snapshot: &PsaSnapshot) -> String {
    let mut rows = vec![
        ["COMPANY", "AGREEMENT", "ADDITION", "PRODUCT", "QUANTITY"]
            .into_iter()
            .map(Cell::plain)
            .collect::<Vec<_>>(),
    ];
    let mut lines: Vec<_> = snapshot
        .lines
        .iter()
        .filter(|l| l.status == RecordStatus::Active)
        .collect();
    lines.sort_by_key(|l| (l.contract_id, l.id));
    for line in lines {
        let contract = snapshot.contracts.iter().find(|c| c.id == line.contract_id);
        let company = contract
            .and_then(|c| snapshot.companies.iter().find(|co| co.id == c.company_id))
            .map_or("", |co| co.name.as_str());
        rows.push(vec![
            Cell::plain(company),
            Cell::plain(format!(
                "{} {}",
                line.contract_id,
                contract.map_or("", |c| c.name.as_str())
            )),
            Cell::plain(line.id.to_string()),
            Cell::plain(
                line.product_identifier
                    .as_deref()
                    .unwrap_or(&line.product_name),
            ),
            Cell::plain(line.quantity.to_string()),
        ]);
    }
    grid(&rows, &[false, false, false, false, true], false)
        .lines()
        .map(|line| format!("  {line}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PsaCompany, PsaContract, PsaLine};

    fn line(id: u64, contract_id: u64, identifier: Option<&str>, status: RecordStatus) -> PsaLine {
        PsaLine {
            id,
            contract_id,
            product_id: 1,
            product_identifier: identifier.map(str::to_string),
            product_name: "Cloud\u{202e}Storage".into(),
            quantity: "120.25".parse().unwrap(),
            status,
            billing: Default::default(),
        }
    }

    #[test]
    fn active_lines_in_id_order_with_names_shown_escaped() {
        let snapshot = PsaSnapshot {
            companies: vec![PsaCompany {
                id: 1,
                identifier: None,
                name: "Evil\x1b[2J Co".into(),
            }],
            contracts: vec![PsaContract {
                id: 1001,
                company_id: 1,
                name: "Backup".into(),
                status: RecordStatus::Active,
            }],
            lines: vec![
                line(5002, 1001, None, RecordStatus::Active),
                line(5003, 1001, Some("GONE"), RecordStatus::Cancelled),
                line(5001, 1001, Some("SP-DESKTOP"), RecordStatus::Active),
                line(6001, 2002, Some("ORPHAN"), RecordStatus::Active),
            ],
        };
        assert_eq!(
            snapshot_table(&snapshot),
            "  COMPANY           AGREEMENT    ADDITION  PRODUCT               QUANTITY\n\
             \x20 Evil\\u{1b}[2J Co  1001 Backup  5001      SP-DESKTOP              120.25\n\
             \x20 Evil\\u{1b}[2J Co  1001 Backup  5002      Cloud\\u{202e}Storage    120.25\n\
             \x20                   2002         6001      ORPHAN                  120.25\n"
        );
    }
}
