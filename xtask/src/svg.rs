//! The small kit behind the hand-written SVG figures (the bench's replacement timeline, the run timelines of
//! chaos and the demo): text escaped for XML, round axis steps, numbers without trailing zeros, and for tests a
//! structural check that a document is well-formed XML. Pure: it builds strings and never touches a file.

/// Text escaped for XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// A step of 1, 2 or 5 times a power of ten giving 5 to 12 ticks over `end`.
pub fn tick_step(end: f64) -> f64 {
    let mut step = 10f64.powf((end / 10.0).log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if end / (step * m) <= 12.0 {
            step *= m;
            break;
        }
    }
    step
}

/// `t` with at most two decimals and no trailing zeros (`2.50` → `2.5`, `3.00` → `3`).
pub fn trim_number(t: f64) -> String {
    let s = format!("{t:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A small well-formedness check for the XML the figures write: every tag closed in order, attributes quoted,
/// no bare `&` or `<` in text. Returns the element names in document order.
#[cfg(test)]
pub fn well_formed(xml: &str) -> Result<Vec<String>, String> {
    let body = xml.strip_prefix(r#"<?xml version="1.0" encoding="UTF-8"?>"#).ok_or("no XML declaration")?;
    let mut stack: Vec<String> = Vec::new();
    let mut names = Vec::new();
    let mut rest = body;
    while let Some(open) = rest.find('<') {
        check_text(&rest[..open])?;
        let close = rest[open..].find('>').ok_or("unclosed tag")? + open;
        let tag = &rest[open + 1..close];
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(top) if top == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else {
            let self_closing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let name = tag.split_whitespace().next().ok_or("empty tag")?.to_string();
            if tag.matches('"').count() % 2 != 0 {
                return Err(format!("unbalanced quotes in <{tag}>"));
            }
            check_text(&tag.replace('<', "&lt;"))?;
            names.push(name.clone());
            if !self_closing {
                stack.push(name);
            }
        }
        rest = &rest[close + 1..];
    }
    check_text(rest)?;
    if stack.is_empty() { Ok(names) } else { Err(format!("unclosed elements {stack:?}")) }
}

#[cfg(test)]
fn check_text(text: &str) -> Result<(), String> {
    for (i, _) in text.match_indices('&') {
        let entity = &text[i..];
        if !["&amp;", "&lt;", "&gt;", "&quot;"].iter().any(|e| entity.starts_with(e)) {
            return Err(format!("bare & in {text:?}"));
        }
    }
    if text.contains('<') { Err(format!("bare < in {text:?}")) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checker_rejects_broken_xml() {
        let decl = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
        for bad in ["<svg><g></svg></g>", "<svg>a & b</svg>", "<svg><text>x</svg>", "<svg a=\"1></svg>"] {
            assert!(well_formed(&format!("{decl}{bad}")).is_err(), "{bad} passed");
        }
        assert!(well_formed(&format!("{decl}<svg><g/><text>a &amp; b</text></svg>")).is_ok());
        assert!(well_formed("<svg/>").is_err(), "no declaration");
    }

    #[test]
    fn escaping_and_numbers() {
        assert_eq!(escape(r#"a <b> & "c""#), "a &lt;b&gt; &amp; &quot;c&quot;");
        assert_eq!((trim_number(2.5), trim_number(3.0), trim_number(0.126)), ("2.5".into(), "3".into(), "0.13".into()));
    }

    #[test]
    fn ticks_are_round_numbers() {
        assert_eq!(tick_step(13.0), 2.0);
        assert_eq!(tick_step(25.0), 5.0);
        assert_eq!(tick_step(4.0), 0.5);
        assert_eq!(tick_step(100.0), 10.0);
    }
}
