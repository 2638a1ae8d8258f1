//! The shell scripts lvsup runs on hosts: `templates/scripts/*.sh.j2`,
//! compiled into the binary and rendered with minijinja (pure).
//!
//! One filter quotes for the shell: `{{ value|sh }}` is [`shell_quote`]d
//! (a sequence: each item quoted, joined with spaces). Every value that
//! comes from cluster.toml, a host or the operator goes through it; the few
//! inserted bare are numbers, IPv4 addresses, lvsup's constant paths and
//! words derived from the validated cluster name (`[a-z][a-z0-9-]*`), each
//! named in its template's header comment.
//!
//! `tests/scripts.rs` keeps a golden snapshot of each rendered script and
//! runs `shellcheck -s sh` over all of them.

use std::sync::OnceLock;

use minijinja::value::ValueKind;
use minijinja::{Environment, UndefinedBehavior, Value};

/// The templates, compiled into the binary: (name, source).
pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "apply-sysctls.sh.j2",
        include_str!("../templates/scripts/apply-sysctls.sh.j2"),
    ),
    (
        "batch.sh.j2",
        include_str!("../templates/scripts/batch.sh.j2"),
    ),
    (
        "daemon-reload.sh.j2",
        include_str!("../templates/scripts/daemon-reload.sh.j2"),
    ),
    (
        "facts.sh.j2",
        include_str!("../templates/scripts/facts.sh.j2"),
    ),
    (
        "lab-launch.sh.j2",
        include_str!("../templates/scripts/lab-launch.sh.j2"),
    ),
    (
        "lock.sh.j2",
        include_str!("../templates/scripts/lock.sh.j2"),
    ),
    (
        "modprobe.sh.j2",
        include_str!("../templates/scripts/modprobe.sh.j2"),
    ),
    (
        "nat-route-down.sh.j2",
        include_str!("../templates/scripts/nat-route-down.sh.j2"),
    ),
    (
        "nat-route-up.sh.j2",
        include_str!("../templates/scripts/nat-route-up.sh.j2"),
    ),
    (
        "read-sysctls.sh.j2",
        include_str!("../templates/scripts/read-sysctls.sh.j2"),
    ),
    (
        "release-addresses.sh.j2",
        include_str!("../templates/scripts/release-addresses.sh.j2"),
    ),
    (
        "remove-binary.sh.j2",
        include_str!("../templates/scripts/remove-binary.sh.j2"),
    ),
    (
        "remove-files.sh.j2",
        include_str!("../templates/scripts/remove-files.sh.j2"),
    ),
    (
        "remove-fwmark.sh.j2",
        include_str!("../templates/scripts/remove-fwmark.sh.j2"),
    ),
    (
        "remove-ipvs.sh.j2",
        include_str!("../templates/scripts/remove-ipvs.sh.j2"),
    ),
    (
        "restore-sysctls.sh.j2",
        include_str!("../templates/scripts/restore-sysctls.sh.j2"),
    ),
    (
        "stop-unit.sh.j2",
        include_str!("../templates/scripts/stop-unit.sh.j2"),
    ),
    (
        "unit.sh.j2",
        include_str!("../templates/scripts/unit.sh.j2"),
    ),
    (
        "upload.sh.j2",
        include_str!("../templates/scripts/upload.sh.j2"),
    ),
    (
        "verify-addresses.sh.j2",
        include_str!("../templates/scripts/verify-addresses.sh.j2"),
    ),
    (
        "verify-conn-ports.sh.j2",
        include_str!("../templates/scripts/verify-conn-ports.sh.j2"),
    ),
    (
        "verify-director-status.sh.j2",
        include_str!("../templates/scripts/verify-director-status.sh.j2"),
    ),
    (
        "verify-ipvs-table.sh.j2",
        include_str!("../templates/scripts/verify-ipvs-table.sh.j2"),
    ),
    (
        "verify-prohibit.sh.j2",
        include_str!("../templates/scripts/verify-prohibit.sh.j2"),
    ),
    (
        "verify-realserver.sh.j2",
        include_str!("../templates/scripts/verify-realserver.sh.j2"),
    ),
    (
        "verify-undo-list.sh.j2",
        include_str!("../templates/scripts/verify-undo-list.sh.j2"),
    ),
    (
        "verify-undo-remove.sh.j2",
        include_str!("../templates/scripts/verify-undo-remove.sh.j2"),
    ),
    (
        "verify-undo-replay.sh.j2",
        include_str!("../templates/scripts/verify-undo-replay.sh.j2"),
    ),
    (
        "verify-undo-write.sh.j2",
        include_str!("../templates/scripts/verify-undo-write.sh.j2"),
    ),
    (
        "verify-unit.sh.j2",
        include_str!("../templates/scripts/verify-unit.sh.j2"),
    ),
    (
        "write-file.sh.j2",
        include_str!("../templates/scripts/write-file.sh.j2"),
    ),
];

/// `'text'` for sh, with embedded single quotes closed and escaped: the
/// one quoting rule for everything lvsup hands to a shell.
pub fn shell_quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('\'');
    for c in s.chars() {
        if c == '\'' {
            o.push_str("'\\''");
        } else {
            o.push(c);
        }
    }
    o.push('\'');
    o
}

/// The `sh` filter: a string (or any other single value, as text) quoted; a
/// sequence as its items quoted and joined with spaces (`for k in {{ keys|sh }}`).
fn sh(v: Value) -> Result<String, minijinja::Error> {
    let one = |v: &Value| {
        v.as_str()
            .map_or_else(|| shell_quote(&v.to_string()), shell_quote)
    };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => Err(minijinja::Error::new(
            minijinja::ErrorKind::UndefinedError,
            "sh: no value to quote",
        )),
        ValueKind::Seq => Ok(v.try_iter()?.map(|i| one(&i)).collect::<Vec<_>>().join(" ")),
        _ => Ok(one(&v)),
    }
}

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            // `{% if %}`, `{% for %}` and `{# comment #}` on lines of their own
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        // A name misspelt in a template is an error, not an empty word.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        for (name, source) in TEMPLATES {
            // Compiled in and rendered by the tests: a syntax error is a
            // build defect, reported when the template is rendered.
            let _ = env.add_template(name, source);
        }
        env.add_filter("sh", sh);
        env
    })
}

/// Render template `name` (from [`TEMPLATES`]) with `ctx`.
pub fn try_render(name: &str, ctx: Value) -> Result<String, minijinja::Error> {
    environment().get_template(name)?.render(ctx)
}

/// Render a one-line command of template `name` with `ctx`: the rendered
/// text without its final line break (a command shown in messages, kept in
/// verify's undo records, compared by the tests' fake hosts).
pub fn render_line(name: &str, ctx: Value) -> String {
    let mut s = render(name, ctx);
    while s.ends_with('\n') {
        s.pop();
    }
    s
}

/// Render template `name` with `ctx`. The templates and what they are given
/// are fixed in the code and every one is rendered by the tests, so an error
/// here is a defect: it becomes a script that says so on stderr and fails
/// (exit 70, EX_SOFTWARE) where it runs, rather than a panic.
pub fn render(name: &str, ctx: Value) -> String {
    try_render(name, ctx).unwrap_or_else(|e| {
        format!(
            "echo {} >&2\nexit 70\n",
            shell_quote(&format!("lvsup: internal error rendering {name}: {e:#}"))
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn shell_quote_survives_quotes_and_newlines() {
        assert_eq!(shell_quote("a'b\nc"), "'a'\\''b\nc'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$HOME;rm"), "'$HOME;rm'");
    }

    /// What `lab exec HOST -- ARGS` relies on: the words joined for a shell
    /// come back as the same argv.
    #[test]
    fn quoted_words_come_back_intact_through_sh() {
        let words = [
            "plain-arg_1.0/x=y",
            "",
            "a b",
            "it's",
            "$HOME;rm",
            "a\nb",
            "'",
        ];
        let line: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\0' {}", line.join(" ")))
            .output()
            .expect("sh");
        let got: Vec<&[u8]> = out.stdout.split(|b| *b == 0).collect();
        let want: Vec<&[u8]> = words
            .iter()
            .map(|w| w.as_bytes())
            .chain([&b""[..]])
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn sh_filter_quotes_values_and_sequences() {
        let env = environment();
        let r = |src: &str, ctx: Value| env.render_str(src, ctx).expect("render");
        assert_eq!(r("{{ v|sh }}", context! { v => "it's" }), "'it'\\''s'");
        assert_eq!(
            r("{{ v|sh }}", context! { v => vec!["a b", "c"] }),
            "'a b' 'c'"
        );
        assert_eq!(r("{{ v|sh }}", context! { v => Vec::<String>::new() }), "");
        assert_eq!(r("{{ v|sh }}", context! { v => 7 }), "'7'");
        assert!(env.render_str("{{ nope|sh }}", context! {}).is_err());
    }

    #[test]
    fn every_template_compiles() {
        for (name, _) in TEMPLATES {
            assert!(environment().get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn a_render_error_becomes_a_failing_script() {
        let s = render("unit.sh.j2", context! {});
        assert!(
            s.starts_with("echo 'lvsup: internal error rendering unit.sh.j2"),
            "{s}"
        );
        assert!(s.ends_with("\nexit 70\n"), "{s}");
    }
}
