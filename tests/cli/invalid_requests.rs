//! Hostile or broken proposals: `tests/fixtures/invalid/requests/*.yaml`, each the valid
//! `requests/refund-4711.yaml` with one thing broken (line 1, a comment, says what). Every
//! one must exit 3 with nothing on stdout and every problem located on stderr.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{
    ROOT, error_locations, example_workspace, hitl_now, root, run, snapshot, stderr, stdout, stem,
    tree, yaml_stems,
};

const DIR: &str = "tests/fixtures/invalid/requests";

struct Case {
    name: &'static str,
    /// `line:column` and field path (empty: the document as a whole) of each problem,
    /// in the order reported.
    problems: &'static [(&'static str, &'static str)],
    /// Text the report must contain (the message or its hint).
    needle: &'static str,
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    // The caret points at the anchored node (`[`), not at `&l0` (col 7).
    Case { name: "alias-bomb", problems: &[("26:11", "")], needle: "anchors and aliases (`&name`, `*name`) are not allowed" },
    // The caret points at the anchored scalar (col 25), not at `&summary` (col 16).
    Case { name: "anchor-alias", problems: &[("12:25", "")], needle: "anchors and aliases (`&name`, `*name`) are not allowed\n    |\n 12 | input_summary: &summary Customer reports a duplicate charge on order 981.\n    |                         ^\n  = hint: write the value out in full" },
    Case { name: "bad-currency", problems: &[("11:37", "action.amount.currency")], needle: "`euro` is not a three-letter currency code such as `EUR`" },
    Case { name: "bad-enum", problems: &[("7:9", "action.type")], needle: "unknown value `aprove`\n   |\n 7 |   type: aprove\n   |         ^\n  = hint: did you mean `approve`?" },
    Case { name: "bad-id", problems: &[("2:5", "id")], needle: "`Refund_4711!` is not an id matching `[a-z0-9][a-z0-9._-]{0,63}`" },
    Case { name: "bad-timestamp", problems: &[("4:15", "requested_at")], needle: "is not an RFC 3339 timestamp" },
    Case { name: "comment-only", problems: &[("1:1", "")], needle: "file holds no YAML content (only comments or blank lines)" },
    Case { name: "control-characters", problems: &[("12:16", "input_summary")], needle: "contains the control character U+001B" },
    // The parser names the key, not its path: `amount`, not `action.amount`.
    Case { name: "deep-nesting", problems: &[("10:135", "")], needle: "nesting is deeper than 32 levels" },
    Case { name: "duplicate-key", problems: &[("12:3", "amount")], needle: "duplicate key `amount`" },
    Case { name: "empty", problems: &[("1:1", "")], needle: "file is empty" },
    Case { name: "expires-before-requested", problems: &[("24:13", "expires_at")], needle: "must be later than `requested_at`" },
    Case { name: "negative-amount", problems: &[("11:19", "action.amount.value")], needle: "amount must not be negative" },
    Case { name: "precondition-empty", problems: &[("21:17", "change.precondition")], needle: "must not be empty" },
    Case { name: "precondition-not-a-list", problems: &[("21:17", "change.precondition")], needle: "expected a list, found a string" },
    Case { name: "precondition-not-strings", problems: &[("21:43", "change.precondition[1]"), ("21:48", "change.precondition[2]")], needle: "expected a string, found a mapping" },
    Case {
        name: "several-errors",
        problems: &[
            ("2:1", "requested_by"),
            ("3:1", "requsted_by"),
            ("7:9", "action.type"),
            ("9:20", "action.target.system"),
            ("11:19", "action.amount.value"),
            ("11:38", "action.amount.currency"),
            ("24:13", "expires_at"),
        ],
        needle: "is invalid (7 problems)",
    },
    Case { name: "top-level-list", problems: &[("2:1", "")], needle: "expected a mapping, found a list" },
    Case { name: "two-documents", problems: &[("25:1", "")], needle: "the file holds more than one YAML document\n    |\n 25 | ---\n    | ^\n  = hint: put one proposal in each file, without `---` separators" },
    Case { name: "unknown-field", problems: &[("2:1", "requested_by"), ("3:1", "requsted_by")], needle: "unknown field `requsted_by`\n   |\n 3 | requsted_by: maria@example.com\n   | ^\n  = hint: did you mean `requested_by`?" },
    Case { name: "unknown-nested-field", problems: &[("9:3", "action.priorty")], needle: "unknown field `priorty`" },
    Case { name: "unknown-target-system", problems: &[("9:20", "action.target.system")], needle: "unknown target system `paymnets`\n   |\n 9 |   target: {system: paymnets, object: charge/ch_981}\n   |                    ^\n  = hint: did you mean `payments`?" },
    Case { name: "wrong-type", problems: &[("11:19", "action.amount.value")], needle: "expected a number, found a string" },
];

/// The field path of each `error:` line (empty when none is named).
fn fields(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("error: "))
        .filter(|l| !l.starts_with('`'))
        .map(|l| {
            let rest = l.splitn(4, ':').nth(3).unwrap_or_default().trim_start();
            match rest.strip_prefix('`').and_then(|r| r.split_once("`: ")) {
                Some((field, _)) if !field.contains(' ') => field.to_owned(),
                _ => String::new(),
            }
        })
        .collect()
}

#[test]
fn every_fixture_has_a_case() {
    let files = yaml_stems(&root().join(DIR));
    let cases: Vec<&str> = CASES.iter().map(|c| c.name).collect();
    assert_eq!(files, cases);
}

#[test]
fn invalid_requests_exit_3_and_locate_every_problem() {
    for case in CASES {
        let name = case.name;
        let rel = format!("{DIR}/{name}.yaml");
        let assert = hitl_now()
            .args(["-C", ROOT, "show", &rel])
            .assert()
            .code(3)
            .stdout_eq("")
            .stderr_eq(snapshot(format!("fixtures/invalid/requests/{name}.stderr")));
        let err = stderr(assert.get_output());

        let want_locations: Vec<String> = case
            .problems
            .iter()
            .map(|(at, _)| format!("{rel}:{at}"))
            .collect();
        assert_eq!(error_locations(&err), want_locations, "{name}: locations");
        let want_fields: Vec<&str> = case.problems.iter().map(|(_, f)| *f).collect();
        assert_eq!(fields(&err), want_fields, "{name}: field paths");
        let n = case.problems.len();
        let summary = format!(
            "error: `{rel}` is invalid ({n} problem{})\n",
            if n == 1 { "" } else { "s" }
        );
        assert!(err.ends_with(&summary), "{name}: summary line\n{err}");
        assert!(
            err.contains(case.needle),
            "{name}: `{}` not in\n{err}",
            case.needle
        );

        // `explain` loads requests the same way.
        let explain = run(hitl_now().args(["-C", ROOT, "explain", &rel]));
        assert_eq!(explain.status.code(), Some(3), "{name}: explain");
        assert_eq!(stderr(&explain), err, "{name}: explain reports the same");
        assert!(stdout(&explain).is_empty());
    }
}

#[test]
fn alias_bomb_fails_fast() {
    let bomb = root().join(DIR).join("alias-bomb.yaml");
    let size = std::fs::metadata(&bomb).expect("fixture").len();
    assert!((45_000..=60_000).contains(&size), "~50 KB, is {size}");
    let started = Instant::now();
    let out = run(hitl_now().args(["-C", ROOT, "show"]).arg(&bomb));
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        took < Duration::from_secs(3),
        "took {took:?}: the bomb was expanded"
    );
}

/// A copy of refund-4711 whose first line says what is wrong with it.
fn refund_4711_with(comment: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(root().join("requests/refund-4711.yaml")).expect("read");
    let (_, body) = text.split_once('\n').expect("a first line");
    format!("# {comment}\n{body}").into_bytes()
}

/// Runs `show ID` in a temporary example workspace holding `file` as `requests/ID.yaml`,
/// and checks the command wrote nothing.
fn show_in_workspace(id: &str, file: &[u8], settings: Option<&str>) -> std::process::Output {
    let ws = example_workspace(&[]);
    std::fs::create_dir(ws.path().join("requests")).expect("requests/");
    std::fs::write(ws.path().join(format!("requests/{id}.yaml")), file).expect("write");
    if let Some(s) = settings {
        std::fs::write(ws.path().join("hitl.toml"), s).expect("write");
    }
    let before = tree(ws.path());
    let out = run(hitl_now().current_dir(ws.path()).args(["show", id]));
    if out.status.code() != Some(0) {
        let lint = run(hitl_now().current_dir(ws.path()).arg("lint"));
        assert_eq!(lint.status.code(), Some(1), "lint: {}", stderr(&lint));
        assert!(
            stdout(&lint).starts_with(&format!("error[invalid]: requests/{id}.yaml:")),
            "{}",
            stdout(&lint)
        );
    }
    assert_eq!(tree(ws.path()), before, "the workspace changed");
    out
}

#[test]
fn non_utf8_request_is_located_at_the_first_bad_byte() {
    let mut file =
        refund_4711_with("refund-4711 with the bytes FF FE in `input_summary` (line 12).");
    let at = file
        .windows(4)
        .position(|w| w == b"981.")
        .expect("order 981");
    file.splice(at + 3..at + 3, [b' ', 0xff, 0xfe]);
    assert!(std::str::from_utf8(&file).is_err());
    let out = show_in_workspace("non-utf8", &file, None);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    snapbox::assert_data_eq!(
        stderr(&out),
        snapshot("fixtures/invalid/requests/non-utf8.stderr")
    );
    // Column 65 is the first byte after `... on order 981 `.
    assert_eq!(
        error_locations(&stderr(&out)),
        ["requests/non-utf8.yaml:12:65"]
    );
}

/// refund-4711 followed by one long comment line, exactly `size` bytes in all.
fn padded_refund(size: usize) -> Vec<u8> {
    let mut file = refund_4711_with("refund-4711 padded by a long comment to a given size.");
    let pad = size - file.len() - "# \n".len();
    file.extend_from_slice(format!("# {}\n", "x".repeat(pad)).as_bytes());
    assert_eq!(file.len(), size);
    file
}

#[test]
fn requests_over_the_byte_cap_are_refused() {
    const CAP: usize = 256 * 1024;
    let at_cap = show_in_workspace("at-cap", &padded_refund(CAP), None);
    assert_eq!(at_cap.status.code(), Some(0), "{}", stderr(&at_cap));

    let over = show_in_workspace("oversized", &padded_refund(CAP + 1), None);
    assert_eq!(over.status.code(), Some(3));
    assert!(over.stdout.is_empty());
    snapbox::assert_data_eq!(
        stderr(&over),
        snapshot("fixtures/invalid/requests/oversized.stderr")
    );

    // hitl.toml can raise the cap for trusted writers.
    let raised = show_in_workspace(
        "oversized",
        &padded_refund(CAP + 1),
        Some("[limits]\nmax_request_bytes = 300000\n"),
    );
    assert_eq!(raised.status.code(), Some(0), "{}", stderr(&raised));
}

#[test]
fn generated_snapshots_have_no_stray_companions() {
    // Every `.stderr` next to the fixtures belongs to a fixture or a generated case.
    let mut stray = Vec::new();
    for entry in std::fs::read_dir(root().join(DIR)).expect("list") {
        let p = entry.expect("entry").path();
        if p.extension().is_some_and(|e| e == "stderr") {
            let name = stem(&p);
            let generated = ["non-utf8", "oversized"].contains(&name.as_str());
            if !generated
                && !Path::new(ROOT)
                    .join(DIR)
                    .join(format!("{name}.yaml"))
                    .is_file()
            {
                stray.push(name);
            }
        }
    }
    assert!(stray.is_empty(), "snapshots without a fixture: {stray:?}");
}

#[test]
fn invalid_settings_exit_3() {
    for (settings, want) in [
        (
            "[limits]\nmax_requst_bytes = 1000\n",
            "error: hitl.toml:2:1: unknown field `max_requst_bytes`, expected `max_request_bytes`\n   |\n 2 | max_requst_bytes = 1000\n   | ^\nerror: `hitl.toml` is invalid (1 problem)\n",
        ),
        (
            // Located at 1:1 rather than at the value on line 2.
            "[limits]\nmax_request_bytes = 0\n",
            "error: hitl.toml:1:1: `limits.max_request_bytes`: must be between 1 and 16777216\nerror: `hitl.toml` is invalid (1 problem)\n",
        ),
    ] {
        let ws = example_workspace(&["refund-4711"]);
        std::fs::write(ws.path().join("hitl.toml"), settings).expect("write");
        for cmd in [&["show", "refund-4711"][..], &["lint"]] {
            hitl_now()
                .current_dir(ws.path())
                .args(cmd)
                .assert()
                .code(3)
                .stdout_eq("")
                .stderr_eq(snapbox::Data::text(want).raw());
        }
    }
}

#[test]
fn lint_reports_every_problem_of_every_request() {
    let ws = example_workspace(&["refund-4711", "refund-4712"]);
    std::fs::copy(
        root().join(DIR).join("several-errors.yaml"),
        ws.path().join("requests/several-errors.yaml"),
    )
    .expect("copy");
    let out = run(hitl_now().current_dir(ws.path()).arg("lint"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    let located: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("error[invalid]: requests/several-errors.yaml:"))
        .map(|l| l.split(": ").next().unwrap_or_default())
        .collect();
    let several = CASES
        .iter()
        .find(|c| c.name == "several-errors")
        .expect("case");
    let want: Vec<&str> = several.problems.iter().map(|(at, _)| *at).collect();
    assert_eq!(located, want, "{text}");
    assert!(
        text.ends_with(
            "lint: 7 error(s), 0 warning(s) in `approval-matrix.yaml` and 3 request(s)\n"
        ),
        "{text}"
    );
}
