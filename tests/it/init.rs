//! `unitsync init`, `completions` and `man`, run as the binary.

use std::path::Path;

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn unitsync(dir: &Path, args: &[&str]) -> Run {
    let output = crate::support::unitsync()
        .current_dir(dir)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

const FILES: [&str; 9] = [
    "unitsync.yaml",
    "mappings.yaml",
    "units.lock.yaml",
    ".github/workflows/unitsync-apply.yml",
    ".github/workflows/unitsync-propose.yml",
    "schema/unitsync.schema.json",
    "schema/mappings.schema.json",
    "schema/units.lock.schema.json",
    "schema/true-ups.schema.json",
];

const SOURCES: [&str; 5] = ["csv", "json", "http", "command", "storagecraft"];

#[test]
fn init_scaffolds_a_repo_that_validates_for_both_psas_and_every_source() {
    let temp = tempfile::tempdir().unwrap();
    for psa in ["connectwise", "autotask"] {
        for source in SOURCES {
            let name = format!("{psa}-{source}");
            let run = unitsync(
                temp.path(),
                &["init", "--psa", psa, "--source", source, &name],
            );
            assert_eq!(run.code, Some(0), "{name}: {}", run.stderr);
            assert_eq!(run.stderr, "", "{name}");
            let created: Vec<String> = FILES
                .iter()
                .map(|f| format!("created {name}/{f}"))
                .collect();
            assert!(
                run.stdout.starts_with(&(created.join("\n") + "\n")),
                "{name}: {}",
                run.stdout
            );
            assert!(
                run.stdout
                    .trim_end()
                    .ends_with(&format!("unitsync -C {name} doctor")),
                "{name}: {}",
                run.stdout
            );
            let repo = temp.path().join(&name);
            for file in FILES {
                assert!(repo.join(file).is_file(), "{name}: {file}");
            }
            let settings = std::fs::read_to_string(repo.join("unitsync.yaml")).unwrap();
            assert!(
                settings
                    .starts_with("# yaml-language-server: $schema=schema/unitsync.schema.json\n")
            );
            assert!(
                settings.contains(&format!("psa:\n  {psa}:\n")),
                "{settings}"
            );
            assert!(
                settings.contains(&format!("source:\n  {source}:\n")),
                "{settings}"
            );
            let mappings = std::fs::read_to_string(repo.join("mappings.yaml")).unwrap();
            assert!(
                mappings
                    .starts_with("# yaml-language-server: $schema=schema/mappings.schema.json\n")
            );
            assert!(mappings.ends_with("\nmappings: []\n"));
            let (own, other) = match psa {
                "connectwise" => ("#     addition:", "service:"),
                _ => ("#     service:", "addition:"),
            };
            assert!(
                mappings.contains(own) && !mappings.contains(other),
                "{mappings}"
            );
            let lock = std::fs::read_to_string(repo.join("units.lock.yaml")).unwrap();
            assert!(
                lock.starts_with("# yaml-language-server: $schema=schema/units.lock.schema.json\n")
            );
            assert!(lock.ends_with("\nunits: {}\n"));
            for workflow in ["unitsync-apply.yml", "unitsync-propose.yml"] {
                let text =
                    std::fs::read_to_string(repo.join(".github/workflows").join(workflow)).unwrap();
                let example = std::fs::read_to_string(
                    Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("examples/workflows")
                        .join(workflow),
                )
                .unwrap();
                assert_eq!(
                    text,
                    format!(
                        "# yaml-language-server: $schema=https://json.schemastore.org/github-workflow.json\n{example}"
                    )
                );
            }

            // The scaffold is a valid billing repo, and its schemas are current.
            let run = unitsync(&repo, &["validate"]);
            assert_eq!(run.code, Some(0), "{name}: {}", run.stderr);
            assert!(
                run.stdout
                    .starts_with("ok: 1 settings file, 0 mappings, 0 lock entries"),
                "{name}: {}",
                run.stdout
            );
            // Only a missing local data file may warn.
            for line in run.stderr.lines().filter(|l| l.contains("warning")) {
                assert!(line.contains("does not exist"), "{name}: {line}");
            }
            let run = unitsync(&repo, &["schema", "--check"]);
            assert_eq!(run.code, Some(0), "{name}: {}", run.stderr);
        }
    }
}

#[test]
fn init_refuses_to_overwrite_and_writes_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("billing");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("mappings.yaml"), "mappings: [] # mine\n").unwrap();
    let run = unitsync(&repo, &["init", "--psa", "autotask"]);
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        "error: not overwriting existing files: mappings.yaml\n\
         hint: run init in an empty folder, or move these files away first; nothing was written\n"
    );
    let left: Vec<String> = std::fs::read_dir(&repo)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["mappings.yaml"]);
    assert_eq!(
        std::fs::read_to_string(repo.join("mappings.yaml")).unwrap(),
        "mappings: [] # mine\n"
    );

    // In the current folder, a second init refuses every file it would write.
    let fresh = temp.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    assert_eq!(unitsync(&fresh, &["init"]).code, Some(0));
    let run = unitsync(&fresh, &["init"]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.starts_with(&format!(
            "error: not overwriting existing files: {}\n",
            FILES.join(", ")
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn completions_name_every_subcommand() {
    let temp = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let run = unitsync(temp.path(), &["completions", shell]);
        assert_eq!(run.code, Some(0), "{shell}: {}", run.stderr);
        for sub in [
            "validate",
            "plan",
            "propose",
            "apply",
            "history",
            "prune",
            "init",
            "completions",
            "man",
        ] {
            assert!(run.stdout.contains(sub), "{shell} lacks {sub}");
        }
    }
    let run = unitsync(temp.path(), &["completions", "tcsh"]);
    assert_eq!(run.code, Some(1));
}

#[test]
fn man_page_is_roff() {
    let temp = tempfile::tempdir().unwrap();
    let run = unitsync(temp.path(), &["man"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let th = run
        .stdout
        .lines()
        .find(|l| !l.starts_with(".ie") && !l.starts_with(".el"))
        .unwrap();
    assert!(th.starts_with(".TH unitsync 1"), "{th}");
    assert!(run.stdout.contains("history"));

    let run = unitsync(temp.path(), &["man", "--out", "man"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for page in [
        "unitsync.1",
        "unitsync-history.1",
        "unitsync-history-prune.1",
        "unitsync-init.1",
    ] {
        let text = std::fs::read_to_string(temp.path().join("man").join(page)).unwrap();
        assert!(text.contains(".TH "), "{page}");
        assert!(
            run.stdout.contains(&format!("wrote man/{page}\n")),
            "{}",
            run.stdout
        );
    }
}
