//! The commands that do not depend on a request: help, completions, man, init; and how
//! the workspace and requests are found (or not).

use std::path::Path;

use tempfile::TempDir;

use crate::support::{ROOT, example_workspace, hitl, hitl_now, root, run, stderr, stdout, tree};

#[test]
fn help() {
    hitl()
        .arg("--help")
        .assert()
        .code(0)
        .stderr_eq("")
        .stdout_eq(snapbox::file!["../snapshots/help.txt"].raw());
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["bogus"][..],
        &["show"],
        &["show", "refund-4711", "--format", "xml"],
        &["completions", "powershell-7"],
    ] {
        let out = run(hitl().args(args));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{args:?}");
        assert!(stderr(&out).starts_with("error: "), "{args:?}");
    }
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    for (shell, marker) in [
        ("bash", "complete -F _hitl"),
        ("zsh", "#compdef hitl"),
        ("fish", "complete -c hitl"),
    ] {
        let out = run(hitl().args(["completions", shell]));
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(script.contains(marker), "{shell} script lacks `{marker}`");
        for sub in ["show", "explain", "lint", "init", "completions", "man"] {
            assert!(script.contains(sub), "{shell} script lacks `{sub}`");
        }
    }
}

#[test]
fn man_prints_roff() {
    let out = run(hitl().arg("man"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(
        page.starts_with(".TH") || page.starts_with(".ie"),
        "not roff: {}",
        page.lines().next().unwrap_or_default()
    );
    assert!(page.contains(".TH hitl 1"), "no title header");
    assert!(page.contains("\\-\\-workspace"), "documents -C/--workspace");
}

/// The `hitl...(N)` page names a roff page refers to, unescaped (`hitl-show(1)`).
fn man_references(page: &str) -> Vec<String> {
    let text = page.replace("\\-", "-");
    let mut out = Vec::new();
    for (i, _) in text.match_indices('(') {
        let Some(section) = text[i + 1..].split(')').next() else {
            continue;
        };
        if section.is_empty() || !section.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let name: String = text[..i]
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if name == "hitl" || name.starts_with("hitl-") {
            out.push(format!("{name}({section})"));
        }
    }
    out
}

/// Every page a man page names (`hitl-show(1)`, `hitl-policy-test(1)`) is one `hitl man`
/// produces: `hitl man show`, `hitl man policy test`; no page names one that does not
/// exist (clap's `help` subcommand has none).
#[test]
fn man_pages_name_only_pages_hitl_man_produces() {
    let mut todo = vec!["hitl(1)".to_owned()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let (stem, section) = name.trim_end_matches(')').split_once('(').unwrap();
        assert_eq!(section, "1", "{name}: hitl's pages are in section 1");
        // `hitl-policy-test` is `hitl man policy test`, `hitl-request-changes` is
        // `hitl man request-changes`: the first reading that names a page.
        let parts: Vec<&str> = stem.split('-').skip(1).collect();
        let joined = parts.join("-");
        let words = [parts.clone(), vec![joined.as_str()]]
            .into_iter()
            .find(|w| run(hitl().arg("man").args(w)).status.success())
            .unwrap_or(parts);
        let out = run(hitl().arg("man").args(&words));
        assert_eq!(
            out.status.code(),
            Some(0),
            "a page names {name}, but `hitl man {}` fails: {}",
            words.join(" "),
            stderr(&out)
        );
        let page = stdout(&out);
        assert!(
            page.contains(&format!(".TH {stem} 1 ")),
            "`hitl man {}` is not {name}:\n{page}",
            words.join(" ")
        );
        assert!(!page.contains("hitl\\-help"), "{name} names a help page");
        todo.extend(man_references(&page));
    }
    // hitl(1) and one page per command `hitl --help` lists (but `help`), and the pages
    // of `policy`'s own commands.
    let help = stdout(&run(hitl().arg("--help")));
    let commands: Vec<&str> = help
        .split("Commands:\n")
        .nth(1)
        .and_then(|s| s.split("\n\n").next())
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 14, "{commands:?}");
    let mut expected: std::collections::BTreeSet<String> =
        commands.iter().map(|c| format!("hitl-{c}(1)")).collect();
    expected.insert("hitl(1)".to_owned());
    for sub in ["test", "eval", "input"] {
        expected.insert(format!("hitl-policy-{sub}(1)"));
    }
    assert_eq!(seen, expected);

    let out = run(hitl().args(["man", "nope"]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with(
            "error: there is no man page for `hitl nope`\n  = hint: the commands of `hitl` are `"
        ),
        "{err}"
    );
    for c in &commands {
        assert!(err.contains(&format!("`{c}`")), "{c} not named: {err}");
    }
    let out = run(hitl().args(["man", "show", "extra"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("its page is `hitl man show`"),
        "{}",
        stderr(&out)
    );
}

const INIT_FILES: [&str; 7] = [
    "README.md",
    "allowed_signers",
    "approval-matrix.yaml",
    "hitl.toml",
    "policies/limits.rego",
    "policies/data/rbac.json",
    "requests/refund-4711.yaml",
];

#[test]
fn init_creates_a_workspace_that_lints_clean_and_refuses_to_run_twice() {
    let tmp = TempDir::new().expect("temp dir");
    // No git configuration of the machine's user: `allowed_signers` stays a stub.
    hitl_now()
        .current_dir(tmp.path())
        .env("HOME", tmp.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .args(["init", "ws"])
        .assert()
        .code(0)
        .stderr_eq("")
        .stdout_eq(snapbox::file!["../snapshots/init.txt"].raw());
    let ws = tmp.path().join("ws");
    for f in INIT_FILES {
        assert!(ws.join(f).is_file(), "`{f}` was not created");
    }
    assert!(ws.join(".git").is_dir(), "no git repository");
    // Nothing under `audit/` that the audit's layout does not allow (no `.gitkeep`).
    assert!(!ws.join("audit").exists(), "init wrote under `audit/`");
    // The scaffold is the repository's own example, byte for byte.
    for f in [
        "approval-matrix.yaml",
        "requests/refund-4711.yaml",
        "policies/rbac.rego",
        "policies/data/rbac.json",
    ] {
        assert_eq!(
            std::fs::read(ws.join(f)).expect("read"),
            std::fs::read(root().join(f)).expect("read"),
            "{f}"
        );
    }

    hitl_now()
        .arg("-C")
        .arg(&ws)
        .arg("lint")
        .assert()
        .code(0)
        .stderr_eq("")
        .stdout_eq("lint: 0 error(s), 0 warning(s) in `approval-matrix.yaml` and 1 request(s)\n");
    hitl_now()
        .arg("-C")
        .arg(&ws)
        .args(["policy", "test"])
        .assert()
        .code(0);

    let before = tree(tmp.path());
    let out = run(hitl_now().current_dir(tmp.path()).args(["init", "ws"]));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(
        err.starts_with("error: refusing to overwrite existing files: "),
        "{err}"
    );
    for f in INIT_FILES {
        assert!(
            err.contains(&format!("ws/{f}`")),
            "`{f}` not named in {err}"
        );
    }
    assert!(
        err.ends_with(
            "  = hint: `hitl init` only creates files; move the existing ones away first\n"
        ),
        "{err}"
    );
    assert_eq!(tree(tmp.path()), before, "a refused init wrote something");
}

#[test]
fn init_writes_nothing_when_any_file_already_exists() {
    let tmp = TempDir::new().expect("temp dir");
    std::fs::write(tmp.path().join("README.md"), "mine\n").expect("write");
    let before = tree(tmp.path());
    let out = run(hitl_now().current_dir(tmp.path()).arg("init"));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "error: refusing to overwrite existing files: `{}`\n  = hint: `hitl init` only creates files; move the existing ones away first\n",
            tmp.path().join("README.md").display()
        )
    );
    assert_eq!(tree(tmp.path()), before);
}

#[test]
fn workspace_is_found_from_a_subfolder() {
    // The repository root, entered through `requests/`.
    let from_root = run(hitl_now().args(["-C", ROOT, "explain", "refund-4711"]));
    let from_sub = run(hitl_now()
        .current_dir(root().join("requests"))
        .args(["explain", "refund-4711"]));
    assert_eq!(from_sub.status.code(), Some(0), "{}", stderr(&from_sub));
    assert_eq!(stdout(&from_sub), stdout(&from_root));

    // A temporary workspace, entered through a nested folder, naming a request by a path
    // relative to the current folder.
    let ws = example_workspace(&["refund-4711"]);
    let nested = ws.path().join("requests");
    let out =
        run(hitl_now()
            .current_dir(&nested)
            .args(["show", "refund-4711.yaml", "--format", "json"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let pack: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(pack["file"], "requests/refund-4711.yaml");
    assert_eq!(pack["risk_tier"], 3);
}

const INIT_HINT: &str =
    "  = hint: run `hitl init` to create one, or pass `-C DIR` to name an existing workspace\n";

fn assert_not_a_workspace(dir: &Path, why: &str) {
    for cmd in [
        &["show", "refund-4711"][..],
        &["explain", "refund-4711"],
        &["lint"],
    ] {
        let out = run(hitl_now().arg("-C").arg(dir).args(cmd));
        assert_eq!(out.status.code(), Some(4), "{cmd:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty());
        assert_eq!(
            stderr(&out),
            format!(
                "error: {}\n{INIT_HINT}",
                why.replace("{}", &dir.display().to_string())
            ),
            "{cmd:?}"
        );
    }
}

#[test]
fn dash_c_on_an_empty_or_missing_folder_exits_4_with_an_init_hint() {
    let tmp = TempDir::new().expect("temp dir");
    assert_not_a_workspace(
        tmp.path(),
        "`{}` is not a hitl workspace: it has no `approval-matrix.yaml`",
    );
    assert_not_a_workspace(
        &tmp.path().join("does-not-exist"),
        "folder `{}` does not exist",
    );
    assert!(tree(tmp.path()).is_empty(), "nothing was created");
}

#[test]
fn no_workspace_above_the_current_folder_exits_4() {
    let tmp = TempDir::new().expect("temp dir");
    let out = run(hitl_now().current_dir(tmp.path()).arg("lint"));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "error: no hitl workspace found in `{}` or any parent folder\n{INIT_HINT}",
            tmp.path().display()
        )
    );
}

#[test]
fn unknown_request_exits_4_with_a_suggestion() {
    for cmd in ["show", "explain"] {
        hitl_now()
            .args(["-C", ROOT, cmd, "refund-4713"])
            .assert()
            .code(4)
            .stdout_eq("")
            .stderr_eq(
                "error: no request `refund-4713` in `requests`\n  = hint: did you mean `refund-4712`?\n",
            );
    }
    hitl_now()
        .args(["-C", ROOT, "show", "requests/crm-stage-acm.yaml"])
        .assert()
        .code(4)
        .stderr_eq(
            "error: no request `requests/crm-stage-acm.yaml` in `requests`\n  = hint: did you mean `crm-stage-acme`?\n",
        );
    hitl_now()
        .args(["-C", ROOT, "show", "nothing-like-it"])
        .assert()
        .code(4)
        .stderr_eq(
            "error: no request `nothing-like-it` in `requests`\n  = hint: pass a request id from `requests/` or a path to a YAML file\n",
        );
}

#[test]
fn markdown_output_cannot_inject_links_images_or_html() {
    let ws = example_workspace(&["refund-4711"]);
    let path = ws.path().join("requests/refund-4711.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    let hostile = "input_summary: \"![x](https://tracker.example/p.gif) [click](https://evil.example) <img src=x> | `code` **bold**\"";
    let text = text.replace(
        "input_summary: Customer reports a duplicate charge on order 981.",
        hostile,
    );
    std::fs::write(&path, text).expect("write");
    let out = run(hitl_now().arg("-C").arg(ws.path()).args([
        "show",
        "refund-4711",
        "--format",
        "markdown",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let md = stdout(&out);
    let line = md
        .lines()
        .find(|l| l.starts_with("| Input summary |"))
        .expect("input summary row");
    assert_eq!(
        line,
        "| Input summary | \\!\\[x\\]\\(https\\://tracker.example/p.gif\\) \\[click\\]\\(https\\://evil.example\\) &lt;img src=x&gt; \\| \\`code\\` \\*\\*bold\\*\\* |"
    );
}

#[test]
fn a_reader_that_goes_away_is_not_an_error() {
    // The reader closes the pipe before `hitl` starts writing: every write fails with
    // EPIPE, which must end the command quietly with status 0.
    let bin = snapbox::cmd::cargo_bin!("hitl");
    for args in ["show refund-4711 --format json", "completions bash", "man"] {
        let script = format!(
            "'{}' -C '{ROOT}' {args} 2>/tmp/hitl-epipe-$$ | (exec 0<&-; sleep 0.3); s=${{PIPESTATUS[0]}}; e=$(cat /tmp/hitl-epipe-$$); rm -f /tmp/hitl-epipe-$$; echo \"$s:$e\"",
            bin.display()
        );
        let out = run(snapbox::cmd::Command::new("bash").args(["-c", &script]));
        assert_eq!(stdout(&out).trim(), "0:", "{args}");
    }
}
