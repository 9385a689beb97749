//! Policy-as-code: Rego policies (`policies/*.rego`, `package hitl`) evaluated with the
//! embedded `regorus` interpreter before a proposal reaches an approver.
//!
//! The contract (docs/policies.md): `deny contains msg` blocks the proposal, `warn contains
//! msg` is shown to the approver, `escalate contains {"role": R, "reason": msg}` adds a
//! required approver role, `min_tier := N` may raise the tier. A message is a string or
//! `{"rule": ID, "msg": TEXT}`; the object form names the rule that produced it.
//!
//! Everything fails closed: a policy that does not compile, a data file that is not a
//! mapping, an evaluation error, a time-out or a result of the wrong shape is an error,
//! and callers treat an error as a denial. Policies never read the clock: `now` is part
//! of the input, so any past decision can be re-evaluated exactly.

use std::fmt::Write as _;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use regorus::Engine;
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::vm::RegoVM;
use regorus::utils::limits::{ExecutionTimerConfig, PolicyLengthConfig};
use serde::Serialize;
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

use crate::classify::Classification;
use crate::diag::{Diagnostic, Pos};
use crate::matrix::Matrix;
use crate::request::Request;

/// The Rego package every decision rule lives in.
pub const PACKAGE: &str = "hitl";
/// The rules of `package hitl` that make up a decision.
pub const DECISION_RULES: [&str; 4] = ["deny", "warn", "escalate", "min_tier"];
/// The package of the generated module that gathers the decision rules in one pass.
const AGGREGATE_PACKAGE: &str = "hitl_decision__";
/// The rule of [`AGGREGATE`] that holds the whole decision.
const AGGREGATE_RULE: &str = "data.hitl_decision__.decision";
/// The generated module: each decision rule wrapped in an array (`[]` when undefined),
/// so that one undefined rule does not make the whole decision undefined.
const AGGREGATE: &str = r#"package hitl_decision__

import rego.v1

default deny := []

deny := [data.hitl.deny]

default warn := []

warn := [data.hitl.warn]

default escalate := []

escalate := [data.hitl.escalate]

default min_tier := []

min_tier := [data.hitl.min_tier]

decision := {"deny": deny, "warn": warn, "escalate": escalate, "min_tier": min_tier}
"#;
/// How long one evaluation may run before it is an error.
pub const EVAL_TIME_LIMIT: Duration = Duration::from_millis(250);
/// The largest policy or data file accepted.
pub const MAX_POLICY_BYTES: usize = 512 * 1024;

/// A problem with the policy set; always fatal for the decision (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read `{}`: {message}", path.display())]
    Read { path: PathBuf, message: String },
    /// A policy or data file is invalid; positions are known.
    #[error("{0}")]
    Invalid(Box<Diagnostic>),
    #[error("policy evaluation failed: {0}")]
    Eval(String),
    /// A rule returned something the contract does not allow.
    #[error("rule `{rule}` returned {problem}")]
    Shape { rule: String, problem: String },
}

impl PolicyError {
    fn invalid(d: Diagnostic) -> Self {
        Self::Invalid(Box::new(d))
    }
}

/// A problem with a whole file (no better position known).
fn file_error(rel: &str, message: impl Into<String>) -> PolicyError {
    PolicyError::invalid(Diagnostic::new(Path::new(rel), Pos::new(1, 1), "", message))
}

/// One `deny` or `warn` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: String,
    pub message: String,
}

/// One `escalate` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Escalation {
    pub role: String,
    pub reason: String,
    pub rule: String,
}

/// The outcome of evaluating the policy set on one proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    pub deny: Vec<Finding>,
    pub warn: Vec<Finding>,
    pub escalate: Vec<Escalation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_tier: Option<u8>,
    /// sha256 of the policy set (policies and data) that produced this decision.
    pub policy_digest: String,
    /// The `now` the policies saw.
    pub evaluated_at: String,
}

#[derive(Debug, Clone)]
struct SourceFile {
    /// Relative to the workspace, with `/` separators.
    rel: String,
    text: String,
}

/// The compiled policy set of a workspace.
pub struct PolicySet {
    /// The decision module compiled for regorus's virtual machine (RVM): about four
    /// times faster than the tree-walking interpreter on the example set. The
    /// interpreter still analyses the policies at load and runs `policy test`;
    /// `vm_and_interpreter_agree` in lib/tests/domain.rs holds the two to the same
    /// decisions.
    vm: RegoVM,
    /// The last `matrix` part of an input, as JSON and converted (see `convert`).
    matrix_cache: Option<(Json, regorus::Value)>,
    files: Vec<SourceFile>,
    tests: Vec<SourceFile>,
    data: Vec<(String, Json)>,
    digest: String,
}

impl std::fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySet")
            .field(
                "files",
                &self.files.iter().map(|s| &s.rel).collect::<Vec<_>>(),
            )
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

fn rel_name(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn list(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>, PolicyError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let read_err = |e: std::io::Error| PolicyError::Read {
        path: dir.to_path_buf(),
        message: e.to_string(),
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        if path.is_file()
            && path
                .extension()
                .is_some_and(|e| exts.iter().any(|x| e == *x))
        {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn read_text(path: &Path, rel: &str) -> Result<String, PolicyError> {
    let bytes = std::fs::read(path).map_err(|e| PolicyError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if bytes.len() > MAX_POLICY_BYTES {
        return Err(file_error(
            rel,
            format!(
                "file is {} bytes, over the cap of {MAX_POLICY_BYTES} bytes",
                bytes.len()
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        file_error(
            rel,
            format!(
                "file is not valid UTF-8 (byte {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Turns a regorus error (`--> file:line:col`, a snippet, then `error: message`) into a
/// diagnostic at that position; errors without a position are placed at `fallback`.
fn rego_diagnostic(err: &str, files: &[SourceFile], fallback: &str) -> Diagnostic {
    let mut file = fallback.to_owned();
    let mut pos = Pos::new(1, 1);
    if let Some(loc) = err.lines().find_map(|l| l.trim().strip_prefix("--> ")) {
        let mut parts = loc.rsplitn(3, ':');
        let col = parts.next().and_then(|c| c.parse().ok());
        let line = parts.next().and_then(|l| l.parse().ok());
        if let (Some(line), Some(col), Some(f)) = (line, col, parts.next()) {
            file = f.to_owned();
            pos = Pos::new(line, col);
        }
    }
    let message = err
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or_else(|| err.lines().find(|l| !l.trim().is_empty()).unwrap_or(err))
        .trim()
        .to_owned();
    let d = Diagnostic::new(Path::new(&file), pos, "", message);
    match files.iter().find(|s| s.rel == file) {
        Some(src) => d.with_source(&src.text),
        None => d,
    }
}

/// Deserializes straight from the borrowed JSON: no clone of the document. (regorus's
/// `From<serde_json::Value>` would turn a failure into `Undefined`; here a failure is an
/// error, so a bad input can never evaluate as "no deny".)
fn to_value(json: &Json) -> Result<regorus::Value, PolicyError> {
    <regorus::Value as serde::Deserialize>::deserialize(json)
        .map_err(|e| PolicyError::Eval(format!("cannot convert the input: {e}")))
}

fn evaluated_at(input: &Json) -> String {
    input
        .get("now")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// `{"deny": [...], ...}` from the [`AGGREGATE`] result, where each rule is wrapped in
/// an array: `[]` when the rule is undefined, `[value]` when it is defined.
fn unwrap_decision(v: &regorus::Value) -> Result<Json, PolicyError> {
    let regorus::Value::Object(fields) = v else {
        return Err(PolicyError::Eval(format!(
            "the decision is not an object: {v}"
        )));
    };
    let mut out = serde_json::Map::new();
    for (key, wrapped) in fields.iter() {
        let name = key
            .as_string()
            .map_err(|e| PolicyError::Eval(format!("{e}")))?
            .to_string();
        let items = wrapped
            .as_array()
            .map_err(|e| PolicyError::Eval(format!("{e}")))?;
        if let Some(value) = items.first() {
            let json = serde_json::to_value(value).map_err(|e| PolicyError::Eval(e.to_string()))?;
            out.insert(name, json);
        }
    }
    Ok(Json::Object(out))
}

fn timer_config() -> ExecutionTimerConfig {
    ExecutionTimerConfig {
        limit: EVAL_TIME_LIMIT,
        check_interval: NonZeroU32::MIN.saturating_add(31),
    }
}

fn new_engine() -> Engine {
    let mut engine = Engine::new();
    engine.set_rego_v0(false);
    engine.set_strict_builtin_errors(true);
    engine.set_execution_timer_config(timer_config());
    engine.set_policy_length_config(PolicyLengthConfig {
        max_col: NonZeroU32::MIN.saturating_add(1023),
        max_file_bytes: NonZeroUsize::MIN.saturating_add(MAX_POLICY_BYTES - 1),
        max_lines: NonZeroUsize::MIN.saturating_add(19_999),
    });
    engine
}

fn is_test_file(rel: &str) -> bool {
    rel.ends_with("_test.rego")
}

impl PolicySet {
    /// Loads `policies/*.rego` (test files apart) and `policies/data/*.{json,yaml,yml}`
    /// from the workspace at `root`, and compiles them. `Ok(None)` when there is no
    /// policy file at all.
    ///
    /// # Errors
    /// The first invalid file, with its position; an unsafe variable or a rule conflict
    /// the analyser can see fails here, not at the first evaluation.
    pub fn load(root: &Path) -> Result<Option<Self>, PolicyError> {
        let dir = root.join(crate::workspace::POLICIES_DIR);
        let mut sources = Vec::new();
        for path in list(&dir, &["rego"])? {
            let rel = rel_name(root, &path);
            let text = read_text(&path, &rel)?;
            sources.push((rel, text));
        }
        for path in list(&dir.join("data"), &["json", "yaml", "yml"])? {
            let rel = rel_name(root, &path);
            let text = read_text(&path, &rel)?;
            sources.push((rel, text));
        }
        Self::from_sources(sources)
    }

    /// Reads the policy files of `policies/` from a listing of (path relative to the
    /// workspace, bytes): the configuration recorded in a git tree, as the workflow
    /// engine reads it. The same files are taken as [`PolicySet::load`] takes: `*.rego`
    /// directly in `policies/` and `*.json`, `*.yaml`, `*.yml` in `policies/data/`;
    /// anything else is ignored.
    ///
    /// # Errors
    /// As [`PolicySet::load`].
    pub fn from_files(files: Vec<(String, Vec<u8>)>) -> Result<Option<Self>, PolicyError> {
        let dir = crate::workspace::POLICIES_DIR;
        let mut sources = Vec::new();
        for (rel, bytes) in files {
            let Some(rest) = rel.strip_prefix(dir).and_then(|r| r.strip_prefix('/')) else {
                continue;
            };
            let wanted = match rest.split_once('/') {
                None => rest.ends_with(".rego"),
                Some(("data", name)) => {
                    !name.contains('/')
                        && [".json", ".yaml", ".yml"].iter().any(|x| name.ends_with(x))
                }
                Some(_) => false,
            };
            if !wanted {
                continue;
            }
            if bytes.len() > MAX_POLICY_BYTES {
                return Err(file_error(
                    &rel,
                    format!(
                        "file is {} bytes, over the cap of {MAX_POLICY_BYTES} bytes",
                        bytes.len()
                    ),
                ));
            }
            let text = String::from_utf8(bytes).map_err(|e| {
                file_error(
                    &rel,
                    format!(
                        "file is not valid UTF-8 (byte {})",
                        e.utf8_error().valid_up_to()
                    ),
                )
            })?;
            sources.push((rel, text));
        }
        sources.sort();
        Self::from_sources(sources)
    }

    /// Compiles a policy set from its sources, sorted by path: `policies/*.rego` (test
    /// files kept for `policy test`) and `policies/data/*`.
    fn from_sources(sources: Vec<(String, String)>) -> Result<Option<Self>, PolicyError> {
        let mut files = Vec::new();
        let mut tests = Vec::new();
        let mut data = Vec::new();
        let mut data_files = Vec::new();
        let data_prefix = format!("{}/data/", crate::workspace::POLICIES_DIR);
        for (rel, text) in sources {
            if rel.starts_with(&data_prefix) {
                data.push((rel.clone(), parse_data(&rel, Path::new(&rel), &text)?));
                data_files.push(SourceFile { rel, text });
            } else if is_test_file(&rel) {
                tests.push(SourceFile { rel, text });
            } else {
                files.push(SourceFile { rel, text });
            }
        }
        if files.is_empty() {
            return Ok(None);
        }
        let digest = digest_of(files.iter().chain(&tests).chain(&data_files));
        if let Some(f) = files
            .iter()
            .find(|f| package_of(&f.text) == AGGREGATE_PACKAGE)
        {
            return Err(file_error(
                &f.rel,
                format!("package `{AGGREGATE_PACKAGE}` is reserved for hitl itself"),
            ));
        }
        let mut engine = build_engine(&files, &data)?;
        engine
            .add_policy("<hitl decision>".to_owned(), AGGREGATE.to_owned())
            .map_err(|e| PolicyError::Eval(format!("the decision module does not compile: {e}")))?;
        // Analyse now, on an empty input: unsafe variables and rule conflicts are load
        // errors. A decision rule the policies do not define is simply absent.
        let load_error = |e: &dyn std::fmt::Display| {
            PolicyError::invalid(rego_diagnostic(&format!("{e}"), &files, "policies"))
        };
        engine.set_input(regorus::Value::new_object());
        engine
            .eval_rule(AGGREGATE_RULE.to_owned())
            .map_err(|e| load_error(&e))?;
        let compiled = engine
            .compile_with_entrypoint(&regorus::Rc::from(AGGREGATE_RULE))
            .map_err(|e| load_error(&e))?;
        let program = Compiler::compile_from_policy(&compiled, &[AGGREGATE_RULE])
            .map_err(|e| load_error(&e))?;
        let mut vm = RegoVM::new();
        vm.load_program(program);
        vm.set_data(engine.get_data()).map_err(|e| load_error(&e))?;
        vm.set_strict_builtin_errors(true);
        vm.set_execution_timer_config(Some(timer_config()));
        let set = Self {
            vm,
            matrix_cache: None,
            files,
            tests,
            data,
            digest,
        };
        Ok(Some(set))
    }

    /// sha256 over the sorted policy, test and data files (see docs/policies.md).
    #[must_use]
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The policy files (tests apart), relative to the workspace.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|s| s.rel.as_str())
    }

    /// Evaluates the set on one input document.
    ///
    /// # Errors
    /// Any evaluation error, time-out or wrong result shape.
    pub fn evaluate(&mut self, input: &Json) -> Result<Decision, PolicyError> {
        let value = self.convert(input)?;
        self.vm.set_input(value);
        let out = self.eval_decision_rules()?;
        decision_from(&out, &self.digest, evaluated_at(input))
    }

    /// Evaluates the set with regorus's tree-walking interpreter instead of the virtual
    /// machine: slower, and meant only to cross-check [`PolicySet::evaluate`] (the
    /// interpreter is what `policy test` runs the Rego tests with).
    ///
    /// # Errors
    /// As [`PolicySet::evaluate`].
    pub fn evaluate_with_interpreter(&self, input: &Json) -> Result<Decision, PolicyError> {
        let mut engine = build_engine(&self.files, &self.data)?;
        engine
            .add_policy("<hitl decision>".to_owned(), AGGREGATE.to_owned())
            .map_err(|e| PolicyError::Eval(format!("{e}")))?;
        engine.set_input(to_value(input)?);
        let v = engine.eval_rule(AGGREGATE_RULE.to_owned()).map_err(|e| {
            PolicyError::Eval(rego_diagnostic(&format!("{e}"), &self.files, "policies").to_string())
        })?;
        decision_from(&unwrap_decision(&v)?, &self.digest, evaluated_at(input))
    }

    /// The input as a regorus value. The `matrix` part is the same for every proposal
    /// of a run and costs about half of the conversion, so its converted value is kept
    /// and reused while the matrix JSON stays equal.
    fn convert(&mut self, input: &Json) -> Result<regorus::Value, PolicyError> {
        let Json::Object(fields) = input else {
            return to_value(input);
        };
        let mut out = regorus::Value::new_object();
        let map = out
            .as_object_mut()
            .map_err(|e| PolicyError::Eval(format!("{e}")))?;
        for (key, field) in fields {
            let value = if key == "matrix" {
                match &self.matrix_cache {
                    Some((json, value)) if json == field => value.clone(),
                    _ => {
                        let value = to_value(field)?;
                        self.matrix_cache = Some((field.clone(), value.clone()));
                        value
                    }
                }
            } else {
                to_value(field)?
            };
            map.insert(regorus::Value::from(key.as_str()), value);
        }
        Ok(out)
    }

    /// Evaluates every decision rule in one pass, into `{"deny": [...], ...}`.
    ///
    /// One `eval_rule` of the generated [`AGGREGATE`] module: helper rules the decision
    /// rules share (`amount`, limits, parsed times) are evaluated once per decision, where
    /// one `eval_rule` per decision rule would start from a clean state each time.
    ///
    /// Not `data.hitl` as a whole: regorus 0.14.1 evaluates `not <rule>` wrongly when the
    /// whole package is queried and it spans several files (the rule reads as
    /// undefined). Referring to each rule by its full path is correct;
    /// `negated_rules_across_files_evaluate_correctly` holds it to that.
    fn eval_decision_rules(&mut self) -> Result<Json, PolicyError> {
        let v = self.vm.execute().map_err(|e| {
            PolicyError::Eval(rego_diagnostic(&format!("{e}"), &self.files, "policies").to_string())
        })?;
        unwrap_decision(&v)
    }

    /// Runs every `test_*` rule of `policies/*_test.rego` (OPA's convention).
    ///
    /// # Errors
    /// When the test files do not compile together with the policies.
    pub fn run_tests(&self) -> Result<Vec<TestResult>, PolicyError> {
        let mut all = self.files.clone();
        all.extend(self.tests.iter().cloned());
        let mut engine = build_engine(&all, &self.data)?;
        let mut results = Vec::new();
        for t in &self.tests {
            let package = package_of(&t.text);
            for (line, name) in test_rules(&t.text) {
                let outcome = engine.eval_rule(format!("data.{package}.{name}"));
                let (passed, error) = match outcome {
                    Ok(v) => (v == regorus::Value::from(true), None),
                    Err(e) => (
                        false,
                        Some(rego_diagnostic(&format!("{e}"), &all, &t.rel).to_string()),
                    ),
                };
                results.push(TestResult {
                    file: t.rel.clone(),
                    line,
                    name,
                    passed,
                    error,
                });
            }
        }
        Ok(results)
    }
}

/// One `test_*` rule and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestResult {
    pub file: String,
    pub line: u64,
    pub name: String,
    pub passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The package a Rego file declares (`package hitl_test` gives `hitl_test`).
fn package_of(text: &str) -> &str {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("package "))
        .map_or("", str::trim)
}

/// `test_*` rule heads at the start of a line, once each, in file order.
fn test_rules(text: &str) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(rest) = line.strip_prefix("test_") else {
            continue;
        };
        let tail: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let name = format!("test_{tail}");
        if !out.iter().any(|(_, n)| *n == name) {
            out.push((i as u64 + 1, name));
        }
    }
    out
}

fn parse_data(rel: &str, path: &Path, text: &str) -> Result<Json, PolicyError> {
    let value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str::<Json>(text).map_err(|e| {
            PolicyError::invalid(
                Diagnostic::new(
                    Path::new(rel),
                    Pos::new(e.line() as u64, e.column() as u64),
                    "",
                    format!("invalid JSON: {e}"),
                )
                .with_source(text),
            )
        })?
    } else {
        let limits = crate::yaml::Limits {
            max_bytes: MAX_POLICY_BYTES,
            ..crate::yaml::Limits::MATRIX
        };
        crate::yaml::parse(Path::new(rel), text.as_bytes(), limits)
            .map_err(|d| match d.0.into_iter().next() {
                Some(first) => PolicyError::invalid(first),
                None => file_error(rel, "invalid YAML"),
            })?
            .0
            .to_json()
    };
    if !value.is_object() {
        return Err(file_error(
            rel,
            "a data file must hold a mapping at the top (it becomes `data.<file name>`)",
        ));
    }
    Ok(value)
}

/// Rego keywords that may be followed by `(` without being a call.
const KEYWORDS: [&str; 12] = [
    "if", "else", "not", "some", "every", "in", "with", "as", "contains", "default", "import",
    "package",
];

/// Every `name(` or `dotted.name(` outside comments and strings: (name, line, column).
fn calls(text: &str) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut line, mut col) = (0usize, 1u64, 1u64);
    let advance = |i: &mut usize, line: &mut u64, col: &mut u64, c: char| {
        *i += 1;
        if c == '\n' {
            *line += 1;
            *col = 1;
        } else {
            *col += 1;
        }
    };
    while let Some(&c) = chars.get(i) {
        if c == '#' {
            while let Some(&c) = chars.get(i) {
                if c == '\n' {
                    break;
                }
                advance(&mut i, &mut line, &mut col, c);
            }
        } else if c == '"' || c == '`' {
            advance(&mut i, &mut line, &mut col, c);
            while let Some(&d) = chars.get(i) {
                advance(&mut i, &mut line, &mut col, d);
                if d == '\\' && c == '"' {
                    if let Some(&e) = chars.get(i) {
                        advance(&mut i, &mut line, &mut col, e);
                    }
                } else if d == c || (d == '\n' && c == '"') {
                    break;
                }
            }
        } else if c.is_ascii_alphabetic() || c == '_' {
            let (start_line, start_col) = (line, col);
            let mut name = String::new();
            while let Some(&d) = chars.get(i) {
                if d.is_ascii_alphanumeric() || d == '_' || d == '.' {
                    name.push(d);
                    advance(&mut i, &mut line, &mut col, d);
                } else {
                    break;
                }
            }
            let preceded_by_dot = i > name.len() && chars.get(i - name.len() - 1) == Some(&'.');
            if chars.get(i) == Some(&'(') && !preceded_by_dot && !KEYWORDS.contains(&name.as_str())
            {
                out.push((name, start_line, start_col));
            }
        } else {
            advance(&mut i, &mut line, &mut col, c);
        }
    }
    out
}

/// Fails on a call to a function that is neither a builtin compiled into this `hitl`
/// nor defined in the policies: regorus would only notice at the first evaluation that
/// reaches it, and a policy must fail at load.
fn check_functions(engine: &mut Engine, files: &[SourceFile]) -> Result<(), PolicyError> {
    let defined = regorus::utils::gather_functions(engine.get_modules())
        .map_err(|e| PolicyError::Eval(format!("{e}")))?;
    for src in files {
        let package = package_of(&src.text);
        let imports: Vec<(String, String)> = src
            .text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("import data."))
            .map(|path| {
                let path = path
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let alias = path.rsplit('.').next().unwrap_or_default().to_owned();
                (alias, path)
            })
            .collect();
        for (name, line, col) in calls(&src.text) {
            let known = name == "print"
                || regorus::unstable::BUILTINS.contains_key(name.as_str())
                || defined.contains_key(&format!("data.{package}.{name}"))
                || defined.contains_key(&name)
                || imports.iter().any(|(alias, path)| {
                    name.strip_prefix(alias.as_str())
                        .and_then(|rest| rest.strip_prefix('.'))
                        .is_some_and(|rest| defined.contains_key(&format!("data.{path}.{rest}")))
                });
            if !known {
                return Err(PolicyError::invalid(
                    Diagnostic::new(
                        Path::new(&src.rel),
                        Pos::new(line, col),
                        "",
                        format!("unknown function `{name}`"),
                    )
                    .with_hint(Some(
                        "it is neither defined in the policies nor a builtin this hitl provides (see docs/policies.md)"
                            .to_owned(),
                    ))
                    .with_source(&src.text),
                ));
            }
        }
    }
    Ok(())
}

fn build_engine(files: &[SourceFile], data: &[(String, Json)]) -> Result<Engine, PolicyError> {
    let mut engine = new_engine();
    for src in files {
        engine
            .add_policy(src.rel.clone(), src.text.clone())
            .map_err(|e| PolicyError::invalid(rego_diagnostic(&format!("{e}"), files, &src.rel)))?;
    }
    check_functions(&mut engine, files)?;
    for (rel, value) in data {
        let stem = Path::new(rel)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let doc = regorus::Value::from(json!({ stem: value }));
        engine
            .add_data(doc)
            .map_err(|e| file_error(rel, format!("cannot merge into `data`: {e}")))?;
    }
    Ok(engine)
}

/// sha256 over `path NUL sha256(content) LF` of every file, sorted by path.
fn digest_of<'a>(files: impl Iterator<Item = &'a SourceFile>) -> String {
    let mut all: Vec<&SourceFile> = files.collect();
    all.sort_by(|a, b| a.rel.cmp(&b.rel));
    let mut h = Sha256::new();
    for f in all {
        let file_hash = Sha256::digest(f.text.as_bytes());
        h.update(format!("{}\0{}\n", f.rel, hex(&file_hash)).as_bytes());
    }
    format!("sha256:{}", hex(&h.finalize()))
}

/// Lowercase hex of bytes.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The rule an entry names with `"rule": ID`, or `hitl.<rule>` when it names none.
fn rule_id(rule: &str, named: Option<&Json>) -> Result<String, String> {
    match named {
        None => Ok(format!("{PACKAGE}.{rule}")),
        Some(Json::String(r)) if !r.is_empty() => Ok(r.clone()),
        Some(other) => Err(format!("a `rule` that is not a non-empty string: {other}")),
    }
}

fn message(rule: &str, v: &Json) -> Result<Finding, PolicyError> {
    let shape = |problem: String| PolicyError::Shape {
        rule: format!("{PACKAGE}.{rule}"),
        problem,
    };
    match v {
        Json::String(s) if !s.trim().is_empty() => Ok(Finding {
            rule: format!("{PACKAGE}.{rule}"),
            message: s.clone(),
        }),
        Json::Object(o) => {
            let msg = o
                .get("msg")
                .and_then(Json::as_str)
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| shape(format!("an object without a `msg` string: {v}")))?;
            let id = rule_id(rule, o.get("rule")).map_err(shape)?;
            if let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "msg" | "rule")) {
                return Err(shape(format!("an object with the unknown key `{k}`")));
            }
            Ok(Finding {
                rule: id,
                message: msg.to_owned(),
            })
        }
        other => Err(shape(format!(
            "{other}, where a message string or {{\"rule\", \"msg\"}} was expected"
        ))),
    }
}

fn set_of<'a>(out: &'a Json, rule: &str) -> Result<&'a [Json], PolicyError> {
    match out.get(rule) {
        None => Ok(&[]),
        Some(Json::Array(items)) => Ok(items),
        Some(other) => Err(PolicyError::Shape {
            rule: format!("{PACKAGE}.{rule}"),
            problem: format!("{other}, where a set was expected (`{rule} contains ...`)"),
        }),
    }
}

fn decision_from(out: &Json, digest: &str, evaluated_at: String) -> Result<Decision, PolicyError> {
    let deny = set_of(out, "deny")?
        .iter()
        .map(|v| message("deny", v))
        .collect::<Result<Vec<_>, _>>()?;
    let warn = set_of(out, "warn")?
        .iter()
        .map(|v| message("warn", v))
        .collect::<Result<Vec<_>, _>>()?;
    let mut escalate = Vec::new();
    for v in set_of(out, "escalate")? {
        let shape = |problem: String| PolicyError::Shape {
            rule: format!("{PACKAGE}.escalate"),
            problem,
        };
        let role = v
            .get("role")
            .and_then(Json::as_str)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| shape(format!("{v}, an entry without a `role` string")))?;
        let reason = v
            .get("reason")
            .and_then(Json::as_str)
            .filter(|r| !r.trim().is_empty())
            .ok_or_else(|| shape(format!("{v}, an entry without a `reason` string")))?;
        let rule = rule_id("escalate", v.get("rule")).map_err(shape)?;
        escalate.push(Escalation {
            role: role.to_owned(),
            reason: reason.to_owned(),
            rule,
        });
    }
    let min_tier = match out.get("min_tier") {
        None => None,
        Some(v) => match v.as_u64() {
            Some(n) if n <= u64::from(crate::matrix::MAX_TIER) => u8::try_from(n).ok(),
            _ => {
                return Err(PolicyError::Shape {
                    rule: format!("{PACKAGE}.min_tier"),
                    problem: format!("{v}, where a tier from 0 to 5 was expected"),
                });
            }
        },
    };
    Ok(Decision {
        allowed: deny.is_empty(),
        deny,
        warn,
        escalate,
        min_tier,
        policy_digest: digest.to_owned(),
        evaluated_at,
    })
}

/// The policy input for one proposal (its JSON Schema is docs/policy-input.schema.json).
/// `submitter` is the principal whose key submitted the proposal, once proposals are
/// signed; `None` before.
#[must_use]
pub fn input(
    matrix: &Matrix,
    request: &Request,
    classification: &Classification,
    submitter: Option<&str>,
    now: DateTime<Utc>,
) -> Json {
    let roles_of =
        |p: &str| -> Vec<String> { matrix.roles_of(p).map(|r| r.name.clone()).collect() };
    let roles: serde_json::Map<String, Json> = matrix
        .roles
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                json!({
                    "members": r.members,
                    "limits": r.limits,
                    "escalates_to": r.escalates_to,
                }),
            )
        })
        .collect();
    let windows: serde_json::Map<String, Json> = matrix
        .change_windows
        .iter()
        .map(|w| {
            (
                w.name.clone(),
                json!({
                    "timezone": w.timezone,
                    "days": w.days.iter().map(|d| crate::matrix::weekday_name(*d)).collect::<Vec<_>>(),
                    "start": w.start.format("%H:%M").to_string(),
                    "end": w.end.format("%H:%M").to_string(),
                    "open_now": w.contains(now),
                }),
            )
        })
        .collect();
    json!({
        "now": now.to_rfc3339_opts(SecondsFormat::Secs, true),
        "request": request,
        "classification": classification,
        "requester": {"principal": request.requested_by, "roles": roles_of(&request.requested_by)},
        "submitter": {
            "principal": submitter,
            "roles": submitter.map(roles_of).unwrap_or_default(),
        },
        "matrix": {
            "roles": roles,
            "change_windows": windows,
            "max_source_age_seconds": matrix.max_source_age.map(|d| d.as_secs()),
            "default_tier": matrix.default_tier,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A workspace folder with the given policy files, removed on drop.
    struct Ws(PathBuf);

    impl Ws {
        fn new(name: &str, files: &[(&str, &str)]) -> Self {
            let dir =
                std::env::temp_dir().join(format!("hitl-policy-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            for (rel, text) in files {
                let p = dir.join(rel);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, text).unwrap();
            }
            Self(dir)
        }
    }

    impl Drop for Ws {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn negated_rules_across_files_evaluate_correctly() {
        // regorus 0.14.1 gets `not ok` wrong when the whole multi-file package is queried;
        // the decision module refers to each rule by its full path and must not.
        let ws = Ws::new(
            "negation",
            &[
                (
                    "policies/a.rego",
                    "package hitl\n\nwarn contains \"w\" if input.y == 1\n",
                ),
                (
                    "policies/b.rego",
                    "package hitl\n\ndeny contains \"no\" if not ok\n\nok if input.x in data.d.allowed\n",
                ),
                ("policies/data/d.json", "{\"allowed\": [\"a\"]}"),
            ],
        );
        let mut set = PolicySet::load(&ws.0).unwrap().unwrap();
        let allowed = set
            .evaluate(&json!({"x": "a", "now": "2026-11-27T10:00:00Z"}))
            .unwrap();
        assert!(allowed.allowed, "{allowed:?}");
        let denied = set
            .evaluate(&json!({"x": "b", "now": "2026-11-27T10:00:00Z"}))
            .unwrap();
        assert_eq!(denied.deny.len(), 1);
        assert_eq!(denied.evaluated_at, "2026-11-27T10:00:00Z");
    }

    #[test]
    fn the_decision_package_is_reserved() {
        let ws = Ws::new(
            "reserved",
            &[
                (
                    "policies/a.rego",
                    "package hitl

deny contains \"x\" if false
",
                ),
                (
                    "policies/b.rego",
                    "package hitl_decision__

decision := {\"deny\": []}
",
                ),
            ],
        );
        let err = PolicySet::load(&ws.0).unwrap_err().to_string();
        assert!(err.contains("policies/b.rego"), "{err}");
        assert!(err.contains("reserved"), "{err}");
    }

    #[test]
    fn the_digest_covers_policies_tests_and_data() {
        let base = [
            (
                "policies/a.rego",
                "package hitl\n\nwarn contains \"w\" if input.y == 1\n",
            ),
            (
                "policies/a_test.rego",
                "package hitl_test\n\ntest_x if true\n",
            ),
            ("policies/data/d.json", "{\"allowed\": [\"a\"]}"),
        ];
        let digest = |files: &[(&str, &str)], name: &str| {
            let ws = Ws::new(name, files);
            PolicySet::load(&ws.0).unwrap().unwrap().digest().to_owned()
        };
        let d0 = digest(&base, "d0");
        assert_eq!(
            d0,
            digest(&base, "d0-again"),
            "the digest is a function of the files"
        );
        for (i, changed) in [
            "policies/a.rego",
            "policies/a_test.rego",
            "policies/data/d.json",
        ]
        .iter()
        .enumerate()
        {
            let mut files = base.to_vec();
            let text = format!("{}\n", files[i].1);
            files[i] = (changed, &text);
            assert_ne!(
                digest(&files, &format!("d{}", i + 1)),
                d0,
                "{changed} is covered"
            );
        }
    }

    #[test]
    fn test_rules_are_found_once_in_file_order() {
        let found = test_rules(
            "package x\ntest_a if true\n  test_indented if true\ntest_b if {\n}\ntest_a if false\n",
        );
        assert_eq!(
            found,
            vec![(2, "test_a".to_owned()), (4, "test_b".to_owned())]
        );
    }

    #[test]
    fn calls_skip_comments_strings_and_keywords() {
        let found: Vec<String> =
            calls("# f(x)\nx := \"g(y)\"\ny := count(a) + data.p.h(1)\nz if not (true)\n")
                .into_iter()
                .map(|(n, ..)| n)
                .collect();
        assert_eq!(found, vec!["count", "data.p.h"]);
    }
}
