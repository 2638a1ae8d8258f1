//! Configuration problems: each names the key, the offending value and where
//! it is in the file, with an optional hint, and renders through miette.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `services[1].scheduler` (0-based element index).
    pub key: String,
    /// What is wrong, in plain words; it quotes the offending value.
    pub message: String,
    /// Byte range of the offending value (or table) in the file.
    pub span: Option<Range<usize>>,
    /// 1-based line and column of `span`'s start.
    pub line: usize,
    pub col: usize,
    pub hint: Option<String>,
    /// A second place that explains this one (e.g. the first of two duplicates).
    pub related: Option<(String, Range<usize>)>,
}

impl Problem {
    /// `message` is shown on a terminal: control characters in it (from a
    /// value it quotes) are escaped.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            key: key.into(),
            message: terminal_safe(&message.into()),
            span: None,
            line: 0,
            col: 0,
            hint: None,
            related: None,
        }
    }

    pub fn at(mut self, span: Range<usize>) -> Self {
        self.span = Some(span);
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(terminal_safe(&hint.into()));
        self
    }

    pub fn related(mut self, label: impl Into<String>, span: Range<usize>) -> Self {
        self.related = Some((label.into(), span));
        self
    }
}

/// `s` with every control character except newline and tab escaped
/// (`\u{1b}`): text from a file or a host (values, host output, file
/// contents in diffs) never drives the terminal it is printed on.
pub fn terminal_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// 1-based (line, column) of a byte offset; columns count characters.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let mut start = offset;
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// All problems found in one file. Renders each as a miette diagnostic.
#[derive(Debug)]
pub struct ConfigError {
    pub file: String,
    pub problems: Vec<Problem>,
    source: Arc<NamedSource<String>>,
}

impl ConfigError {
    pub fn new(file: &str, text: &str, mut problems: Vec<Problem>) -> Self {
        for p in &mut problems {
            if let Some(span) = &p.span {
                let (l, c) = line_col(text, span.start);
                p.line = l;
                p.col = c;
            }
        }
        // Stable order: by position in the file, then by key.
        problems.sort_by(|a, b| (a.line, a.col, &a.key).cmp(&(b.line, b.col, &b.key)));
        problems.dedup();
        ConfigError {
            file: file.to_string(),
            problems,
            source: Arc::new(NamedSource::new(file, text.to_string()).with_language("toml")),
        }
    }

    /// An error that is not about a position in the file (e.g. it cannot be read).
    pub fn whole_file(file: &str, key: &str, message: String) -> Self {
        ConfigError::new(file, "", vec![Problem::new(key, message)])
    }

    /// Diagnostics to render, one per problem.
    pub fn diagnostics(&self) -> impl Iterator<Item = ProblemDiagnostic<'_>> {
        self.problems.iter().map(move |p| ProblemDiagnostic {
            file: &self.file,
            problem: p,
            source: &self.source,
        })
    }

    /// Render every problem (miette's graphical handler) followed by a summary line.
    pub fn render(&self, color: bool) -> String {
        let theme = if color {
            miette::GraphicalTheme::unicode()
        } else {
            miette::GraphicalTheme::unicode_nocolor()
        };
        let handler = miette::GraphicalReportHandler::new_themed(theme).with_wrap_lines(false);
        let mut out = String::new();
        for d in self.diagnostics() {
            if handler.render_report(&mut out, &d).is_err() {
                out.push_str(&format!("{d}\n"));
            }
        }
        let n = self.problems.len();
        out.push_str(&format!(
            "error: {} has {n} problem{}\n",
            self.file,
            if n == 1 { "" } else { "s" }
        ));
        out
    }
}

impl fmt::Display for ConfigError {
    /// One line per problem: `file:line:col: key: message (hint: ...)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
            if let Some(h) = &d.problem.hint {
                write!(f, " (hint: {h})")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A [`Problem`] with the file it belongs to, as a miette [`Diagnostic`].
pub struct ProblemDiagnostic<'a> {
    file: &'a str,
    problem: &'a Problem,
    source: &'a NamedSource<String>,
}

impl fmt::Debug for ProblemDiagnostic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.problem, f)
    }
}

impl fmt::Display for ProblemDiagnostic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.problem;
        if p.span.is_some() {
            write!(f, "{}:{}:{}: ", self.file, p.line, p.col)?;
        } else {
            write!(f, "{}: ", self.file)?;
        }
        write!(f, "`{}`: {}", p.key, p.message)
    }
}

impl std::error::Error for ProblemDiagnostic<'_> {}

impl Diagnostic for ProblemDiagnostic<'_> {
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.problem
            .hint
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.problem
            .span
            .as_ref()
            .map(|_| self.source as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.problem.span.clone()?;
        let mut labels = vec![LabeledSpan::new_primary_with_span(
            Some(format!("`{}`", self.problem.key)),
            span,
        )];
        if let Some((label, rel)) = &self.problem.related {
            labels.push(LabeledSpan::new_with_span(Some(label.clone()), rel.clone()));
        }
        Some(Box::new(labels.into_iter()))
    }
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_safe_escapes_control_characters_but_keeps_lines() {
        assert_eq!(
            terminal_safe("a\u{1b}[31mred\0\r\nnext\tcol é"),
            "a\\u{1b}[31mred\\u{0}\\r\nnext\tcol é"
        );
        // C1 controls (e.g. CSI U+009B) too
        assert_eq!(terminal_safe("\u{9b}2J"), "\\u{9b}2J");
    }

    #[test]
    fn line_col_counts_from_one() {
        let t = "a = 1\nbé = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        // 'é' is two bytes: the column counts characters
        assert_eq!(line_col(t, 9), (2, 3));
        assert_eq!(line_col(t, 1000), (3, 1));
    }

    #[test]
    fn suggest_finds_typos_only() {
        assert_eq!(
            suggest("schedular", &["port", "scheduler", "protocol"]),
            Some("scheduler")
        );
        assert_eq!(suggest("rrr", &["rr", "wrr", "lc"]), Some("rr"));
        assert_eq!(suggest("zzzzzz", &["rr", "wrr", "lc"]), None);
    }
}
