//! Tokens → a tree of statements, with `include` spliced in. Pure: included
//! files come from an [`Includes`] resolver (the file system in the CLI,
//! a map in tests).
//!
//! Grammar (keepalived.conf(5), keepalived 2.2.7 checked with `keepalived -t`):
//! * a statement is a keyword and its arguments up to the end of the line, a
//!   `{` or a `}` (so `virtual_server 10.0.0.1 80 { delay_loop 6` is two
//!   statements, and the words after a keyword's arguments on one line are
//!   more arguments: `weight 2 bogus 3` is `weight` with three arguments);
//! * a `{` right after a statement (same line, or alone on the next line)
//!   opens that statement's block, closed by the matching `}`;
//! * `include PATTERN` (and the variants `includer`, `includem`, `includew`,
//!   `includeb`, `includea`) is replaced by the statements of every file the
//!   pattern matches, relative to the directory of the including file; each
//!   included file must hold whole statements (balanced braces). keepalived
//!   also allows csh brace expressions in the pattern; the resolver of the
//!   CLI does plain globs only.

use std::collections::BTreeMap;
use std::fmt;

use super::lexer::{self, Kind, Token};

/// Where a statement starts: `file:line`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Loc {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt {
    pub loc: Loc,
    pub keyword: String,
    pub args: Vec<String>,
    /// The `{ … }` block, if the statement has one.
    pub block: Option<Vec<Stmt>>,
    /// The comment on the keyword's line, if any (names real servers).
    pub comment: Option<String>,
}

impl Stmt {
    /// The statements of the block (none without a block).
    pub fn children(&self) -> &[Stmt] {
        self.block.as_deref().unwrap_or(&[])
    }

    /// `keyword arg1 arg2`, for messages.
    pub fn text(&self) -> String {
        let mut s = self.keyword.clone();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }
}

/// Files named by an `include` pattern.
pub trait Includes {
    /// The files `pattern` names (relative to `from`'s directory), in order,
    /// as (name for messages, text). An `Err` is a message about the pattern.
    fn resolve(&mut self, from: &str, pattern: &str) -> Result<Vec<(String, String)>, String>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub loc: Loc,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.loc, self.message)
    }
}

/// The statements of a file, and notes (an include that matched no file).
#[derive(Debug, Default)]
pub struct Parsed {
    pub stmts: Vec<Stmt>,
    pub notes: Vec<(Loc, String)>,
}

const INCLUDE_KEYWORDS: &[&str] = &[
    "include", "includer", "includem", "includew", "includeb", "includea",
];
/// Deep enough for any real layout; stops an include cycle.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Parse `text` (named `file` in messages), splicing in included files.
pub fn parse(file: &str, text: &str, includes: &mut dyn Includes) -> Result<Parsed, ParseError> {
    let mut p = Parsed::default();
    p.stmts = parse_file(file, text, includes, 0, &mut p.notes)?;
    Ok(p)
}

fn parse_file(
    file: &str,
    text: &str,
    includes: &mut dyn Includes,
    depth: usize,
    notes: &mut Vec<(Loc, String)>,
) -> Result<Vec<Stmt>, ParseError> {
    let (tokens, comments) = lexer::lex(text).map_err(|e| ParseError {
        loc: Loc {
            file: file.to_string(),
            line: e.line,
        },
        message: e.message,
    })?;
    let comments: BTreeMap<usize, String> = comments
        .into_iter()
        .filter(|c| !c.text.is_empty())
        .map(|c| (c.line, c.text))
        .collect();
    let mut st = State {
        file,
        tokens: &tokens,
        pos: 0,
        comments: &comments,
        includes,
        depth,
        notes,
    };
    st.list(None)
}

struct State<'a> {
    file: &'a str,
    tokens: &'a [Token],
    pos: usize,
    comments: &'a BTreeMap<usize, String>,
    includes: &'a mut dyn Includes,
    depth: usize,
    notes: &'a mut Vec<(Loc, String)>,
}

impl State<'_> {
    fn loc(&self, line: usize) -> Loc {
        Loc {
            file: self.file.to_string(),
            line,
        }
    }

    fn err(&self, line: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            loc: self.loc(line),
            message: message.into(),
        }
    }

    /// Statements up to the `}` closing the block opened at `open` (or to the end).
    fn list(&mut self, open: Option<usize>) -> Result<Vec<Stmt>, ParseError> {
        let mut out = Vec::new();
        loop {
            let Some(tok) = self.tokens.get(self.pos) else {
                return match open {
                    Some(line) => Err(self.err(line, "this block's '{' has no matching '}'")),
                    None => Ok(out),
                };
            };
            match &tok.kind {
                Kind::Newline => self.pos += 1,
                Kind::Close => {
                    self.pos += 1;
                    return match open {
                        Some(_) => Ok(out),
                        None => Err(self.err(tok.line, "'}' closes no block")),
                    };
                }
                Kind::Open => {
                    return Err(self.err(tok.line, "'{' opens a block for no keyword"));
                }
                Kind::Word(keyword) => {
                    let line = tok.line;
                    let keyword = keyword.clone();
                    self.pos += 1;
                    let mut args = Vec::new();
                    while let Some(Token {
                        kind: Kind::Word(w),
                        ..
                    }) = self.tokens.get(self.pos)
                    {
                        args.push(w.clone());
                        self.pos += 1;
                    }
                    // A '{' on this line, or alone at the start of a next line.
                    let mut look = self.pos;
                    while matches!(self.tokens.get(look).map(|t| &t.kind), Some(Kind::Newline)) {
                        look += 1;
                    }
                    let block = match self.tokens.get(look) {
                        Some(Token {
                            kind: Kind::Open,
                            line: open_line,
                        }) => {
                            let open_line = *open_line;
                            self.pos = look + 1;
                            Some(self.list(Some(open_line))?)
                        }
                        _ => None,
                    };
                    if INCLUDE_KEYWORDS.contains(&keyword.as_str()) {
                        out.extend(self.include(line, &args)?);
                        continue;
                    }
                    out.push(Stmt {
                        loc: self.loc(line),
                        keyword,
                        args,
                        block,
                        comment: self.comments.get(&line).cloned(),
                    });
                }
            }
        }
    }

    fn include(&mut self, line: usize, args: &[String]) -> Result<Vec<Stmt>, ParseError> {
        let Some(pattern) = args.first() else {
            return Err(self.err(line, "include needs a file name"));
        };
        if self.depth >= MAX_INCLUDE_DEPTH {
            return Err(self.err(
                line,
                format!("includes nested deeper than {MAX_INCLUDE_DEPTH} (a cycle?)"),
            ));
        }
        let files = self
            .includes
            .resolve(self.file, pattern)
            .map_err(|m| self.err(line, m))?;
        if files.is_empty() {
            self.notes.push((
                self.loc(line),
                format!("include {pattern} matches no file (keepalived skips it too)"),
            ));
        }
        let mut out = Vec::new();
        for (name, text) in files {
            out.extend(parse_file(
                &name,
                &text,
                self.includes,
                self.depth + 1,
                self.notes,
            )?);
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Included files from a map; patterns match names exactly or by a `*` suffix.
    pub(crate) struct MapIncludes(pub BTreeMap<String, String>);

    impl Includes for MapIncludes {
        fn resolve(&mut self, _from: &str, pattern: &str) -> Result<Vec<(String, String)>, String> {
            if let Some(prefix) = pattern.strip_suffix('*') {
                return Ok(self
                    .0
                    .iter()
                    .filter(|(k, _)| k.starts_with(prefix))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect());
            }
            Ok(self
                .0
                .get(pattern)
                .map(|t| vec![(pattern.to_string(), t.clone())])
                .unwrap_or_default())
        }
    }

    fn p(text: &str) -> Result<Vec<Stmt>, ParseError> {
        parse("k.conf", text, &mut MapIncludes(BTreeMap::new())).map(|p| p.stmts)
    }

    fn shape(s: &[Stmt]) -> String {
        s.iter()
            .map(|s| match &s.block {
                Some(b) => format!("{}@{}{{{}}}", s.text(), s.loc.line, shape(b)),
                None => format!("{}@{}", s.text(), s.loc.line),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn statements_end_at_line_ends_and_braces() {
        let s = p("virtual_server 10.0.0.1 80 { delay_loop 6\n real_server 10.0.0.2 80 {weight 3\n TCP_CHECK {connect_timeout 10 x 3}}}\n")
            .expect("parses");
        assert_eq!(
            shape(&s),
            "virtual_server 10.0.0.1 80@1{delay_loop 6@1; real_server 10.0.0.2 80@2{weight 3@2; TCP_CHECK@3{connect_timeout 10 x 3@3}}}"
        );
    }

    #[test]
    fn an_open_brace_on_the_next_line_opens_the_block() {
        let s = p("vrrp_instance VI_1\n{\n  state MASTER\n}\n").expect("parses");
        assert_eq!(shape(&s), "vrrp_instance VI_1@1{state MASTER@3}");
    }

    #[test]
    fn the_comment_on_a_keyword_line_is_kept() {
        let s = p("real_server 10.0.0.2 80 { # web1\n}\n").expect("parses");
        assert_eq!(s[0].comment.as_deref(), Some("web1"));
    }

    #[test]
    fn unbalanced_braces_are_errors_with_their_line() {
        assert_eq!(
            p("a {\n b\n").unwrap_err().to_string(),
            "k.conf:1: this block's '{' has no matching '}'"
        );
        assert_eq!(
            p("a\n}\n").unwrap_err().to_string(),
            "k.conf:2: '}' closes no block"
        );
        assert_eq!(
            p("a 1\nb\n{ {\n").unwrap_err().to_string(),
            "k.conf:3: '{' opens a block for no keyword"
        );
    }

    #[test]
    fn includes_are_spliced_in_place_with_their_own_file_names() {
        let mut inc = MapIncludes(BTreeMap::from([
            (
                "vs/a.conf".to_string(),
                "virtual_server 10.0.0.1 80 {\n}\n".to_string(),
            ),
            (
                "vs/b.conf".to_string(),
                "\nvirtual_server 10.0.0.1 81 {\n}\n".to_string(),
            ),
        ]));
        let parsed = parse(
            "main.conf",
            "global_defs {\n}\ninclude vs/*\nx 1\ninclude none.conf\n",
            &mut inc,
        )
        .expect("parses");
        let locs: Vec<String> = parsed.stmts.iter().map(|s| s.loc.to_string()).collect();
        assert_eq!(
            locs,
            ["main.conf:1", "vs/a.conf:1", "vs/b.conf:2", "main.conf:4"]
        );
        assert_eq!(
            parsed.notes,
            vec![(
                Loc {
                    file: "main.conf".into(),
                    line: 5
                },
                "include none.conf matches no file (keepalived skips it too)".to_string()
            )]
        );
    }

    #[test]
    fn an_include_cycle_stops_with_an_error() {
        let mut inc = MapIncludes(BTreeMap::from([(
            "self.conf".to_string(),
            "include self.conf\n".to_string(),
        )]));
        let e = parse("self.conf", "include self.conf\n", &mut inc).unwrap_err();
        assert!(e.message.contains("a cycle?"), "{e}");
    }
}
