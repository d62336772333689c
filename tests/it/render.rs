//! Renderers: terminal table, Markdown pull-request body, JSON plan file, lock file text and diff.

use std::collections::BTreeMap;

use insta::assert_snapshot;
use unitsync::config::{Lock, UpdatePolicy};
use unitsync::plan::{
    Action, DesiredFrom, LineError, Plan, PlanLine, ResolvedTarget, UnitKind, UnmappedUsage,
};
use unitsync::quantity::Quantity;
use unitsync::render::{
    self, FORMAT_VERSION, MarkdownOptions, PlanFileError, TableOptions, lock_diff, lock_text,
};

fn q(text: &str) -> Quantity {
    text.parse().unwrap()
}

struct Line<'a> {
    mapping: &'a str,
    account: &'a str,
    license_type: &'a str,
    company: (u64, &'a str),
    contract: (u64, &'a str),
    product: (u64, u64, &'a str),
    vendor: Option<&'a str>,
    approved: Option<&'a str>,
    psa: Option<&'a str>,
    last_applied: Option<&'a str>,
    action: Action,
}

fn line(l: Line<'_>) -> PlanLine {
    PlanLine {
        reprice: None,
        effective: None,
        money: None,
        mapping: l.mapping.into(),
        account: l.account.into(),
        license_type: l.license_type.into(),
        target: ResolvedTarget {
            company_id: Some(l.company.0),
            company: l.company.1.into(),
            contract_id: Some(l.contract.0),
            contract: l.contract.1.into(),
            line_id: Some(l.product.0),
            product_id: Some(l.product.1),
            product: l.product.2.into(),
        },
        vendor: l.vendor.map(q),
        approved: l.approved.map(q),
        psa: l.psa.map(q),
        last_applied: l.last_applied.map(q),
        update: UpdatePolicy::InPlace,
        action: l.action,
    }
}

/// The guide's story on a real-looking month: Bob bought a fourth desktop, DigitalTorch stores
/// more, Angry Fox is unchanged, someone edited Harbor Bakery's addition by hand, Old Mill's
/// agreement was cancelled, and Slate Gravel has no mapping yet.
fn realistic_plan() -> Plan {
    Plan {
        currency: "USD".into(),
        desired: DesiredFrom::Lock,
        lines: vec![
            line(Line {
                mapping: "angry-fox-co/shadowprotect-server",
                account: "Angry Fox Co",
                license_type: "ShadowProtect Server",
                company: (250, "AngryFox"),
                contract: (1003, "Angry Fox Managed Backup"),
                product: (5003, 71, "SP-SERVER"),
                vendor: Some("2"),
                approved: Some("2"),
                psa: Some("2"),
                last_applied: Some("2"),
                action: Action::InSync,
            }),
            line(Line {
                mapping: "bobs-dentistry/shadowprotect-desktop",
                account: "Bob's Dentistry",
                license_type: "ShadowProtect Desktop",
                company: (251, "BobsDentistry"),
                contract: (1001, "Bob's Dentistry Backup"),
                product: (5001, 70, "SP-DESKTOP"),
                vendor: Some("4"),
                approved: Some("4"),
                psa: Some("3"),
                last_applied: Some("3"),
                action: Action::Update {
                    from: q("3"),
                    to: q("4"),
                },
            }),
            line(Line {
                mapping: "digitaltorch-inc/cloud-premium-gb",
                account: "DigitalTorch Inc",
                license_type: "Cloud Premium (GB)",
                company: (252, "DigitalTorch"),
                contract: (1002, "DigitalTorch Cloud"),
                product: (5002, 72, "CLOUD-PREMIUM-GB"),
                vendor: Some("135.5"),
                approved: Some("135.5"),
                psa: Some("120.25"),
                last_applied: Some("120.25"),
                action: Action::Update {
                    from: q("120.25"),
                    to: q("135.5"),
                },
            }),
            line(Line {
                mapping: "harbor-bakery/shadowprotect-server",
                account: "Harbor Bakery",
                license_type: "ShadowProtect Server",
                company: (253, "HarborBakery"),
                contract: (1004, "Harbor Bakery Managed Services"),
                product: (5004, 71, "SP-SERVER"),
                vendor: Some("4"),
                approved: Some("4"),
                psa: Some("5"),
                last_applied: Some("4"),
                action: Action::Drift {
                    last_applied: q("4"),
                    psa: q("5"),
                },
            }),
            line(Line {
                mapping: "old-mill-realty/shadowprotect-desktop",
                account: "Old Mill Realty",
                license_type: "ShadowProtect Desktop",
                company: (254, "OldMillRealty"),
                contract: (1005, "Old Mill Backup"),
                product: (0, 0, "SP-DESKTOP"),
                vendor: Some("6"),
                approved: Some("6"),
                psa: None,
                last_applied: Some("6"),
                action: Action::Error {
                    reason: LineError::NotActive {
                        what: "agreement 1005 (Old Mill Backup)".into(),
                        status: "cancelled".into(),
                    },
                },
            }),
        ],
        unmapped: vec![UnmappedUsage {
            monthly_value: None,
            account: "Slate Gravel".into(),
            license_type: "ShadowProtect Desktop".into(),
            units: q("3"),
            kind: UnitKind::Count,
        }],
    }
    .with_unresolved_line(4)
}

trait Unresolved {
    fn with_unresolved_line(self, index: usize) -> Self;
}

impl Unresolved for Plan {
    /// A cancelled agreement stops resolution before the addition: no line or product id.
    fn with_unresolved_line(mut self, index: usize) -> Plan {
        self.lines[index].target.line_id = None;
        self.lines[index].target.product_id = None;
        self
    }
}

fn old_lock() -> Lock {
    Lock {
        units: BTreeMap::from([
            ("angry-fox-co/shadowprotect-server".to_string(), q("2")),
            ("bobs-dentistry/shadowprotect-desktop".to_string(), q("3")),
            ("digitaltorch-inc/cloud-premium-gb".to_string(), q("120.25")),
            ("harbor-bakery/shadowprotect-server".to_string(), q("4")),
        ]),
    }
}

fn new_lock() -> Lock {
    let mut lock = old_lock();
    lock.units
        .insert("bobs-dentistry/shadowprotect-desktop".into(), q("4"));
    lock.units
        .insert("digitaltorch-inc/cloud-premium-gb".into(), q("135.5"));
    lock
}

fn realistic_diff() -> String {
    lock_diff(
        &lock_text(&old_lock()),
        &lock_text(&new_lock()),
        "units.lock.yaml",
    )
}

#[test]
fn table_hides_lines_in_sync() {
    let text = render::table(
        &realistic_plan(),
        &TableOptions {
            all: false,
            color: false,
            vocabulary: unitsync::config::PsaKind::ConnectWise.vocabulary(),
        },
    );
    assert_snapshot!(text, @r#"
    MAPPING                                COMPANY        AGREEMENT                       PRODUCT           VENDOR  APPROVED     PSA  ACTION
    bobs-dentistry/shadowprotect-desktop   BobsDentistry  Bob's Dentistry Backup          SP-DESKTOP             4         4       3  update 3 → 4 (+1)
    digitaltorch-inc/cloud-premium-gb      DigitalTorch   DigitalTorch Cloud              CLOUD-PREMIUM-GB   135.5     135.5  120.25  update 120.25 → 135.5 (+15.25)
    harbor-bakery/shadowprotect-server     HarborBakery   Harbor Bakery Managed Services  SP-SERVER              4         4       5  drift: PSA 5, last applied 4
    old-mill-realty/shadowprotect-desktop  OldMillRealty  Old Mill Backup                 SP-DESKTOP             6         6       -  error: agreement 1005 (Old Mill Backup) is cancelled; only active records are updated — map an active one or remove the mapping
    1 line in sync not shown (plan --all shows it).

    Unmapped vendor accounts (not billed until mapped):
    ACCOUNT       LICENCE TYPE           UNITS
    Slate Gravel  ShadowProtect Desktop      3

    Plan: 2 to update (+16.25 / -0 units), 1 in sync, 1 drifted, 1 unmapped, 1 error.
    "#);
}

#[test]
fn table_all_shows_lines_in_sync() {
    let text = render::table(
        &realistic_plan(),
        &TableOptions {
            all: true,
            color: false,
            vocabulary: unitsync::config::PsaKind::ConnectWise.vocabulary(),
        },
    );
    assert_snapshot!(text, @r#"
    MAPPING                                COMPANY        AGREEMENT                       PRODUCT           VENDOR  APPROVED     PSA  ACTION
    angry-fox-co/shadowprotect-server      AngryFox       Angry Fox Managed Backup        SP-SERVER              2         2       2  in sync
    bobs-dentistry/shadowprotect-desktop   BobsDentistry  Bob's Dentistry Backup          SP-DESKTOP             4         4       3  update 3 → 4 (+1)
    digitaltorch-inc/cloud-premium-gb      DigitalTorch   DigitalTorch Cloud              CLOUD-PREMIUM-GB   135.5     135.5  120.25  update 120.25 → 135.5 (+15.25)
    harbor-bakery/shadowprotect-server     HarborBakery   Harbor Bakery Managed Services  SP-SERVER              4         4       5  drift: PSA 5, last applied 4
    old-mill-realty/shadowprotect-desktop  OldMillRealty  Old Mill Backup                 SP-DESKTOP             6         6       -  error: agreement 1005 (Old Mill Backup) is cancelled; only active records are updated — map an active one or remove the mapping

    Unmapped vendor accounts (not billed until mapped):
    ACCOUNT       LICENCE TYPE           UNITS
    Slate Gravel  ShadowProtect Desktop      3

    Plan: 2 to update (+16.25 / -0 units), 1 in sync, 1 drifted, 1 unmapped, 1 error.
    "#);
}

#[test]
fn table_colours_only_when_asked() {
    let plan = realistic_plan();
    let plain = render::table(
        &plan,
        &TableOptions {
            all: true,
            color: false,
            vocabulary: unitsync::config::PsaKind::ConnectWise.vocabulary(),
        },
    );
    assert!(!plain.contains('\x1b'));
    let coloured = render::table(
        &plan,
        &TableOptions {
            all: true,
            color: true,
            vocabulary: unitsync::config::PsaKind::ConnectWise.vocabulary(),
        },
    );
    assert!(
        coloured.contains("\x1b[32mupdate 3 → 4 (+1)\x1b[0m"),
        "{coloured}"
    );
    assert!(coloured.contains("\x1b[33mdrift: PSA 5, last applied 4\x1b[0m"));
    assert!(coloured.contains("\x1b[31merror: agreement 1005"));
    // Stripping the escapes gives the plain table back: colour never shifts the columns.
    let mut stripped = String::new();
    let mut rest = coloured.as_str();
    while let Some(at) = rest.find('\x1b') {
        stripped.push_str(&rest[..at]);
        let end = rest[at..].find('m').unwrap();
        rest = &rest[at + end + 1..];
    }
    stripped.push_str(rest);
    assert_eq!(stripped, plain);
}

#[test]
fn table_of_an_empty_or_all_in_sync_plan() {
    let empty = Plan {
        currency: "USD".into(),
        desired: DesiredFrom::Vendor,
        lines: vec![],
        unmapped: vec![],
    };
    assert_snapshot!(render::table(&empty, &connectwise_table()), @r#"
    No mappings.

    Plan: 0 to update (+0 / -0 units), 0 in sync, 0 unmapped, 0 errors.
    "#);
    let mut plan = realistic_plan();
    plan.lines.truncate(1);
    plan.unmapped.clear();
    assert_snapshot!(render::table(&plan, &connectwise_table()), @r#"
    All 1 line is in sync (plan --all shows it).

    Plan: 0 to update (+0 / -0 units), 1 in sync, 0 unmapped, 0 errors.
    "#);
}

#[test]
fn markdown_pull_request_body() {
    let text = render::markdown(
        &realistic_plan(),
        &MarkdownOptions {
            lock_diff: Some(realistic_diff()),
            ..MarkdownOptions::default()
        },
    );
    assert_snapshot!(text, @r#"
    ## unitsync plan

    **Plan: 2 to update (+16.25 / -0 units), 1 in sync, 1 drifted, 1 unmapped, 1 error.**

    ### Changes (2)

    | Mapping | Vendor account | PSA line | Action | From | To | Change |
    |---|---|---|---|--:|--:|--:|
    | `bobs-dentistry/shadowprotect-desktop` | Bob's Dentistry · ShadowProtect Desktop | BobsDentistry › Bob's Dentistry Backup › SP-DESKTOP | update | 3 | 4 | +1 |
    | `digitaltorch-inc/cloud-premium-gb` | DigitalTorch Inc · Cloud Premium (GB) | DigitalTorch › DigitalTorch Cloud › CLOUD-PREMIUM-GB | update | 120.25 | 135.5 | +15.25 |

    ### Errors (1)

    These lines cannot be planned; the PSA is left as it is until they are fixed.

    | Mapping | Vendor account | PSA line | Reason |
    |---|---|---|---|
    | `old-mill-realty/shadowprotect-desktop` | Old Mill Realty · ShadowProtect Desktop | OldMillRealty › Old Mill Backup › SP-DESKTOP | agreement 1005 (Old Mill Backup) is cancelled; only active records are updated — map an active one or remove the mapping |

    ### Drift (1)

    The PSA was changed outside unitsync since unitsync last wrote these lines. They are left alone until someone decides which count is right.

    | Mapping | Vendor account | PSA line | Last applied | PSA now | Vendor |
    |---|---|---|--:|--:|--:|
    | `harbor-bakery/shadowprotect-server` | Harbor Bakery · ShadowProtect Server | HarborBakery › Harbor Bakery Managed Services › SP-SERVER | 4 | 5 | 4 |

    <details><summary>1 line in sync</summary>

    | Mapping | Vendor account | PSA line | Units |
    |---|---|---|--:|
    | `angry-fox-co/shadowprotect-server` | Angry Fox Co · ShadowProtect Server | AngryFox › Angry Fox Managed Backup › SP-SERVER | 2 |

    </details>

    ### Unmapped vendor accounts (1)

    Not billed until a mapping covers them.

    | Account | Licence type | Units |
    |---|---|--:|
    | Slate Gravel | ShadowProtect Desktop | 3 |

    <details><summary>Lock file diff</summary>

    ```diff
    --- a/units.lock.yaml
    +++ b/units.lock.yaml
    @@ -3,6 +3,6 @@
     # Change a value to approve another count; delete a line to leave that PSA line alone this time.
     units:
       angry-fox-co/shadowprotect-server: 2
    -  bobs-dentistry/shadowprotect-desktop: 3
    -  digitaltorch-inc/cloud-premium-gb: 120.25
    +  bobs-dentistry/shadowprotect-desktop: 4
    +  digitaltorch-inc/cloud-premium-gb: 135.5
       harbor-bakery/shadowprotect-server: 4
    ```

    </details>
    "#);
}

#[test]
fn markdown_escapes_vendor_text() {
    let mut plan = realistic_plan();
    let hostile = "Evil | <img src=x> [x](http://e)";
    plan.lines[1].account = hostile.into();
    plan.lines[1].target.company = "*bold* _it_ `code`\n# heading".into();
    plan.unmapped[0].account = "@octocat <script>alert(1)</script> | www.evil.example".into();
    let text = render::markdown(&plan, &MarkdownOptions::default());
    for bad in [
        "<img",
        "<script",
        "[x]",
        "`code`",
        "*bold*",
        "\n# heading",
        "@octocat",
        "www.evil",
    ] {
        assert!(!text.contains(bad), "{bad:?} survived in:\n{text}");
    }
    assert!(text.contains("\\[x\\](http\\://e)"), "{text}");
    let row = text
        .lines()
        .find(|l| l.contains("Evil"))
        .expect("the hostile row is shown")
        .replace('\u{2060}', "<WJ>");
    assert_snapshot!(row, @r#"| `bobs-dentistry/shadowprotect-desktop` | Evil \| &lt;img src=x&gt; \[x\](http\://e) · ShadowProtect Desktop | \*bold\* \_it\_ \`code\` #<WJ> heading › Bob's Dentistry Backup › SP-DESKTOP | update | 3 | 4 | +1 |"#);
    // The row still has exactly the table's seven cells: unescaped pipes would add more.
    let cells = row.replace("\\|", "").matches('|').count() - 1;
    assert_eq!(cells, 7, "{row}");
}

/// A plan with `n` changes, `n` lines in sync and `n` unmapped accounts.
fn big_plan(n: usize) -> Plan {
    let template = realistic_plan();
    let mut lines = Vec::new();
    for i in 0..n {
        for source in [&template.lines[1], &template.lines[0]] {
            let mut l = source.clone();
            l.mapping = format!("customer-{i:05}/{}", l.mapping);
            l.account = format!("Customer {i:05} {}", l.account);
            lines.push(l);
        }
    }
    lines.sort_by(|a, b| a.mapping.cmp(&b.mapping));
    let unmapped = (0..n)
        .map(|i| UnmappedUsage {
            monthly_value: None,
            account: format!("Prospect {i:05}"),
            license_type: "ShadowProtect Desktop".into(),
            units: q("3"),
            kind: UnitKind::Count,
        })
        .collect();
    Plan {
        currency: "USD".into(),
        desired: DesiredFrom::Lock,
        lines,
        unmapped,
    }
}

#[test]
fn markdown_fits_githubs_limit_for_5000_lines() {
    let plan = big_plan(5000);
    let mut lock = Lock::default();
    for l in &plan.lines {
        lock.units.insert(l.mapping.clone(), q("4"));
    }
    let diff = lock_diff("units: {}\n", &lock_text(&lock), "units.lock.yaml");
    let text = render::markdown(
        &plan,
        &MarkdownOptions {
            lock_diff: Some(diff),
            ..MarkdownOptions::default()
        },
    );
    let len = text.chars().count();
    assert!(len <= 65_536, "{len} characters");
    assert!(len > 60_000, "dropped more than needed: {len} characters");
    let summary = plan.summary().to_string();
    assert_eq!(
        summary,
        "Plan: 5000 to update (+5000 / -0 units), 5000 in sync, 5000 unmapped, 0 errors."
    );
    assert!(text.contains(&summary));
    assert!(text.contains("5000 lines in sync; the list is left out"));
    assert!(
        !text.contains("<details>"),
        "in-sync, unmapped and diff are all dropped"
    );
    assert!(text.contains("more lines; see the full plan in the job output."));
    // Never cut mid-table: every table row is complete and the note follows a blank line.
    let rows = text
        .lines()
        .filter(|l| l.starts_with("| `customer-"))
        .count();
    assert!(rows > 100, "{rows} rows kept");
    assert!(text.contains(&format!(
        "\n\n… {} more lines; see the full plan",
        5000 - rows
    )));
    for l in text.lines().filter(|l| l.starts_with('|')) {
        assert!(l.ends_with('|'), "cut row: {l}");
    }
}

#[test]
fn markdown_drops_detail_in_order() {
    let plan = big_plan(40);
    let diff = realistic_diff();
    let render = |max_len| {
        render::markdown(
            &plan,
            &MarkdownOptions {
                lock_diff: Some(diff.clone()),
                max_len,
            },
        )
    };
    let full = render(usize::MAX);
    assert!(full.contains("<details><summary>40 lines in sync</summary>"));
    assert!(full.contains("<details><summary>Show 40 accounts</summary>"));
    assert!(full.contains("```diff\n--- a/units.lock.yaml\n+++ b/units.lock.yaml\n"));

    let n = full.chars().count();
    let step1 = render(n - 1);
    assert!(step1.contains("40 lines in sync; the list is left out"));
    assert!(step1.contains("Show 40 accounts") && step1.contains("```diff"));

    let step2 = render(step1.chars().count() - 1);
    assert!(!step2.contains("Show 40 accounts") && step2.contains("```diff"));
    assert!(step2.contains("The list is left out to fit the size limit"));

    let step3 = render(step2.chars().count() - 1);
    assert!(!step3.contains("```diff") && step3.contains("lock file diff is left out"));
    assert!(!step3.contains("more lines"));

    let step4 = render(step3.chars().count() - 1);
    assert!(step4.contains("… 1 more line; see the full plan in the job output."));

    let tiny = render(120);
    assert!(tiny.chars().count() <= 120, "{tiny}");
    assert!(tiny.contains("Plan: 40 to update"), "{tiny}");
}

#[test]
fn json_plan_file() {
    let text = render::json(&realistic_plan());
    assert_snapshot!(text, @r#"
    {
      "format_version": 2,
      "summary": {
        "to_update": 2,
        "units_added": 16.25,
        "units_removed": 0,
        "to_propose": 0,
        "in_sync": 1,
        "drift": 1,
        "held": 0,
        "unmapped": 1,
        "errors": 1
      },
      "desired": "lock",
      "currency": "USD",
      "lines": [
        {
          "mapping": "angry-fox-co/shadowprotect-server",
          "account": "Angry Fox Co",
          "license_type": "ShadowProtect Server",
          "target": {
            "company_id": 250,
            "company": "AngryFox",
            "contract_id": 1003,
            "contract": "Angry Fox Managed Backup",
            "line_id": 5003,
            "product_id": 71,
            "product": "SP-SERVER"
          },
          "vendor": 2,
          "approved": 2,
          "psa": 2,
          "last_applied": 2,
          "update": "in-place",
          "action": {
            "action": "in-sync"
          }
        },
        {
          "mapping": "bobs-dentistry/shadowprotect-desktop",
          "account": "Bob's Dentistry",
          "license_type": "ShadowProtect Desktop",
          "target": {
            "company_id": 251,
            "company": "BobsDentistry",
            "contract_id": 1001,
            "contract": "Bob's Dentistry Backup",
            "line_id": 5001,
            "product_id": 70,
            "product": "SP-DESKTOP"
          },
          "vendor": 4,
          "approved": 4,
          "psa": 3,
          "last_applied": 3,
          "update": "in-place",
          "action": {
            "action": "update",
            "from": 3,
            "to": 4
          }
        },
        {
          "mapping": "digitaltorch-inc/cloud-premium-gb",
          "account": "DigitalTorch Inc",
          "license_type": "Cloud Premium (GB)",
          "target": {
            "company_id": 252,
            "company": "DigitalTorch",
            "contract_id": 1002,
            "contract": "DigitalTorch Cloud",
            "line_id": 5002,
            "product_id": 72,
            "product": "CLOUD-PREMIUM-GB"
          },
          "vendor": 135.5,
          "approved": 135.5,
          "psa": 120.25,
          "last_applied": 120.25,
          "update": "in-place",
          "action": {
            "action": "update",
            "from": 120.25,
            "to": 135.5
          }
        },
        {
          "mapping": "harbor-bakery/shadowprotect-server",
          "account": "Harbor Bakery",
          "license_type": "ShadowProtect Server",
          "target": {
            "company_id": 253,
            "company": "HarborBakery",
            "contract_id": 1004,
            "contract": "Harbor Bakery Managed Services",
            "line_id": 5004,
            "product_id": 71,
            "product": "SP-SERVER"
          },
          "vendor": 4,
          "approved": 4,
          "psa": 5,
          "last_applied": 4,
          "update": "in-place",
          "action": {
            "action": "drift",
            "last_applied": 4,
            "psa": 5
          }
        },
        {
          "mapping": "old-mill-realty/shadowprotect-desktop",
          "account": "Old Mill Realty",
          "license_type": "ShadowProtect Desktop",
          "target": {
            "company_id": 254,
            "company": "OldMillRealty",
            "contract_id": 1005,
            "contract": "Old Mill Backup",
            "line_id": null,
            "product_id": null,
            "product": "SP-DESKTOP"
          },
          "vendor": 6,
          "approved": 6,
          "psa": null,
          "last_applied": 6,
          "update": "in-place",
          "action": {
            "action": "error",
            "reason": {
              "kind": "not-active",
              "what": "agreement 1005 (Old Mill Backup)",
              "status": "cancelled"
            }
          }
        }
      ],
      "unmapped": [
        {
          "account": "Slate Gravel",
          "license_type": "ShadowProtect Desktop",
          "units": 3,
          "kind": "count"
        }
      ]
    }
    "#);
}

#[test]
fn json_reads_back_what_it_writes() {
    let plan = realistic_plan();
    assert_eq!(render::parse_json(&render::json(&plan)).unwrap(), plan);
    let big = big_plan(50);
    assert_eq!(render::parse_json(&render::json(&big)).unwrap(), big);
}

#[test]
fn json_rejects_other_versions_clearly() {
    let text =
        render::json(&realistic_plan()).replace("\"format_version\": 2", "\"format_version\": 1");
    let err = render::parse_json(&text).unwrap_err();
    assert!(matches!(err, PlanFileError::UnsupportedVersion { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "the plan file has format_version 1, but this unitsync reads version {FORMAT_VERSION}; \
             apply it with the unitsync version that wrote it, or plan again with this one"
        )
    );
    assert!(matches!(
        render::parse_json("{\"lines\": []}"),
        Err(PlanFileError::MissingVersion)
    ));
    assert!(matches!(
        render::parse_json("{ not json"),
        Err(PlanFileError::Syntax(_))
    ));
    let err = render::parse_json("{\"format_version\": 2, \"lines\": 3}").unwrap_err();
    assert!(matches!(err, PlanFileError::Invalid(_)));
    assert!(err.to_string().contains("line 1 column"), "{err}");
}

#[test]
fn lock_text_is_canonical() {
    assert_snapshot!(lock_text(&new_lock()), @r#"
    # yaml-language-server: $schema=schema/units.lock.schema.json
    # units.lock.yaml — written by `unitsync propose`, approved by merging its pull request.
    # Change a value to approve another count; delete a line to leave that PSA line alone this time.
    units:
      angry-fox-co/shadowprotect-server: 2
      bobs-dentistry/shadowprotect-desktop: 4
      digitaltorch-inc/cloud-premium-gb: 135.5
      harbor-bakery/shadowprotect-server: 4
    "#);
    assert_snapshot!(lock_text(&Lock::default()), @r#"
    # yaml-language-server: $schema=schema/units.lock.schema.json
    # units.lock.yaml — written by `unitsync propose`, approved by merging its pull request.
    # Change a value to approve another count; delete a line to leave that PSA line alone this time.
    units: {}
    "#);
}

#[test]
fn lock_text_round_trips() {
    let tricky = Lock {
        units: BTreeMap::from([
            ("a.b/c-d_e".to_string(), q("1")),
            ("x/ü-ber".to_string(), q("0.000001")),
            ("3cx/phones".to_string(), q("12")),
            ("1001".to_string(), q("2")),
            ("null".to_string(), q("0")),
            ("yes".to_string(), q("3")),
            ("odd: \"key\" # not a comment".to_string(), q("7.5")),
            ("-leading/dash".to_string(), q("135.5")),
            ("big/number".to_string(), q("123456789")),
            ("big/decimal".to_string(), q("123456789.123456")),
        ]),
    };
    for lock in [new_lock(), Lock::default(), tricky] {
        let text = lock_text(&lock);
        let back: Lock = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back, lock, "{text}");
    }
}

#[test]
fn lock_diff_is_a_unified_diff() {
    assert_snapshot!(realistic_diff(), @r#"
    --- a/units.lock.yaml
    +++ b/units.lock.yaml
    @@ -3,6 +3,6 @@
     # Change a value to approve another count; delete a line to leave that PSA line alone this time.
     units:
       angry-fox-co/shadowprotect-server: 2
    -  bobs-dentistry/shadowprotect-desktop: 3
    -  digitaltorch-inc/cloud-premium-gb: 120.25
    +  bobs-dentistry/shadowprotect-desktop: 4
    +  digitaltorch-inc/cloud-premium-gb: 135.5
       harbor-bakery/shadowprotect-server: 4
    "#);
    let same = lock_text(&old_lock());
    assert_eq!(lock_diff(&same, &same, "units.lock.yaml"), "");
}

/// The guide's story through the real plan engine, rendered: Bob's fourth desktop is proposed
/// against the lock, then, once approved, applied.
#[test]
fn the_guides_story_through_the_engine() {
    use unitsync::config::{Mapping, RecordRef};
    use unitsync::plan::{
        PsaCompany, PsaContract, PsaLine, PsaSnapshot, RecordStatus, UsageRecord,
    };

    let mappings = vec![Mapping {
        id: None,
        account: "Bob's Dentistry".into(),
        license_type: "ShadowProtect Desktop".into(),
        company: RecordRef::Identifier("BobsDentistry".into()),
        agreement: Some(RecordRef::Id(1001)),
        addition: Some(RecordRef::Identifier("SP-DESKTOP".into())),
        contract: None,
        service: None,
        update: None,
        commitment: None,
        price: None,
        cost: None,
        sync_price: None,
        sync_cost: None,
    }];
    let usage = vec![
        UsageRecord {
            account: "Bob's Dentistry".into(),
            license_type: "ShadowProtect Desktop".into(),
            units: q("4"),
            kind: UnitKind::Count,
        },
        UsageRecord {
            account: "Slate Gravel".into(),
            license_type: "ShadowProtect Desktop".into(),
            units: q("3"),
            kind: UnitKind::Count,
        },
    ];
    let psa = PsaSnapshot {
        companies: vec![PsaCompany {
            id: 251,
            identifier: Some("BobsDentistry".into()),
            name: "Bob's Dentistry".into(),
        }],
        contracts: vec![PsaContract {
            id: 1001,
            company_id: 251,
            name: "Bob's Dentistry Backup".into(),
            status: RecordStatus::Active,
        }],
        lines: vec![PsaLine {
            billing: Default::default(),
            id: 5001,
            contract_id: 1001,
            product_id: 70,
            product_identifier: Some("SP-DESKTOP".into()),
            product_name: "ShadowProtect Desktop".into(),
            quantity: q("3"),
            status: RecordStatus::Active,
        }],
    };
    let id = "bobs-dentistry/shadowprotect-desktop".to_string();
    let run = |approved: &str| {
        unitsync::plan::plan(unitsync::plan::PlanInput {
            mappings: &mappings,
            usage: &usage,
            psa: &psa,
            approved: &BTreeMap::from([(id.clone(), q(approved))]),
            invoiced_period: Default::default(),
            currency: "USD",
            sync_price: false,
            sync_cost: false,
            last_applied: &BTreeMap::from([(id.clone(), q("3"))]),
            desired: DesiredFrom::Lock,
            default_update: UpdatePolicy::InPlace,
            guardrails: None,
            previous_source_accounts: None,
            effective: unitsync::plan::EffectiveDates::all(jiff::civil::date(2026, 12, 1)),
        })
    };

    let proposed = run("3");
    assert_snapshot!(render::table(&proposed, &connectwise_table()), @"
    MAPPING                               COMPANY        AGREEMENT               PRODUCT     VENDOR  APPROVED  PSA  EFFECTIVE   ACTION
    bobs-dentistry/shadowprotect-desktop  BobsDentistry  Bob's Dentistry Backup  SP-DESKTOP       4         3    3  2026-12-01  propose 3 → 4 (+1)

    Unmapped vendor accounts (not billed until mapped):
    ACCOUNT       LICENCE TYPE           UNITS
    Slate Gravel  ShadowProtect Desktop      3

    Plan: 0 to update (+0 / -0 units), 1 to propose, 0 in sync, 1 unmapped, 0 errors.
    ");
    let md = render::markdown(&proposed, &MarkdownOptions::default());
    assert!(md.contains("| `bobs-dentistry/shadowprotect-desktop` | Bob's Dentistry · ShadowProtect Desktop | BobsDentistry › Bob's Dentistry Backup › SP-DESKTOP | propose | 3 | 4 | +1 |"), "{md}");

    let approved = run("4");
    assert_snapshot!(render::table(&approved, &connectwise_table()), @"
    MAPPING                               COMPANY        AGREEMENT               PRODUCT     VENDOR  APPROVED  PSA  EFFECTIVE   ACTION
    bobs-dentistry/shadowprotect-desktop  BobsDentistry  Bob's Dentistry Backup  SP-DESKTOP       4         4    3  2026-12-01  update 3 → 4 (+1)

    Unmapped vendor accounts (not billed until mapped):
    ACCOUNT       LICENCE TYPE           UNITS
    Slate Gravel  ShadowProtect Desktop      3

    Plan: 1 to update (+1 / -0 units), 0 in sync, 1 unmapped, 0 errors.
    ");
    assert_eq!(
        render::parse_json(&render::json(&approved)).unwrap(),
        approved
    );
}

#[test]
fn proposals_new_lines_and_cancel_and_readd() {
    let mut plan = realistic_plan();
    plan.lines[0].action = Action::Propose {
        from: None,
        to: q("2"),
    };
    plan.lines[0].approved = None;
    plan.lines[1].update = UpdatePolicy::CancelAndReadd;
    plan.lines[2].action = Action::Update {
        from: q("135.5"),
        to: q("120.25"),
    };
    plan.lines.truncate(3);
    plan.unmapped.clear();
    assert_snapshot!(render::table(&plan, &connectwise_table()), @r#"
    MAPPING                               COMPANY        AGREEMENT                 PRODUCT           VENDOR  APPROVED     PSA  ACTION
    angry-fox-co/shadowprotect-server     AngryFox       Angry Fox Managed Backup  SP-SERVER              2         -       2  propose 2
    bobs-dentistry/shadowprotect-desktop  BobsDentistry  Bob's Dentistry Backup    SP-DESKTOP             4         4       3  update 3 → 4 (+1, cancel and re-add)
    digitaltorch-inc/cloud-premium-gb     DigitalTorch   DigitalTorch Cloud        CLOUD-PREMIUM-GB   135.5     135.5  120.25  update 135.5 → 120.25 (-15.25)

    Plan: 2 to update (+1 / -15.25 units), 1 to propose, 0 in sync, 0 unmapped, 0 errors.
    "#);
    let coloured = render::table(
        &plan,
        &TableOptions {
            all: false,
            color: true,
            vocabulary: unitsync::config::PsaKind::ConnectWise.vocabulary(),
        },
    );
    assert!(
        coloured.contains("\x1b[31mupdate 135.5 → 120.25 (-15.25)\x1b[0m"),
        "{coloured}"
    );
    assert_snapshot!(render::markdown(&plan, &MarkdownOptions::default()), @r#"
    ## unitsync plan

    **Plan: 2 to update (+1 / -15.25 units), 1 to propose, 0 in sync, 0 unmapped, 0 errors.**

    ### Changes (3)

    | Mapping | Vendor account | PSA line | Action | From | To | Change |
    |---|---|---|---|--:|--:|--:|
    | `angry-fox-co/shadowprotect-server` | Angry Fox Co · ShadowProtect Server | AngryFox › Angry Fox Managed Backup › SP-SERVER | propose | - | 2 | new |
    | `bobs-dentistry/shadowprotect-desktop` | Bob's Dentistry · ShadowProtect Desktop | BobsDentistry › Bob's Dentistry Backup › SP-DESKTOP | update (cancel and re-add) | 3 | 4 | +1 |
    | `digitaltorch-inc/cloud-premium-gb` | DigitalTorch Inc · Cloud Premium (GB) | DigitalTorch › DigitalTorch Cloud › CLOUD-PREMIUM-GB | update | 135.5 | 120.25 | -15.25 |

    _Cancel and re-add: the old addition is cancelled as of the day before the effective date (the last day of the previous period) and a copy with the new quantity starts on the effective date, so the two never bill the same day._
    "#);
}

/// The plain table of a ConnectWise repo: no colour, lines in sync left out.
fn connectwise_table() -> TableOptions {
    TableOptions {
        all: false,
        color: false,
        vocabulary: unitsync::config::PsaKind::ConnectWise.vocabulary(),
    }
}
