//! An independent reader for the environment etcd-spot writes for etcd: a systemd drop-in
//! (`[Service]` + `Environment=` lines) or a plain environment file (`EnvironmentFile=` format).
//!
//! It follows systemd's own rules (specifier expansion, then `extract_first_word` with quote removal and C
//! unescaping for `Environment=`; `parse_env_file` rules for plain files) so tests can check what core wrote
//! the way systemd will read it. It must never share code with the writer in core, and it is stricter than
//! systemd: where systemd would log and skip a bad assignment, this returns an error.

/// Parses a systemd drop-in (`[Service]` + `Environment="K=V" …` lines, systemd's quoting and escape rules)
/// or a plain env file (`K="V"` / `K=V` lines, # comments) into (key, value) pairs, in file order.
///
/// The text is a drop-in when its first line that is neither blank nor a comment is a `[Section]` header.
/// As in systemd, a key assigned twice keeps its first position and takes the later value, and in a drop-in
/// an empty `Environment=` clears everything assigned before it.
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, String> {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'));
    if first.is_some_and(|l| l.starts_with('[')) { parse_unit(text) } else { parse_plain(text) }
}

/// Sets `key` to `value`, replacing an earlier assignment in place.
fn assign(out: &mut Vec<(String, String)>, key: String, value: String) {
    match out.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => out.push((key, value)),
    }
}

/// systemd's `env_name_is_valid`, restricted to what a shell accepts: `[A-Za-z_][A-Za-z0-9_]*`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

// ---------------------------------------------------------------------------------------------------------
// Unit files (drop-ins)

fn parse_unit(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut pending = String::new();
    let mut start_line = 0;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if pending.is_empty() {
            start_line = n + 1;
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
        } else if line.starts_with('#') || line.starts_with(';') {
            // Comment lines inside a continuation are skipped, as systemd does.
            continue;
        }
        // A trailing backslash joins the next line, the backslash becoming a space.
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let logical = std::mem::take(&mut pending);
        unit_line(&logical, &mut section, &mut out).map_err(|e| format!("line {start_line}: {e}"))?;
    }
    if !pending.is_empty() {
        unit_line(pending.trim_end(), &mut section, &mut out).map_err(|e| format!("line {start_line}: {e}"))?;
    }
    Ok(out)
}

fn unit_line(line: &str, section: &mut String, out: &mut Vec<(String, String)>) -> Result<(), String> {
    if let Some(rest) = line.strip_prefix('[') {
        let name = rest.strip_suffix(']').ok_or_else(|| format!("bad section header {line:?}"))?;
        *section = name.to_string();
        return Ok(());
    }
    let (key, value) = line.split_once('=').ok_or_else(|| format!("missing '=' in {line:?}"))?;
    if key.trim() != "Environment" || section != "Service" {
        return Ok(());
    }
    let value = value.trim();
    if value.is_empty() {
        out.clear();
        return Ok(());
    }
    let expanded = expand_specifiers(value)?;
    let mut rest = expanded.as_str();
    while let Some(word) = extract_first_word(&mut rest)? {
        let (k, v) = word.split_once('=').ok_or_else(|| format!("{word:?} is not an assignment"))?;
        if !valid_name(k) {
            return Err(format!("invalid variable name {k:?}"));
        }
        assign(out, k.to_string(), v.to_string());
    }
    Ok(())
}

/// Expands `%%` to `%`; any other specifier depends on the unit, so it is refused.
fn expand_specifiers(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(other) => return Err(format!("specifier %{other} depends on the unit; write %% for a literal %")),
            None => return Err("lone % at end of value".to_string()),
        }
    }
    Ok(out)
}

/// systemd's `extract_first_word(…, WHITESPACE, EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE)`: skips whitespace, then
/// reads one word in which single- and double-quoted parts may appear anywhere and backslash escapes are
/// C escapes (inside and outside quotes). `None` when only whitespace is left.
fn extract_first_word(rest: &mut &str) -> Result<Option<String>, String> {
    const SEPARATORS: &[char] = &[' ', '\t', '\n', '\r'];
    let s = rest.trim_start_matches(SEPARATORS);
    if s.is_empty() {
        *rest = s;
        return Ok(None);
    }
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.char_indices().peekable();
    let mut end = s.len();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                let unescaped = c_unescape(&mut chars)?;
                word.push(unescaped);
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => quote = Some(c),
            (None, c) if SEPARATORS.contains(&c) => {
                end = i;
                break;
            }
            (None, c) => word.push(c),
        }
    }
    if let Some(q) = quote {
        return Err(format!("unterminated {q} quote"));
    }
    *rest = &s[end..];
    Ok(Some(word))
}

/// systemd's `cunescape_one`, for the characters after a backslash.
fn c_unescape(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>) -> Result<char, String> {
    let Some((_, c)) = chars.next() else {
        return Err("trailing backslash".to_string());
    };
    let simple = match c {
        'a' => Some('\u{7}'),
        'b' => Some('\u{8}'),
        'f' => Some('\u{c}'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\u{b}'),
        '\\' => Some('\\'),
        '"' => Some('"'),
        '\'' => Some('\''),
        's' => Some(' '),
        _ => None,
    };
    if let Some(u) = simple {
        return Ok(u);
    }
    let (radix, digits) = match c {
        'x' => (16, 2),
        'u' => (16, 4),
        'U' => (16, 8),
        '0'..='7' => (8, 2),
        _ => return Err(format!("unknown escape \\{c}")),
    };
    let mut text = String::new();
    if radix == 8 {
        text.push(c);
    }
    for _ in 0..digits {
        match chars.next() {
            Some((_, d)) if d.is_digit(radix) => text.push(d),
            _ => return Err(format!("short escape \\{c}{text}")),
        }
    }
    let code = u32::from_str_radix(&text, radix).map_err(|e| format!("bad escape \\{c}{text}: {e}"))?;
    if code == 0 {
        return Err("escaped NUL".to_string());
    }
    char::from_u32(code).ok_or_else(|| format!("escape \\{c}{text} is not a character"))
}

// ---------------------------------------------------------------------------------------------------------
// Plain environment files

/// systemd's `parse_env_file` state machine (`load_env_file`): `KEY=VALUE`, whitespace around key and value
/// trimmed, `#`/`;` comment lines, `"…"` with `\"` `\\` `` \` `` `\$` escapes, `'…'` literal, and outside
/// quotes a backslash takes the next character literally; backslash-newline continues a line.
fn parse_plain(text: &str) -> Result<Vec<(String, String)>, String> {
    #[derive(PartialEq)]
    enum St {
        PreKey,
        Key,
        PreValue,
        Value,
        ValueEscape,
        Single,
        Double,
        DoubleEscape,
        Comment,
        CommentEscape,
    }
    let mut out = Vec::new();
    let mut st = St::PreKey;
    let mut key = String::new();
    let mut value = String::new();
    // Length of `value` up to its last non-whitespace character (trailing whitespace is dropped when unquoted).
    let mut last_solid = 0usize;
    let mut line = 1usize;
    let mut finish = |key: &mut String, value: &mut String, last_solid: usize, line: usize| -> Result<(), String> {
        let k = key.trim_end().to_string();
        value.truncate(last_solid);
        if !valid_name(&k) {
            return Err(format!("line {line}: invalid variable name {k:?}"));
        }
        assign(&mut out, k, std::mem::take(value));
        key.clear();
        Ok(())
    };
    for c in text.chars().chain(std::iter::once('\n')) {
        match st {
            St::PreKey => match c {
                '#' | ';' => st = St::Comment,
                c if c.is_whitespace() => {}
                c => {
                    key.push(c);
                    st = St::Key;
                }
            },
            St::Key => match c {
                '\n' | '\r' => return Err(format!("line {line}: {:?} has no '='", key.trim())),
                '=' => {
                    st = St::PreValue;
                    last_solid = 0;
                }
                c => key.push(c),
            },
            St::PreValue => match c {
                '\n' | '\r' => {
                    finish(&mut key, &mut value, last_solid, line)?;
                    st = St::PreKey;
                }
                '\'' => st = St::Single,
                '"' => st = St::Double,
                '\\' => st = St::ValueEscape,
                c if c.is_whitespace() => {}
                c => {
                    value.push(c);
                    last_solid = value.len();
                    st = St::Value;
                }
            },
            St::Value => match c {
                '\n' | '\r' => {
                    finish(&mut key, &mut value, last_solid, line)?;
                    st = St::PreKey;
                }
                '\\' => st = St::ValueEscape,
                c => {
                    value.push(c);
                    if !c.is_whitespace() {
                        last_solid = value.len();
                    }
                }
            },
            St::ValueEscape => {
                st = St::Value;
                if c != '\n' {
                    value.push(c);
                    last_solid = value.len();
                }
            }
            St::Single => match c {
                '\'' => st = St::PreValue,
                c => {
                    value.push(c);
                    last_solid = value.len();
                }
            },
            St::Double => match c {
                '"' => st = St::PreValue,
                '\\' => st = St::DoubleEscape,
                c => {
                    value.push(c);
                    last_solid = value.len();
                }
            },
            St::DoubleEscape => {
                st = St::Double;
                match c {
                    '"' | '\\' | '`' | '$' => value.push(c),
                    '\n' => {}
                    c => {
                        value.push('\\');
                        value.push(c);
                    }
                }
                last_solid = value.len();
            }
            St::Comment => match c {
                '\\' => st = St::CommentEscape,
                '\n' | '\r' => st = St::PreKey,
                _ => {}
            },
            St::CommentEscape => st = St::Comment,
        }
        if c == '\n' {
            line += 1;
        }
    }
    match st {
        St::PreKey | St::Comment | St::CommentEscape => Ok(out),
        St::Single | St::Double | St::DoubleEscape => Err("unterminated quote at end of file".to_string()),
        _ => Err("unexpected end of file".to_string()),
    }
}
