//! From text to the raw schema: TOML syntax, unknown keys (all of them, with
//! "did you mean" hints) and value types, every problem with its span.
//!
//! Each table is read on its own so that one broken `[[real_servers]]` does
//! not hide the problems of the others: all problems of a file come out in
//! one run.

use std::collections::BTreeSet;
use std::ops::Range;

use serde::Deserialize;
use serde::de::IntoDeserializer;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diag::{Problem, suggest};
use super::raw::{self, Elem, RawFile};

pub fn parse_raw(text: &str) -> (RawFile, Vec<Problem>) {
    let mut problems = Vec::new();
    let (doc, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        for e in errors {
            let mut p = Problem::new("(syntax)", format!("invalid TOML: {}", e.message()));
            if let Some(span) = e.span() {
                p = p.at(span);
            }
            problems.push(p);
        }
        let file = RawFile {
            syntax_failed: true,
            ..RawFile::default()
        };
        return (file, problems);
    }
    let mut file = RawFile::default();
    let names: Vec<&str> = raw::SECTIONS.iter().map(|(n, _)| *n).collect();
    for (key, value) in doc.get_ref() {
        let name: &str = key.get_ref();
        let Some(&(_, is_array)) = raw::SECTIONS.iter().find(|(n, _)| *n == name) else {
            let mut p = Problem::new(name, format!("unknown section `{name}`")).at(key.span());
            p = match suggest(name, &names) {
                Some(s) => p.hint(format!("did you mean `{s}`?")),
                None => p.hint(format!("sections are: {}", names.join(", "))),
            };
            problems.push(p);
            continue;
        };
        if is_array {
            let Some(array) = value.get_ref().as_array() else {
                problems.push(
                    Problem::new(
                        name,
                        format!(
                            "`{name}` must be an array of tables, found {}",
                            value.get_ref().type_str()
                        ),
                    )
                    .at(key.span())
                    .hint(format!("write each element as `[[{name}]]`")),
                );
                file.poisoned.insert(name.to_string());
                continue;
            };
            let elems: Vec<&Spanned<DeValue>> = array.iter().collect();
            match name {
                "services" => {
                    file.services = Some(read_all(name, &elems, &mut problems, &mut file.poisoned))
                }
                "directors" => {
                    file.directors = Some(read_all(name, &elems, &mut problems, &mut file.poisoned))
                }
                _ => {
                    file.real_servers =
                        Some(read_all(name, &elems, &mut problems, &mut file.poisoned))
                }
            }
        } else {
            if !value.get_ref().is_table() {
                problems.push(
                    Problem::new(
                        name,
                        format!(
                            "`{name}` must be a table, found {}",
                            value.get_ref().type_str()
                        ),
                    )
                    .at(key.span())
                    .hint(format!("write it as a `[{name}]` section")),
                );
                file.poisoned.insert(name.to_string());
                continue;
            }
            match name {
                "cluster" => {
                    file.cluster = Some(read_table(name, value, &mut problems, &mut file.poisoned))
                }
                "ssh" => {
                    file.ssh = Some(read_table(name, value, &mut problems, &mut file.poisoned))
                }
                _ => file.nat = Some(read_table(name, value, &mut problems, &mut file.poisoned)),
            }
        }
    }
    (file, problems)
}

fn read_all<'de, T>(
    name: &str,
    elems: &[&Spanned<DeValue<'de>>],
    problems: &mut Vec<Problem>,
    poisoned: &mut BTreeSet<String>,
) -> Vec<Elem<T>>
where
    T: Deserialize<'de> + Nested,
{
    elems
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let path = format!("{name}[{i}]");
            if v.get_ref().is_table() {
                read_table(&path, v, problems, poisoned)
            } else {
                problems.push(
                    Problem::new(
                        &path,
                        format!("expected a table, found {}", v.get_ref().type_str()),
                    )
                    .at(v.span()),
                );
                Elem {
                    span: v.span(),
                    value: None,
                }
            }
        })
        .collect()
}

/// Tables that contain sub-tables with their own key lists.
pub trait Nested {
    fn nested(_key: &str) -> Option<&'static [&'static str]> {
        None
    }
}
impl Nested for raw::RawCluster {
    fn nested(key: &str) -> Option<&'static [&'static str]> {
        match key {
            "ipvs_timeouts" => Some(raw::fields::<raw::RawIpvsTimeouts>()),
            "notify" => Some(raw::fields::<raw::RawNotify>()),
            _ => None,
        }
    }
}
impl Nested for raw::RawSsh {}
impl Nested for raw::RawDirector {}
impl Nested for raw::RawRealServer {}
impl Nested for raw::RawNat {}
impl Nested for raw::RawService {
    fn nested(key: &str) -> Option<&'static [&'static str]> {
        (key == "health").then(raw::fields::<raw::RawHealth>)
    }
}

fn read_table<'de, T>(
    path: &str,
    value: &Spanned<DeValue<'de>>,
    problems: &mut Vec<Problem>,
    poisoned: &mut BTreeSet<String>,
) -> Elem<T>
where
    T: Deserialize<'de> + Nested,
{
    let span = value.span();
    let mut value = value.clone();
    // Unknown keys: all reported, then dropped so the rest of the table is still read.
    if let DeValue::Table(table) = value.get_mut() {
        let before = problems.len();
        check_keys(path, table, raw::fields::<T>(), T::nested, problems);
        for p in &problems[before..] {
            poisoned.insert(p.key.clone());
        }
        drop_keys(path, table, poisoned);
    }
    // Type errors: serde stops at the first, so report it, drop that key and read
    // again, until the table reads (bounded by its number of keys).
    for _ in 0..64 {
        match T::deserialize(value.clone().into_deserializer()) {
            Ok(v) => {
                return Elem {
                    span,
                    value: Some(v),
                };
            }
            Err(e) => {
                let p = type_problem(path, &value, &e);
                let key = p.key.clone();
                problems.push(p);
                if key == path || !poisoned.insert(key) {
                    break;
                }
                if let DeValue::Table(table) = value.get_mut() {
                    drop_keys(path, table, poisoned);
                }
            }
        }
    }
    Elem { span, value: None }
}

/// Remove the keys named in `poisoned` (full paths) from `table` at `path`.
fn drop_keys(path: &str, table: &mut DeTable<'_>, poisoned: &BTreeSet<String>) {
    let gone: Vec<_> = table
        .keys()
        .filter(|k| poisoned.contains(&format!("{path}.{}", k.get_ref())))
        .cloned()
        .collect();
    for k in gone {
        table.remove(&k);
    }
    for (k, v) in table.iter_mut() {
        if let DeValue::Table(sub) = v.get_mut() {
            drop_keys(&format!("{path}.{}", k.get_ref()), sub, poisoned);
        }
    }
}

fn check_keys(
    path: &str,
    table: &DeTable<'_>,
    known: &[&str],
    nested: fn(&str) -> Option<&'static [&'static str]>,
    problems: &mut Vec<Problem>,
) {
    for (k, v) in table {
        let key: &str = k.get_ref();
        let full = format!("{path}.{key}");
        if !known.contains(&key) {
            let mut p =
                Problem::new(&full, format!("unknown key `{key}` in `{path}`")).at(k.span());
            p = match suggest(key, known) {
                Some(s) => p.hint(format!("did you mean `{s}`?")),
                None => p.hint(format!("keys here are: {}", known.join(", "))),
            };
            problems.push(p);
            continue;
        }
        if let (Some(sub_known), Some(sub)) = (nested(key), v.get_ref().as_table()) {
            check_keys(&full, sub, sub_known, |_| None, problems);
        }
    }
}

/// Turn a serde error inside `value` (a table) into a problem naming the key.
fn type_problem(path: &str, value: &Spanned<DeValue<'_>>, e: &toml::de::Error) -> Problem {
    let espan = e.span();
    let (key, span) = espan
        .as_ref()
        .and_then(|es| locate(path, value, es))
        .unwrap_or_else(|| (path.to_string(), espan.clone().unwrap_or(value.span())));
    Problem::new(key, plain_type_message(e.message())).at(span)
}

/// Find the (dotted key, value span) whose value contains `target`.
fn locate(
    path: &str,
    value: &Spanned<DeValue<'_>>,
    target: &Range<usize>,
) -> Option<(String, Range<usize>)> {
    let table = value.get_ref().as_table()?;
    for (k, v) in table {
        let vs = v.span();
        let ks = k.span();
        let full = format!("{path}.{}", k.get_ref());
        let inside = |r: &Range<usize>| r.start <= target.start && target.start < r.end;
        if inside(&vs) || inside(&ks) {
            if v.get_ref().is_table() {
                return locate(&full, v, target).or(Some((full, vs)));
            }
            return Some((full, vs));
        }
    }
    None
}

/// serde's "invalid type: string \"80\", expected i64" in plain words.
fn plain_type_message(msg: &str) -> String {
    let msg = msg.trim();
    if let Some(rest) = msg.strip_prefix("invalid type: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            return format!("expected {}, found {}", plain_type(expected), found);
        }
    }
    msg.to_string()
}

fn plain_type(t: &str) -> &str {
    match t {
        "i64" | "u16" | "u32" | "u8" | "an integer" => "an integer",
        "a string" | "string" => "a string (in double quotes)",
        "a boolean" | "bool" => "a boolean (true or false)",
        _ if t.starts_with("struct ") => "a table",
        _ => t,
    }
}

/// Where `key` (a dotted path as problems name them: `services[0].health.interval`)
/// is in `text`: the span of its value, or, when the key is not written (a
/// default), of the deepest enclosing table that is. `None` when the text is
/// not TOML or not even the first segment is there.
pub fn key_span(text: &str, key: &str) -> Option<Range<usize>> {
    let doc = DeTable::parse(text).ok()?;
    let mut table: &DeTable<'_> = doc.get_ref();
    let mut found: Option<Range<usize>> = None;
    for seg in key.split('.') {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.strip_suffix(']')?.parse::<usize>().ok()),
            None => (seg, None),
        };
        let Some((k, v)) = table.get_key_value(name) else {
            return found;
        };
        let v = match (index, v.get_ref()) {
            (Some(i), DeValue::Array(a)) => match a.get(i) {
                Some(e) => e,
                None => return found.or(Some(k.span())),
            },
            _ => v,
        };
        // A table: its header's line (the value span of a `[table]` may start
        // at its first key); a leaf: the value itself.
        found = Some(match v.get_ref() {
            DeValue::Table(_) if index.is_none() => k.span(),
            _ => v.span(),
        });
        match v.get_ref() {
            DeValue::Table(t) => table = t,
            _ => return found,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[cluster]\nname = \"web\"\n\n[[services]]\nport = 80\n\n[[services]]\nport = 443\n[services.health]\ninterval = \"6s\"\n";

    fn line(key: &str) -> Option<usize> {
        key_span(TEXT, key).map(|s| super::super::diag::line_col(TEXT, s.start).0)
    }

    #[test]
    fn key_span_finds_values_tables_and_array_elements() {
        assert_eq!(line("cluster.name"), Some(2));
        assert_eq!(line("cluster"), Some(1));
        assert_eq!(line("services[0].port"), Some(5));
        assert_eq!(line("services[1].health.interval"), Some(10));
        assert_eq!(line("services[1].health"), Some(9));
        assert_eq!(line("services[0]"), Some(4));
        assert_eq!(line("services[1]"), Some(7));
    }

    #[test]
    fn key_span_falls_back_to_the_enclosing_table() {
        // `timeout` is not written: its table; no health at all: the service.
        assert_eq!(line("services[1].health.timeout"), Some(9));
        assert_eq!(line("services[0].health.timeout"), Some(4));
        assert_eq!(line("services[5].port"), Some(4));
        assert_eq!(line("cluster.vrid"), Some(1));
        assert_eq!(line("nat.gateway"), None);
        assert!(key_span("not toml [", "cluster").is_none());
    }
}
