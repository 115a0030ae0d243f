//! The Aperture policy-rule subset CloudAPI uses: `CAN action[, action …][ and action]`
//! optionally followed by `IF`/`WHEN` and conditions on the request —
//! `sourceip`, `date`, `day`, `time` (also spelt `requesttime::date|day|time`), `method`
//! and `user-agent` — combined with `and`, `or`, `not` and parentheses, compared with
//! `=`, `!=`, `<`, `<=`, `>`, `>=` or `in (a, b, …)`. A tokenizer, a recursive-descent
//! parser that type-checks each value against its attribute, and an evaluator.

use std::net::IpAddr;

use crate::protocol::clock;

/// A parsed rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Lower-cased action names (`listmachines`).
    pub actions: Vec<String>,
    pub condition: Option<Condition>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
    Not(Box<Condition>),
    Compare(Attribute, Op, Literal),
    In(Attribute, Vec<Literal>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribute {
    SourceIp,
    Date,
    Day,
    Time,
    Method,
    UserAgent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A typed value: the attribute decides how its text is read.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// An address, or a network (`10.0.0.0/8`) that `=` tests membership of.
    Ip(IpAddr, u8),
    /// Seconds since the epoch.
    Date(i64),
    /// 0 = Sunday.
    Day(u32),
    /// Seconds since midnight.
    Time(u32),
    Text(String),
}

/// What a condition is evaluated against.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub now_ms: u64,
    pub source_ip: Option<IpAddr>,
    pub method: String,
    pub user_agent: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError(pub String);

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Comma,
    Open,
    Close,
    Op(Op),
}

fn tokenize(text: &str) -> Result<Vec<Token>, RuleError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            ',' => {
                chars.next();
                tokens.push(Token::Comma);
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '"' | '\'' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some('\\') => value.extend(chars.next()),
                        Some(other) => value.push(other),
                        None => return Err(RuleError("unterminated quoted value".into())),
                    }
                }
                tokens.push(Token::Quoted(value));
            }
            '=' | '!' | '<' | '>' => {
                chars.next();
                let followed_by_eq = chars.next_if_eq(&'=').is_some();
                let op = match (c, followed_by_eq) {
                    ('=', _) => Op::Eq,
                    ('!', true) => Op::Ne,
                    ('<', false) => Op::Lt,
                    ('<', true) => Op::Le,
                    ('>', false) => Op::Gt,
                    ('>', true) => Op::Ge,
                    _ => return Err(RuleError("'!' must be followed by '='".into())),
                };
                tokens.push(Token::Op(op));
            }
            c if is_word_char(c) => {
                let mut word = String::new();
                while let Some(c) = chars.next_if(|c| is_word_char(*c)) {
                    word.push(c);
                }
                tokens.push(Token::Word(word));
            }
            other => return Err(RuleError(format!("unexpected character {other:?}"))),
        }
    }
    Ok(tokens)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '.' | '/' | '*' | '+')
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn expect(&mut self, token: Token, what: &str) -> Result<(), RuleError> {
        match self.next() {
            Some(t) if t == token => Ok(()),
            _ => Err(RuleError(format!("expected {what}"))),
        }
    }

    fn rule(&mut self) -> Result<Rule, RuleError> {
        if !self.keyword("can") {
            return Err(RuleError("a rule starts with CAN".into()));
        }
        self.next();
        let mut actions = vec![self.action()?];
        loop {
            if matches!(self.peek(), Some(Token::Comma)) || self.keyword("and") {
                self.next();
                actions.push(self.action()?);
            } else {
                break;
            }
        }
        let condition = if self.keyword("if") || self.keyword("when") {
            self.next();
            Some(self.disjunction()?)
        } else {
            None
        };
        if let Some(extra) = self.peek() {
            return Err(RuleError(format!("unexpected {extra:?} after the rule")));
        }
        Ok(Rule { actions, condition })
    }

    fn action(&mut self) -> Result<String, RuleError> {
        match self.next() {
            Some(Token::Word(w))
                if !["and", "or", "if", "when", "can", "not"]
                    .iter()
                    .any(|k| w.eq_ignore_ascii_case(k))
                    && w.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
            {
                Ok(w.to_ascii_lowercase())
            }
            _ => Err(RuleError("expected an action name".into())),
        }
    }

    fn disjunction(&mut self) -> Result<Condition, RuleError> {
        let mut left = self.conjunction()?;
        while self.keyword("or") {
            self.next();
            left = Condition::Or(Box::new(left), Box::new(self.conjunction()?));
        }
        Ok(left)
    }

    fn conjunction(&mut self) -> Result<Condition, RuleError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.next();
            left = Condition::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Condition, RuleError> {
        if self.keyword("not") {
            self.next();
            return Ok(Condition::Not(Box::new(self.unary()?)));
        }
        if matches!(self.peek(), Some(Token::Open)) {
            self.next();
            let inner = self.disjunction()?;
            self.expect(Token::Close, "')'")?;
            return Ok(inner);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Condition, RuleError> {
        let attribute = match self.next() {
            Some(Token::Word(w)) => Attribute::parse(&w)?,
            _ => return Err(RuleError("expected a condition".into())),
        };
        if self.keyword("in") {
            self.next();
            self.expect(Token::Open, "'(' after in")?;
            let mut values = vec![self.literal(attribute)?];
            while matches!(self.peek(), Some(Token::Comma)) {
                self.next();
                values.push(self.literal(attribute)?);
            }
            self.expect(Token::Close, "')'")?;
            return Ok(Condition::In(attribute, values));
        }
        let op = match self.next() {
            Some(Token::Op(op)) => op,
            _ => return Err(RuleError("expected =, !=, <, <=, >, >= or in".into())),
        };
        if matches!(
            attribute,
            Attribute::SourceIp | Attribute::Method | Attribute::UserAgent
        ) && !matches!(op, Op::Eq | Op::Ne)
        {
            return Err(RuleError(format!(
                "{} can only be compared with = or !=",
                attribute.name()
            )));
        }
        let value = self.literal(attribute)?;
        Ok(Condition::Compare(attribute, op, value))
    }

    fn literal(&mut self, attribute: Attribute) -> Result<Literal, RuleError> {
        let text = match self.next() {
            Some(Token::Word(w) | Token::Quoted(w)) => w,
            _ => return Err(RuleError(format!("expected a {} value", attribute.name()))),
        };
        attribute.read(&text)
    }
}

impl Attribute {
    /// `sourceip`, `date`, `day`, `time`, `method`, `user-agent`, or `NAME::TYPE` (as in
    /// `requesttime::time`), where the type names what is compared.
    fn parse(word: &str) -> Result<Attribute, RuleError> {
        let lower = word.to_ascii_lowercase();
        let name = match lower.split_once("::") {
            Some(("requesttime", kind)) => kind,
            Some(("sourceip", "ip")) => "sourceip",
            Some((name, kind)) => {
                return Err(RuleError(format!("unknown condition {name}::{kind}")));
            }
            None if lower == "requesttime" => "date",
            None => lower.as_str(),
        };
        match name {
            "sourceip" => Ok(Attribute::SourceIp),
            "date" => Ok(Attribute::Date),
            "day" => Ok(Attribute::Day),
            "time" => Ok(Attribute::Time),
            "method" => Ok(Attribute::Method),
            "user-agent" => Ok(Attribute::UserAgent),
            _ => Err(RuleError(format!("unknown condition {word}"))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Attribute::SourceIp => "sourceip",
            Attribute::Date => "date",
            Attribute::Day => "day",
            Attribute::Time => "time",
            Attribute::Method => "method",
            Attribute::UserAgent => "user-agent",
        }
    }

    fn read(self, text: &str) -> Result<Literal, RuleError> {
        let bad = |what: &str| RuleError(format!("{text:?} is not {what}"));
        match self {
            Attribute::SourceIp => {
                let (address, bits) = match text.split_once('/') {
                    Some((a, b)) => (a, Some(b)),
                    None => (text, None),
                };
                let address: IpAddr = address.parse().map_err(|_| bad("an IP address"))?;
                let max = if address.is_ipv4() { 32 } else { 128 };
                let bits = match bits {
                    Some(b) => b
                        .parse::<u8>()
                        .ok()
                        .filter(|b| *b <= max)
                        .ok_or_else(|| bad("a network"))?,
                    None => max,
                };
                Ok(Literal::Ip(address, bits))
            }
            Attribute::Date => parse_date(text)
                .map(Literal::Date)
                .ok_or_else(|| bad("a date (YYYY-MM-DD[THH:MM[:SS]])")),
            Attribute::Day => parse_day(text)
                .map(Literal::Day)
                .ok_or_else(|| bad("a day of the week")),
            Attribute::Time => parse_time(text)
                .map(Literal::Time)
                .ok_or_else(|| bad("a time (HH:MM[:SS])")),
            Attribute::Method => Ok(Literal::Text(text.to_ascii_lowercase())),
            Attribute::UserAgent => Ok(Literal::Text(text.to_string())),
        }
    }

    fn value(self, facts: &Facts) -> Option<Literal> {
        let secs = facts.now_ms / 1000;
        Some(match self {
            Attribute::SourceIp => Literal::Ip(facts.source_ip?, 0),
            Attribute::Date => Literal::Date(secs as i64),
            Attribute::Day => Literal::Day(clock::weekday(secs)),
            Attribute::Time => Literal::Time((secs % 86_400) as u32),
            Attribute::Method => Literal::Text(facts.method.to_ascii_lowercase()),
            Attribute::UserAgent => Literal::Text(facts.user_agent.clone()),
        })
    }
}

fn parse_time(text: &str) -> Option<u32> {
    let parts: Vec<&str> = text.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.len() != 2) {
        return None;
    }
    let nums: Vec<u32> = parts
        .iter()
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let (h, m, s) = (nums[0], nums[1], nums.get(2).copied().unwrap_or(0));
    (h < 24 && m < 60 && s < 60).then_some(h * 3600 + m * 60 + s)
}

fn parse_day(text: &str) -> Option<u32> {
    const DAYS: [&str; 7] = [
        "sunday",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
    ];
    let lower = text.to_ascii_lowercase();
    DAYS.iter()
        .position(|d| lower.len() >= 3 && d.starts_with(&lower))
        .map(|i| i as u32)
}

fn parse_date(text: &str) -> Option<i64> {
    let (date, time) = match text.split_once(['T', 't']) {
        Some((d, t)) => (d, Some(t.trim_end_matches(['Z', 'z']))),
        None => (text, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    if parts.len() != 3 || parts[0].len() != 4 || parts[1].len() != 2 || parts[2].len() != 2 {
        return None;
    }
    let year: i64 = parts[0].parse().ok()?;
    let month: u32 = parts[1].parse().ok()?;
    let day: u32 = parts[2].parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let seconds = match time {
        Some(t) => i64::from(parse_time(t.split('.').next()?)?),
        None => 0,
    };
    Some(clock::days_from_civil(year, month, day) * 86_400 + seconds)
}

impl Rule {
    pub fn parse(text: &str) -> Result<Rule, RuleError> {
        let text = text.trim().trim_end_matches('.');
        let mut parser = Parser {
            tokens: tokenize(text)?,
            at: 0,
        };
        parser.rule()
    }

    /// Whether this rule lets `action` happen given the request's facts.
    pub fn allows(&self, action: &str, facts: &Facts) -> bool {
        self.actions.iter().any(|a| a == action)
            && self.condition.as_ref().is_none_or(|c| c.holds(facts))
    }
}

impl Condition {
    pub fn holds(&self, facts: &Facts) -> bool {
        match self {
            Condition::And(a, b) => a.holds(facts) && b.holds(facts),
            Condition::Or(a, b) => a.holds(facts) || b.holds(facts),
            Condition::Not(a) => !a.holds(facts),
            Condition::Compare(attribute, op, literal) => attribute
                .value(facts)
                .is_some_and(|actual| compare(&actual, *op, literal)),
            Condition::In(attribute, literals) => attribute
                .value(facts)
                .is_some_and(|actual| literals.iter().any(|l| compare(&actual, Op::Eq, l))),
        }
    }
}

fn compare(actual: &Literal, op: Op, expected: &Literal) -> bool {
    use std::cmp::Ordering;
    let ordering = match (actual, expected) {
        (Literal::Ip(address, _), Literal::Ip(network, bits)) => {
            let inside = in_network(*address, *network, *bits);
            return match op {
                Op::Eq => inside,
                Op::Ne => !inside,
                _ => false,
            };
        }
        (Literal::Date(a), Literal::Date(b)) => a.cmp(b),
        (Literal::Day(a), Literal::Day(b)) => a.cmp(b),
        (Literal::Time(a), Literal::Time(b)) => a.cmp(b),
        (Literal::Text(a), Literal::Text(b)) => a.cmp(b),
        _ => return false,
    };
    match op {
        Op::Eq => ordering == Ordering::Equal,
        Op::Ne => ordering != Ordering::Equal,
        Op::Lt => ordering == Ordering::Less,
        Op::Le => ordering != Ordering::Greater,
        Op::Gt => ordering == Ordering::Greater,
        Op::Ge => ordering != Ordering::Less,
    }
}

fn in_network(address: IpAddr, network: IpAddr, bits: u8) -> bool {
    match (address, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V4(_)) => a
            .to_ipv4_mapped()
            .is_some_and(|a| in_network(IpAddr::V4(a), network, bits)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(iso_day: (i64, u32, u32), time: (u64, u64), ip: &str) -> Facts {
        let days = clock::days_from_civil(iso_day.0, iso_day.1, iso_day.2) as u64;
        Facts {
            now_ms: (days * 86_400 + time.0 * 3600 + time.1 * 60) * 1000,
            source_ip: ip.parse().ok(),
            method: "GET".into(),
            user_agent: "triton/7.17.0".into(),
        }
    }

    #[test]
    fn plain_action_lists_parse_in_every_spelling_the_spec_shows() {
        let r = Rule::parse("CAN rebootmachine, createmachine AND getmachine").unwrap();
        assert_eq!(r.actions, ["rebootmachine", "createmachine", "getmachine"]);
        assert_eq!(
            Rule::parse("can listmachine and getmachine")
                .unwrap()
                .actions
                .len(),
            2
        );
        assert_eq!(
            Rule::parse("can rebootMachine").unwrap().actions,
            ["rebootmachine"]
        );
        assert_eq!(
            Rule::parse("CAN stopmachine.").unwrap().actions,
            ["stopmachine"]
        );
    }

    #[test]
    fn the_spec_s_time_and_day_condition_is_evaluated() {
        let r = Rule::parse(
            "CAN rebootmachine if requesttime::time > 07:30:00 and requesttime::time < 18:30:00 and requesttime::day in (Mon, Tue, Wed, THu, Fri)",
        )
        .unwrap();
        // 2016-01-19 was a Tuesday.
        assert!(r.allows("rebootmachine", &facts((2016, 1, 19), (9, 0), "10.0.0.1")));
        assert!(!r.allows("rebootmachine", &facts((2016, 1, 19), (19, 0), "10.0.0.1")));
        assert!(
            !r.allows("rebootmachine", &facts((2016, 1, 17), (9, 0), "10.0.0.1")),
            "Sunday"
        );
        assert!(!r.allows("stopmachine", &facts((2016, 1, 19), (9, 0), "10.0.0.1")));
    }

    #[test]
    fn source_ip_dates_and_boolean_structure() {
        let r = Rule::parse("CAN getaccount WHEN sourceip = 10.0.0.0/8 or (sourceip = 192.168.1.7 and not method = post)").unwrap();
        assert!(r.allows("getaccount", &facts((2020, 1, 1), (0, 0), "10.1.2.3")));
        assert!(r.allows("getaccount", &facts((2020, 1, 1), (0, 0), "192.168.1.7")));
        assert!(!r.allows("getaccount", &facts((2020, 1, 1), (0, 0), "192.168.1.8")));
        let d = Rule::parse("can listkeys if date >= 2020-01-01 and date < 2020-02-01T12:00:00Z")
            .unwrap();
        assert!(d.allows("listkeys", &facts((2020, 1, 15), (0, 0), "::1")));
        assert!(!d.allows("listkeys", &facts((2020, 3, 1), (0, 0), "::1")));
        let ua = Rule::parse("can listkeys if user-agent != 'curl/8'").unwrap();
        assert!(ua.allows("listkeys", &facts((2020, 1, 15), (0, 0), "::1")));
    }

    #[test]
    fn bad_rules_are_refused_with_a_reason() {
        for bad in [
            "",
            "listmachines",
            "CAN",
            "CAN and",
            "CAN listmachines if",
            "CAN listmachines if time > 25:00",
            "CAN listmachines if day = Someday",
            "CAN listmachines if sourceip > 10.0.0.1",
            "CAN listmachines if sourceip = 10.0.0.0/33",
            "CAN listmachines if color = red",
            "CAN listmachines if (time > 07:00",
            "CAN listmachines if time in (07:00",
            "CAN listmachines extra",
            "CAN list$machines",
            "CAN x if date = 2020-13-01",
            "CAN x if method ! get",
            "CAN x if user-agent = \"open",
        ] {
            assert!(Rule::parse(bad).is_err(), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any text is a rule or a reason, never a panic.
        #[test]
        fn any_text_parses_or_is_refused(text in "\\PC{0,120}") {
            let _ = Rule::parse(&text);
            let _ = Rule::parse(&format!("CAN x if {text}"));
        }

        /// A list of action names reads back lower-cased, whatever the separators.
        #[test]
        fn action_lists_read_back(
            actions in proptest::collection::vec("[a-zA-Z][a-zA-Z0-9_]{0,20}", 1..6),
            commas in proptest::collection::vec(any::<bool>(), 6),
        ) {
            prop_assume!(actions.iter().all(|a| !["and", "or", "if", "when", "can", "not"]
                .contains(&a.to_ascii_lowercase().as_str())));
            let mut text = format!("CAN {}", actions[0]);
            for (i, action) in actions.iter().enumerate().skip(1) {
                text.push_str(if commas[i] { ", " } else { " and " });
                text.push_str(action);
            }
            let rule = Rule::parse(&text).unwrap();
            let expected: Vec<String> = actions.iter().map(|a| a.to_ascii_lowercase()).collect();
            prop_assert_eq!(rule.actions, expected);
        }

        /// `time` comparisons agree with comparing seconds since midnight.
        #[test]
        fn time_conditions_match_arithmetic(h in 0u64..24, m in 0u64..60, at in 0u64..86_400) {
            let rule = Rule::parse(&format!("CAN x if time >= {h:02}:{m:02}")).unwrap();
            let facts = Facts {
                now_ms: (20_000 * 86_400 + at) * 1000,
                source_ip: None,
                method: "GET".into(),
                user_agent: String::new(),
            };
            prop_assert_eq!(rule.allows("x", &facts), at >= h * 3600 + m * 60);
        }
    }
}
