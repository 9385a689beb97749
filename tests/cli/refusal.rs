//! The execution gate's bad input through the real binary: `exec` runs a proposal's
//! `change.precondition` first and refuses a world that is no longer the approved
//! `change.before` (exit 29); a refusal of `check` (with the audit at hand) or `exec`
//! is recorded as a `refused` event, signed by whoever was refused, and changes
//! nothing else; `verify` holds a hand-made one only as its signer's.

use std::path::{Path, PathBuf};

use super::audit::{AGENT, AuditWs, LEA, MARIA, ok};
use super::support::{NOW, stderr, stdout};

const REFUND: &str = "refund-4711";
/// After the approval's window (it ends at 18:00).
const LATE: &str = "2026-11-27 18:30:00";

/// refund-4711 with `change.precondition: [cat, STATE]` proposed and approved by lea at
/// [`NOW`], its approval file copied out; the state file holds `state`.
fn approved_with_precondition(state: &str) -> (AuditWs, PathBuf, PathBuf) {
    let w = AuditWs::new();
    let world = w.dir_path().join("state.json");
    std::fs::write(&world, state).unwrap();
    let path = w.ws().join("requests/refund-4711.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let after = "  after: {charge: ch_981, status: refunded, refunded: 180}\n";
    assert!(text.contains(after));
    let line = format!("{after}  precondition: [cat, \"{}\"]\n", world.display());
    std::fs::write(&path, text.replace(after, &line)).unwrap();
    w.propose_and_approve();
    let file = w.dir_path().join("refund.approval.json");
    ok(&w.read(&["approval", REFUND, "--out", file.to_str().unwrap()]));
    (w, file, world)
}

/// The approval file of refund-4711 approved by lea at [`NOW`] (no precondition).
fn approved() -> (AuditWs, PathBuf) {
    let w = AuditWs::new();
    w.propose_and_approve();
    let file = w.dir_path().join("refund.approval.json");
    ok(&w.read(&["approval", REFUND, "--out", file.to_str().unwrap()]));
    (w, file)
}

/// `hitl exec FILE --amount AMOUNT --currency EUR --key WHO -- sh -c 'echo ran >> COUNTER'`.
fn exec(w: &AuditWs, time: &str, file: &Path, amount: &str) -> std::process::Output {
    let counter = w.dir_path().join("counter");
    let script = format!("echo ran >> '{}'", counter.display());
    let key = w.key(AGENT);
    w.command(time)
        .env_remove("HITL_SIGNING_KEY")
        .args([
            "exec",
            file.to_str().unwrap(),
            "--amount",
            amount,
            "--currency",
            "EUR",
        ])
        .args(["--key", key.to_str().unwrap(), "--", "sh", "-c", &script])
        .output()
        .unwrap()
}

/// `hitl check FILE` for the refund of `amount` EUR, with `key` (or none at all).
fn check(
    w: &AuditWs,
    time: &str,
    file: &Path,
    amount: &str,
    key: Option<&str>,
) -> std::process::Output {
    let mut cmd = w
        .command(time)
        .env_remove("HITL_SIGNING_KEY")
        .args(super::audit::refund_check(file.to_str().unwrap(), amount));
    if let Some(who) = key {
        cmd = cmd.args(["--key", w.key(who).to_str().unwrap()]);
    }
    cmd.output().unwrap()
}

fn runs(w: &AuditWs) -> usize {
    std::fs::read_to_string(w.dir_path().join("counter")).map_or(0, |t| t.lines().count())
}

fn state(w: &AuditWs, time: &str) -> serde_json::Value {
    let o = w.read_at(time, &["status", REFUND, "--format", "json"]);
    serde_json::from_str::<serde_json::Value>(&ok(&o)).unwrap()
}

fn refused(o: &std::process::Output, code: i32, needle: &str) {
    assert_eq!(o.status.code(), Some(code), "{}{}", stdout(o), stderr(o));
    assert!(stderr(o).contains(needle), "{}", stderr(o));
}

/// Every event file of the audit, in seq order.
fn events(w: &AuditWs) -> Vec<serde_json::Value> {
    let mut files = Vec::new();
    let Ok(dirs) = std::fs::read_dir(w.ws().join("audit/events")) else {
        return Vec::new();
    };
    for dir in dirs {
        for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "json") {
                files.push(f);
            }
        }
    }
    files.sort();
    files
        .iter()
        .map(|f| serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap())
        .collect()
}

fn refusals(w: &AuditWs) -> Vec<serde_json::Value> {
    events(w)
        .into_iter()
        .filter(|e| e["type"] == "refused")
        .collect()
}

fn sha256_of(file: &Path) -> String {
    format!(
        "sha256:{}",
        hitl_lib::audit::sha256_hex(&std::fs::read(file).unwrap())
    )
}

#[test]
fn exec_runs_when_the_precondition_finds_the_approved_state() {
    // `0.0` is `0`, and key order does not matter: JSON values are compared.
    let (w, file, _) = approved_with_precondition(
        r#"{"refunded": 0.0, "status": "captured", "charge": "ch_981"}"#,
    );
    let shown = ok(&w.read(&["show", REFUND]));
    assert!(shown.contains("Precondition"), "{shown}");
    assert!(shown.contains(r#"["cat","#), "{shown}");
    let o = exec(&w, NOW, &file, "180");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("checking the precondition of `refund-4711`"),
        "{}",
        stderr(&o)
    );
    assert_eq!(runs(&w), 1);
    assert_eq!(state(&w, NOW)["state"], "executed");
    assert!(refusals(&w).is_empty());
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}

#[test]
fn exec_refuses_a_changed_world_spends_nothing_and_runs_once_it_is_restored() {
    let (w, file, world) = approved_with_precondition(
        r#"{"charge": "ch_981", "status": "refunded", "refunded": 180}"#,
    );
    let o = exec(&w, NOW, &file, "180");
    refused(
        &o,
        29,
        "the precondition of `refund-4711` does not hold: `change.before` differs at `$.refunded`: the approved state has 0, the precondition found 180",
    );
    assert_eq!(runs(&w), 0, "the command never ran");
    assert_eq!(state(&w, NOW)["state"], "approved", "nothing spent");
    let r = refusals(&w);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["refusal"], "precondition-failed");
    assert_eq!(r[0]["exit_code"], 29);
    assert_eq!(r[0]["command"], "exec");
    // The world restored: it runs, once.
    std::fs::write(
        &world,
        r#"{"charge": "ch_981", "status": "captured", "refunded": 0}"#,
    )
    .unwrap();
    let o = exec(&w, NOW, &file, "180");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(runs(&w), 1);
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}

#[test]
fn exec_refuses_a_precondition_that_prints_no_json_or_fails() {
    let (w, file, world) = approved_with_precondition("captured\n");
    refused(&exec(&w, NOW, &file, "180"), 29, "is not JSON");
    // A file the precondition cannot read: `cat` exits non-zero.
    std::fs::remove_file(&world).unwrap();
    refused(&exec(&w, NOW, &file, "180"), 29, "`cat` exited with 1");
    assert_eq!(runs(&w), 0);
    assert_eq!(state(&w, NOW)["state"], "approved");
    assert_eq!(refusals(&w).len(), 2);
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}

#[test]
fn propose_refuses_a_precondition_that_is_not_a_list_of_words() {
    let w = AuditWs::new();
    let path = w.ws().join("requests/refund-4711.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let after = "  after: {charge: ch_981, status: refunded, refunded: 180}\n";
    for (value, at, needle) in [
        (
            "cat state.json",
            "21:17",
            "`change.precondition`: expected a list, found a string",
        ),
        ("[]", "21:17", "`change.precondition`: must not be empty"),
        (
            "[cat, 7]",
            "21:23",
            "`change.precondition[1]`: expected a string, found an integer",
        ),
    ] {
        std::fs::write(
            &path,
            text.replace(after, &format!("{after}  precondition: {value}\n")),
        )
        .unwrap();
        let o = w.hitl(AGENT, &["propose", REFUND]);
        assert_eq!(o.status.code(), Some(3), "{value}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("requests/refund-4711.yaml:{at}: {needle}")),
            "{value}: {}",
            stderr(&o)
        );
    }
    assert!(events(&w).is_empty(), "nothing recorded");
}

/// Expired, a larger amount, spent: each refusal of `check` and of `exec` records one
/// `refused` event with its fields, signed by who was refused; the request's state does
/// not change and `verify` stays clean.
#[test]
fn check_and_exec_record_each_refusal_once() {
    let (w, file) = approved();
    let digest = sha256_of(&file);
    // A larger amount, by check (lea's key) and by exec (the agent's).
    refused(
        &check(&w, NOW, &file, "181", Some(LEA)),
        16,
        "it approves at most 180 EUR",
    );
    refused(
        &exec(&w, NOW, &file, "181"),
        16,
        "it approves at most 180 EUR",
    );
    assert_eq!(runs(&w), 0);
    let r = refusals(&w);
    assert_eq!(r.len(), 2, "{r:?}");
    for (e, (command, by)) in r.iter().zip([("check", LEA), ("exec", AGENT)]) {
        assert_eq!(e["request"], REFUND);
        assert_eq!(e["command"], command);
        assert_eq!(e["actor"]["principal"], by);
        assert_eq!(e["refusal"], "over-amount");
        assert_eq!(e["exit_code"], 16);
        assert_eq!(e["approval"], digest.as_str());
        assert_eq!(e["action"], "payments.refund");
        assert_eq!(e["target"], "payments/charge/ch_981");
        assert_eq!(
            e["amount"],
            serde_json::json!({"value": "181", "currency": "EUR"})
        );
        assert!(
            e["reason"].as_str().unwrap().contains("at most 180 EUR"),
            "{e}"
        );
    }
    let s = state(&w, NOW);
    assert_eq!(s["state"], "approved", "a refusal changes nothing");
    assert_eq!(s["refusals"]["count"], 2);
    assert_eq!(s["refusals"]["last"]["command"], "exec");
    let text = ok(&w.read(&["status", REFUND]));
    assert!(
        text.contains("refused 2 time(s) by `check` or `exec`; last 2026-11-27T16:00:00Z by support-copilot@agents.example.com (exec: over-amount)"),
        "{text}"
    );
    let shown = ok(&w.read(&["show", REFUND]));
    assert!(shown.contains("refused 2 time(s)"), "{shown}");
    let shown = ok(&w.read(&["show", REFUND, "--format", "json"]));
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["refusals"]["count"], 2);
    // The success path records nothing.
    let head = w.git(&["rev-parse", "HEAD"]);
    ok(&check(&w, NOW, &file, "180", Some(LEA)));
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head);
    assert_eq!(w.problem_codes(), Vec::<String>::new());

    // Spent: exec runs it, then check and exec are refused, each recorded.
    ok(&exec(&w, NOW, &file, "180"));
    refused(
        &check(&w, NOW, &file, "180", Some(LEA)),
        22,
        "was spent already",
    );
    refused(&exec(&w, NOW, &file, "180"), 22, "was spent already");
    assert_eq!(runs(&w), 1);
    let r = refusals(&w);
    assert_eq!(r.len(), 4);
    assert_eq!(
        r[2..]
            .iter()
            .map(|e| (e["command"].clone(), e["refusal"].clone()))
            .collect::<Vec<_>>(),
        [
            ("check".into(), "spent".into()),
            ("exec".into(), "spent".into())
        ]
    );
    assert_eq!(state(&w, NOW)["state"], "executed");

    // Expired, after the window.
    refused(
        &check(&w, LATE, &file, "180", Some(LEA)),
        19,
        "the approval expired",
    );
    refused(&exec(&w, LATE, &file, "180"), 19, "the approval expired");
    let r = refusals(&w);
    assert_eq!(r.len(), 6);
    assert_eq!(r[4]["refusal"], "expired");
    assert_eq!(r[5]["refusal"], "expired");
    assert_eq!(r[5]["exit_code"], 19);
    assert_eq!(w.problem_codes_at(LATE), Vec::<String>::new());
}

/// Without a key, `check` refuses with the same code, records nothing, and says why.
#[test]
fn check_without_a_key_refuses_the_same_and_records_nothing() {
    let (w, file) = approved();
    let head = w.git(&["rev-parse", "HEAD"]);
    let o = check(&w, NOW, &file, "181", None);
    refused(&o, 16, "it approves at most 180 EUR");
    assert!(
        stderr(&o).contains("the refusal was not recorded in the audit: no usable signing key"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head);
    // Nor with a key no one trusts: the same code.
    let o = check(&w, NOW, &file, "181", Some(super::audit::MALLORY));
    refused(&o, 16, "it approves at most 180 EUR");
    assert!(
        stderr(&o).contains("the refusal was not recorded"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head);
}

/// A forged file naming a request the audit never saw, and a file that is not one at
/// all: refused as before, nothing recorded.
#[test]
fn a_file_naming_no_proposed_request_records_nothing() {
    let (w, file) = approved();
    let head = w.git(&["rev-parse", "HEAD"]);
    let forged = w.dir_path().join("forged.json");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&forged, text.replace("refund-4711", "refund-9999")).unwrap();
    let o = check(&w, NOW, &forged, "180", Some(LEA));
    assert!(matches!(o.status.code(), Some(10..=21)), "{}", stderr(&o));
    assert!(
        stderr(&o)
            .contains("not recorded in the audit: `refund-9999` was not proposed in this audit"),
        "{}",
        stderr(&o)
    );
    let junk = w.dir_path().join("junk.json");
    std::fs::write(&junk, "not json").unwrap();
    let o = check(&w, NOW, &junk, "180", Some(LEA));
    refused(
        &o,
        10,
        "the refusal was not recorded in the audit: the file names no request",
    );
    let o = exec(&w, NOW, &junk, "180");
    refused(&o, 10, "the file names no request");
    assert_eq!(w.git(&["rev-parse", "HEAD"]), head);
    assert_eq!(runs(&w), 0);
}

/// A file edited by a byte still names its request: refused (malformed) and recorded.
#[test]
fn an_edited_file_naming_a_proposed_request_is_recorded_as_malformed() {
    let (w, file) = approved();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.insert(1, b' ');
    std::fs::write(&file, &bytes).unwrap();
    refused(&exec(&w, NOW, &file, "180"), 10, "is not byte for byte");
    let r = refusals(&w);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["refusal"], "malformed");
    assert_eq!(r[0]["approval"], sha256_of(&file).as_str());
    assert_eq!(w.problem_codes(), Vec::<String>::new());
}

/// A `refused` event made by hand, naming maria as its actor in a commit the agent
/// signs: the request is inconsistent, and `verify` names the commit's signer.
#[test]
fn a_hand_made_refusal_signed_by_another_principal_does_not_hold() {
    let (w, file) = approved();
    refused(
        &check(&w, NOW, &file, "181", Some(LEA)),
        16,
        "at most 180 EUR",
    );
    let r = refusals(&w);
    let seq = r[0]["seq"].as_u64().unwrap();
    let bytes = std::fs::read(w.event_file(seq)).unwrap();
    let mut forged = r[0].clone();
    forged["seq"] = (seq + 1).into();
    forged["prev"] = hitl_lib::audit::sha256_hex(&bytes).into();
    forged["actor"] = serde_json::json!({"principal": MARIA, "key": w.fingerprint(MARIA)});
    let mut out = serde_json::to_vec_pretty(&forged).unwrap();
    out.push(b'\n');
    std::fs::write(w.event_file(seq + 1), out).unwrap();
    let index = w.ws().join(hitl_lib::audit::request_index_path(REFUND));
    let mut listed = std::fs::read_to_string(&index).unwrap();
    listed.push_str(&format!("{}\n", seq + 1));
    std::fs::write(&index, listed).unwrap();
    w.commit_all(Some(AGENT), "a refusal by hand");
    w.as_other_clone();
    let s = state(&w, NOW);
    assert_eq!(s["state"], "inconsistent", "{s}");
    assert!(
        s["reason"].as_str().unwrap().contains(&format!(
            "its recorded `refused` (event {}) does not hold: it names {MARIA} as its actor but its commit is signed by {AGENT}",
            seq + 1
        )),
        "{s}"
    );
    assert_eq!(w.problem_codes(), ["signer-not-actor"]);
}

/// A `refused` event made by hand for a request the audit never proposed, in its
/// actor's own signed commit: `verify` reports it as unfounded, and only that.
#[test]
fn a_hand_made_refusal_of_a_request_never_proposed_is_unfounded() {
    let (w, file) = approved();
    refused(
        &check(&w, NOW, &file, "181", Some(LEA)),
        16,
        "at most 180 EUR",
    );
    let r = refusals(&w);
    let seq = r[0]["seq"].as_u64().unwrap();
    let bytes = std::fs::read(w.event_file(seq)).unwrap();
    let mut forged = r[0].clone();
    forged["seq"] = (seq + 1).into();
    forged["prev"] = hitl_lib::audit::sha256_hex(&bytes).into();
    forged["request"] = "refund-4712".into();
    let mut out = serde_json::to_vec_pretty(&forged).unwrap();
    out.push(b'\n');
    std::fs::write(w.event_file(seq + 1), out).unwrap();
    let index = w
        .ws()
        .join(hitl_lib::audit::request_index_path("refund-4712"));
    std::fs::create_dir_all(index.parent().unwrap()).unwrap();
    std::fs::write(&index, format!("{}\n", seq + 1)).unwrap();
    w.commit_all(Some(LEA), "a refusal by hand");
    assert_eq!(w.problem_codes(), ["refusal-unfounded"]);
    // The request it was recorded for is untouched.
    assert_eq!(state(&w, NOW)["state"], "approved");
}
