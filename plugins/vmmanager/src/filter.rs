//! The VMmanager list-filter language: a hand-written lexer and recursive-descent parser for `where`, and the `orderby` and `limit` parameters.
//!
//! ```text
//! expr       := or
//! or         := and ("OR" and)*
//! and        := unary ("AND" unary)*
//! unary      := "NOT" unary | "(" expr ")" | comparison
//! comparison := field op value
//! field      := name ("." name)*            cluster.name
//! op         := EQ | NE | GT | GE | LT | LE | CP
//! value      := 'quoted text' | number | true | false | null | bare-word
//! ```
//!
//! Keywords are case-insensitive. Spaces, tabs and `+` separate tokens (the query
//! string's `%20` and `+` both arrive as spaces). Quoted text takes `\'` or `''` for
//! a quote and `\\` for a backslash; in a `CP` mask `%` matches any run and `_` one
//! character, and `\%` / `\_` match themselves. The parser only builds a tree; which
//! fields exist and what their values mean is `schema.rs`'s business.

use std::fmt;

/// Longest `where` text accepted, in bytes.
pub const MAX_WHERE_BYTES: usize = 16 * 1024;
/// Deepest nesting of parentheses and `NOT`s.
pub const MAX_DEPTH: usize = 64;
/// Most comparisons in one filter.
pub const MAX_COMPARISONS: usize = 256;
/// Most `orderby` keys.
pub const MAX_ORDER_KEYS: usize = 8;

/// A parsed `where` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Compare(Comparison),
}

/// `field op value`, with where each part starts (byte offsets) for error messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub field: String,
    pub field_at: usize,
    pub op: Op,
    pub value: Literal,
    pub value_at: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    /// A mask match, SQL's LIKE.
    Cp,
}

/// A value as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A bare number, kept as written so a text field can compare with it as text.
    Number(String),
    /// Quoted text: its plain value, and the same text as a LIKE pattern (`%` and `_`
    /// are wildcards unless escaped; a literal backslash is doubled).
    Text { value: String, pattern: String },
    /// An unquoted word (`true`, `false`, `null`, or text the writer did not quote).
    Word(String),
}

/// A syntax error: what went wrong and where (1-based character position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub position: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at position {}: {}", self.position, self.message)
    }
}

/// The 1-based character position of byte offset `at` in `text`.
pub fn char_position(text: &str, at: usize) -> usize {
    let at = at.min(text.len());
    text.char_indices().take_while(|(i, _)| *i < at).count() + 1
}

impl Op {
    fn from_word(word: &str) -> Option<Op> {
        Some(match word.to_ascii_uppercase().as_str() {
            "EQ" => Op::Eq,
            "NE" => Op::Ne,
            "GT" => Op::Gt,
            "GE" => Op::Ge,
            "LT" => Op::Lt,
            "LE" => Op::Le,
            "CP" => Op::Cp,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Op::Eq => "EQ",
            Op::Ne => "NE",
            Op::Gt => "GT",
            Op::Ge => "GE",
            Op::Lt => "LT",
            Op::Le => "LE",
            Op::Cp => "CP",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Word(String),
    Number(String),
    Text { value: String, pattern: String },
    End,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Open => "'('".into(),
            Token::Close => "')'".into(),
            Token::Word(word) => format!("'{}'", shorten(word)),
            Token::Number(number) => format!("number {}", shorten(number)),
            Token::Text { value, .. } => format!("text '{}'", shorten(value)),
            Token::End => "the end of the filter".into(),
        }
    }
}

fn shorten(text: &str) -> String {
    let short: String = text.chars().take(40).collect();
    if short.len() < text.len() {
        format!("{short}…")
    } else {
        short
    }
}

/// Splits the text into tokens with their byte offsets.
struct Lexer<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Lexer<'a> {
    fn error(&self, at: usize, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            position: char_position(self.text, at),
            message: message.into(),
        }
    }

    fn peek_char(&self) -> Option<char> {
        self.text[self.at..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.at += c.len_utf8();
        Some(c)
    }

    fn tokens(mut self) -> Result<Vec<(Token, usize)>, SyntaxError> {
        let mut tokens = Vec::new();
        loop {
            while self
                .peek_char()
                .is_some_and(|c| c == '+' || c.is_whitespace())
            {
                self.bump();
            }
            let start = self.at;
            let Some(c) = self.peek_char() else {
                tokens.push((Token::End, start));
                return Ok(tokens);
            };
            let token = match c {
                '(' => {
                    self.bump();
                    Token::Open
                }
                ')' => {
                    self.bump();
                    Token::Close
                }
                '\'' => self.text_token()?,
                '-' | '0'..='9' => self.number()?,
                c if c.is_alphabetic() || c == '_' => self.word(),
                other => {
                    return Err(self.error(start, format!("unexpected character {other:?}")));
                }
            };
            tokens.push((token, start));
        }
    }

    fn text_token(&mut self) -> Result<Token, SyntaxError> {
        let start = self.at;
        self.bump();
        let (mut value, mut pattern) = (String::new(), String::new());
        loop {
            match self.bump() {
                None => return Err(self.error(start, "quoted text is not closed")),
                Some('\'') if self.peek_char() == Some('\'') => {
                    self.bump();
                    value.push('\'');
                    pattern.push('\'');
                }
                Some('\'') => return Ok(Token::Text { value, pattern }),
                Some('\\') => match self.bump() {
                    None => return Err(self.error(start, "quoted text is not closed")),
                    Some(c @ ('%' | '_')) => {
                        value.push(c);
                        pattern.push('\\');
                        pattern.push(c);
                    }
                    Some('\\') => {
                        value.push('\\');
                        pattern.push_str("\\\\");
                    }
                    Some(c) => {
                        value.push(c);
                        pattern.push(c);
                    }
                },
                Some(c) => {
                    value.push(c);
                    pattern.push(c);
                }
            }
        }
    }

    fn number(&mut self) -> Result<Token, SyntaxError> {
        let start = self.at;
        if self.peek_char() == Some('-') {
            self.bump();
        }
        let digits = |lexer: &mut Lexer<'_>| {
            let from = lexer.at;
            while lexer.peek_char().is_some_and(|c| c.is_ascii_digit()) {
                lexer.bump();
            }
            lexer.at > from
        };
        if !digits(self) {
            return Err(self.error(start, "a number needs digits"));
        }
        if self.peek_char() == Some('.') {
            self.bump();
            if !digits(self) {
                return Err(self.error(start, "a number needs digits after its point"));
            }
        }
        if self
            .peek_char()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
        {
            return Err(self.error(start, "malformed number (quote text values)"));
        }
        Ok(Token::Number(self.text[start..self.at].to_owned()))
    }

    fn word(&mut self) -> Token {
        let start = self.at;
        while self
            .peek_char()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
        {
            self.bump();
        }
        Token::Word(self.text[start..self.at].to_owned())
    }
}

/// Parses a `where` text into an expression.
pub fn parse_where(text: &str) -> Result<Expr, SyntaxError> {
    if text.len() > MAX_WHERE_BYTES {
        return Err(SyntaxError {
            position: 1,
            message: format!("a filter is at most {MAX_WHERE_BYTES} bytes"),
        });
    }
    let tokens = Lexer { text, at: 0 }.tokens()?;
    let mut parser = Parser {
        text,
        tokens,
        next: 0,
        comparisons: 0,
    };
    if matches!(parser.peek(), Token::End) {
        return Err(parser.error_here("the filter is empty"));
    }
    let expr = parser.or(0)?;
    match parser.peek() {
        Token::End => Ok(expr),
        Token::Close => Err(parser.error_here("')' without a matching '('")),
        other => {
            let message = format!("expected AND, OR or the end, found {}", other.describe());
            Err(parser.error_here(message))
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<(Token, usize)>,
    next: usize,
    comparisons: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // The lexer always ends the list with `End`, and nothing moves past it.
        self.tokens.get(self.next).map_or(&Token::End, |(t, _)| t)
    }

    fn offset(&self) -> usize {
        self.tokens
            .get(self.next)
            .map_or(self.text.len(), |(_, at)| *at)
    }

    fn advance(&mut self) -> (Token, usize) {
        let token = self
            .tokens
            .get(self.next)
            .cloned()
            .unwrap_or((Token::End, self.text.len()));
        if !matches!(token.0, Token::End) {
            self.next += 1;
        }
        token
    }

    fn error_here(&self, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            position: char_position(self.text, self.offset()),
            message: message.into(),
        }
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Token::Word(w) if w.eq_ignore_ascii_case(word))
    }

    fn or(&mut self, depth: usize) -> Result<Expr, SyntaxError> {
        let mut items = vec![self.and(depth)?];
        while self.keyword("OR") {
            self.advance();
            items.push(self.and(depth)?);
        }
        Ok(flatten(items, Expr::Or))
    }

    fn and(&mut self, depth: usize) -> Result<Expr, SyntaxError> {
        let mut items = vec![self.unary(depth)?];
        while self.keyword("AND") {
            self.advance();
            items.push(self.unary(depth)?);
        }
        Ok(flatten(items, Expr::And))
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, SyntaxError> {
        if depth >= MAX_DEPTH {
            return Err(self.error_here(format!("the filter nests deeper than {MAX_DEPTH} levels")));
        }
        if self.keyword("NOT") {
            self.advance();
            return Ok(Expr::Not(Box::new(self.unary(depth + 1)?)));
        }
        if matches!(self.peek(), Token::Open) {
            let (_, open_at) = self.advance();
            let inner = self.or(depth + 1)?;
            return match self.peek() {
                Token::Close => {
                    self.advance();
                    Ok(inner)
                }
                Token::End => Err(SyntaxError {
                    position: char_position(self.text, open_at),
                    message: "'(' is never closed".into(),
                }),
                other => {
                    let message = format!("expected AND, OR or ')', found {}", other.describe());
                    Err(self.error_here(message))
                }
            };
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, SyntaxError> {
        let field_at = self.offset();
        let field = match self.advance() {
            (Token::Word(word), _) if !is_reserved(&word) => word,
            (other, _) => {
                self.next = self.next.saturating_sub(1);
                let message = format!("expected a field name, found {}", other.describe());
                return Err(SyntaxError {
                    position: char_position(self.text, field_at),
                    message,
                });
            }
        };
        let op_at = self.offset();
        let op = match self.advance() {
            (Token::Word(word), _) if Op::from_word(&word).is_some() => {
                Op::from_word(&word).unwrap_or(Op::Eq)
            }
            (other, _) => {
                return Err(SyntaxError {
                    position: char_position(self.text, op_at),
                    message: format!(
                        "expected EQ, NE, GT, GE, LT, LE or CP after '{}', found {}",
                        shorten(&field),
                        other.describe()
                    ),
                });
            }
        };
        let value_at = self.offset();
        let value = match self.advance() {
            (Token::Number(number), _) => Literal::Number(number),
            (Token::Text { value, pattern }, _) => Literal::Text { value, pattern },
            (Token::Word(word), _) if !is_reserved(&word) => Literal::Word(word),
            (other, _) => {
                return Err(SyntaxError {
                    position: char_position(self.text, value_at),
                    message: format!(
                        "expected a value after {}, found {}",
                        op.name(),
                        other.describe()
                    ),
                });
            }
        };
        self.comparisons += 1;
        if self.comparisons > MAX_COMPARISONS {
            return Err(SyntaxError {
                position: char_position(self.text, field_at),
                message: format!("a filter has at most {MAX_COMPARISONS} comparisons"),
            });
        }
        Ok(Expr::Compare(Comparison {
            field,
            field_at: char_position(self.text, field_at),
            op,
            value,
            value_at: char_position(self.text, value_at),
        }))
    }
}

fn is_reserved(word: &str) -> bool {
    ["AND", "OR", "NOT"]
        .iter()
        .any(|k| word.eq_ignore_ascii_case(k))
}

/// One item stays itself; several become `wrap(items)`.
fn flatten(mut items: Vec<Expr>, wrap: fn(Vec<Expr>) -> Expr) -> Expr {
    if items.len() == 1 {
        items.pop().unwrap_or(Expr::And(Vec::new()))
    } else {
        wrap(items)
    }
}

/// One `orderby` key as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderKey {
    pub field: String,
    /// 1-based character position of the field in the `orderby` text.
    pub field_at: usize,
    pub descending: bool,
}

/// Parses `field [asc|desc], ...` (spaces or `+` between field and direction).
pub fn parse_orderby(text: &str) -> Result<Vec<OrderKey>, SyntaxError> {
    let mut keys = Vec::new();
    let mut offset = 0;
    for part in text.split(',') {
        let part_at = offset;
        offset += part.len() + 1;
        let words: Vec<(usize, &str)> = split_words(part);
        let at = |i: usize| char_position(text, part_at + i);
        let (field_at, field) = match words.first() {
            Some(&(i, field)) if is_field_name(field) => (i, field),
            Some(&(i, other)) => {
                return Err(SyntaxError {
                    position: at(i),
                    message: format!("'{}' is not a field name", shorten(other)),
                });
            }
            None => {
                return Err(SyntaxError {
                    position: at(0),
                    message: "an orderby key is empty".into(),
                });
            }
        };
        let descending = match words.get(1) {
            None => false,
            Some((_, word)) if word.eq_ignore_ascii_case("asc") => false,
            Some((_, word)) if word.eq_ignore_ascii_case("desc") => true,
            Some(&(i, other)) => {
                return Err(SyntaxError {
                    position: at(i),
                    message: format!("expected asc or desc, found '{}'", shorten(other)),
                });
            }
        };
        if let Some(&(i, extra)) = words.get(2) {
            return Err(SyntaxError {
                position: at(i),
                message: format!(
                    "unexpected '{}' (separate keys with commas)",
                    shorten(extra)
                ),
            });
        }
        if keys.len() == MAX_ORDER_KEYS {
            return Err(SyntaxError {
                position: at(field_at),
                message: format!("at most {MAX_ORDER_KEYS} orderby keys"),
            });
        }
        keys.push(OrderKey {
            field: field.to_owned(),
            field_at: at(field_at),
            descending,
        });
    }
    Ok(keys)
}

/// Words separated by spaces or `+`, with their byte offsets.
fn split_words(text: &str) -> Vec<(usize, &str)> {
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
        let separator = c == '+' || c.is_whitespace();
        match (start, separator) {
            (None, false) => start = Some(i),
            (Some(s), true) => {
                words.push((s, &text[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    words
}

fn is_field_name(word: &str) -> bool {
    !word.is_empty()
        && word.split('.').all(|segment| {
            let mut chars = segment.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// `limit=offset,count` (numbering from 0), or `limit=count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub offset: u64,
    pub count: u64,
}

pub fn parse_limit(text: &str) -> Result<Limit, SyntaxError> {
    let number = |part: &str, at: usize| {
        part.trim_matches(|c: char| c == '+' || c.is_whitespace())
            .parse::<u64>()
            .map_err(|_| SyntaxError {
                position: char_position(text, at),
                message: "limit takes two comma-separated whole numbers: offset,count".into(),
            })
    };
    match text.split_once(',') {
        Some((offset, count)) => Ok(Limit {
            offset: number(offset, 0)?,
            count: number(count, offset.len() + 1)?,
        }),
        None => Ok(Limit {
            offset: 0,
            count: number(text, 0)?,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(field: &str, op: Op, value: Literal) -> Expr {
        Expr::Compare(Comparison {
            field: field.into(),
            field_at: 0,
            op,
            value,
            value_at: 0,
        })
    }

    /// The tree without positions, to compare shapes.
    fn shape(expr: Expr) -> Expr {
        match expr {
            Expr::And(items) => Expr::And(items.into_iter().map(shape).collect()),
            Expr::Or(items) => Expr::Or(items.into_iter().map(shape).collect()),
            Expr::Not(inner) => Expr::Not(Box::new(shape(*inner))),
            Expr::Compare(c) => Expr::Compare(Comparison {
                field_at: 0,
                value_at: 0,
                ..c
            }),
        }
    }

    fn parsed(text: &str) -> Expr {
        match parse_where(text) {
            Ok(expr) => shape(expr),
            Err(e) => panic!("{text}: {e}"),
        }
    }

    fn error(text: &str) -> SyntaxError {
        match parse_where(text) {
            Ok(expr) => panic!("{text} parsed as {expr:?}"),
            Err(e) => e,
        }
    }

    fn num(n: &str) -> Literal {
        Literal::Number(n.into())
    }

    fn text(t: &str) -> Literal {
        Literal::Text {
            value: t.into(),
            pattern: t.into(),
        }
    }

    #[test]
    fn every_operator_parses() {
        for (word, op) in [
            ("EQ", Op::Eq),
            ("NE", Op::Ne),
            ("GT", Op::Gt),
            ("GE", Op::Ge),
            ("LT", Op::Lt),
            ("LE", Op::Le),
            ("CP", Op::Cp),
            ("eq", Op::Eq),
            ("Cp", Op::Cp),
        ] {
            assert_eq!(parsed(&format!("id {word} 1")), cmp("id", op, num("1")));
        }
    }

    #[test]
    fn the_specs_examples_parse() {
        assert_eq!(parsed("(id EQ 1)"), cmp("id", Op::Eq, num("1")));
        assert_eq!(
            parsed("(consul_id EQ '1341774670') AND (name EQ 'host_create')"),
            Expr::And(vec![
                cmp("consul_id", Op::Eq, text("1341774670")),
                cmp("name", Op::Eq, text("host_create")),
            ])
        );
    }

    #[test]
    fn plus_separates_like_a_space() {
        assert_eq!(
            parsed("(id+EQ+1)+AND+name+CP+'a%'"),
            parsed("(id EQ 1) AND name CP 'a%'")
        );
    }

    #[test]
    fn and_binds_tighter_than_or_and_not_tighter_than_and() {
        let a = || cmp("a", Op::Eq, num("1"));
        let b = || cmp("b", Op::Eq, num("2"));
        let c = || cmp("c", Op::Eq, num("3"));
        assert_eq!(
            parsed("a EQ 1 OR b EQ 2 AND c EQ 3"),
            Expr::Or(vec![a(), Expr::And(vec![b(), c()])])
        );
        assert_eq!(
            parsed("(a EQ 1 OR b EQ 2) AND c EQ 3"),
            Expr::And(vec![Expr::Or(vec![a(), b()]), c()])
        );
        assert_eq!(
            parsed("NOT a EQ 1 AND b EQ 2"),
            Expr::And(vec![Expr::Not(Box::new(a())), b()])
        );
        assert_eq!(
            parsed("not (a EQ 1 or b EQ 2)"),
            Expr::Not(Box::new(Expr::Or(vec![a(), b()])))
        );
    }

    #[test]
    fn quoted_text_takes_escapes() {
        assert_eq!(
            parsed(r"name EQ 'it\'s'"),
            cmp("name", Op::Eq, text("it's"))
        );
        assert_eq!(parsed("name EQ 'it''s'"), cmp("name", Op::Eq, text("it's")));
        assert_eq!(
            parsed(r"name EQ 'a\\b'"),
            cmp(
                "name",
                Op::Eq,
                Literal::Text {
                    value: r"a\b".into(),
                    pattern: r"a\\b".into()
                }
            )
        );
        assert_eq!(
            parsed(r"name CP '50\%_'"),
            cmp(
                "name",
                Op::Cp,
                Literal::Text {
                    value: "50%_".into(),
                    pattern: r"50\%_".into()
                }
            )
        );
        assert_eq!(
            parsed("name EQ 'a AND b (c)'"),
            cmp("name", Op::Eq, text("a AND b (c)"))
        );
    }

    #[test]
    fn numbers_and_words_are_values() {
        assert_eq!(
            parsed("ram_mib GE -1.5"),
            cmp("ram_mib", Op::Ge, num("-1.5"))
        );
        assert_eq!(
            parsed("state EQ active"),
            cmp("state", Op::Eq, Literal::Word("active".into()))
        );
        assert_eq!(
            parsed("cluster.name EQ 'x'"),
            cmp("cluster.name", Op::Eq, text("x"))
        );
    }

    #[test]
    fn errors_point_at_the_position() {
        let e = error("id EQ");
        assert_eq!(e.position, 6, "{e}");
        assert!(e.message.contains("expected a value"), "{e}");
        let e = error("id XX 1");
        assert_eq!(e.position, 4);
        assert!(e.message.contains("EQ, NE"), "{e}");
        let e = error("(id EQ 1");
        assert_eq!(e.position, 1);
        assert!(e.message.contains("never closed"), "{e}");
        let e = error("id EQ 1)");
        assert_eq!(e.position, 8);
        let e = error("name EQ 'abc");
        assert_eq!(e.position, 9);
        assert!(e.message.contains("not closed"));
        let e = error("id EQ 1 name EQ 2");
        assert_eq!(e.position, 9);
        let e = error("id EQ 1 AND");
        assert!(e.message.contains("field name"), "{e}");
        let e = error("id EQ 12ab");
        assert_eq!(e.position, 7);
        let e = error("id EQ 1 ; drop");
        assert_eq!(e.position, 9);
        assert!(error("").message.contains("empty"));
        assert!(error("()").message.contains("field name"));
        assert!(error("AND EQ 1").message.contains("field name"));
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let e = error("name EQ 'é' x");
        assert_eq!(e.position, 13);
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("{}id EQ 1{}", "(".repeat(1_000), ")".repeat(1_000));
        assert!(error(&deep).message.contains("deeper"));
        let nots = format!("{}id EQ 1", "NOT ".repeat(1_000));
        assert!(error(&nots).message.contains("deeper"));
    }

    #[test]
    fn too_many_comparisons_are_refused() {
        let many = vec!["id EQ 1"; MAX_COMPARISONS + 1].join(" OR ");
        assert!(error(&many).message.contains("at most"));
    }

    #[test]
    fn orderby_takes_several_keys_and_directions() {
        let keys = parse_orderby("cluster.name desc,id+asc, name").unwrap();
        let summary: Vec<_> = keys
            .iter()
            .map(|k| (k.field.as_str(), k.descending))
            .collect();
        assert_eq!(
            summary,
            [("cluster.name", true), ("id", false), ("name", false)]
        );
        assert_eq!(keys[1].field_at, 19);
        assert!(parse_orderby("id sideways").is_err());
        assert!(parse_orderby("id desc extra").is_err());
        assert!(parse_orderby("id,").is_err());
        assert_eq!(parse_orderby("1id").unwrap_err().position, 1);
    }

    #[test]
    fn limit_takes_offset_and_count() {
        assert_eq!(
            parse_limit("0,50"),
            Ok(Limit {
                offset: 0,
                count: 50
            })
        );
        assert_eq!(
            parse_limit("10, 5"),
            Ok(Limit {
                offset: 10,
                count: 5
            })
        );
        assert_eq!(
            parse_limit("7"),
            Ok(Limit {
                offset: 0,
                count: 7
            })
        );
        assert_eq!(parse_limit("0,x").unwrap_err().position, 3);
        assert!(parse_limit("-1,5").is_err());
        assert!(parse_limit("").is_err());
    }
}

#[cfg(test)]
mod fuzz {
    //! The parsers must answer every input with a tree or an error, never a panic.
    use super::*;
    use proptest::prelude::*;

    /// Fragments that make near-valid filters likelier than random bytes do.
    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("(".to_owned()),
            Just(")".to_owned()),
            Just(" ".to_owned()),
            Just("+".to_owned()),
            Just("'".to_owned()),
            Just("\\".to_owned()),
            Just("''".to_owned()),
            Just("AND".to_owned()),
            Just("OR".to_owned()),
            Just("NOT".to_owned()),
            Just("EQ".to_owned()),
            Just("CP".to_owned()),
            Just("id".to_owned()),
            Just("cluster.name".to_owned()),
            Just("-".to_owned()),
            Just("1.5".to_owned()),
            Just("%".to_owned()),
            Just(",".to_owned()),
            "[a-z0-9 ._'()+\\\\-]{0,6}",
            any::<char>().prop_map(String::from),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn where_never_panics(parts in prop::collection::vec(fragment(), 0..40)) {
            let text = parts.join("");
            if let Err(e) = parse_where(&text) {
                prop_assert!(e.position >= 1 && e.position <= text.chars().count() + 1);
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(text in any::<String>()) {
            let _ = parse_where(&text);
            let _ = parse_orderby(&text);
            let _ = parse_limit(&text);
        }

        #[test]
        fn orderby_and_limit_never_panic(parts in prop::collection::vec(fragment(), 0..20)) {
            let text = parts.join("");
            let _ = parse_orderby(&text);
            let _ = parse_limit(&text);
        }
    }
}
