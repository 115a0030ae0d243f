//! The FWRULE language of Triton firewall rules: a tokenizer, a recursive-descent parser
//! into [`Rule`], the canonical text a parsed rule is shown as, and which machines a rule
//! names.
//!
//! ```text
//! rule     := FROM targets TO targets (ALLOW | BLOCK) protocol [PRIORITY n]
//! targets  := target | "(" target (OR target)* ")"
//! target   := ANY | ALL VMS | VM uuid | IP address | SUBNET cidr
//!           | TAG name [= value | = "(" value (OR value)* ")"]
//! protocol := (TCP | UDP) ports | (ICMP | ICMP6) types | AH | ESP
//! ports    := PORT n | PORT ALL | ALL PORTS | PORTS range ("," range)*
//!           | "(" PORT n (AND PORT n)* ")"              range := n | n "-" m
//! types    := TYPE n [CODE m] | TYPE ALL | "(" TYPE n [CODE m] (AND TYPE n [CODE m])* ")"
//! ```
//!
//! Keywords are case-insensitive; tag names and values may be quoted. Errors carry the
//! 1-based character position of the offending token.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One side of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Target {
    Any,
    AllVms,
    Vm { id: String },
    Ip { ip: String },
    Subnet { cidr: String },
    Tag { name: String, values: Vec<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Allow,
    Block,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Ports {
    All,
    /// `true`: written as `PORTS a - b, c`; `false`: `PORT n` / `(PORT n AND PORT m)`.
    List {
        ranges: Vec<PortRange>,
        ranged: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IcmpType {
    pub icmp_type: u8,
    pub code: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IcmpTypes {
    All,
    List { types: Vec<IcmpType> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Protocol {
    Tcp { ports: Ports },
    Udp { ports: Ports },
    Icmp { types: IcmpTypes },
    Icmp6 { types: IcmpTypes },
    Ah,
    Esp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub from: Vec<Target>,
    pub to: Vec<Target>,
    pub action: Action,
    pub protocol: Protocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
}

/// A rule that does not parse: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based character position; one past the end for a rule that stops too early.
    pub position: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error at character {}: {}", self.position, self.message)
    }
}

pub const MAX_PRIORITY: u8 = 100;
const MAX_RULE_CHARS: usize = 8192;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    Open,
    Close,
    Equals,
    Comma,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// 1-based character position.
    at: usize,
}

fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = i + 1;
        match c {
            c if c.is_whitespace() => i += 1,
            '(' | ')' | '=' | ',' => {
                let tok = match c {
                    '(' => Tok::Open,
                    ')' => Tok::Close,
                    '=' => Tok::Equals,
                    _ => Tok::Comma,
                };
                out.push(Token { tok, at });
                i += 1;
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(ParseError {
                                position: at,
                                message: "unterminated quoted string".into(),
                            });
                        }
                        Some('\\') if matches!(chars.get(i + 1), Some('"' | '\\')) => {
                            s.push(chars[i + 1]);
                            i += 2;
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some(other) => {
                            s.push(*other);
                            i += 1;
                        }
                    }
                }
                out.push(Token {
                    tok: Tok::Quoted(s),
                    at,
                });
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(chars[i], '(' | ')' | '=' | ',' | '"')
                {
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Word(chars[start..i].iter().collect()),
                    at,
                });
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn at(&self) -> usize {
        self.peek().map_or(self.end, |t| t.at)
    }

    fn fail<T>(&self, expected: &str) -> Result<T, ParseError> {
        let message = match self.peek() {
            None => format!("unexpected end of rule; expected {expected}"),
            Some(t) => format!("unexpected {}; expected {expected}", describe(&t.tok)),
        };
        Err(ParseError {
            position: self.at(),
            message,
        })
    }

    fn is_word(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Word(w), .. }) if w.eq_ignore_ascii_case(keyword))
    }

    fn is(&self, tok: &Tok) -> bool {
        self.peek().is_some_and(|t| &t.tok == tok)
    }

    fn keyword(&mut self, keyword: &str) -> Result<(), ParseError> {
        if self.is_word(keyword) {
            self.pos += 1;
            Ok(())
        } else {
            self.fail(&format!("\"{keyword}\""))
        }
    }

    fn punct(&mut self, tok: Tok, name: &str) -> Result<(), ParseError> {
        if self.is(&tok) {
            self.pos += 1;
            Ok(())
        } else {
            self.fail(name)
        }
    }

    /// A bare word (not a keyword check); returns it and its position.
    fn word(&mut self, expected: &str) -> Result<(String, usize), ParseError> {
        match self.peek() {
            Some(Token {
                tok: Tok::Word(w),
                at,
            }) => {
                let out = (w.clone(), *at);
                self.pos += 1;
                Ok(out)
            }
            _ => self.fail(expected),
        }
    }

    /// A word or a quoted string.
    fn text(&mut self, expected: &str) -> Result<String, ParseError> {
        match self.peek().map(|t| t.tok.clone()) {
            Some(Tok::Word(w)) | Some(Tok::Quoted(w)) => {
                self.pos += 1;
                Ok(w)
            }
            _ => self.fail(expected),
        }
    }

    fn number<T: TryFrom<u64>>(&mut self, what: &str, min: u64, max: u64) -> Result<T, ParseError> {
        let (w, at) = self.word(what)?;
        number_in(&w, at, what, min, max)
    }

    fn rule(&mut self) -> Result<Rule, ParseError> {
        self.keyword("FROM")?;
        let from = self.targets()?;
        self.keyword("TO")?;
        let to = self.targets()?;
        let action = if self.is_word("ALLOW") {
            Action::Allow
        } else if self.is_word("BLOCK") {
            Action::Block
        } else {
            return self.fail("\"ALLOW\" or \"BLOCK\"");
        };
        self.pos += 1;
        let protocol = self.protocol()?;
        let priority = if self.is_word("PRIORITY") {
            self.pos += 1;
            Some(self.number("a priority from 0 to 100", 0, u64::from(MAX_PRIORITY))?)
        } else {
            None
        };
        if self.peek().is_some() {
            return self.fail("the end of the rule");
        }
        Ok(Rule {
            from,
            to,
            action,
            protocol,
            priority,
        })
    }

    fn targets(&mut self) -> Result<Vec<Target>, ParseError> {
        if !self.is(&Tok::Open) {
            return Ok(vec![self.target()?]);
        }
        self.pos += 1;
        let mut out = vec![self.target()?];
        while self.is_word("OR") {
            self.pos += 1;
            out.push(self.target()?);
        }
        self.punct(Tok::Close, "\"OR\" or \")\"")?;
        Ok(out)
    }

    fn target(&mut self) -> Result<Target, ParseError> {
        const EXPECTED: &str = "\"any\", \"all vms\", \"vm\", \"ip\", \"subnet\" or \"tag\"";
        let Some(Token {
            tok: Tok::Word(w), ..
        }) = self.peek().cloned()
        else {
            return self.fail(EXPECTED);
        };
        let keyword = w.to_ascii_lowercase();
        match keyword.as_str() {
            "any" => {
                self.pos += 1;
                Ok(Target::Any)
            }
            "all" => {
                self.pos += 1;
                self.keyword("VMS")?;
                Ok(Target::AllVms)
            }
            "vm" => {
                self.pos += 1;
                let (id, at) = self.word("a VM UUID")?;
                if !crate::ids::is_uuid(&id.to_ascii_lowercase()) {
                    return Err(ParseError {
                        position: at,
                        message: format!("{id:?} is not a UUID"),
                    });
                }
                Ok(Target::Vm {
                    id: id.to_ascii_lowercase(),
                })
            }
            "ip" => {
                self.pos += 1;
                let (ip, at) = self.word("an IP address")?;
                let parsed: IpAddr = ip.parse().map_err(|_| ParseError {
                    position: at,
                    message: format!("{ip:?} is not an IP address"),
                })?;
                Ok(Target::Ip {
                    ip: parsed.to_string(),
                })
            }
            "subnet" => {
                self.pos += 1;
                let (cidr, at) = self.word("a subnet in CIDR notation")?;
                let net: IpNet = cidr.parse().map_err(|_| ParseError {
                    position: at,
                    message: format!("{cidr:?} is not a subnet in CIDR notation"),
                })?;
                if net.trunc() != net {
                    return Err(ParseError {
                        position: at,
                        message: format!("subnet {cidr} has host bits set (use {})", net.trunc()),
                    });
                }
                Ok(Target::Subnet {
                    cidr: net.to_string(),
                })
            }
            "tag" => {
                self.pos += 1;
                let name = self.text("a tag name")?;
                let mut values = Vec::new();
                if self.is(&Tok::Equals) {
                    self.pos += 1;
                    if self.is(&Tok::Open) {
                        self.pos += 1;
                        values.push(self.text("a tag value")?);
                        while self.is_word("OR") {
                            self.pos += 1;
                            values.push(self.text("a tag value")?);
                        }
                        self.punct(Tok::Close, "\"OR\" or \")\"")?;
                    } else {
                        values.push(self.text("a tag value")?);
                    }
                }
                Ok(Target::Tag { name, values })
            }
            _ => self.fail(EXPECTED),
        }
    }

    fn protocol(&mut self) -> Result<Protocol, ParseError> {
        let (w, _) = match self.peek() {
            Some(Token {
                tok: Tok::Word(_), ..
            }) => self.word("")?,
            _ => return self.fail("a protocol (tcp, udp, icmp, icmp6, ah, esp)"),
        };
        match w.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp {
                ports: self.ports()?,
            }),
            "udp" => Ok(Protocol::Udp {
                ports: self.ports()?,
            }),
            "icmp" => Ok(Protocol::Icmp {
                types: self.icmp_types(255)?,
            }),
            "icmp6" => Ok(Protocol::Icmp6 {
                types: self.icmp_types(255)?,
            }),
            "ah" => Ok(Protocol::Ah),
            "esp" => Ok(Protocol::Esp),
            _ => {
                self.pos -= 1;
                self.fail("a protocol (tcp, udp, icmp, icmp6, ah, esp)")
            }
        }
    }

    fn ports(&mut self) -> Result<Ports, ParseError> {
        if self.is_word("ALL") {
            self.pos += 1;
            self.keyword("PORTS")?;
            return Ok(Ports::All);
        }
        if self.is(&Tok::Open) {
            self.pos += 1;
            let mut ranges = vec![self.single_port()?];
            while self.is_word("AND") {
                self.pos += 1;
                ranges.push(self.single_port()?);
            }
            self.punct(Tok::Close, "\"AND\" or \")\"")?;
            return Ok(Ports::List {
                ranges,
                ranged: false,
            });
        }
        if self.is_word("PORT") {
            self.pos += 1;
            if self.is_word("ALL") {
                self.pos += 1;
                return Ok(Ports::All);
            }
            let port = self.number("a port from 1 to 65535", 1, 65535)?;
            return Ok(Ports::List {
                ranges: vec![PortRange {
                    start: port,
                    end: port,
                }],
                ranged: false,
            });
        }
        if self.is_word("PORTS") {
            self.pos += 1;
            let mut ranges = vec![self.port_range()?];
            while self.is(&Tok::Comma) {
                self.pos += 1;
                ranges.push(self.port_range()?);
            }
            return Ok(Ports::List {
                ranges,
                ranged: true,
            });
        }
        self.fail("\"PORT\", \"PORTS\", \"ALL PORTS\" or \"(\"")
    }

    fn single_port(&mut self) -> Result<PortRange, ParseError> {
        self.keyword("PORT")?;
        let port = self.number("a port from 1 to 65535", 1, 65535)?;
        Ok(PortRange {
            start: port,
            end: port,
        })
    }

    /// `n`, `n-m` or `n - m`.
    fn port_range(&mut self) -> Result<PortRange, ParseError> {
        let (w, at) = self.word("a port or a port range")?;
        let (start, end) = match w.split_once('-') {
            Some((a, "")) => {
                let start = number_in(a, at, "a port from 1 to 65535", 1, 65535)?;
                (start, self.number("a port from 1 to 65535", 1, 65535)?)
            }
            Some((a, b)) => (
                number_in(a, at, "a port from 1 to 65535", 1, 65535)?,
                number_in(b, at, "a port from 1 to 65535", 1, 65535)?,
            ),
            None => {
                let start = number_in(&w, at, "a port from 1 to 65535", 1, 65535)?;
                if self.is_word("-") {
                    self.pos += 1;
                    (start, self.number("a port from 1 to 65535", 1, 65535)?)
                } else if let Some(Token {
                    tok: Tok::Word(next),
                    at,
                }) = self.peek().cloned()
                    && let Some(rest) = next.strip_prefix('-')
                {
                    self.pos += 1;
                    (
                        start,
                        number_in(rest, at, "a port from 1 to 65535", 1, 65535)?,
                    )
                } else {
                    (start, start)
                }
            }
        };
        if end < start {
            return Err(ParseError {
                position: at,
                message: format!("port range {start} - {end} ends before it starts"),
            });
        }
        Ok(PortRange { start, end })
    }

    fn icmp_types(&mut self, max: u64) -> Result<IcmpTypes, ParseError> {
        if self.is(&Tok::Open) {
            self.pos += 1;
            let mut types = vec![self.icmp_type(max)?];
            while self.is_word("AND") {
                self.pos += 1;
                types.push(self.icmp_type(max)?);
            }
            self.punct(Tok::Close, "\"AND\" or \")\"")?;
            return Ok(IcmpTypes::List { types });
        }
        if self.is_word("TYPE")
            && matches!(self.tokens.get(self.pos + 1), Some(Token { tok: Tok::Word(w), .. }) if w.eq_ignore_ascii_case("all"))
        {
            self.pos += 2;
            return Ok(IcmpTypes::All);
        }
        Ok(IcmpTypes::List {
            types: vec![self.icmp_type(max)?],
        })
    }

    fn icmp_type(&mut self, max: u64) -> Result<IcmpType, ParseError> {
        self.keyword("TYPE")?;
        let icmp_type = self.number("an ICMP type from 0 to 255", 0, max)?;
        let code = if self.is_word("CODE") {
            self.pos += 1;
            Some(self.number("an ICMP code from 0 to 255", 0, 255)?)
        } else {
            None
        };
        Ok(IcmpType { icmp_type, code })
    }
}

fn number_in<T: TryFrom<u64>>(
    text: &str,
    at: usize,
    what: &str,
    min: u64,
    max: u64,
) -> Result<T, ParseError> {
    let bad = || ParseError {
        position: at,
        message: format!("{text:?} is not {what}"),
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 6 {
        return Err(bad());
    }
    let n: u64 = text.parse().map_err(|_| bad())?;
    if n < min || n > max {
        return Err(bad());
    }
    T::try_from(n).map_err(|_| bad())
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Word(w) => format!("'{w}'"),
        Tok::Quoted(q) => format!("\"{q}\""),
        Tok::Open => "'('".into(),
        Tok::Close => "')'".into(),
        Tok::Equals => "'='".into(),
        Tok::Comma => "','".into(),
    }
}

/// Parse a rule, checking that it names at least one VM (a `vm`, a `tag` or `all vms`).
pub fn parse(text: &str) -> Result<Rule, ParseError> {
    let chars = text.chars().count();
    if chars > MAX_RULE_CHARS {
        return Err(ParseError {
            position: MAX_RULE_CHARS + 1,
            message: format!("a rule has at most {MAX_RULE_CHARS} characters"),
        });
    }
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        end: chars + 1,
    };
    let rule = parser.rule()?;
    if !rule.from.iter().chain(&rule.to).any(Target::names_vms) {
        return Err(ParseError {
            position: 1,
            message: "the rule must name \"vm\", \"tag\" or \"all vms\" in FROM or TO".into(),
        });
    }
    Ok(rule)
}

impl Target {
    fn names_vms(&self) -> bool {
        matches!(
            self,
            Target::AllVms | Target::Vm { .. } | Target::Tag { .. }
        )
    }

    /// Whether this target names the machine with `id` and `tags`.
    pub fn matches(&self, id: &str, tags: &Map<String, Value>) -> bool {
        match self {
            Target::AllVms => true,
            Target::Vm { id: vm } => vm.eq_ignore_ascii_case(id),
            Target::Tag { name, values } => match tags.get(name) {
                None => false,
                Some(_) if values.is_empty() => true,
                Some(value) => {
                    let text = match value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    values.contains(&text)
                }
            },
            _ => false,
        }
    }
}

impl Rule {
    /// Whether the rule applies to the machine: one of its sides names it.
    pub fn affects(&self, id: &str, tags: &Map<String, Value>) -> bool {
        self.from
            .iter()
            .chain(&self.to)
            .any(|t| t.matches(id, tags))
    }
}

fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Any => f.write_str("any"),
            Target::AllVms => f.write_str("all vms"),
            Target::Vm { id } => write!(f, "vm {id}"),
            Target::Ip { ip } => write!(f, "ip {ip}"),
            Target::Subnet { cidr } => write!(f, "subnet {cidr}"),
            Target::Tag { name, values } => {
                write!(f, "tag {}", quote(name))?;
                match values.as_slice() {
                    [] => Ok(()),
                    [one] => write!(f, " = {}", quote(one)),
                    many => {
                        let list: Vec<String> = many.iter().map(|v| quote(v)).collect();
                        write!(f, " = ({})", list.join(" OR "))
                    }
                }
            }
        }
    }
}

fn write_targets(out: &mut String, targets: &[Target]) {
    match targets {
        [one] => {
            let _ = write!(out, "{one}");
        }
        many => {
            let list: Vec<String> = many.iter().map(ToString::to_string).collect();
            let _ = write!(out, "({})", list.join(" OR "));
        }
    }
}

fn write_ports(out: &mut String, ports: &Ports) {
    match ports {
        Ports::All => out.push_str("PORT all"),
        Ports::List { ranges, ranged } if *ranged => {
            let list: Vec<String> = ranges
                .iter()
                .map(|r| {
                    if r.start == r.end {
                        r.start.to_string()
                    } else {
                        format!("{} - {}", r.start, r.end)
                    }
                })
                .collect();
            let _ = write!(out, "PORTS {}", list.join(", "));
        }
        Ports::List { ranges, .. } => match ranges.as_slice() {
            [one] => {
                let _ = write!(out, "PORT {}", one.start);
            }
            many => {
                let list: Vec<String> = many.iter().map(|r| format!("PORT {}", r.start)).collect();
                let _ = write!(out, "({})", list.join(" AND "));
            }
        },
    }
}

fn write_types(out: &mut String, types: &IcmpTypes) {
    let one = |t: &IcmpType| match t.code {
        Some(code) => format!("TYPE {} CODE {code}", t.icmp_type),
        None => format!("TYPE {}", t.icmp_type),
    };
    match types {
        IcmpTypes::All => out.push_str("TYPE all"),
        IcmpTypes::List { types } => match types.as_slice() {
            [single] => out.push_str(&one(single)),
            many => {
                let list: Vec<String> = many.iter().map(one).collect();
                let _ = write!(out, "({})", list.join(" AND "));
            }
        },
    }
}

/// The canonical text: keywords as fwapi writes them, tags quoted.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::from("FROM ");
        write_targets(&mut out, &self.from);
        out.push_str(" TO ");
        write_targets(&mut out, &self.to);
        out.push_str(match self.action {
            Action::Allow => " ALLOW ",
            Action::Block => " BLOCK ",
        });
        match &self.protocol {
            Protocol::Tcp { ports } => {
                out.push_str("tcp ");
                write_ports(&mut out, ports);
            }
            Protocol::Udp { ports } => {
                out.push_str("udp ");
                write_ports(&mut out, ports);
            }
            Protocol::Icmp { types } => {
                out.push_str("icmp ");
                write_types(&mut out, types);
            }
            Protocol::Icmp6 { types } => {
                out.push_str("icmp6 ");
                write_types(&mut out, types);
            }
            Protocol::Ah => out.push_str("ah"),
            Protocol::Esp => out.push_str("esp"),
        }
        if let Some(priority) = self.priority {
            let _ = write!(out, " PRIORITY {priority}");
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VM: &str = "0abeae82-c040-4080-ac60-b60d3e3890a7";

    /// Every example rule of the spec's "Firewall Rule Syntax" and endpoint sections.
    const SPEC_EXAMPLES: [&str; 11] = [
        "FROM any TO vm 0abeae82-c040-4080-ac60-b60d3e3890a7 ALLOW tcp port 80",
        "FROM vm 0abeae82-c040-4080-ac60-b60d3e3890a7 TO subnet 10.99.99.0/24 BLOCK tcp port 25",
        "FROM any TO vm 0abeae82-c040-4080-ac60-b60d3e3890a7 BLOCK tcp ports 40000 - 65535",
        "FROM ip 10.99.99.7 TO (tag www OR tag testwww) ALLOW tcp (port 80 AND port 443)",
        "FROM tag group=www TO tag group=mon ALLOW udp port 514",
        "FROM any TO tag mta ALLOW tcp PORT 25",
        "FROM subnet 10.20.30.0/24 TO tag mta BLOCK tcp PORT 25 PRIORITY 1",
        "FROM all vms TO any BLOCK tcp PORT all",
        "FROM all vms TO any ALLOW tcp PORT 22 PRIORITY 1",
        "FROM vm 3d51f2d5-46f2-4da5-bb04-3238f2f64768 TO subnet 10.99.99.0/24 BLOCK tcp PORT 25",
        "FROM vm 3d51f2d5-46f2-4da5-bb04-3238f2f64768 TO subnet 10.99.99.0/24 BLOCK tcp (PORT 25 AND PORT 80)",
    ];

    #[test]
    fn every_spec_example_parses_and_round_trips() {
        for text in SPEC_EXAMPLES {
            let rule = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let canonical = rule.to_string();
            assert_eq!(parse(&canonical).unwrap(), rule, "{canonical}");
        }
    }

    #[test]
    fn examples_mean_what_they_say() {
        let r = parse(SPEC_EXAMPLES[2]).unwrap();
        assert_eq!(r.to, vec![Target::Vm { id: VM.into() }]);
        assert_eq!(r.action, Action::Block);
        assert_eq!(
            r.protocol,
            Protocol::Tcp {
                ports: Ports::List {
                    ranges: vec![PortRange {
                        start: 40000,
                        end: 65535
                    }],
                    ranged: true
                }
            }
        );
        let r = parse(SPEC_EXAMPLES[4]).unwrap();
        assert_eq!(
            r.from,
            vec![Target::Tag {
                name: "group".into(),
                values: vec!["www".into()]
            }]
        );
        let r = parse(SPEC_EXAMPLES[3]).unwrap();
        assert_eq!(r.to.len(), 2);
        assert_eq!(
            r.to_string(),
            "FROM ip 10.99.99.7 TO (tag \"www\" OR tag \"testwww\") ALLOW tcp (PORT 80 AND PORT 443)"
        );
        assert_eq!(parse(SPEC_EXAMPLES[6]).unwrap().priority, Some(1));
        assert_eq!(
            parse(SPEC_EXAMPLES[7]).unwrap().protocol,
            Protocol::Tcp { ports: Ports::All }
        );
    }

    #[test]
    fn other_forms() {
        for text in [
            "from any to all vms allow icmp type 8 code 0",
            "FROM any TO all vms ALLOW icmp (TYPE 8 AND TYPE 0)",
            "FROM any TO all vms ALLOW icmp6 TYPE all",
            "FROM any TO tag \"my key\" = \"my value\" ALLOW tcp PORTS 22, 80-81, 443",
            "FROM any TO tag role = (web OR db) ALLOW tcp ALL PORTS",
            "FROM (ip 10.0.0.1 OR ip fd00::1) TO all vms ALLOW udp PORT 53",
            "FROM all vms TO all vms ALLOW ah",
            "FROM all vms TO all vms ALLOW esp PRIORITY 100",
        ] {
            let rule = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parse(&rule.to_string()).unwrap(), rule, "{text}");
        }
    }

    #[test]
    fn malformed_rules_report_where() {
        let cases: [(&str, usize); 16] = [
            ("", 1),
            ("FROM", 5),
            ("TO any", 1),
            ("FROM any TO vm nope ALLOW tcp PORT 80", 16),
            ("FROM any TO all vms ALLOW tcp PORT 0", 36),
            ("FROM any TO all vms ALLOW tcp PORT 65536", 36),
            ("FROM any TO all vms PERMIT tcp PORT 80", 21),
            ("FROM any TO all vms ALLOW gre", 27),
            ("FROM any TO all vms ALLOW tcp", 30),
            ("FROM any TO all vms ALLOW tcp PORT 80 extra", 39),
            ("FROM ip 300.1.1.1 TO all vms ALLOW tcp PORT 80", 9),
            ("FROM subnet 10.0.0.1/24 TO all vms ALLOW tcp PORT 80", 13),
            ("FROM any TO any ALLOW tcp PORT 80", 1),
            ("FROM (any OR all vms TO any ALLOW tcp PORT 80", 22),
            ("FROM any TO tag \"open ALLOW tcp PORT 80", 17),
            ("FROM any TO all vms ALLOW tcp PORTS 90 - 80", 37),
        ];
        for (text, position) in cases {
            let err = parse(text).expect_err(text);
            assert_eq!(err.position, position, "{text}: {err}");
            assert!(err.to_string().starts_with("Error at character"));
        }
        assert!(parse("FROM any TO all vms ALLOW tcp PORT 80 PRIORITY 101").is_err());
        assert!(parse("FROM any TO all vms ALLOW icmp TYPE 256").is_err());
    }

    #[test]
    fn affects_by_vm_tag_and_all_vms() {
        let tags: Map<String, Value> =
            serde_json::from_str(r#"{"group":"www","n":3,"flag":true}"#).unwrap();
        let rule = parse("FROM tag group=www TO tag group=mon ALLOW udp port 514").unwrap();
        assert!(rule.affects("x", &tags));
        assert!(!rule.affects("x", &Map::new()));
        assert!(
            parse("FROM any TO tag n = 3 ALLOW tcp PORT 1")
                .unwrap()
                .affects("x", &tags)
        );
        assert!(
            parse("FROM any TO tag flag ALLOW tcp PORT 1")
                .unwrap()
                .affects("x", &tags)
        );
        let by_id = parse(SPEC_EXAMPLES[0]).unwrap();
        assert!(by_id.affects(VM, &Map::new()));
        assert!(!by_id.affects("other", &Map::new()));
        assert!(parse(SPEC_EXAMPLES[7]).unwrap().affects("any", &Map::new()));
    }

    fn word() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9_.-]{0,8}"
    }

    fn target() -> impl Strategy<Value = Target> {
        prop_oneof![
            Just(Target::Any),
            Just(Target::AllVms),
            any::<[u8; 16]>().prop_map(|b| Target::Vm {
                id: {
                    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
                    format!(
                        "{}-{}-{}-{}-{}",
                        &h[0..8],
                        &h[8..12],
                        &h[12..16],
                        &h[16..20],
                        &h[20..32]
                    )
                }
            }),
            any::<[u8; 4]>().prop_map(|b| Target::Ip {
                ip: std::net::Ipv4Addr::from(b).to_string()
            }),
            (any::<[u8; 4]>(), 0u8..=32).prop_map(|(b, len)| Target::Subnet {
                cidr: ipnet::Ipv4Net::new(b.into(), len)
                    .unwrap()
                    .trunc()
                    .to_string()
            }),
            (word(), prop::collection::vec("[ -~]{1,6}", 0..3))
                .prop_map(|(name, values)| Target::Tag { name, values }),
        ]
    }

    fn ports() -> impl Strategy<Value = Ports> {
        prop_oneof![
            Just(Ports::All),
            prop::collection::vec(1u16..=65535, 1..4).prop_map(|ps| Ports::List {
                ranges: ps
                    .into_iter()
                    .map(|p| PortRange { start: p, end: p })
                    .collect(),
                ranged: false
            }),
            prop::collection::vec((1u16..=65535, 0u16..100), 1..4).prop_map(|ps| Ports::List {
                ranges: ps
                    .into_iter()
                    .map(|(p, w)| PortRange {
                        start: p,
                        end: p.saturating_add(w)
                    })
                    .collect(),
                ranged: true
            }),
        ]
    }

    fn icmp() -> impl Strategy<Value = IcmpTypes> {
        prop_oneof![
            Just(IcmpTypes::All),
            prop::collection::vec((any::<u8>(), prop::option::of(any::<u8>())), 1..3).prop_map(
                |ts| IcmpTypes::List {
                    types: ts
                        .into_iter()
                        .map(|(icmp_type, code)| IcmpType { icmp_type, code })
                        .collect()
                }
            ),
        ]
    }

    fn rule() -> impl Strategy<Value = Rule> {
        let protocol = prop_oneof![
            ports().prop_map(|ports| Protocol::Tcp { ports }),
            ports().prop_map(|ports| Protocol::Udp { ports }),
            icmp().prop_map(|types| Protocol::Icmp { types }),
            icmp().prop_map(|types| Protocol::Icmp6 { types }),
            Just(Protocol::Ah),
            Just(Protocol::Esp),
        ];
        (
            prop::collection::vec(target(), 1..4),
            prop::collection::vec(target(), 1..4),
            prop::bool::ANY,
            protocol,
            prop::option::of(0u8..=100),
        )
            .prop_map(|(from, mut to, allow, protocol, priority)| {
                to.push(Target::AllVms);
                Rule {
                    from,
                    to,
                    action: if allow { Action::Allow } else { Action::Block },
                    protocol,
                    priority,
                }
            })
    }

    proptest! {
        /// The canonical text of any rule parses back to the same rule.
        #[test]
        fn canonical_text_round_trips(rule in rule()) {
            let text = rule.to_string();
            prop_assert_eq!(parse(&text).map_err(|e| format!("{text}: {e}")), Ok(rule));
        }

        /// Arbitrary text never panics, and an error points inside the text (or just past it).
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,80}") {
            if let Err(e) = parse(&text) {
                prop_assert!(e.position >= 1 && e.position <= text.chars().count() + 1);
            }
        }

        /// Cutting a valid rule short or dropping a token gives an error, never a panic.
        #[test]
        fn damaged_rules_fail_cleanly(rule in rule(), cut in 0usize..200) {
            let text = rule.to_string();
            let chars: Vec<char> = text.chars().collect();
            let cut = cut % chars.len();
            let damaged: String = chars[..cut].iter().collect();
            if let Err(e) = parse(&damaged) {
                prop_assert!(e.position <= damaged.chars().count() + 1);
            }
        }
    }
}
