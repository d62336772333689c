//! The fuzz targets' committed corpus (`fuzz/corpus/<target>/`), replayed on every test run, and
//! a proptest pass that mutates it (byte flips, inserted tokens, repeats, truncation, splicing).
//! Every input must return from its entry point in `unitsync::fuzzing` without a panic and
//! within [`BOUND`]. An input that once crashed a target belongs in its corpus directory, so it
//! stays a regression test here.
//!
//! `UNITSYNC_FUZZ_CASES` sets the proptest cases per target (default 256).

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use unitsync::fuzzing::{TARGETS, Target};

/// Generous for a debug build on a busy 2-core machine; real inputs take milliseconds.
const BOUND: Duration = Duration::from_secs(10);

/// Stack for each run: what the real code gets on a tokio worker thread (the smallest it runs on).
const STACK: usize = 2 * 1024 * 1024;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// The corpus of `target`, sorted by file name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read(entry.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
}

/// Runs `target` on `data` on its own thread; `Err` describes a panic or a run over [`BOUND`].
fn run_bounded(target: Target, data: Vec<u8>) -> Result<Duration, String> {
    let (name, entry) = target;
    let (done, finished) = mpsc::channel();
    let started = Instant::now();
    let thread = std::thread::Builder::new()
        .name(format!("fuzz-{name}"))
        .stack_size(STACK)
        .spawn(move || {
            entry(&data);
            let _ = done.send(());
        })
        .expect("a thread starts");
    match finished.recv_timeout(BOUND) {
        Ok(()) => {
            let took = started.elapsed();
            thread.join().map_err(|_| "panicked".to_string())?;
            Ok(took)
        }
        // The thread still runs; it is left behind, and the test fails.
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!("took longer than {BOUND:?}")),
        Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Err(panic) => Err(format!(
                "panicked: {}",
                panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)")
            )),
            Ok(()) => Err("stopped without finishing".into()),
        },
    }
}

#[test]
fn every_target_has_a_corpus_and_a_cargo_fuzz_target() {
    let fuzz_toml =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/Cargo.toml"))
            .unwrap();
    for (name, _) in TARGETS {
        assert!(!corpus(name).is_empty());
        assert!(
            fuzz_toml.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
    }
}

#[test]
fn the_corpus_replays_without_a_panic_or_a_hang() {
    let mut failures = Vec::new();
    for target in TARGETS {
        for (file, data) in corpus(target.0) {
            if let Err(e) = run_bounded(target, data) {
                failures.push(format!("fuzz/corpus/{}/{file}: {e}", target.0));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One change to a seed.
#[derive(Debug, Clone)]
enum Mutation {
    /// XOR a byte (at a position scaled to the input's length).
    Flip { at: usize, mask: u8 },
    /// Insert bytes.
    Insert { at: usize, bytes: Vec<u8> },
    /// Insert a token that parsers treat specially.
    Token { at: usize, token: usize },
    /// Delete a range.
    Delete { at: usize, len: usize },
    /// Repeat a range, for nesting and long lines.
    Repeat { at: usize, len: usize, times: usize },
    /// Cut the input short.
    Truncate { at: usize },
    /// Insert part of another seed.
    Splice {
        at: usize,
        seed: usize,
        from: usize,
        len: usize,
    },
}

const TOKENS: &[&str] = &[
    "\n",
    "\r\n",
    "\0",
    "\"",
    "'",
    ",",
    ";",
    "\t",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "? ",
    "&a ",
    "*a",
    "<<: *a",
    "!!str ",
    "---\n",
    "...\n",
    "#",
    "|\n",
    ">-\n",
    "~",
    "null",
    "true",
    "yes",
    "-1",
    "0",
    "007",
    "1e400",
    "-1e-400",
    "9223372036854775807",
    "18446744073709551616",
    "4294967296",
    "2147483648",
    "NaN",
    ".inf",
    "1.0000005",
    "\u{feff}",
    "\u{0085}",
    "\u{2028}",
    "é",
    "\u{1F600}",
    "\\",
    "\\u0000",
    "\\ud800",
    "<",
    ">",
    "rel=next",
    "%",
    "_",
    "(",
    ")",
    " and ",
    " or ",
    " not ",
    " in ",
    " like ",
    "=",
    "!=",
    "[2026-11-01]",
    "2/29/2024",
    "13/45/2026 25:61:61 PM",
    "2026-11-30T23:59:59Z",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        (at, 1u8..).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        (at, proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (at, 0..TOKENS.len()).prop_map(|(at, token)| Mutation::Token { at, token }),
        (at, 1usize..64).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (at, 1usize..16, 2usize..512).prop_map(|(at, len, times)| Mutation::Repeat {
            at,
            len,
            times
        }),
        at.prop_map(|at| Mutation::Truncate { at }),
        (at, any::<usize>(), any::<usize>(), 1usize..256).prop_map(|(at, seed, from, len)| {
            Mutation::Splice {
                at,
                seed,
                from,
                len,
            }
        }),
    ]
}

fn apply(mut data: Vec<u8>, mutations: &[Mutation], seeds: &[(String, Vec<u8>)]) -> Vec<u8> {
    for m in mutations {
        let pos = |at: usize, len: usize| if len == 0 { 0 } else { at % (len + 1) };
        match m {
            Mutation::Flip { at, mask } => {
                if !data.is_empty() {
                    let i = at % data.len();
                    data[i] ^= mask;
                }
            }
            Mutation::Insert { at, bytes } => {
                let i = pos(*at, data.len());
                data.splice(i..i, bytes.iter().copied());
            }
            Mutation::Token { at, token } => {
                let i = pos(*at, data.len());
                data.splice(i..i, TOKENS[*token].bytes());
            }
            Mutation::Delete { at, len } => {
                let i = pos(*at, data.len());
                let end = (i + len).min(data.len());
                data.drain(i..end);
            }
            Mutation::Repeat { at, len, times } => {
                let i = pos(*at, data.len());
                let end = (i + len).min(data.len());
                let chunk = data[i..end].to_vec();
                let repeated = chunk.repeat(*times);
                data.splice(i..i, repeated);
            }
            Mutation::Truncate { at } => data.truncate(pos(*at, data.len())),
            Mutation::Splice {
                at,
                seed,
                from,
                len,
            } => {
                let other = &seeds[seed % seeds.len()].1;
                let start = pos(*from, other.len());
                let end = (start + len).min(other.len());
                let i = pos(*at, data.len());
                data.splice(i..i, other[start..end].iter().copied());
            }
        }
    }
    data
}

/// A mutated input, shown as text with its seed so a failure can be reproduced and added to the
/// corpus.
struct Input {
    seed: String,
    data: Vec<u8>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "from seed {}: {:?}",
            self.seed,
            String::from_utf8_lossy(&self.data)
        )
    }
}

fn cases() -> u32 {
    std::env::var("UNITSYNC_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn target(name: &str) -> Target {
    *TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fuzz target {name}"))
}

fn mutate_target(target: Target) {
    let seeds = corpus(target.0);
    let strategy = (0..seeds.len(), proptest::collection::vec(mutation(), 1..6)).prop_map({
        let seeds = seeds.clone();
        move |(seed, mutations)| Input {
            seed: seeds[seed].0.clone(),
            data: apply(seeds[seed].1.clone(), &mutations, &seeds),
        }
    });
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        // The corpus is the persistence: add a failing input to it once fixed.
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |input| {
        run_bounded(target, input.data.clone())
            .map(drop)
            .map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!(
            "fuzz target {}: {e}\nFix the parser, then add the input to fuzz/corpus/{}/ as a regression test.",
            target.0, target.0
        );
    }
}

#[test]
fn mutated_billing_repo_files() {
    mutate_target(target("billing_repo"));
}

#[test]
fn mutated_usage_sources() {
    mutate_target(target("usage_source"));
}

#[test]
fn mutated_psa_responses() {
    mutate_target(target("psa_response"));
}

#[test]
fn mutated_sandbox_conditions() {
    mutate_target(target("sandbox_conditions"));
}

/// Found by this fuzzing: deep nesting overflowed the stack, which aborted the process (the
/// sandbox server). The parser now refuses texts past `MAX_NESTING` with an error; just under it,
/// parsing and evaluating still fit the stack.
#[test]
fn sandbox_conditions_refuse_deep_nesting_instead_of_overflowing_the_stack() {
    use unitsync::sandbox::conditions::{MAX_NESTING, parse};
    let limit = MAX_NESTING;
    let under = [
        format!("{}id = 1{}", "(".repeat(limit), ")".repeat(limit)),
        format!("{}id = 1", "not ".repeat(limit)),
        vec!["id = 1"; limit + 1].join(" and "),
    ];
    for text in under {
        let expr = parse(&text).unwrap();
        assert!(expr.matches(&serde_json::json!({"id": 1})), "{text}");
    }
    let over = format!("{}id = 1{}", "(".repeat(limit + 1), ")".repeat(limit + 1));
    assert_eq!(
        parse(&over).unwrap_err().message,
        format!(
            "conditions too complex: {} parentheses and and/or/not together, more than {limit}",
            limit + 1
        )
    );
    let texts = [
        format!("{}id = 1{}", "(".repeat(1_000), ")".repeat(1_000)),
        format!("{}id = 1", "not ".repeat(3_000)),
        vec!["id = 1"; 3_000].join(" and "),
    ];
    for text in texts {
        let parsed = std::thread::Builder::new()
            .stack_size(STACK)
            .spawn(move || {
                if let Ok(expr) = unitsync::sandbox::conditions::parse(&text) {
                    expr.matches(&serde_json::json!({"id": 1}));
                }
            })
            .unwrap()
            .join();
        assert!(parsed.is_ok());
    }
}
