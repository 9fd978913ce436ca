//! The limits a config's text is held to before serde_yaml reads it: at most `MAX_BYTES`
//! (16 MiB) and at most `MAX_DEPTH` (64) levels of nesting. It guards the whole file, not a
//! PixlProxy key.
//!
//! A PixlProxy config is a few KiB and about five levels deep (`PixlProxy.pools.<id>.
//! health_check.type`), but serde_yaml takes tens of seconds of CPU on 100 000 nested brackets.
//! So one linear pass over the text counts the nesting first: `[` / `{` flow collections (all
//! of a JSON file) where a node may start, and YAML's block collections by their indentation
//! (each `key:` more indented than the one before, each `- ` of a list entry). Quoted
//! scalars, comments, `|` / `>` block scalars and plain text (an unquoted regex such as
//! `^/a[0-9]`, over one line or several) are text, not structure. It errs towards counting
//! fewer levels (a list written at its key's indent is not counted), never more, so a real
//! config never trips it; where in doubt (a bracket right after an anchor or a tag) it
//! counts, so nesting cannot hide there. The problem is at the line and column where a limit
//! is passed.

use crate::config::problem::Problem;

/// Largest config text accepted, in bytes.
pub(crate) const MAX_BYTES: usize = 16 * 1024 * 1024;
/// Deepest nesting accepted, in collections (maps and lists) one inside the other.
pub(crate) const MAX_DEPTH: usize = 64;

/// A problem when `text` is over a limit.
pub(crate) fn check(text: &str) -> Result<(), Problem> {
    check_size(text.as_bytes())?;
    Nesting::default().scan(text)
}

/// A problem when `bytes` (a config file read up to one byte past the limit) is too large,
/// at the line that passes the limit.
pub(crate) fn check_size(bytes: &[u8]) -> Result<(), Problem> {
    if bytes.len() <= MAX_BYTES {
        return Ok(());
    }
    let head = bytes.get(..MAX_BYTES).unwrap_or(bytes);
    let line = 1 + head.iter().filter(|&&b| b == b'\n').count();
    let column = 1 + head.iter().rev().take_while(|&&b| b != b'\n').count();
    let message = format!(
        "the file is larger than {} MiB, the limit for a config",
        MAX_BYTES / (1024 * 1024)
    );
    Err(Problem::error("", message).at(Some((line, column))))
}

/// A quoted scalar in progress (it may span lines).
#[derive(Clone, Copy, PartialEq)]
enum Quote {
    Single,
    Double,
}

/// A `|` / `>` block scalar: its lines are text, not structure.
#[derive(Clone, Copy)]
enum BlockScalar {
    /// Opened by a node at this column; its first more indented line sets its indent.
    Opened { owner: usize },
    /// Lines indented this much (and blank ones) are its text.
    Body { indent: usize },
}

/// The scan's state between lines.
#[derive(Default)]
struct Nesting {
    /// Indent columns of the open block collections, innermost last.
    blocks: Vec<usize>,
    /// Open `[` / `{` collections.
    flow: usize,
    quote: Option<Quote>,
    /// In a flow collection: the next character may start a node (so a quote opens one).
    flow_node_start: bool,
    /// In a flow collection: the last character that was not white space (`"` for any
    /// closing quote).
    flow_last: char,
    block_scalar: Option<BlockScalar>,
    /// A plain scalar owned by the node at this column ended the last line: a more indented
    /// line goes on with its text.
    plain_owner: Option<usize>,
}

/// Where a block line's node starts, and the column of the node that owns it.
#[derive(Clone, Copy)]
struct NodeStart {
    at: usize,
    owner: usize,
    /// The node is the first on its line (a `key:` there opens a mapping level).
    first: bool,
}

impl Nesting {
    fn scan(mut self, text: &str) -> Result<(), Problem> {
        for (index, line) in text.split('\n').enumerate() {
            let chars: Vec<char> = line.trim_end_matches('\r').chars().collect();
            self.line(&chars)
                .map_err(|column| too_deep(index + 1, column + 1))?;
        }
        Ok(())
    }

    /// One line; `Err(column)` (0-based) where the limit is passed.
    fn line(&mut self, chars: &[char]) -> Result<(), usize> {
        if self.quote.is_some() || self.flow > 0 {
            return match self.inline(chars, 0)? {
                Some(at) => self.block_node(
                    chars,
                    NodeStart {
                        at,
                        owner: 0,
                        first: false,
                    },
                ),
                None => Ok(()),
            };
        }
        let indent = chars.iter().take_while(|&&c| c == ' ').count();
        let empty = chars.get(indent).is_none();
        let comment = chars.get(indent) == Some(&'#');
        if self.in_text(indent, empty, comment) || empty || comment {
            return Ok(());
        }
        if let Some(rest) = document_marker(chars) {
            self.blocks.clear();
            let at = rest + spaces_from(chars, rest);
            return self.block_node(
                chars,
                NodeStart {
                    at,
                    owner: 0,
                    first: false,
                },
            );
        }
        while self.blocks.last().is_some_and(|&open| open >= indent) {
            self.blocks.pop();
        }
        // Each `- ` of a list entry (or `? ` / `: ` of a complex key) opens a level.
        let (mut at, mut owner) = (indent, indent);
        while let (Some('-' | '?' | ':'), None | Some(' ' | '\t')) =
            (chars.get(at), chars.get(at + 1))
        {
            self.open_block(at)?;
            owner = at;
            at += 1;
            at += spaces_from(chars, at);
        }
        self.block_node(
            chars,
            NodeStart {
                at,
                owner,
                first: true,
            },
        )
    }

    /// Whether a line with this indent is the text of a block scalar or of a plain scalar
    /// going on from the line before; ends them otherwise.
    fn in_text(&mut self, indent: usize, empty: bool, comment: bool) -> bool {
        if let Some(owner) = self.plain_owner.take() {
            // An empty line does not end a plain scalar, a comment does.
            if empty || (!comment && indent > owner) {
                self.plain_owner = Some(owner);
                return true;
            }
        }
        match self.block_scalar {
            None => false,
            Some(_) if empty => true,
            Some(BlockScalar::Opened { owner }) if indent > owner => {
                self.block_scalar = Some(BlockScalar::Body { indent });
                true
            }
            Some(BlockScalar::Body { indent: body }) if indent >= body => true,
            Some(_) => {
                self.block_scalar = None;
                false
            }
        }
    }

    fn open_block(&mut self, column: usize) -> Result<(), usize> {
        if self.blocks.last().is_none_or(|&open| open < column) {
            self.blocks.push(column);
        }
        self.within_limit(column)
    }

    fn within_limit(&self, column: usize) -> Result<(), usize> {
        match self.blocks.len() + self.flow > MAX_DEPTH {
            true => Err(column),
            false => Ok(()),
        }
    }

    /// A block line from where a node starts (after the indent and any `- `, or after a
    /// flow collection or quote closed): a `key:` first on the line opens a mapping level,
    /// and after `key: ` another node starts.
    fn block_node(&mut self, chars: &[char], mut node: NodeStart) -> Result<(), usize> {
        loop {
            node.at += spaces_from(chars, node.at);
            let start = node.at;
            let mut plain = false;
            match chars.get(node.at) {
                None | Some('#') => return Ok(()),
                Some('[' | '{') => match self.inline(chars, node.at)? {
                    Some(after) => node.at = after,
                    None => return Ok(()),
                },
                Some('|' | '>') => {
                    self.block_scalar = Some(BlockScalar::Opened { owner: node.owner });
                    return Ok(());
                }
                // An anchor or a tag comes before the node it names.
                Some('&' | '!') => {
                    node.at += chars
                        .iter()
                        .skip(node.at)
                        .take_while(|&&c| !is_white(c) && !"[]{},".contains(c))
                        .count();
                    continue;
                }
                Some(&c @ ('"' | '\'')) => {
                    self.quote = Some(if c == '"' {
                        Quote::Double
                    } else {
                        Quote::Single
                    });
                    node.at = self.in_quote(chars, node.at + 1);
                    if self.quote.is_some() {
                        return Ok(());
                    }
                }
                Some(_) => plain = true,
            }
            // A plain scalar (or what follows a closed quote or collection): a key if `: `
            // follows, else the line's last node.
            match key_end(chars, node.at) {
                KeyEnd::Value(value) => {
                    if node.first {
                        self.open_block(start)?;
                    }
                    node = NodeStart {
                        at: value,
                        owner: start,
                        first: false,
                    };
                }
                KeyEnd::Plain => {
                    self.plain_owner = plain.then_some(node.owner);
                    return Ok(());
                }
                KeyEnd::Comment => return Ok(()),
            }
        }
    }

    /// Inside flow collections or a quoted scalar, from `at`: `Some(column)` after the point
    /// where both are closed, `None` when the line ends with one still open.
    fn inline(&mut self, chars: &[char], mut at: usize) -> Result<Option<usize>, usize> {
        while let Some(&c) = chars.get(at) {
            if self.quote.is_some() {
                at = self.in_quote(chars, at);
                if self.quote.is_none() {
                    (self.flow_last, self.flow_node_start) = ('"', false);
                }
            } else {
                if self.flow_char(chars, at, c)? {
                    return Ok(None);
                }
                at += 1;
            }
            if self.flow == 0 && self.quote.is_none() {
                return Ok(Some(at));
            }
        }
        Ok(None)
    }

    /// One character outside quotes in a flow collection; `true` when a comment starts.
    fn flow_char(&mut self, chars: &[char], at: usize, c: char) -> Result<bool, usize> {
        match c {
            '[' | '{' => {
                self.flow += 1;
                self.flow_node_start = true;
                self.within_limit(at)?;
            }
            ']' | '}' => {
                self.flow = self.flow.saturating_sub(1);
                self.flow_node_start = false;
            }
            ',' => self.flow_node_start = true,
            // A value indicator: `: ` or, after a quoted or bracketed key, `:` (JSON's `"a":1`).
            ':' => {
                let next_white = chars.get(at + 1).is_none_or(|&n| is_white(n));
                self.flow_node_start = next_white || "\"]}".contains(self.flow_last);
            }
            '"' | '\'' if self.flow_node_start => {
                self.quote = Some(if c == '"' {
                    Quote::Double
                } else {
                    Quote::Single
                });
            }
            '#' if at == 0 || chars.get(at - 1).is_some_and(|&p| is_white(p)) => return Ok(true),
            c if is_white(c) => return Ok(false),
            _ => self.flow_node_start = false,
        }
        self.flow_last = c;
        Ok(false)
    }

    /// Inside a quoted scalar from `at`: the column after its closing quote, or the line's end
    /// (the quote goes on).
    fn in_quote(&mut self, chars: &[char], mut at: usize) -> usize {
        while let Some(&c) = chars.get(at) {
            match (self.quote, c) {
                (Some(Quote::Double), '\\') => at += 1,
                (Some(Quote::Double), '"') => {
                    self.quote = None;
                    return at + 1;
                }
                (Some(Quote::Single), '\'') if chars.get(at + 1) == Some(&'\'') => at += 1,
                (Some(Quote::Single), '\'') => {
                    self.quote = None;
                    return at + 1;
                }
                _ => {}
            }
            at += 1;
        }
        chars.len()
    }
}

fn is_white(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn spaces_from(chars: &[char], at: usize) -> usize {
    chars.iter().skip(at).take_while(|&&c| is_white(c)).count()
}

/// What follows a plain scalar in block context.
enum KeyEnd {
    /// It was a key: a value starts at this column.
    Value(usize),
    /// It runs to the end of the line (and may go on on the next).
    Plain,
    /// It ends at a comment.
    Comment,
}

fn key_end(chars: &[char], mut at: usize) -> KeyEnd {
    while let Some(&c) = chars.get(at) {
        let next = chars.get(at + 1).copied();
        match (c, next) {
            (':', None) => return KeyEnd::Value(at + 1),
            (':', Some(n)) if is_white(n) => return KeyEnd::Value(at + 1),
            (w, Some('#')) if is_white(w) => return KeyEnd::Comment,
            _ => at += 1,
        }
    }
    KeyEnd::Plain
}

/// After `---` or `...` (a document's start or end) at the start of a line: the column where
/// the rest of the line starts. A `%` directive line has no rest.
fn document_marker(chars: &[char]) -> Option<usize> {
    if chars.first() == Some(&'%') {
        return Some(chars.len());
    }
    let head: String = chars.iter().take(3).collect();
    let ends = chars.get(3).is_none_or(|&c| is_white(c));
    ((head == "---" || head == "...") && ends).then_some(3)
}

fn too_deep(line: usize, column: usize) -> Problem {
    let message = format!(
        "nested more than {MAX_DEPTH} levels deep, the limit for a config (a PixlProxy config nests about 5)"
    );
    Problem::error("", message).at(Some((line, column)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_error(text: &str) -> Option<(usize, usize)> {
        check(text).err().and_then(|p| p.location)
    }

    #[test]
    fn ordinary_configs_pass() {
        let yaml = "# sample\nlog_dir: logs\nWebServer:\n  http_port: 3020\n  http_response_headers:\n    Via: poolgate\nPixlProxy:\n  pools:\n    default:\n      targets:\n        - 'a:1'\n        - b:2\n      uri_match: ^/a[0-9]{3}\\[\n      health_check: {type: http, path: /}\n";
        assert!(check(yaml).is_ok());
        let json = r#"{"WebServer": {"http_port": 3020}, "PixlProxy": {"pools": {"a": {"uri_match": "^/[[{", "targets": ["a:1"]}}}}"#;
        assert!(check(json).is_ok());
        assert!(check("").is_ok());
        assert!(check(&std::fs::read_to_string("conf/config.yaml").unwrap()).is_ok());
    }

    #[test]
    fn deep_brackets_fail_where_the_limit_is_passed() {
        let text = format!("a: {}1{}", "[".repeat(100_000), "]".repeat(100_000));
        // `a` is the first level, so the 64th bracket is the 65th level: column 4 + 63.
        assert_eq!(depth_error(&text), Some((1, 67)));
        let json = format!("{}\n{}", "{\"a\":".repeat(70), "}".repeat(70));
        assert_eq!(depth_error(&json), Some((1, 1 + 5 * 64)));
        assert!(check(&format!("{}{}", "[".repeat(64), "]".repeat(64))).is_ok());
    }

    #[test]
    fn deep_indentation_fails_at_its_line() {
        let text: String = (0..70)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        assert_eq!(depth_error(&text), Some((65, 65)));
        let dashes = format!("{}x\n", "- ".repeat(70));
        assert_eq!(depth_error(&dashes), Some((1, 129)));
    }

    #[test]
    fn brackets_in_quotes_comments_and_block_scalars_do_not_count() {
        let many = "[".repeat(200);
        let text = format!("a: '{many}'\nb: \"{many}\\\"\"\n# {many}\nc: x # {many}\nd: |\n  {many}\n\n  {many}\ne: plain{many}\n");
        assert!(check(&text).is_ok(), "{:?}", check(&text));
        let multi_line_quote = format!("a: \"x\n  {many}\n  y\"\nb: 1\n");
        assert!(check(&multi_line_quote).is_ok());
    }

    #[test]
    fn brackets_hidden_behind_plain_text_or_markers_still_count() {
        let many = "[".repeat(100);
        for text in [
            format!("a:\t{many}"),
            format!("--- {many}"),
            format!("a: &anchor{many}"),
            format!("[a]: {many}"),
            format!("a: [b'c, {many}"),
            format!("a: {{url: x:'y, {many}"),
            format!("a: |\n  text\nb:\n  {many}"),
            format!("- a: |\n  b: {many}"),
        ] {
            assert!(depth_error(&text).is_some(), "{text:?}");
        }
    }

    #[test]
    fn plain_text_going_on_over_lines_is_text() {
        let many = "[".repeat(100);
        let text = format!("a: some\n  text {many}\n\n  more {many}\nb: 1\n- item\n  {many}\n");
        assert!(check(&text).is_ok(), "{:?}", check(&text));
        let json_keys = r#"{"a":"b","c":['d',"e"]}"#;
        assert!(check(json_keys).is_ok());
    }

    #[test]
    fn any_text_is_scanned_without_a_panic() {
        let alphabet: Vec<char> = "ab :-?#'\"\\|>&!*[]{},%.\t\n\r é".chars().collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let text: String = (0..200)
                .map(|_| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    alphabet[(seed >> 33) as usize % alphabet.len()]
                })
                .collect();
            let _ = check(&text);
        }
    }

    #[test]
    fn a_file_over_the_size_limit_fails_at_the_line_past_it() {
        let line = "# padding padding padding padding padding padding padding padding\n";
        let text = line.repeat(MAX_BYTES / line.len() + 1);
        let problem = check(&text).unwrap_err();
        let lines = MAX_BYTES / line.len();
        assert_eq!(
            problem.location,
            Some((lines + 1, MAX_BYTES - lines * line.len() + 1))
        );
        assert!(problem.message.contains("16 MiB"), "{}", problem.message);
    }
}
