//! docs/ci.md's GitHub Actions job and GitLab CI job, their shell steps run as written
//! (the install and checkout steps aside) with `hitl` on `PATH`, in a clone of a
//! workspace where the tier-4 production change is approved: each deploys once, and a
//! rerun is refused without deploying again.

use std::path::Path;

use super::audit::{AuditWs, ok, sh};
use super::support::{root, stderr, stdout};

const PRIYA: &str = "priya@example.com";
const CHEN: &str = "chen@example.com";
const DEPLOY_BOT: &str = "deploy-bot@agents.example.com";
/// A Thursday, 10:30 in Berlin: the `production` change window is open.
const AT: &str = "2026-11-26 09:30:00";
const LATER: &str = "2026-11-26 09:40:00";

/// The production change, moved a day earlier (so it can be approved in its window),
/// proposed by the deploy agent and approved by the service owner and the change
/// manager; the deploy scripts and a remote to push to.
fn approved_change() -> AuditWs {
    let w = AuditWs::with_people(&[PRIYA, CHEN, DEPLOY_BOT]);
    let path = w.ws().join("requests/prod-config-checkout.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("2026-11-27T", "2026-11-26T");
    std::fs::write(&path, text).unwrap();
    ok(&w.hitl_at(AT, DEPLOY_BOT, &["propose", "prod-config-checkout"]));
    ok(&w.hitl_at(AT, PRIYA, &["approve", "prod-config-checkout"]));
    ok(&w.hitl_at(AT, CHEN, &["approve", "prod-config-checkout"]));
    let deploy = w.ws().join("deploy");
    std::fs::create_dir(&deploy).unwrap();
    std::fs::write(
        deploy.join("params.json"),
        r#"{"service": "checkout", "file": "config/checkout.yaml", "revision": "7f3c2e1"}"#,
    )
    .unwrap();
    let counter = w.dir_path().join("deployed");
    std::fs::write(
        deploy.join("apply.sh"),
        format!("#!/bin/sh\necho applied >> '{}'\n", counter.display()),
    )
    .unwrap();
    std::fs::write(deploy.join("smoke-test.sh"), "#!/bin/sh\nexit 0\n").unwrap();
    for f in ["apply.sh", "smoke-test.sh"] {
        ok(&sh(&deploy, "chmod", &["+x", f]));
    }
    let remote = w.dir_path().join("remote.git");
    ok(&sh(
        w.dir_path(),
        "git",
        &["init", "-q", "--bare", remote.to_str().unwrap()],
    ));
    w.git(&["remote", "add", "origin", remote.to_str().unwrap()]);
    w.git(&["push", "-q", "origin", "main"]);
    w
}

fn deployed(w: &AuditWs) -> usize {
    std::fs::read_to_string(w.dir_path().join("deployed")).map_or(0, |t| t.lines().count())
}

/// The shell of one job, run with `sh -e` in the workspace at `time`, as the deploy key.
fn run_job(w: &AuditWs, time: &str, script: &str) -> std::process::Output {
    run_job_in(&w.ws(), w, time, script)
}

/// [`run_job`] in another clone `dir` of `w`'s workspace.
fn run_job_in(dir: &Path, w: &AuditWs, time: &str, script: &str) -> std::process::Output {
    let bin = Path::new(snapbox::cmd::cargo_bin!("hitl"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::process::Command::new("sh")
        .args(["-e", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env("HOME", w.dir_path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HITL_TEST_NOW", time)
        .env("TZ", "UTC")
        .env("REQUEST", "prod-config-checkout")
        .env("HITL_SIGNING_KEY", w.key(DEPLOY_BOT))
        .output()
        .unwrap()
}

/// The `run: |` blocks of the GitHub job's steps after the key step, as written.
fn github_steps(doc: &str) -> String {
    let start = doc.find("```yaml\nname: deploy checkout config").unwrap();
    let yaml = &doc[start..];
    let yaml = &yaml[..yaml[8..].find("```").unwrap() + 8];
    let mut out = String::new();
    for step in ["- name: check the approval", "- name: deploy, once"] {
        let at = yaml.find(step).unwrap();
        let block = &yaml[at..];
        let run = block.find("run: |\n").unwrap() + "run: |\n".len();
        for line in block[run..].lines() {
            if !line.starts_with("          ") {
                break;
            }
            out.push_str(line.trim_start());
            out.push('\n');
        }
    }
    out.replace("\\\n", "")
}

/// The `script:` items of the GitLab job, as written.
fn gitlab_script(doc: &str) -> String {
    let start = doc.find("```yaml\ndeploy-checkout-config:").unwrap();
    let yaml = &doc[start..];
    let script = &yaml[yaml.find("  script:\n").unwrap() + "  script:\n".len()..];
    script
        .lines()
        .take_while(|l| l.starts_with("    - "))
        .map(|l| format!("{}\n", &l["    - ".len()..]))
        .collect()
}

#[test]
fn the_github_and_gitlab_jobs_of_docs_ci_deploy_once() {
    let doc = std::fs::read_to_string(root().join("docs/ci.md")).unwrap();
    let github = github_steps(&doc);
    assert!(github.contains("hitl check approval.json"), "{github}");
    assert!(github.contains("hitl exec approval.json"), "{github}");
    let gitlab = gitlab_script(&doc);
    assert!(gitlab.contains("hitl exec approval.json"), "{gitlab}");

    for script in [&github, &gitlab] {
        let w = approved_change();
        let o = run_job(&w, LATER, script);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{script}\n{}{}",
            stdout(&o),
            stderr(&o)
        );
        assert_eq!(deployed(&w), 1);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&ok(&w.read_at(
                LATER,
                &["status", "prod-config-checkout", "--format", "json"]
            )))
            .unwrap()["state"],
            "verified"
        );
        // A retried job: refused at `check` (spent), nothing deployed again.
        std::fs::remove_file(w.ws().join("approval.json")).unwrap();
        let o = run_job(&w, LATER, script);
        assert_eq!(o.status.code(), Some(22), "{}{}", stdout(&o), stderr(&o));
        assert_eq!(deployed(&w), 1, "never twice");
        assert_eq!(w.problem_codes(), Vec::<String>::new());
    }
}

/// Two runners, two clones of the same approved change, the same job: the one whose
/// spend lands on the remote first deploys; the other's push is refused and it never
/// deploys, though its own clone saw the approval unspent.
#[test]
fn two_clones_running_the_job_deploy_once() {
    let doc = std::fs::read_to_string(root().join("docs/ci.md")).unwrap();
    let github = github_steps(&doc);
    let w = approved_change();
    let other = w.dir_path().join("other");
    ok(&sh(
        w.dir_path(),
        "git",
        &[
            "clone",
            "-q",
            "-b",
            "main",
            w.dir_path().join("remote.git").to_str().unwrap(),
            other.to_str().unwrap(),
        ],
    ));
    for dir in [w.ws(), other.clone()] {
        std::fs::create_dir_all(dir.join("deploy")).unwrap();
    }
    for f in ["params.json", "apply.sh", "smoke-test.sh"] {
        std::fs::copy(w.ws().join("deploy").join(f), other.join("deploy").join(f)).unwrap();
    }
    let o = run_job(&w, LATER, &github);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let o = run_job_in(&other, &w, LATER, &github);
    assert_eq!(o.status.code(), Some(22), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("could not be pushed"), "{}", stderr(&o));
    assert_eq!(deployed(&w), 1, "never twice");
}
