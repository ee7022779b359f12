//! A small streaming reader for the subset of EDN that Jepsen and Knossos histories use.
//!
//! Owns the [`Edn`] value type, the byte-level [`Reader`] (which pulls from any
//! [`std::io::Read`] in chunks and tracks line and column, so a 1 GiB `history.edn` is
//! never held in memory), conversion to JSON values and rendering back to EDN text. It does
//! not know what an op is; `history::import` maps EDN forms to [`crate::history::Op`]s.
//!
//! Why not a crate: the EDN crates on crates.io (`edn-format`, the deprecated `edn-rs`)
//! parse a whole string into one value with no positions, so they can neither stream the
//! elements of a top-level vector nor report the line on which each op starts.
//!
//! Supported: `nil`, `true`/`false`, integers (with sign and `N` suffix), floats (with
//! exponent and `M` suffix), ratios (read as floats), strings with escapes, characters,
//! keywords (also namespaced), symbols, lists, vectors, maps, sets, `;` comments, commas
//! as whitespace, `#_` discard and tagged literals (`#inst "…"`, `#jepsen.history.Op{…}`),
//! which keep their tag but are read through as their inner value by [`Edn::to_json`].

use serde_json::{Map, Number, Value};
use std::fmt;
use std::io::{self, Read};

/// How deeply collections may nest. Histories nest three or four levels; the limit keeps
/// the recursive descent from overflowing the stack on hostile input.
pub const MAX_DEPTH: usize = 256;

/// Size of the chunks pulled from the underlying reader.
const CHUNK_BYTES: usize = 64 * 1024;

/// One EDN value.
#[derive(Debug, Clone, PartialEq)]
pub enum Edn {
    Nil,
    Bool(bool),
    /// Wide enough for both `i64` and `u64` values (Jepsen writes big ones with `N`).
    Int(i128),
    Float(f64),
    Str(String),
    Char(char),
    /// A keyword without its leading colon: `:cas` is `Keyword("cas")`, `:a/b` is
    /// `Keyword("a/b")`.
    Keyword(String),
    Symbol(String),
    List(Vec<Edn>),
    Vector(Vec<Edn>),
    /// Entries in source order; duplicate keys are kept (callers decide).
    Map(Vec<(Edn, Edn)>),
    Set(Vec<Edn>),
    /// `#tag value`, tag without the `#`.
    Tagged(String, Box<Edn>),
}

impl Edn {
    /// The value under a tag chain (`#a #b x` is `x`); itself for untagged values.
    pub fn untagged(&self) -> &Edn {
        let mut v = self;
        while let Edn::Tagged(_, inner) = v {
            v = inner;
        }
        v
    }

    /// The name of a keyword, symbol or string (`:cas`, `cas` and `"cas"` all give
    /// `"cas"`); `None` for anything else.
    pub fn as_name(&self) -> Option<&str> {
        match self.untagged() {
            Edn::Keyword(s) | Edn::Symbol(s) | Edn::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A short description of the value's kind for error messages ("a vector").
    pub fn kind(&self) -> &'static str {
        match self {
            Edn::Nil => "nil",
            Edn::Bool(_) => "a boolean",
            Edn::Int(_) => "an integer",
            Edn::Float(_) => "a float",
            Edn::Str(_) => "a string",
            Edn::Char(_) => "a character",
            Edn::Keyword(_) => "a keyword",
            Edn::Symbol(_) => "a symbol",
            Edn::List(_) => "a list",
            Edn::Vector(_) => "a vector",
            Edn::Map(_) => "a map",
            Edn::Set(_) => "a set",
            Edn::Tagged(_, inner) => inner.kind(),
        }
    }

    /// Convert to JSON the way histories need it: keywords and symbols become strings
    /// without the colon, nil becomes null, lists, vectors and sets become arrays, maps
    /// become objects (keys rendered as names where they have one, else as EDN text), tags
    /// are dropped. Fails only for numbers JSON cannot carry (NaN, infinities).
    pub fn to_json(&self) -> Result<Value, String> {
        self.clone().into_json()
    }

    /// [`Edn::to_json`], moving strings instead of copying them.
    pub fn into_json(self) -> Result<Value, String> {
        Ok(match self {
            Edn::Nil => Value::Null,
            Edn::Bool(b) => Value::Bool(b),
            Edn::Int(i) => Value::Number(if let Ok(i) = i64::try_from(i) {
                i.into()
            } else {
                u64::try_from(i)
                    .map_err(|_| format!("integer {i} does not fit in 64 bits"))?
                    .into()
            }),
            Edn::Float(f) => Value::Number(
                Number::from_f64(f).ok_or_else(|| format!("{f} cannot be represented in JSON"))?,
            ),
            Edn::Str(s) | Edn::Keyword(s) | Edn::Symbol(s) => Value::String(s),
            Edn::Char(c) => Value::String(c.to_string()),
            Edn::List(items) | Edn::Vector(items) | Edn::Set(items) => Value::Array(
                items
                    .into_iter()
                    .map(Edn::into_json)
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Edn::Map(entries) => {
                let mut map = Map::new();
                for (k, v) in entries {
                    let key = match k.into_untagged() {
                        Edn::Keyword(s) | Edn::Symbol(s) | Edn::Str(s) => s,
                        other => other.to_string(),
                    };
                    map.insert(key, v.into_json()?);
                }
                Value::Object(map)
            }
            Edn::Tagged(_, inner) => inner.into_json()?,
        })
    }

    /// The value under a tag chain, by value.
    pub fn into_untagged(self) -> Edn {
        let mut v = self;
        while let Edn::Tagged(_, inner) = v {
            v = *inner;
        }
        v
    }
}

/// Renders canonical EDN text (keywords with their colon, strings quoted and escaped), so
/// that `Edn` → text → `Edn` is the identity.
impl fmt::Display for Edn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn seq(f: &mut fmt::Formatter<'_>, open: &str, items: &[Edn], close: &str) -> fmt::Result {
            f.write_str(open)?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                write!(f, "{item}")?;
            }
            f.write_str(close)
        }
        match self {
            Edn::Nil => f.write_str("nil"),
            Edn::Bool(b) => write!(f, "{b}"),
            Edn::Int(i) => write!(f, "{i}"),
            Edn::Float(x) => write_float(f, *x),
            Edn::Str(s) => write_string(f, s),
            Edn::Char(c) => match c {
                '\n' => f.write_str("\\newline"),
                ' ' => f.write_str("\\space"),
                '\t' => f.write_str("\\tab"),
                '\r' => f.write_str("\\return"),
                c => write!(f, "\\{c}"),
            },
            Edn::Keyword(k) => write!(f, ":{k}"),
            Edn::Symbol(s) => f.write_str(s),
            Edn::List(items) => seq(f, "(", items, ")"),
            Edn::Vector(items) => seq(f, "[", items, "]"),
            Edn::Set(items) => seq(f, "#{", items, "}"),
            Edn::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k} {v}")?;
                }
                f.write_str("}")
            }
            Edn::Tagged(tag, inner) => write!(f, "#{tag} {inner}"),
        }
    }
}

/// Floats always carry a `.` or an exponent so they read back as floats, not integers.
pub(crate) fn write_float(f: &mut impl fmt::Write, x: f64) -> fmt::Result {
    if x.is_nan() {
        f.write_str("##NaN")
    } else if x.is_infinite() {
        f.write_str(if x > 0.0 { "##Inf" } else { "##-Inf" })
    } else {
        let s = x.to_string();
        if s.contains(['.', 'e', 'E']) {
            f.write_str(&s)
        } else {
            write!(f, "{s}.0")
        }
    }
}

/// An EDN string literal; control characters other than the named escapes become `\uXXXX`.
pub(crate) fn write_string(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c if (c as u32) < 0x20 || c == '\u{7f}' => write!(f, "\\u{:04x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// A position in the source: 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// A read failure: where, and what rule was broken (or the I/O error).
#[derive(Debug)]
pub struct EdnError {
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for EdnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.pos.line, self.pos.column, self.message)
    }
}

impl std::error::Error for EdnError {}

/// Reads EDN forms one at a time from a byte stream.
///
/// Besides [`Reader::read`] for whole forms it exposes [`Reader::peek_significant`] and
/// [`Reader::bump`] so a caller can step *into* a top-level collection and stream its
/// elements instead of materialising the whole history.
pub struct Reader<R> {
    src: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
    line: usize,
    column: usize,
    /// Reused token buffer for atoms.
    scratch: Vec<u8>,
}

impl<'a> Reader<&'a [u8]> {
    /// A reader over bytes in memory.
    pub fn from_bytes(bytes: &'a [u8]) -> Self {
        Reader::new(bytes)
    }
}

/// Bytes that end a token (symbol, keyword, number, character).
fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t' | b'\n' | b'\r' | b',' | b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'"' | b';'
    ) || b == 0x0c
}

/// Characters, not bytes: UTF-8 continuation bytes do not start a column.
fn count_chars(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b & 0xC0 != 0x80).count()
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b',' | 0x0c)
}

impl<R: Read> Reader<R> {
    pub fn new(src: R) -> Self {
        Reader {
            src,
            buf: vec![0; CHUNK_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            line: 1,
            column: 1,
            scratch: Vec::with_capacity(64),
        }
    }

    /// Where the next byte will be read from.
    pub fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }

    fn err_at(&self, pos: Pos, message: impl Into<String>) -> EdnError {
        EdnError {
            pos,
            message: message.into(),
        }
    }

    fn io_err(&self, e: io::Error) -> EdnError {
        self.err_at(self.pos(), format!("read error: {e}"))
    }

    /// The next byte without consuming it; `None` at end of input.
    #[inline]
    pub fn peek(&mut self) -> Result<Option<u8>, EdnError> {
        if self.start < self.end {
            Ok(Some(self.buf[self.start]))
        } else {
            self.refill()
        }
    }

    /// Read the next chunk once the current one is used up.
    #[cold]
    fn refill(&mut self) -> Result<Option<u8>, EdnError> {
        if self.eof {
            return Ok(None);
        }
        loop {
            match self.src.read(&mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(None);
                }
                Ok(n) => {
                    self.start = 0;
                    self.end = n;
                    return Ok(Some(self.buf[0]));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_err(e)),
            }
        }
    }

    /// Consume one byte (which the caller has peeked), keeping line and column current.
    #[inline]
    pub fn bump(&mut self) -> Result<Option<u8>, EdnError> {
        let b = self.peek()?;
        if b.is_some() {
            self.advance(1);
        }
        Ok(b)
    }

    /// Consume `n` buffered bytes, keeping line and column current.
    #[inline]
    fn advance(&mut self, n: usize) {
        let chunk = &self.buf[self.start..self.start + n];
        match chunk.iter().rposition(|&b| b == b'\n') {
            Some(last) => {
                self.line += chunk.iter().filter(|&&b| b == b'\n').count();
                self.column = 1 + count_chars(&chunk[last + 1..]);
            }
            None => self.column += count_chars(chunk),
        }
        self.start += n;
    }

    /// Consume bytes while `keep` holds for them (appending them to `out`), scanning whole
    /// buffered chunks at a time; stops before the first other byte or at end of input.
    #[inline]
    fn take_while(
        &mut self,
        keep: impl Fn(u8) -> bool,
        mut out: Option<&mut Vec<u8>>,
    ) -> Result<(), EdnError> {
        loop {
            if self.start == self.end && self.refill()?.is_none() {
                return Ok(());
            }
            let avail = &self.buf[self.start..self.end];
            let n = avail.iter().position(|&b| !keep(b)).unwrap_or(avail.len());
            if let Some(out) = out.as_deref_mut() {
                out.extend_from_slice(&avail[..n]);
            }
            let all = n == avail.len();
            self.advance(n);
            if !all {
                return Ok(());
            }
        }
    }

    /// Skip whitespace, commas, `;` comments and `#_` discarded forms; then peek.
    pub fn peek_significant(&mut self) -> Result<Option<u8>, EdnError> {
        loop {
            match self.peek()? {
                Some(b) if is_whitespace(b) => self.take_while(is_whitespace, None)?,
                Some(b';') => self.take_while(|b| b != b'\n', None)?,
                Some(b'#') => {
                    // `#_` discards the next form; any other `#` starts a form.
                    if !self.try_discard(0)? {
                        return Ok(Some(b'#'));
                    }
                }
                other => return Ok(other),
            }
        }
    }

    /// If the input is at `#_`, consume it and the form it discards and return true.
    /// Needs two bytes of lookahead; the chunk buffer is refilled by compaction.
    fn try_discard(&mut self, depth: usize) -> Result<bool, EdnError> {
        if self.end - self.start < 2 && !self.eof {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            loop {
                match self.src.read(&mut self.buf[self.end..]) {
                    Ok(0) => {
                        self.eof = true;
                        break;
                    }
                    Ok(n) => {
                        self.end += n;
                        if self.end >= 2 {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(self.io_err(e)),
                }
            }
        }
        if self.end - self.start >= 2 && self.buf[self.start + 1] == b'_' {
            let pos = self.pos();
            self.bump()?;
            self.bump()?;
            if self.read_at(depth)?.is_none() {
                return Err(self.err_at(pos, "#_ at end of input discards nothing"));
            }
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Read the next whole form; `None` at end of input. The position is where the form
    /// starts. A stray closing delimiter is an error.
    pub fn read(&mut self) -> Result<Option<(Pos, Edn)>, EdnError> {
        self.read_at(0)
    }

    fn read_at(&mut self, depth: usize) -> Result<Option<(Pos, Edn)>, EdnError> {
        let Some(b) = self.peek_significant()? else {
            return Ok(None);
        };
        let pos = self.pos();
        if depth >= MAX_DEPTH {
            return Err(self.err_at(pos, format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let value = match b {
            b'(' => {
                self.bump()?;
                Edn::List(self.read_seq(pos, b')', depth)?)
            }
            b'[' => {
                self.bump()?;
                Edn::Vector(self.read_seq(pos, b']', depth)?)
            }
            b'{' => {
                self.bump()?;
                self.read_map(pos, depth)?
            }
            b')' | b']' | b'}' => {
                return Err(self.err_at(pos, format!("unexpected '{}'", b as char)));
            }
            b'"' => {
                self.bump()?;
                Edn::Str(self.read_string(pos)?)
            }
            b'\\' => {
                self.bump()?;
                self.read_char(pos)?
            }
            b'#' => {
                self.bump()?;
                self.read_dispatch(pos, depth)?
            }
            b':' => {
                self.bump()?;
                let token = self.read_token()?;
                if token.is_empty() || token.starts_with(':') || token.ends_with('/') {
                    return Err(self.err_at(pos, format!("invalid keyword ':{token}'")));
                }
                Edn::Keyword(token)
            }
            _ => self.read_atom(pos)?,
        };
        Ok(Some((pos, value)))
    }

    fn read_seq(&mut self, open: Pos, close: u8, depth: usize) -> Result<Vec<Edn>, EdnError> {
        let mut items = Vec::new();
        self.read_items(open, close, depth, |v| items.push(v))?;
        Ok(items)
    }

    /// Read the elements of a collection up to `close`, handing each to `push`.
    fn read_items(
        &mut self,
        open: Pos,
        close: u8,
        depth: usize,
        mut push: impl FnMut(Edn),
    ) -> Result<(), EdnError> {
        loop {
            match self.peek_significant()? {
                None => {
                    return Err(self.err_at(
                        self.pos(),
                        format!(
                            "end of input inside the collection opened at line {} column {} (missing '{}')",
                            open.line, open.column, close as char
                        ),
                    ))
                }
                Some(b) if b == close => {
                    self.bump()?;
                    return Ok(());
                }
                Some(b @ (b')' | b']' | b'}')) => {
                    return Err(self.err_at(
                        self.pos(),
                        format!(
                            "'{}' closes the collection opened at line {} column {}, which needs '{}'",
                            b as char, open.line, open.column, close as char
                        ),
                    ))
                }
                Some(_) => {
                    if let Some((_, v)) = self.read_at(depth + 1)? {
                        push(v);
                    }
                }
            }
        }
    }

    fn read_map(&mut self, open: Pos, depth: usize) -> Result<Edn, EdnError> {
        let mut entries = Vec::new();
        let mut key = None;
        let mut forms = 0;
        self.read_items(open, b'}', depth, |v| {
            forms += 1;
            match key.take() {
                None => key = Some(v),
                Some(k) => entries.push((k, v)),
            }
        })?;
        if key.is_some() {
            return Err(self.err_at(
                open,
                format!("map has an odd number of forms ({forms}): a key without a value"),
            ));
        }
        Ok(Edn::Map(entries))
    }

    fn read_dispatch(&mut self, pos: Pos, depth: usize) -> Result<Edn, EdnError> {
        match self.peek()? {
            Some(b'{') => {
                self.bump()?;
                Ok(Edn::Set(self.read_seq(pos, b'}', depth)?))
            }
            Some(b'#') => {
                self.bump()?;
                let token = self.read_token()?;
                match token.as_str() {
                    "Inf" => Ok(Edn::Float(f64::INFINITY)),
                    "-Inf" => Ok(Edn::Float(f64::NEG_INFINITY)),
                    "NaN" => Ok(Edn::Float(f64::NAN)),
                    _ => Err(self.err_at(pos, format!("unknown symbolic value ##{token}"))),
                }
            }
            Some(b) if b.is_ascii_alphabetic() => {
                let tag = self.read_token()?;
                match self.read_at(depth + 1)? {
                    Some((_, inner)) => Ok(Edn::Tagged(tag, Box::new(inner))),
                    None => {
                        Err(self.err_at(pos, format!("tag #{tag} at end of input has no value")))
                    }
                }
            }
            Some(b) => Err(self.err_at(
                pos,
                format!("unsupported dispatch '#{}'", (b as char).escape_default()),
            )),
            None => Err(self.err_at(pos, "'#' at end of input")),
        }
    }

    /// Bytes up to the next delimiter, as UTF-8.
    fn read_token(&mut self) -> Result<String, EdnError> {
        let pos = self.pos();
        let mut bytes = Vec::new();
        self.take_while(|b| !is_delimiter(b), Some(&mut bytes))?;
        String::from_utf8(bytes).map_err(|_| self.err_at(pos, "invalid UTF-8 in a symbol"))
    }

    /// A symbol-like token (number, `nil`, symbol), parsed from a reused scratch buffer so
    /// that numbers, the most common atoms, allocate nothing.
    fn read_atom(&mut self, pos: Pos) -> Result<Edn, EdnError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let result = self
            .take_while(|b| !is_delimiter(b), Some(&mut scratch))
            .and_then(|()| match std::str::from_utf8(&scratch) {
                Ok(token) => self.parse_atom(pos, token),
                Err(_) => Err(self.err_at(pos, "invalid UTF-8 in a symbol")),
            });
        self.scratch = scratch;
        result
    }

    fn read_string(&mut self, open: Pos) -> Result<String, EdnError> {
        let mut bytes = Vec::new();
        loop {
            self.take_while(|b| b != b'"' && b != b'\\', Some(&mut bytes))?;
            let esc_pos = self.pos();
            match self.bump()? {
                None => {
                    return Err(self.err_at(
                        open,
                        "unterminated string (end of input before the closing '\"')",
                    ))
                }
                Some(b'"') => break,
                Some(b'\\') => {
                    let c = match self.bump()? {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'n') => '\n',
                        Some(b't') => '\t',
                        Some(b'r') => '\r',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'u') => {
                            let mut hex = String::with_capacity(4);
                            for _ in 0..4 {
                                match self.bump()? {
                                    Some(h) if h.is_ascii_hexdigit() => hex.push(h as char),
                                    _ => {
                                        return Err(self.err_at(
                                            esc_pos,
                                            "\\u must be followed by 4 hex digits",
                                        ))
                                    }
                                }
                            }
                            u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or_else(|| {
                                    self.err_at(esc_pos, format!("\\u{hex} is not a character"))
                                })?
                        }
                        Some(other) => {
                            return Err(self.err_at(
                                esc_pos,
                                format!(
                                    "unknown escape '\\{}' in string",
                                    (other as char).escape_default()
                                ),
                            ))
                        }
                        None => {
                            return Err(self.err_at(
                                open,
                                "unterminated string (end of input before the closing '\"')",
                            ))
                        }
                    };
                    let mut utf8 = [0; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
                Some(b) => bytes.push(b),
            }
        }
        String::from_utf8(bytes).map_err(|_| self.err_at(open, "invalid UTF-8 in string"))
    }

    fn read_char(&mut self, pos: Pos) -> Result<Edn, EdnError> {
        // The first character after the backslash is taken even if it is a delimiter
        // (`\(`, `\ ` are not valid EDN, but `\(` is in Clojure; accept it).
        let mut token = String::new();
        if let Some(b) = self.peek()? {
            if is_delimiter(b) {
                self.bump()?;
                token.push(b as char);
            }
        }
        token.push_str(&self.read_token()?);
        let c = match token.as_str() {
            "newline" => '\n',
            "space" => ' ',
            "tab" => '\t',
            "return" => '\r',
            "formfeed" => '\u{c}',
            "backspace" => '\u{8}',
            t if t.len() == 5 && t.starts_with('u') => u32::from_str_radix(&t[1..], 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| self.err_at(pos, format!("invalid character \\{t}")))?,
            t => {
                let mut chars = t.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => c,
                    _ => return Err(self.err_at(pos, format!("invalid character \\{t}"))),
                }
            }
        };
        Ok(Edn::Char(c))
    }

    fn parse_atom(&self, pos: Pos, token: &str) -> Result<Edn, EdnError> {
        let bytes = token.as_bytes();
        if bytes.is_empty() {
            return Err(self.err_at(pos, "expected a form"));
        }
        let numeric = bytes[0].is_ascii_digit()
            || (matches!(bytes[0], b'+' | b'-') && bytes.len() > 1 && bytes[1].is_ascii_digit());
        if numeric {
            return parse_number(token).map_err(|m| self.err_at(pos, m));
        }
        Ok(match token {
            "nil" => Edn::Nil,
            "true" => Edn::Bool(true),
            "false" => Edn::Bool(false),
            _ => Edn::Symbol(token.to_owned()),
        })
    }
}

/// Integers (optional sign, `N` suffix), floats (`.`, exponent, `M` suffix) and ratios.
fn parse_number(token: &str) -> Result<Edn, String> {
    let invalid = || format!("invalid number '{token}'");
    if let Some(digits) = token.strip_suffix('N') {
        return parse_int(digits, token);
    }
    if let Some((num, den)) = token.split_once('/') {
        let n = parse_int(num, token)?;
        let d = parse_int(den, token)?;
        return match (n, d) {
            (Edn::Int(_), Edn::Int(0)) => Err(format!("ratio '{token}' divides by zero")),
            (Edn::Int(n), Edn::Int(d)) => Ok(Edn::Float(n as f64 / d as f64)),
            _ => Err(invalid()),
        };
    }
    let body = token.strip_suffix('M').unwrap_or(token);
    if body.contains(['.', 'e', 'E']) || body.len() < token.len() {
        let ok_chars = body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
        return match body.parse::<f64>() {
            Ok(f) if ok_chars => Ok(Edn::Float(f)),
            _ => Err(invalid()),
        };
    }
    parse_int(body, token)
}

fn parse_int(digits: &str, token: &str) -> Result<Edn, String> {
    let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
    if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid number '{token}'"));
    }
    digits
        .strip_prefix('+')
        .unwrap_or(digits)
        .parse::<i128>()
        .ok()
        .filter(|i| i64::try_from(*i).is_ok() || u64::try_from(*i).is_ok())
        .map(Edn::Int)
        .ok_or_else(|| format!("integer '{token}' does not fit in 64 bits"))
}

/// Parse exactly one form from a string (convenience for tests and small inputs).
pub fn parse_one(text: &str) -> Result<Edn, EdnError> {
    let mut r = Reader::from_bytes(text.as_bytes());
    let Some((_, v)) = r.read()? else {
        return Err(r.err_at(r.pos(), "no form in input"));
    };
    if r.peek_significant()?.is_some() {
        return Err(r.err_at(r.pos(), "unexpected data after the form"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kw(s: &str) -> Edn {
        Edn::Keyword(s.into())
    }

    #[test]
    fn reads_scalars() {
        assert_eq!(parse_one("nil").unwrap(), Edn::Nil);
        assert_eq!(parse_one("true").unwrap(), Edn::Bool(true));
        assert_eq!(parse_one("false").unwrap(), Edn::Bool(false));
        assert_eq!(parse_one("42").unwrap(), Edn::Int(42));
        assert_eq!(parse_one("-7").unwrap(), Edn::Int(-7));
        assert_eq!(parse_one("+7").unwrap(), Edn::Int(7));
        assert_eq!(parse_one("12N").unwrap(), Edn::Int(12));
        assert_eq!(parse_one("1.5").unwrap(), Edn::Float(1.5));
        assert_eq!(parse_one("-2e3").unwrap(), Edn::Float(-2000.0));
        assert_eq!(parse_one("1.25M").unwrap(), Edn::Float(1.25));
        assert_eq!(parse_one("1/4").unwrap(), Edn::Float(0.25));
        assert_eq!(parse_one(":cas").unwrap(), kw("cas"));
        assert_eq!(parse_one(":jepsen/op").unwrap(), kw("jepsen/op"));
        assert_eq!(parse_one(":timed-out").unwrap(), kw("timed-out"));
        assert_eq!(
            parse_one("foo.bar/baz").unwrap(),
            Edn::Symbol("foo.bar/baz".into())
        );
        assert_eq!(parse_one("-").unwrap(), Edn::Symbol("-".into()));
        assert_eq!(parse_one("\\a").unwrap(), Edn::Char('a'));
        assert_eq!(parse_one("\\newline").unwrap(), Edn::Char('\n'));
        assert_eq!(parse_one("\\u00e9").unwrap(), Edn::Char('é'));
    }

    #[test]
    fn reads_strings_with_escapes() {
        assert_eq!(
            parse_one(r#""a\"b\\c\nd\te\u00e9""#).unwrap(),
            Edn::Str("a\"b\\c\nd\te\u{e9}".into())
        );
        assert_eq!(
            parse_one("\"héllo ☃\"").unwrap(),
            Edn::Str("héllo ☃".into())
        );
        assert_eq!(
            parse_one("\"spans\ntwo lines\"").unwrap(),
            Edn::Str("spans\ntwo lines".into())
        );
    }

    #[test]
    fn reads_collections_comments_commas_and_discards() {
        let v = parse_one(
            "; leading comment\n[1, 2 ; two\n (3) #{:a} {:k \"v\", :n nil} #_ ignored #_[1 2] 4]",
        )
        .unwrap();
        assert_eq!(
            v,
            Edn::Vector(vec![
                Edn::Int(1),
                Edn::Int(2),
                Edn::List(vec![Edn::Int(3)]),
                Edn::Set(vec![kw("a")]),
                Edn::Map(vec![(kw("k"), Edn::Str("v".into())), (kw("n"), Edn::Nil)]),
                Edn::Int(4),
            ])
        );
    }

    #[test]
    fn reads_tagged_literals_through_to_their_value() {
        let v = parse_one("#inst \"2017-01-01T00:00:00Z\"").unwrap();
        assert_eq!(
            v,
            Edn::Tagged(
                "inst".into(),
                Box::new(Edn::Str("2017-01-01T00:00:00Z".into()))
            )
        );
        assert_eq!(v.to_json().unwrap(), json!("2017-01-01T00:00:00Z"));
        let op = parse_one("#jepsen.history.Op{:index 0, :f :read}").unwrap();
        assert!(matches!(op.untagged(), Edn::Map(m) if m.len() == 2));
    }

    #[test]
    fn converts_to_json_as_histories_need() {
        let v = parse_one("[[:read :x nil] [:write :y 3] #{1} {:a 1, \"b\" 2, 3 4}]").unwrap();
        assert_eq!(
            v.to_json().unwrap(),
            json!([["read", "x", null], ["write", "y", 3], [1], {"a": 1, "b": 2, "3": 4}])
        );
        assert!(parse_one("##NaN").unwrap().to_json().is_err());
    }

    #[test]
    fn display_renders_text_that_reads_back_to_the_same_value() {
        for text in [
            "[:temporarily-unavailable nil]",
            "{:a 1, :b [1.5 \"x\\\"y\" \\space], :c #{:n1 :n2}}",
            "(1 -2 3.0 true nil sym :ns/kw)",
            "#inst \"2017\"",
            "\"ctl\\u0001\"",
        ] {
            let v = parse_one(text).unwrap();
            assert_eq!(parse_one(&v.to_string()).unwrap(), v, "{text}");
        }
        assert_eq!(
            parse_one("[:temporarily-unavailable nil]")
                .unwrap()
                .to_string(),
            "[:temporarily-unavailable nil]"
        );
    }

    #[test]
    fn reports_positions_of_forms_across_lines() {
        let mut r = Reader::from_bytes(b"{:a 1}\n  ; c\n  {:b\n 2}\n:k");
        let (p1, _) = r.read().unwrap().unwrap();
        let (p2, v2) = r.read().unwrap().unwrap();
        let (p3, _) = r.read().unwrap().unwrap();
        assert_eq!(p1, Pos { line: 1, column: 1 });
        assert_eq!(p2, Pos { line: 3, column: 3 });
        assert_eq!(v2, Edn::Map(vec![(kw("b"), Edn::Int(2))]));
        assert_eq!(p3, Pos { line: 5, column: 1 });
        assert!(r.read().unwrap().is_none());
    }

    fn err(text: &str) -> EdnError {
        parse_one(text).unwrap_err()
    }

    #[test]
    fn rejects_an_unterminated_string_at_its_opening_quote() {
        let e = err("[1\n  \"abc");
        assert_eq!(e.pos, Pos { line: 2, column: 3 });
        assert!(e.message.contains("unterminated string"), "{e}");
    }

    #[test]
    fn rejects_an_unclosed_vector_naming_where_it_opened() {
        let e = err("[{:a 1}\n {:b 2}");
        assert!(e.message.contains("line 1 column 1"), "{e}");
        assert!(e.message.contains("missing ']'"), "{e}");
    }

    #[test]
    fn rejects_a_mismatched_closing_delimiter() {
        let e = err("[1 2)");
        assert_eq!(e.pos, Pos { line: 1, column: 5 });
        assert!(e.message.contains("needs ']'"), "{e}");
    }

    #[test]
    fn rejects_a_map_with_a_missing_value() {
        let e = err("\n {:a 1 :b}");
        assert_eq!(e.pos, Pos { line: 2, column: 2 });
        assert!(e.message.contains("odd number"), "{e}");
    }

    #[test]
    fn rejects_bad_tokens_with_their_column() {
        let e = err("[1 12abc]");
        assert_eq!(e.pos, Pos { line: 1, column: 4 });
        assert!(e.message.contains("invalid number '12abc'"), "{e}");
        let e = err("[99999999999999999999]");
        assert!(e.message.contains("does not fit in 64 bits"), "{e}");
        let e = err("[: x]");
        assert!(e.message.contains("invalid keyword"), "{e}");
        let e = err("\"bad \\q escape\"");
        assert_eq!(e.pos, Pos { line: 1, column: 6 });
        assert!(e.message.contains("unknown escape"), "{e}");
        let e = err("]");
        assert!(e.message.contains("unexpected ']'"), "{e}");
        let e = err("1 2");
        assert!(e.message.contains("after the form"), "{e}");
    }

    #[test]
    fn counts_columns_in_characters_not_bytes() {
        let e = err("\"é☃\" ]");
        assert_eq!(e.pos, Pos { line: 1, column: 6 });
    }

    #[test]
    fn rejects_nesting_beyond_the_depth_limit() {
        let deep = "[".repeat(MAX_DEPTH + 10);
        let e = err(&deep);
        assert!(e.message.contains("nested deeper"), "{e}");
    }

    #[test]
    fn reads_across_chunk_boundaries() {
        // Forms straddling the 64 KiB chunk edge, including a `#_` split across it.
        let mut text = String::from("[");
        while text.len() < CHUNK_BYTES - 1 {
            text.push_str("1 ");
        }
        text.truncate(CHUNK_BYTES - 1);
        text.push_str("#_ 5 \"straddling string\" :kw]");
        let v = parse_one(&text).unwrap();
        let Edn::Vector(items) = v else {
            panic!("not a vector")
        };
        assert_eq!(items.last(), Some(&kw("kw")));
        assert_eq!(items[items.len() - 2], Edn::Str("straddling string".into()));
        assert!(!items.contains(&Edn::Int(5)));
    }
}
