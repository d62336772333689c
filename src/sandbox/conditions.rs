//! The `conditions` query language of ConnectWise list and count calls, evaluated against the
//! JSON the sandbox renders.
//!
//! Supported: `path op value` with `=`, `!=` (also `<>`), `<`, `<=`, `>`, `>=`, `contains`,
//! `like` (`%` matches any run of characters), `in (v, …)`, `not in`, `not like`,
//! `not contains`; `and`/`or`/`not` (any case) and parentheses. Values are `"strings"` (`\"` and
//! `\\` escape) or `'strings'` (SQL style: `''` is an apostrophe, `name='Bob''s Dentistry'`),
//! numbers, `true`/`false`, `null` and `[datetimes]`. Paths nest with `/` (`company/id`,
//! `product/identifier`); `lastUpdated` stands for `_info/lastUpdated` on records without a
//! field of that name, as on the real API. String comparisons ignore case, like ConnectWise's
//! SQL collation. A path that the resource does not have is an error.

use serde_json::Value;

/// A parsed `conditions` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp {
        path: String,
        op: Op,
        value: Lit,
    },
    In {
        path: String,
        values: Vec<Lit>,
        negated: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    NotContains,
    Like,
    NotLike,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    DateTime(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(f64),
    DateTime(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

/// Why a `conditions` text is invalid: a message and the character position.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionError {
    pub message: String,
    pub position: usize,
}

impl std::fmt::Display for ConditionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at character {})", self.message, self.position + 1)
    }
}

fn err<T>(message: impl Into<String>, position: usize) -> Result<T, ConditionError> {
    Err(ConditionError {
        message: message.into(),
        position,
    })
}

fn lex(text: &str) -> Result<Vec<(Tok, usize)>, ConditionError> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((Tok::LParen, pos));
                i += 1;
            }
            ')' => {
                out.push((Tok::RParen, pos));
                i += 1;
            }
            ',' => {
                out.push((Tok::Comma, pos));
                i += 1;
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return err("unterminated string", pos),
                        Some((_, '"')) => {
                            i += 1;
                            break;
                        }
                        Some((_, '\\')) => match chars.get(i + 1) {
                            Some((_, e @ ('"' | '\\'))) => {
                                s.push(*e);
                                i += 2;
                            }
                            _ => {
                                s.push('\\');
                                i += 1;
                            }
                        },
                        Some((_, ch)) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push((Tok::Str(s), pos));
            }
            '\'' => {
                // SQL style: a doubled apostrophe is one apostrophe; no backslash escapes.
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return err("unterminated string", pos),
                        Some((_, '\'')) if matches!(chars.get(i + 1), Some((_, '\''))) => {
                            s.push('\'');
                            i += 2;
                        }
                        Some((_, '\'')) => {
                            i += 1;
                            break;
                        }
                        Some((_, ch)) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push((Tok::Str(s), pos));
            }
            '[' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return err("unterminated [datetime]", pos),
                        Some((_, ']')) => {
                            i += 1;
                            break;
                        }
                        Some((_, ch)) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                let normal = normalize_datetime(s.trim()).ok_or_else(|| ConditionError {
                    message: format!("[{s}] is not a datetime such as [2025-01-01T00:00:00Z]"),
                    position: pos,
                })?;
                out.push((Tok::DateTime(normal), pos));
            }
            '=' => {
                out.push((Tok::Op("="), pos));
                i += 1;
            }
            '!' | '<' | '>' => {
                let next = chars.get(i + 1).map(|(_, c)| *c);
                let (op, len) = match (c, next) {
                    ('!', Some('=')) => ("!=", 2),
                    ('<', Some('>')) => ("!=", 2),
                    ('<', Some('=')) => ("<=", 2),
                    ('>', Some('=')) => (">=", 2),
                    ('<', _) => ("<", 1),
                    ('>', _) => (">", 1),
                    _ => return err("'!' must be followed by '='", pos),
                };
                out.push((Tok::Op(op), pos));
                i += len;
            }
            c if c.is_ascii_digit() || c == '-' || c == '.' => {
                let start = i;
                i += 1;
                while let Some((_, d)) = chars.get(i) {
                    if d.is_ascii_digit() || *d == '.' {
                        i += 1;
                    } else {
                        break;
                    }
                }
                let s: String = chars[start..i].iter().map(|(_, c)| c).collect();
                match s.parse::<f64>() {
                    Ok(n) if n.is_finite() => out.push((Tok::Num(n), pos)),
                    _ => return err(format!("{s} is not a number"), pos),
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while let Some((_, d)) = chars.get(i) {
                    if d.is_alphanumeric() || *d == '_' || *d == '/' {
                        i += 1;
                    } else {
                        break;
                    }
                }
                let s: String = chars[start..i].iter().map(|(_, c)| c).collect();
                out.push((Tok::Word(s), pos));
            }
            other => return err(format!("unexpected character {other:?}"), pos),
        }
    }
    Ok(out)
}

/// Normalizes `2025-01-01T00:00:00Z`, `2025-01-01T00:00:00.000Z`, `2025-01-01T00:00:00+02:00` and
/// `2025-01-01` to `YYYY-MM-DDTHH:MM:SSZ` (UTC), or `None` when it is not a datetime.
pub fn normalize_datetime(text: &str) -> Option<String> {
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Some(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>()
        && text.len() == 10
    {
        return Some(format!("{}T00:00:00Z", date.strftime("%Y-%m-%d")));
    }
    None
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    at: usize,
    end: usize,
}

fn keyword(tok: Option<&Tok>, word: &str) -> bool {
    matches!(tok, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(word))
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|(t, _)| t)
    }
    fn pos(&self) -> usize {
        self.toks.get(self.at).map_or(self.end, |(_, p)| *p)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).map(|(t, _)| t.clone());
        self.at += 1;
        t
    }

    fn or(&mut self) -> Result<Expr, ConditionError> {
        let mut left = self.and()?;
        while keyword(self.peek(), "or") {
            self.at += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ConditionError> {
        let mut left = self.factor()?;
        while keyword(self.peek(), "and") {
            self.at += 1;
            let right = self.factor()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn factor(&mut self) -> Result<Expr, ConditionError> {
        let pos = self.pos();
        match self.peek() {
            Some(Tok::LParen) => {
                self.at += 1;
                let inner = self.or()?;
                match self.next() {
                    Some(Tok::RParen) => Ok(inner),
                    _ => err("missing ')'", self.pos().min(self.end)),
                }
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("not") => {
                self.at += 1;
                Ok(Expr::Not(Box::new(self.factor()?)))
            }
            Some(Tok::Word(w)) => {
                let path = w.clone();
                if ["and", "or", "in", "like", "contains"]
                    .iter()
                    .any(|k| path.eq_ignore_ascii_case(k))
                    || path.ends_with('/')
                    || path.starts_with('/')
                    || path.contains("//")
                {
                    return err(format!("expected a field name, found {path:?}"), pos);
                }
                self.at += 1;
                self.comparison(path)
            }
            None => err("expected a condition, found the end", pos),
            Some(other) => err(
                format!("expected a field name, found {}", describe(other)),
                pos,
            ),
        }
    }

    fn comparison(&mut self, path: String) -> Result<Expr, ConditionError> {
        let pos = self.pos();
        let negated = keyword(self.peek(), "not");
        if negated {
            self.at += 1;
        }
        let op = match self.next() {
            Some(Tok::Op(o)) if !negated => match o {
                "=" => Op::Eq,
                "!=" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                _ => Op::Ge,
            },
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("contains") => {
                if negated {
                    Op::NotContains
                } else {
                    Op::Contains
                }
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("like") => {
                if negated {
                    Op::NotLike
                } else {
                    Op::Like
                }
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("in") => {
                return self.in_list(path, negated);
            }
            None => return err(format!("expected an operator after {path:?}"), pos),
            Some(other) => {
                return err(
                    format!(
                        "expected an operator after {path:?}, found {}",
                        describe(&other)
                    ),
                    pos,
                );
            }
        };
        let value = self.literal()?;
        if matches!(value, Lit::Null) && !matches!(op, Op::Eq | Op::Ne) {
            return err("null can only be compared with = or !=", pos);
        }
        if matches!(op, Op::Contains | Op::NotContains | Op::Like | Op::NotLike)
            && !matches!(value, Lit::Str(_))
        {
            return err("contains and like need a \"string\"", pos);
        }
        Ok(Expr::Cmp { path, op, value })
    }

    fn in_list(&mut self, path: String, negated: bool) -> Result<Expr, ConditionError> {
        if self.next() != Some(Tok::LParen) {
            return err("in needs a list such as (1, 2, 3)", self.pos());
        }
        let mut values = vec![self.literal()?];
        loop {
            let pos = self.pos();
            match self.next() {
                Some(Tok::Comma) => values.push(self.literal()?),
                Some(Tok::RParen) => break,
                _ => return err("expected ',' or ')' in the in list", pos),
            }
        }
        Ok(Expr::In {
            path,
            values,
            negated,
        })
    }

    fn literal(&mut self) -> Result<Lit, ConditionError> {
        let pos = self.pos();
        match self.next() {
            Some(Tok::Str(s)) => Ok(Lit::Str(s)),
            Some(Tok::Num(n)) => Ok(Lit::Num(n)),
            Some(Tok::DateTime(d)) => Ok(Lit::DateTime(d)),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Ok(Lit::Null),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Ok(Lit::Bool(true)),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Ok(Lit::Bool(false)),
            Some(Tok::Word(w)) => err(
                format!(
                    "expected a value, found {w:?} (strings need \"double\" or 'single' quotes)"
                ),
                pos,
            ),
            None => err("expected a value, found the end", pos),
            Some(other) => err(format!("expected a value, found {}", describe(&other)), pos),
        }
    }
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Word(w) => format!("{w:?}"),
        Tok::Str(s) => format!("\"{s}\""),
        Tok::Num(n) => n.to_string(),
        Tok::DateTime(d) => format!("[{d}]"),
        Tok::Op(o) => format!("'{o}'"),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::Comma => "','".into(),
    }
}

/// Most parentheses and `and`/`or`/`not` words, together, in one `conditions` text.
pub const MAX_NESTING: usize = 200;

/// Parses a `conditions` text.
pub fn parse(text: &str) -> Result<Expr, ConditionError> {
    let toks = lex(text)?;
    // The parser and `Expr` recurse, so how deep a text can nest is bounded here, not by the
    // stack: about 1,000 nested parentheses or 3,000 joined conditions overflowed it (found by
    // fuzzing), which aborted the server. Far above any real query.
    let nesting = toks
        .iter()
        .filter(|(tok, _)| match tok {
            Tok::LParen => true,
            Tok::Word(w) => ["and", "or", "not"]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k)),
            _ => false,
        })
        .count();
    if nesting > MAX_NESTING {
        return err(
            format!(
                "conditions too complex: {nesting} parentheses and and/or/not together, more than {MAX_NESTING}"
            ),
            0,
        );
    }
    let mut p = Parser {
        toks,
        at: 0,
        end: text.len(),
    };
    let expr = p.or()?;
    if p.at < p.toks.len() {
        let pos = p.pos();
        let found = describe(&p.toks[p.at].0);
        return err(
            format!("unexpected {found}; join conditions with and/or"),
            pos,
        );
    }
    Ok(expr)
}

/// The field a path stands for: `lastUpdated` is the alias of `_info/lastUpdated` on records
/// that have no top-level field of that name (every ConnectWise record keeps it in `_info`).
fn resolve<'p>(record: &Value, path: &'p str) -> &'p str {
    const ALIAS: &str = "_info/lastUpdated";
    let own = record
        .as_object()
        .is_some_and(|m| m.keys().any(|k| k.eq_ignore_ascii_case(path)));
    if path.eq_ignore_ascii_case("lastUpdated") && !own {
        ALIAS
    } else {
        path
    }
}

/// The value at a `/`-separated path, `Null` when absent.
pub fn lookup<'a>(record: &'a Value, path: &str) -> &'a Value {
    let path = resolve(record, path);
    let mut v = record;
    for part in path.split('/') {
        v = match v {
            Value::Object(map) => match map.get(part) {
                Some(x) => x,
                None => match map.iter().find(|(k, _)| k.eq_ignore_ascii_case(part)) {
                    Some((_, x)) => x,
                    None => return &Value::Null,
                },
            },
            _ => return &Value::Null,
        };
    }
    v
}

/// Whether the resource (shown by a sample record with every field present) has this path.
pub fn has_path(sample: &Value, path: &str) -> bool {
    let path = resolve(sample, path);
    let mut v = sample;
    for part in path.split('/') {
        match v {
            Value::Object(map) => match map.iter().find(|(k, _)| k.eq_ignore_ascii_case(part)) {
                Some((_, x)) => v = x,
                None => return false,
            },
            // References that are null in the sample (opportunity, …) may have any subfield.
            Value::Null => return true,
            _ => return false,
        }
    }
    true
}

impl Expr {
    /// The first path the resource does not have.
    pub fn unknown_path(&self, sample: &Value) -> Option<String> {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.unknown_path(sample).or_else(|| b.unknown_path(sample))
            }
            Expr::Not(a) => a.unknown_path(sample),
            Expr::Cmp { path, .. } | Expr::In { path, .. } => {
                (!has_path(sample, path)).then(|| path.clone())
            }
        }
    }

    pub fn matches(&self, record: &Value) -> bool {
        match self {
            Expr::And(a, b) => a.matches(record) && b.matches(record),
            Expr::Or(a, b) => a.matches(record) || b.matches(record),
            Expr::Not(a) => !a.matches(record),
            Expr::In {
                path,
                values,
                negated,
            } => {
                let v = lookup(record, path);
                values
                    .iter()
                    .any(|lit| compare(v, lit) == Some(std::cmp::Ordering::Equal))
                    != *negated
            }
            Expr::Cmp { path, op, value } => {
                let v = lookup(record, path);
                use std::cmp::Ordering::*;
                match op {
                    Op::Eq => match value {
                        Lit::Null => v.is_null(),
                        _ => compare(v, value) == Some(Equal),
                    },
                    Op::Ne => match value {
                        Lit::Null => !v.is_null(),
                        _ => !v.is_null() && compare(v, value) != Some(Equal),
                    },
                    Op::Lt => compare(v, value) == Some(Less),
                    Op::Le => matches!(compare(v, value), Some(Less | Equal)),
                    Op::Gt => compare(v, value) == Some(Greater),
                    Op::Ge => matches!(compare(v, value), Some(Greater | Equal)),
                    Op::Contains | Op::NotContains => {
                        let hit = match (text_of(v), value) {
                            (Some(t), Lit::Str(s)) => t.to_lowercase().contains(&s.to_lowercase()),
                            _ => false,
                        };
                        hit == (*op == Op::Contains)
                    }
                    Op::Like | Op::NotLike => {
                        let hit = match (text_of(v), value) {
                            (Some(t), Lit::Str(s)) => like(&t.to_lowercase(), &s.to_lowercase()),
                            _ => false,
                        };
                        hit == (*op == Op::Like)
                    }
                }
            }
        }
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Compares a field value with a literal; `None` when they cannot be compared.
fn compare(v: &Value, lit: &Lit) -> Option<std::cmp::Ordering> {
    match (v, lit) {
        (Value::Null, _) | (_, Lit::Null) => None,
        (Value::Number(n), Lit::Num(x)) => n.as_f64()?.partial_cmp(x),
        (Value::String(s), Lit::Num(x)) => s.trim().parse::<f64>().ok()?.partial_cmp(x),
        (Value::Bool(b), Lit::Bool(x)) => Some(b.cmp(x)),
        (Value::String(s), Lit::Bool(x)) => s
            .eq_ignore_ascii_case(&x.to_string())
            .then_some(std::cmp::Ordering::Equal),
        (Value::String(s), Lit::DateTime(d)) => Some(normalize_datetime(s)?.cmp(d)),
        (Value::String(s), Lit::Str(x)) => Some(s.to_lowercase().cmp(&x.to_lowercase())),
        (Value::Number(n), Lit::Str(x)) => n.as_f64()?.partial_cmp(&x.trim().parse::<f64>().ok()?),
        _ => None,
    }
}

/// SQL `like` with `%` (any run) and `_` (any one character).
fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    // Dynamic programming over (pattern position, text position).
    let mut reach = vec![false; t.len() + 1];
    reach[0] = true;
    for pc in &p {
        let mut next = vec![false; t.len() + 1];
        match pc {
            '%' => {
                let mut any = false;
                for i in 0..=t.len() {
                    any |= reach[i];
                    next[i] = any;
                }
            }
            _ => {
                for i in 0..t.len() {
                    if reach[i] && (*pc == '_' || *pc == t[i]) {
                        next[i + 1] = true;
                    }
                }
            }
        }
        reach = next;
    }
    reach[t.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(cond: &str, record: &Value) -> bool {
        parse(cond).unwrap().matches(record)
    }

    #[test]
    fn operators() {
        let r = json!({"id": 5, "name": "Bob's Dentistry", "company": {"id": 250},
            "cancelledDate": null, "taxableFlag": true, "effectiveDate": "2025-01-01T00:00:00Z"});
        assert!(m("id = 5", &r));
        assert!(m("ID=5 AND company/id = 250", &r));
        assert!(m("id != 6", &r));
        assert!(m("id <> 6", &r));
        assert!(m("id < 6 and id <= 5 and id > 4 and id >= 5", &r));
        assert!(m("name = \"bob's dentistry\"", &r));
        assert!(m("name contains \"dent\"", &r));
        assert!(m("name like \"%dent%\"", &r));
        assert!(m("name like \"Bob_s%\"", &r));
        assert!(!m("name like \"dent%\"", &r));
        assert!(m("name not like \"dent%\"", &r));
        assert!(m("id in (1, 5, 9)", &r));
        assert!(m("id not in (1, 9)", &r));
        assert!(m("cancelledDate = null and effectiveDate != null", &r));
        assert!(m("taxableFlag = true", &r));
        assert!(m("effectiveDate < [2025-02-01T00:00:00Z]", &r));
        assert!(m("effectiveDate = [2025-01-01]", &r));
        assert!(m("(id = 1 or id = 5) and not (id = 1)", &r));
        assert!(m("id = 1 or id = 5 and company/id = 250", &r));
        assert!(!m("(id = 1 or id = 5) and company/id = 1", &r));
        assert!(m(
            "name = \"x\" or name in (\"A\", \"bob's dentistry\")",
            &r
        ));
    }

    #[test]
    fn errors() {
        for bad in [
            "",
            "id =",
            "id = 5 and",
            "id 5",
            "name = Bob",
            "(id = 5",
            "id = 5)",
            "id = \"x",
            "id in 5",
            "id in (1, 2",
            "id > null",
            "name like 5",
            "x = [yesterday]",
            "id = 5 id = 6",
            "id ! 5",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be invalid");
        }
        let e = parse("id = 5 and name = Bob").unwrap_err();
        assert_eq!(e.position, 18);
    }

    #[test]
    fn single_quoted_strings() {
        let r = json!({"name": "Bob's Dentistry", "status": {"name": "Completed"}});
        assert!(m("name='Bob''s Dentistry'", &r));
        assert!(m("name = \"Bob's Dentistry\"", &r));
        assert!(m("status/name='Completed' and name like 'Bob''s%'", &r));
        assert!(m("name in ('x', 'bob''s dentistry')", &r));
        assert!(!m("name='Bob'", &r));
        assert!(m("name != ''", &r));
        // Inside single quotes a backslash is an ordinary character and `"` needs no escape.
        let odd = json!({"name": "a\\b \"q\""});
        assert!(m("name = 'a\\b \"q\"'", &odd));
        for bad in ["name = 'Bob", "name = 'Bob''", "name = 'a' 'b'"] {
            assert!(parse(bad).is_err(), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn last_updated_is_the_alias_of_info_last_updated() {
        let r = json!({"id": 1, "_info": {"lastUpdated": "2026-11-01T00:00:00Z"}});
        assert!(m("lastUpdated > [2026-10-01T00:00:00Z]", &r));
        assert!(m("LastUpdated = [2026-11-01]", &r));
        assert!(!m("lastUpdated > [2026-11-02T00:00:00Z]", &r));
        assert_eq!(
            parse("lastUpdated > [2026-01-01]")
                .unwrap()
                .unknown_path(&r),
            None
        );
        // A record with its own field keeps it.
        let own = json!({"lastUpdated": "2020-01-01T00:00:00Z", "_info": {"lastUpdated": "2026-11-01T00:00:00Z"}});
        assert!(m("lastUpdated < [2021-01-01]", &own));
        // Without `_info` the alias is unknown like any other field.
        let bare = json!({"id": 1});
        assert_eq!(
            parse("lastUpdated > [2026-01-01]")
                .unwrap()
                .unknown_path(&bare),
            Some("lastUpdated".into())
        );
    }

    #[test]
    fn unknown_paths() {
        let sample = json!({"id": 0, "company": {"id": 0}, "opportunity": null});
        let e = parse("company/id = 1 and product/id = 2").unwrap();
        assert_eq!(e.unknown_path(&sample), Some("product/id".into()));
        assert_eq!(
            parse("opportunity/name = \"x\"")
                .unwrap()
                .unknown_path(&sample),
            None
        );
    }
}
