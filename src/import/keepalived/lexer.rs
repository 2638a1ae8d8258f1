//! keepalived.conf text → tokens with their line. Pure: no file access.
//!
//! The grammar facts this relies on (keepalived.conf(5) of keepalived 2.2.7,
//! and what `keepalived -t` of that version accepts):
//! * a comment starts with `#` or `!` anywhere outside quotes and runs to the
//!   end of the line;
//! * `{` and `}` are tokens of their own even when glued to a word
//!   (`{weight 3`, `80}}`);
//! * words are separated by white space; `"…"` and `'…'` quote a word that
//!   may hold spaces, the quotes are removed, `\` escapes the next character
//!   inside quotes;
//! * the line ends a statement (the parser needs the line breaks).

/// One token and the (1-based) line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub line: usize,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Word(String),
    Open,
    Close,
    /// End of a line.
    Newline,
}

/// A comment, its line and its text without the `#`/`!` and outer spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub line: usize,
    pub text: String,
}

/// An unterminated quote: the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub line: usize,
    pub message: String,
}

/// Split `text` into tokens (ending every line with [`Kind::Newline`]) and comments.
pub fn lex(text: &str) -> Result<(Vec<Token>, Vec<Comment>), LexError> {
    let mut tokens = Vec::new();
    let mut comments = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let mut chars = raw.char_indices().peekable();
        while let Some(&(pos, c)) = chars.peek() {
            match c {
                c if c.is_whitespace() => {
                    chars.next();
                }
                '#' | '!' => {
                    comments.push(Comment {
                        line,
                        text: raw[pos + c.len_utf8()..].trim().to_string(),
                    });
                    break;
                }
                '{' => {
                    chars.next();
                    tokens.push(Token {
                        line,
                        kind: Kind::Open,
                    });
                }
                '}' => {
                    chars.next();
                    tokens.push(Token {
                        line,
                        kind: Kind::Close,
                    });
                }
                _ => {
                    let mut word = String::new();
                    while let Some(&(_, c)) = chars.peek() {
                        match c {
                            c if c.is_whitespace() => break,
                            '{' | '}' | '#' | '!' => break,
                            '"' | '\'' => {
                                chars.next();
                                let mut closed = false;
                                while let Some((_, q)) = chars.next() {
                                    if q == c {
                                        closed = true;
                                        break;
                                    }
                                    if q == '\\' {
                                        if let Some((_, e)) = chars.next() {
                                            word.push(e);
                                        }
                                        continue;
                                    }
                                    word.push(q);
                                }
                                if !closed {
                                    return Err(LexError {
                                        line,
                                        message: format!("unterminated {c} quote"),
                                    });
                                }
                            }
                            _ => {
                                word.push(c);
                                chars.next();
                            }
                        }
                    }
                    tokens.push(Token {
                        line,
                        kind: Kind::Word(word),
                    });
                }
            }
        }
        tokens.push(Token {
            line,
            kind: Kind::Newline,
        });
    }
    Ok((tokens, comments))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Kind> {
        lex(text)
            .expect("lexes")
            .0
            .into_iter()
            .map(|t| t.kind)
            .filter(|k| *k != Kind::Newline)
            .collect()
    }

    fn w(s: &str) -> Kind {
        Kind::Word(s.into())
    }

    #[test]
    fn braces_are_tokens_even_when_glued() {
        assert_eq!(
            kinds("real_server 10.0.0.1 80 {weight 3}}"),
            vec![
                w("real_server"),
                w("10.0.0.1"),
                w("80"),
                Kind::Open,
                w("weight"),
                w("3"),
                Kind::Close,
                Kind::Close
            ]
        );
    }

    #[test]
    fn comments_start_anywhere_with_hash_or_bang() {
        let (t, c) = lex("weight 1 # web1\n! whole line\nlb_algo rr!x").expect("lexes");
        let words: Vec<_> = t
            .iter()
            .filter_map(|t| match &t.kind {
                Kind::Word(w) => Some(w.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(words, ["weight", "1", "lb_algo", "rr"]);
        assert_eq!(
            c,
            vec![
                Comment {
                    line: 1,
                    text: "web1".into()
                },
                Comment {
                    line: 2,
                    text: "whole line".into()
                },
                Comment {
                    line: 3,
                    text: "x".into()
                },
            ]
        );
    }

    #[test]
    fn quotes_keep_spaces_and_hide_comment_characters() {
        assert_eq!(
            kinds(r#"notify_master "/bin/x a#b" 'c d'"#),
            vec![w("notify_master"), w("/bin/x a#b"), w("c d")]
        );
        assert_eq!(
            lex("notify \"/bin/x").unwrap_err(),
            LexError {
                line: 1,
                message: "unterminated \" quote".into()
            }
        );
    }

    #[test]
    fn every_line_ends_with_a_newline_token_and_lines_count_from_one() {
        let (t, _) = lex("a\n\nb {").expect("lexes");
        let lines: Vec<_> = t.iter().map(|t| (t.line, t.kind.clone())).collect();
        assert_eq!(
            lines,
            vec![
                (1, w("a")),
                (1, Kind::Newline),
                (2, Kind::Newline),
                (3, w("b")),
                (3, Kind::Open),
                (3, Kind::Newline)
            ]
        );
    }
}
