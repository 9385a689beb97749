//! Approval files and `hitl check` through the real binary, with real keys and the
//! plain OpenSSH recipe of the README (docs/approvals.md): the final approval writes
//! the file in its commit; `check` allows exactly the approved action, on the approved
//! target, up to the approved amount, inside the window, and refuses everything else
//! with its own exit code; any edit of the file is refused.

use std::path::{Path, PathBuf};

use super::audit::{ALEX, AuditWs, LEA, MALLORY, ok, sh};
use super::support::{NOW, stderr, stdout};
use super::workflow::{IAM, SAM, iam_ws};

const REFUND: &str = "refund-4711";
const TARGET: &str = "payments/charge/ch_981";

/// refund-4711 proposed and approved by lea at [`NOW`]; its approval file copied out
/// with `hitl approval --out`.
fn approved() -> (AuditWs, PathBuf) {
    let w = AuditWs::new();
    w.propose_and_approve();
    let out = w.dir_path().join("refund.approval.json");
    let o = w.read(&["approval", REFUND, "--out", out.to_str().unwrap()]);
    ok(&o);
    (w, out)
}

/// `hitl check FILE ARGS` at `time` in the workspace (the audit at hand).
fn check_at(w: &AuditWs, time: &str, file: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["check", file.to_str().unwrap()];
    all.extend(args);
    w.read_at(time, &all)
}

fn check(w: &AuditWs, file: &Path, args: &[&str]) -> std::process::Output {
    check_at(w, NOW, file, args)
}

/// The refund's scope flags: its action, its target and (unless `extra` names one) its
/// full amount, then `extra`.
fn refund<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--action", "payments.refund", "--target", TARGET];
    if !extra.contains(&"--amount") {
        v.extend(["--amount", "180", "--currency", "EUR"]);
    }
    v.extend(extra);
    v
}

fn refused(o: &std::process::Output, code: i32, needle: &str) {
    assert_eq!(o.status.code(), Some(code), "{}{}", stdout(o), stderr(o));
    assert!(stderr(o).contains(needle), "{}", stderr(o));
}

#[test]
fn the_final_approval_writes_the_file_in_its_commit_and_check_allows_the_action() {
    let (w, file) = approved();
    // In the commit of the final decision, beside its event.
    let files = w.git(&["show", "--name-only", "--format=", "HEAD"]);
    assert!(
        files.contains("audit/approvals/refund-4711.json"),
        "{files}"
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        std::fs::read(w.ws().join("audit/approvals/refund-4711.json")).unwrap()
    );
    let out = ok(&check(
        &w,
        &file,
        &refund(&["--amount", "180", "--currency", "EUR"]),
    ));
    assert!(
        out.starts_with("allowed: `payments.refund` on `payments/charge/ch_981` up to 180 EUR"),
        "{out}"
    );
    assert!(!out.contains("offline"), "{out}");
    // Offline: the file and the signer files alone, and it says what it could not check.
    let out = ok(&check(
        &w,
        &file,
        &refund(&["--offline", "--allowed-signers", "allowed_signers"]),
    ));
    assert!(
        out.contains("offline: whether it was spent or revoked is not checked"),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&check(&w, &file, &refund(&["--format", "json"])))).unwrap();
    assert_eq!(
        (&json["allowed"], &json["request"], &json["approvers"]),
        (
            &serde_json::json!(true),
            &serde_json::json!(REFUND),
            &serde_json::json!([LEA])
        )
    );
    // A second `--out` never overwrites.
    let o = w.read(&["approval", REFUND, "--out", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}

/// The README's recipe, as written: each signature checked by `ssh-keygen -Y verify`
/// alone. Needs `jq` (CI installs it; `HITL_REQUIRE_JQ=1` makes its absence a failure).
#[test]
fn the_openssh_recipe_of_the_readme_verifies_every_signature() {
    let readme = std::fs::read_to_string(super::support::root().join("README.md")).unwrap();
    let start = readme
        .find("```sh\n# check an approval file with OpenSSH alone")
        .unwrap();
    let recipe = &readme[start + 6..];
    let recipe = &recipe[..recipe.find("```").unwrap()];
    if sh(Path::new("."), "jq", &["--version"]).status.code() != Some(0) {
        assert!(
            std::env::var_os("HITL_REQUIRE_JQ").is_none(),
            "jq is required here (HITL_REQUIRE_JQ is set)"
        );
        eprintln!("skipped: jq is not installed");
        return;
    }
    let w = iam_ws();
    ok(&w.hitl(super::workflow::INES, &["approve", IAM]));
    ok(&w.hitl(SAM, &["approve", IAM]));
    let file = w.ws().join("audit/approvals").join(format!("{IAM}.json"));
    let f: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let sigs = f["signatures"].as_array().unwrap();
    // Two approvers' scope signatures, then the final approver's of the statement.
    let shape: Vec<(&str, &str)> = sigs
        .iter()
        .map(|s| {
            (
                s["principal"].as_str().unwrap(),
                s["signs"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (super::workflow::INES, "scope"),
            (SAM, "scope"),
            (SAM, "statement")
        ]
    );
    for (n, (principal, _)) in shape.iter().enumerate() {
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(recipe)
            .env("F", &file)
            .env("N", n.to_string())
            .env("PRINCIPAL", principal)
            .current_dir(w.ws())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
        assert!(
            stdout(&o).contains(&format!("Good \"hitl-approval\" signature for {principal}")),
            "{}",
            stdout(&o)
        );
    }
    // The recipe fails on a signature over other bytes.
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(recipe)
        .env("F", &file)
        .env("N", "0")
        .env("PRINCIPAL", SAM)
        .current_dir(w.ws())
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn check_refuses_another_action_target_amount_or_parameters_each_with_its_code() {
    let (w, file) = approved();
    let o = check(
        &w,
        &file,
        &["--action", "payments.payout", "--target", TARGET],
    );
    refused(
        &o,
        14,
        "the approval is for action `payments.refund`, not `payments.payout`",
    );
    let o = check(
        &w,
        &file,
        &[
            "--action",
            "payments.refund",
            "--target",
            "payments/charge/ch_982",
        ],
    );
    refused(&o, 15, "not `payments/charge/ch_982`");
    let o = check(
        &w,
        &file,
        &refund(&["--amount", "180.01", "--currency", "EUR"]),
    );
    refused(&o, 16, "it approves at most 180 EUR");
    let o = check(
        &w,
        &file,
        &refund(&["--amount", "100", "--currency", "USD"]),
    );
    refused(&o, 16, "it approves 180 EUR");
    // The proposal's parameters, in another key order: the same digest.
    let params = w.dir_path().join("params.json");
    std::fs::write(
        &params,
        r#"{"reason": "duplicate", "currency": "EUR", "amount": 180, "charge": "ch_981"}"#,
    )
    .unwrap();
    ok(&check(
        &w,
        &file,
        &refund(&["--params", params.to_str().unwrap()]),
    ));
    std::fs::write(
        &params,
        r#"{"reason": "duplicate", "currency": "EUR", "amount": 1800, "charge": "ch_981"}"#,
    )
    .unwrap();
    let o = check(&w, &file, &refund(&["--params", params.to_str().unwrap()]));
    refused(&o, 17, "the parameters' digest is");
    let o = check(
        &w,
        &file,
        &refund(&["--format", "json", "--amount", "999", "--currency", "EUR"]),
    );
    assert_eq!(o.status.code(), Some(16));
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (&json["allowed"], &json["code"]),
        (&false.into(), &"over-amount".into())
    );
}

/// The window starts at the final approval and lasts the tier's `approval_valid_for`
/// (2 h at tier 3).
#[test]
fn check_refuses_before_the_window_and_after_it() {
    let (w, file) = approved();
    refused(
        &check_at(&w, "2026-11-27 15:59:59", &file, &refund(&[])),
        18,
        "the approval is not valid before 2026-11-27T16:00:00Z",
    );
    ok(&check_at(&w, "2026-11-27 17:59:59", &file, &refund(&[])));
    refused(
        &check_at(&w, "2026-11-27 18:00:00", &file, &refund(&[])),
        19,
        "the approval expired at 2026-11-27T18:00:00Z",
    );
}

/// A tier-4 change runs in its change window: approved on a Friday, when the
/// `production` window (Tuesday to Thursday) is closed, its approval allows nothing.
#[test]
fn check_refuses_outside_the_change_window() {
    let w = iam_ws();
    ok(&w.hitl(super::workflow::INES, &["approve", IAM]));
    ok(&w.hitl(SAM, &["approve", IAM]));
    let file = w.ws().join("audit/approvals").join(format!("{IAM}.json"));
    let o = check(
        &w,
        &file,
        &[
            "--action",
            "iam.attach_policy",
            "--target",
            "iam/role/ci-deployer",
        ],
    );
    refused(
        &o,
        20,
        "change window `production` (tue, wed, thu 09:00-16:00 Europe/Berlin) is closed now",
    );
}

/// Any byte edited, the signatures reordered or one doubled, a signature by a key the
/// signer files do not trust, a key revoked after it signed, a file for a request that
/// is not approved here: each refused, nothing allowed.
#[test]
fn check_refuses_every_tampered_file() {
    let (w, file) = approved();
    let text = std::fs::read_to_string(&file).unwrap();
    let write = |name: &str, body: &str| {
        let p = w.dir_path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    // The ceiling raised in the predicate only: it no longer matches the signed scope.
    let raised = write(
        "raised.json",
        &text.replacen(r#"\"ceiling\": \"180\""#, r#"\"ceiling\": \"1800\""#, 1),
    );
    assert_ne!(std::fs::read_to_string(&raised).unwrap(), text);
    refused(
        &check(
            &w,
            &raised,
            &refund(&["--offline", "--allowed-signers", "allowed_signers"]),
        ),
        10,
        "`predicate.amount` differs from the signed scope",
    );
    // ... and in the scope too: the signatures no longer verify.
    let both = write("both.json", &text.replace("180", "1800"));
    refused(
        &check(
            &w,
            &both,
            &refund(&["--offline", "--allowed-signers", "allowed_signers"]),
        ),
        11,
        "does not verify",
    );
    // One blank added outside every signed string.
    let blank = write("blank.json", &text.replacen("{\n", "{ \n", 1));
    refused(
        &check(
            &w,
            &blank,
            &refund(&["--offline", "--allowed-signers", "allowed_signers"]),
        ),
        10,
        "not byte for byte the file hitl wrote",
    );
    // Reordered and doubled signatures.
    let mut f: serde_json::Value = serde_json::from_str(&text).unwrap();
    let sigs = f["signatures"].as_array().unwrap().clone();
    let render = |v: &serde_json::Value| {
        let mut s = serde_json::to_string_pretty(v).unwrap();
        s.push('\n');
        s
    };
    f["signatures"] = serde_json::json!([sigs[1], sigs[0]]);
    let reordered = write("reordered.json", &render(&f));
    refused(
        &check(
            &w,
            &reordered,
            &refund(&["--offline", "--allowed-signers", "allowed_signers"]),
        ),
        13,
        "not in the order of the approvers",
    );
    f["signatures"] = serde_json::json!([sigs[0], sigs[0], sigs[1]]);
    let doubled = write("doubled.json", &render(&f));
    refused(
        &check(
            &w,
            &doubled,
            &refund(&["--offline", "--allowed-signers", "allowed_signers"]),
        ),
        13,
        "signs the scope twice; one principal counts once",
    );
    // Mallory (no key in `allowed_signers`) signs the scope as lea.
    let statement: serde_json::Value =
        serde_json::from_str(f["statement"].as_str().unwrap()).unwrap();
    let scope_bytes = statement["predicate"]["scope"]
        .as_str()
        .unwrap()
        .as_bytes()
        .to_vec();
    let sig = ssh_sign(&w.key(MALLORY), &scope_bytes, w.dir_path());
    let mut forged = sigs[0].clone();
    forged["signature"] = sig.into();
    forged["key"] = w.fingerprint(MALLORY).into();
    f["signatures"] = serde_json::json!([forged, sigs[1]]);
    let mallory = write("mallory.json", &render(&f));
    refused(
        &check(
            &w,
            &mallory,
            &refund(&["--offline", "--allowed-signers", "allowed_signers"]),
        ),
        12,
        "is signed by a key not trusted now",
    );
    // Lea's key revoked after she signed.
    let revoked = w.dir_path().join("revoked_signers");
    std::fs::write(
        &revoked,
        std::fs::read_to_string(w.key(LEA).with_extension("com.pub")).unwrap(),
    )
    .unwrap();
    refused(
        &check(
            &w,
            &file,
            &refund(&[
                "--offline",
                "--allowed-signers",
                "allowed_signers",
                "--revoked-signers",
                revoked.to_str().unwrap(),
            ]),
        ),
        12,
        "revoked",
    );
    // The file of a request this audit never approved (another workspace's).
    let other = AuditWs::new();
    refused(
        &check(&other, &file, &refund(&[])),
        21,
        "in the audit, `refund-4711` was never proposed",
    );
    let _ = ALEX;
}

/// An approver whose key is not trusted for `hitl-approval` is refused at decision
/// time: no approval is recorded that no host could check.
#[test]
fn an_approver_key_not_trusted_for_approval_files_is_refused_when_it_approves() {
    let w = AuditWs::new();
    let signers = w.ws().join("allowed_signers");
    let text = std::fs::read_to_string(&signers).unwrap();
    let line = format!("{LEA} namespaces=\"git,hitl,hitl-approval\"");
    assert!(text.contains(&line));
    std::fs::write(
        &signers,
        text.replacen(&line, &format!("{LEA} namespaces=\"git,hitl\""), 1),
    )
    .unwrap();
    w.commit_all(Some(ALEX), "lea signs decisions, not approval files");
    ok(&w.hitl(super::audit::AGENT, &["propose", REFUND]));
    w.refused(
        LEA,
        &["approve", REFUND],
        6,
        "may not sign in namespace `hitl-approval`",
    );
}

/// `ssh-keygen -Y sign -n hitl-approval` of `bytes` with `key`.
fn ssh_sign(key: &Path, bytes: &[u8], dir: &Path) -> String {
    let msg = dir.join("to-sign");
    std::fs::write(&msg, bytes).unwrap();
    let _ = std::fs::remove_file(dir.join("to-sign.sig"));
    let o = sh(
        dir,
        "ssh-keygen",
        &[
            "-q",
            "-Y",
            "sign",
            "-n",
            "hitl-approval",
            "-f",
            key.to_str().unwrap(),
            msg.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::read_to_string(dir.join("to-sign.sig")).unwrap()
}

/// An insider's own signed commit (lea's, trusted) plants an approval file for a request
/// nobody approved, a copy of refund-4711's. Only a final approval's commit may add one:
/// every decision, `check` included, refuses the history from then on (exit 6), and
/// `verify` names the file.
#[test]
fn a_planted_approval_file_is_refused_at_once_and_named_by_verify() {
    let (w, file) = approved();
    ok(&w.hitl(super::audit::AGENT, &["propose", "email-customer-5531"]));
    let planted = w.ws().join("audit/approvals/email-customer-5531.json");
    std::fs::copy(&file, &planted).unwrap();
    w.commit_all(Some(LEA), "an approval file by hand");
    assert_eq!(w.problem_codes(), ["approval-unfounded"]);
    refused(
        &check(&w, &file, &refund(&[])),
        6,
        "adds `audit/approvals/email-customer-5531.json`, but no approval of `email-customer-5531`",
    );
}

/// The agent plants the path of its own proposal's approval file before anyone decides
/// (an append never overwrites, so it would block the approval for good): the history
/// is refused at the next decision, loudly, rather than the request silently stuck.
#[test]
fn an_agent_planting_the_approval_path_is_refused_at_the_next_decision() {
    let w = AuditWs::new();
    ok(&w.hitl(super::audit::AGENT, &["propose", REFUND]));
    std::fs::create_dir_all(w.ws().join("audit/approvals")).unwrap();
    std::fs::write(w.ws().join("audit/approvals/refund-4711.json"), "{}\n").unwrap();
    w.commit_all(Some(super::audit::AGENT), "an approval file by the agent");
    w.refused(
        LEA,
        &["approve", REFUND],
        6,
        "only the final approval's commit writes it",
    );
    assert_eq!(w.problem_codes(), ["approval-unfounded"]);
}

/// The final (here the only) approver re-signs the statement of their own approval
/// file with their own key. A window widened to a year is refused offline (it ends
/// after the proposal); a role rewritten in their re-made commit passes offline but,
/// with the audit at hand, is not what the engine derives; `verify` names it.
#[test]
fn a_final_approver_cannot_rewrite_their_own_file() {
    let (w, _) = approved();
    let path = w.ws().join("audit/approvals/refund-4711.json");
    let resign = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut f: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let mut statement: serde_json::Value =
            serde_json::from_str(f["statement"].as_str().unwrap()).unwrap();
        edit(&mut statement["predicate"]);
        let text = serde_json::to_string_pretty(&statement).unwrap();
        f["signatures"][1]["signature"] =
            ssh_sign(&w.key(LEA), text.as_bytes(), w.dir_path()).into();
        f["statement"] = text.into();
        let mut bytes = serde_json::to_vec_pretty(&f).unwrap();
        bytes.push(b'\n');
        bytes
    };
    let wide = w.dir_path().join("wide.json");
    std::fs::write(
        &wide,
        resign(&|p| p["expires_at"] = "2027-11-27T18:00:00Z".into()),
    )
    .unwrap();
    refused(
        &check_at(
            &w,
            "2026-12-24 12:00:00",
            &wide,
            &refund(&["--offline", "--allowed-signers", "allowed_signers"]),
        ),
        10,
        "its window ends after the proposal expires",
    );
    let bytes = resign(&|p| p["approvers"][0]["role"] = "revenue-ops".into());
    std::fs::write(&path, &bytes).unwrap();
    w.amend_as(LEA);
    w.as_other_clone();
    ok(&check(
        &w,
        &path,
        &refund(&["--offline", "--allowed-signers", "allowed_signers"]),
    ));
    // With the audit at hand the file is compared with the engine's fold.
    refused(
        &check(&w, &path, &refund(&[])),
        21,
        "the approval file its list of approvers is not what the audit records for `refund-4711`",
    );
    assert_eq!(w.problem_codes(), ["approval-unfounded"]);
}

/// A second file of the same approval under another id, re-signed by the final
/// approver and kept outside the audit, passes offline; with the audit at hand it is
/// held to the id the final decision recorded, without reading `audit/approvals/`.
#[test]
fn a_file_under_another_approval_id_is_refused_with_the_audit_at_hand() {
    let (w, file) = approved();
    let mut f: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let mut statement: serde_json::Value =
        serde_json::from_str(f["statement"].as_str().unwrap()).unwrap();
    statement["predicate"]["approval_id"] = "00112233445566778899aabbccddeeff".into();
    let text = serde_json::to_string_pretty(&statement).unwrap();
    f["signatures"][1]["signature"] = ssh_sign(&w.key(LEA), text.as_bytes(), w.dir_path()).into();
    f["statement"] = text.into();
    let mut bytes = serde_json::to_vec_pretty(&f).unwrap();
    bytes.push(b'\n');
    let other = w.dir_path().join("other-id.json");
    std::fs::write(&other, bytes).unwrap();
    ok(&check(
        &w,
        &other,
        &refund(&["--offline", "--allowed-signers", "allowed_signers"]),
    ));
    refused(
        &check(&w, &other, &refund(&[])),
        21,
        "the approval file its approval id is not what the audit records for `refund-4711`",
    );
    ok(&check(&w, &file, &refund(&[])));
    assert!(w.problem_codes().is_empty());
}

/// `check` keeps its fold of the request in `.git/hitl-fold/` and reuses it only at the
/// same HEAD: an entry that does not parse is folded again, `--fresh` folds again, and a
/// revocation (a new HEAD) is seen at once. The entry is this clone's own state, believed
/// as `.git/hitl-config-checked` is: an edited one changes the answer until HEAD moves.
#[test]
fn check_reuses_its_fold_only_at_the_same_head() {
    let (w, file) = approved();
    ok(&check(&w, &file, &refund(&[])));
    let dir = w.ws().join(".git/hitl-fold");
    let entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    std::fs::write(entry, b"not a fold").unwrap();
    ok(&check(&w, &file, &refund(&[])));
    let mut kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(entry).unwrap()).expect("written again");
    assert_eq!(kept["request"], REFUND);
    kept["fold"]["state"]["execution"]["revoked"] = "mallory@example.com".into();
    std::fs::write(entry, serde_json::to_vec(&kept).unwrap()).unwrap();
    refused(
        &check(&w, &file, &refund(&[])),
        23,
        "was revoked by mallory@example.com",
    );
    ok(&check(&w, &file, &refund(&["--fresh"])));
    ok(&w.hitl(
        LEA,
        &["revoke", REFUND, "--reason", "the customer withdrew"],
    ));
    refused(
        &check(&w, &file, &refund(&[])),
        23,
        "was revoked by lea@example.com",
    );
}

/// `check` never turns offline by itself: in a workspace that does not load it
/// refuses; `--offline` needs the signer files named.
#[test]
fn check_never_falls_back_to_offline() {
    let (w, file) = approved();
    std::fs::write(w.ws().join("hitl.toml"), "this is = not toml [").unwrap();
    let o = check(&w, &file, &refund(&[]));
    assert_ne!(o.status.code(), Some(0), "{}", stdout(&o));
    let o = check(&w, &file, &refund(&["--offline"]));
    refused(&o, 2, "`--offline` needs `--allowed-signers FILE`");
}

/// The host's amount is required where the approval has a ceiling, and compared as a
/// decimal; parameters with a key twice are refused; re-armored signatures are refused.
#[test]
fn check_compares_amounts_exactly_and_refuses_ambiguous_input() {
    let (w, file) = approved();
    let bare = ["--action", "payments.refund", "--target", TARGET];
    refused(
        &check(&w, &file, &bare),
        16,
        "pass `--amount N --currency EUR`",
    );
    refused(
        &check(
            &w,
            &file,
            &refund(&["--amount", "180.000000000000001", "--currency", "EUR"]),
        ),
        16,
        "it approves at most 180 EUR",
    );
    refused(
        &check(
            &w,
            &file,
            &refund(&["--amount", "1e2", "--currency", "EUR"]),
        ),
        16,
        "plain decimal number",
    );
    ok(&check(
        &w,
        &file,
        &refund(&["--amount", "180.00", "--currency", "EUR"]),
    ));
    let params = w.dir_path().join("dup.json");
    std::fs::write(
        &params,
        r#"{"charge": "ch_666", "reason": "duplicate", "currency": "EUR", "amount": 180, "charge": "ch_981"}"#,
    )
    .unwrap();
    refused(
        &check(&w, &file, &refund(&["--params", params.to_str().unwrap()])),
        3,
        "duplicate key `charge`",
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let crlf = w.dir_path().join("crlf.json");
    let mut f: serde_json::Value = serde_json::from_str(&text).unwrap();
    let sig = f["signatures"][0]["signature"]
        .as_str()
        .unwrap()
        .replace('\n', "\r\n");
    f["signatures"][0]["signature"] = sig.into();
    let mut bytes = serde_json::to_vec_pretty(&f).unwrap();
    bytes.push(b'\n');
    std::fs::write(&crlf, bytes).unwrap();
    refused(
        &check(
            &w,
            &crlf,
            &refund(&["--offline", "--allowed-signers", "allowed_signers"]),
        ),
        10,
        "is not armored as hitl writes it",
    );
}

/// The first of two approvers (ines, tier 4) re-makes her own approval commit to add a
/// junk approval file: it names no final approval, so the commit is not an append the
/// audit allows; the next decision (sam's) refuses the history, loudly, and `verify`
/// names it.
#[test]
fn a_non_final_approver_cannot_add_the_approval_file() {
    let w = super::workflow::iam_ws();
    ok(&w.hitl(super::workflow::INES, &["approve", super::workflow::IAM]));
    let path = w
        .ws()
        .join("audit/approvals")
        .join(format!("{}.json", super::workflow::IAM));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "{}\n").unwrap();
    w.amend_as(super::workflow::INES);
    w.as_other_clone();
    w.refused(
        super::workflow::SAM,
        &["approve", super::workflow::IAM],
        6,
        "the file does not name this approval as its final one: only the final approval's commit writes it",
    );
    assert_eq!(w.problem_codes(), ["approval-unfounded"]);
}
