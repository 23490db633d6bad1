//! The figures the bench measured and how they are shown: the table of `docs/performance.md` as Markdown-style
//! text (so it can be pasted into a note as is) and the JSON record kept for comparing runs. Pure: no clock, no I/O.

use serde::Serialize;

use super::stats::Summary;

/// The unit a figure's samples are in, which also decides how they are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
    /// Kibibytes (peak RSS as the kernel reports it), printed in MiB.
    Kib,
    /// Bytes (file sizes), printed in MiB.
    Bytes,
    /// Calls per hour.
    PerHour,
    /// A plain count.
    Count,
}

impl Unit {
    /// `value` in this unit, for a reader.
    pub fn show(self, value: f64) -> String {
        match self {
            Unit::Ms if value < 10.0 => format!("{value:.2} ms"),
            Unit::Ms => format!("{value:.1} ms"),
            Unit::S => format!("{value:.2} s"),
            Unit::Kib => format!("{:.2} MiB", value / 1024.0),
            Unit::Bytes => format!("{:.2} MiB", value / (1024.0 * 1024.0)),
            Unit::PerHour => format!("{value:.0} /h"),
            Unit::Count => format!("{value:.0}"),
        }
    }

    /// `lo`–`hi` in this unit, the unit written once.
    pub fn show_range(self, lo: f64, hi: f64) -> String {
        let lo = self.show(lo);
        let hi = self.show(hi);
        match (lo.rsplit_once(' '), hi.rsplit_once(' ')) {
            (Some((l, lu)), Some((h, hu))) if lu == hu => format!("{l}–{h} {hu}"),
            _ => format!("{lo}–{hi}"),
        }
    }
}

/// A target a median is held against: at most `limit` (in the figure's unit).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Limit(pub f64);

/// One row of the table: what was measured, what the shell scripts did, the target, and the sample.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// Stable identifier for comparing runs (`check_wall_release`, …).
    pub key: String,
    /// What the row measures, as printed.
    pub figure: String,
    /// The shell scripts' figure from `docs/performance.md` (or `—`).
    pub scripts: String,
    /// The target as `docs/performance.md` writes it (or `—`).
    pub target: String,
    /// The target as a number in `unit`, when there is one to hold the median against.
    pub limit: Option<Limit>,
    pub unit: Unit,
    /// Every sample, in the order taken.
    pub samples: Vec<f64>,
    /// Their summary; `None` when nothing was measured.
    pub summary: Option<Summary>,
    /// How it was measured, or why it is missing.
    pub note: String,
}

impl Figure {
    /// A figure over `samples`.
    pub fn new(key: &str, figure: &str, unit: Unit, samples: Vec<f64>) -> Figure {
        Figure {
            key: key.to_string(),
            figure: figure.to_string(),
            scripts: "—".to_string(),
            target: "—".to_string(),
            limit: None,
            unit,
            summary: Summary::of(&samples),
            samples,
            note: String::new(),
        }
    }

    /// The columns of `docs/performance.md`: the scripts' figure and the target (with its number, if any).
    pub fn against(mut self, scripts: &str, target: &str, limit: Option<f64>) -> Figure {
        self.scripts = scripts.to_string();
        self.target = target.to_string();
        self.limit = limit.map(Limit);
        self
    }

    /// Adds how it was measured.
    pub fn note(mut self, note: impl Into<String>) -> Figure {
        self.note = note.into();
        self
    }

    /// `yes` when the median is within the limit, `NO` when not, `—` without a limit or a sample.
    pub fn verdict(&self) -> &'static str {
        match (&self.summary, self.limit) {
            (Some(s), Some(Limit(limit))) if s.median <= limit => "yes",
            (Some(_), Some(_)) => "NO",
            _ => "—",
        }
    }
}

/// The table: figure | the shell scripts | target | measured median | spread (min–max) | n | meets target.
pub fn render_table(figures: &[Figure]) -> String {
    let header = ["figure", "the shell scripts", "target", "measured median", "spread (min–max)", "n", "meets"];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for f in figures {
        let (median, spread, n) = match &f.summary {
            Some(s) if s.n == 1 => (f.unit.show(s.median), "—".to_string(), "1".to_string()),
            Some(s) => (f.unit.show(s.median), f.unit.show_range(s.min, s.max), s.n.to_string()),
            None => ("not measured".to_string(), "—".to_string(), "0".to_string()),
        };
        rows.push(vec![
            f.figure.clone(),
            f.scripts.clone(),
            f.target.clone(),
            median,
            spread,
            n,
            f.verdict().to_string(),
        ]);
    }
    let widths: Vec<usize> =
        (0..header.len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let line = |row: &[String]| {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell}{}", " ".repeat(w - cell.chars().count())))
            .collect();
        format!("| {} |", cells.join(" | "))
    };
    let mut out = vec![line(&rows[0])];
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push(format!("|-{}-|", rule.join("-|-")));
    out.extend(rows[1..].iter().map(|r| line(r)));
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> Vec<Figure> {
        vec![
            Figure::new("check_wall", "one termination check (wall)", Unit::Ms, vec![2.5, 1.25, 4.0]).against(
                "~80 ms",
                "≤ 3 ms",
                Some(3.0),
            ),
            Figure::new("size", "size of etcd-spot-prune", Unit::Bytes, vec![1_920_584.0]).against(
                "n/a",
                "≤ 2 MB stripped",
                Some(2_000_000.0),
            ),
            Figure::new("calls", "Spotinst calls per node per hour", Unit::PerHour, vec![170.0, 180.0]).against(
                "120",
                "≤ 60",
                Some(60.0),
            ),
            Figure::new("missing", "a figure not measured", Unit::S, vec![]),
        ]
    }

    #[test]
    fn verdicts_hold_the_median_against_the_limit() {
        let f = figures();
        let verdicts: Vec<&str> = f.iter().map(Figure::verdict).collect();
        assert_eq!(verdicts, ["yes", "yes", "NO", "—"]);
    }

    #[test]
    fn table_has_a_header_a_rule_and_one_aligned_row_per_figure() {
        let table = render_table(&figures());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2 + 4, "{table}");
        assert!(lines[0].starts_with("| figure "), "{table}");
        assert!(lines[1].starts_with("|---"), "{table}");
        let width = lines[0].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() == width), "ragged table:\n{table}");
        assert!(lines[2].contains("| 2.50 ms ") && lines[2].contains("| 1.25–4.00 ms ") && lines[2].contains("| 3 "));
        assert!(lines[3].contains("| 1.83 MiB ") && lines[3].contains("| — "), "{table}");
        assert!(lines[4].contains("175 /h") && lines[4].ends_with("| NO    |"), "{table}");
        assert!(lines[5].contains("not measured"), "{table}");
    }

    #[test]
    fn units_print_for_a_reader() {
        assert_eq!(Unit::Ms.show(0.8123), "0.81 ms");
        assert_eq!(Unit::Ms.show(81.23), "81.2 ms");
        assert_eq!(Unit::Kib.show(2048.0), "2.00 MiB");
        assert_eq!(Unit::S.show_range(1.0, 2.5), "1.00–2.50 s");
        assert_eq!(Unit::Count.show_range(0.0, 3.0), "0–3");
    }
}
