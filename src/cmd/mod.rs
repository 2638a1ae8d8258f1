//! The command line: the program's one edge (`main → run → ExitCode`, as in
//! cargo's `commands/*` and ripgrep). One file per subcommand; this file holds
//! the clap [`Cli`], the [`Command`] enum, the [`exit`] codes, and the single
//! place that resolves SSH/lab settings ([`live_options`], [`ssh_options`]),
//! builds the tokio runtime ([`runtime`]), asks for confirmation
//! ([`confirm`]) and shows progress ([`TermProgress`]).
//!
//! Library modules (`apply`, `verify`, `lab`, `plan`, ...) import nothing
//! from here: they take resolved options and return plans, reports and
//! errors; the files here print them and map them to exit codes. Progress
//! while hosts are worked on is the one thing a library call reports as it
//! goes: it takes a `&dyn apply::run::Progress`, which this edge implements
//! with indicatif (the simplest honest split: the runner says what happens,
//! the edge decides how it looks).
//!
//! Output conventions, all decided here:
//! - stdout is written through [`print`] / [`print_json`]; a closed pipe
//!   (`lvsup plan | head`) ends the command quietly with exit 0. Chosen over
//!   restoring SIGPIPE's default action: that would kill the process by a
//!   signal (shells report 141), and the issue asks for exit 0.
//! - every JSON document carries `"format_version": 1` first ([`print_json`]).
//! - color: [`color`] is the one on/off switch (`--color`, then anstream's
//!   rules: `NO_COLOR` non-empty → off, `CLICOLOR_FORCE` → on, else on for a
//!   terminal); [`paint`] styles lines like Terraform (green add, red remove,
//!   yellow change).
//! - logs: `tracing` on stderr for every command and the daemon, filtered by
//!   `RUST_LOG` (tracing's env-filter syntax) or `-v` ([`init_logging`]).

pub mod apply;
pub mod completions;
pub mod destroy;
pub mod director;
pub mod import;
pub mod init;
pub mod ipvs;
pub mod lab;
pub mod plan;
pub mod status;
pub mod validate;
pub mod verify;

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anstream::ColorChoice;
use anyhow::{Result, bail};
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::apply::LiveOptions;
use crate::apply::run::{HostProgress, Progress};
use crate::config::{ClusterSpec, ConfigError};
use crate::remote::SshOptions;

/// Exit codes, as documented in `docs/reference/cli.md`. Terraform's conventions for `plan`.
pub mod exit {
    /// Success (for `plan --detailed-exitcode`: success and no changes).
    pub const OK: u8 = 0;
    /// An error: invalid configuration, a host or step that failed.
    pub const ERROR: u8 = 1;
    /// `plan --detailed-exitcode` only: success, and there are changes to apply.
    pub const CHANGES: u8 = 2;
    /// The command line itself is wrong (unknown flag, missing argument).
    pub const USAGE: u8 = 64;
}

#[derive(Debug, Parser)]
#[command(
    name = "lvsup",
    version,
    about = "Build whole LVS/IPVS load-balancing clusters from one cluster.toml",
    long_about = None,
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// When to color the output: auto (on a terminal, unless NO_COLOR is set), always, never
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    color: ColorWhen,
    /// More log output on stderr: -v info, -vv debug, -vvv trace (RUST_LOG overrides)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    verbose: u8,
    /// Refuse a cluster file whose `[ssh] config` would make ssh read an ssh_config
    /// from the file's side (its ProxyCommand or Match exec run commands on this
    /// machine): for CI that plans untrusted files. `--ssh-config` still works
    #[arg(long, global = true, env = "LVSUP_NO_SSH_CONFIG_FROM_FILE", action = ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    no_ssh_config_from_file: bool,
}

/// `--no-ssh-config-from-file` (or `LVSUP_NO_SSH_CONFIG_FROM_FILE`), set once
/// by [`run`] and read by [`ssh_options`]: a process-wide switch rather than
/// a field threaded through every subcommand's arguments, because every
/// command that reaches hosts goes through that one function.
static NO_SSH_CONFIG_FROM_FILE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// `--color WHEN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

/// Every subcommand; its arguments and `run` live in the file of the same name.
#[derive(Debug, Subcommand)]
enum Command {
    /// Print an annotated cluster.toml to start from (every key explained)
    Init(init::InitArgs),
    /// Check a cluster file and print a one-line summary (warnings on stderr)
    Validate(validate::ValidateArgs),
    /// Show what apply would change on every host
    Plan(plan::PlanArgs),
    /// Converge every host to the cluster file over SSH (shows the plan, asks)
    Apply(apply::ApplyArgs),
    /// The live cluster: master director, real servers' health, weights, connections
    Status(status::StatusArgs),
    /// Remove everything lvsup added on every host, restore sysctls
    Destroy(destroy::DestroyArgs),
    /// Build the cluster's hosts on this machine (root): containers, networks, sshd
    #[command(subcommand)]
    Lab(lab::LabCommand),
    /// On a director: run the daemon, or ask it for its status
    #[command(subcommand)]
    Director(director::DirectorCommand),
    /// Debugging aid: the kernel's IPVS table as lvsup reads it over netlink
    #[command(subcommand, hide = true)]
    Ipvs(ipvs::IpvsCommand),
    /// Prove a running cluster works: VIP, scheduling, director and real-server failover, timed
    Verify(verify::VerifyArgs),
    /// Write a cluster.toml from another load balancer's configuration
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Print a shell completion script (e.g. `lvsup completions bash > /etc/bash_completion.d/lvsup`)
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Write the man pages (lvsup.1, lvsup-plan.1, ...) into DIR: a packaging step
    #[command(hide = true)]
    Manpages {
        /// Directory to write the pages into (created if missing)
        dir: std::path::PathBuf,
    },
}

/// `-f FILE`, shared by every command that reads a cluster file.
#[derive(Debug, Args)]
pub struct FileArg {
    /// The cluster file
    #[arg(
        short = 'f',
        long = "file",
        default_value = "cluster.toml",
        value_name = "FILE"
    )]
    pub file: PathBuf,
}

/// Options shared by every command that contacts the hosts.
#[derive(Debug, Clone, Args)]
pub struct LiveArgs {
    /// SSH client configuration, like `ssh -F` (overrides `[ssh] config` and a running lab's)
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// Only this host (repeatable); the others are neither contacted nor changed
    #[arg(long = "target", value_name = "HOST")]
    pub targets: Vec<String>,
    /// How many hosts are worked on at once
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub parallel: usize,
    /// Seconds to wait for a host's SSH connection
    #[arg(long, default_value_t = 20, value_name = "SECS")]
    pub connect_timeout: u64,
    /// Seconds one step on one host may take
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub step_timeout: u64,
}

/// `LVSUP_DIRECTOR_BINARY`: the binary plan and apply put on directors when
/// `--director-binary` is not given (an empty value counts as unset).
pub(crate) fn director_binary_from_env() -> Option<PathBuf> {
    std::env::var_os("LVSUP_DIRECTOR_BINARY")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.color {
        ColorWhen::Auto => {}
        ColorWhen::Always => ColorChoice::Always.write_global(),
        ColorWhen::Never => ColorChoice::Never.write_global(),
    }
    let daemon = matches!(
        cli.command,
        Command::Director(director::DirectorCommand::Run { .. })
    );
    init_logging(cli.verbose, daemon);
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        // The reader went away (`lvsup ... | head`): what it wanted it has.
        Err(e) if is_broken_pipe(&e) => ExitCode::from(exit::OK),
        Err(e) => {
            report(&e);
            ExitCode::from(exit::ERROR)
        }
    }
}

fn report(e: &anyhow::Error) {
    let mut stderr = std::io::stderr().lock();
    if let Some(ce) = e.downcast_ref::<ConfigError>() {
        let _ = write!(stderr, "{}", ce.render(color_stderr()));
    } else {
        let _ = writeln!(stderr, "error: {e:#}");
    }
}

fn color_stderr() -> bool {
    color(Stream::Stderr)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The version of every JSON document lvsup prints (`"format_version"`):
/// raised when a field is renamed or removed or changes meaning; adding a
/// field keeps it.
pub const FORMAT_VERSION: u32 = 1;

/// A JSON document as printed: `format_version` first, then the document's own fields.
#[derive(Serialize)]
struct Versioned<'a, T: Serialize + ?Sized> {
    format_version: u32,
    #[serde(flatten)]
    doc: &'a T,
}

/// `doc` as lvsup prints JSON: pretty, with `format_version` (`doc` must
/// serialize as a JSON object).
pub fn json_string<T: Serialize + ?Sized>(doc: &T) -> serde_json::Result<String> {
    serde_json::to_string_pretty(&Versioned {
        format_version: FORMAT_VERSION,
        doc,
    })
}

/// Print `doc` as JSON (see [`json_string`]) on stdout.
pub fn print_json<T: Serialize + ?Sized>(doc: &T) -> Result<()> {
    print(&(json_string(doc)? + "\n"))
}

/// Write `text` to stdout and flush. Unlike `print!`, a closed pipe is an
/// error returned to [`main`] (which ends quietly), not a panic.
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// An output stream, for [`color`].
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Whether to color what goes to `stream`: the one place that decides.
/// `--color always|never` wins; else anstream's rules: `NO_COLOR` (non-empty)
/// → no, `CLICOLOR_FORCE` → yes, else yes on a terminal that supports color.
pub fn color(stream: Stream) -> bool {
    let choice = match stream {
        Stream::Stdout => anstream::AutoStream::choice(&std::io::stdout()),
        Stream::Stderr => anstream::AutoStream::choice(&std::io::stderr()),
    };
    choice != ColorChoice::Never
}

/// Logs (`tracing`) on stderr for every command. `RUST_LOG` (env-filter
/// syntax, e.g. `debug` or `lvsup::remote=trace`) when set, else the level
/// from `-v`: warnings only by default, -v info, -vv debug, -vvv trace. The
/// daemon (`director run`) logs at info by default, one step more per -v,
/// and still reads the older `LVSUP_LOG` (same syntax) when RUST_LOG is unset.
pub fn init_logging(verbose: u8, daemon: bool) {
    use tracing_subscriber::EnvFilter;
    let from_env = ["RUST_LOG"]
        .into_iter()
        .chain(daemon.then_some("LVSUP_LOG"))
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()));
    let level = match verbose + u8::from(daemon) {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = from_env
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(color(Stream::Stderr))
        .with_writer(std::io::stderr)
        .try_init();
}

/// An apply or destroy report on stdout, colored on a terminal: failed hosts
/// red, changed ones green, the closing line bold.
pub fn print_report(r: &crate::apply::run::Report) -> Result<()> {
    print(&paint(&r.render(), color(Stream::Stdout), |l| {
        if l.contains(": FAILED at ") || l.contains(": NOT CHANGED") {
            Some(Tone::Remove)
        } else if l.contains(": done in ") {
            Some(Tone::Add)
        } else if !l.starts_with(' ') && (l.contains(" complete: ") || l.contains(" incomplete: "))
        {
            Some(Tone::Bold)
        } else {
            None
        }
    }))
}

/// Terraform's colors for a line of a plan, report or status (see [`paint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Add,
    Remove,
    Change,
    Bold,
}

/// `text` with each line styled by `tone` when `on` (pure; [`color`] says
/// whether). Lines `tone` says nothing about are left as they are.
pub fn paint(text: &str, on: bool, tone: impl Fn(&str) -> Option<Tone>) -> String {
    if !on {
        return text.to_string();
    }
    use anstyle::{AnsiColor, Style};
    let mut s = String::with_capacity(text.len() + text.len() / 8);
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let style = match tone(body) {
            Some(Tone::Add) => AnsiColor::Green.on_default(),
            Some(Tone::Remove) => AnsiColor::Red.on_default(),
            Some(Tone::Change) => AnsiColor::Yellow.on_default(),
            Some(Tone::Bold) => Style::new().bold(),
            None => {
                s.push_str(line);
                continue;
            }
        };
        s.push_str(&format!("{style}{body}{style:#}{nl}"));
    }
    s
}

/// Run one parsed command; the returned number is the process exit code.
pub fn run(cli: Cli) -> Result<u8> {
    NO_SSH_CONFIG_FROM_FILE.store(
        cli.no_ssh_config_from_file,
        std::sync::atomic::Ordering::Relaxed,
    );
    match cli.command {
        Command::Init(a) => init::run(a),
        Command::Validate(a) => validate::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Apply(a) => apply::run(a),
        Command::Status(a) => status::run(a),
        Command::Destroy(a) => destroy::run(a),
        Command::Lab(c) => lab::run(c),
        Command::Director(c) => director::run(c),
        Command::Ipvs(c) => ipvs::run(c),
        Command::Verify(a) => verify::run(a),
        Command::Import(c) => import::run(c),
        Command::Completions { shell } => completions::completions(shell),
        Command::Manpages { dir } => completions::manpages(&dir),
    }
}

/// The tokio runtime of a command: multi-thread, 2 workers. Runtimes are
/// built here only (library code takes one; `tests/cmd_edge.rs` checks).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// A current-thread runtime: the director daemon's (every task on one
/// thread, its main loop a task of its own: `director::daemon::run`) and the
/// one `verify`'s checks run on.
pub fn current_thread_runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Ask on the terminal; without one, refuse unless `--yes`.
pub fn confirm(question: &str, yes: bool) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        bail!("refusing to change hosts without confirmation: no terminal to ask on; pass --yes");
    }
    eprint!("{question} Only 'yes' is accepted: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}

/// How to reach `spec`'s hosts: the file's `[ssh]`, `--ssh-config`, else a
/// running lab's ssh_config (said in one line on stderr). With
/// `--no-ssh-config-from-file`, a file whose `[ssh] config` would be used is
/// refused (an error naming the key and its line), see [`refuse_file_ssh_config`].
pub fn ssh_options(
    spec: &ClusterSpec,
    file: &Path,
    ssh_config: Option<PathBuf>,
) -> Result<SshOptions> {
    if NO_SSH_CONFIG_FROM_FILE.load(std::sync::atomic::Ordering::Relaxed) && ssh_config.is_none() {
        refuse_file_ssh_config(spec, file)?;
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    let lab = if ssh_config.is_none() {
        crate::lab::ssh_config_for(&spec.name)
    } else {
        None
    };
    if let Some(l) = &lab {
        eprintln!(
            "lab \"{}\" is up: using its SSH config {} (--ssh-config overrides)",
            spec.name,
            l.display()
        );
    }
    Ok(SshOptions::for_cluster(spec, dir, ssh_config, lab))
}

/// `--no-ssh-config-from-file`: the cluster file may not name an ssh_config.
/// OpenSSH runs `ProxyCommand`, `LocalCommand`, `KnownHostsCommand` and
/// `Match exec` of any config it reads as local commands, so an untrusted
/// file (a pull request planned by CI) with `[ssh] config` could run
/// anything here. Only the file's key is refused: the machine's own
/// `~/.ssh/config` and `/etc/ssh/ssh_config` are its operator's (pass
/// `--ssh-config /dev/null` to read neither). The file's other `[ssh]` keys
/// (user, port, identity_file, host key checking) and `ssh_host` run nothing.
fn refuse_file_ssh_config(spec: &ClusterSpec, file: &Path) -> Result<()> {
    let Some(cfg) = &spec.ssh.config else {
        return Ok(());
    };
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut p = crate::config::Problem::new(
        "ssh.config",
        format!(
            "`[ssh] config = \"{cfg}\"` refused (--no-ssh-config-from-file): an ssh_config \
             named by the cluster file can run local commands (ProxyCommand, Match exec)"
        ),
    )
    .hint("remove the key, or pass a trusted one with --ssh-config FILE");
    if let Some(span) = crate::config::parse::key_span(&text, "ssh.config") {
        p = p.at(span);
    }
    Err(ConfigError::new(&name, &text, vec![p]).into())
}

/// The live commands' options from the command line. Unknown `--target`
/// names are an error here, before any host is contacted.
pub fn live_options(spec: &ClusterSpec, file: &Path, a: &LiveArgs) -> Result<LiveOptions> {
    crate::apply::check_targets(spec, file, &a.targets)?;
    let mut ssh = ssh_options(spec, file, a.ssh_config.clone())?;
    ssh.connect_timeout = Duration::from_secs(a.connect_timeout.max(1));
    Ok(LiveOptions {
        ssh,
        targets: a.targets.clone(),
        parallel: a.parallel.max(1),
        step_timeout: Duration::from_secs(a.step_timeout.max(1)),
        lock: None,
        undo_interrupted_verify: None,
    })
}

/// Who runs lvsup: (`$USER` or `$LOGNAME`, this machine's host name), each
/// "unknown" when not known. Named in locks and verify's undo records.
pub fn operator() -> (String, String) {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    (user, host)
}

/// The cluster lock `command` (apply, destroy) takes: this operator
/// (`$USER` at this machine), this process, now (UTC).
pub fn lock_request(command: &str, wait_secs: u64, remove: bool) -> crate::apply::LockRequest {
    let (user, host) = operator();
    let started = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    crate::apply::LockRequest {
        owner: crate::apply::lock::owner(&user, &host, std::process::id(), command, &started),
        wait_secs,
        remove,
    }
}

/// After gathering under the lock: tell what taking it found (stderr), and
/// when another session holds it on any host, say who and stop before any
/// change (an error: exit 1; the locks taken are released).
pub async fn check_locks(live: crate::apply::Live, verb: &str) -> Result<crate::apply::Live> {
    for n in &live.lock_notes {
        eprintln!("warning: {}", crate::config::diag::terminal_safe(n));
    }
    // the undo ran whatever happens next: say so now (stderr with --json,
    // whose document carries them too)
    for u in &live.verify_undone {
        eprintln!("{}", crate::config::diag::terminal_safe(u));
    }
    let errors: Vec<String> = live
        .lock_errors()
        .iter()
        .map(|e| format!("{}: {}", e.host, e.message))
        .collect();
    if errors.is_empty() {
        return Ok(live);
    }
    live.close().await;
    anyhow::bail!(
        "{}\n{verb} stopped before any change: no host was touched",
        crate::config::diag::terminal_safe(&errors.join("\n"))
    )
}

/// Progress lines: indicatif on a terminal, plain lines on stderr otherwise
/// (logs, CI).
pub struct TermProgress {
    multi: MultiProgress,
    tty: bool,
}

impl TermProgress {
    pub fn new() -> TermProgress {
        let tty = std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if tty {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        TermProgress { multi, tty }
    }
}

impl Default for TermProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for TermProgress {
    fn host(&self, name: &str) -> Box<dyn HostProgress> {
        let pb = self.multi.add(ProgressBar::new_spinner());
        pb.set_style(
            ProgressStyle::with_template("{spinner} {prefix:<16} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        pb.set_prefix(name.to_string());
        if self.tty {
            pb.enable_steady_tick(Duration::from_millis(120));
        }
        Box::new(HostLine {
            pb,
            tty: self.tty,
            name: name.to_string(),
        })
    }

    fn clear(&self) {
        let _ = self.multi.clear();
    }
}

struct HostLine {
    pb: ProgressBar,
    tty: bool,
    name: String,
}

impl HostProgress for HostLine {
    fn step(&self, i: usize, n: usize, what: &str) {
        // step names and errors may quote host output: untrusted
        let msg = crate::config::diag::terminal_safe(&format!("[{i}/{n}] {what}"));
        if !self.tty {
            eprintln!("{}: {msg}", self.name);
        }
        self.pb.set_message(msg);
    }

    fn finish(&self, msg: String) {
        let msg = crate::config::diag::terminal_safe(&msg);
        if !self.tty {
            eprintln!("{}: {msg}", self.name);
        }
        self.pb.finish_with_message(msg);
    }
}
