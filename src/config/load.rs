//! Reading a billing repo: every file through YAML → schema → typed model → meaning, collecting
//! every problem in one pass.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use schemars::Schema;
use serde::de::DeserializeOwned;

use super::diagnostic::{Diagnostic, Pos, Severity, summary};
use super::humanize::{SUGGEST_WORK, quote, schema_diagnostics, suggest, suggest_within};
use super::schema::FileKind;
use super::yaml::{self, YamlDoc, push_segment};
use super::{
    LOCK_FILE, Lock, MAPPINGS_DIR, MAPPINGS_FILE, Mapping, MappingsFile, PsaKind, RefKind,
    SETTINGS_FILE, Settings, SourceSettings, TRUE_UPS_FILE, TrueUps,
};

/// A billing repo that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct BillingRepo {
    pub root: PathBuf,
    pub settings: Settings,
    /// All mappings, in file order (`mappings.yaml`, or `mappings/*.yaml` sorted by name).
    pub mappings: Vec<Mapping>,
    /// Where each entry of `mappings` was written, same order.
    pub mapping_sources: Vec<MappingSource>,
    /// `units.lock.yaml`, or an empty lock when the file does not exist yet.
    pub lock: Lock,
    /// A reviewer's note per lock entry: the comment after its value on the same line
    /// (`bobs-dentistry/shadowprotect-desktop: 4  # ticket 4411: fourth desktop`).
    pub lock_notes: BTreeMap<String, String>,
    /// `true-ups.yaml`: approved (or declined) one-time corrections; empty when the file does
    /// not exist.
    pub true_ups: TrueUps,
}

/// Where a mapping was written, for messages about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingSource {
    /// Relative to the billing repo root, such as `mappings.yaml` or `mappings/acme.yaml`.
    pub file: PathBuf,
    /// Index in that file's `mappings:` list (0-based).
    pub index: usize,
    /// Where the mapping starts.
    pub pos: Pos,
}

impl fmt::Display for MappingSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.pos)
    }
}

impl BillingRepo {
    /// The mapping with this effective id.
    pub fn mapping(&self, id: &str) -> Option<&Mapping> {
        self.mappings.iter().find(|m| m.effective_id() == id)
    }
}

/// The billing repo had problems; [`fmt::Display`] lists them all, then a summary line.
#[derive(Debug, Clone, thiserror::Error)]
pub struct LoadError {
    pub root: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.diagnostics {
            writeln!(f, "{d}")?;
        }
        write!(
            f,
            "{} in billing repo {}",
            summary(&self.diagnostics),
            self.root.display()
        )
    }
}

/// Loads the billing repo at `root`, or fails with every problem found (warnings alone do not
/// fail it).
pub fn load(root: &Path) -> Result<BillingRepo, LoadError> {
    match check(root) {
        (Some(repo), _) => Ok(repo),
        (None, diagnostics) => Err(LoadError {
            root: root.to_path_buf(),
            diagnostics,
        }),
    }
}

/// Checks every file of the billing repo at `root` and reports all problems, sorted by file and
/// position. The repo is returned when there are no errors (there may be warnings).
pub fn check(root: &Path) -> (Option<BillingRepo>, Vec<Diagnostic>) {
    check_files(root, Files::Disk(root))
}

/// [`check`] on files held in memory, by path relative to the repo root (`unitsync.yaml`,
/// `mappings/acme.yaml`): the same checks without a disk, for fuzzing and tests.
pub(crate) fn check_in_memory(
    files: &BTreeMap<PathBuf, Vec<u8>>,
) -> (Option<BillingRepo>, Vec<Diagnostic>) {
    check_files(Path::new(""), Files::Memory(files))
}

/// Where the billing repo's files are read from.
#[derive(Clone, Copy)]
enum Files<'a> {
    Disk(&'a Path),
    /// Contents by path relative to the root.
    Memory(&'a BTreeMap<PathBuf, Vec<u8>>),
}

impl Files<'_> {
    fn is_file(self, relative: &Path) -> bool {
        match self {
            Files::Disk(root) => root.join(relative).is_file(),
            Files::Memory(files) => files.contains_key(relative),
        }
    }

    fn is_dir(self, relative: &Path) -> bool {
        match self {
            Files::Disk(root) => root.join(relative).is_dir(),
            Files::Memory(files) => {
                relative.as_os_str().is_empty() || files.keys().any(|f| f.starts_with(relative))
            }
        }
    }

    /// The names of the files directly in the directory `relative`.
    fn file_names(self, relative: &Path) -> std::io::Result<Vec<String>> {
        match self {
            Files::Disk(root) => Ok(std::fs::read_dir(root.join(relative))?
                .filter_map(Result::ok)
                .filter(|e| e.path().is_file())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()),
            Files::Memory(files) => Ok(files
                .keys()
                .filter(|f| f.parent() == Some(relative))
                .filter_map(|f| f.file_name()?.to_str().map(str::to_string))
                .collect()),
        }
    }

    fn read_to_string(self, relative: &Path) -> std::io::Result<String> {
        match self {
            Files::Disk(root) => std::fs::read_to_string(root.join(relative)),
            Files::Memory(files) => {
                let bytes = files
                    .get(relative)
                    .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
                String::from_utf8(bytes.clone())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            }
        }
    }
}

fn check_files(root: &Path, fs: Files<'_>) -> (Option<BillingRepo>, Vec<Diagnostic>) {
    let mut checker = Checker {
        root,
        fs,
        diagnostics: Vec::new(),
        files: Vec::new(),
    };
    let repo = checker.run();
    let Checker {
        mut diagnostics,
        files,
        ..
    } = checker;
    let order: HashMap<&PathBuf, usize> = files
        .iter()
        .enumerate()
        .rev()
        .map(|(i, f)| (f, i))
        .collect();
    diagnostics.sort_by_key(|d| {
        let file = order.get(&d.file).copied().unwrap_or(usize::MAX);
        (file, d.line, d.column)
    });
    let failed = diagnostics.iter().any(Diagnostic::is_error);
    (if failed { None } else { repo }, diagnostics)
}

struct Checker<'a> {
    root: &'a Path,
    fs: Files<'a>,
    diagnostics: Vec<Diagnostic>,
    /// Files in the order their diagnostics are listed.
    files: Vec<PathBuf>,
}

/// One parsed file: its positions and, when it passed the schema, its typed value.
struct Loaded<T> {
    file: PathBuf,
    /// The file's text, for what the YAML model drops (comments).
    text: String,
    doc: YamlDoc,
    value: Option<T>,
    /// JSON Pointers the schema found problems at.
    bad: BTreeSet<String>,
}

impl<T> Loaded<T> {
    /// The part of the file at `pointer` as a `P`, when it is there and passed the schema.
    fn part<P: DeserializeOwned>(&self, pointer: &str) -> Option<P> {
        // Sorted, so the first pointer from `pointer/` on tells whether any is inside it.
        let inside = format!("{pointer}/");
        if self.bad.contains(pointer)
            || self
                .bad
                .range(inside.clone()..)
                .next()
                .is_some_and(|b| b.starts_with(&inside))
        {
            return None;
        }
        let value = self.doc.value.pointer(pointer)?;
        serde_json::from_value(value.clone()).ok()
    }
}

/// The mappings of one file that passed the schema, with their index in the file.
type Items = Vec<(usize, Mapping)>;

/// A mapping with where it came from.
struct Placed<'a> {
    mapping: &'a Mapping,
    file: &'a Path,
    doc: &'a YamlDoc,
    index: usize,
}

impl Placed<'_> {
    fn pointer(&self) -> String {
        format!("/mappings/{}", self.index)
    }
    fn pos(&self) -> Pos {
        self.doc.value_pos(&self.pointer())
    }
    fn name(&self) -> String {
        format!("mapping {}", self.index + 1)
    }
    /// `file:line:column` of the mapping (of its `id:` when it has one).
    fn at(&self) -> String {
        let pos = if self.has("id") {
            self.doc.value_pos(&push_segment(&self.pointer(), "id"))
        } else {
            self.pos()
        };
        format!("{}:{pos}", self.file.display())
    }
    fn has(&self, field: &str) -> bool {
        self.doc.has(&push_segment(&self.pointer(), field))
    }
    fn key_pos(&self, field: &str) -> Pos {
        self.doc.key_pos(&push_segment(&self.pointer(), field))
    }
}

impl Checker<'_> {
    fn error(&mut self, file: &Path, pos: Pos, message: impl Into<String>) -> &mut Diagnostic {
        self.diagnostics.push(Diagnostic::error(file, pos, message));
        self.diagnostics.last_mut().expect("just pushed")
    }

    fn run(&mut self) -> Option<BillingRepo> {
        // Settings.
        let settings_file = PathBuf::from(SETTINGS_FILE);
        self.files.push(settings_file.clone());
        let settings: Option<Loaded<Settings>> = if self.fs.is_file(Path::new(SETTINGS_FILE)) {
            self.load_file(&settings_file, FileKind::Settings)
        } else {
            self.error(
                &settings_file,
                Pos::START,
                if self.fs.is_dir(Path::new("")) {
                    "file not found: every billing repo has one".to_string()
                } else {
                    format!("file not found: {} is not a directory", self.root.display())
                },
            )
            .hint = Some(
                "run unitsync in the billing repo or pass -C DIR; to start one, copy examples/billing-repo/unitsync.yaml"
                    .into(),
            );
            None
        };

        // Mappings: mappings.yaml or mappings/*.yaml.
        let single = self.fs.is_file(Path::new(MAPPINGS_FILE));
        let mut mapping_files = Vec::new();
        if single {
            mapping_files.push(PathBuf::from(MAPPINGS_FILE));
        }
        if self.fs.is_dir(Path::new(MAPPINGS_DIR)) {
            if single {
                self.error(
                    Path::new(MAPPINGS_FILE),
                    Pos::START,
                    format!("both {MAPPINGS_FILE} and {MAPPINGS_DIR}/ exist; keep only one"),
                )
                .hint = Some(format!(
                    "move the mappings from {MAPPINGS_FILE} into a file under {MAPPINGS_DIR}/, or delete {MAPPINGS_DIR}/"
                ));
            }
            match self.fs.file_names(Path::new(MAPPINGS_DIR)) {
                Ok(names) => {
                    let mut names: Vec<String> = names
                        .into_iter()
                        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
                        .collect();
                    names.sort();
                    mapping_files.extend(names.iter().map(|n| Path::new(MAPPINGS_DIR).join(n)));
                }
                Err(e) => {
                    self.error(
                        Path::new(MAPPINGS_DIR),
                        Pos::START,
                        format!("cannot read: {e}"),
                    );
                }
            }
        }
        self.files.extend(mapping_files.iter().cloned());
        let mut mappings_ok = true;
        let mut loaded_mappings: Vec<Loaded<MappingsFile>> = Vec::new();
        for file in &mapping_files {
            match self.load_file::<MappingsFile>(file, FileKind::Mappings) {
                Some(l) => {
                    mappings_ok &= l.value.is_some();
                    loaded_mappings.push(l);
                }
                None => mappings_ok = false,
            }
        }

        // Lock.
        let lock_file = PathBuf::from(LOCK_FILE);
        self.files.push(lock_file.clone());
        let lock: Option<Loaded<Lock>> = if self.fs.is_file(Path::new(LOCK_FILE)) {
            self.load_file(&lock_file, FileKind::Lock)
        } else {
            Some(Loaded {
                file: lock_file,
                text: String::new(),
                doc: yaml::parse(Path::new(LOCK_FILE), "{}")
                    .0
                    .expect("empty mapping parses"),
                value: Some(Lock::default()),
                bad: BTreeSet::new(),
            })
        };

        // True-ups: optional; only `propose` writes it.
        let true_ups: Option<Loaded<TrueUps>> = if self.fs.is_file(Path::new(TRUE_UPS_FILE)) {
            let file = PathBuf::from(TRUE_UPS_FILE);
            self.files.push(file.clone());
            self.load_file(&file, FileKind::TrueUps)
        } else {
            None
        };
        let true_ups_missing_or_ok = !self.fs.is_file(Path::new(TRUE_UPS_FILE))
            || true_ups.as_ref().is_some_and(|l| l.value.is_some());

        // Meaning. Parts of a file that passed the schema are checked even when other parts did
        // not, so that one run reports everything.
        // The PSA is known from its key even when its settings have problems.
        let psa = settings
            .as_ref()
            .and_then(|s| s.doc.value.get("psa")?.as_object())
            .and_then(|psa| match psa.keys().collect::<Vec<_>>().as_slice() {
                [key] if *key == "connectwise" => Some(PsaKind::ConnectWise),
                [key] if *key == "autotask" => Some(PsaKind::Autotask),
                _ => None,
            });
        if let Some(s) = &settings {
            self.check_settings(s);
        }
        let items: Vec<(&Loaded<MappingsFile>, Items)> = loaded_mappings
            .iter()
            .map(|l| {
                let items = match &l.value {
                    Some(v) => v.mappings.iter().cloned().enumerate().collect(),
                    None => {
                        let n = l
                            .doc
                            .value
                            .get("mappings")
                            .and_then(|m| m.as_array())
                            .map_or(0, Vec::len);
                        (0..n)
                            .filter_map(|i| {
                                l.part::<Mapping>(&format!("/mappings/{i}")).map(|m| (i, m))
                            })
                            .collect()
                    }
                };
                (l, items)
            })
            .collect();
        let placed: Vec<Placed<'_>> = items
            .iter()
            .flat_map(|(l, items)| {
                items.iter().map(move |(index, mapping)| Placed {
                    mapping,
                    file: &l.file,
                    doc: &l.doc,
                    index: *index,
                })
            })
            .collect();
        if let Some(psa) = psa {
            for m in &placed {
                self.check_targets(m, psa);
            }
        }
        // `billing.sync_*`, read from the document so it counts even when other settings fail.
        let global_sync = |field: &str| {
            settings
                .as_ref()
                .and_then(|s| s.doc.value.pointer(&format!("/billing/{field}"))?.as_bool())
                .unwrap_or(false)
        };
        let (sync_price, sync_cost) = (global_sync("sync_price"), global_sync("sync_cost"));
        for m in &placed {
            self.check_prices(m, sync_price, sync_cost);
        }
        self.check_ids_and_lines(&placed);
        if let Some(
            l @ Loaded {
                value: Some(lock), ..
            },
        ) = &lock
        {
            // Unknown ids only mean something when every mapping could be read.
            let ids: Option<Vec<String>> =
                mappings_ok.then(|| placed.iter().map(|m| m.mapping.effective_id()).collect());
            self.check_lock(&l.file, &l.doc, lock, ids.as_deref());
        }
        if let Some(
            l @ Loaded {
                value: Some(true_ups),
                ..
            },
        ) = &true_ups
        {
            let ids: Option<Vec<String>> =
                mappings_ok.then(|| placed.iter().map(|m| m.mapping.effective_id()).collect());
            self.check_true_ups(&l.file, &l.doc, true_ups, ids.as_deref());
        }
        if let Some(s) = &settings
            && s.doc.value.pointer("/billing/true_ups") == Some(&serde_json::Value::Bool(true))
            && s.doc.value.pointer("/approval").and_then(|a| a.as_str()) == Some("automatic")
        {
            self.error(
                &s.file,
                s.doc.value_pos("/billing/true_ups"),
                "billing.true_ups needs approval: manual; a true-up is written only after a person merges its pull request, and approval: automatic opens none",
            )
            .hint = Some("set approval: manual, or remove billing.true_ups".into());
        }

        let settings = settings?.value?;
        let lock_loaded = lock?;
        let lock_notes = trailing_comments(&lock_loaded.text, &lock_loaded.doc, "/units");
        let lock = lock_loaded.value?;
        if !mappings_ok || !true_ups_missing_or_ok {
            return None;
        }
        let true_ups = true_ups.and_then(|l| l.value).unwrap_or_default();
        Some(BillingRepo {
            root: self.root.to_path_buf(),
            settings,
            mappings: placed.iter().map(|m| m.mapping.clone()).collect(),
            mapping_sources: placed
                .iter()
                .map(|m| MappingSource {
                    file: m.file.to_path_buf(),
                    index: m.index,
                    pos: m.pos(),
                })
                .collect(),
            lock,
            lock_notes,
            true_ups,
        })
    }

    /// YAML, then schema, then the typed model. `None` when the YAML itself is unreadable.
    fn load_file<T: DeserializeOwned>(&mut self, file: &Path, kind: FileKind) -> Option<Loaded<T>> {
        let text = match self.fs.read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                self.error(file, Pos::START, "not UTF-8 text").hint =
                    Some("save the file as UTF-8".into());
                return None;
            }
            Err(e) => {
                self.error(file, Pos::START, format!("cannot read: {e}"));
                return None;
            }
        };
        // Duplicate keys are reported here; the document keeps each key's first value, so the
        // rest of the file can still be checked.
        let (doc, diagnostics) = yaml::parse(file, &text);
        self.diagnostics.extend(diagnostics);
        let doc = doc?;
        let (schema, validator) = match compiled_schema(kind) {
            Ok(compiled) => compiled,
            Err(e) => {
                self.error(file, Pos::START, format!("internal error: bad schema: {e}"));
                return None;
            }
        };
        let (schema_errors, bad) = schema_diagnostics(
            file,
            &doc,
            schema.as_value(),
            validator.iter_errors(&doc.value),
        );
        let mut failed = !schema_errors.is_empty();
        self.diagnostics.extend(schema_errors);
        let mut bad = bad;
        if kind == FileKind::Mappings || kind == FileKind::TrueUps {
            // The schema checks a date's shape; the calendar is checked here, where the error
            // can point at the value (the typed model would fail without a position).
            for (pointer, text, reason) in calendar_date_errors(&doc.value) {
                let what = crate::config::humanize::context(&pointer).unwrap_or_default();
                self.error(
                    file,
                    doc.value_pos(&pointer),
                    format!("{what}: {} is not a date ({reason})", quote(&text)),
                )
                .hint = Some(if kind == FileKind::TrueUps {
                    "write the day as YYYY-MM-DD, such as 2026-12-31".into()
                } else {
                    "write the term's last day as YYYY-MM-DD, such as 2027-03-31".into()
                });
                failed = true;
                bad.push(pointer);
            }
        }
        let value = if failed {
            None
        } else {
            match serde_json::from_value::<T>(doc.value.clone()) {
                Ok(v) => Some(v),
                Err(e) => {
                    self.error(file, Pos::START, e.to_string());
                    None
                }
            }
        };
        Some(Loaded {
            file: file.to_path_buf(),
            text,
            doc,
            value,
            bad: bad.into_iter().collect(),
        })
    }

    fn check_settings(&mut self, settings: &Loaded<Settings>) {
        let (file, doc) = (settings.file.as_path(), &settings.doc);
        if let Some(timezone) = settings.part::<String>("/schedule/timezone")
            && let Err(e) = jiff::tz::TimeZone::get(&timezone)
        {
            let names: Vec<String> = jiff::tz::db()
                .available()
                .map(|n| n.as_str().to_string())
                .collect();
            let mut message = format!("schedule.timezone: unknown time zone {}", quote(&timezone));
            match suggest(&timezone, names.iter().map(String::as_str)) {
                Some(s) => message.push_str(&format!("; did you mean {}?", quote(s))),
                None => tracing::debug!("time zone lookup: {e}"),
            }
            self.error(file, doc.value_pos("/schedule/timezone"), message)
                .hint = Some(
                "use an IANA time zone name, such as America/Los_Angeles, Europe/London or UTC"
                    .into(),
            );
        }
        for field in ["refresh", "sync"] {
            let pointer = format!("/schedule/{field}");
            if let Some(text) = settings.part::<String>(&pointer)
                && let Err(problem) = check_schedule_times(&text)
            {
                self.error(
                    file,
                    doc.value_pos(&pointer),
                    format!("schedule.{field}: {}: {problem}", quote(&text)),
                );
            }
        }
        if let Some(repository) = settings.part::<String>("/github/repository") {
            let parts: Vec<&str> = repository.split('/').collect();
            if parts.len() != 2 || parts.iter().any(|p| p.trim().is_empty()) {
                self.error(
                    file,
                    doc.value_pos("/github/repository"),
                    format!(
                        "github.repository: {} is not owner/name",
                        quote(&repository)
                    ),
                )
                .hint = Some(
                    "write the GitHub repository as owner/name, such as computech/billing".into(),
                );
            }
        }
        let source = settings.part::<SourceSettings>("/source");
        let local: Vec<(&str, &str, &String)> = match &source {
            Some(SourceSettings::Csv(csv)) => vec![("csv", "path", &csv.path)],
            Some(SourceSettings::Json(json)) => vec![("json", "path", &json.path)],
            Some(SourceSettings::Storagecraft(sc)) => {
                let mut paths = vec![("storagecraft", "billing_detail", &sc.billing_detail)];
                if let Some(cloud) = &sc.cloud_usage {
                    paths.push(("storagecraft", "cloud_usage", cloud));
                }
                paths
            }
            _ => Vec::new(),
        };
        for (kind, key, path) in local {
            if self.fs.is_file(Path::new(path)) {
                continue;
            }
            let pointer = format!("/source/{kind}/{key}");
            self.diagnostics.push(
                Diagnostic::warning(
                    file,
                    doc.value_pos(&pointer),
                    format!("source.{kind}.{key}: {} does not exist", quote(path)),
                )
                .with_hint(
                    "the path is relative to the billing repo; fine if an earlier step writes the file before unitsync runs",
                ),
            );
        }
        if let Some(SourceSettings::Http(http)) = source {
            let (present, missing, hint) = match (&http.auth_header, &http.auth_env) {
                (Some(_), None) => (
                    "auth_header",
                    "auth_env",
                    "set auth_env to the name of the environment variable that holds the header's value, or remove auth_header",
                ),
                (None, Some(_)) => (
                    "auth_env",
                    "auth_header",
                    "set auth_header to the header that carries the credential, such as Authorization or X-Api-Key, or remove auth_env",
                ),
                _ => return,
            };
            self.error(
                file,
                doc.key_pos(&format!("/source/http/{present}")),
                format!("source.http: {present} is set but {missing} is not"),
            )
            .hint = Some(hint.into());
        }
    }

    /// A mapping names its PSA line in the words of the repo's PSA.
    /// A price or cost that would never be written is a mistake, not a preference: without
    /// `sync_price`/`sync_cost`, unitsync only reads prices, and the line would silently keep
    /// billing the PSA's.
    fn check_prices(&mut self, m: &Placed<'_>, sync_price: bool, sync_cost: bool) {
        let mapping = m.mapping;
        for (field, value, flag, sync) in [
            (
                "price",
                mapping.price.is_some(),
                "sync_price",
                mapping.sync_price.unwrap_or(sync_price),
            ),
            (
                "cost",
                mapping.cost.is_some(),
                "sync_cost",
                mapping.sync_cost.unwrap_or(sync_cost),
            ),
        ] {
            let pointer = push_segment(&m.pointer(), field);
            if value && !sync {
                self.error(
                    m.file,
                    m.doc.value_pos(&pointer),
                    format!(
                        "{field} in {}: it is written to the PSA only with {flag}: true, which is off",
                        m.name()
                    ),
                )
                .hint = Some(format!(
                    "add `{flag}: true` to the mapping (or to billing: in unitsync.yaml), or remove {field} to keep the PSA's"
                ));
            }
            let own_flag = if field == "price" {
                mapping.sync_price
            } else {
                mapping.sync_cost
            };
            if own_flag == Some(true) && !value {
                let pointer = push_segment(&m.pointer(), flag);
                self.error(
                    m.file,
                    m.doc.value_pos(&pointer),
                    format!("{flag} in {}: there is no {field} to write", m.name()),
                )
                .hint = Some(format!(
                    "add the {field} to write (`{field}: 4.25`), or remove {flag}"
                ));
            }
        }
    }

    fn check_targets(&mut self, m: &Placed<'_>, psa: PsaKind) {
        let mapping = m.mapping;
        for field in ["company", "agreement", "addition", "contract", "service"] {
            let pointer = push_segment(&m.pointer(), field);
            if m.doc.has_leading_zeros(&pointer)
                && let Some(text) = m.doc.value.pointer(&pointer).and_then(|v| v.as_str())
            {
                let number = text.trim_start_matches(['+', '-']).trim_start_matches('0');
                let number = if number.is_empty() { "0" } else { number };
                self.diagnostics.push(
                    Diagnostic::warning(
                        m.file,
                        m.doc.value_pos(&pointer),
                        format!(
                            "{field} in {}: {text} is read as the identifier {}, not the id {number}",
                            m.name(),
                            quote(text)
                        ),
                    )
                    .with_hint(format!(
                        "write {number} for an id, or quote {} if it really is an identifier",
                        quote(text)
                    )),
                );
            }
        }
        // (own field, its value, the other PSA's field for the same thing, its value)
        let roles = match psa {
            PsaKind::ConnectWise => [
                (
                    "agreement",
                    &mapping.agreement,
                    "contract",
                    &mapping.contract,
                ),
                ("addition", &mapping.addition, "service", &mapping.service),
            ],
            PsaKind::Autotask => [
                (
                    "contract",
                    &mapping.contract,
                    "agreement",
                    &mapping.agreement,
                ),
                ("service", &mapping.service, "addition", &mapping.addition),
            ],
        };
        let (psa_key, other_psa) = match psa {
            PsaKind::ConnectWise => ("connectwise", "an Autotask"),
            PsaKind::Autotask => ("autotask", "a ConnectWise"),
        };
        for (own, own_value, foreign, foreign_value) in roles {
            if foreign_value.is_some() {
                let hint = match psa {
                    PsaKind::ConnectWise => format!(
                        "ConnectWise calls an Autotask contract an agreement and a contract service an addition: rename {foreign}: to {own}: (with the ConnectWise {own}'s id or identifier)"
                    ),
                    PsaKind::Autotask => format!(
                        "Autotask calls a ConnectWise agreement a contract and an addition a contract service: rename {foreign}: to {own}: (with {})",
                        if own == "service" {
                            "the Autotask contract service's id, or the service's SKU"
                        } else {
                            "the Autotask contract's id"
                        }
                    ),
                };
                self.error(
                    m.file,
                    m.key_pos(foreign),
                    format!(
                        "{} uses {}, {other_psa} field, but psa is {psa_key}",
                        m.name(),
                        quote(foreign)
                    ),
                )
                .hint = Some(hint);
            } else if own_value.is_none() {
                let hint = match own {
                    "agreement" => format!(
                        "add agreement: with the id of the ConnectWise agreement that bills {}",
                        quote(&mapping.account)
                    ),
                    "addition" => format!(
                        "add addition: with the product identifier of the agreement's addition that bills {} (or {{ id: N }})",
                        quote(&mapping.license_type)
                    ),
                    "contract" => format!(
                        "add contract: with the id of the Autotask contract that bills {}",
                        quote(&mapping.account)
                    ),
                    _ => format!(
                        "add service: with the id of the contract service that bills {}",
                        quote(&mapping.license_type)
                    ),
                };
                self.error(
                    m.file,
                    m.pos(),
                    format!("{} has no {}", m.name(), quote(own)),
                )
                .hint = Some(hint);
            }
        }
    }

    fn check_ids_and_lines(&mut self, placed: &[Placed<'_>]) {
        let mut ids: HashMap<String, usize> = HashMap::new();
        // A PSA line, compared by what the references mean: `SP-DESKTOP` and
        // `{ identifier: SP-DESKTOP }` name the same record.
        type Line<'r> = (
            RefKind<'r>,
            &'static str,
            RefKind<'r>,
            &'static str,
            RefKind<'r>,
        );
        let mut lines: HashMap<Line<'_>, usize> = HashMap::new();
        for (i, m) in placed.iter().enumerate() {
            let id = m.mapping.effective_id();
            if let Some(&first) = ids.get(&id) {
                let first = &placed[first];
                let explicit = m.has("id");
                let pos = if explicit {
                    m.doc.value_pos(&push_segment(&m.pointer(), "id"))
                } else {
                    m.pos()
                };
                let hint = if explicit {
                    "mapping ids must be unique; choose another id".to_string()
                } else {
                    "the id is derived from account and license_type; give one of the two mappings an explicit id:".to_string()
                };
                self.error(
                    m.file,
                    pos,
                    format!(
                        "duplicate mapping id {}: {} at {} has it too",
                        quote(&id),
                        first.name(),
                        first.at()
                    ),
                )
                .hint = Some(hint);
            } else {
                ids.insert(id, i);
            }
            let mapping = m.mapping;
            let line = match (
                &mapping.agreement,
                &mapping.addition,
                &mapping.contract,
                &mapping.service,
            ) {
                (Some(a), Some(b), _, _) => Some((&mapping.company, "agreement", a, "addition", b)),
                (_, _, Some(a), Some(b)) => Some((&mapping.company, "contract", a, "service", b)),
                _ => None,
            };
            if let Some((company, ka, a, kb, b)) = line {
                let key = (company.kind(), ka, a.kind(), kb, b.kind());
                if let Some(&first) = lines.get(&key) {
                    let first = &placed[first];
                    self.error(
                        m.file,
                        m.pos(),
                        format!(
                            "{} bills the same PSA line as {} ({}): company {company}, {ka} {a}, {kb} {b}",
                            m.name(),
                            first.name(),
                            first.at()
                        ),
                    )
                    .hint = Some(
                        "a PSA line can follow only one vendor count; remove one of the mappings or point it at another line".into(),
                    );
                } else {
                    lines.insert(key, i);
                }
            }
        }
    }

    fn check_lock(&mut self, file: &Path, doc: &YamlDoc, lock: &Lock, ids: Option<&[String]>) {
        let known: Option<HashSet<&str>> = ids.map(|ids| ids.iter().map(String::as_str).collect());
        // One budget for every "did you mean" of the file: each compares with every mapping id.
        let mut work = 4 * SUGGEST_WORK;
        for (id, units) in &lock.units {
            let pointer = push_segment("/units", id);
            if units.is_negative() {
                self.error(
                    file,
                    doc.value_pos(&pointer),
                    format!("lock entry {}: {units} is negative", quote(id)),
                )
                .hint = Some("unit counts are 0 or more".into());
            }
            let (Some(ids), Some(known)) = (ids, &known) else {
                continue;
            };
            if known.contains(id.as_str()) {
                continue;
            }
            let mut message = format!("lock entry {} matches no mapping", quote(id));
            if let Some(s) = suggest_within(id, ids.iter().map(String::as_str), &mut work) {
                message.push_str(&format!("; did you mean {}?", quote(s)));
            }
            self.error(file, doc.key_pos(&pointer), message).hint = Some(
                "delete the line, or correct the id: a mapping's id is its id: or is made from account and license_type, such as bobs-dentistry/shadowprotect-desktop"
                    .into(),
            );
        }
    }
}

impl Checker<'_> {
    /// An approved true-up must name a mapping (its line is where it is charged), have a unique
    /// id (the PSA record is found by it) and a first day no later than its last.
    fn check_true_ups(
        &mut self,
        file: &Path,
        doc: &YamlDoc,
        true_ups: &TrueUps,
        ids: Option<&[String]>,
    ) {
        let known: Option<HashSet<&str>> = ids.map(|ids| ids.iter().map(String::as_str).collect());
        let mut seen = HashSet::new();
        for (i, t) in true_ups.true_ups.iter().enumerate() {
            let pointer = format!("/true_ups/{i}");
            if !seen.insert(t.id.as_str()) {
                self.error(
                    file,
                    doc.value_pos(&format!("{pointer}/id")),
                    format!("true-up {} is listed twice", quote(&t.id)),
                )
                .hint = Some("delete one of them: each true-up is written once".into());
            }
            if t.first_day > t.last_day {
                self.error(
                    file,
                    doc.value_pos(&format!("{pointer}/last_day")),
                    format!(
                        "true-up {}: last_day {} is before first_day {}",
                        quote(&t.id),
                        t.last_day,
                        t.first_day
                    ),
                )
                .hint = Some("the days run from first_day to last_day, both included".into());
            }
            if let Some(known) = &known
                && !known.contains(t.mapping.as_str())
                && !t.decline
            {
                let mut message = format!(
                    "true-up {}: mapping {} does not exist, so there is no line to charge it on",
                    quote(&t.id),
                    quote(&t.mapping)
                );
                if let Some(s) = suggest(&t.mapping, known.iter().copied()) {
                    message.push_str(&format!("; did you mean {}?", quote(s)));
                }
                self.error(file, doc.value_pos(&format!("{pointer}/mapping")), message)
                    .hint = Some(
                    "correct the mapping id, or set decline: true to keep it unwritten".into(),
                );
            }
        }
    }
}

/// The schema of a kind of file and its validator, compiled once per process.
fn compiled_schema(kind: FileKind) -> &'static Result<(Schema, jsonschema::Validator), String> {
    type Compiled = OnceLock<Result<(Schema, jsonschema::Validator), String>>;
    static COMPILED: [Compiled; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    let slot = match kind {
        FileKind::Settings => 0,
        FileKind::Mappings => 1,
        FileKind::Lock => 2,
        FileKind::TrueUps => 3,
    };
    COMPILED[slot].get_or_init(|| {
        let schema = kind.schema();
        let validator = jsonschema::validator_for(schema.as_value()).map_err(|e| e.to_string())?;
        Ok((schema, validator))
    })
}

/// The comment after each value of the mapping at `pointer`, on the value's own line, by key:
/// how a reviewer annotates a lock line. Only block-style lines have one (`key: 4  # why`); a
/// `#` inside the value (a quoted string) is not a comment, and neither is one without a space
/// before it, as in YAML.
fn trailing_comments(text: &str, doc: &YamlDoc, pointer: &str) -> BTreeMap<String, String> {
    let Some(map) = doc.value.pointer(pointer).and_then(|v| v.as_object()) else {
        return BTreeMap::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    map.iter()
        .filter_map(|(key, value)| {
            if !(value.is_number() || value.is_string()) {
                return None;
            }
            let pos = doc.value_pos(&push_segment(pointer, key));
            let line = lines.get(pos.line.checked_sub(1)?)?;
            // Columns count characters.
            let rest: String = line.chars().skip(pos.column.saturating_sub(1)).collect();
            let after_value = match rest.chars().next()? {
                quote @ ('"' | '\'') => {
                    let close = rest[1..].find(quote)? + 2;
                    &rest[close..]
                }
                _ => rest.find(char::is_whitespace).map_or("", |at| &rest[at..]),
            };
            let comment = after_value.trim_start().strip_prefix('#')?;
            if !after_value.starts_with(char::is_whitespace) {
                return None;
            }
            let note = comment.trim();
            (!note.is_empty()).then(|| (key.clone(), note.to_string()))
        })
        .collect()
}

/// The mappings' `commitment.ends` values that have a date's shape but name no day of the
/// calendar (2027-02-30), as (pointer, text, why).
fn calendar_date_errors(value: &serde_json::Value) -> Vec<(String, String, String)> {
    let dated: [(&str, &[&str]); 2] = [
        ("mappings", &["/commitment/ends"]),
        ("true_ups", &["/first_day", "/last_day"]),
    ];
    let mut errors = Vec::new();
    for (list, fields) in dated {
        let Some(items) = value.get(list).and_then(|m| m.as_array()) else {
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            for field in fields {
                let Some(text) = item.pointer(field).and_then(|v| v.as_str()) else {
                    continue;
                };
                if let Err(error) = text.parse::<jiff::civil::Date>() {
                    errors.push((
                        format!("/{list}/{i}{field}"),
                        text.to_string(),
                        error.to_string(),
                    ));
                }
            }
        }
    }
    errors
}

/// Checks the numbers in a schedule the schema's pattern already accepted the shape of.
fn check_schedule_times(text: &str) -> Result<(), String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (day, time) = match words.as_slice() {
        ["daily", "at", time] => (None, *time),
        ["monthly", "on", "day", day, "at", time] => (Some(*day), *time),
        _ => return Ok(()),
    };
    if let Some(day) = day {
        let d: u32 = day.parse().map_err(|_| format!("{day} is not a day"))?;
        if !(1..=31).contains(&d) {
            return Err(format!("day {d} does not exist; days run from 1 to 31"));
        }
    }
    let (h, m) = time.split_once(':').ok_or("expected HH:MM")?;
    let h: u32 = h.parse().map_err(|_| "expected HH:MM".to_string())?;
    let m: u32 = m.parse().map_err(|_| "expected HH:MM".to_string())?;
    if h > 23 {
        return Err(format!("hour {h} does not exist; hours run from 00 to 23"));
    }
    if m > 59 {
        return Err(format!(
            "minute {m} does not exist; minutes run from 00 to 59"
        ));
    }
    Ok(())
}

/// The entries of a `true-ups.yaml` text, or `None` when it is not one: how `propose` checks
/// that the text it is about to commit reads back as the entries it means.
pub fn parse_true_ups(text: &str) -> Option<TrueUps> {
    let (doc, diagnostics) = yaml::parse(Path::new(TRUE_UPS_FILE), text);
    if diagnostics.iter().any(|d| d.severity == Severity::Error) {
        return None;
    }
    serde_json::from_value(doc?.value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_notes_are_the_comments_after_values() {
        let text = "\
# header comment
units:
  a/plain: 4   # ticket 4411: fourth desktop
  \"b/#quoted\": 5 #  spaced   note  
  c/none: 6
  d/glued: 7# not a comment in YAML
  e/empty: 8 #
";
        let (doc, diagnostics) = yaml::parse(Path::new("units.lock.yaml"), text);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let notes = trailing_comments(text, &doc.unwrap(), "/units");
        assert_eq!(
            notes.into_iter().collect::<Vec<_>>(),
            [
                (
                    "a/plain".to_string(),
                    "ticket 4411: fourth desktop".to_string()
                ),
                ("b/#quoted".to_string(), "spaced   note".to_string()),
            ]
        );
    }

    #[test]
    fn schedule_times() {
        assert!(check_schedule_times("daily at 02:00").is_ok());
        assert!(check_schedule_times("monthly on day 31 at 23:59").is_ok());
        assert!(check_schedule_times("on-merge").is_ok());
        assert!(
            check_schedule_times("daily at 25:00")
                .unwrap_err()
                .contains("hour 25")
        );
        assert!(
            check_schedule_times("daily at 1:60")
                .unwrap_err()
                .contains("minute 60")
        );
        assert!(
            check_schedule_times("monthly on day 0 at 1:00")
                .unwrap_err()
                .contains("day 0")
        );
        assert!(
            check_schedule_times("monthly on day 32 at 1:00")
                .unwrap_err()
                .contains("day 32")
        );
    }

    /// Adversarial files must cost time in proportion to their size. Each of these was
    /// quadratic (minutes to hours, or gigabytes) before; each must now finish quickly.
    mod adversarial {
        use std::time::{Duration, Instant};

        use super::*;

        const SETTINGS: &str = "psa:\n  connectwise:\n    site: na.myconnectwise.net\n    company: c\nsource:\n  csv: { path: usage.csv }\n";

        fn timed(files: &[(&str, String)]) -> (Duration, Vec<Diagnostic>) {
            let dir = tempfile::tempdir().unwrap();
            for (name, text) in files {
                let path = dir.path().join(name);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            }
            std::fs::write(dir.path().join("usage.csv"), "").unwrap();
            let start = Instant::now();
            let (_, diagnostics) = check(dir.path());
            (start.elapsed(), diagnostics)
        }

        /// Generous for a debug build on a busy 2-core machine; the quadratic versions took
        /// minutes or ran out of memory.
        const BOUND: Duration = Duration::from_secs(20);

        #[test]
        fn a_long_key_above_many_nodes() {
            // Every node's position used to be stored under its full JSON Pointer, which repeats
            // the 200 KB key (an explicit `? key`: a plain one is at most 1024 characters): 10 GB
            // for a 300 KB file.
            let key = "k".repeat(200_000);
            let items = vec!["0"; 50_000].join(", ");
            let (took, diagnostics) = timed(&[
                (SETTINGS_FILE, format!("{SETTINGS}? {key}\n: [{items}]\n")),
                (MAPPINGS_FILE, "mappings: []\n".into()),
            ]);
            assert!(took < BOUND, "{took:?}");
            assert!(diagnostics[0].to_string().contains("unknown key"));
        }

        #[test]
        fn many_duplicate_keys_under_a_long_key() {
            let key = "k".repeat(200_000);
            let entries = vec!["a: 1"; 20_000].join(", ");
            let (took, diagnostics) = timed(&[
                (
                    SETTINGS_FILE,
                    format!("{SETTINGS}? {key}\n: {{{entries}}}\n"),
                ),
                (MAPPINGS_FILE, "mappings: []\n".into()),
            ]);
            assert!(took < BOUND, "{took:?}");
            let duplicates = diagnostics
                .iter()
                .filter(|d| d.to_string().contains("duplicate key"))
                .count();
            assert_eq!(duplicates, 19_999);
            let total: usize = diagnostics.iter().map(|d| d.to_string().len()).sum();
            assert!(total < 20_000 * 500, "{total} bytes of messages");
        }

        #[test]
        fn many_mappings_with_problems() {
            // Each mapping's part of the file was checked against every schema problem.
            let mapping = "  - { account: a, license_type: b, company: c, agreement: 1, addition: x, licence_typ: 1 }\n";
            let (took, diagnostics) = timed(&[
                (SETTINGS_FILE, SETTINGS.into()),
                (
                    MAPPINGS_FILE,
                    format!("mappings:\n{}", mapping.repeat(15_000)),
                ),
            ]);
            assert!(took < BOUND, "{took:?}");
            assert_eq!(diagnostics.len(), 15_000, "{:?}", diagnostics.first());
        }

        #[test]
        fn many_unknown_lock_entries_and_many_mappings() {
            // Every unknown entry was compared (edit distance) with every mapping id.
            let mappings: String = (0..3_000)
                .map(|i| {
                    format!("  - {{ account: account-{i}-with-a-longer-name, license_type: type, company: c, agreement: {i}, addition: x }}\n")
                })
                .collect();
            let units: String = (0..20_000)
                .map(|i| format!("  entry-{i}-that-matches-no-mapping-at-all/type: 1\n"))
                .collect();
            let (took, diagnostics) = timed(&[
                (SETTINGS_FILE, SETTINGS.into()),
                (MAPPINGS_FILE, format!("mappings:\n{mappings}")),
                (LOCK_FILE, format!("units:\n{units}")),
            ]);
            assert!(took < BOUND, "{took:?}");
            assert_eq!(diagnostics.len(), 20_000);
        }

        #[test]
        fn a_huge_time_zone() {
            // Compared with each of ~600 zone names by edit distance: 600 × 1 M × 20 cells.
            let tz = "x".repeat(1_000_000);
            let (took, diagnostics) = timed(&[
                (
                    SETTINGS_FILE,
                    format!("{SETTINGS}schedule:\n  timezone: {tz}\n"),
                ),
                (MAPPINGS_FILE, "mappings: []\n".into()),
            ]);
            assert!(took < BOUND, "{took:?}");
            assert!(diagnostics[0].to_string().contains("unknown time zone"));
        }

        #[test]
        fn deep_nesting() {
            // The parser's nesting limit (255) ends it; nothing recurses without bound.
            for text in [
                "[".repeat(100_000),
                "{a: ".repeat(100_000),
                "- ".repeat(100_000),
            ] {
                let (took, diagnostics) = timed(&[
                    (SETTINGS_FILE, text),
                    (MAPPINGS_FILE, "mappings: []\n".into()),
                ]);
                assert!(took < BOUND, "{took:?}");
                assert!(
                    diagnostics[0].to_string().contains("invalid YAML"),
                    "{diagnostics:?}"
                );
            }
        }
    }
}
