//! How deeply the lists and maps of a YAML text nest, found in one linear
//! pass before the text is parsed.
//!
//! libyaml's scanner (under serde_yaml) does work proportional to the flow
//! nesting for every token, so `[[[[...` up to the plan size limit took
//! minutes to be refused. This pass follows the scanner's own rules (flow
//! indicators, quoted, plain and block scalars, comments, block indentation)
//! closely enough to count the nesting the parser will see, and never less:
//! where it cannot tell, it counts an indicator as one.
//!
//! Must not: look back, or keep flow state past the limit: it runs on
//! hostile input, once over the text.

/// Lists and maps may nest this deep. A valid plan has at most 19 levels
/// (the plan, `vars` and a value nested to vars::MAX_DEPTH), and with 32 the
/// parser's work per token stays small.
pub const MAX_NESTING: usize = 32;

/// Nesting deeper than the limit: the deepest level found, and the 1-based
/// line and column where the first level beyond the limit starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooDeep {
    pub depth: usize,
    pub limit: usize,
    pub at: (usize, usize),
}

impl TooDeep {
    /// For a message that carries the position in front (`file:line:col:`).
    pub fn message(&self) -> String {
        self.message_at("here")
    }
    /// `place` says where the first level past the limit starts.
    pub fn message_at(&self, place: &str) -> String {
        format!(
            "lists and maps nested {} levels deep; at most {} are allowed (level {} starts {place})",
            self.depth,
            self.limit,
            self.limit + 1
        )
    }
}

/// Refuses `text` when its lists and maps nest deeper than `limit`.
pub fn check(text: &str, limit: usize) -> Result<(), TooDeep> {
    let mut s = Scanner::new(text.as_bytes(), limit);
    s.run();
    match s.first_too_deep {
        None => Ok(()),
        Some(at) => Err(TooDeep {
            depth: s.max_depth,
            limit,
            at,
        }),
    }
}

/// The deepest nesting in `text` (for tests).
#[cfg(test)]
pub(super) fn depth(text: &str) -> usize {
    let mut s = Scanner::new(text.as_bytes(), usize::MAX);
    s.run();
    s.max_depth
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Seq,
    Map,
}

/// A block collection: its indentation column, and for a mapping whether a
/// sequence at the same column (`key:\n- item`) is open inside it.
struct Block {
    indent: isize,
    kind: Kind,
    indentless: bool,
}

/// A possible simple key (`key:` without `?`), as libyaml keeps one per flow
/// level: it must end with `:` on the same line within 1024 bytes.
#[derive(Clone, Copy)]
struct Key {
    possible: bool,
    line: usize,
    index: usize,
    col: usize,
}

/// A flow level (the first is the block context): its pending simple key,
/// whether it is a sequence, whether a `key: value` pair inside that
/// sequence (a one-entry mapping) is open, the deepest level reached while
/// it was open, and that of its last nested collection and where it ended.
/// A collection turns out to be a key only at its `:`, when the mapping it
/// belongs to starts; the last child's depth is what then gets one more.
struct Flow {
    key: Key,
    seq: bool,
    pair: bool,
    peak: usize,
    child_peak: usize,
    child_end: usize,
}

impl Flow {
    fn new(seq: bool) -> Self {
        Flow {
            key: NO_KEY,
            seq,
            pair: false,
            peak: 0,
            child_peak: 0,
            child_end: 0,
        }
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    line: usize,
    col: usize,
    blocks: Vec<Block>,
    indentless: usize,
    flows: Vec<Flow>,
    /// Flow levels past the limit, only counted: the text is refused
    /// anyway, and a megabyte of `[` must not cost a stack entry each.
    overflow: usize,
    pairs: usize,
    allowed: bool,
    limit: usize,
    max_depth: usize,
    first_too_deep: Option<(usize, usize)>,
}

const NO_KEY: Key = Key {
    possible: false,
    line: 0,
    index: 0,
    col: 0,
};

impl<'a> Scanner<'a> {
    fn new(b: &'a [u8], limit: usize) -> Self {
        Scanner {
            b,
            i: 0,
            line: 0,
            col: 0,
            blocks: Vec::new(),
            indentless: 0,
            flows: vec![Flow::new(false)],
            overflow: 0,
            pairs: 0,
            allowed: true,
            limit,
            max_depth: 0,
            first_too_deep: None,
        }
    }

    // Reading: bytes past the end read as 0, which libyaml treats as the end.

    fn at(&self, k: usize) -> u8 {
        self.b.get(self.i + k).copied().unwrap_or(0)
    }
    fn eof(&self) -> bool {
        self.i >= self.b.len()
    }
    fn is_break(&self, k: usize) -> bool {
        match self.at(k) {
            b'\r' | b'\n' => true,
            0xC2 => self.at(k + 1) == 0x85,
            0xE2 => self.at(k + 1) == 0x80 && matches!(self.at(k + 2), 0xA8 | 0xA9),
            _ => false,
        }
    }
    fn is_breakz(&self, k: usize) -> bool {
        self.i + k >= self.b.len() || self.is_break(k)
    }
    fn is_blank(&self, k: usize) -> bool {
        matches!(self.at(k), b' ' | b'\t')
    }
    fn is_blankz(&self, k: usize) -> bool {
        self.is_blank(k) || self.is_breakz(k)
    }
    fn is_alpha(&self) -> bool {
        matches!(self.at(0), b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z' | b'_' | b'-')
    }
    fn doc_marker(&self) -> bool {
        self.col == 0
            && ((self.at(0) == b'-' && self.at(1) == b'-' && self.at(2) == b'-')
                || (self.at(0) == b'.' && self.at(1) == b'.' && self.at(2) == b'.'))
            && self.is_blankz(3)
    }

    /// One character; columns count characters, the index bytes, as libyaml's.
    fn advance(&mut self) {
        if self.eof() {
            return;
        }
        let width = match self.b[self.i] {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        self.i = (self.i + width).min(self.b.len());
        self.col += 1;
    }
    fn skip_line(&mut self) {
        if self.at(0) == b'\r' && self.at(1) == b'\n' {
            self.i += 2;
        } else {
            self.advance();
        }
        self.col = 0;
        self.line += 1;
    }
    fn skip_to_break(&mut self) {
        while !self.is_breakz(0) {
            self.advance();
        }
    }

    // Depth: block collections, open indentless sequences, flow collections
    // and one-entry mappings inside flow sequences.

    fn depth(&self) -> usize {
        self.blocks.len() + self.indentless + self.flow_level() + self.pairs
    }
    /// Depth `d` is reached at 0-based `line`, `col`.
    fn reach(&mut self, d: usize, line: usize, col: usize) {
        self.max_depth = self.max_depth.max(d);
        if d > self.limit && self.first_too_deep.is_none() {
            self.first_too_deep = Some((line + 1, col + 1));
        }
        let top = self
            .flows
            .last_mut()
            .expect("the block context is never popped");
        top.peak = top.peak.max(d);
    }
    fn close_flow(&mut self) {
        let child = self.flows.pop().expect("only called inside a flow");
        let end = self.i;
        let parent = self
            .flows
            .last_mut()
            .expect("the block context is never popped");
        parent.peak = parent.peak.max(child.peak);
        parent.child_peak = child.peak;
        parent.child_end = end;
    }

    fn flow_level(&self) -> usize {
        self.flows.len() - 1 + self.overflow
    }
    fn indent(&self) -> isize {
        self.blocks.last().map_or(-1, |b| b.indent)
    }
    fn key(&mut self) -> &mut Key {
        &mut self
            .flows
            .last_mut()
            .expect("the block context is never popped")
            .key
    }

    /// Opens a block collection at `col` where libyaml does; true when a
    /// level was added.
    fn roll(&mut self, col: usize, kind: Kind, line: usize) -> bool {
        if self.flow_level() > 0 {
            return false;
        }
        let col = col as isize;
        if self.indent() < col {
            self.blocks.push(Block {
                indent: col,
                kind,
                indentless: false,
            });
            self.reach(self.depth(), line, col as usize);
            return true;
        }
        // At the column of the enclosing mapping: a `-` opens a sequence
        // without indentation, a key closes it.
        if let Some(top) = self.blocks.last_mut() {
            if top.indent == col && top.kind == Kind::Map {
                match (kind, top.indentless) {
                    (Kind::Seq, false) => {
                        top.indentless = true;
                        self.indentless += 1;
                        self.reach(self.depth(), line, col as usize);
                        return true;
                    }
                    (Kind::Map, true) => {
                        top.indentless = false;
                        self.indentless -= 1;
                    }
                    _ => {}
                }
            }
        }
        false
    }
    fn unroll(&mut self, col: isize) {
        if self.flow_level() > 0 {
            return;
        }
        while self.indent() > col {
            if self.blocks.pop().is_some_and(|b| b.indentless) {
                self.indentless -= 1;
            }
        }
    }
    fn save_key(&mut self) {
        if self.allowed {
            *self.key() = Key {
                possible: true,
                line: self.line,
                index: self.i,
                col: self.col,
            };
        }
    }
    fn remove_key(&mut self) {
        self.key().possible = false;
    }
    fn end_pair(&mut self) {
        let top = self
            .flows
            .last_mut()
            .expect("the block context is never popped");
        if top.pair {
            top.pair = false;
            self.pairs -= 1;
        }
    }

    fn run(&mut self) {
        loop {
            self.skip_to_next_token();
            if self.eof() {
                return;
            }
            self.unroll(self.col as isize);
            let c = self.at(0);
            let flow = self.flow_level() > 0;
            if self.col == 0 && c == b'%' {
                // A directive runs to the end of its line.
                self.unroll(-1);
                self.remove_key();
                self.allowed = false;
                self.skip_to_break();
                continue;
            }
            if self.doc_marker() {
                self.unroll(-1);
                self.remove_key();
                self.allowed = false;
                for _ in 0..3 {
                    self.advance();
                }
                continue;
            }
            match c {
                b'[' | b'{' => {
                    self.save_key();
                    if self.flows.len() > self.limit {
                        self.overflow += 1;
                    } else {
                        self.flows.push(Flow::new(c == b'['));
                    }
                    self.allowed = true;
                    self.reach(self.depth(), self.line, self.col);
                    self.advance();
                }
                b']' | b'}' => {
                    self.remove_key();
                    if self.overflow > 0 {
                        self.overflow -= 1;
                    } else if flow {
                        self.end_pair();
                        self.close_flow();
                    }
                    self.allowed = false;
                    self.advance();
                }
                b',' => {
                    self.remove_key();
                    self.end_pair();
                    self.allowed = true;
                    self.advance();
                }
                b'-' if self.is_blankz(1) => {
                    let _ = self.roll(self.col, Kind::Seq, self.line);
                    self.remove_key();
                    self.allowed = true;
                    self.advance();
                }
                b'?' if flow || self.is_blankz(1) => {
                    let _ = self.roll(self.col, Kind::Map, self.line);
                    self.remove_key();
                    self.allowed = !flow;
                    let _ = self.open_pair();
                    self.advance();
                }
                b':' if flow || self.is_blankz(1) => {
                    self.value();
                    self.advance();
                }
                b'*' | b'&' => {
                    self.save_key();
                    self.allowed = false;
                    self.advance();
                    while self.is_alpha() {
                        self.advance();
                    }
                }
                b'!' => {
                    self.save_key();
                    self.allowed = false;
                    self.tag();
                }
                b'|' | b'>' if !flow => {
                    self.remove_key();
                    self.allowed = true;
                    self.block_scalar();
                }
                b'\'' | b'"' => {
                    self.save_key();
                    self.allowed = false;
                    self.quoted(c == b'\'');
                }
                _ if self.plain_starts() => {
                    self.save_key();
                    self.allowed = false;
                    self.plain();
                }
                // libyaml stops here ("found character that cannot start any
                // token"); going on can only count more.
                _ => self.advance(),
            }
        }
    }

    fn skip_to_next_token(&mut self) {
        loop {
            if self.col == 0 && self.at(0) == 0xEF && self.at(1) == 0xBB && self.at(2) == 0xBF {
                self.advance();
            }
            while self.at(0) == b' '
                || ((self.flow_level() > 0 || !self.allowed) && self.at(0) == b'\t')
            {
                self.advance();
            }
            if self.at(0) == b'#' {
                self.skip_to_break();
            }
            if !self.is_break(0) {
                return;
            }
            self.skip_line();
            if self.flow_level() == 0 {
                self.allowed = true;
            }
        }
    }

    fn plain_starts(&self) -> bool {
        let c = self.at(0);
        let indicator = self.is_blankz(0) || b"-?:,[]{}#&*!|>'\"%@`".contains(&c);
        !indicator
            || (c == b'-' && !self.is_blank(1))
            || (self.flow_level() == 0 && (c == b'?' || c == b':') && !self.is_blankz(1))
    }

    /// `:` as a value indicator: a pending simple key on this line becomes
    /// the key of a (block) mapping starting at its column.
    fn value(&mut self) {
        let (line, i) = (self.line, self.i);
        let key = *self.key();
        let flow = self.flow_level() > 0;
        if key.possible && key.line == line && key.index + 1024 >= i {
            let opened = self.roll(key.col, Kind::Map, key.line) | self.open_pair();
            let top = self
                .flows
                .last()
                .expect("the block context is never popped");
            // A collection as the key: it sits one level below the new mapping.
            if opened && top.child_end > key.index {
                self.reach(top.child_peak + 1, key.line, key.col);
            }
            self.key().possible = false;
            self.allowed = false;
        } else {
            let _ = self.roll(self.col, Kind::Map, line) | self.open_pair();
            self.allowed = !flow;
        }
    }

    /// A key or value indicator directly inside a flow sequence opens a
    /// one-entry mapping (`[a: 1]`), which ends at the next `,` or `]`.
    fn open_pair(&mut self) -> bool {
        let (line, col, in_flow) = (self.line, self.col, self.flow_level() > 0);
        let top = self
            .flows
            .last_mut()
            .expect("the block context is never popped");
        if in_flow && top.seq && !top.pair {
            top.pair = true;
            self.pairs += 1;
            self.reach(self.depth(), line, col);
            return true;
        }
        false
    }

    fn tag(&mut self) {
        self.advance();
        if self.at(0) == b'<' {
            // A verbatim tag may hold `,[]`: they are no indicators here.
            self.advance();
            while self.is_alpha() || b";/?:@&=+$.%!~*'(),[]".contains(&self.at(0)) {
                self.advance();
            }
            if self.at(0) == b'>' {
                self.advance();
            }
        } else {
            let flow = self.flow_level() > 0;
            while !(self.is_blankz(0) || (flow && self.at(0) == b',')) {
                self.advance();
            }
        }
    }

    fn quoted(&mut self, single: bool) {
        let quote = if single { b'\'' } else { b'"' };
        self.advance();
        loop {
            if self.doc_marker() || self.eof() {
                return;
            }
            while !self.is_blankz(0) {
                if single && self.at(0) == b'\'' && self.at(1) == b'\'' {
                    self.advance();
                    self.advance();
                } else if self.at(0) == quote {
                    break;
                } else if !single && self.at(0) == b'\\' && self.is_break(1) {
                    self.advance();
                    self.skip_line();
                    break;
                } else if !single && self.at(0) == b'\\' {
                    self.advance();
                    self.advance();
                } else {
                    self.advance();
                }
            }
            if self.at(0) == quote {
                self.advance();
                return;
            }
            while self.is_blank(0) || self.is_break(0) {
                if self.is_blank(0) {
                    self.advance();
                } else {
                    self.skip_line();
                }
            }
        }
    }

    fn plain(&mut self) {
        let indent = self.indent() + 1;
        let flow = self.flow_level() > 0;
        let mut leading_blanks = false;
        loop {
            if self.doc_marker() || self.at(0) == b'#' {
                break;
            }
            while !self.is_blankz(0) {
                let c = self.at(0);
                if flow && c == b':' && b",?[]{}".contains(&self.at(1)) {
                    // libyaml refuses this; stop the scalar, count on.
                    return;
                }
                if (c == b':' && self.is_blankz(1)) || (flow && b",[]{}".contains(&c)) {
                    break;
                }
                leading_blanks = false;
                self.advance();
            }
            if !(self.is_blank(0) || self.is_break(0)) {
                break;
            }
            while self.is_blank(0) || self.is_break(0) {
                if self.is_blank(0) {
                    self.advance();
                } else {
                    self.skip_line();
                    leading_blanks = true;
                }
            }
            if !flow && (self.col as isize) < indent {
                break;
            }
        }
        if leading_blanks {
            self.allowed = true;
        }
    }

    fn block_scalar(&mut self) {
        self.advance();
        let mut increment = 0;
        if matches!(self.at(0), b'+' | b'-') {
            self.advance();
            if self.at(0).is_ascii_digit() {
                if self.at(0) == b'0' {
                    return;
                }
                increment = isize::from(self.at(0) - b'0');
                self.advance();
            }
        } else if self.at(0).is_ascii_digit() {
            if self.at(0) == b'0' {
                return;
            }
            increment = isize::from(self.at(0) - b'0');
            self.advance();
            if matches!(self.at(0), b'+' | b'-') {
                self.advance();
            }
        }
        while self.is_blank(0) {
            self.advance();
        }
        if self.at(0) == b'#' {
            self.skip_to_break();
        }
        if !self.is_breakz(0) {
            return;
        }
        if self.is_break(0) {
            self.skip_line();
        }
        let mut indent = match (increment, self.indent()) {
            (0, _) => 0,
            (inc, parent) if parent >= 0 => parent + inc,
            (inc, _) => inc,
        };
        if !self.block_breaks(&mut indent) {
            return;
        }
        while self.col as isize == indent && !self.eof() {
            self.skip_to_break();
            if self.eof() {
                return;
            }
            self.skip_line();
            if !self.block_breaks(&mut indent) {
                return;
            }
        }
    }

    /// Empty lines and indentation before a block scalar's next line; the
    /// first call settles the indentation when no indicator gave it.
    fn block_breaks(&mut self, indent: &mut isize) -> bool {
        let mut max_indent = 0;
        loop {
            while (*indent == 0 || (self.col as isize) < *indent) && self.at(0) == b' ' {
                self.advance();
            }
            max_indent = max_indent.max(self.col as isize);
            if (*indent == 0 || (self.col as isize) < *indent) && self.at(0) == b'\t' {
                return false;
            }
            if !self.is_break(0) {
                break;
            }
            self.skip_line();
        }
        if *indent == 0 {
            *indent = max_indent.max(self.indent() + 1).max(1);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_block_and_mixed_nesting_is_counted() {
        assert_eq!(depth(""), 0);
        assert_eq!(depth("a"), 0);
        assert_eq!(depth("[]"), 1);
        assert_eq!(depth("[[[a]]]"), 3);
        assert_eq!(depth("{a: {b: [c]}}"), 3);
        assert_eq!(depth("a: 1\nb: 2\n"), 1);
        assert_eq!(depth("a:\n  b:\n    c: [1]\n"), 4);
        assert_eq!(depth("- - - a\n"), 3);
        assert_eq!(depth("-\n  -\n    - a\n"), 3);
        // A sequence at its mapping's column is a level of its own.
        assert_eq!(depth("a:\n- b: 1\n  c:\n  - d\n"), 4);
        // `[a: 1]` is a sequence holding a one-entry mapping.
        assert_eq!(depth("[a: [b: 1]]"), 4);
        assert_eq!(depth("[a, b]\n[c]\n"), 1);
    }

    #[test]
    fn brackets_in_scalars_and_comments_do_not_count() {
        assert_eq!(depth("a: \"[[[[\"\nb: '{{{{'\n"), 1);
        assert_eq!(depth("a: 'it''s [[[['\n"), 1);
        assert_eq!(depth("a: \"\\\"[[[[\"\n"), 1);
        assert_eq!(depth("a: x [[[[ {{{{\n"), 1);
        assert_eq!(depth("when: a[0] == b[1]\n"), 1);
        assert_eq!(depth("a: b # [[[[\n# {{{{\n"), 1);
        assert_eq!(depth("a: |\n  [[[[\n  {{{{\nb: >-\n  [[[[\n"), 1);
        // A plain scalar goes on over more-indented lines: the quote is text.
        assert_eq!(depth("a: x\n  'y\nb: [z]\n"), 2);
        // An anchor or tag name is not a scalar.
        assert_eq!(depth("a: &x [b]\nc: !!seq [d]\n"), 2);
    }

    #[test]
    fn the_first_level_past_the_limit_is_located() {
        let text = format!("steps:\n  - {}", "[".repeat(40));
        let err = check(&text, MAX_NESTING).unwrap_err();
        // steps and the step's list take two levels; the 31st `[` is level 33.
        assert_eq!(
            err,
            TooDeep {
                depth: 42,
                limit: 32,
                at: (2, 35)
            }
        );
        assert_eq!(
            err.message(),
            "lists and maps nested 42 levels deep; at most 32 are allowed (level 33 starts here)"
        );
        assert!(check(&"[".repeat(32), MAX_NESTING).is_ok());
        assert!(check(&"[".repeat(33), MAX_NESTING).is_err());
    }

    #[test]
    fn a_megabyte_of_nesting_is_measured_in_one_pass() {
        let n = 1 << 20;
        assert_eq!(depth(&"[".repeat(n)), n);
        assert_eq!(depth(&"{".repeat(n)), n);
        assert_eq!(depth(&"- ".repeat(n / 2)), n / 2);
    }
}
