//! Who is acting: the signing key (`--key`, `HITL_SIGNING_KEY`, git's `user.signingkey`)
//! and the principal `allowed_signers` gives it. Never a self-declared name.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use hitl_lib::audit::Actor;
use hitl_lib::audit::verify::{ALLOWED_SIGNERS, REVOKED_SIGNERS};
use hitl_lib::signing::{self, AllowedSigners, RevokedSigners, SigningKey};

use super::{CliError, CliResult, Exit};

/// The `--key` flag every recording command takes.
#[derive(Debug, clap::Args)]
pub struct KeyArgs {
    /// The SSH key to sign with: a private key file, or a public key (`.pub`) whose
    /// private half ssh-agent holds [default: `$HITL_SIGNING_KEY`, else git's
    /// `user.signingkey`].
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
}

/// Loads the signing key: from its file (prompting for a passphrase on a terminal unless
/// ssh-agent holds it) or, for a public key, through ssh-agent at `$SSH_AUTH_SOCK`.
pub fn signing_key(args: &KeyArgs, root: &Path, cwd: &Path) -> CliResult<SigningKey> {
    load_key(args, root, cwd, true)
}

/// The key a command that records only by the way (`check`'s refusals) signs with: one
/// named by `--key` or `$HITL_SIGNING_KEY`, never git's `user.signingkey`, and loaded
/// without a prompt (a key that needs a passphrase no ssh-agent holds is not used), so
/// a gate in CI never waits for a person.
pub fn named_key_quietly(args: &KeyArgs, root: &Path, cwd: &Path) -> CliResult<SigningKey> {
    let named =
        args.key.is_some() || std::env::var_os(signing::KEY_ENV).is_some_and(|v| !v.is_empty());
    if !named {
        return Err(CliError::new(
            Exit::Usage,
            format!("no key named (`--key` or `${}`)", signing::KEY_ENV),
        ));
    }
    load_key(args, root, cwd, false)
}

fn load_key(args: &KeyArgs, root: &Path, cwd: &Path, may_prompt: bool) -> CliResult<SigningKey> {
    let flag = args.key.as_ref().map(|k| cwd.join(k));
    let env = std::env::var_os(signing::KEY_ENV);
    let source = signing::key_source(flag.as_deref(), env.as_deref(), root)?;
    let agent = std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from);
    let path = source.path().map(Path::to_path_buf).unwrap_or_default();
    let mut prompt = || -> Option<String> {
        if !may_prompt || !super::can_prompt() {
            return None;
        }
        dialoguer::Password::new()
            .with_prompt(format!("passphrase for `{}`", path.display()))
            .interact()
            .ok()
    };
    Ok(SigningKey::load(&source, agent.as_deref(), &mut prompt)?)
}

/// The principal `allowed_signers` gives this key for namespace `hitl` at `now`, by the
/// one trust function `verify` and the engine use (`signing::trusted_principal`).
pub fn actor(root: &Path, key: &SigningKey, now: DateTime<Utc>) -> CliResult<Actor> {
    let allowed = AllowedSigners::load(&root.join(ALLOWED_SIGNERS))?;
    let revoked = RevokedSigners::load(&root.join(REVOKED_SIGNERS))?;
    let principal = signing::trusted_principal(
        &allowed,
        &revoked,
        key.public(),
        None,
        signing::NAMESPACE,
        now,
    )
    .map_err(|u| {
        let mut e = CliError::new(Exit::Refused, u.message);
        if u.code == "signer-not-actor" {
            e.hints.push(format!(
                "one key, one person: give this key a line of its own in `{ALLOWED_SIGNERS}`, with the principal's full name"
            ));
        }
        e
    })?;
    Ok(Actor {
        principal,
        key: key.fingerprint(),
    })
}

/// The configuration a recorded decision rests on must be the committed one: the
/// matrix, the policies and the trust files on disk must equal HEAD's. Otherwise an
/// uncommitted edit (a key added to `allowed_signers`, oneself added to a role) would
/// decide, and nothing in the history would show it.
pub fn require_committed_config(repo: &hitl_lib::audit::AuditRepo) -> CliResult<()> {
    use hitl_lib::workspace::{MATRIX_FILE, POLICIES_DIR, SETTINGS_FILE};
    let dirty = repo.uncommitted(&[
        MATRIX_FILE,
        SETTINGS_FILE,
        POLICIES_DIR,
        ALLOWED_SIGNERS,
        REVOKED_SIGNERS,
    ])?;
    if dirty.is_empty() {
        return Ok(());
    }
    let mut err = CliError::new(
        Exit::Refused,
        format!(
            "uncommitted changes to {}: the audit records decisions made under committed configuration only",
            dirty
                .iter()
                .map(|d| format!("`{d}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    err.hints.push(
        "commit them (signed: `git commit -S`) or restore them, then run the command again"
            .to_owned(),
    );
    Err(err)
}

/// What a recording command starts from: the workspace, its audit (its configuration
/// committed), the signing key and the principal it is (judged at the clock read
/// before the lock; the append reads the clock again under it).
pub struct Recorder {
    pub ws: hitl_lib::workspace::Workspace,
    pub repo: hitl_lib::audit::AuditRepo,
    pub key: SigningKey,
    pub actor: Actor,
}

impl Recorder {
    /// Opens the workspace of `ctx` and loads the key of `key_args`.
    pub fn open(ctx: &super::Ctx, key_args: &KeyArgs) -> CliResult<Self> {
        let ws = ctx.workspace()?;
        let now = super::now()?;
        let repo = hitl_lib::audit::AuditRepo::open(ws.root())?;
        require_committed_config(&repo)?;
        let key = signing_key(key_args, ws.root(), ctx.cwd())?;
        let actor = actor(ws.root(), &key, now)?;
        Ok(Self {
            ws,
            repo,
            key,
            actor,
        })
    }
}

/// How a command that records appends as `actor`, signing with `key`: the engine records
/// the versions of the configuration it decided under (read under the lock), and the
/// clock is read once the lock is held.
pub fn appender(key: &SigningKey, actor: Actor) -> hitl_lib::audit::Appender<'_, CliError> {
    hitl_lib::audit::Appender {
        key,
        actor,
        config: hitl_lib::audit::ConfigVersions {
            matrix: "none".to_owned(),
            policies: "none".to_owned(),
            tool: format!("hitl {}", env!("CARGO_PKG_VERSION")),
        },
        clock: &super::now,
    }
}
